"""History builders for entity messages, and a harness that records them.

The backend records each entity message an orchestration sends as a history event
of the same kind (``entityOperationCalled`` ...) with ``eventId`` equal to the
action id and the same fields; responses come back as
``entityOperationCompleted``/``entityOperationFailed`` (by ``requestId``) and
``entityLockGranted`` (by ``criticalSectionId``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from dtask_async._proto import pb
from dtask_async.orchestration import EpisodeResult, OrchestrationRunner
from tests.unit.orchestration import history
from tests.unit.orchestration.history import (
    Harness,
    _event,
    orchestrator_completed,
    orchestrator_started,
)


def record_all(actions: Iterable[pb.OrchestratorAction]) -> list[pb.HistoryEvent]:
    """The records of every action, entity messages included, in action order."""
    events: list[pb.HistoryEvent] = []
    for action in actions:
        if action.HasField("sendEntityMessage"):
            message = action.sendEntityMessage
            kind = message.WhichOneof("EntityMessageType")
            assert kind is not None
            event = _event(action.id)
            getattr(event, kind).CopyFrom(getattr(message, kind))
            events.append(event)
        else:
            events.extend(history.record([action]))
    return events


def entity_completed(request_id: str, result: Any = None) -> pb.HistoryEvent:
    event = _event()
    event.entityOperationCompleted.requestId = request_id
    if result is not None:
        event.entityOperationCompleted.output.value = json.dumps(result)
    return event


def entity_failed(
    request_id: str, message: str = "insufficient funds", error_type: str = "ValueError"
) -> pb.HistoryEvent:
    event = _event()
    event.entityOperationFailed.requestId = request_id
    details = event.entityOperationFailed.failureDetails
    details.errorMessage = message
    details.errorType = error_type
    return event


def lock_granted(section_id: str) -> pb.HistoryEvent:
    event = _event()
    event.entityLockGranted.criticalSectionId = section_id
    return event


def entity_messages(result: EpisodeResult) -> list[tuple[Any, ...]]:
    """Entity actions as tuples: ``(id, kind, target or lockSet, operation)``."""
    out: list[tuple[Any, ...]] = []
    for action in result.actions:
        if not action.HasField("sendEntityMessage"):
            out.append((action.id, action.WhichOneof("orchestratorActionType")))
            continue
        message = action.sendEntityMessage
        kind = message.WhichOneof("EntityMessageType")
        if kind == "entityOperationCalled":
            called = message.entityOperationCalled
            out.append((action.id, "call", called.targetInstanceId.value, called.operation))
        elif kind == "entityOperationSignaled":
            signaled = message.entityOperationSignaled
            out.append((action.id, "signal", signaled.targetInstanceId.value, signaled.operation))
        elif kind == "entityLockRequested":
            out.append((action.id, "lock", list(message.entityLockRequested.lockSet)))
        else:
            out.append((action.id, "unlock", message.entityUnlockSent.targetInstanceId.value))
    return out


def message(result: EpisodeResult, id: int) -> Any:
    """The entity message of the action with ``id`` (its oneof payload)."""
    for action in result.actions:
        if action.id == id:
            entity_message = action.sendEntityMessage
            kind = entity_message.WhichOneof("EntityMessageType")
            assert kind is not None, f"action {id} is not an entity message"
            return getattr(entity_message, kind)
    raise AssertionError(f"no action {id}")


class EntityHarness(Harness):
    """:class:`Harness` whose backend also records entity messages."""

    def step(self, *events: pb.HistoryEvent, advance: Any = None) -> EpisodeResult:
        self.now += timedelta(seconds=1) if advance is None else advance
        new = [orchestrator_started(self.now), *events]
        full = OrchestrationRunner(self.instance_id, self.lookup).execute(self.past, new)
        if self.incremental:
            incremental = self.runner.continue_with(self.past, new) if self.past else None
            if incremental is None:
                self.fallbacks += 1 if self.past else 0
                self.runner = OrchestrationRunner(self.instance_id, self.lookup)
                incremental = self.runner.execute(self.past, new)
            assert incremental == full, "incremental and full replay differ"
        self.past += [*new, *record_all(full.actions), orchestrator_completed()]
        self.results.append(full)
        return full
