"""Applying a worker's ``OrchestratorResponse``: one orchestration episode.

The events sent to the worker join the history, followed by one event per action
(``taskScheduled``, ``timerCreated``, ``subOrchestrationInstanceCreated``, ``eventSent``,
and for entity messages an event of the message's own kind), then
``orchestratorCompleted`` and, when the orchestration ended, ``executionCompleted``.
Each action also has its effect: an activity work item, a durable timer that later puts
``timerFired`` in the inbox, a child instance whose end is reported back to this one,
an ``eventRaised`` in another instance's inbox, a message to an entity (see
``_entities``).

Continue-as-new starts a new execution (new execution id, empty history) whose inbox is
``executionStarted``, the carried-over events, then whatever arrived during the episode.
A rewind replaces the history with the one the worker rebuilt and re-arms the work the
rebuilt history still waits for.
"""

from __future__ import annotations

import logging
import uuid

from .._proto import StringValue, pb
from . import _events as ev
from ._hub import COMPLETED, FAILED, PENDING, RUNNING, TERMINATED, Hub
from ._model import Instance, OrchestrationLease, Txn
from ._validation import RpcFailure, check_instance_id

__all__ = ("apply_episode",)

logger = logging.getLogger(__name__)

CONTINUED_AS_NEW = pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW


def _optional(message: object, field: str) -> StringValue | None:
    if message.HasField(field):  # type: ignore[attr-defined]
        value: StringValue = getattr(message, field)
        return value
    return None


def _failure(error_type: str, message: str) -> pb.TaskFailureDetails:
    return pb.TaskFailureDetails(errorType=error_type, errorMessage=message, isNonRetriable=True)


def apply_episode(
    hub: Hub, lease: OrchestrationLease, response: pb.OrchestratorResponse, txn: Txn, now: int
) -> None:
    """Apply ``response`` to the instance of ``lease`` (whose lease has just ended)."""
    instance = lease.instance
    hub.trim_inbox(instance, lease.upto_seq, txn)
    state = instance.state
    if response.HasField("customStatus"):
        state.customStatus.CopyFrom(response.customStatus)
    else:
        state.ClearField("customStatus")

    actions = list(response.actions)
    rewind = next((a for a in actions if a.HasField("rewindOrchestration")), None)
    if rewind is not None:
        _apply_rewind(hub, instance, rewind.rewindOrchestration, txn, now)
        return

    complete: pb.OrchestratorAction | None = None
    for action in actions:
        if action.HasField("completeOrchestration"):
            complete = action
    status = complete.completeOrchestration.orchestrationStatus if complete else None
    problem: str | None = None
    if status is not None and status not in ev.TERMINAL_STATUSES and status != CONTINUED_AS_NEW:
        problem = (
            "the worker completed the orchestration with status "
            f"{ev.status_name(status)}, which is not a final status"
        )
    ending = status is not None
    silenced = status == TERMINATED

    events = list(lease.new_events)
    for action in actions:
        kind = action.WhichOneof("orchestratorActionType")
        if kind == "scheduleTask":
            events.append(ev.task_scheduled(now, action.id, action.scheduleTask))
            if not ending:
                hub.schedule_activity(instance, action.id, action.scheduleTask, txn)
        elif kind == "createTimer":
            events.append(ev.timer_created(now, action.id, action.createTimer.fireAt))
            if not ending:
                hub.schedule_timer(instance, action.id, action.createTimer.fireAt, txn, now)
        elif kind == "createSubOrchestration":
            create = action.createSubOrchestration
            child_id = create.instanceId or f"{instance.instance_id}:{action.id:04x}"
            events.append(ev.sub_orchestration_created(now, action.id, child_id, create))
            if not silenced:
                _create_child(hub, instance, action.id, create, child_id, txn, now)
        elif kind == "sendEvent":
            send = action.sendEvent
            target_id = send.instance.instanceId
            data = _optional(send, "data")
            events.append(ev.event_sent(now, action.id, target_id, send.name, data))
            if not silenced:
                _send_event(hub, instance, target_id, send.name, data, txn, now)
        elif kind == "terminateOrchestration":
            terminate = action.terminateOrchestration
            target = hub.instances.get(terminate.instanceId)
            if target is not None and target is not instance:
                hub.terminate(target, _optional(terminate, "reason"), terminate.recurse, txn, now)
        elif kind == "sendEntityMessage":
            record, invalid = hub.entities.from_orchestration(
                instance.instance_id, instance.execution_id, action, txn, now, silenced=silenced
            )
            if record is not None:
                events.append(record)
            problem = problem or invalid
        elif kind != "completeOrchestration":
            problem = problem or f"the worker returned an unknown action (type {kind!r})"

    if problem is not None and status not in (FAILED, TERMINATED):
        logger.warning("orchestration %r fails: %s", instance.instance_id, problem)
        status = FAILED
        complete = pb.OrchestratorAction(id=-1)
        complete.completeOrchestration.orchestrationStatus = FAILED
        complete.completeOrchestration.failureDetails.CopyFrom(
            _failure("UnsupportedOperation", problem)
        )

    if complete is not None and status == CONTINUED_AS_NEW:
        _continue_as_new(hub, instance, complete.completeOrchestration, txn, now)
        return

    events.append(ev.orchestrator_completed(now))
    if complete is not None and status is not None:
        done = complete.completeOrchestration
        result = _optional(done, "result")
        failure = done.failureDetails if done.HasField("failureDetails") else None
        events.append(ev.execution_completed(now, complete.id, status, result, failure))
        hub.append_history(instance, events, txn)
        hub.finish(instance, status, result, failure, txn, now)
        return
    hub.append_history(instance, events, txn)
    if instance.status == PENDING:
        hub.set_status(instance, RUNNING, txn, now)
    else:
        hub.touch(instance, txn, now)


