"""What a worker can run: orchestrators, activities and entities by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import RegistrationError
from .._naming import name_of
from .._serialization import input_type_of
from ..entities._entity import DurableEntity

__all__ = ("Registry", "RegisteredActivity", "RegisteredEntity")


@dataclass(frozen=True, slots=True)
class RegisteredActivity:
    """An activity ready to call: the callable, how to call it, its input type."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    takes_input: bool
    input_type: Any


@dataclass(frozen=True, slots=True)
class RegisteredEntity:
    """An entity ready to run: a ``DurableEntity`` subclass, or a function ``(ctx, input)``."""

    name: str
    target: Any
    is_class: bool
    is_async: bool = False
    """For a function: whether it is ``async def``."""
    takes_input: bool = True
    """For a function: whether it takes the input after the context."""
    input_type: Any = None
    """For a function: the annotation of its input parameter."""


def _callable_of(target: Any) -> Callable[..., Any]:
    # Class-based activities and orchestrators expose a ``run`` method.
    if not inspect.isfunction(target) and not inspect.ismethod(target):
        run = getattr(target, "run", None)
        if callable(run):
            return run  # type: ignore[no-any-return]
    if not callable(target):
        raise RegistrationError(f"expected a function, got {type(target).__name__}")
    return target  # type: ignore[no-any-return]


def _positional_count(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return 2
    return sum(
        1
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


class Registry:
    """Names to functions, with duplicates refused."""

    def __init__(self) -> None:
        self.orchestrators: dict[str, Callable[..., Any]] = {}
        self.activities: dict[str, RegisteredActivity] = {}
        self.entities: dict[str, RegisteredEntity] = {}

    @staticmethod
    def _check_new(table: dict[str, Any], name: str, kind: str) -> None:
        if name in table:
            raise RegistrationError(f"{kind} {name!r} is already registered with this worker")

    def add_orchestrator(self, fn: Any, name: str | None = None) -> str:
        """Register an orchestrator; returns its name."""
        resolved = name or name_of(fn, "orchestrator")
        self._check_new(self.orchestrators, resolved, "an orchestrator named")
        self.orchestrators[resolved] = _callable_of(fn)
        return resolved

    def add_activity(self, fn: Any, name: str | None = None) -> str:
        """Register an activity; returns its name."""
        resolved = name or name_of(fn, "activity")
        self._check_new(self.activities, resolved, "an activity named")
        target = _callable_of(fn)
        self.activities[resolved] = RegisteredActivity(
            name=resolved,
            fn=target,
            is_async=inspect.iscoroutinefunction(target),
            takes_input=_positional_count(target) >= 2,
            input_type=input_type_of(target),
        )
        return resolved

    def add_entity(self, entity: Any, name: str | None = None) -> str:
        """Register an entity (function or ``DurableEntity`` class); returns its
        lower-cased name."""
        is_class = isinstance(entity, type)
        if is_class and not issubclass(entity, DurableEntity):
            raise RegistrationError(
                f"entity class {entity.__name__!r} must subclass entities.DurableEntity"
            )
        if not is_class and not callable(entity):
            raise RegistrationError(
                f"an entity is a function (ctx, input) or a DurableEntity subclass, "
                f"got {type(entity).__name__}"
            )
        if name is None:
            name = entity.__name__ if is_class else name_of(entity, "entity")
        if not isinstance(name, str) or not name or "@" in name:
            raise RegistrationError(f"entity name {name!r} must be non-empty and contain no '@'")
        resolved = name.lower()
        self._check_new(self.entities, resolved, "an entity named")
        if is_class:
            self.entities[resolved] = RegisteredEntity(resolved, entity, is_class=True)
        else:
            self.entities[resolved] = RegisteredEntity(
                resolved,
                entity,
                is_class=False,
                is_async=inspect.iscoroutinefunction(entity),
                takes_input=_positional_count(entity) >= 2,
                input_type=input_type_of(entity),
            )
        return resolved

    def orchestrator(self, name: str) -> Callable[..., Any] | None:
        """The orchestrator registered as ``name``, if any."""
        return self.orchestrators.get(name)
