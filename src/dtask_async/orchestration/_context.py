"""The orchestration context: what an orchestrator function receives as ``ctx``.

The context is also the replay state of one execution: the sequence counter,
actions not yet confirmed by history, calls and timers waiting for completion,
external events and their waiters. The replay engine (``_replay.py``) feeds
history events into it; user code calls its public methods.
"""

from __future__ import annotations

import logging
import types
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, overload

from .._errors import PayloadError, TaskFailedError
from .._models import FailureDetails
from .._naming import name_of
from .._proto import pb
from .._protoutil import failure_from_exception
from .._serialization import decode, encode
from .._validation import check_sendable, validate_instance_id
from ..entities._id import EntityInstanceId, entity_id_of
from ..entities._lock import EntityLock
from . import _actions
from ._decorators import result_type_of
from ._entities import CriticalSection, EntityCall, EntityState, lock_order
from ._logging import ReplaySafeLogger
from ._retry import RetryPolicy
from ._tasks import CompletableTask, Task

__all__ = ("DEFAULT_MAX_TIMER_INTERVAL", "OrchestrationContext")

R = TypeVar("R")

DEFAULT_MAX_TIMER_INTERVAL = timedelta(days=3)
"""Timers further away than this are split into a chain of shorter durable timers,
as the official Python SDK does (backends limit how far ahead a timer may be)."""

_BEFORE_FIRST_START = datetime(1000, 1, 1, tzinfo=timezone.utc)

# new_uuid(): RFC 4122 name-based UUIDs, with the namespace and name format of the
# official durabletask Python SDK, so both SDKs give the same values.
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
_UUID_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

ACTIVITY = "activity"
SUB_ORCHESTRATION = "sub-orchestration"


@dataclass(eq=False, slots=True)
class Call:
    """An activity or sub-orchestration call waiting for its result."""

    kind: str
    name: str
    id: int
    task: CompletableTask[Any]
    action: pb.OrchestratorAction
    result_type: Any
    retry: RetryPolicy | None
    started_at: datetime
    attempts: int = 1

    def describe(self) -> str:
        return f"{self.kind} {self.name!r} (task {self.id})"


@dataclass(eq=False, slots=True)
class Timer:
    """A durable timer waiting to fire: a user timer, or the delay before a retry."""

    task: CompletableTask[None] | None
    fire_at: datetime
    final_fire_at: datetime
    chunked: bool
    retry_of: Call | None = None


@dataclass(eq=False, slots=True)
class _EventWait:
    task: CompletableTask[Any]
    name: str
    data_type: Any


@dataclass(eq=False, slots=True)
class _Arrival:
    sequence: int
    name: str
    payload: str | None
    seconds: int
    nanos: int


@dataclass(eq=False, slots=True)
class Outcome:
    """How the execution ended; continue-as-new builds its action at the end of the episode."""

    status: int
    continue_input: str | None = None
    save_events: bool = False
    new_version: str | None = None


