"""Processes and servers for the reliability tests.

* :class:`Emulator`: ``python -m dtask_async emulator`` in a subprocess, which a test
  may ``kill -9`` and start again on the same port and file, and whose memory it can
  read from ``/proc``.
* :class:`WorkerProcess`: ``tests/reliability/worker_main.py`` in a subprocess.
* :func:`wait_until`: poll a condition (never a fixed sleep).

Every process is registered with the ``processes`` fixture, which kills whatever is
still running when the test ends, passed or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from dtask_async.client import AsyncDurableTaskClient
from tests.conftest import free_port

from . import eventlog

REPO = Path(__file__).resolve().parents[2]

if sys.platform == "win32":  # signals, kill -9 and /proc are POSIX
    collect_ignore_glob = ["test_*.py"]


async def wait_until(
    condition: Callable[[], Any | Awaitable[Any]],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "the condition",
) -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy; return it.

    Raises:
        AssertionError: not within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(interval)


class Process:
    """A child process started by a test; killed at the end of the test at the latest."""

    def __init__(self, name: str, args: list[str], stderr: Path) -> None:
        self.name = name
        self.args = args
        self.stderr_path = stderr
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def spawn(self) -> asyncio.subprocess.Process:
        with self.stderr_path.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=REPO,
            )
        return self.process

    async def read_line(self, timeout: float) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        with anyio.fail_after(timeout):
            line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            raise AssertionError(
                f"{self.name} exited with {code} before it was ready; stderr:\n{self.stderr()}"
            )
        return line.decode()

    def stderr(self, tail: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)

    async def kill(self) -> None:
        """``kill -9`` and reap."""
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._close_pipes()

    async def stop(self, timeout: float = 20) -> int:
        """SIGTERM, wait for a graceful exit (``kill -9`` after ``timeout`` seconds)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test froze it
            self.process.terminate()
            try:
                with anyio.fail_after(timeout):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self._close_pipes()
        return self.process.returncode or 0

    async def _close_pipes(self) -> None:
        assert self.process is not None
        if self.process.stdout is not None:
            with contextlib.suppress(Exception):
                await self.process.stdout.read()

    def rss_kib(self) -> int:
        """Resident memory (``VmRSS``) in KiB, read from ``/proc``."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for {self.name} (pid {self.pid})")


class Emulator(Process):
    """``python -m dtask_async emulator`` on a fixed port and SQLite file."""

    def __init__(self, tmp: Path, *, lease_seconds: float | None = None) -> None:
        self.port = free_port()
        self.db = tmp / "emulator.db"
        args = [
            sys.executable,
            "-m",
            "dtask_async",
            "emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--log-level",
            os.environ.get("DTASK_EMULATOR_LOG_LEVEL", "warning"),
        ]
        if lease_seconds is not None:
            args += ["--lease-seconds", str(lease_seconds)]
        super().__init__("emulator", args, tmp / "emulator.log")
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start (or start again, on the same port and file) and wait until it listens."""
        await self.spawn()
        self.starts += 1
        line = await self.read_line(timeout=30)
        assert f"listening on {self.address}" in line, line


class WorkerProcess(Process):
    """``python -m tests.reliability.worker_main`` with its own event log."""

    def __init__(self, tmp: Path, name: str, address: str, **options: Any) -> None:
        self.log = tmp / f"{name}.events"
        args = [
            sys.executable,
            "-m",
            "tests.reliability.worker_main",
            "--address",
            address,
            "--log",
            str(self.log),
        ]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        super().__init__(name, args, tmp / f"{name}.log")
        self.starts = 0

    async def start(self, timeout: float = 60) -> None:
        """Start (or start again) and wait until its work-item stream is open."""
        await self.spawn()
        self.starts += 1
        line = await self.read_line(timeout=timeout)
        assert line.strip() == "ready", line

    def events(self) -> list[eventlog.Event]:
        return eventlog.read(self.log)


class Processes:
    """Starts emulators and workers for one test and cleans them all up."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[Process] = []

    def emulator(self, **options: Any) -> Emulator:
        emulator = Emulator(self.tmp, **options)
        self.started.append(emulator)
        return emulator

    def worker(self, name: str, address: str, **options: Any) -> WorkerProcess:
        worker = WorkerProcess(self.tmp, name, address, **options)
        self.started.append(worker)
        return worker

    async def close(self) -> None:
        for process in reversed(self.started):
            with contextlib.suppress(Exception):
                await process.kill()

    def diagnostics(self) -> str:
        return "\n".join(
            f"--- {process.name} stderr ---\n{process.stderr()}" for process in self.started
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def processes(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Processes]:
    """Start emulator and worker processes; all are killed when the test ends.

    When the test failed, the processes' stderr (and, for workers, a dump of their
    lanes and tasks) is printed first, to show up in the report.
    """
    registry = Processes(tmp_path)
    try:
        yield registry
    finally:
        if request.node.stash.get(_FAILED, False):
            for process in registry.started:
                if isinstance(process, WorkerProcess) and process.running:
                    process.signal(signal.SIGCONT)
                    process.signal(signal.SIGUSR1)
            await asyncio.sleep(0.5)
            sys.stdout.write(registry.diagnostics() + "\n")
        await registry.close()


@contextlib.asynccontextmanager
async def client_for(address: str, **kwargs: Any) -> AsyncIterator[AsyncDurableTaskClient]:
    async with AsyncDurableTaskClient(host_address=address, **kwargs) as client:
        yield client


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment (to scale a test up or down)."""
    value = os.environ.get(name)
    return int(value) if value else default


REPORT: list[str] = []
"""Lines a test wants shown at the end of the run (the soak's figures)."""


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("reliability figures")
        for line in REPORT:
            terminalreporter.write_line(line)
