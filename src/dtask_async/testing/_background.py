"""An embedded backend served from a thread of its own, for synchronous code."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from ..backend import BackendOptions, EmbeddedBackend

__all__ = ("BackgroundBackend",)


class BackgroundBackend:
    """Runs an :class:`~dtask_async.backend.EmbeddedBackend` on an event loop in a
    background thread, so synchronous programs and test suites (or tests whose
    event loops come and go) can share one server.

    Use it as ``with BackgroundBackend() as backend:`` and connect to
    ``backend.address``.

    Args:
        path: the SQLite file; ``None`` for throwaway storage.
        host: the interface to bind.
        port: the port; 0 picks a free one.
        options: backend settings.
        start_timeout: seconds to wait for the server to come up.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: BackendOptions | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self._backend = EmbeddedBackend(path, host=host, port=port, options=options)
        self._start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the running server."""
        return self._backend.address

    @property
    def backend(self) -> EmbeddedBackend:
        """The backend itself (use it only from its own loop)."""
        return self._backend

    def start(self) -> None:
        """Start the thread and wait until the server listens.

        Raises:
            RuntimeError: it was started before.
            TimeoutError: it did not come up in time.
        """
        if self._thread is not None:
            raise RuntimeError("this background backend was already started")
        self._thread = threading.Thread(target=self._serve, name="dtask-backend", daemon=True)
        self._thread.start()
        if not self._started.wait(self._start_timeout):
            raise TimeoutError("the embedded backend did not start in time")
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._backend.start()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self._backend.aclose()

    def stop(self) -> None:
        """Stop the server and join the thread. Safe to call twice."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> BackgroundBackend:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
