"""Small conversions between protocol messages and Python values.

Used by the client, the worker and the backend; nothing here does I/O.
"""

from __future__ import annotations

import datetime as _dt
import traceback

from ._models import FailureDetails, OrchestrationStatus
from ._proto import StringValue, Timestamp, pb

__all__ = (
    "error_type_name",
    "failure_from_exception",
    "failure_from_pb",
    "failure_to_pb",
    "opt_str",
    "status_from_pb",
    "status_to_pb",
    "sv",
    "to_datetime",
    "to_timestamp",
    "utcnow",
)

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def utcnow() -> _dt.datetime:
    """The current time as an aware UTC datetime."""
    return _dt.datetime.now(_dt.timezone.utc)


def to_timestamp(value: _dt.datetime) -> Timestamp:
    """A protobuf ``Timestamp`` for ``value``; naive datetimes are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    delta = value - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return Timestamp(seconds=seconds, nanos=delta.microseconds * 1000)


def to_datetime(ts: Timestamp) -> _dt.datetime:
    """An aware UTC datetime for a protobuf ``Timestamp``."""
    return _EPOCH + _dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def sv(value: str | None) -> StringValue | None:
    """A ``StringValue`` wrapper, or ``None`` for an absent value."""
    return None if value is None else StringValue(value=value)


def opt_str(message: object, field: str) -> str | None:
    """The string inside an optional ``StringValue`` field, or ``None`` if unset."""
    if message.HasField(field):  # type: ignore[attr-defined]
        return str(getattr(message, field).value)
    return None


def status_from_pb(value: int) -> OrchestrationStatus:
    """The public status for a protocol ``OrchestrationStatus`` number."""
    return OrchestrationStatus(value)


def status_to_pb(value: OrchestrationStatus) -> int:
    """The protocol number of a public status."""
    return value.value


def error_type_name(exc_type: type[BaseException]) -> str:
    """``module.ClassName`` for an exception class; builtins keep their bare name."""
    module = exc_type.__module__
    if module in ("builtins", "__main__", None):
        return exc_type.__qualname__
    return f"{module}.{exc_type.__qualname__}"


def failure_from_exception(exc: BaseException, *, with_stack: bool = True) -> FailureDetails:
    """Failure details describing ``exc``, with its cause chain as inner failures."""
    inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    stack = "".join(traceback.format_exception(exc)) if with_stack else None
    details = getattr(exc, "details", None)
    if isinstance(details, FailureDetails) and type(exc).__name__ == "TaskFailedError":
        # A task failure re-raised unchanged by user code keeps the original failure.
        return details
    return FailureDetails(
        message=_sendable(str(exc)),
        error_type=error_type_name(type(exc)),
        stack_trace=_sendable(stack) if stack is not None else None,
        inner_failure=failure_from_exception(inner, with_stack=False) if inner else None,
        is_non_retriable=bool(getattr(exc, "is_non_retriable", False)),
    )


def _sendable(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates) escaped as ``\\udXXX``."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def failure_to_pb(details: FailureDetails) -> pb.TaskFailureDetails:
    """The protocol message for ``details``."""
    message = pb.TaskFailureDetails(
        errorType=details.error_type,
        errorMessage=details.message,
        isNonRetriable=details.is_non_retriable,
    )
    if details.stack_trace is not None:
        message.stackTrace.value = details.stack_trace
    if details.inner_failure is not None:
        message.innerFailure.CopyFrom(failure_to_pb(details.inner_failure))
    return message


def failure_from_pb(message: pb.TaskFailureDetails) -> FailureDetails:
    """``FailureDetails`` for a protocol message."""
    return FailureDetails(
        message=message.errorMessage,
        error_type=message.errorType,
        stack_trace=message.stackTrace.value if message.HasField("stackTrace") else None,
        inner_failure=failure_from_pb(message.innerFailure)
        if message.HasField("innerFailure")
        else None,
        is_non_retriable=message.isNonRetriable,
    )


# -- hand encoding, for messages assembled from already-serialized parts ----------------


def varint(value: int) -> bytes:
    """``value`` (not negative) as a protobuf base-128 varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def length_delimited(tag: int, payload: bytes) -> bytes:
    """One length-delimited field: its one-byte ``tag`` (field number << 3 | 2), the
    length of ``payload`` and ``payload``."""
    return bytes((tag,)) + varint(len(payload)) + payload
