"""dtask-async: an asyncio-native SDK for durable workflows on the Durable Task protocol."""

import logging as _logging

from ._environment import DurableEnvironment as DurableEnvironment
from ._errors import (
    AuthenticationError as AuthenticationError,
    ConnectionStringError as ConnectionStringError,
    DurableTaskError as DurableTaskError,
    EntityLockError as EntityLockError,
    EntityOperationFailedError as EntityOperationFailedError,
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
from ._quickstart import (
    DurableTaskClient as DurableTaskClient,
    DurableTaskWorker as DurableTaskWorker,
    TaskActivity as TaskActivity,
)
from ._version import __version__ as __version__
from .client import (
    AsyncDurableTaskClient as AsyncDurableTaskClient,
    OrchestrationState as OrchestrationState,
)
from .orchestration import OrchestrationContext as OrchestrationContext, Task as Task
from .transport import ChannelOptions as ChannelOptions
from .worker import (
    AsyncDurableTaskWorker as AsyncDurableTaskWorker,
    ConcurrencyOptions as ConcurrencyOptions,
    ReconnectPolicy as ReconnectPolicy,
)

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
