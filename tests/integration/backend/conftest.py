"""Fixtures for the embedded backend's tests: the backend itself, the official client
and worker driving it, and a raw protocol worker for exact work-item semantics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import grpc
import pytest

from dtask_async._proto import pb, pb_grpc
from dtask_async.backend import BackendOptions, EmbeddedBackend

TEST_OPTIONS = BackendOptions(health_ping_interval=1.0, shutdown_grace=0.5)

QUIET = logging.getLogger("tests.official")
QUIET.setLevel(logging.WARNING)


@pytest.fixture
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[EmbeddedBackend]:
    """A fresh embedded backend on a free loopback port, with a throwaway store.

    Parametrize it indirectly with a dict to change options, e.g.
    ``@pytest.mark.parametrize("backend", [{"lease_duration": 0.5}], indirect=True)``.
    """
    options = dataclasses.replace(TEST_OPTIONS, **getattr(request, "param", {}))
    async with EmbeddedBackend(options=options) as b:
        yield b


@pytest.fixture
async def official_client(backend: EmbeddedBackend) -> AsyncIterator[Any]:
    """The official ``durabletask`` async client, connected to ``backend``."""
    from durabletask.client import AsyncTaskHubGrpcClient

    client = AsyncTaskHubGrpcClient(host_address=backend.address, logger=QUIET)
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def official_worker(
    address: str,
    *,
    orchestrators: Iterable[Callable[..., Any]] = (),
    activities: Iterable[Callable[..., Any]] = (),
    entities: Iterable[Callable[..., Any]] = (),
    taskhub: str | None = None,
    concurrency: int = 4,
) -> AsyncIterator[Any]:
    """Run the official ``durabletask`` worker (it has its own thread) for the block."""
    from durabletask.grpc_options import GrpcChannelOptions, GrpcWorkerResiliencyOptions
    from durabletask.worker import ConcurrencyOptions, TaskHubGrpcWorker

    worker = TaskHubGrpcWorker(
        host_address=address,
        metadata=[("taskhub", taskhub)] if taskhub else None,
        logger=QUIET,
        concurrency_options=ConcurrencyOptions(
            maximum_concurrent_activity_work_items=concurrency,
            maximum_concurrent_orchestration_work_items=concurrency,
            maximum_thread_pool_workers=concurrency,
        ),
        resiliency_options=GrpcWorkerResiliencyOptions(
            reconnect_backoff_base_seconds=0.1, reconnect_backoff_cap_seconds=0.5
        ),
        # Reconnect quickly when a test restarts the server under the worker.
        channel_options=GrpcChannelOptions(
            raw_options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500),
            ]
        ),
    )
    for fn in orchestrators:
        worker.add_orchestrator(fn)
    for fn in activities:
        worker.add_activity(fn)
    for fn in entities:
        worker.add_entity(fn)
    worker.start()
    try:
        yield worker
    finally:
        await asyncio.to_thread(worker.stop)


@pytest.fixture
async def channel(backend: EmbeddedBackend) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(backend.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Any:
    """Our generated stub on a grpc.aio channel to ``backend`` (raw protocol calls)."""
    return pb_grpc.TaskHubSidecarServiceStub(channel)


class ProtocolWorker:
    """A hand-driven worker: one ``GetWorkItems`` stream read by the test itself.

    A reader task moves items into a queue, so waiting for an item with a timeout never
    cancels the call itself.
    """

    def __init__(
        self,
        stub: Any,
        *,
        orchestrations: int = 10,
        activities: int = 10,
        entities: int = 10,
        capabilities: tuple[int, ...] = (),
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        request = pb.GetWorkItemsRequest(
            maxConcurrentOrchestrationWorkItems=orchestrations,
            maxConcurrentActivityWorkItems=activities,
            maxConcurrentEntityWorkItems=entities,
            capabilities=capabilities,
        )
        self.call = stub.GetWorkItems(request, metadata=metadata or None)
        self.pings = 0
        self._items: asyncio.Queue[pb.WorkItem | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for item in self.call:
                if item.HasField("healthPing"):
                    self.pings += 1
                else:
                    self._items.put_nowait(item)
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            pass
        finally:
            self._items.put_nowait(None)

    async def next(self, timeout: float = 10.0) -> pb.WorkItem:
        """The next work item that is not a health ping."""
        with anyio.fail_after(timeout):
            item = await self._items.get()
        if item is None:
            raise AssertionError("the work item stream ended")
        return item

    async def nothing_for(self, seconds: float) -> None:
        """Assert that no work item (other than pings) arrives within ``seconds``."""
        with contextlib.suppress(TimeoutError):
            item = await self.next(timeout=seconds)
            raise AssertionError(f"unexpected work item: {item}")

    async def close(self) -> None:
        self.call.cancel()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def protocol_workers(stub: Any) -> AsyncIterator[Callable[..., ProtocolWorker]]:
    """A factory of :class:`ProtocolWorker` streams, all cancelled at the end."""
    opened: list[ProtocolWorker] = []

    def make(**kwargs: Any) -> ProtocolWorker:
        worker = ProtocolWorker(stub, **kwargs)
        opened.append(worker)
        return worker

    try:
        yield make
    finally:
        for worker in opened:
            await worker.close()


def complete_with(
    item: pb.WorkItem, *actions: pb.OrchestratorAction, custom_status: str | None = None
) -> pb.OrchestratorResponse:
    """An ``OrchestratorResponse`` for an orchestrator work item."""
    response = pb.OrchestratorResponse(
        instanceId=item.orchestratorRequest.instanceId,
        completionToken=item.completionToken,
        actions=actions,
    )
    if custom_status is not None:
        response.customStatus.value = custom_status
    return response


def schedule_task(action_id: int, name: str, input: str | None = None) -> pb.OrchestratorAction:
    action = pb.OrchestratorAction(id=action_id)
    action.scheduleTask.name = name
    if input is not None:
        action.scheduleTask.input.value = input
    return action


def complete_orchestration(
    action_id: int, result: str | None = None, status: int = pb.ORCHESTRATION_STATUS_COMPLETED
) -> pb.OrchestratorAction:
    action = pb.OrchestratorAction(id=action_id)
    action.completeOrchestration.orchestrationStatus = status  # type: ignore[assignment]
    if result is not None:
        action.completeOrchestration.result.value = result
    return action


def kinds(events: Iterable[pb.HistoryEvent]) -> list[str]:
    return [e.WhichOneof("eventType") or "" for e in events]


@contextlib.asynccontextmanager
async def emulator(port: int, db: Path, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m dtask_async emulator`` on ``port`` with ``db``; killed at the end."""
    with log.open("ab") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dtask_async",
            "emulator",
            "--port",
            str(port),
            "--db",
            str(db),
            "--log-level",
            "info",
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert process.stdout is not None
        with anyio.fail_after(30):
            first = await process.stdout.readline()
            second = await process.stdout.readline()
        assert f"listening on 127.0.0.1:{port}" in first.decode(), first
        assert str(db) in second.decode(), second
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def eventually(
    check: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 20
) -> Any:
    """Poll ``check`` until it returns ``expected`` (for effects of asynchronous work)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = None
    while loop.time() < deadline:
        value = await check()
        if value == expected:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {expected!r}, still {value!r} after {timeout} s")
