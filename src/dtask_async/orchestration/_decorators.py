"""``@task.orchestration`` and ``@task.activity``: mark a function and maybe rename it."""

from __future__ import annotations

import collections.abc
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .._naming import NAME_ATTRIBUTE
from .._serialization import memo_per_callable

__all__ = ("KIND_ATTRIBUTE", "activity", "orchestration", "result_type_of", "takes_input")

F = TypeVar("F", bound=Callable[..., Any])

KIND_ATTRIBUTE = "__dtask_kind__"
"""Set to ``"orchestration"`` or ``"activity"`` by the decorators."""


def _check_name(kind: str, name: str | None) -> None:
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"@task.{kind}(name=...) needs a non-empty string, got {name!r}")


def _mark(fn: F, kind: str, name: str | None) -> F:
    if not callable(fn):
        raise TypeError(f"@task.{kind} decorates a function, got {type(fn).__name__}")
    _check_name(kind, name)
    if name is not None:
        setattr(fn, NAME_ATTRIBUTE, name)
    setattr(fn, KIND_ATTRIBUTE, kind)
    return fn


@overload
def orchestration(fn: F, /) -> F: ...
@overload
def orchestration(*, name: str | None = None) -> Callable[[F], F]: ...
def orchestration(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a function as an orchestrator; use bare or as ``@task.orchestration(name="x")``.

    The function is returned unchanged. Its registered name is ``name`` when
    given, else the function's ``__name__``.

    Args:
        fn: the orchestrator function (bare decorator form).
        name: the name to register and schedule it under.
    """
    _check_name("orchestration", name)
    if fn is not None:
        return _mark(fn, "orchestration", name)
    return lambda f: _mark(f, "orchestration", name)


@overload
def activity(fn: F, /) -> F: ...
@overload
def activity(*, name: str | None = None) -> Callable[[F], F]: ...
def activity(fn: F | None = None, /, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a function as an activity; use bare or as ``@task.activity(name="x")``.

    The function is returned unchanged. Its registered name is ``name`` when
    given, else the function's ``__name__``.

    Args:
        fn: the activity function (bare decorator form).
        name: the name to register and call it by.
    """
    _check_name("activity", name)
    if fn is not None:
        return _mark(fn, "activity", name)
    return lambda f: _mark(f, "activity", name)


@functools.lru_cache(maxsize=1024)
def _result_type_cached(fn: Callable[..., Any]) -> Any:
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        return None
    if hint is None or hint is type(None) or hint is Any:
        return None
    origin = typing.get_origin(hint)
    if origin in (collections.abc.Generator, collections.abc.Coroutine):
        args = typing.get_args(hint)
        return args[2] if len(args) == 3 else None
    if origin in (collections.abc.Iterator, collections.abc.Iterable, collections.abc.Awaitable):
        return None
    return hint


def result_type_of(fn: Any) -> Any:
    """The type ``fn``'s result is rebuilt as: its return annotation, or ``None``.

    For a generator orchestrator annotated ``Generator[Task, Any, R]`` it is ``R``.
    """
    if isinstance(fn, str) or not callable(fn):
        return None
    try:
        return _result_type_cached(fn)
    except TypeError:  # unhashable callable
        return None


@memo_per_callable
def takes_input(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a second positional argument (the input) after the context."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = 0
    for param in params:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    return positional != 1
