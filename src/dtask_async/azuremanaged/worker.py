"""``from dtask_async.azuremanaged.worker import DurableTaskSchedulerWorker``.

The import path the official ``durabletask.azuremanaged.worker`` uses.
"""

from ._worker import DurableTaskSchedulerWorker as DurableTaskSchedulerWorker

__all__ = ("DurableTaskSchedulerWorker",)