def _as_utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str] | None:
    if tags is None:
        return None
    if not isinstance(tags, Mapping):
        raise TypeError(f"tags must be a mapping of str to str, got {type(tags).__name__}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"tags must map str to str, got {key!r}: {value!r}")
    return dict(tags)


class OrchestrationContext:
    """What an orchestrator function receives: its identity, the deterministic clock,
    and the methods that start durable work.

    Every method that starts work returns a :class:`Task`; the orchestrator yields
    it (``result = yield ctx.call_activity(...)``) or, in an ``async def``
    orchestrator, awaits it. The engine creates the context; user code never does.
    """

    def __init__(
        self, instance_id: str, *, max_timer_interval: timedelta | None = DEFAULT_MAX_TIMER_INTERVAL
    ) -> None:
        self._instance_id = instance_id
        self._name = ""
        self._version: str | None = None
        self._parent_instance_id: str | None = None
        self._tags: Mapping[str, str] = types.MappingProxyType({})
        self._now = _BEFORE_FIRST_START
        self._is_replaying = True
        self._max_timer_interval = max_timer_interval
        self._sequence = 0
        self._uuid_counter = 0
        # Actions produced by the code and not yet confirmed by a history record.
        self._actions: dict[int, pb.OrchestratorAction] = {}
        # Calls and timers waiting for their completion event, by sequence number.
        self._pending: dict[int, Call | Timer] = {}
        self._waiters: dict[str, deque[_EventWait]] = {}
        self._inbox: dict[str, deque[_Arrival]] = {}
        self._arrivals = 0
        self._custom_status: str | None = None
        self._outcome: Outcome | None = None
        self._execution_id: str | None = None
        self._entities = EntityState()
        self._logger_name = "dtask_async.orchestrator"
        self._logger: ReplaySafeLogger | None = None

    # -- identity and clock ------------------------------------------------------

    @property
    def instance_id(self) -> str:
        """The orchestration instance's id."""
        return self._instance_id

    @property
    def name(self) -> str:
        """The name the orchestrator was scheduled by."""
        return self._name

    @property
    def version(self) -> str | None:
        """The version given when the orchestration was scheduled, if any."""
        return self._version

    @property
    def parent_instance_id(self) -> str | None:
        """For a sub-orchestration, the instance id of its parent; else ``None``."""
        return self._parent_instance_id

    @property
    def tags(self) -> Mapping[str, str]:
        """The tags given when the orchestration was scheduled (read-only)."""
        return self._tags

    @property
    def current_utc_datetime(self) -> datetime:
        """The orchestration's deterministic "now" (an aware UTC datetime).

        It is the time the current batch of history events started to be
        processed, so it is the same at the same point of every replay.
        """
        return self._now

    @property
    def is_replaying(self) -> bool:
        """Whether the code is being replayed from history (it has run before)."""
        return self._is_replaying

    @property
    def logger(self) -> ReplaySafeLogger:
        """A logger, named after the orchestrator's module, that is silent while replaying."""
        if self._logger is None:
            self._logger = ReplaySafeLogger(
                logging.getLogger(self._logger_name), lambda: self._is_replaying
            )
        return self._logger

    def create_replay_safe_logger(self, logger: logging.Logger) -> ReplaySafeLogger:
        """Wrap ``logger`` so that it is silent while the orchestrator replays.

        Args:
            logger: the logger to write to.

        Returns:
            A ``logging.LoggerAdapter`` over ``logger``.
        """
        return ReplaySafeLogger(logger, lambda: self._is_replaying)

    # -- starting durable work ---------------------------------------------------

    @overload
    def call_activity(
        self,
        activity: Callable[..., Any] | str,
        input: Any = None,
        *,
        retry_policy: RetryPolicy | None = None,
        tags: Mapping[str, str] | None = None,
        return_type: type[R],
    ) -> Task[R]: ...
    @overload
    def call_activity(
        self,
        activity: Callable[..., Any] | str,
        input: Any = None,
        *,
        retry_policy: RetryPolicy | None = None,
        tags: Mapping[str, str] | None = None,
        return_type: None = None,
    ) -> Task[Any]: ...
    def call_activity(
        self,
        activity: Callable[..., Any] | str,
        input: Any = None,
        *,
        retry_policy: RetryPolicy | None = None,
        tags: Mapping[str, str] | None = None,
        return_type: Any = None,
    ) -> Task[Any]:
        """Schedule an activity and return the task of its result.

        Args:
            activity: the activity function, or the name it is registered under.
            input: the activity's input (JSON-serializable; dataclasses and
                namedtuples too).
            retry_policy: retry failed attempts by this policy.
            tags: string tags sent with the call.
            return_type: rebuild the result as this type; by default the
                function's return annotation is used.

        Returns:
            A task completing with the activity's result, or failing with
            :class:`TaskFailedError`.

        Raises:
            PayloadError: ``input`` cannot be serialized.
        """
        name = name_of(activity, "activity")
        if return_type is None:
            return_type = result_type_of(activity)
        encoded = encode(input, f"input of activity {name!r}")
        checked_tags = _check_tags(tags)
        _check_retry(retry_policy)
        id = self._next_id()
        action = _actions.schedule_task(id, name, encoded, checked_tags)
        return self._start_call(ACTIVITY, name, id, action, return_type, retry_policy)

    def call_sub_orchestrator(
        self,
        orchestrator: Callable[..., Any] | str | None = None,
        *,
        orchestration: Callable[..., Any] | str | None = None,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        version: str | None = None,
        tags: Mapping[str, str] | None = None,
        return_type: Any = None,
    ) -> Task[Any]:
        """Start a sub-orchestration and return the task of its result.

        Args:
            orchestrator: the orchestrator function, or its registered name.
            orchestration: the same, under the keyword some samples use.
            input: the sub-orchestration's input.
            instance_id: the child's instance id; by default
                ``"<parent instance id>:<task id as 4 hex digits>"``, as in the
                other Durable Task SDKs.
            retry_policy: retry failed attempts (with the same instance id).
            version: the version to start the child with.
            tags: string tags for the child.
            return_type: rebuild the result as this type; by default taken from
                the orchestrator's return annotation.

        Returns:
            A task completing with the child's result, or failing with
            :class:`TaskFailedError`.

        Raises:
            TypeError: no orchestrator, or two, were given.
            PayloadError: ``input`` cannot be serialized.
            InvalidInstanceIdError: ``instance_id`` is not a usable id.
        """
        if (orchestrator is None) == (orchestration is None):
            raise TypeError(
                "call_sub_orchestrator() takes the orchestrator once: positionally, "
                "as orchestrator=, or as orchestration="
            )
        target = orchestrator if orchestrator is not None else orchestration
        name = name_of(target, "orchestrator")
        if return_type is None:
            return_type = result_type_of(target)
        encoded = encode(input, f"input of sub-orchestration {name!r}")
        if instance_id is not None:
            validate_instance_id(instance_id, "sub-orchestration instance id")
        checked_tags = _check_tags(tags)
        _check_retry(retry_policy)
        id = self._next_id()
        child_id = instance_id if instance_id is not None else f"{self._instance_id}:{id:04x}"
        action = _actions.create_sub_orchestration(
            id, name, child_id, encoded, version, checked_tags
        )
        return self._start_call(SUB_ORCHESTRATION, name, id, action, return_type, retry_policy)

    call_sub_orchestration = call_sub_orchestrator

    def create_timer(self, fire_at: datetime | timedelta) -> Task[None]:
        """Start a durable timer.

        Args:
            fire_at: when to fire: a datetime (naive ones are taken as UTC) or a
                delay from :attr:`current_utc_datetime`.

        Returns:
            A task completing with ``None`` when the timer fires.
        """
        if isinstance(fire_at, timedelta):
            final = self._now + fire_at
        elif isinstance(fire_at, datetime):
            final = _as_utc(fire_at)
        else:
            raise TypeError(
                f"create_timer() takes a datetime or a timedelta, got {type(fire_at).__name__}"
            )
        timer_task: CompletableTask[None] = CompletableTask("timer")
        self._start_timer(final, task=timer_task)
        return timer_task

    def wait_for_external_event(self, name: str, *, data_type: Any = None) -> Task[Any]:
        """Wait for an event raised on this instance (by a client or another orchestration).

        Names are case-insensitive. Events that arrive before anyone waits are
        kept; waiters and arrivals of one name are matched first come, first served.

        Args:
            name: the event name.
            data_type: rebuild the event data as this type.

        Returns:
            A task completing with the event's data.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"event name must be a non-empty string, got {name!r}")
        check_sendable(name, "event name")
        event_task: CompletableTask[Any] = CompletableTask(f"event {name!r}")
        wait = _EventWait(event_task, name, data_type)
        key = name.casefold()
        inbox = self._inbox.get(key)
        if inbox:
            arrival = inbox.popleft()
            if not inbox:
                del self._inbox[key]
            self._deliver(wait, arrival.payload)
        else:
            self._waiters.setdefault(key, deque()).append(wait)
        return event_task

    def send_event(self, instance_id: str, event_name: str, *, data: Any = None) -> None:
        """Raise an event on another orchestration instance (fire and forget).

        Args:
            instance_id: the receiving instance.
            event_name: the event name.
            data: the event data.

        Raises:
            InvalidInstanceIdError: ``instance_id`` is not a usable id.
            ValueError: the id is an entity's (starts with ``@``) or the name is empty.
            PayloadError: ``data`` cannot be serialized.
        """
        validate_instance_id(instance_id, "send_event() target instance id")
        if instance_id.startswith("@"):
            raise ValueError(
                f"instance id {instance_id!r} names an entity; use signal_entity() for entities"
            )
        if not isinstance(event_name, str) or not event_name.strip():
            raise ValueError(f"event name must be a non-empty string, got {event_name!r}")
        check_sendable(event_name, "event name")
        encoded = encode(data, f"data of event {event_name!r}")
        id = self._next_id()
        self._actions[id] = _actions.send_event(id, instance_id, event_name, encoded)

    # -- entities -----------------------------------------------------------------------

    def call_entity(
        self,
        entity: EntityInstanceId | str,
        operation: str,
        input: Any = None,
        *,
        return_type: Any = None,
    ) -> Task[Any]:
        """Run an operation on an entity and return the task of its result.

        Args:
            entity: the entity's id (or its ``@name@key`` string form).
            operation: the operation's name.
            input: the operation's input.
            return_type: rebuild the result as this type.

        Returns:
            A task completing with the operation's result, or failing with
            :class:`~dtask_async.EntityOperationFailedError` when it raised.

        Raises:
            EntityLockError: inside a critical section, the entity is not one of
                the locked ones, the locks are not granted yet, or an earlier call
                to it is still waiting.
            PayloadError: ``input`` cannot be serialized.
        """
        target = entity_id_of(entity, "call_entity() entity")
        _check_operation(operation)
        self._entities.check_call(target)
        encoded = encode(input, f"input of operation {operation!r} on entity {target}")
        id = self._next_id()
        request_id = self.new_uuid()
        self._actions[id] = _actions.call_entity(
            id,
            request_id,
            str(target),
            operation,
            encoded,
            self._instance_id,
            self._execution_id,
        )
        call_task: CompletableTask[Any] = CompletableTask(
            f"operation {operation!r} on entity {target}"
        )
        self._entities.call_started(
            request_id, EntityCall(target, operation, id, call_task, return_type)
        )
        return call_task

    def signal_entity(
        self,
        entity_id: EntityInstanceId | str,
        operation_name: str,
        input: Any = None,
        *,
        signal_time: datetime | timedelta | None = None,
    ) -> None:
        """Send an operation to an entity without waiting for it (fire and forget).

        Args:
            entity_id: the entity's id (or its ``@name@key`` string form).
            operation_name: the operation's name.
            input: the operation's input.
            signal_time: deliver no earlier than this time: a datetime (naive is
                UTC) or a delay from :attr:`current_utc_datetime`.

        Raises:
            EntityLockError: the entity is locked by the current critical section.
            PayloadError: ``input`` cannot be serialized.
        """
        target = entity_id_of(entity_id, "signal_entity() entity")
        _check_operation(operation_name)
        self._entities.check_signal(target)
        if signal_time is None:
            deliver_at = None
        elif isinstance(signal_time, timedelta):
            deliver_at = self._now + signal_time
        elif isinstance(signal_time, datetime):
            deliver_at = _as_utc(signal_time)
        else:
            raise TypeError(
                f"signal_time must be a datetime or a timedelta, got {type(signal_time).__name__}"
            )
        encoded = encode(input, f"input of operation {operation_name!r} on entity {target}")
        id = self._next_id()
        self._actions[id] = _actions.signal_entity(
            id, self.new_uuid(), str(target), operation_name, encoded, deliver_at
        )

    def lock_entities(
        self, entity_ids: Iterable[EntityInstanceId | str] | EntityInstanceId
    ) -> Task[EntityLock]:
        """Lock entities for a critical section; the task's result is the lock.

        Use the result as a context manager; the locks are released when the
        block is left (or, at the latest, when the orchestration ends)::

            with (yield ctx.lock_entities([account_a, account_b])):
                ...

        Inside the critical section only the locked entities may be called, and
        no other orchestration can operate on them. Locks are always taken in the
        same global order (sorted ids), so critical sections never deadlock.

        Args:
            entity_ids: the entities to lock (duplicates are ignored).

        Returns:
            A task completing with an :class:`~dtask_async.entities.EntityLock`
            once every lock is held.

        Raises:
            EntityLockError: called inside a critical section (they cannot nest).
            ValueError: no entity was given.
        """
        self._entities.check_lock()
        ordered = lock_order(entity_ids)
        id = self._next_id()
        section_id = self.new_uuid()
        self._actions[id] = _actions.lock_entities(
            id, section_id, [str(e) for e in ordered], self._instance_id
        )
        lock_task: CompletableTask[EntityLock] = CompletableTask(
            f"lock_entities({[str(e) for e in ordered]})"
        )
        self._entities.section = CriticalSection(section_id, ordered, lock_task)
        return lock_task

    def continue_as_new(
        self, new_input: Any, *, save_events: bool = False, new_version: str | None = None
    ) -> None:
        """Restart this instance with a fresh history once the current code returns.

        Return (or stop yielding) right after calling it.

        Args:
            new_input: the input of the next execution.
            save_events: carry external events received but not yet consumed
                over to the next execution.
            new_version: the version of the next execution.

        Raises:
            PayloadError: ``new_input`` cannot be serialized.
        """
        encoded = encode(new_input, "input of continue_as_new()")
        if self._outcome is None:
            self._release_locks()
            self._outcome = Outcome(
                pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
                continue_input=encoded,
                save_events=save_events,
                new_version=new_version,
            )

    def set_custom_status(self, value: Any) -> None:
        """Publish a JSON-serializable status that clients can read; ``None`` clears it.

        Raises:
            PayloadError: ``value`` cannot be serialized.
        """
        self._custom_status = encode(value, "custom status")

    def new_uuid(self) -> str:
        """A UUID that is the same at the same point of every replay.

        It is a name-based (version 5) UUID of the instance id, the current
        orchestration time and a counter, computed exactly as the official
        Durable Task Python SDK does.
        """
        name = f"{self._instance_id}_{self._now.strftime(_UUID_TIME_FORMAT)}_{self._uuid_counter}"
        self._uuid_counter += 1
        return str(uuid.uuid5(_UUID_NAMESPACE, name))

    def __repr__(self) -> str:
        return f"<OrchestrationContext {self._name!r} instance={self._instance_id!r}>"

    # -- engine side --------------------------------------------------------------

    def _next_id(self) -> int:
        self._sequence += 1
        return self._sequence

    def _start_call(
        self,
        kind: str,
        name: str,
        id: int,
        action: pb.OrchestratorAction,
        result_type: Any,
        retry: RetryPolicy | None,
    ) -> Task[Any]:
        call_task: CompletableTask[Any] = CompletableTask(f"{kind} {name!r}")
        self._actions[id] = action
        self._pending[id] = Call(kind, name, id, call_task, action, result_type, retry, self._now)
        return call_task

    def _start_timer(
        self,
        final_fire_at: datetime,
        *,
        task: CompletableTask[None] | None = None,
        retry_of: Call | None = None,
    ) -> None:
        limit = self._max_timer_interval
        chunked = limit is not None and limit > timedelta(0) and self._now + limit < final_fire_at
        fire_at = self._now + limit if chunked and limit is not None else final_fire_at
        id = self._next_id()
        self._actions[id] = _actions.create_timer(id, fire_at)
        self._pending[id] = Timer(task, fire_at, final_fire_at, chunked, retry_of)

    def _continue_timer(self, timer: Timer, fired_at: datetime) -> None:
        assert self._max_timer_interval is not None
        timer.fire_at = min(fired_at + self._max_timer_interval, timer.final_fire_at)
        id = self._next_id()
        self._actions[id] = _actions.create_timer(id, timer.fire_at)
        self._pending[id] = timer

    def _reschedule(self, call: Call) -> None:
        # A retry reuses the first attempt's sequence number and action, as the
        # official Python SDK does.
        self._actions[call.id] = call.action
        self._pending[call.id] = call

    def _deliver(self, wait: _EventWait, payload: str | None) -> None:
        try:
            value = decode(payload, wait.data_type)
        except PayloadError as exc:
            wait.task._fail(
                TaskFailedError(
                    f"the data of event {wait.name!r} is not valid JSON",
                    failure_from_exception(exc, with_stack=False),
                )
            )
        else:
            wait.task._complete(value)

    def _receive_event(self, event: pb.HistoryEvent) -> None:
        raised = event.eventRaised
        payload = raised.input.value if raised.HasField("input") and raised.input.value else None
        key = raised.name.casefold()
        waiters = self._waiters.get(key)
        # A finished execution keeps events for continue-as-new instead of
        # handing them to waits that will never be resumed.
        if waiters and self._outcome is None:
            wait = waiters.popleft()
            if not waiters:
                del self._waiters[key]
            self._deliver(wait, payload)
            return
        self._inbox.setdefault(key, deque()).append(
            _Arrival(
                self._arrivals,
                raised.name,
                payload,
                event.timestamp.seconds,
                event.timestamp.nanos,
            )
        )
        self._arrivals += 1

    def _grant_locks(self, section_id: str) -> bool:
        section = self._entities.section
        if section is None or section.id != section_id or section.granted:
            return False
        section.granted = True
        section.task._complete(EntityLock(section.entities, lambda: self._release(section)))
        return True

    def _release(self, section: CriticalSection) -> None:
        # Only the current section can be released; a lock object kept after its
        # section ended (or a second exit) does nothing.
        if self._entities.section is not section:
            return
        self._entities.section = None
        for entity in section.entities:
            id = self._next_id()
            self._actions[id] = _actions.unlock_entity(
                id, section.id, str(entity), self._instance_id
            )

    def _release_locks(self) -> None:
        # An ending orchestration releases what it holds, and what it asked for
        # but was not granted yet: the request is on its way and will be granted.
        if self._entities.section is not None:
            self._release(self._entities.section)

    def _finish(
        self, status: int, *, result: str | None = None, failure: FailureDetails | None = None
    ) -> None:
        if self._outcome is not None:
            return
        self._release_locks()
        self._outcome = Outcome(status)
        id = self._next_id()
        self._actions[id] = _actions.complete_orchestration(
            id, status, result=result, failure=failure
        )

    def _fail(self, failure: FailureDetails) -> None:
        self._finish(pb.ORCHESTRATION_STATUS_FAILED, failure=failure)

    def _episode_actions(self) -> list[pb.OrchestratorAction]:
        actions = list(self._actions.values())
        outcome = self._outcome
        if outcome is not None and outcome.status == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
            carryover: list[pb.HistoryEvent] = []
            if outcome.save_events:
                arrivals = sorted(
                    (a for inbox in self._inbox.values() for a in inbox),
                    key=lambda a: a.sequence,
                )
                for arrival in arrivals:
                    carried = pb.HistoryEvent(eventId=-1)
                    carried.timestamp.seconds = arrival.seconds
                    carried.timestamp.nanos = arrival.nanos
                    carried.eventRaised.name = arrival.name
                    if arrival.payload is not None:
                        carried.eventRaised.input.value = arrival.payload
                    carryover.append(carried)
            actions.append(
                _actions.complete_orchestration(
                    self._next_id(),
                    outcome.status,
                    result=outcome.continue_input,
                    carryover=carryover,
                    new_version=outcome.new_version,
                )
            )
        return actions


def _check_operation(operation: object) -> None:
    if not isinstance(operation, str) or not operation:
        raise ValueError(f"entity operation name must be a non-empty string, got {operation!r}")
    check_sendable(operation, "entity operation name")


def _check_retry(policy: object) -> None:
    if policy is not None and not isinstance(policy, RetryPolicy):
        raise TypeError(f"retry_policy must be a RetryPolicy, got {type(policy).__name__}")
