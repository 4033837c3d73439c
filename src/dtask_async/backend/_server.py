"""``EmbeddedBackend``: the grpc.aio server, its hubs and their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import grpc
from anyio.abc import TaskGroup

from ._hub import Hub
from ._options import BackendOptions
from ._servicer import Servicer
from ._store import Store
from ._validation import RpcFailure, check_hub_name

__all__ = ("EmbeddedBackend",)

logger = logging.getLogger(__name__)

DEFAULT_HUB = "default"


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class _Hubs:
    """The hubs of one backend, opened on first use; each has its own store."""

    def __init__(self, path: Path, options: BackendOptions, task_group: TaskGroup) -> None:
        self.path = path
        self.options = options
        self._task_group = task_group
        self._hubs: dict[str, Hub] = {}
        self._opening: dict[str, asyncio.Future[Hub]] = {}
        self._closing = False

    @property
    def ping_interval(self) -> float:
        return self.options.health_ping_interval

    @property
    def max_message_size(self) -> int:
        return self.options.max_message_size

    @property
    def history_chunk_size(self) -> int:
        # A chunk must also fit in one message, with room for its framing.
        return max(1, min(self.options.history_chunk_size, self.options.max_message_size - 1024))

    def location(self, name: str) -> tuple[Path, str]:
        """The file and table prefix of hub ``name``."""
        if name == DEFAULT_HUB:
            return self.path, ""
        if self.options.hub_per_file:
            return self.path.with_name(f"{self.path.stem}.{name}{self.path.suffix}"), ""
        return self.path, f"{name}:"

    def discover(self) -> list[str]:
        """Names of the hubs already stored next to (or inside) ``path``. Blocking."""
        names: set[str] = set()
        if self.options.hub_per_file:
            pattern = f"{self.path.stem}.*{self.path.suffix}"
            for candidate in self.path.parent.glob(pattern):
                middle = candidate.name[
                    len(self.path.stem) + 1 : len(candidate.name) - len(self.path.suffix)
                ]
                names.add(middle)
        elif self.path.exists():
            with contextlib.closing(sqlite3.connect(self.path)) as conn:
                rows = conn.execute(
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'table' AND name LIKE '%:instances'"
                ).fetchall()
            names.update(row[0].rsplit(":", 1)[0] for row in rows)
        valid = []
        for name in sorted(names):
            try:
                valid.append(check_hub_name(name))
            except RpcFailure:
                logger.warning("ignoring %r next to %s: not a task hub name", name, self.path)
        return valid

    @property
    def opened(self) -> list[Hub]:
        return list(self._hubs.values())

    async def get(self, name: str) -> Hub:
        hub = self._hubs.get(name)  # keys are valid, normalized names: a hit needs no check
        if hub is not None:
            return hub
        name = check_hub_name(name)
        hub = self._hubs.get(name)
        if hub is not None:
            return hub
        if self._closing:
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "the backend is shutting down")
        opening = self._opening.get(name)
        if opening is None:
            opening = asyncio.get_running_loop().create_future()
            self._opening[name] = opening
            try:
                hub = await self._open(name)
            except BaseException as exc:
                opening.set_exception(exc)
                opening.exception()
                raise
            finally:
                del self._opening[name]
            opening.set_result(hub)
            return hub
        return await asyncio.shield(opening)

    async def _open(self, name: str) -> Hub:
        path, prefix = self.location(name)
        store = Store(path, prefix=prefix, synchronous=self.options.sqlite_synchronous)
        hub = Hub(name, store, self.options)
        await hub.open()
        await hub.run(self._task_group)
        self._hubs[name] = hub
        logger.info("task hub %r stored in %s", name, path)
        return hub

    def begin_close(self) -> None:
        self._closing = True
        for hub in self._hubs.values():
            hub.begin_close()


class EmbeddedBackend:
    """A Durable Task backend in this process: a gRPC server over SQLite.

    Workers and clients of any Durable Task SDK connect to :attr:`address`. State lives
    in ``path`` (one SQLite file per task hub, see :attr:`BackendOptions.hub_per_file`)
    and survives restarts, including ``kill -9``: a request is answered only once its
    effect is on disk.

    Args:
        path: the SQLite file of the default task hub; created if missing. ``None``
            keeps state in a temporary directory that is deleted on close.
        host: the interface to listen on (loopback unless told otherwise).
        port: the TCP port; 0 picks a free one.
        options: leases, pings, message size and storage settings.

    Example::

        async with EmbeddedBackend() as backend:
            client = AsyncDurableTaskClient(host_address=backend.address)
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: BackendOptions | None = None,
    ) -> None:
        self._requested_path = Path(path) if path is not None else None
        self._host = host
        self._requested_port = port
        self.options = options if options is not None else BackendOptions()
        self._state = _State.NEW
        self._path: Path | None = None
        self._temp_dir: Path | None = None
        self._port = 0
        self._server: Any = None
        self._hubs: _Hubs | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- properties ------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port`` for clients and workers (``127.0.0.1:PORT`` by default)."""
        if self._state is not _State.RUNNING:
            raise RuntimeError("the embedded backend is not running; call start() first")
        host = self._host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port the server listens on (0 until started)."""
        return self._port

    @property
    def path(self) -> Path:
        """The SQLite file of the default task hub (a temporary one when none was given)."""
        if self._path is None:
            if self._requested_path is None:
                raise RuntimeError("the temporary data file is created by start()")
            return self._requested_path
        return self._path

    def hub_path(self, hub: str = DEFAULT_HUB) -> Path:
        """The SQLite file holding task hub ``hub``."""
        if self._hubs is None:
            raise RuntimeError("the embedded backend is not running; call start() first")
        return self._hubs.location(check_hub_name(hub))[0]

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> EmbeddedBackend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the stores and start serving. Calling it again while running does nothing.

        Raises:
            RuntimeError: the backend was closed; create a new one.
            OSError: the address could not be bound.
        """
        if self._state is _State.RUNNING:
            return
        if self._state is _State.CLOSED:
            raise RuntimeError("this EmbeddedBackend was closed; create a new one")
        self._state = _State.RUNNING
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise

    async def _start(self) -> None:
        if self._requested_path is None:
            self._temp_dir = Path(
                await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="dtask-async-"))
            )
            self._path = self._temp_dir / "state.db"
        else:
            self._path = self._requested_path.expanduser().resolve()
        ready: asyncio.Future[TaskGroup] = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._supervise(ready), name="dtask-async backend")
        task_group = await ready
        hubs = _Hubs(self._path, self.options, task_group)
        self._hubs = hubs
        for name in [DEFAULT_HUB, *await anyio.to_thread.run_sync(hubs.discover)]:
            await hubs.get(name)

        size = self.options.max_message_size
        keepalive_ms = int(self.options.keepalive_interval * 1000)
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", keepalive_ms),
                ("grpc.keepalive_timeout_ms", 10_000),
                # grpc-core waits this long (60 s by default), not the keepalive
                # timeout, for a ping's answer before it drops a silent connection.
                ("grpc.http2.ping_timeout_ms", 10_000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.http2.max_ping_strikes", 0),
                # gRPC cancels calls beyond these while the loop is busy accepting a
                # burst (the defaults, 1000 and 3000, refuse 1,000 concurrent waiters).
                ("grpc.server.max_pending_requests", 100_000),
                ("grpc.server.max_pending_requests_hard_limit", 100_000),
            ]
        )
        Servicer(hubs).register(server)
        self._server = server
        bind = self._host if ":" not in self._host else f"[{self._host}]"
        try:
            port = server.add_insecure_port(f"{bind}:{self._requested_port}")
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {bind}:{self._requested_port}: {exc}") from exc
        if not port:
            raise OSError(f"cannot listen on {bind}:{self._requested_port}")
        self._port = port
        await server.start()
        logger.info("embedded backend listening on %s, data in %s", self.address, self._path)

    async def _supervise(self, ready: asyncio.Future[TaskGroup]) -> None:
        # Owns every background task of the backend (store writers, clocks, history
        # loads): they live exactly as long as this task group.
        async with anyio.create_task_group() as task_group:
            ready.set_result(task_group)
            await self._stop.wait()
            task_group.cancel_scope.cancel()

    async def aclose(self) -> None:
        """Stop serving, flush pending writes and release everything. Idempotent."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        grace = self.options.shutdown_grace
        hubs = self._hubs
        if hubs is not None:
            hubs.begin_close()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if hubs is not None:
            for hub in hubs.opened:
                await hub.drain(grace)
        self._stop.set()
        if self._supervisor is not None:
            try:
                await self._supervisor
            except Exception:
                logger.exception("a background task of the embedded backend failed")
            self._supervisor = None
        if hubs is not None:
            for hub in hubs.opened:
                await hub.store.close()
        if self._temp_dir is not None:
            temp_dir = self._temp_dir
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(temp_dir, ignore_errors=True))
            self._temp_dir = None
