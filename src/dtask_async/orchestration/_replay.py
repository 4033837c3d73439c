"""One execution's replay: history events in, orchestrator code driven, actions out.

Event semantics follow the Durable Task protocol as the official SDKs apply it:

* ``OrchestratorStarted`` moves the deterministic clock.
* ``ExecutionStarted`` looks the orchestrator up and starts it.
* Records of our own actions (``TaskScheduled``, ``TimerCreated``,
  ``SubOrchestrationInstanceCreated``, ``EventSent``, entity messages) confirm the
  action with the same sequence number, or prove the code changed
  (:class:`~dtask_async.NonDeterminismError`).
* Completions (``TaskCompleted`` ... ``TimerFired``, ``EventRaised``, and the
  entity responses ``EntityOperationCompleted``/``Failed`` by request id and
  ``EntityLockGranted`` by critical-section id) complete tasks, then the code
  runs on until it waits for something unfinished.
* While suspended, completions and raised events are held back and applied on
  resume. Records, clock events, resume and terminate are not held: they are
  not inputs to the code.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any

from .._errors import (
    DurableTaskError,
    EntityOperationFailedError,
    NonDeterminismError,
    OrchestrationStateError,
    PayloadError,
    TaskFailedError,
)
from .._models import FailureDetails
from .._proto import pb
from .._protoutil import failure_from_exception, failure_from_pb, to_datetime
from .._serialization import decode, encode, input_type_of
from . import _actions
from ._context import ACTIVITY, SUB_ORCHESTRATION, Call, OrchestrationContext, Timer
from ._decorators import takes_input
from ._entities import EntityCall
from ._tasks import Task

__all__ = ("HELD_WHILE_SUSPENDED", "Replay", "Lookup")

logger = logging.getLogger(__name__)

Lookup = Callable[[str], Callable[..., Any] | None]
_Driver = Generator[Any, Any, Any] | Coroutine[Any, Any, Any]

HELD_WHILE_SUSPENDED = frozenset(
    {
        "taskCompleted",
        "taskFailed",
        "subOrchestrationInstanceCompleted",
        "subOrchestrationInstanceFailed",
        "timerFired",
        "eventRaised",
        "entityOperationCompleted",
        "entityOperationFailed",
        "entityLockGranted",
    }
)

_IGNORED = frozenset(
    {
        "orchestratorCompleted",
        "executionCompleted",
        "genericEvent",
        "historyState",
        "continueAsNew",
        "executionRewound",
    }
)

NOT_REGISTERED_ERROR_TYPE = "OrchestratorNotRegisteredError"


class Replay:
    """The engine state of one orchestration execution."""

    def __init__(self, ctx: OrchestrationContext, lookup: Lookup) -> None:
        self.ctx = ctx
        self._lookup = lookup
        self._driver: _Driver | None = None
        self._is_coroutine = False
        self._awaiting: Task[Any] | None = None
        self._suspended = False
        self._held: list[pb.HistoryEvent] = []
        self.aborted = False
        self.processed = 0
        """How many events this replay has processed (held ones count once)."""
        self.position = -1
        """Where the event being processed sits in the execution's history."""
        self.started: tuple[int, pb.HistoryEvent] | None = None
        """The position and a copy of the ``ExecutionStarted`` event, once seen."""
        self._handlers: dict[str, Callable[[pb.HistoryEvent], None]] = {
            "orchestratorStarted": self._on_orchestrator_started,
            "executionStarted": self._on_execution_started,
            "executionTerminated": self._on_execution_terminated,
            "executionSuspended": self._on_execution_suspended,
            "executionResumed": self._on_execution_resumed,
            "eventRaised": self._on_event_raised,
            "taskCompleted": self._on_task_completed,
            "taskFailed": self._on_task_failed,
            "subOrchestrationInstanceCompleted": self._on_sub_orchestration_completed,
            "subOrchestrationInstanceFailed": self._on_sub_orchestration_failed,
            "timerFired": self._on_timer_fired,
        }
        for kind in _actions.RECORD_KINDS:
            self._handlers[kind] = self._on_record
        for kind in _IGNORED:
            self._handlers[kind] = _ignore
        self._handlers["entityOperationCalled"] = self._on_entity_call_record
        self._handlers["entityOperationCompleted"] = self._on_entity_completed
        self._handlers["entityOperationFailed"] = self._on_entity_failed
        self._handlers["entityLockGranted"] = self._on_entity_lock_granted

    # -- feeding events --------------------------------------------------------------

    def feed(
        self, events: Sequence[pb.HistoryEvent], start: int, offset: int, *, replaying: bool
    ) -> None:
        """Process ``events[start:]``; ``offset`` is the history position of ``events[0]``."""
        self.ctx._is_replaying = replaying
        for index in range(start, len(events)):
            if self.aborted:
                return
            self.position = offset + index
            self.processed += 1
            try:
                self.process(events[index])
            except Exception as exc:
                self._abort(exc)

    def process(self, event: pb.HistoryEvent) -> None:
        """Apply one history event."""
        kind = event.WhichOneof("eventType")
        if kind is None:
            logger.warning("%s: ignoring a history event of no type", self.ctx.instance_id)
            return
        if self._suspended and kind in HELD_WHILE_SUSPENDED:
            self._held.append(event)
            return
        handler = self._handlers.get(kind)
        if handler is None:
            logger.warning(
                "%s: ignoring history event %r, which this SDK does not handle",
                self.ctx.instance_id,
                kind,
            )
            return
        handler(event)

    def result_actions(self) -> list[pb.OrchestratorAction]:
        """The episode's actions: every action not yet confirmed by history."""
        return self.ctx._episode_actions()

    def close(self) -> None:
        """Release the orchestrator's generator or coroutine."""
        driver, self._driver = self._driver, None
        if driver is not None:
            try:
                driver.close()
            except Exception:  # user code misbehaving in a finally block
                logger.debug("closing orchestrator code raised", exc_info=True)

    def _abort(self, exc: Exception) -> None:
        self.aborted = True
        # Engine-detected problems carry a clear message; anything else is a bug
        # worth a stack trace.
        expected = isinstance(exc, DurableTaskError)
        logger.warning("%s: orchestration %r failed: %s", self.ctx.instance_id, self.ctx.name, exc)
        self.ctx._fail(failure_from_exception(exc, with_stack=not expected))
        self.close()

    # -- lifecycle events -----------------------------------------------------------

    def _on_orchestrator_started(self, event: pb.HistoryEvent) -> None:
        if event.HasField("timestamp"):
            self.ctx._now = to_datetime(event.timestamp)

    def _on_execution_started(self, event: pb.HistoryEvent) -> None:
        ctx = self.ctx
        if self.started is not None:
            logger.warning("%s: ignoring a second ExecutionStarted event", ctx.instance_id)
            return
        copy = pb.HistoryEvent()
        copy.CopyFrom(event)
        self.started = (self.position, copy)
        started = event.executionStarted
        ctx._name = started.name
        if started.orchestrationInstance.HasField("executionId"):
            ctx._execution_id = started.orchestrationInstance.executionId.value or None
        if started.HasField("version"):
            ctx._version = started.version.value
        parent = started.parentInstance
        if started.HasField("parentInstance") and parent.HasField("orchestrationInstance"):
            ctx._parent_instance_id = parent.orchestrationInstance.instanceId
        if started.tags:
            ctx._tags = types.MappingProxyType(dict(started.tags))
        fn = self._lookup(started.name)
        if fn is None:
            ctx._fail(
                FailureDetails(
                    message=f"orchestrator {started.name!r} is not registered with this worker",
                    error_type=NOT_REGISTERED_ERROR_TYPE,
                    is_non_retriable=True,
                )
            )
            return
        ctx._logger_name = getattr(fn, "__module__", None) or ctx._logger_name
        text = started.input.value if started.HasField("input") else None
        try:
            value = decode(text, input_type_of(fn))
        except PayloadError as exc:
            raise PayloadError(f"the input of orchestrator {started.name!r}: {exc}") from exc
        try:
            outcome = fn(ctx, value) if takes_input(fn) else fn(ctx)
        except Exception as exc:
            ctx._fail(failure_from_exception(exc))
            return
        if inspect.isgenerator(outcome) or inspect.iscoroutine(outcome):
            self._driver = outcome
            self._is_coroutine = inspect.iscoroutine(outcome)
            self._advance(None, None)
        elif inspect.isasyncgen(outcome):
            raise OrchestrationStateError(
                f"orchestrator {started.name!r} is an async generator; write it as a "
                "generator (yield tasks) or an async def function (await tasks)"
            )
        else:
            self._complete(outcome)

    def _on_execution_terminated(self, event: pb.HistoryEvent) -> None:
        terminated = event.executionTerminated
        output = terminated.input.value if terminated.HasField("input") else ""
        self.ctx._finish(pb.ORCHESTRATION_STATUS_TERMINATED, result=output or None)

    def _on_execution_suspended(self, event: pb.HistoryEvent) -> None:
        self._suspended = True

    def _on_execution_resumed(self, event: pb.HistoryEvent) -> None:
        if not self._suspended:
            return
        self._suspended = False
        held, self._held = self._held, []
        for waiting in held:
            self.process(waiting)

    # -- records of our own actions ----------------------------------------------

    def _on_record(self, event: pb.HistoryEvent) -> None:
        id = event.eventId
        action = self.ctx._actions.pop(id, None)
        if action is None:
            raise NonDeterminismError(
                self._non_determinism(id, _actions.describe_record(event), None)
            )
        if _actions.mismatch(action, event):
            raise NonDeterminismError(
                self._non_determinism(
                    id, _actions.describe_record(event), _actions.describe_action(action)
                )
            )

    def _non_determinism(self, id: int, history: str, code: str | None) -> str:
        now = f"now calls {code}" if code else "now calls nothing with that id"
        return (
            f"task {id}: history has {history} but the orchestrator {now} "
            f"(orchestration {self.ctx.name!r}, instance {self.ctx.instance_id!r}); "
            "orchestrator code must be deterministic and must not change while "
            "instances of it are running"
        )

    # -- completions ----------------------------------------------------------------

    def _take(self, id: int, kind: str, event_kind: str) -> Call | Timer | None:
        ctx = self.ctx
        if ctx._outcome is not None:
            return None  # finished: nothing waits any more
        item = ctx._pending.get(id)
        expected = (
            isinstance(item, Timer)
            if kind == "timer"
            else (isinstance(item, Call) and item.kind == kind)
        )
        if item is None or not expected:
            if not ctx.is_replaying:
                logger.warning(
                    "%s: ignoring %s for task %d: no %s with that id is waiting",
                    ctx.instance_id,
                    event_kind,
                    id,
                    kind,
                )
            return None
        del ctx._pending[id]
        return item

    def _on_task_completed(self, event: pb.HistoryEvent) -> None:
        done = event.taskCompleted
        call = self._take(done.taskScheduledId, ACTIVITY, "TaskCompleted")
        if isinstance(call, Call):
            self._succeed(call, done.result.value if done.HasField("result") else None)

    def _on_task_failed(self, event: pb.HistoryEvent) -> None:
        failed = event.taskFailed
        call = self._take(failed.taskScheduledId, ACTIVITY, "TaskFailed")
        if isinstance(call, Call):
            self._fail_call(call, failure_from_pb(failed.failureDetails))

    def _on_sub_orchestration_completed(self, event: pb.HistoryEvent) -> None:
        done = event.subOrchestrationInstanceCompleted
        call = self._take(done.taskScheduledId, SUB_ORCHESTRATION, "SubOrchestrationCompleted")
        if isinstance(call, Call):
            self._succeed(call, done.result.value if done.HasField("result") else None)

    def _on_sub_orchestration_failed(self, event: pb.HistoryEvent) -> None:
        failed = event.subOrchestrationInstanceFailed
        call = self._take(failed.taskScheduledId, SUB_ORCHESTRATION, "SubOrchestrationFailed")
        if isinstance(call, Call):
            self._fail_call(call, failure_from_pb(failed.failureDetails))

    def _succeed(self, call: Call, payload: str | None) -> None:
        try:
            value = decode(payload, call.result_type)
        except PayloadError as exc:
            call.task._fail(
                TaskFailedError(
                    f"the result of {call.describe()} is not valid JSON",
                    failure_from_exception(exc, with_stack=False),
                )
            )
        else:
            call.task._complete(value)
        self._resume()

    def _fail_call(self, call: Call, failure: FailureDetails) -> None:
        ctx = self.ctx
        if call.retry is not None and not failure.is_non_retriable:
            delay = call.retry.next_delay(call.attempts, call.started_at, ctx._now)
            if delay is not None:
                call.attempts += 1
                ctx._start_timer(ctx._now + delay, retry_of=call)
                return
        attempts = f" after {call.attempts} attempts" if call.attempts > 1 else ""
        call.task._fail(
            TaskFailedError(f"{call.describe()} failed{attempts}: {failure.message}", failure)
        )
        self._resume()

    def _on_timer_fired(self, event: pb.HistoryEvent) -> None:
        fired = event.timerFired
        timer = self._take(fired.timerId, "timer", "TimerFired")
        if not isinstance(timer, Timer):
            return
        fired_at = to_datetime(fired.fireAt) if fired.HasField("fireAt") else timer.fire_at
        if timer.chunked and fired_at < timer.final_fire_at:
            self.ctx._continue_timer(timer, fired_at)
        elif timer.retry_of is not None:
            self.ctx._reschedule(timer.retry_of)
        elif timer.task is not None:
            timer.task._complete(None)
            self._resume()

    def _on_event_raised(self, event: pb.HistoryEvent) -> None:
        self.ctx._receive_event(event)
        self._resume()

    # -- entities -------------------------------------------------------------------

    def _on_entity_call_record(self, event: pb.HistoryEvent) -> None:
        action = self.ctx._actions.get(event.eventId)
        self._on_record(event)
        assert action is not None  # _on_record raised otherwise
        self.ctx._entities.rename_call(
            action.sendEntityMessage.entityOperationCalled.requestId,
            event.entityOperationCalled.requestId,
        )

    def _take_entity_call(self, request_id: str, event_kind: str) -> EntityCall | None:
        ctx = self.ctx
        if ctx._outcome is not None:
            return None
        call = ctx._entities.call_finished(request_id)
        if call is None:
            self._ignore_unexpected(event_kind, f"request id {request_id!r}")
        return call

    def _on_entity_completed(self, event: pb.HistoryEvent) -> None:
        done = event.entityOperationCompleted
        call = self._take_entity_call(done.requestId, "entityOperationCompleted")
        if call is None:
            return
        payload = done.output.value if done.HasField("output") else None
        try:
            value = decode(payload, call.result_type)
        except PayloadError as exc:
            call.task._fail(
                TaskFailedError(
                    f"the result of {call.describe()} is not valid JSON",
                    failure_from_exception(exc, with_stack=False),
                )
            )
        else:
            call.task._complete(value)
        self._resume()

    def _on_entity_failed(self, event: pb.HistoryEvent) -> None:
        failed = event.entityOperationFailed
        call = self._take_entity_call(failed.requestId, "entityOperationFailed")
        if call is None:
            return
        failure = failure_from_pb(failed.failureDetails)
        call.task._fail(
            EntityOperationFailedError(
                f"{call.describe()} failed: {failure}",
                failure,
                entity_instance_id=call.entity,
                operation_name=call.operation,
            )
        )
        self._resume()

    def _on_entity_lock_granted(self, event: pb.HistoryEvent) -> None:
        ctx = self.ctx
        section_id = event.entityLockGranted.criticalSectionId
        if ctx._outcome is not None:
            return
        if ctx._grant_locks(section_id):
            self._resume()
        else:
            self._ignore_unexpected("entityLockGranted", f"critical section {section_id!r}")

    def _ignore_unexpected(self, event_kind: str, what: str) -> None:
        if not self.ctx.is_replaying:
            logger.warning(
                "%s: ignoring %s for %s: nothing in this orchestration waits for it",
                self.ctx.instance_id,
                event_kind,
                what,
            )

    # -- driving the orchestrator code ------------------------------------------

    def _resume(self) -> None:
        awaiting = self._awaiting
        if awaiting is not None and awaiting.is_complete and self.ctx._outcome is None:
            if awaiting.is_failed:
                self._advance(None, awaiting.get_exception())
            else:
                self._advance(awaiting._result, None)

    def _advance(self, value: Any, error: BaseException | None) -> None:
        """Run the code from where it waits until it waits for something unfinished."""
        ctx = self.ctx
        while True:
            driver = self._driver
            assert driver is not None
            try:
                yielded = driver.send(value) if error is None else driver.throw(error)
            except StopIteration as stop:
                self._driver = self._awaiting = None
                self._complete(stop.value)
                return
            except Exception as exc:
                self._driver = self._awaiting = None
                ctx._fail(failure_from_exception(exc))
                return
            if not isinstance(yielded, Task):
                self._awaiting = None
                self._reject(yielded)
                return
            self._awaiting = yielded
            if ctx._outcome is not None or not yielded.is_complete:
                return
            value, error = yielded._result, yielded.get_exception()

    def _reject(self, yielded: object) -> None:
        verb = "awaited" if self._is_coroutine else "yielded"
        hint = (
            "async orchestrators may only await tasks from the context, task.when_all "
            "and task.when_any, never asyncio"
            if self._is_coroutine
            else "yield tasks from the context (call_activity, create_timer, "
            "wait_for_external_event, call_sub_orchestrator ...), task.when_all or "
            "task.when_any"
        )
        error = OrchestrationStateError(
            f"orchestrator {self.ctx.name!r} {verb} {type(yielded).__name__} "
            f"{yielded!r:.60}, which is not a durable task; {hint}"
        )
        self.ctx._fail(failure_from_exception(error, with_stack=False))
        self.close()

    def _complete(self, value: Any) -> None:
        try:
            encoded = encode(value, f"the result of orchestrator {self.ctx.name!r}")
        except PayloadError as exc:
            self.ctx._fail(failure_from_exception(exc, with_stack=False))
            return
        self.ctx._finish(pb.ORCHESTRATION_STATUS_COMPLETED, result=encoded)


def _ignore(event: pb.HistoryEvent) -> None:
    """History events with no effect on replay."""
