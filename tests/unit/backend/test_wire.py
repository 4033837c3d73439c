"""Hand-encoded work items must parse back to exactly the intended messages."""

from __future__ import annotations

from dtask_async._proto import pb
from dtask_async.backend import _events as ev
from dtask_async.backend._wire import (
    HEALTH_PING,
    activity_work_item,
    history_chunks,
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


def test_streaming_work_items_say_so_and_carry_no_history() -> None:
    new = [ev.orchestrator_started(3)]
    data = orchestrator_work_item(
        "i", "x", b"", [e.SerializeToString() for e in new], "t", requires_history_streaming=True
    )
    request = pb.WorkItem.FromString(data).orchestratorRequest
    assert request.requiresHistoryStreaming
    assert list(request.pastEvents) == []
    assert list(request.newEvents) == new


def _past(events: list[pb.HistoryEvent]) -> bytes:
    return b"".join(past_event_entry(e.SerializeToString()) for e in events)


def test_history_chunks_hold_every_event_in_order_within_the_limit() -> None:
    events = [ev.event_raised(i, "e" * (i % 300), None) for i in range(500)]
    chunks = list(history_chunks(_past(events), 4096))
    assert len(chunks) > 10
    assert all(len(chunk) <= 4096 for chunk in chunks)
    parsed = [pb.HistoryChunk.FromString(chunk) for chunk in chunks]
    assert [e for chunk in parsed for e in chunk.events] == events


def test_an_event_larger_than_a_chunk_travels_alone() -> None:
    events = [ev.event_raised(1, "a", None), ev.event_raised(2, "b" * 5000, None)]
    events.append(ev.event_raised(3, "c", None))
    chunks = [pb.HistoryChunk.FromString(c) for c in history_chunks(_past(events), 1000)]
    assert [len(chunk.events) for chunk in chunks] == [1, 1, 1]
    assert [e for chunk in chunks for e in chunk.events] == events
    assert list(history_chunks(b"", 1000)) == []
