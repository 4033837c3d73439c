"""Input rules of the embedded backend and the error that carries a gRPC status.

Instance ids are 1 to :data:`MAX_INSTANCE_ID_LENGTH` characters long, contain no control
characters and do not start with ``@`` (that prefix is reserved for entity instance ids,
``@name@key``). Task hub names are 1 to 64 ASCII letters, digits, ``-`` or ``_`` and are
case-insensitive (they name files).
"""

from __future__ import annotations

import re
import unicodedata

import grpc

__all__ = (
    "MAX_INSTANCE_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "RpcFailure",
    "check_entity_id",
    "check_hub_name",
    "check_instance_id",
    "check_name",
)

MAX_INSTANCE_ID_LENGTH = 256
"""Longest accepted instance id, in characters (room for nested sub-orchestration ids)."""

MAX_NAME_LENGTH = 1024
"""Longest accepted orchestration or event name, in characters."""

_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class RpcFailure(Exception):
    """Raised inside the backend to end the current call with a gRPC status.

    Attributes:
        code: the ``grpc.StatusCode`` sent to the caller.
        message: the status details: what was expected, what was found, for what.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _has_control_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)


def check_instance_id(value: str, *, field: str = "instanceId") -> str:
    """Return ``value`` if it is a valid instance id, else raise INVALID_ARGUMENT."""
    if not value:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"{field} must not be empty")
    if len(value) > MAX_INSTANCE_ID_LENGTH:
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field} is {len(value)} characters long; at most {MAX_INSTANCE_ID_LENGTH} are "
            f"allowed (starts with {value[:40]!r})",
        )
    if _has_control_chars(value):
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field} {value!r} contains control characters",
        )
    if value.startswith("@"):
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field} {value!r} starts with '@', which is reserved for entity instance ids",
        )
    return value


def check_entity_id(value: str, *, field: str = "instanceId") -> str:
    """Return the entity instance id ``value`` (``@name@key``) with its name lower-cased,
    or raise INVALID_ARGUMENT."""
    if not value:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"{field} must not be empty")
    name, separator, key = value[1:].partition("@")
    if not value.startswith("@") or not separator or not name or not key:
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field} {value[:80]!r} is not an entity instance id: expected '@name@key' with "
            "a non-empty name and key",
        )
    if len(value) > MAX_INSTANCE_ID_LENGTH:
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{field} is {len(value)} characters long; at most {MAX_INSTANCE_ID_LENGTH} are "
            f"allowed (starts with {value[:40]!r})",
        )
    if _has_control_chars(value):
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT, f"{field} {value!r} contains control characters"
        )
    return f"@{name.lower()}@{key}"


def check_name(value: str, *, what: str) -> str:
    """Return ``value`` if it is a usable orchestration, activity or event name."""
    if not value:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{what} is {len(value)} characters long; at most {MAX_NAME_LENGTH} are allowed",
        )
    if _has_control_chars(value):
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT, f"{what} {value!r} contains control characters"
        )
    return value


def check_hub_name(value: str) -> str:
    """Return the normalized (lower-case) hub name, or raise INVALID_ARGUMENT."""
    if not _HUB_NAME.fullmatch(value):
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"task hub name {value[:80]!r} is invalid: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit",
        )
    return value.lower()
