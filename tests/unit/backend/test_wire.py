"""Hand-encoded work items must parse back to exactly the intended messages."""

from __future__ import annotations

from dtask_async._proto import pb
from dtask_async.backend import _events as ev
from dtask_async.backend._wire import (
    HEALTH_PING,
    activity_work_item,
    orchestrator_work_item,
    past_event_entry,
)


def test_orchestrator_work_item_round_trips() -> None:
    past = [ev.orchestrator_started(1), ev.event_raised(2, "x" * 300, None)]
    new = [ev.orchestrator_started(3), ev.timer_fired(4, 7, ev.ts(5))]
    blob = b"".join(past_event_entry(e.SerializeToString()) for e in past)
    data = orchestrator_work_item(
        "inst-é", "exec-1", blob, [e.SerializeToString() for e in new], "tok-1"
    )
    item = pb.WorkItem.FromString(data)
    expected = pb.WorkItem(
        completionToken="tok-1",
        orchestratorRequest=pb.OrchestratorRequest(
            instanceId="inst-é", pastEvents=past, newEvents=new
        ),
    )
    expected.orchestratorRequest.executionId.value = "exec-1"
    assert item == expected


def test_large_history_uses_multi_byte_lengths() -> None:
    past = [ev.event_raised(i, "e", None) for i in range(2000)]
    blob = b"".join(past_event_entry(e.SerializeToString()) for e in past)
    item = pb.WorkItem.FromString(orchestrator_work_item("i", "x", blob, [], "t"))
    assert list(item.orchestratorRequest.pastEvents) == past


def test_activity_work_item_and_ping() -> None:
    request = pb.ActivityRequest(name="act", taskId=3)
    request.input.value = '"in"'
    item = pb.WorkItem.FromString(activity_work_item(request.SerializeToString(), "t"))
    assert item.activityRequest == request
    assert item.completionToken == "t"
    ping = pb.WorkItem.FromString(HEALTH_PING)
    assert ping.WhichOneof("request") == "healthPing"
