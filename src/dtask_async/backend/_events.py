"""History events the backend writes, and time in integer microseconds.

Shapes follow the protocol as workers replay it: an event that answers an action carries
the action's id as ``eventId`` (``taskScheduled``, ``timerCreated``, ``eventSent``,
``subOrchestrationInstanceCreated``, ``executionCompleted``); every other event has
``eventId = -1`` and refers to the action through its own field (``taskScheduledId``,
``timerId``). Every event the backend creates is stamped with the current time; workers
read ``orchestratorStarted.timestamp`` as the orchestration's current time.
"""

from __future__ import annotations

import time

from .._proto import StringValue, Timestamp, pb

__all__ = (
    "TERMINAL_STATUSES",
    "entity_lock_granted",
    "entity_operation_completed",
    "entity_operation_failed",
    "entity_operation_signaled",
    "event_kind",
    "event_raised",
    "event_sent",
    "execution_completed",
    "execution_rewound",
    "execution_started",
    "execution_suspended_or_resumed",
    "execution_terminated",
    "now_us",
    "orchestrator_completed",
    "orchestrator_started",
    "status_name",
    "sub_orchestration_completed",
    "sub_orchestration_created",
    "sub_orchestration_failed",
    "task_completed",
    "task_failed",
    "task_scheduled",
    "timer_created",
    "timer_fired",
    "ts",
    "us_of",
)

TERMINAL_STATUSES = frozenset(
    {
        pb.ORCHESTRATION_STATUS_COMPLETED,
        pb.ORCHESTRATION_STATUS_FAILED,
        pb.ORCHESTRATION_STATUS_TERMINATED,
        pb.ORCHESTRATION_STATUS_CANCELED,
    }
)

_STATUS_NAMES = {
    value: name.removeprefix("ORCHESTRATION_STATUS_")
    for name, value in pb.OrchestrationStatus.items()
}


def status_name(status: int) -> str:
    """``COMPLETED`` for the protocol number of COMPLETED, and so on."""
    return _STATUS_NAMES.get(status, str(status))


def now_us() -> int:
    """Wall-clock time in microseconds since the epoch."""
    return time.time_ns() // 1000


def ts(us: int) -> Timestamp:
    """A ``Timestamp`` for ``us`` microseconds since the epoch."""
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def us_of(stamp: Timestamp) -> int:
    """Microseconds since the epoch of a ``Timestamp``."""
    return stamp.seconds * 1_000_000 + stamp.nanos // 1000


def event_kind(event: pb.HistoryEvent) -> str:
    """The name of the event's ``eventType`` field (``"taskCompleted"``, ...)."""
    return event.WhichOneof("eventType") or ""


def _event(at_us: int, event_id: int = -1) -> pb.HistoryEvent:
    return pb.HistoryEvent(eventId=event_id, timestamp=ts(at_us))


def orchestrator_started(at_us: int) -> pb.HistoryEvent:
    event = _event(at_us)
    event.orchestratorStarted.SetInParent()
    return event


def orchestrator_completed(at_us: int) -> pb.HistoryEvent:
    event = _event(at_us)
    event.orchestratorCompleted.SetInParent()
    return event


def execution_started(
    at_us: int,
    *,
    name: str,
    instance_id: str,
    execution_id: str,
    version: StringValue | None,
    input: StringValue | None,
    parent: pb.ParentInstanceInfo | None,
    scheduled_start: Timestamp | None,
    trace_context: pb.TraceContext | None,
    tags: dict[str, str] | None,
) -> pb.HistoryEvent:
    event = _event(at_us)
    started = event.executionStarted
    started.name = name
    started.orchestrationInstance.instanceId = instance_id
    started.orchestrationInstance.executionId.value = execution_id
    if version is not None:
        started.version.CopyFrom(version)
    if input is not None:
        started.input.CopyFrom(input)
    if parent is not None:
        started.parentInstance.CopyFrom(parent)
    if scheduled_start is not None:
        started.scheduledStartTimestamp.CopyFrom(scheduled_start)
    if trace_context is not None:
        started.parentTraceContext.CopyFrom(trace_context)
    if tags:
        started.tags.update(tags)
    return event


def execution_completed(
    at_us: int,
    event_id: int,
    status: int,
    result: StringValue | None,
    failure: pb.TaskFailureDetails | None,
) -> pb.HistoryEvent:
    event = _event(at_us, event_id)
    completed = event.executionCompleted
    completed.orchestrationStatus = status  # type: ignore[assignment]
    if result is not None:
        completed.result.CopyFrom(result)
    if failure is not None:
        completed.failureDetails.CopyFrom(failure)
    return event


def execution_terminated(at_us: int, output: StringValue | None, recurse: bool) -> pb.HistoryEvent:
    event = _event(at_us)
    terminated = event.executionTerminated
    terminated.recurse = recurse
    if output is not None:
        terminated.input.CopyFrom(output)
    return event


def execution_suspended_or_resumed(
    at_us: int, *, suspend: bool, reason: StringValue | None
) -> pb.HistoryEvent:
    event = _event(at_us)
    body = event.executionSuspended if suspend else event.executionResumed
    body.SetInParent()
    if reason is not None:
        body.input.CopyFrom(reason)
    return event


