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
    """A server (the official in-memory backend, or ours) with the official worker attached."""

    address: str
    kind: str


@pytest.fixture(scope="session", params=["official", "embedded"])
def official_server(request: pytest.FixtureRequest) -> Iterator[OfficialServer]:
    """A server served by the official worker (session-wide): the official
    in-memory backend, then our embedded backend."""
    testing = pytest.importorskip("durabletask.testing")
    from durabletask.worker import TaskHubGrpcWorker

    from dtask_async.testing import BackgroundBackend
    from tests.integration import official_workflows

    stop: Any
    if request.param == "official":
        port = free_port()
        official = testing.InMemoryOrchestrationBackend(port=port)
        official.start()
        address = f"localhost:{port}"
        stop = lambda: official.stop(grace=0)  # noqa: E731
    else:
        background = BackgroundBackend()
        background.start()
        address = background.address
        stop = background.stop
    worker = TaskHubGrpcWorker(host_address=address, logger=logging.getLogger("official.worker"))
    official_workflows.register(worker)
    worker.start()
    try:
        yield OfficialServer(address=address, kind=request.param)
    finally:
        worker.stop()
        stop()


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
