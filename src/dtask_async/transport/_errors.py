"""The one place where gRPC errors become dtask-async errors."""

from __future__ import annotations

import re

import grpc

from .._errors import (
    AuthenticationError,
    DurableTaskError,
    InvalidArgumentError,
    InvalidOperationError,
    OrchestrationAlreadyExistsError,
    OrchestrationNotFoundError,
    PayloadTooLargeError,
    RPCError,
    RPCTimeoutError,
    ServerUnavailableError,
)
from ._address import Target

__all__ = ("status_error", "translate_rpc_error")

_BY_CODE: dict[grpc.StatusCode, type[RPCError]] = {
    grpc.StatusCode.UNAVAILABLE: ServerUnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: AuthenticationError,
    grpc.StatusCode.NOT_FOUND: OrchestrationNotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: OrchestrationAlreadyExistsError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidOperationError,
    grpc.StatusCode.DEADLINE_EXCEEDED: RPCTimeoutError,
}

_SIZE = re.compile(r"larger than max \((\d+) vs\. (\d+)\)")


def translate_rpc_error(
    exc: grpc.RpcError, *, method: str, target: Target | None = None
) -> DurableTaskError:
    """The dtask-async error for a failed call; raise it ``from exc``.

    Args:
        exc: the gRPC error (``grpc.aio.AioRpcError`` or a sync ``grpc.RpcError``).
        method: the RPC's name, such as ``"StartInstance"``.
        target: the server, named in connectivity errors.
    """
    code_fn = getattr(exc, "code", None)
    code: grpc.StatusCode = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details_fn = getattr(exc, "details", None)
    details = str(details_fn() or "") if callable(details_fn) else str(exc)
    where = f" at {target.original}" if target is not None else ""
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        match = _SIZE.search(details)
        if match:
            size, limit = int(match.group(1)), int(match.group(2))
            return PayloadTooLargeError(
                f"{method}: a message of {size:,} bytes is larger than the {limit:,}-byte "
                "gRPC message limit (raise ChannelOptions.max_*_message_bytes on both sides, "
                "or send a smaller payload)",
                size=size,
                limit=limit,
            )
    cls = _BY_CODE.get(code, RPCError)
    if cls is ServerUnavailableError:
        message = (
            f"cannot reach the Durable Task server{where} ({method}: {details or 'no details'})"
        )
    elif cls is AuthenticationError:
        message = f"the server{where} refused the credentials ({code.name}: {details})"
    elif cls is RPCTimeoutError:
        message = f"{method}: the deadline passed before the server{where} answered"
    else:
        message = f"{method} failed with {code.name}: {details}"
    return cls(message, code=code.name, details=details, method=method)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


class _Status:
    """A status that did not come as an exception (a work channel outcome)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def status_error(
    code: int, details: str, *, method: str, target: Target | None = None
) -> DurableTaskError:
    """The dtask-async error for a status given as a number and a message, as
    :func:`translate_rpc_error` makes it for a failed call."""
    status = _Status(_CODES.get(code, grpc.StatusCode.UNKNOWN), details)
    return translate_rpc_error(status, method=method, target=target)
