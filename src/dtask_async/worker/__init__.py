"""The asyncio worker and its options.

``from dtask_async.worker import AsyncDurableTaskWorker, ConcurrencyOptions``.
"""

from ._options import ConcurrencyOptions as ConcurrencyOptions, ReconnectPolicy as ReconnectPolicy
from ._registry import Registry as Registry
from ._worker import AsyncDurableTaskWorker as AsyncDurableTaskWorker

__all__ = (
    "AsyncDurableTaskWorker",
    "ConcurrencyOptions",
    "ReconnectPolicy",
    "Registry",
)
