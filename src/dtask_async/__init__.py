"""dtask-async: an asyncio-native SDK for durable workflows on the Durable Task protocol."""

import importlib as _importlib
import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING, Any as _Any

from ._errors import (
    AuthenticationError as AuthenticationError,
    ConnectionStringError as ConnectionStringError,
    DurableTaskError as DurableTaskError,
    EntityLockError as EntityLockError,
    EntityOperationFailedError as EntityOperationFailedError,
    HistoryFormatError as HistoryFormatError,
    InvalidArgumentError as InvalidArgumentError,
    InvalidInstanceIdError as InvalidInstanceIdError,
    InvalidOperationError as InvalidOperationError,
    NonDeterminismError as NonDeterminismError,
    OrchestrationAlreadyExistsError as OrchestrationAlreadyExistsError,
    OrchestrationFailedError as OrchestrationFailedError,
    OrchestrationNotFoundError as OrchestrationNotFoundError,
    OrchestrationStateError as OrchestrationStateError,
    PayloadError as PayloadError,
    PayloadTooLargeError as PayloadTooLargeError,
    RegistrationError as RegistrationError,
    RPCError as RPCError,
    RPCTimeoutError as RPCTimeoutError,
    ServerUnavailableError as ServerUnavailableError,
    TaskFailedError as TaskFailedError,
)
from ._models import FailureDetails as FailureDetails, OrchestrationStatus as OrchestrationStatus
from ._version import __version__ as __version__
from .orchestration import OrchestrationContext as OrchestrationContext, Task as Task
from .transport import ChannelOptions as ChannelOptions
from .worker import (
    AsyncDurableTaskWorker as AsyncDurableTaskWorker,
    ConcurrencyOptions as ConcurrencyOptions,
    ReconnectPolicy as ReconnectPolicy,
)

if _TYPE_CHECKING:
    from ._environment import DurableEnvironment as DurableEnvironment
    from ._quickstart import (
        DurableTaskClient as DurableTaskClient,
        DurableTaskWorker as DurableTaskWorker,
        TaskActivity as TaskActivity,
    )
    from .client import (
        AsyncDurableTaskClient as AsyncDurableTaskClient,
        OrchestrationState as OrchestrationState,
    )

# Loaded on first use: a process that only runs a worker does not need the client,
# the environment helpers or the Azure classes in memory.
_LAZY = {
    "AsyncDurableTaskClient": ".client",
    "OrchestrationState": ".client",
    "DurableEnvironment": "._environment",
    "DurableTaskClient": "._quickstart",
    "DurableTaskWorker": "._quickstart",
    "TaskActivity": "._quickstart",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = (
    "__version__",
    # client, worker, environment
    "AsyncDurableTaskClient",
    "AsyncDurableTaskWorker",
    "DurableEnvironment",
    "OrchestrationState",
    # options
    "ChannelOptions",
    "ConcurrencyOptions",
    "ReconnectPolicy",
    # connection-string shorthands and class-based tasks
    "DurableTaskClient",
    "DurableTaskWorker",
    "OrchestrationContext",
    "Task",
    "TaskActivity",
    # models
    "FailureDetails",
    "OrchestrationStatus",
    # errors
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
