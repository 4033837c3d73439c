"""The asyncio client and the types it returns.

``from dtask_async.client import AsyncDurableTaskClient, OrchestrationStatus,
OrchestrationState``.
"""

from .._models import FailureDetails as FailureDetails, OrchestrationStatus as OrchestrationStatus
from ._client import AsyncDurableTaskClient as AsyncDurableTaskClient
from ._state import (
    CleanEntityStorageResult as CleanEntityStorageResult,
    EntityMetadata as EntityMetadata,
    EntityQuery as EntityQuery,
    HistoryEvent as HistoryEvent,
    HistoryStream as HistoryStream,
    OrchestrationQuery as OrchestrationQuery,
    OrchestrationState as OrchestrationState,
    Page as Page,
    PurgeResult as PurgeResult,
)

__all__ = (
    "AsyncDurableTaskClient",
    "CleanEntityStorageResult",
    "EntityMetadata",
    "EntityQuery",
    "FailureDetails",
    "HistoryEvent",
    "HistoryStream",
    "OrchestrationQuery",
    "OrchestrationState",
    "OrchestrationStatus",
    "Page",
    "PurgeResult",
)
