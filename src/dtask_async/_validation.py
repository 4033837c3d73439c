"""Checks on names and ids made before anything is sent."""

from __future__ import annotations

from ._errors import InvalidInstanceIdError

__all__ = ("MAX_INSTANCE_ID_LENGTH", "check_sendable", "validate_instance_id")

MAX_INSTANCE_ID_LENGTH = 256
"""The longest instance id accepted, in characters."""


def validate_instance_id(instance_id: object, what: str = "instance id") -> str:
    """Return ``instance_id`` if it is usable, else raise.

    An instance id is a non-empty string of at most
    :data:`MAX_INSTANCE_ID_LENGTH` characters with no control characters and no
    lone surrogates.

    Raises:
        InvalidInstanceIdError: naming what is wrong.
    """
    if not isinstance(instance_id, str):
        raise InvalidInstanceIdError(f"{what} must be a string, got {type(instance_id).__name__}")
    if not instance_id:
        raise InvalidInstanceIdError(f"{what} is empty")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInstanceIdError(
            f"{what} is {len(instance_id)} characters long; the limit is "
            f"{MAX_INSTANCE_ID_LENGTH}: {instance_id[:40]!r}..."
        )
    for index, char in enumerate(instance_id):
        if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
            raise InvalidInstanceIdError(
                f"{what} {instance_id!r} contains the control character {char!r} "
                f"at position {index}"
            )
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise InvalidInstanceIdError(
                f"{what} {instance_id!r} contains the lone surrogate {char!r} at position "
                f"{index}, which cannot be sent as UTF-8"
            )
    return instance_id


def check_sendable(text: str, what: str) -> str:
    """Return ``text`` if it can be sent as UTF-8, else raise naming ``what`` and where.

    Python strings may hold lone surrogates (from ``surrogateescape`` decoding, for
    one), which protobuf refuses with a bare ``UnicodeEncodeError``.

    Raises:
        ValueError: ``text`` contains a lone surrogate.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} {text!r} contains the lone surrogate {text[exc.start]!r} at position "
            f"{exc.start}, which cannot be sent as UTF-8"
        ) from None
    return text