def _create_child(
    hub: Hub,
    parent: Instance,
    task_id: int,
    action: pb.CreateSubOrchestrationAction,
    child_id: str,
    txn: Txn,
    now: int,
) -> None:
    problem: str | None = None
    try:
        check_instance_id(child_id, field="sub-orchestration instance id")
    except RpcFailure as exc:
        problem = exc.message
    existing = hub.instances.get(child_id)
    if problem is None and existing is not None and not existing.terminal:
        problem = (
            f"cannot start sub-orchestration {child_id!r}: an instance with that id already "
            f"exists with status {ev.status_name(existing.status)}"
        )
    if problem is not None:
        failure = _failure(
            "OrchestrationAlreadyExists" if existing else "InvalidInstanceId", problem
        )
        hub.enqueue(parent, ev.sub_orchestration_failed(now, task_id, failure), txn)
        return
    info = pb.ParentInstanceInfo(taskScheduledId=task_id)
    info.name.value = parent.name
    if parent.state.HasField("version"):
        info.version.CopyFrom(parent.state.version)
    info.orchestrationInstance.instanceId = parent.instance_id
    info.orchestrationInstance.executionId.value = parent.execution_id
    hub.create(
        txn,
        now,
        instance_id=child_id,
        name=action.name,
        version=_optional(action, "version"),
        input=_optional(action, "input"),
        tags=dict(action.tags),
        parent=info,
        parent_generation=parent.generation,
        trace_context=action.parentTraceContext if action.HasField("parentTraceContext") else None,
    )


def _send_event(
    hub: Hub,
    sender: Instance,
    target_id: str,
    name: str,
    data: StringValue | None,
    txn: Txn,
    now: int,
) -> None:
    target = hub.instances.get(target_id)
    if target is None or target.terminal:
        logger.info(
            "orchestration %r sent event %r to %r, which %s; the event is dropped",
            sender.instance_id,
            name,
            target_id,
            "does not exist" if target is None else "has finished",
        )
        return
    hub.enqueue(target, ev.event_raised(now, name, data), txn)


def _continue_as_new(
    hub: Hub,
    instance: Instance,
    action: pb.CompleteOrchestrationAction,
    txn: Txn,
    now: int,
) -> None:
    history = instance.history or []
    previous = next((e.executionStarted for e in history if e.HasField("executionStarted")), None)
    arrived = [event for _, event in instance.inbox]
    # Locks belong to an execution: the next one starts without any.
    hub.entities.release_owner(instance.instance_id, txn, now)
    hub.cancel_work(instance, txn)
    hub.clear_inbox(instance, txn)
    hub.reset_history(instance, txn)
    instance.generation = hub.new_generation()
    state = instance.state
    state.executionId.value = execution_id = _new_execution_id()
    new_input = _optional(action, "result")
    if new_input is not None:
        state.input.CopyFrom(new_input)
    else:
        state.ClearField("input")
    if action.HasField("newVersion"):
        state.version.CopyFrom(action.newVersion)
    for field in ("output", "failureDetails", "completedTimestamp"):
        state.ClearField(field)
    started = ev.execution_started(
        now,
        name=instance.name,
        instance_id=instance.instance_id,
        execution_id=execution_id,
        version=state.version if state.HasField("version") else None,
        input=new_input,
        parent=instance.parent,
        scheduled_start=None,
        trace_context=previous.parentTraceContext
        if previous is not None and previous.HasField("parentTraceContext")
        else None,
        tags=dict(previous.tags) if previous is not None else None,
    )
    hub.enqueue(instance, started, txn)
    for event in action.carryoverEvents:
        hub.enqueue(instance, event, txn)
    for event in arrived:
        hub.enqueue(instance, event, txn)
    if instance.status == PENDING:
        hub.set_status(instance, RUNNING, txn, now)
    else:
        hub.touch(instance, txn, now)


