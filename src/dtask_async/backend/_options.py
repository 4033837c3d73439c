"""Tuning knobs of the embedded backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ("BackendOptions",)


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """How the embedded backend leases work, talks to workers and stores state.

    Every field has a default suited to development on a laptop; tests usually shorten
    ``lease_duration`` and ``health_ping_interval``.
    """

    lease_duration: float = 30.0
    """Seconds a dispatched work item stays leased to the worker that received it.

    A worker that neither completes nor abandons the item within this time is presumed
    frozen: the item is redelivered and the old completion token is rejected. Work held
    by a worker whose stream drops is redelivered at once. Raise this for activities that
    run longer than the default.
    """

    health_ping_interval: float = 5.0
    """Seconds of silence after which an idle work-item stream receives a ``HealthPing``."""

    max_message_size: int = 16 * 1024 * 1024
    """Largest gRPC message, in bytes, the server accepts or sends."""

    history_streaming_threshold: int | None = None
    """History size, in bytes (of the encoded past events), above which an
    orchestration work item is sent without its history.

    Such an item says ``requiresHistoryStreaming`` and the worker fetches the history
    with ``StreamInstanceHistory``, in chunks of at most ``history_chunk_size`` bytes.
    Only streams whose worker declared ``WORKER_CAPABILITY_HISTORY_STREAMING`` get such
    items; other workers always receive the whole history. ``None`` streams only the
    histories that would not fit in a ``max_message_size`` message; ``0`` streams every
    history that is not empty.
    """

    history_chunk_size: int = 1024 * 1024
    """Largest ``HistoryChunk``, in bytes, that ``StreamInstanceHistory`` sends (never more
    than fits in a ``max_message_size`` message; an event larger than this travels alone
    in its chunk)."""

    hub_per_file: bool = True
    """Whether each task hub gets its own SQLite file.

    When true the default hub lives in ``path`` and hub ``NAME`` in ``<stem>.NAME<suffix>``
    next to it. When false every hub lives in ``path``, each in its own set of tables.
    Either way hubs never see each other's instances or work.
    """

    default_orchestration_concurrency: int = 100
    """Orchestration work items a stream may hold when its request asks for 0 (no limit)."""

    default_activity_concurrency: int = 100
    """Activity work items a stream may hold when its request asks for 0 (no limit)."""

    default_entity_concurrency: int = 100
    """Entity work items (batches) a stream may hold when its request asks for 0."""

    sqlite_synchronous: Literal["off", "normal", "full"] = "normal"
    """SQLite's ``synchronous`` pragma. ``normal`` (with WAL) loses nothing acknowledged
    when the process is killed; ``full`` also survives a power cut, more slowly."""

    shutdown_grace: float = 2.0
    """Seconds in-flight calls get to finish, and pending writes to reach disk, on close."""

    keepalive_interval: float = 20.0
    """Seconds between HTTP/2 keepalive pings the server sends on idle connections, so a
    dead worker process is noticed (and its leased work redelivered) without waiting for
    its leases to expire."""

    def __post_init__(self) -> None:
        for name in ("lease_duration", "health_ping_interval", "keepalive_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"BackendOptions.{name} must be > 0, got {getattr(self, name)!r}")
        if self.shutdown_grace < 0:
            raise ValueError(
                f"BackendOptions.shutdown_grace must be >= 0, got {self.shutdown_grace!r}"
            )
        for name in (
            "max_message_size",
            "default_orchestration_concurrency",
            "default_activity_concurrency",
            "default_entity_concurrency",
            "history_chunk_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"BackendOptions.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.history_streaming_threshold is not None and self.history_streaming_threshold < 0:
            raise ValueError(
                "BackendOptions.history_streaming_threshold must be >= 0 or None, "
                f"got {self.history_streaming_threshold!r}"
            )
        if self.sqlite_synchronous not in ("off", "normal", "full"):
            raise ValueError(
                "BackendOptions.sqlite_synchronous must be 'off', 'normal' or 'full', "
                f"got {self.sqlite_synchronous!r}"
            )
