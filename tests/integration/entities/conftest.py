"""Fixtures of the entity integration tests: every test runs on each backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from dtask_async.client import AsyncDurableTaskClient, OrchestrationState
from dtask_async.worker import AsyncDurableTaskWorker
from tests.integration.entities import flows

MAX_WAITERS = 6
"""Blocking waits in flight at once: the official in-memory server has 10 threads."""


@pytest.fixture
async def entity_backend(backend_address: str) -> str:
    """The address of a fresh backend (official in-memory, then embedded)."""
    return backend_address


@pytest.fixture(params=["function", "class"])
def counter_form(request: pytest.FixtureRequest) -> str:
    """The seed's counter as a function entity, then as a class entity."""
    return str(request.param)


@pytest.fixture
async def worker(entity_backend: str) -> AsyncIterator[AsyncDurableTaskWorker]:
    """Our worker with everything in ``flows`` (the function counter)."""
    async with AsyncDurableTaskWorker(host_address=entity_backend, shutdown_timeout=5) as w:
        flows.register(w)
        await w.start()
        await w.wait_until_connected(timeout=10)
        yield w


@pytest.fixture
async def client(entity_backend: str) -> AsyncIterator[AsyncDurableTaskClient]:
    async with AsyncDurableTaskClient(host_address=entity_backend) as c:
        yield c


async def run_all(
    client: AsyncDurableTaskClient, orchestrator: Any, inputs: list[Any], timeout: float = 60
) -> list[OrchestrationState]:
    """Start one instance per input at once, then wait for all, a few waits at a time."""
    ids = await asyncio.gather(
        *(client.schedule_new_orchestration(orchestrator, input=i) for i in inputs)
    )
    gate = asyncio.Semaphore(MAX_WAITERS)

    async def wait(instance_id: str) -> OrchestrationState:
        async with gate:
            state = await client.wait_for_orchestration_completion(instance_id, timeout=timeout)
        assert state is not None
        return state

    return list(await asyncio.gather(*(wait(i) for i in ids)))


async def eventually(
    check: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 20
) -> Any:
    """Poll ``check`` until it returns ``expected`` (entity signals are asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    value = None
    while loop.time() < deadline:
        value = await check()
        if value == expected:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {expected!r}, still {value!r} after {timeout} s")