def _new_execution_id() -> str:
    return uuid.uuid4().hex


def _apply_rewind(
    hub: Hub,
    instance: Instance,
    action: pb.RewindOrchestrationAction,
    txn: Txn,
    now: int,
) -> None:
    new_history = list(action.newHistory)
    hub.reset_history(instance, txn)
    hub.append_history(instance, [*new_history, ev.orchestrator_completed(now)], txn)
    started = next(
        (e.executionStarted for e in new_history if e.HasField("executionStarted")), None
    )
    if started is not None and started.orchestrationInstance.HasField("executionId"):
        instance.state.executionId.CopyFrom(started.orchestrationInstance.executionId)
    reason: StringValue | None = None
    for event in reversed(new_history):
        if event.HasField("executionRewound"):
            reason = _optional(event.executionRewound, "reason")
            break
    if instance.status != RUNNING:
        hub.set_status(instance, RUNNING, txn, now)
    else:
        hub.touch(instance, txn, now)
    _rearm(hub, instance, new_history, reason, txn, now)
    # Wake the instance so the worker replays the rebuilt history and reschedules the
    # work whose failures were removed.
    hub.enqueue(instance, ev.orchestrator_started(now), txn)


def _rearm(
    hub: Hub,
    instance: Instance,
    history: list[pb.HistoryEvent],
    reason: StringValue | None,
    txn: Txn,
    now: int,
) -> None:
    """Recreate the work a rebuilt history still waits for (it may have been dropped
    while the instance was failed)."""
    tasks: dict[int, pb.TaskScheduledEvent] = {}
    timers: dict[int, pb.TimerCreatedEvent] = {}
    children: dict[int, pb.SubOrchestrationInstanceCreatedEvent] = {}
    for event in history:
        kind = ev.event_kind(event)
        if kind == "taskScheduled":
            tasks[event.eventId] = event.taskScheduled
        elif kind in ("taskCompleted", "taskFailed"):
            tasks.pop(getattr(event, kind).taskScheduledId, None)
        elif kind == "timerCreated":
            timers[event.eventId] = event.timerCreated
        elif kind == "timerFired":
            timers.pop(event.timerFired.timerId, None)
        elif kind == "subOrchestrationInstanceCreated":
            children[event.eventId] = event.subOrchestrationInstanceCreated
        elif kind in ("subOrchestrationInstanceCompleted", "subOrchestrationInstanceFailed"):
            children.pop(getattr(event, kind).taskScheduledId, None)
    for task_id, scheduled in tasks.items():
        if task_id not in instance.activities:
            hub.schedule_activity(instance, task_id, scheduled, txn)
    armed = {record.event.timerFired.timerId for record in instance.timers}
    for timer_id, timer in timers.items():
        if timer_id not in armed:
            hub.schedule_timer(instance, timer_id, timer.fireAt, txn, now)
    for task_id, created in children.items():
        child = hub.instances.get(created.instanceId)
        if child is None:
            action = pb.CreateSubOrchestrationAction(
                instanceId=created.instanceId, name=created.name
            )
            for field in ("version", "input", "parentTraceContext"):
                if created.HasField(field):
                    getattr(action, field).CopyFrom(getattr(created, field))
            action.tags.update(created.tags)
            _create_child(hub, instance, task_id, action, created.instanceId, txn, now)
        elif (
            child.parent_id != instance.instance_id
            or child.parent_generation != instance.generation
        ):
            continue
        elif child.status == FAILED:
            assert child.parent is not None
            child.parent.orchestrationInstance.executionId.value = instance.execution_id
            hub.rewind(child, reason, instance.execution_id, txn, now)
        elif child.status == COMPLETED:
            result = child.state.output if child.state.HasField("output") else None
            hub.enqueue(instance, ev.sub_orchestration_completed(now, task_id, result), txn)
        elif child.terminal:
            failure = _failure(
                "OrchestrationTerminated",
                f"sub-orchestration {child.instance_id!r} ended with status "
                f"{ev.status_name(child.status)}",
            )
            hub.enqueue(instance, ev.sub_orchestration_failed(now, task_id, failure), txn)
