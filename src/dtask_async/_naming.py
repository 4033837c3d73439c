"""How orchestrators, activities and entities get their registered names."""

from __future__ import annotations

from typing import Any

from ._validation import check_sendable

__all__ = ("NAME_ATTRIBUTE", "name_of")

NAME_ATTRIBUTE = "__dtask_name__"
"""Set by ``@task.orchestration(name=...)`` and friends to override the name."""


def name_of(target: Any, what: str = "function") -> str:
    """The name ``target`` is registered under.

    A string is a name already; a function's name is the one given to its
    decorator, else its ``__name__``; a class or instance uses its class name.

    Raises:
        TypeError: ``target`` has no usable name.
    """
    if isinstance(target, str):
        if not target:
            raise ValueError(f"{what} name is empty")
        return check_sendable(target, f"{what} name")
    explicit = getattr(target, NAME_ATTRIBUTE, None)
    if isinstance(explicit, str) and explicit:
        return check_sendable(explicit, f"{what} name")
    name = getattr(target, "__name__", None)
    if isinstance(name, str) and name and name != "<lambda>":
        return name
    if hasattr(target, "run"):  # an instance of a class with a ``run`` method
        return type(target).__name__
    raise TypeError(f"cannot tell the name of {what} {target!r}; pass a name string instead")
