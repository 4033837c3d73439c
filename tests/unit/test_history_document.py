"""The history JSON format: round trips, and clear refusals of what it is not."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from dtask_async import FailureDetails, HistoryFormatError, OrchestrationStatus
from dtask_async._proto import pb
from dtask_async._protoutil import to_timestamp
from dtask_async.client import HistoryEvent, OrchestrationState
from dtask_async.history import FORMAT, FORMAT_VERSION, HistoryDocument, InstanceInfo

T0 = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.timezone.utc)


def _events() -> list[pb.HistoryEvent]:
    started = pb.HistoryEvent(eventId=-1, timestamp=to_timestamp(T0))
    started.orchestratorStarted.SetInParent()
    execution = pb.HistoryEvent(eventId=-1, timestamp=to_timestamp(T0))
    execution.executionStarted.name = "order"
    execution.executionStarted.input.value = '{"id": 1}'
    execution.executionStarted.orchestrationInstance.instanceId = "i-1"
    scheduled = pb.HistoryEvent(eventId=0, timestamp=to_timestamp(T0 + dt.timedelta(seconds=1)))
    scheduled.taskScheduled.name = "charge"
    timer = pb.HistoryEvent(eventId=1, timestamp=to_timestamp(T0))
    timer.timerCreated.fireAt.CopyFrom(to_timestamp(T0 + dt.timedelta(days=1)))
    return [started, execution, scheduled, timer]


def _state() -> OrchestrationState:
    return OrchestrationState(
        instance_id="i-1",
        name="order",
        runtime_status=OrchestrationStatus.FAILED,
        created_at=T0,
        last_updated_at=T0 + dt.timedelta(seconds=2),
        serialized_input='{"id": 1}',
        failure_details=FailureDetails(
            "boom",
            "ValueError",
            stack_trace="Traceback ...",
            inner_failure=FailureDetails("inner", "KeyError"),
        ),
        tags={"team": "billing"},
    )


def test_round_trip_keeps_every_event_and_the_instance(tmp_path: Path) -> None:
    document = HistoryDocument.from_events("i-1", _events(), state=_state())
    path = document.write(tmp_path / "h.json")
    again = HistoryDocument.read(path)
    assert again == document
    assert again.pb_events() == _events()
    assert again.instance.runtime_status is OrchestrationStatus.FAILED
    assert again.instance.failure_details == _state().failure_details
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT
    assert data["version"] == FORMAT_VERSION
    assert data["events"][2] == {
        "eventId": 0,
        "timestamp": "2026-12-05T10:00:01Z",
        "taskScheduled": {"name": "charge"},
    }
    assert data["instance"]["runtime_status"] == "FAILED"


def test_the_client_events_and_protocol_messages_give_the_same_document() -> None:
    from_pb = HistoryDocument.from_events("i-1", _events())
    from_client = HistoryDocument.from_events("i-1", [HistoryEvent.from_pb(e) for e in _events()])
    assert from_pb.events == from_client.events
    assert from_pb.instance == InstanceInfo()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "a JSON object"),
        ('{"format": "other"}', "not a history document"),
        ('{"format": "dtask-async/history", "version": 99}', "upgrade dtask-async"),
        ('{"format": "dtask-async/history", "version": "1"}', "positive integer"),
        ('{"format": "dtask-async/history", "version": 1, "events": []}', "instance_id"),
        ('{"format": "dtask-async/history", "version": 1, "instance_id": "x"}', "'events'"),
        (
            '{"format": "dtask-async/history", "version": 1, "instance_id": "x",'
            ' "events": [{"eventId": 1, "bogus": {}}]}',
            r"events\[0\] is not a history event",
        ),
        (
            '{"format": "dtask-async/history", "version": 1, "instance_id": "x",'
            ' "events": [{"eventId": 1}]}',
            "no event type",
        ),
        (
            '{"format": "dtask-async/history", "version": 1, "instance_id": "x",'
            ' "events": [], "instance": {"runtime_status": "DONE"}}',
            "not one of",
        ),
    ],
)
def test_what_is_not_a_document_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(HistoryFormatError, match=message):
        HistoryDocument.from_json(text)


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(HistoryFormatError, match=r"broken\.json"):
        HistoryDocument.read(path)


def test_history_event_to_pb_refuses_unknown_kinds() -> None:
    event = HistoryEvent(event_id=1, timestamp=T0, kind="nonsense", data={})
    with pytest.raises(ValueError, match="not a history event type"):
        event.to_pb()
