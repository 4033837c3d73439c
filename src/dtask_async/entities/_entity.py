"""Class-based entities: one method per operation."""

from __future__ import annotations

import datetime as _dt
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from ._context import EntityContext
from ._id import EntityInstanceId

__all__ = ("DurableEntity", "instantiate", "operation_table")

S = TypeVar("S")
E = TypeVar("E", bound="DurableEntity")

# Helpers every entity inherits; they are not operations a message can run.
_NOT_OPERATIONS = frozenset(
    {
        "entity_context",
        "entity_id",
        "get_state",
        "set_state",
        "signal_entity",
        "schedule_new_orchestration",
    }
)


class DurableEntity:
    """Base class of class-based entities: the operation name selects the method.

    A method takes the operation's input as its one argument (or none), and its
    return value is the operation's result. ``async def`` methods run on the
    worker's event loop, plain ones in a worker thread. A new object is made for
    every operation; keep data in the entity state, not in attributes::

        class Counter(entities.DurableEntity):
            def __init__(self):
                self.set_state(0)   # the initial state of a new entity

            def add(self, amount: int):
                self.set_state(self.get_state(int, 0) + amount)

            def get(self) -> int:
                return self.get_state(int, 0)

    A state set in ``__init__`` applies only to an entity that has no state yet:
    the stored state wins. Every entity also has a ``delete`` operation, which
    removes its state.
    """

    _dtask_context: EntityContext | None = None
    _dtask_constructing: bool = False

    @property
    def entity_context(self) -> EntityContext:
        """The context of the operation being run.

        Outside a worker (an entity object created in a unit test) a local
        context keeps the state in memory, so operations can be called directly.
        """
        context = self._dtask_context
        if context is None:
            context = EntityContext(EntityInstanceId(type(self).__name__, "local"), "")
            self._dtask_context = context
        return context

    @property
    def entity_id(self) -> EntityInstanceId:
        """The entity's id."""
        return self.entity_context.entity_id

    @overload
    def get_state(self, intended_type: type[S], default: S) -> S: ...
    @overload
    def get_state(self, intended_type: type[S], default: None = None) -> S | None: ...
    @overload
    def get_state(self, intended_type: None = None, default: Any = None) -> Any: ...
    def get_state(self, intended_type: Any = None, default: Any = None) -> Any:
        """The entity's state, or ``default`` when it has none (see
        :meth:`EntityContext.get_state`)."""
        return self.entity_context.get_state(intended_type, default)

    def set_state(self, state: Any) -> None:
        """Replace the entity's state; ``None`` deletes it.

        Called from ``__init__``, it sets the initial state of a new entity and
        leaves an existing entity's state alone.
        """
        if self._dtask_constructing:
            self.entity_context._set_initial_state(state)
        else:
            self.entity_context.set_state(state)

    def signal_entity(
        self,
        entity_id: EntityInstanceId | str,
        operation: str,
        input: Any = None,
        *,
        signal_time: _dt.datetime | _dt.timedelta | None = None,
    ) -> None:
        """Send an operation to an entity without waiting (see
        :meth:`EntityContext.signal_entity`)."""
        self.entity_context.signal_entity(entity_id, operation, input, signal_time=signal_time)

    def schedule_new_orchestration(
        self,
        orchestrator: Callable[..., Any] | str,
        input: Any = None,
        instance_id: str | None = None,
        **options: Any,
    ) -> str:
        """Start an orchestration once this operation succeeds (see
        :meth:`EntityContext.schedule_new_orchestration`)."""
        return self.entity_context.schedule_new_orchestration(
            orchestrator, input, instance_id, **options
        )

    def delete(self) -> None:
        """The built-in ``delete`` operation: remove the entity's state."""
        self.entity_context.set_state(None)


def instantiate(cls: type[E], context: EntityContext) -> E:
    """Create an entity object for one operation, with ``context`` attached first.

    The context is attached before ``__init__`` runs, so a constructor can read
    the state and set an initial one.
    """
    entity = cls.__new__(cls)
    entity._dtask_context = context
    entity._dtask_constructing = True
    try:
        entity.__init__()  # type: ignore[misc]
    finally:
        entity._dtask_constructing = False
    return entity


_TABLES: dict[type, Mapping[str, str]] = {}


def operation_table(cls: type[DurableEntity]) -> Mapping[str, str]:
    """The operations of an entity class: each callable public attribute, by its
    lower-cased name (an exact match is tried first when dispatching)."""
    known = _TABLES.get(cls)
    if known is not None:
        return known
    table: dict[str, str] = {}
    for name in dir(cls):
        if name.startswith("_") or name in _NOT_OPERATIONS:
            continue
        attribute = inspect.getattr_static(cls, name, None)
        if isinstance(attribute, (staticmethod, classmethod)):
            attribute = attribute.__func__
        if isinstance(attribute, property) or not callable(attribute):
            continue
        table.setdefault(name.lower(), name)
    _TABLES[cls] = table
    return table
