"""Plain ``def`` activities run in a bounded pool of threads.

Results go back to the event loop in batches: a thread that finishes while
earlier results are still waiting to be delivered does not wake the loop
again, so a burst of short activities costs one loop wake-up, not one each.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import threading
from collections.abc import Callable
from typing import Any

__all__ = ("ThreadRunner",)

_Job = tuple[Callable[..., Any], tuple[Any, ...], contextvars.Context, "asyncio.Future[Any]"]


class ThreadRunner:
    """Runs functions in at most ``max_threads`` threads, started as needed.

    Args:
        max_threads: the most threads running functions at once.
        name: prefix of the threads' names.
    """

    def __init__(self, max_threads: int, name: str = "dtask-activity") -> None:
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, got {max_threads}")
        self.max_threads = max_threads
        self._name = name
        self._jobs: collections.deque[_Job] = collections.deque()
        self._ready = threading.Condition(threading.Lock())
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._closed = False
        self._done: list[tuple[asyncio.Future[Any], bool, Any]] = []
        self._done_lock = threading.Lock()
        self._flush_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` in a thread and return (or raise) what it does.

        If the awaiting task is cancelled, the call still finishes in its thread
        but its outcome is dropped.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[Any] = loop.create_future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the thread runner is closed")
            self._jobs.append((fn, args, contextvars.copy_context(), future))
            if self._idle:
                self._ready.notify()
            elif len(self._threads) < self.max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return await future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self._closed:
                    self._idle += 1
                    self._ready.wait()
                    self._idle -= 1
                if not self._jobs:
                    return
                fn, args, context, future = self._jobs.popleft()
            if future.cancelled():
                continue
            try:
                outcome: tuple[asyncio.Future[Any], bool, Any] = (
                    future,
                    True,
                    context.run(fn, *args),
                )
            except BaseException as exc:
                outcome = (future, False, exc)
            with self._done_lock:
                self._done.append(outcome)
                wake = not self._flush_pending
                self._flush_pending = True
            if wake:
                try:
                    future.get_loop().call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    pass

    def _deliver(self) -> None:
        with self._done_lock:
            batch, self._done = self._done, []
            self._flush_pending = False
        for future, ok, value in batch:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def close(self) -> None:
        """Let the threads exit once the queued calls are done. Safe to call twice."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
