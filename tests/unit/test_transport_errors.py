from __future__ import annotations

import grpc
import pytest

from dtask_async import (
    AuthenticationError,
    InvalidArgumentError,
    OrchestrationAlreadyExistsError,
    OrchestrationNotFoundError,
    PayloadTooLargeError,
    RPCError,
    RPCTimeoutError,
    ServerUnavailableError,
)
from dtask_async.transport import parse_address, translate_rpc_error


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.UNAVAILABLE, ServerUnavailableError),
        (grpc.StatusCode.UNAUTHENTICATED, AuthenticationError),
        (grpc.StatusCode.PERMISSION_DENIED, AuthenticationError),
        (grpc.StatusCode.NOT_FOUND, OrchestrationNotFoundError),
        (grpc.StatusCode.ALREADY_EXISTS, OrchestrationAlreadyExistsError),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, RPCTimeoutError),
        (grpc.StatusCode.INTERNAL, RPCError),
    ],
)
def test_status_codes_map_to_error_classes(code: grpc.StatusCode, cls: type[RPCError]) -> None:
    error = translate_rpc_error(FakeRpcError(code, "details here"), method="GetInstance")
    assert type(error) is cls
    assert isinstance(error, RPCError)
    assert error.code == code.name
    assert error.method == "GetInstance"


def test_unavailable_names_the_address() -> None:
    target = parse_address("http://sidecar:4001")
    error = translate_rpc_error(
        FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"),
        method="StartInstance",
        target=target,
    )
    assert "http://sidecar:4001" in str(error)
    assert "connection refused" in str(error)


def test_timeouts_are_builtin_timeout_errors() -> None:
    error = translate_rpc_error(FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, ""), method="X")
    assert isinstance(error, TimeoutError)


def test_message_size_errors_name_size_and_limit() -> None:
    error = translate_rpc_error(
        FakeRpcError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "Received message larger than max (5000000 vs. 4194304)",
        ),
        method="CompleteActivityTask",
    )
    assert isinstance(error, PayloadTooLargeError)
    assert (error.size, error.limit) == (5_000_000, 4_194_304)
    assert "5,000,000" in str(error)
    assert "4,194,304" in str(error)


def test_a_status_given_as_numbers_maps_like_a_failed_call() -> None:
    from dtask_async import InvalidOperationError
    from dtask_async.transport._errors import status_error

    refused = status_error(
        grpc.StatusCode.FAILED_PRECONDITION.value[0],
        "no leased activity work item has completion token 't'",
        method="CompleteActivityTask",
    )
    assert isinstance(refused, InvalidOperationError)
    assert refused.code == "FAILED_PRECONDITION"
    assert "CompleteActivityTask" in str(refused)
    assert "completion token 't'" in str(refused)

    too_large = status_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
        "Received message larger than max (5000 vs. 4096)",
        method="CompleteActivityTask",
    )
    assert isinstance(too_large, PayloadTooLargeError)
    assert (too_large.size, too_large.limit) == (5000, 4096)

    unknown = status_error(999, "what", method="CompleteActivityTask")
    assert type(unknown) is RPCError
    assert unknown.code == "UNKNOWN"
