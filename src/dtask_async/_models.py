"""Value types shared by the client, the worker and the replay engine."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ("FailureDetails", "OrchestrationStatus")


class OrchestrationStatus(enum.Enum):
    """The runtime status of an orchestration instance.

    The values are the protocol's ``OrchestrationStatus`` numbers.
    """

    RUNNING = 0
    COMPLETED = 1
    CONTINUED_AS_NEW = 2
    FAILED = 3
    CANCELED = 4
    TERMINATED = 5
    PENDING = 6
    SUSPENDED = 7

    @property
    def is_terminal(self) -> bool:
        """Whether an instance in this status will never run again by itself."""
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.name


_TERMINAL = frozenset(
    {
        OrchestrationStatus.COMPLETED,
        OrchestrationStatus.FAILED,
        OrchestrationStatus.TERMINATED,
        OrchestrationStatus.CANCELED,
    }
)


@dataclass(frozen=True)
class FailureDetails:
    """What went wrong in a failed activity, orchestration or entity operation.

    Attributes:
        message: the exception's message.
        error_type: the exception type as ``module.ClassName`` (builtins without a
            module, e.g. ``ValueError``).
        stack_trace: the formatted traceback, when one was recorded.
        inner_failure: the failure that caused this one, if any.
        is_non_retriable: whether retry policies must not retry this failure.
    """

    message: str
    error_type: str
    stack_trace: str | None = None
    inner_failure: FailureDetails | None = None
    is_non_retriable: bool = False

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"
