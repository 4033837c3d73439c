"""Promise 2, at the network level: connections that are cut or go silent."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import grpc
import pytest

from dtask_async._proto import pb, pb_grpc
from dtask_async.backend import BackendOptions, EmbeddedBackend
from dtask_async.client import AsyncDurableTaskClient
from dtask_async.transport import ChannelOptions
from dtask_async.worker import AsyncDurableTaskWorker, ConcurrencyOptions, ReconnectPolicy

from . import flows
from .checks import check_all_completed, count_completed, expected_outputs
from .conftest import wait_until
from .proxy import TcpProxy

INSTANCES = 80
NARROW = ConcurrencyOptions(max_concurrent_activities=8, max_concurrent_orchestrations=8)
"""Few activities at once, so that the work lasts a couple of seconds."""


@pytest.fixture(autouse=True)
def slow_activities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows, "ACTIVITY_DELAY", 0.05)


@contextlib.asynccontextmanager
async def _worker(address: str, **kwargs: object) -> AsyncIterator[AsyncDurableTaskWorker]:
    kwargs.setdefault("reconnect", ReconnectPolicy(initial_delay=0.05, max_delay=1.0))
    async with AsyncDurableTaskWorker(
        host_address=address,
        shutdown_timeout=1,
        **kwargs,  # type: ignore[arg-type]
    ) as worker:
        for orchestrator in flows.ORCHESTRATORS:
            worker.add_orchestrator(orchestrator)
        for activity in flows.ACTIVITIES:
            worker.add_activity(activity)
        await worker.start()
        await worker.wait_until_connected(timeout=10)
        yield worker


async def _schedule(client: AsyncDurableTaskClient, expected: dict[str, object]) -> None:
    for instance_id in expected:
        value = int(instance_id.rsplit("-", 1)[1])
        await client.schedule_new_orchestration(
            flows.chain_fan, input=value, instance_id=instance_id
        )


async def test_worker_recovers_when_its_connection_is_cut_repeatedly() -> None:
    """Promise (DESIGN §5, §7): when the TCP connection between worker and server is
    reset (a network failure, no gRPC status), the server redelivers the work the
    worker held, the worker reconnects by itself, and every orchestration completes
    with the right output and each step recorded once. Five cuts under load."""
    expected = expected_outputs("cut", INSTANCES, flows.expected_chain_fan)
    async with (
        EmbeddedBackend() as backend,
        TcpProxy("127.0.0.1", backend.port) as proxy,
        AsyncDurableTaskClient(host_address=backend.address) as client,
        _worker(proxy.address, concurrency=NARROW),
    ):
        await _schedule(client, expected)
        cuts = 0
        for share in (0.1, 0.25, 0.4, 0.55, 0.7):
            await wait_until(
                lambda share=share: _more_than(client, int(INSTANCES * share)),
                timeout=30,
                what=f"{share:.0%} completed",
            )
            await wait_until(lambda: proxy.open_connections > 0, timeout=10, what="a reconnection")
            if await count_completed(client) < INSTANCES:
                cuts += proxy.sever() > 0
        await check_all_completed(client, expected, timeout=60, histories=expected)
    assert cuts >= 3, f"only {cuts} cuts happened while work was left"
    assert proxy.accepted > cuts


@pytest.mark.parametrize("busy", [True, False], ids=["while-busy", "while-idle"])
async def test_worker_recovers_from_a_connection_that_goes_silent(busy: bool) -> None:
    """Promise (DESIGN §7): a connection that stays open but carries nothing any more
    (a half-open TCP connection, a frozen NAT or proxy) does not leave the worker
    silently waiting forever, whether it was busy or idle when the connection froze:
    the missing keepalive answers and health pings give it away, the worker
    reconnects, and the server redelivers the work whose leases expired. Every
    orchestration completes with the right output."""
    expected = expected_outputs("frozen", INSTANCES, flows.expected_chain_fan)
    keepalive = ChannelOptions(keepalive_time=0.5, keepalive_timeout=1.0)
    silence = ReconnectPolicy(initial_delay=0.05, max_delay=1.0, silent_disconnect_timeout=1.5)
    options = BackendOptions(lease_duration=2.0, health_ping_interval=0.3)
    async with (
        EmbeddedBackend(options=options) as backend,
        TcpProxy("127.0.0.1", backend.port) as proxy,
        AsyncDurableTaskClient(host_address=backend.address) as client,
        _worker(proxy.address, channel_options=keepalive, reconnect=silence, concurrency=NARROW),
    ):
        if busy:
            await _schedule(client, expected)
            await wait_until(
                lambda: _more_than(client, INSTANCES // 5), timeout=30, what="progress"
            )
            frozen_at = await count_completed(client)
            assert frozen_at < INSTANCES, "the work finished before the connection froze"
        assert proxy.freeze() >= 1
        accepted = proxy.accepted
        if not busy:
            await _schedule(client, expected)
        await wait_until(
            lambda accepted=accepted: proxy.accepted > accepted,
            timeout=15,
            what="the worker reconnecting",
        )
        await check_all_completed(client, expected, timeout=60, histories=expected)


async def test_server_notices_a_worker_connection_that_goes_silent() -> None:
    """Promise (DESIGN §5, ``BackendOptions.keepalive_interval``): the server's keepalive
    pings notice a worker connection that went silent (half-open) and redeliver its
    leased work without waiting for the lease to expire: within the interval plus the
    10-second keepalive timeout, not the 60-second lease used here."""
    options = BackendOptions(keepalive_interval=1.0, lease_duration=60.0)
    request = pb.GetWorkItemsRequest(maxConcurrentOrchestrationWorkItems=1)
    async with (
        EmbeddedBackend(options=options) as backend,
        TcpProxy("127.0.0.1", backend.port) as proxy,
        grpc.aio.insecure_channel(proxy.address) as far,
        grpc.aio.insecure_channel(backend.address) as near,
    ):
        stuck = pb_grpc.TaskHubSidecarServiceStub(far).GetWorkItems(request)
        stub = pb_grpc.TaskHubSidecarServiceStub(near)
        await stub.StartInstance(pb.CreateInstanceRequest(instanceId="held", name="orch"))
        with anyio.fail_after(10):
            async for item in stuck:
                if item.HasField("orchestratorRequest"):
                    break
        proxy.freeze()  # the worker holding "held" goes silent
        rescuer = stub.GetWorkItems(request)
        try:
            with anyio.fail_after(15):  # 1 s interval + 10 s keepalive timeout + slack
                async for item in rescuer:
                    if item.HasField("orchestratorRequest"):
                        assert item.orchestratorRequest.instanceId == "held"
                        break
        finally:
            rescuer.cancel()
            stuck.cancel()


async def _more_than(client: AsyncDurableTaskClient, count: int) -> bool:
    return await count_completed(client) > count
