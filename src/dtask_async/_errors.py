"""Every error this package raises on purpose.

The tree::

    DurableTaskError
     ├── ConnectionStringError        (also ValueError)   malformed connection string
     ├── PayloadError                 (also TypeError)    a value that cannot be encoded
     ├── PayloadTooLargeError         (also ValueError)   a message above the size limit
     ├── InvalidInstanceIdError       (also ValueError)   empty, too long, control chars
     ├── RegistrationError            (also ValueError)   duplicate or invalid name
     ├── HistoryFormatError           (also ValueError)   not a readable history document
     ├── RPCError                                         a failed call, with its status
     │    ├── ServerUnavailableError                      nothing answers at the address
     │    ├── AuthenticationError                         token missing, expired, refused
     │    ├── OrchestrationNotFoundError                  no such instance
     │    ├── OrchestrationAlreadyExistsError             id reuse refused
     │    ├── InvalidArgumentError     (also ValueError)  the server refused an argument
     │    ├── InvalidOperationError                       not allowed in the current state
     │    └── RPCTimeoutError          (also TimeoutError) the call's deadline passed
     ├── TaskFailedError                                  an awaited task failed
     │    └── EntityOperationFailedError                  an entity operation raised
     ├── OrchestrationFailedError                         ``raise_if_failed`` on a failure
     ├── NonDeterminismError                              code no longer matches history
     └── OrchestrationStateError                          misuse inside an orchestrator
          └── EntityLockError                             misuse of entity critical sections

The ``wait_for_*`` calls raise ``RPCTimeoutError``, which is also the builtin
``TimeoutError``.
gRPC status codes are translated to these classes in one place,
:func:`dtask_async.transport.translate_rpc_error`, which keeps the original
exception as ``__cause__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._models import FailureDetails
    from .entities import EntityInstanceId

__all__ = (
    "AuthenticationError",
    "ConnectionStringError",
    "DurableTaskError",
    "EntityLockError",
    "EntityOperationFailedError",
    "HistoryFormatError",
    "InvalidArgumentError",
    "InvalidInstanceIdError",
    "InvalidOperationError",
    "NonDeterminismError",
    "OrchestrationAlreadyExistsError",
    "OrchestrationFailedError",
    "OrchestrationNotFoundError",
    "OrchestrationStateError",
    "PayloadError",
    "PayloadTooLargeError",
    "RPCError",
    "RPCTimeoutError",
    "RegistrationError",
    "ServerUnavailableError",
    "TaskFailedError",
)


class DurableTaskError(Exception):
    """Root of every error raised by dtask-async."""


class ConnectionStringError(DurableTaskError, ValueError):
    """Raised when a connection string is malformed or has an unknown or missing key."""


class PayloadError(DurableTaskError, TypeError):
    """Raised when a value cannot be serialized to, or parsed from, a JSON payload."""


class PayloadTooLargeError(DurableTaskError, ValueError):
    """Raised when a message is larger than the configured gRPC message limit."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class InvalidInstanceIdError(DurableTaskError, ValueError):
    """Raised when an instance id is empty, too long or contains control characters."""


class RegistrationError(DurableTaskError, ValueError):
    """Raised when an orchestrator, activity or entity is registered twice or badly."""


class HistoryFormatError(DurableTaskError, ValueError):
    """Raised when a text or file is not a history document this version can read."""


class RPCError(DurableTaskError):
    """Raised when a call to the server fails.

    Attributes:
        code: the gRPC status code name (``"NOT_FOUND"``, ``"UNAVAILABLE"`` ...).
        details: the server's own message.
        method: the RPC that failed, such as ``"StartInstance"``.
    """

    def __init__(self, message: str, *, code: str, details: str = "", method: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details
        self.method = method


class ServerUnavailableError(RPCError):
    """Raised when no server answers at the configured address."""


class AuthenticationError(RPCError):
    """Raised when the server refuses the call's credentials (missing, expired, invalid)."""


class OrchestrationNotFoundError(RPCError):
    """Raised when an operation names an orchestration instance that does not exist."""


class OrchestrationAlreadyExistsError(RPCError):
    """Raised when an instance id is already in use and its reuse policy refuses it."""


class InvalidArgumentError(RPCError, ValueError):
    """Raised when the server refuses an argument (INVALID_ARGUMENT)."""


class RPCTimeoutError(RPCError, TimeoutError):
    """Raised when a call's deadline passes before the server answers."""


class InvalidOperationError(RPCError):
    """Raised when an operation is not allowed in the instance's current state."""


class TaskFailedError(DurableTaskError):
    """Raised inside an orchestrator when an awaited activity or sub-orchestration failed.

    Attributes:
        details: what failed, with the error type, message and stack trace of the
            original exception.
    """

    def __init__(self, message: str, details: FailureDetails) -> None:
        super().__init__(message)
        self.details = details

    @property
    def error_type(self) -> str:
        """The failed task's exception type, as ``module.ClassName``."""
        return self.details.error_type


class EntityOperationFailedError(TaskFailedError):
    """Raised inside an orchestrator when a called entity operation raised.

    Attributes:
        entity_instance_id: the entity (an ``entities.EntityInstanceId``), when known.
        operation_name: the operation that failed, when known.
    """

    def __init__(
        self,
        message: str,
        details: FailureDetails,
        *,
        entity_instance_id: EntityInstanceId | None = None,
        operation_name: str | None = None,
    ) -> None:
        super().__init__(message, details)
        self.entity_instance_id = entity_instance_id
        self.operation_name = operation_name


class OrchestrationFailedError(DurableTaskError):
    """Raised by ``OrchestrationState.raise_if_failed`` for a failed orchestration."""

    def __init__(self, message: str, details: FailureDetails | None) -> None:
        super().__init__(message)
        self.details = details


class NonDeterminismError(DurableTaskError):
    """Raised when an orchestrator's actions no longer match its recorded history."""


class OrchestrationStateError(DurableTaskError):
    """Raised when an orchestrator uses its context in a way the protocol does not allow."""


class EntityLockError(OrchestrationStateError):
    """Raised on misuse of entity critical sections (nesting, calling unlocked entities)."""


# Report ``dtask_async.TaskFailedError`` rather than the private module path in
# failure details and tracebacks.
for _name in __all__:
    globals()[_name].__module__ = "dtask_async"
del _name
