"""Orchestrator actions: building them, and matching them with their history records.

Every action but the completion carries a sequence number (its ``id``). When the
backend carries an action out it records a history event with ``eventId`` equal
to that number (``TaskScheduled`` for ``ScheduleTask`` ...). On replay the code
must produce the same action for the same number; :func:`mismatch` says how the
two differ when they do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from .._models import FailureDetails
from .._proto import pb
from .._protoutil import failure_to_pb, to_timestamp

__all__ = (
    "RECORD_KINDS",
    "complete_orchestration",
    "create_sub_orchestration",
    "create_timer",
    "describe_action",
    "describe_record",
    "mismatch",
    "schedule_task",
    "send_event",
)

RECORD_KINDS: Mapping[str, str] = {
    "taskScheduled": "scheduleTask",
    "timerCreated": "createTimer",
    "subOrchestrationInstanceCreated": "createSubOrchestration",
    "eventSent": "sendEvent",
    "entityOperationSignaled": "sendEntityMessage",
    "entityOperationCalled": "sendEntityMessage",
    "entityLockRequested": "sendEntityMessage",
    "entityUnlockSent": "sendEntityMessage",
}
"""History event kinds that record one of our own actions → the action kind they record."""


def schedule_task(
    id: int, name: str, encoded_input: str | None, tags: Mapping[str, str] | None
) -> pb.OrchestratorAction:
    """A ``ScheduleTask`` action (an activity call)."""
    action = pb.OrchestratorAction(id=id)
    action.scheduleTask.name = name
    if encoded_input is not None:
        action.scheduleTask.input.value = encoded_input
    if tags:
        action.scheduleTask.tags.update(tags)
    return action


def create_timer(id: int, fire_at: datetime) -> pb.OrchestratorAction:
    """A ``CreateTimer`` action."""
    action = pb.OrchestratorAction(id=id)
    action.createTimer.fireAt.CopyFrom(to_timestamp(fire_at))
    return action


def create_sub_orchestration(
    id: int,
    name: str,
    instance_id: str,
    encoded_input: str | None,
    version: str | None,
    tags: Mapping[str, str] | None,
) -> pb.OrchestratorAction:
    """A ``CreateSubOrchestration`` action."""
    action = pb.OrchestratorAction(id=id)
    create = action.createSubOrchestration
    create.name = name
    create.instanceId = instance_id
    if encoded_input is not None:
        create.input.value = encoded_input
    if version is not None:
        create.version.value = version
    if tags:
        create.tags.update(tags)
    return action


def send_event(
    id: int, instance_id: str, name: str, encoded_data: str | None
) -> pb.OrchestratorAction:
    """A ``SendEvent`` action (an event raised on another instance)."""
    action = pb.OrchestratorAction(id=id)
    action.sendEvent.instance.instanceId = instance_id
    action.sendEvent.name = name
    if encoded_data is not None:
        action.sendEvent.data.value = encoded_data
    return action


def complete_orchestration(
    id: int,
    status: int,
    *,
    result: str | None = None,
    failure: FailureDetails | None = None,
    carryover: list[pb.HistoryEvent] | None = None,
    new_version: str | None = None,
) -> pb.OrchestratorAction:
    """A ``CompleteOrchestration`` action: completed, failed, terminated or continued-as-new."""
    action = pb.OrchestratorAction(id=id)
    complete = action.completeOrchestration
    complete.orchestrationStatus = status  # type: ignore[assignment]
    if result is not None:
        complete.result.value = result
    if failure is not None:
        complete.failureDetails.CopyFrom(failure_to_pb(failure))
    if carryover:
        complete.carryoverEvents.extend(carryover)
    if new_version is not None:
        complete.newVersion.value = new_version
    return action


def describe_action(action: pb.OrchestratorAction) -> str:
    """How a non-determinism message names an action: ``ScheduleTask 'charge'``."""
    kind = action.WhichOneof("orchestratorActionType")
    if kind == "scheduleTask":
        return f"ScheduleTask {action.scheduleTask.name!r}"
    if kind == "createTimer":
        return "CreateTimer"
    if kind == "createSubOrchestration":
        return f"CreateSubOrchestration {action.createSubOrchestration.name!r}"
    if kind == "sendEvent":
        event = action.sendEvent
        return f"SendEvent {event.name!r} to {event.instance.instanceId!r}"
    if kind == "sendEntityMessage":
        message = action.sendEntityMessage.WhichOneof("EntityMessageType")
        return f"SendEntityMessage ({message})"
    return str(kind)


def describe_record(event: pb.HistoryEvent) -> str:
    """How a non-determinism message names the action a history event records."""
    kind = event.WhichOneof("eventType")
    if kind == "taskScheduled":
        return f"ScheduleTask {event.taskScheduled.name!r}"
    if kind == "timerCreated":
        return "CreateTimer"
    if kind == "subOrchestrationInstanceCreated":
        return f"CreateSubOrchestration {event.subOrchestrationInstanceCreated.name!r}"
    if kind == "eventSent":
        return f"SendEvent {event.eventSent.name!r} to {event.eventSent.instanceId!r}"
    return f"SendEntityMessage ({kind})"


def mismatch(action: pb.OrchestratorAction, event: pb.HistoryEvent) -> bool:
    """Whether ``event`` (a record kind of :data:`RECORD_KINDS`) does *not* record ``action``."""
    kind = event.WhichOneof("eventType")
    assert kind is not None
    if action.WhichOneof("orchestratorActionType") != RECORD_KINDS[kind]:
        return True
    if kind == "taskScheduled":
        return action.scheduleTask.name != event.taskScheduled.name
    if kind == "subOrchestrationInstanceCreated":
        return action.createSubOrchestration.name != event.subOrchestrationInstanceCreated.name
    if kind == "eventSent":
        sent = event.eventSent
        return (
            action.sendEvent.instance.instanceId != sent.instanceId
            or action.sendEvent.name.casefold() != sent.name.casefold()
        )
    if kind.startswith("entity"):
        return bool(action.sendEntityMessage.WhichOneof("EntityMessageType") != kind)
    return False
