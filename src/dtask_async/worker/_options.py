"""Worker settings."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

__all__ = ("ConcurrencyOptions", "ReconnectPolicy")


def _default_threads() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


@dataclass(frozen=True, kw_only=True)
class ConcurrencyOptions:
    """How much work a worker runs at once.

    The limits are sent to the server in ``GetWorkItemsRequest`` and also
    enforced locally, in case a server sends more than it was asked for.
    """

    max_concurrent_orchestrations: int = 100
    """Orchestration episodes in progress at once (they run on the event loop)."""

    max_concurrent_activities: int = 100
    """Activity executions in progress at once, async and sync together."""

    max_concurrent_entities: int = 100
    """Entity batches in progress at once."""

    max_activity_threads: int = _default_threads()
    """Threads for plain ``def`` activities (``async def`` ones run on the loop)."""

    def __post_init__(self) -> None:
        for name in (
            "max_concurrent_orchestrations",
            "max_concurrent_activities",
            "max_concurrent_entities",
            "max_activity_threads",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ReconnectPolicy:
    """How the worker reconnects after its work-item stream breaks."""

    initial_delay: float = 0.25
    """Seconds before the first reconnection attempt."""

    max_delay: float = 15.0
    """Upper bound on the delay between attempts, in seconds."""

    multiplier: float = 2.0
    """Growth of the delay after each failed attempt."""

    jitter: float = 0.25
    """Random spread of each delay, as a fraction of it (0.25 = ±25 %)."""

    silent_disconnect_timeout: float | None = 120.0
    """Seconds without any message on the work-item stream (work or the server's
    health pings) after which the connection is presumed dead and the worker
    reconnects; ``None`` waits forever. A connection can die without either side
    being told (a NAT or proxy dropping it): this is what notices."""

    def __post_init__(self) -> None:
        if self.silent_disconnect_timeout is not None and self.silent_disconnect_timeout <= 0:
            raise ValueError(
                f"silent_disconnect_timeout must be positive or None, "
                f"got {self.silent_disconnect_timeout}"
            )
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay:
            raise ValueError("need 0 < initial_delay <= max_delay")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be at least 1, got {self.multiplier}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnection attempt number ``attempt`` (from 0)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** min(attempt, 32))
        return base * random.uniform(1 - self.jitter, 1 + self.jitter)
