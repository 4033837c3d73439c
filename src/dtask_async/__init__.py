"""dtask-async: an asyncio-native SDK for durable workflows on the Durable Task protocol."""

import logging as _logging

from ._errors import (
    AuthenticationError as AuthenticationError,
)
from ._errors import (
    ConnectionStringError as ConnectionStringError,
)
from ._errors import (
    DurableTaskError as DurableTaskError,
)
from ._errors import (
    EntityLockError as EntityLockError,
)
from ._errors import (
    EntityOperationFailedError as EntityOperationFailedError,
)
from ._errors import (
    InvalidInstanceIdError as InvalidInstanceIdError,
)
from ._errors import (
    InvalidOperationError as InvalidOperationError,
)
from ._errors import (
    NonDeterminismError as NonDeterminismError,
)
from ._errors import (
    OrchestrationAlreadyExistsError as OrchestrationAlreadyExistsError,
)
from ._errors import (
    OrchestrationFailedError as OrchestrationFailedError,
)
from ._errors import (
    OrchestrationNotFoundError as OrchestrationNotFoundError,
)
from ._errors import (
    OrchestrationStateError as OrchestrationStateError,
)
from ._errors import (
    PayloadError as PayloadError,
)
from ._errors import (
    PayloadTooLargeError as PayloadTooLargeError,
)
from ._errors import (
    RegistrationError as RegistrationError,
)
from ._errors import (
    RPCError as RPCError,
)
from ._errors import (
    ServerUnavailableError as ServerUnavailableError,
)
from ._errors import (
    TaskFailedError as TaskFailedError,
)
from ._models import FailureDetails as FailureDetails
from ._models import OrchestrationStatus as OrchestrationStatus
from ._version import __version__ as __version__

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = (
    "__version__",
    # models
    "FailureDetails",
    "OrchestrationStatus",
    # errors
    "AuthenticationError",
    "ConnectionStringError",
    "DurableTaskError",
    "EntityLockError",
    "EntityOperationFailedError",
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
    "RegistrationError",
    "ServerUnavailableError",
    "TaskFailedError",
)
