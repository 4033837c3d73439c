"""The server around the hubs: lifecycle, task hubs, bad input, many waiters."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from durabletask.client import AsyncTaskHubGrpcClient, OrchestrationStatus

from dtask_async._proto import Empty, pb, pb_grpc
from dtask_async.backend import BackendOptions, EmbeddedBackend

from . import flows
from .conftest import (
    QUIET,
    TEST_OPTIONS,
    ProtocolWorker,
    complete_orchestration,
    complete_with,
    official_worker,
)

TIMEOUT = 30


async def test_lifecycle(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "life.db", options=TEST_OPTIONS)
    with pytest.raises(RuntimeError):
        _ = backend.address
    await backend.start()
    await backend.start()  # idempotent
    assert backend.address == f"127.0.0.1:{backend.port}"
    assert backend.path == tmp_path / "life.db"
    assert backend.path.exists()
    await backend.aclose()
    await backend.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await backend.start()
    with pytest.raises(RuntimeError, match="closed"):
        async with backend:
            pass


async def test_temporary_store_is_removed(backend: EmbeddedBackend) -> None:
    async with EmbeddedBackend(options=TEST_OPTIONS) as temporary:
        data = temporary.path
        assert data.exists()
    assert not data.exists()
    assert not data.parent.exists()


async def test_port_in_use_is_an_os_error(backend: EmbeddedBackend) -> None:
    with pytest.raises(OSError):
        async with EmbeddedBackend(port=backend.port, options=TEST_OPTIONS):
            pass


async def test_hello_and_task_hub_management(backend: EmbeddedBackend, stub: Any) -> None:
    await stub.Hello(Empty())
    await stub.StartInstance(pb.CreateInstanceRequest(instanceId="kept", name="x"))
    await stub.CreateTaskHub(pb.CreateTaskHubRequest(recreateIfExists=False))
    assert (await stub.GetInstance(pb.GetInstanceRequest(instanceId="kept"))).exists
    await stub.CreateTaskHub(pb.CreateTaskHubRequest(recreateIfExists=True))
    assert not (await stub.GetInstance(pb.GetInstanceRequest(instanceId="kept"))).exists
    await stub.StartInstance(pb.CreateInstanceRequest(instanceId="gone", name="x"))
    await stub.DeleteTaskHub(pb.DeleteTaskHubRequest())
    assert not (await stub.GetInstance(pb.GetInstanceRequest(instanceId="gone"))).exists


async def test_graceful_termination_skipping_is_unimplemented(
    backend: EmbeddedBackend, stub: Any
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SkipGracefulOrchestrationTerminations(
            pb.SkipGracefulOrchestrationTerminationsRequest()
        )
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_task_hubs_are_isolated(backend: EmbeddedBackend) -> None:
    alpha = AsyncTaskHubGrpcClient(
        host_address=backend.address, metadata=[("taskhub", "alpha")], logger=QUIET
    )
    beta = AsyncTaskHubGrpcClient(
        host_address=backend.address, metadata=[("taskhub", "beta")], logger=QUIET
    )
    try:
        instance_id = await alpha.schedule_new_orchestration(flows.chain, input="a")
        assert await beta.get_orchestration_state(instance_id) is None
        async with official_worker(
            backend.address, orchestrators=[flows.chain], activities=[flows.hello], taskhub="beta"
        ):
            other = await beta.schedule_new_orchestration(flows.chain, input="b")
            done = await beta.wait_for_orchestration_completion(other, timeout=TIMEOUT)
            assert done.runtime_status == OrchestrationStatus.COMPLETED
            untouched = await alpha.get_orchestration_state(instance_id)
            assert untouched.runtime_status == OrchestrationStatus.PENDING
        async with official_worker(
            backend.address, orchestrators=[flows.chain], activities=[flows.hello], taskhub="alpha"
        ):
            done = await alpha.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
        assert json.loads(done.serialized_output) == "Hello Hello Hello a!!!"
        assert backend.hub_path("alpha") != backend.hub_path("beta") != backend.path
        assert backend.hub_path("alpha").exists()
        assert backend.hub_path("beta").exists()
    finally:
        await alpha.close()
        await beta.close()


async def test_hubs_can_share_one_file(tmp_path: Path) -> None:
    options = BackendOptions(hub_per_file=False, health_ping_interval=1.0, shutdown_grace=0.5)
    async with (
        EmbeddedBackend(tmp_path / "shared.db", options=options) as backend,
        grpc.aio.insecure_channel(backend.address) as channel,
    ):
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        for hub in ("default", "second"):
            await stub.StartInstance(
                pb.CreateInstanceRequest(instanceId=f"in-{hub}", name="x"),
                metadata=[("taskhub", hub)],
            )
        assert backend.hub_path("second") == backend.path
    files = await asyncio.to_thread(lambda: [p.name for p in tmp_path.glob("*.db")])
    assert files == ["shared.db"]
    async with (
        EmbeddedBackend(tmp_path / "shared.db", options=options) as backend,
        grpc.aio.insecure_channel(backend.address) as channel,
    ):
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        second = await stub.GetInstance(
            pb.GetInstanceRequest(instanceId="in-second"), metadata=[("taskhub", "second")]
        )
        default = await stub.GetInstance(pb.GetInstanceRequest(instanceId="in-second"))
    assert second.exists
    assert not default.exists


@pytest.mark.parametrize(
    ("instance_id", "problem"),
    [
        ("x" * 257, "at most 256"),
        ("bad\x00id", "control characters"),
        ("line\nbreak", "control characters"),
        ("@counter@key", "reserved for entity"),
    ],
)
async def test_invalid_instance_ids(
    backend: EmbeddedBackend, stub: Any, instance_id: str, problem: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.StartInstance(pb.CreateInstanceRequest(instanceId=instance_id, name="x"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RaiseEvent(pb.RaiseEventRequest(instanceId=instance_id, name="e"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_other_bad_input(backend: EmbeddedBackend, stub: Any) -> None:
    generated = await stub.StartInstance(pb.CreateInstanceRequest(name="x"))
    assert len(generated.instanceId) == 32  # an empty id asks for a new one
    cases = [
        stub.StartInstance(pb.CreateInstanceRequest(instanceId="no-name")),
        stub.RaiseEvent(pb.RaiseEventRequest(instanceId=generated.instanceId, name="")),
        stub.GetInstance(pb.GetInstanceRequest(instanceId="")),
        stub.PurgeInstances(pb.PurgeInstancesRequest()),
        stub.Hello(Empty(), metadata=[("taskhub", "no/slashes")]),
    ]
    for call in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()


@pytest.mark.parametrize("backend", [{"max_message_size": 64 * 1024}], indirect=True)
async def test_oversized_messages_are_refused(backend: EmbeddedBackend, stub: Any) -> None:
    request = pb.CreateInstanceRequest(instanceId="big", name="x")
    request.input.value = "x" * (128 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.StartInstance(request)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await stub.StartInstance(pb.CreateInstanceRequest(instanceId="small", name="x"))


async def test_garbage_on_the_port_does_not_hurt_others(
    backend: EmbeddedBackend, stub: Any
) -> None:
    host, port = backend.address.rsplit(":", 1)
    for junk in (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x00\xff" * 5000,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xde\xad",
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(junk)
        await writer.drain()
        await asyncio.wait_for(reader.read(65536), timeout=5)
        writer.close()
        await writer.wait_closed()
    await stub.Hello(Empty())
    await stub.StartInstance(pb.CreateInstanceRequest(instanceId="after-junk", name="x"))


async def test_a_thousand_waiters(backend: EmbeddedBackend, stub: Any) -> None:
    threads_before = threading.active_count()
    ids = [f"wait-{i}" for i in range(10)]
    for instance_id in ids:
        await stub.StartInstance(pb.CreateInstanceRequest(instanceId=instance_id, name="x"))
    waits = [
        asyncio.ensure_future(
            stub.WaitForInstanceCompletion(
                pb.GetInstanceRequest(instanceId=ids[i % 10], getInputsAndOutputs=True),
                timeout=60,
            )
        )
        for i in range(1000)
    ]
    impatient = [
        asyncio.ensure_future(
            stub.WaitForInstanceCompletion(pb.GetInstanceRequest(instanceId=ids[0]), timeout=0.2)
        )
        for _ in range(50)
    ]
    outcomes = await asyncio.gather(*impatient, return_exceptions=True)
    for outcome in outcomes:
        assert isinstance(outcome, grpc.aio.AioRpcError)
        # Client and server share this process, so now and then the server's end of
        # the deadline (CANCELLED) reaches the client before the client's own timer.
        assert outcome.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
    assert not any(w.done() for w in waits)
    assert threading.active_count() < threads_before + 20

    worker = ProtocolWorker(stub, orchestrations=10)
    try:
        for _ in ids:
            item = await worker.next()
            instance_id = item.orchestratorRequest.instanceId
            await stub.CompleteOrchestratorTask(
                complete_with(item, complete_orchestration(1, json.dumps(instance_id)))
            )
    finally:
        await worker.close()
    responses = await asyncio.gather(*waits)
    for i, response in enumerate(responses):
        state = response.orchestrationState
        assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
        assert json.loads(state.output.value) == ids[i % 10]


async def test_wait_for_start(backend: EmbeddedBackend, stub: Any) -> None:
    await stub.StartInstance(pb.CreateInstanceRequest(instanceId="starter", name="x"))
    waiting = asyncio.ensure_future(
        stub.WaitForInstanceStart(pb.GetInstanceRequest(instanceId="starter"), timeout=30)
    )
    worker = ProtocolWorker(stub)
    try:
        item = await worker.next()
        assert not waiting.done()
        await stub.CompleteOrchestratorTask(complete_with(item))
    finally:
        await worker.close()
    response = await waiting
    assert response.orchestrationState.orchestrationStatus == pb.ORCHESTRATION_STATUS_RUNNING
    unknown = await stub.WaitForInstanceStart(pb.GetInstanceRequest(instanceId="nobody"), timeout=5)
    assert not unknown.exists


async def test_closing_ends_streams_and_waiters(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "closing.db", options=TEST_OPTIONS)
    await backend.start()
    async with grpc.aio.insecure_channel(backend.address) as channel:
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        await stub.StartInstance(pb.CreateInstanceRequest(instanceId="open", name="x"))
        waiting = asyncio.ensure_future(
            stub.WaitForInstanceCompletion(pb.GetInstanceRequest(instanceId="open"), timeout=30)
        )
        stream = stub.GetWorkItems(pb.GetWorkItemsRequest())
        item = await stream.read()
        assert item.HasField("orchestratorRequest")
        await asyncio.wait_for(backend.aclose(), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await waiting
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await stream.read() is grpc.aio.EOF
