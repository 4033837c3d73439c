"""Small builders of history events, and a harness that plays the backend's part.

The harness runs every episode twice — a full replay on a fresh runner and an
incremental ``continue_with`` on a long-lived one — and asserts both give the
same result, so every scenario test also checks replay equivalence.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from dtask_async._naming import name_of
from dtask_async._proto import pb
from dtask_async._protoutil import to_timestamp
from dtask_async.orchestration import EpisodeResult, OrchestrationRunner

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)

COMPLETED = pb.ORCHESTRATION_STATUS_COMPLETED
FAILED = pb.ORCHESTRATION_STATUS_FAILED
TERMINATED = pb.ORCHESTRATION_STATUS_TERMINATED
CONTINUED_AS_NEW = pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW


def _event(event_id: int = -1, at: datetime | None = None) -> pb.HistoryEvent:
    event = pb.HistoryEvent(eventId=event_id)
    event.timestamp.CopyFrom(to_timestamp(at or T0))
    return event


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def orchestrator_started(at: datetime) -> pb.HistoryEvent:
    event = _event(at=at)
    event.orchestratorStarted.SetInParent()
    return event


def orchestrator_completed() -> pb.HistoryEvent:
    event = _event()
    event.orchestratorCompleted.SetInParent()
    return event


def execution_started(
    name: str,
    input: Any = None,
    *,
    instance_id: str = "inst",
    execution_id: str = "exec-1",
    version: str | None = None,
    parent_instance_id: str | None = None,
    tags: dict[str, str] | None = None,
    raw_input: str | None = None,
) -> pb.HistoryEvent:
    event = _event()
    started = event.executionStarted
    started.name = name
    started.orchestrationInstance.instanceId = instance_id
    started.orchestrationInstance.executionId.value = execution_id
    text = raw_input if raw_input is not None else _json(input)
    if text is not None:
        started.input.value = text
    if version is not None:
        started.version.value = version
    if parent_instance_id is not None:
        started.parentInstance.orchestrationInstance.instanceId = parent_instance_id
        started.parentInstance.taskScheduledId = 1
    if tags:
        started.tags.update(tags)
    return event


def task_scheduled(id: int, name: str) -> pb.HistoryEvent:
    event = _event(id)
    event.taskScheduled.name = name
    return event


def task_completed(id: int, result: Any = None, *, raw: str | None = None) -> pb.HistoryEvent:
    event = _event()
    event.taskCompleted.taskScheduledId = id
    text = raw if raw is not None else _json(result)
    if text is not None:
        event.taskCompleted.result.value = text
    return event


def _failure(
    details: pb.TaskFailureDetails, message: str, error_type: str, retriable: bool
) -> None:
    details.errorMessage = message
    details.errorType = error_type
    details.stackTrace.value = "Traceback: somewhere"
    details.isNonRetriable = not retriable


def task_failed(
    id: int, message: str = "boom", error_type: str = "ValueError", *, retriable: bool = True
) -> pb.HistoryEvent:
    event = _event()
    event.taskFailed.taskScheduledId = id
    _failure(event.taskFailed.failureDetails, message, error_type, retriable)
    return event


def timer_created(id: int, fire_at: datetime) -> pb.HistoryEvent:
    event = _event(id)
    event.timerCreated.fireAt.CopyFrom(to_timestamp(fire_at))
    return event


def timer_fired(id: int, fire_at: datetime) -> pb.HistoryEvent:
    event = _event()
    event.timerFired.timerId = id
    event.timerFired.fireAt.CopyFrom(to_timestamp(fire_at))
    return event


def sub_created(id: int, name: str, instance_id: str) -> pb.HistoryEvent:
    event = _event(id)
    event.subOrchestrationInstanceCreated.name = name
    event.subOrchestrationInstanceCreated.instanceId = instance_id
    return event


def sub_completed(id: int, result: Any = None) -> pb.HistoryEvent:
    event = _event()
    event.subOrchestrationInstanceCompleted.taskScheduledId = id
    text = _json(result)
    if text is not None:
        event.subOrchestrationInstanceCompleted.result.value = text
    return event


def sub_failed(
    id: int, message: str = "child broke", error_type: str = "KeyError"
) -> pb.HistoryEvent:
    event = _event()
    event.subOrchestrationInstanceFailed.taskScheduledId = id
    _failure(event.subOrchestrationInstanceFailed.failureDetails, message, error_type, True)
    return event


def event_raised(name: str, data: Any = None, at: datetime | None = None) -> pb.HistoryEvent:
    event = _event(at=at)
    event.eventRaised.name = name
    text = _json(data)
    if text is not None:
        event.eventRaised.input.value = text
    return event


def event_sent(id: int, instance_id: str, name: str) -> pb.HistoryEvent:
    event = _event(id)
    event.eventSent.instanceId = instance_id
    event.eventSent.name = name
    return event


def suspended() -> pb.HistoryEvent:
    event = _event()
    event.executionSuspended.SetInParent()
    return event


def resumed() -> pb.HistoryEvent:
    event = _event()
    event.executionResumed.SetInParent()
    return event


def terminated(output: Any = None) -> pb.HistoryEvent:
    event = _event()
    event.executionTerminated.SetInParent()
    text = _json(output)
    if text is not None:
        event.executionTerminated.input.value = text
    return event


def record(actions: Iterable[pb.OrchestratorAction]) -> list[pb.HistoryEvent]:
    """The history events a backend records for the actions it carries out."""
    events: list[pb.HistoryEvent] = []
    for action in actions:
        kind = action.WhichOneof("orchestratorActionType")
        if kind == "scheduleTask":
            events.append(task_scheduled(action.id, action.scheduleTask.name))
        elif kind == "createTimer":
            event = _event(action.id)
            event.timerCreated.fireAt.CopyFrom(action.createTimer.fireAt)
            events.append(event)
        elif kind == "createSubOrchestration":
            create = action.createSubOrchestration
            events.append(sub_created(action.id, create.name, create.instanceId))
        elif kind == "sendEvent":
            send = action.sendEvent
            events.append(event_sent(action.id, send.instance.instanceId, send.name))
    return events


# -- reading results ----------------------------------------------------------------


def summary(result: EpisodeResult) -> list[tuple[Any, ...]]:
    """Actions as short tuples: ``(id, "scheduleTask", name)`` and the like."""
    out: list[tuple[Any, ...]] = []
    for action in result.actions:
        kind = action.WhichOneof("orchestratorActionType")
        if kind == "scheduleTask":
            out.append((action.id, kind, action.scheduleTask.name))
        elif kind == "createTimer":
            out.append((action.id, kind, action.createTimer.fireAt.ToJsonString()))
        elif kind == "createSubOrchestration":
            out.append(
                (
                    action.id,
                    kind,
                    action.createSubOrchestration.name,
                    action.createSubOrchestration.instanceId,
                )
            )
        elif kind == "sendEvent":
            out.append(
                (action.id, kind, action.sendEvent.instance.instanceId, action.sendEvent.name)
            )
        else:
            out.append((action.id, kind))
    return out


def ts(moment: datetime) -> str:
    """A datetime as ``summary`` shows timer times."""
    return to_timestamp(moment).ToJsonString()


def completion(result: EpisodeResult) -> pb.CompleteOrchestrationAction:
    """The completion action; fails the test when there is none."""
    found = [a for a in result.actions if a.HasField("completeOrchestration")]
    assert len(found) == 1, f"expected one completion action, got {summary(result)}"
    assert result.is_complete
    return found[0].completeOrchestration


def output(result: EpisodeResult) -> Any:
    """The decoded result of a successfully completed orchestration."""
    complete = completion(result)
    assert complete.orchestrationStatus == COMPLETED, (
        f"status {complete.orchestrationStatus}: {complete.failureDetails}"
    )
    return json.loads(complete.result.value) if complete.HasField("result") else None


def failure(result: EpisodeResult) -> pb.TaskFailureDetails:
    """The failure details of a failed orchestration."""
    complete = completion(result)
    assert complete.orchestrationStatus == FAILED, f"status {complete.orchestrationStatus}"
    return complete.failureDetails


def action_input(result: EpisodeResult, id: int) -> Any:
    for action in result.actions:
        if action.id == id:
            kind = action.WhichOneof("orchestratorActionType")
            message = getattr(action, kind)
            field = "data" if kind == "sendEvent" else "input"
            value = getattr(message, field)
            return json.loads(value.value) if message.HasField(field) else None
    raise AssertionError(f"no action {id} in {summary(result)}")


class Harness:
    """Plays the backend: starts an instance, feeds work items, records actions.

    Each ``step`` runs the episode as a full replay on a fresh runner and, when
    ``incremental`` is on, also through ``continue_with`` on a long-lived runner,
    asserting the two results are equal.
    """

    def __init__(
        self,
        *functions: Callable[..., Any],
        instance_id: str = "inst",
        incremental: bool = True,
        start: datetime = T0,
    ) -> None:
        self.registry = {name_of(fn): fn for fn in functions}
        self.instance_id = instance_id
        self.incremental = incremental
        self.now = start
        self.past: list[pb.HistoryEvent] = []
        self.runner = OrchestrationRunner(instance_id, self.registry.get)
        self.fallbacks = 0
        self.results: list[EpisodeResult] = []

    def lookup(self, name: str) -> Callable[..., Any] | None:
        return self.registry.get(name)

    def start(
        self, orchestrator: Callable[..., Any] | str, input: Any = None, **kwargs: Any
    ) -> EpisodeResult:
        name = orchestrator if isinstance(orchestrator, str) else name_of(orchestrator)
        return self.step(
            execution_started(name, input, instance_id=self.instance_id, **kwargs),
            advance=timedelta(0),
        )

    def step(
        self, *events: pb.HistoryEvent, advance: timedelta = timedelta(seconds=1)
    ) -> EpisodeResult:
        self.now += advance
        new = [orchestrator_started(self.now), *events]
        full = OrchestrationRunner(self.instance_id, self.lookup).execute(self.past, new)
        if self.incremental:
            incremental = self.runner.continue_with(self.past, new) if self.past else None
            if incremental is None:
                self.fallbacks += 1 if self.past else 0
                self.runner = OrchestrationRunner(self.instance_id, self.lookup)
                incremental = self.runner.execute(self.past, new)
            assert incremental == full, (
                f"incremental {summary(incremental)} != full replay {summary(full)}"
            )
        self.past += [*new, *record(full.actions), orchestrator_completed()]
        self.results.append(full)
        return full
