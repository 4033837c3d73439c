"""The entity side of an orchestration: calls waiting for responses, and critical sections.

Protocol, as the Durable Task backends carry it out:

* ``call_entity`` sends ``EntityOperationCalled`` (a ``requestId``, the operation,
  the target ``@name@key``, the caller's instance and execution id). The entity's
  answer arrives as ``EntityOperationCompleted`` or ``EntityOperationFailed``
  carrying the same ``requestId``.
* ``signal_entity`` sends ``EntityOperationSignaled``; nothing comes back.
* ``lock_entities`` sends one ``EntityLockRequested`` with a ``criticalSectionId``,
  the sorted, de-duplicated ``lockSet`` and ``position`` 0. The backend locks the
  entities one after another in that order (a fixed global order, so two critical
  sections can never wait on each other) and answers ``EntityLockGranted``.
* Leaving the critical section sends one ``EntityUnlockSent`` per locked entity.

Request and critical-section ids come from ``ctx.new_uuid()``: the same at the
same point of every replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._errors import EntityLockError
from ..entities._id import EntityInstanceId, entity_id_of
from ..entities._lock import EntityLock
from ._tasks import CompletableTask

__all__ = ("CriticalSection", "EntityCall", "EntityState", "lock_order")


@dataclass(eq=False, slots=True)
class EntityCall:
    """An entity operation called by the orchestration, waiting for its response."""

    entity: EntityInstanceId
    operation: str
    id: int
    task: CompletableTask[Any]
    result_type: Any

    def describe(self) -> str:
        return f"operation {self.operation!r} on entity {self.entity}"


@dataclass(eq=False, slots=True)
class CriticalSection:
    """Locks requested by ``lock_entities``: pending until granted, then held until released."""

    id: str
    entities: tuple[EntityInstanceId, ...]
    task: CompletableTask[EntityLock]
    granted: bool = False
    calling: set[EntityInstanceId] = field(default_factory=set)
    """Locked entities with a call in flight (one call per entity at a time)."""

    def names(self) -> str:
        return ", ".join(str(e) for e in self.entities)


def lock_order(entity_ids: object) -> tuple[EntityInstanceId, ...]:
    """The entities to lock: validated, de-duplicated, in the global lock order."""
    if isinstance(entity_ids, (EntityInstanceId, str)):
        entity_ids = [entity_ids]
    if not isinstance(entity_ids, Iterable):
        raise TypeError(
            "lock_entities() takes a list of entities.EntityInstanceId, got "
            f"{type(entity_ids).__name__}"
        )
    ids = {entity_id_of(e, "lock_entities() entity") for e in entity_ids}
    if not ids:
        raise ValueError("lock_entities() needs at least one entity")
    return tuple(sorted(ids))


class EntityState:
    """Per-execution entity bookkeeping of an orchestration context."""

    __slots__ = ("calls", "section")

    def __init__(self) -> None:
        self.calls: dict[str, EntityCall] = {}
        """Calls waiting for a response, by request id."""
        self.section: CriticalSection | None = None
        """The current critical section, requested or granted."""

    def check_call(self, entity: EntityInstanceId) -> None:
        """Refuse a call the current critical section does not allow."""
        section = self.section
        if section is None:
            return
        if not section.granted:
            raise EntityLockError(
                f"cannot call entity {entity} before the locks requested by "
                f"lock_entities() ({section.names()}) are granted; yield the "
                "lock_entities() task first"
            )
        if entity not in section.entities:
            raise EntityLockError(
                f"cannot call entity {entity} inside a critical section that has not "
                f"locked it (locked: {section.names()}); lock every entity the "
                "critical section calls"
            )
        if entity in section.calling:
            raise EntityLockError(
                f"cannot call entity {entity} again inside a critical section while an "
                "earlier call to it is still waiting for its result; yield that call first"
            )

    def check_signal(self, entity: EntityInstanceId) -> None:
        """Refuse a signal to an entity the current critical section holds."""
        section = self.section
        if section is not None and entity in section.entities:
            raise EntityLockError(
                f"cannot signal entity {entity} inside the critical section that locks it; "
                "use call_entity() for locked entities"
            )

    def check_lock(self) -> None:
        """Refuse nested critical sections."""
        section = self.section
        if section is not None:
            raise EntityLockError(
                "lock_entities() called inside a critical section that already "
                f"locks {section.names()}; critical sections cannot be nested: leave "
                "the `with` block first, or lock every entity at once"
            )

    def call_started(self, request_id: str, call: EntityCall) -> None:
        self.calls[request_id] = call
        if self.section is not None:
            self.section.calling.add(call.entity)

    def call_finished(self, request_id: str) -> EntityCall | None:
        call = self.calls.pop(request_id, None)
        if call is not None and self.section is not None:
            self.section.calling.discard(call.entity)
        return call

    def rename_call(self, ours: str, recorded: str) -> None:
        """Follow a backend that recorded a call under another request id."""
        if ours != recorded and ours in self.calls:
            self.calls[recorded] = self.calls.pop(ours)
