"""Servers for the integration tests: the official in-memory backend with the
official worker, and (where a test asks for ``backend``) our embedded backend."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from dtask_async.client import AsyncDurableTaskClient, OrchestrationState, OrchestrationStatus
from dtask_async.worker import AsyncDurableTaskWorker
from tests.conftest import free_port


@dataclass
class OfficialServer:
    """The official ``InMemoryOrchestrationBackend`` with an official worker attached."""

    address: str


@pytest.fixture(scope="session")
def official_server() -> Iterator[OfficialServer]:
    """The official in-memory backend, served by the official worker (session-wide)."""
    testing = pytest.importorskip("durabletask.testing")
    from durabletask.worker import TaskHubGrpcWorker

    from tests.integration import official_workflows

    port = free_port()
    backend = testing.InMemoryOrchestrationBackend(port=port)
    backend.start()
    address = f"localhost:{port}"
    worker = TaskHubGrpcWorker(host_address=address, logger=logging.getLogger("official.worker"))
    official_workflows.register(worker)
    worker.start()
    try:
        yield OfficialServer(address=address)
    finally:
        worker.stop()
        backend.stop(grace=0)


async def wait_for_status(
    client: Any, instance_id: str, status: OrchestrationStatus, timeout: float = 30
) -> OrchestrationState:
    """Wait until the instance reaches ``status`` (checked every few milliseconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    state = None
    while loop.time() < deadline:
        state = await client.get_orchestration_state(instance_id)
        if state is not None and state.runtime_status is status:
            return state  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise AssertionError(f"{instance_id} did not reach {status} within {timeout} s: {state}")


@pytest.fixture(params=["official", "embedded"])
async def backend_address(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh server with no worker attached: the official in-memory backend, then ours."""
    if request.param == "official":
        testing = pytest.importorskip("durabletask.testing")
        port = free_port()
        official = testing.InMemoryOrchestrationBackend(port=port)
        official.start()
        try:
            yield f"localhost:{port}"
        finally:
            await asyncio.to_thread(official.stop, 0)
    else:
        from dtask_async.backend import EmbeddedBackend

        async with EmbeddedBackend() as embedded:
            yield embedded.address


@pytest.fixture
async def worker(backend_address: str) -> AsyncIterator[AsyncDurableTaskWorker]:
    """Our worker with every pattern of ``tests/integration/workflows.py`` registered."""
    from tests.integration import workflows

    async with AsyncDurableTaskWorker(host_address=backend_address, shutdown_timeout=5) as w:
        workflows.register_all(w)
        await w.start()
        await w.wait_until_connected(timeout=10)
        yield w


@pytest.fixture
async def client(backend_address: str) -> AsyncIterator[AsyncDurableTaskClient]:
    """Our client, connected to the same server as ``worker``."""
    async with AsyncDurableTaskClient(host_address=backend_address) as c:
        yield c
