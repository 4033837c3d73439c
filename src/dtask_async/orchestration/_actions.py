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
    "call_entity",
    "complete_orchestration",
    "create_sub_orchestration",
    "create_timer",
    "describe_action",
    "describe_record",
    "lock_entities",
    "mismatch",
    "schedule_task",
    "send_event",
    "signal_entity",
    "unlock_entity",
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


# Entity messages. Each carries, as its ``requestId`` or ``criticalSectionId``, a
# name-based UUID from ``ctx.new_uuid()``, so replays produce the same ids.


def call_entity(
    id: int,
    request_id: str,
    target: str,
    operation: str,
    encoded_input: str | None,
    parent_instance_id: str,
    parent_execution_id: str | None,
) -> pb.OrchestratorAction:
    """A ``SendEntityMessage`` action calling an entity operation (a response is expected)."""
    action = pb.OrchestratorAction(id=id)
    called = action.sendEntityMessage.entityOperationCalled
    called.requestId = request_id
    called.operation = operation
    called.targetInstanceId.value = target
    called.parentInstanceId.value = parent_instance_id
    if parent_execution_id is not None:
        called.parentExecutionId.value = parent_execution_id
    if encoded_input is not None:
        called.input.value = encoded_input
    return action


def signal_entity(
    id: int,
    request_id: str,
    target: str,
    operation: str,
    encoded_input: str | None,
    scheduled_time: datetime | None,
) -> pb.OrchestratorAction:
    """A ``SendEntityMessage`` action signaling an entity operation (no response)."""
    action = pb.OrchestratorAction(id=id)
    signaled = action.sendEntityMessage.entityOperationSignaled
    signaled.requestId = request_id
    signaled.operation = operation
    signaled.targetInstanceId.value = target
    if encoded_input is not None:
        signaled.input.value = encoded_input
    if scheduled_time is not None:
        signaled.scheduledTime.CopyFrom(to_timestamp(scheduled_time))
    return action


def lock_entities(
    id: int, critical_section_id: str, lock_set: list[str], parent_instance_id: str
) -> pb.OrchestratorAction:
    """A ``SendEntityMessage`` action requesting locks on ``lock_set``.

    The backend takes the locks one entity at a time in ``lock_set`` order,
    starting at ``position`` 0 (the first entity is the message's target), and
    answers with ``EntityLockGranted`` once all are held.
    """
    action = pb.OrchestratorAction(id=id)
    requested = action.sendEntityMessage.entityLockRequested
    requested.criticalSectionId = critical_section_id
    requested.lockSet.extend(lock_set)
    requested.position = 0
    requested.parentInstanceId.value = parent_instance_id
    return action


def unlock_entity(
    id: int, critical_section_id: str, target: str, parent_instance_id: str
) -> pb.OrchestratorAction:
    """A ``SendEntityMessage`` action releasing one entity's lock."""
    action = pb.OrchestratorAction(id=id)
    unlock = action.sendEntityMessage.entityUnlockSent
    unlock.criticalSectionId = critical_section_id
    unlock.targetInstanceId.value = target
    unlock.parentInstanceId.value = parent_instance_id
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
        return _describe_entity_message(action.sendEntityMessage)
    return str(kind)


def _describe_entity_message(message: pb.SendEntityMessageAction) -> str:
    kind = message.WhichOneof("EntityMessageType")
    if kind == "entityOperationCalled":
        called = message.entityOperationCalled
        return f"call_entity {called.operation!r} on {called.targetInstanceId.value!r}"
    if kind == "entityOperationSignaled":
        signaled = message.entityOperationSignaled
        return f"signal_entity {signaled.operation!r} to {signaled.targetInstanceId.value!r}"
    if kind == "entityLockRequested":
        return f"lock_entities {list(message.entityLockRequested.lockSet)}"
    if kind == "entityUnlockSent":
        return f"entity unlock of {message.entityUnlockSent.targetInstanceId.value!r}"
    return f"SendEntityMessage ({kind})"


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
    if kind in _ENTITY_RECORDS:
        message = pb.SendEntityMessageAction()
        getattr(message, kind).CopyFrom(getattr(event, kind))
        return _describe_entity_message(message)
    return f"SendEntityMessage ({kind})"


_ENTITY_RECORDS = frozenset(
    {"entityOperationCalled", "entityOperationSignaled", "entityLockRequested", "entityUnlockSent"}
)


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
    if kind in _ENTITY_RECORDS:
        message = action.sendEntityMessage
        if message.WhichOneof("EntityMessageType") != kind:
            return True
        # Ids (requestId, criticalSectionId) are not compared: they are derived
        # from the orchestration's clock and some backends assign their own.
        if kind == "entityOperationCalled":
            ours, recorded = message.entityOperationCalled, event.entityOperationCalled
            return (ours.targetInstanceId.value, ours.operation) != (
                recorded.targetInstanceId.value,
                recorded.operation,
            )
        if kind == "entityOperationSignaled":
            ours_s, recorded_s = message.entityOperationSignaled, event.entityOperationSignaled
            return (ours_s.targetInstanceId.value, ours_s.operation) != (
                recorded_s.targetInstanceId.value,
                recorded_s.operation,
            )
        if kind == "entityLockRequested":
            return list(message.entityLockRequested.lockSet) != list(
                event.entityLockRequested.lockSet
            )
        # Unlocks are sent together when a critical section ends; SDKs differ in
        # their order (the official Python SDK's depends on the calls made), so
        # any unlock record confirms any unlock action.
        return False
    return False
