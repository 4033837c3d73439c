"""The orchestration replay engine and the API orchestrator code is written against.

The engine is pure: history events in, actions out, no I/O. The worker drives it
with :class:`OrchestrationRunner`; users meet :class:`OrchestrationContext`,
:class:`Task` and friends through :mod:`dtask_async.task`.
"""

from ._activity_context import ActivityContext as ActivityContext
from ._context import (
    DEFAULT_MAX_TIMER_INTERVAL as DEFAULT_MAX_TIMER_INTERVAL,
    OrchestrationContext as OrchestrationContext,
)
from ._decorators import activity as activity, orchestration as orchestration
from ._logging import ReplaySafeLogger as ReplaySafeLogger
from ._retry import RetryPolicy as RetryPolicy
from ._runner import EpisodeResult as EpisodeResult, OrchestrationRunner as OrchestrationRunner
from ._tasks import Task as Task, when_all as when_all, when_any as when_any

__all__ = (
    # engine (used by the worker)
    "DEFAULT_MAX_TIMER_INTERVAL",
    "EpisodeResult",
    "OrchestrationRunner",
    # orchestrator API
    "OrchestrationContext",
    "ReplaySafeLogger",
    "RetryPolicy",
    "Task",
    "when_all",
    "when_any",
    # decorators and activity API
    "ActivityContext",
    "activity",
    "orchestration",
)