def execution_rewound(
    at_us: int, reason: StringValue | None, parent_execution_id: str | None
) -> pb.HistoryEvent:
    event = _event(at_us)
    rewound = event.executionRewound
    rewound.SetInParent()
    if reason is not None:
        rewound.reason.CopyFrom(reason)
    if parent_execution_id is not None:
        rewound.parentExecutionId.value = parent_execution_id
    return event


def event_raised(at_us: int, name: str, input: StringValue | None) -> pb.HistoryEvent:
    event = _event(at_us)
    event.eventRaised.name = name
    if input is not None:
        event.eventRaised.input.CopyFrom(input)
    return event


def event_sent(
    at_us: int, event_id: int, instance_id: str, name: str, input: StringValue | None
) -> pb.HistoryEvent:
    event = _event(at_us, event_id)
    sent = event.eventSent
    sent.instanceId = instance_id
    sent.name = name
    if input is not None:
        sent.input.CopyFrom(input)
    return event


def task_scheduled(at_us: int, event_id: int, action: pb.ScheduleTaskAction) -> pb.HistoryEvent:
    event = _event(at_us, event_id)
    scheduled = event.taskScheduled
    scheduled.name = action.name
    if action.HasField("version"):
        scheduled.version.CopyFrom(action.version)
    if action.HasField("input"):
        scheduled.input.CopyFrom(action.input)
    if action.HasField("parentTraceContext"):
        scheduled.parentTraceContext.CopyFrom(action.parentTraceContext)
    if action.tags:
        scheduled.tags.update(action.tags)
    return event


def task_completed(at_us: int, task_id: int, result: StringValue | None) -> pb.HistoryEvent:
    event = _event(at_us)
    event.taskCompleted.taskScheduledId = task_id
    if result is not None:
        event.taskCompleted.result.CopyFrom(result)
    return event


def task_failed(at_us: int, task_id: int, failure: pb.TaskFailureDetails) -> pb.HistoryEvent:
    event = _event(at_us)
    event.taskFailed.taskScheduledId = task_id
    event.taskFailed.failureDetails.CopyFrom(failure)
    return event


def timer_created(at_us: int, event_id: int, fire_at: Timestamp) -> pb.HistoryEvent:
    event = _event(at_us, event_id)
    event.timerCreated.fireAt.CopyFrom(fire_at)
    return event


def timer_fired(at_us: int, timer_id: int, fire_at: Timestamp) -> pb.HistoryEvent:
    event = _event(at_us)
    event.timerFired.timerId = timer_id
    event.timerFired.fireAt.CopyFrom(fire_at)
    return event


def sub_orchestration_created(
    at_us: int, event_id: int, instance_id: str, action: pb.CreateSubOrchestrationAction
) -> pb.HistoryEvent:
    event = _event(at_us, event_id)
    created = event.subOrchestrationInstanceCreated
    created.instanceId = instance_id
    created.name = action.name
    if action.HasField("version"):
        created.version.CopyFrom(action.version)
    if action.HasField("input"):
        created.input.CopyFrom(action.input)
    if action.HasField("parentTraceContext"):
        created.parentTraceContext.CopyFrom(action.parentTraceContext)
    if action.tags:
        created.tags.update(action.tags)
    return event


def sub_orchestration_completed(
    at_us: int, task_id: int, result: StringValue | None
) -> pb.HistoryEvent:
    event = _event(at_us)
    event.subOrchestrationInstanceCompleted.taskScheduledId = task_id
    if result is not None:
        event.subOrchestrationInstanceCompleted.result.CopyFrom(result)
    return event


def sub_orchestration_failed(
    at_us: int, task_id: int, failure: pb.TaskFailureDetails
) -> pb.HistoryEvent:
    event = _event(at_us)
    event.subOrchestrationInstanceFailed.taskScheduledId = task_id
    event.subOrchestrationInstanceFailed.failureDetails.CopyFrom(failure)
    return event


def entity_operation_signaled(
    at_us: int,
    *,
    request_id: str,
    operation: str,
    target: str,
    input: StringValue | None,
    scheduled_time: Timestamp | None,
) -> pb.HistoryEvent:
    """The message a signal puts in an entity's queue."""
    event = _event(at_us)
    signaled = event.entityOperationSignaled
    signaled.requestId = request_id
    signaled.operation = operation
    signaled.targetInstanceId.value = target
    if input is not None:
        signaled.input.CopyFrom(input)
    if scheduled_time is not None:
        signaled.scheduledTime.CopyFrom(scheduled_time)
    return event


def entity_operation_completed(
    at_us: int, request_id: str, output: StringValue | None
) -> pb.HistoryEvent:
    event = _event(at_us)
    event.entityOperationCompleted.requestId = request_id
    if output is not None:
        event.entityOperationCompleted.output.CopyFrom(output)
    return event


def entity_operation_failed(
    at_us: int, request_id: str, failure: pb.TaskFailureDetails
) -> pb.HistoryEvent:
    event = _event(at_us)
    event.entityOperationFailed.requestId = request_id
    event.entityOperationFailed.failureDetails.CopyFrom(failure)
    return event


def entity_lock_granted(at_us: int, critical_section_id: str) -> pb.HistoryEvent:
    event = _event(at_us)
    event.entityLockGranted.criticalSectionId = critical_section_id
    return event
