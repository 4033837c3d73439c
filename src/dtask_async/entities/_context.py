"""What an entity operation receives: its identity, its state, and outgoing messages.

State is held as its JSON text between operations. Writing it encodes at once (so
an unencodable state fails the operation that wrote it), reading decodes, and the
worker checkpoints the text and the outgoing messages after every successful
operation so a failing one can be rolled back.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .._naming import name_of
from .._proto import pb
from .._protoutil import sv, to_timestamp, utcnow
from .._serialization import decode, encode
from .._validation import validate_instance_id
from ._id import EntityInstanceId, entity_id_of

__all__ = ("EntityBatch", "EntityContext")

S = TypeVar("S")


class EntityBatch:
    """The state and outgoing messages of one entity while a batch of operations runs.

    ``commit`` marks the current state and messages as kept; ``rollback`` returns
    to the last commit (how a failed operation is undone).
    """

    __slots__ = ("_committed_actions", "_committed_state", "actions", "state")

    def __init__(self, state: str | None) -> None:
        self.state: str | None = state or None
        self.actions: list[pb.OperationAction] = []
        self._committed_state = self.state
        self._committed_actions = 0

    def commit(self) -> None:
        """Keep everything done so far."""
        self._committed_state = self.state
        self._committed_actions = len(self.actions)

    def rollback(self) -> None:
        """Undo everything since the last :meth:`commit`."""
        self.state = self._committed_state
        del self.actions[self._committed_actions :]

    def committed_actions(self) -> list[pb.OperationAction]:
        """The kept messages, numbered from 0 in the order they were made."""
        kept = self.actions[: self._committed_actions]
        for index, action in enumerate(kept):
            action.id = index
        return kept


def _delivery_time(when: _dt.datetime | _dt.timedelta | None) -> _dt.datetime | None:
    if when is None:
        return None
    if isinstance(when, _dt.timedelta):
        return utcnow() + when
    if isinstance(when, _dt.datetime):
        return when
    raise TypeError(f"signal_time must be a datetime or a timedelta, got {type(when).__name__}")


class EntityContext:
    """What an entity function receives as ``ctx``, and what a
    :class:`~dtask_async.entities.DurableEntity` reaches as ``self.entity_context``.

    It names the entity and the operation being run, reads and writes the
    entity's state, and sends messages (signals to entities, new orchestrations)
    that go out only if the operation succeeds.

    Workers create contexts; to unit-test an entity function, create one
    yourself: ``EntityContext(EntityInstanceId("counter", "a"), "add", state=1)``.

    Args:
        entity_id: the entity the operation runs on.
        operation: the operation's name.
        state: the state the entity starts with (``None``: no state).
    """

    def __init__(self, entity_id: EntityInstanceId, operation: str, *, state: Any = None) -> None:
        self._entity_id = entity_id_of(entity_id, "entity_id")
        self._operation = operation
        self._batch = EntityBatch(encode(state, f"state of entity {self._entity_id}"))

    @classmethod
    def _in_batch(
        cls, entity_id: EntityInstanceId, operation: str, batch: EntityBatch
    ) -> EntityContext:
        ctx = cls.__new__(cls)
        ctx._entity_id = entity_id
        ctx._operation = operation
        ctx._batch = batch
        return ctx

    # -- identity ----------------------------------------------------------------------

    @property
    def entity_id(self) -> EntityInstanceId:
        """The entity's id."""
        return self._entity_id

    @property
    def instance_id(self) -> str:
        """The entity's instance id, ``@name@key``."""
        return str(self._entity_id)

    @property
    def orchestration_id(self) -> str:
        """Same as :attr:`instance_id` (the name the official SDK uses)."""
        return str(self._entity_id)

    @property
    def operation(self) -> str:
        """The name of the operation being run."""
        return self._operation

    # -- state -------------------------------------------------------------------------

    @property
    def has_state(self) -> bool:
        """Whether the entity has a state (``set_state(None)`` removes it)."""
        return self._batch.state is not None

    @overload
    def get_state(self, intended_type: type[S], default: S) -> S: ...
    @overload
    def get_state(self, intended_type: type[S], default: None = None) -> S | None: ...
    @overload
    def get_state(self, intended_type: None = None, default: Any = None) -> Any: ...
    def get_state(self, intended_type: Any = None, default: Any = None) -> Any:
        """The entity's state, or ``default`` when it has none.

        Every call decodes a fresh copy: changing the returned object changes
        nothing until it is passed to :meth:`set_state`.

        Args:
            intended_type: rebuild the state as this type (a dataclass, say);
                ``None`` gives plain JSON values.
            default: what to return when the entity has no state.

        Raises:
            TypeError: the state cannot be read as ``intended_type``.
        """
        text = self._batch.state
        if text is None:
            return default
        value = decode(text, intended_type)
        if (
            isinstance(intended_type, type)
            and intended_type is not object
            and not isinstance(value, intended_type)
        ):
            raise TypeError(
                f"the state of entity {self._entity_id} is {type(value).__name__} "
                f"{text[:60]!r}, which cannot be read as {intended_type.__name__}"
            )
        return value

    def set_state(self, state: Any) -> None:
        """Replace the entity's state; ``None`` deletes it.

        Raises:
            PayloadError: ``state`` cannot be serialized (the operation fails and
                its changes are rolled back).
        """
        self._batch.state = encode(state, f"state of entity {self._entity_id}")

    def _set_initial_state(self, state: Any) -> None:
        # A DurableEntity constructor setting a state: a stored state wins.
        if self._batch.state is None:
            self.set_state(state)

    # -- outgoing messages -------------------------------------------------------------

    def signal_entity(
        self,
        entity_id: EntityInstanceId | str,
        operation: str,
        input: Any = None,
        *,
        signal_time: _dt.datetime | _dt.timedelta | None = None,
    ) -> None:
        """Send an operation to an entity (this one too) without waiting for it.

        The signal is sent when the operation succeeds; a failing operation
        sends nothing.

        Args:
            entity_id: the receiving entity.
            operation: the operation to run there.
            input: the operation's input.
            signal_time: deliver no earlier than this time (a datetime, naive is
                UTC, or a delay from now).

        Raises:
            PayloadError: ``input`` cannot be serialized.
        """
        target = entity_id_of(entity_id, "signal_entity() target")
        if not isinstance(operation, str) or not operation:
            raise ValueError(f"operation name must be a non-empty string, got {operation!r}")
        signal = pb.SendSignalAction(
            instanceId=str(target),
            name=operation,
            input=sv(encode(input, f"input of operation {operation!r} on entity {target}")),
        )
        deliver_at = _delivery_time(signal_time)
        if deliver_at is not None:
            signal.scheduledTime.CopyFrom(to_timestamp(deliver_at))
        signal.requestTime.CopyFrom(to_timestamp(utcnow()))
        self._batch.actions.append(pb.OperationAction(sendSignal=signal))

    def schedule_new_orchestration(
        self,
        orchestrator: Callable[..., Any] | str,
        input: Any = None,
        instance_id: str | None = None,
        *,
        start_at: _dt.datetime | None = None,
        version: str | None = None,
    ) -> str:
        """Start an orchestration once this operation succeeds.

        Args:
            orchestrator: the orchestrator function, or its registered name.
            input: the orchestration's input.
            instance_id: the new instance's id; a random one by default.
            start_at: do not run it before this time.
            version: the orchestration version.

        Returns:
            The new instance's id.

        Raises:
            PayloadError: ``input`` cannot be serialized.
            InvalidInstanceIdError: ``instance_id`` is unusable.
        """
        name = name_of(orchestrator, "orchestrator")
        resolved = (
            validate_instance_id(instance_id, "orchestration instance id")
            if instance_id is not None
            else uuid.uuid4().hex
        )
        start = pb.StartNewOrchestrationAction(
            instanceId=resolved,
            name=name,
            input=sv(encode(input, f"input of orchestration {name!r}")),
            version=sv(version),
        )
        if start_at is not None:
            start.scheduledTime.CopyFrom(to_timestamp(start_at))
        start.requestTime.CopyFrom(to_timestamp(utcnow()))
        self._batch.actions.append(pb.OperationAction(startNewOrchestration=start))
        return resolved

    def __repr__(self) -> str:
        return f"<EntityContext {self._entity_id} operation={self._operation!r}>"
