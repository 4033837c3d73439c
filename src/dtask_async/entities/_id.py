"""Entity instance ids: ``@name@key``, the name lower-cased."""

from __future__ import annotations

from typing import Any

from .._errors import InvalidInstanceIdError
from .._validation import validate_instance_id

__all__ = ("EntityInstanceId", "entity_id_of")


class EntityInstanceId:
    """The id of one entity instance: an entity name and a key.

    Its string form, used as the instance id on the wire, is ``@name@key``. Names
    are case-insensitive and stored lower-cased (``EntityInstanceId("Counter",
    "a")`` and ``EntityInstanceId("counter", "a")`` are the same entity); keys are
    case-sensitive. Ids compare equal by name and key, hash accordingly, and are
    ordered by their string form (the order in which locks are taken).

    Args:
        name: the entity's registered name: not empty, no ``@``.
        key: which instance: not empty (it may contain ``@``).

    Raises:
        TypeError: ``name`` or ``key`` is not a string.
        InvalidInstanceIdError: (a ``ValueError``) the name or key is unusable.
    """

    __slots__ = ("_key", "_name", "_text")

    def __init__(self, name: str, key: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"entity name must be a string, got {type(name).__name__}")
        if not isinstance(key, str):
            raise TypeError(
                f"entity key must be a string, got {type(key).__name__} {key!r}; "
                "convert it with str() first"
            )
        if not name:
            raise InvalidInstanceIdError("entity name is empty")
        if "@" in name:
            raise InvalidInstanceIdError(f"entity name {name!r} contains '@', which is not allowed")
        if not key:
            raise InvalidInstanceIdError(f"the key of entity {name!r} is empty")
        self._name = name.lower()
        self._key = key
        self._text = f"@{self._name}@{key}"
        validate_instance_id(self._text, "entity instance id")

    @classmethod
    def parse(cls, text: str) -> EntityInstanceId:
        """Read an id from its string form ``@name@key``.

        Raises:
            InvalidInstanceIdError: (a ``ValueError``) ``text`` is not of that form.
        """
        if not isinstance(text, str):
            raise TypeError(f"an entity instance id is a string, got {type(text).__name__}")
        if not text.startswith("@"):
            raise InvalidInstanceIdError(
                f"{text!r} is not an entity instance id: it must look like '@name@key'"
            )
        name, separator, key = text[1:].partition("@")
        if not separator:
            raise InvalidInstanceIdError(
                f"{text!r} is not an entity instance id: no '@' between name and key "
                "(expected '@name@key')"
            )
        return cls(name, key)

    @property
    def name(self) -> str:
        """The entity name, lower-cased."""
        return self._name

    @property
    def entity(self) -> str:
        """The entity name (the attribute name the official SDK uses)."""
        return self._name

    @property
    def key(self) -> str:
        """The entity key."""
        return self._key

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"EntityInstanceId(name={self._name!r}, key={self._key!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntityInstanceId):
            return NotImplemented
        return self._text == other._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, EntityInstanceId):
            return NotImplemented
        return self._text < other._text

    def __le__(self, other: object) -> bool:
        if not isinstance(other, EntityInstanceId):
            return NotImplemented
        return self._text <= other._text

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, EntityInstanceId):
            return NotImplemented
        return self._text > other._text

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, EntityInstanceId):
            return NotImplemented
        return self._text >= other._text

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_text"):
            raise AttributeError("EntityInstanceId is immutable")
        object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (EntityInstanceId, (self._name, self._key))

    # Payload hooks: an id inside an input or a result travels as its string form.
    def to_json(self) -> str:
        """The JSON form of the id: its string form."""
        return self._text

    @classmethod
    def from_json(cls, value: Any) -> EntityInstanceId:
        """Rebuild an id from its JSON form (the string form)."""
        if isinstance(value, EntityInstanceId):
            return value
        return cls.parse(value)


def entity_id_of(value: object, what: str = "entity") -> EntityInstanceId:
    """``value`` as an :class:`EntityInstanceId`: an id already, or its string form.

    Raises:
        TypeError: ``value`` is neither.
        InvalidInstanceIdError: the string is not of the form ``@name@key``.
    """
    if isinstance(value, EntityInstanceId):
        return value
    if isinstance(value, str):
        return EntityInstanceId.parse(value)
    raise TypeError(
        f"{what} must be an entities.EntityInstanceId (or its '@name@key' string form), "
        f"got {type(value).__name__}"
    )
