"""Stopping a worker: in-flight work may finish; what does not is given back and redone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dtask_async import OrchestrationStatus, task
from dtask_async.client import AsyncDurableTaskClient, OrchestrationState
from dtask_async.worker import AsyncDurableTaskWorker

TIMEOUT = 30


class Gate:
    """Activities that report when they start and run until told to finish."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.runs: list[str] = []

    async def slow(self, ctx: task.ActivityContext, value: int) -> int:
        self.runs.append("slow")
        self.started.set()
        await self.release.wait()
        return value + 1


def one_step(ctx: task.OrchestrationContext, value: int) -> Any:
    return (yield ctx.call_activity("step", input=value))


def _worker(address: str, activity: Any, shutdown_timeout: float) -> AsyncDurableTaskWorker:
    worker = AsyncDurableTaskWorker(host_address=address, shutdown_timeout=shutdown_timeout)
    worker.add_orchestrator(one_step)
    worker.add_activity(activity, name="step")
    return worker


async def _finish_elsewhere(
    address: str, client: AsyncDurableTaskClient, activity: Any, instance_id: str
) -> OrchestrationState:
    """Let a second worker, with ``activity`` as ``step``, complete ``instance_id``."""
    async with _worker(address, activity, shutdown_timeout=1) as second:
        await second.start()
        state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    return state


async def test_stop_lets_in_flight_work_finish(backend_address: str) -> None:
    gate = Gate()
    async with AsyncDurableTaskClient(host_address=backend_address) as client:
        first = _worker(backend_address, gate.slow, shutdown_timeout=TIMEOUT)
        await first.start()
        instance_id = await client.schedule_new_orchestration(one_step, input=1)
        await asyncio.wait_for(gate.started.wait(), TIMEOUT)
        stopping = asyncio.ensure_future(first.stop())
        await asyncio.sleep(0.2)
        assert not stopping.done()  # still waiting for the activity
        gate.release.set()
        await asyncio.wait_for(stopping, TIMEOUT)

        # The result was delivered before the stream closed; another worker only has
        # to run the orchestrator's next episode.
        def must_not_run(ctx: task.ActivityContext, value: int) -> int:
            raise AssertionError("the activity ran twice")

        state = await _finish_elsewhere(backend_address, client, must_not_run, instance_id)
    assert state.result == 2
    assert gate.runs == ["slow"]


async def test_stop_gives_back_work_that_does_not_finish_in_time(
    backend_address: str, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["backend_address"] == "official":
        pytest.skip("the official in-memory backend ignores an abandoned activity")
    gate = Gate()
    async with AsyncDurableTaskClient(host_address=backend_address) as client:
        first = _worker(backend_address, gate.slow, shutdown_timeout=0.3)
        await first.start()
        instance_id = await client.schedule_new_orchestration(one_step, input=10)
        await asyncio.wait_for(gate.started.wait(), TIMEOUT)
        await asyncio.wait_for(first.stop(), TIMEOUT)

        def fast(ctx: task.ActivityContext, value: int) -> int:
            gate.runs.append("fast")
            return value + 100

        state = await _finish_elsewhere(backend_address, client, fast, instance_id)
    assert state.result == 110
    assert gate.runs == ["slow", "fast"]


async def test_stop_finishes_in_flight_work_while_another_worker_is_connected(
    backend_address: str,
) -> None:
    """The stopping worker's in-flight work is its own to finish: it is not handed to
    the other worker meanwhile, so nothing runs twice."""
    gate = Gate()

    def must_not_run(ctx: task.ActivityContext, value: int) -> int:
        gate.runs.append("second")
        raise AssertionError("the activity ran twice")

    async with AsyncDurableTaskClient(host_address=backend_address) as client:
        first = _worker(backend_address, gate.slow, shutdown_timeout=TIMEOUT)
        await first.start()
        await first.wait_until_connected(TIMEOUT)
        instance_id = await client.schedule_new_orchestration(one_step, input=1)
        await asyncio.wait_for(gate.started.wait(), TIMEOUT)
        async with _worker(backend_address, must_not_run, shutdown_timeout=1) as second:
            await second.start()
            await second.wait_until_connected(TIMEOUT)
            stopping = asyncio.ensure_future(first.stop())
            await asyncio.sleep(0.5)
            assert not stopping.done()  # still waiting for the activity
            gate.release.set()
            await asyncio.wait_for(stopping, TIMEOUT)
            state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    assert state.result == 2
    assert gate.runs == ["slow"]
