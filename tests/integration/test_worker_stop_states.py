"""``stop()`` returns promptly from every state a worker can be in.

A hang here is what an application's shutdown hook (a FastAPI lifespan, ``async with``)
would meet, so each test bounds ``stop()`` well below the test timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dtask_async import DurableEnvironment, task
from dtask_async.backend import EmbeddedBackend
from dtask_async.client import AsyncDurableTaskClient
from dtask_async.worker import AsyncDurableTaskWorker
from tests.conftest import free_port

# stop() of an idle worker takes milliseconds; a hang is what this bound catches.
STOP_BOUND = 5.0


def hello(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.call_activity("slow", input=1))


def _worker(address: str, **options: Any) -> AsyncDurableTaskWorker:
    worker = AsyncDurableTaskWorker(host_address=address, **options)
    worker.add_orchestrator(hello)
    return worker


async def _within_bound(*coroutines: Any) -> None:
    # Not wait_for: it returns normally when the awaited call swallows its
    # cancellation, which would hide a hang.
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    done, pending = await asyncio.wait(tasks, timeout=STOP_BOUND)
    for pending_task in pending:
        pending_task.cancel()
    assert not pending, f"stop() did not return within {STOP_BOUND} s"
    for finished in done:
        finished.result()


async def _stop(worker: AsyncDurableTaskWorker) -> None:
    await _within_bound(worker.stop())
    assert not worker.is_running


async def test_never_started() -> None:
    worker = _worker("localhost:1")
    await _stop(worker)
    await _stop(worker)
    with pytest.raises(RuntimeError, match="stopped"):
        await worker.start()


async def test_stopped_right_after_start(backend_address: str) -> None:
    worker = _worker(backend_address)
    await worker.start()
    await _stop(worker)


@pytest.mark.parametrize("work_channel", [True, False], ids=["channel", "get-work-items"])
async def test_connected_and_idle(backend_address: str, work_channel: bool) -> None:
    # The stop just after wait_until_connected() raced the opening of the stream; one
    # try in a few met it, so several tries are made.
    for _ in range(8):
        worker = _worker(backend_address, work_channel=work_channel)
        await worker.start()
        await worker.wait_until_connected(timeout=10)
        await _stop(worker)


async def test_connected_and_idle_for_a_while(backend_address: str) -> None:
    worker = _worker(backend_address)
    await worker.start()
    await worker.wait_until_connected(timeout=10)
    await asyncio.sleep(0.3)
    await _stop(worker)


async def test_environment_worker_connected_and_idle() -> None:
    async with DurableEnvironment() as env:
        for _ in range(4):
            worker = env.worker()
            worker.add_orchestrator(hello)
            await worker.start()
            await worker.wait_until_connected(timeout=10)
            await _stop(worker)


async def test_connecting_to_a_server_that_is_not_there() -> None:
    worker = _worker(f"localhost:{free_port()}")
    await worker.start()
    with pytest.raises(TimeoutError):
        await worker.wait_until_connected(timeout=0.3)
    await _stop(worker)


async def test_with_work_in_flight(backend_address: str) -> None:
    started = asyncio.Event()

    async def slow(ctx: task.ActivityContext, value: int) -> int:
        started.set()
        await asyncio.sleep(60)
        return value

    worker = _worker(backend_address, shutdown_timeout=0.2)
    worker.add_activity(slow, name="slow")
    await worker.start()
    await worker.wait_until_connected(timeout=10)
    async with AsyncDurableTaskClient(host_address=backend_address) as client:
        await client.schedule_new_orchestration(hello)
        await asyncio.wait_for(started.wait(), 30)
        # The activity does not finish: stop() gives it back after shutdown_timeout.
        await _stop(worker)


async def test_reconnecting_after_the_server_went_away() -> None:
    port = free_port()
    backend = EmbeddedBackend(port=port)
    await backend.start()
    worker = _worker(f"localhost:{port}")
    try:
        await worker.start()
        await worker.wait_until_connected(timeout=10)
    finally:
        await backend.aclose()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while worker._connected.is_set() and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert not worker._connected.is_set(), "the worker did not notice the server going away"
    await _stop(worker)


async def test_stopped_twice(backend_address: str) -> None:
    worker = _worker(backend_address)
    await worker.start()
    await worker.wait_until_connected(timeout=10)
    await _stop(worker)
    await _stop(worker)
    with pytest.raises(RuntimeError, match="stopped"):
        async with worker:
            pass


async def test_concurrent_stops(backend_address: str) -> None:
    worker = _worker(backend_address)
    await worker.start()
    await worker.wait_until_connected(timeout=10)
    await _within_bound(worker.stop(), worker.stop())
