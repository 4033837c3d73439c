"""``from dtask_async.azuremanaged.client import DurableTaskSchedulerClient``.

The import path the official ``durabletask.azuremanaged.client`` uses.
"""

from ._client import DurableTaskSchedulerClient as DurableTaskSchedulerClient

__all__ = ("DurableTaskSchedulerClient",)
