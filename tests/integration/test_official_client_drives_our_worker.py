"""The official client (async and sync) schedules work that our worker runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from dtask_async.worker import AsyncDurableTaskWorker
from tests.integration import workflows as wf

client_module = pytest.importorskip("durabletask.client")

TIMEOUT = 30


@pytest.fixture
async def official_async_client(
    backend_address: str, worker: AsyncDurableTaskWorker
) -> AsyncIterator[object]:
    client = client_module.AsyncTaskHubGrpcClient(
        host_address=backend_address, logger=logging.getLogger("official.client")
    )
    try:
        yield client
    finally:
        await client.close()


async def test_official_async_client_runs_chain_on_our_worker(
    official_async_client: object,
) -> None:
    client = official_async_client
    instance_id = await client.schedule_new_orchestration(  # type: ignore[attr-defined]
        wf.chained_workflow
    )
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)  # type: ignore[attr-defined]
    assert state is not None
    assert state.runtime_status.name == "COMPLETED"
    assert state.serialized_output == '["Hello Tokyo!","Hello Seattle!","Hello London!"]'


async def test_official_async_client_event_and_fan_out(official_async_client: object) -> None:
    client = official_async_client
    approval = await client.schedule_new_orchestration(wf.wait_for_approval)  # type: ignore[attr-defined]
    await client.raise_orchestration_event(approval, "approval", data={"by": "official"})  # type: ignore[attr-defined]
    fan = await client.schedule_new_orchestration(wf.fanout_fanin_workflow, input=6)  # type: ignore[attr-defined]
    for instance_id in (approval, fan):
        state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)  # type: ignore[attr-defined]
        assert state is not None
        assert state.runtime_status.name == "COMPLETED", state.failure_details
    approved = await client.get_orchestration_state(approval)  # type: ignore[attr-defined]
    assert approved.get_output() == {"by": "official"}
    fanned = await client.get_orchestration_state(fan)  # type: ignore[attr-defined]
    assert fanned.get_output()["total"] == 30


async def test_official_sync_client_with_dataclass_input(
    backend_address: str, worker: AsyncDurableTaskWorker
) -> None:
    def drive() -> str:
        client = client_module.TaskHubGrpcClient(
            host_address=backend_address, logger=logging.getLogger("official.client")
        )
        try:
            order = wf.Order(cost=50, product="Cable", quantity=2)
            instance_id = client.schedule_new_orchestration(wf.purchase_order_workflow, input=order)
            state = client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
            assert state is not None
            return str(state.serialized_output)
        finally:
            client.close()

    assert await asyncio.to_thread(drive) == '"Auto-approved"'
