"""History streaming: work items without history, and ``StreamInstanceHistory`` in chunks.

A stream whose worker declares ``WORKER_CAPABILITY_HISTORY_STREAMING`` gets orchestration
work items with ``requiresHistoryStreaming`` and no ``pastEvents`` once the history is
larger than ``history_streaming_threshold`` bytes; other workers get the whole history.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from durabletask.client import AsyncTaskHubGrpcClient, OrchestrationStatus as OfficialStatus

from dtask_async import task
from dtask_async._proto import StringValue, pb, pb_grpc
from dtask_async.backend import BackendOptions, EmbeddedBackend
from dtask_async.backend._servicer import Servicer
from dtask_async.client import AsyncDurableTaskClient, OrchestrationStatus
from dtask_async.worker import AsyncDurableTaskWorker

from . import flows
from .conftest import (
    QUIET,
    TEST_OPTIONS,
    ProtocolWorker,
    complete_with,
    kinds,
    official_worker,
    schedule_task,
)

TIMEOUT = 60
THRESHOLD = 300
CHUNK = 1024

STREAMING = pb.WORKER_CAPABILITY_HISTORY_STREAMING


@dataclass
class Streams:
    """What ``StreamInstanceHistory`` served: one entry per call, one per chunk."""

    calls: list[tuple[str, bool]] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)


async def _serve(
    monkeypatch: pytest.MonkeyPatch, options: BackendOptions
) -> AsyncIterator[tuple[EmbeddedBackend, Streams]]:
    seen = Streams()
    original = Servicer.StreamInstanceHistory

    async def counting(self: Servicer, request: Any, context: Any) -> AsyncIterator[bytes]:
        seen.calls.append((request.instanceId, request.forWorkItemProcessing))
        async for chunk in original(self, request, context):
            seen.chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(Servicer, "StreamInstanceHistory", counting)
    async with EmbeddedBackend(options=options) as backend:
        yield backend, seen


@pytest.fixture
async def streaming(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[EmbeddedBackend, Streams]]:
    """A backend with a tiny threshold and chunk size, counting history streams."""
    options = dataclasses.replace(
        TEST_OPTIONS, history_streaming_threshold=THRESHOLD, history_chunk_size=CHUNK
    )
    async for served in _serve(monkeypatch, options):
        yield served


# -- our worker ------------------------------------------------------------------------


def echo(ctx: task.ActivityContext, value: int) -> int:
    return value


def long_sequence(ctx: task.OrchestrationContext, count: int) -> Any:
    total = 0
    for i in range(count):
        total += yield ctx.call_activity(echo, input=i)
    return total


def fan_out_in(ctx: task.OrchestrationContext, count: int) -> Any:
    values = yield task.when_all([ctx.call_activity(echo, input=i) for i in range(count)])
    return sum(values)


async def test_our_worker_streams_long_histories(
    streaming: tuple[EmbeddedBackend, Streams],
) -> None:
    backend, seen = streaming
    async with (
        AsyncDurableTaskWorker(host_address=backend.address, shutdown_timeout=5) as worker,
        AsyncDurableTaskClient(host_address=backend.address) as client,
    ):
        worker.add_orchestrator(long_sequence)
        worker.add_orchestrator(fan_out_in)
        worker.add_activity(echo)
        await worker.start()
        sequence = await client.schedule_new_orchestration(long_sequence, input=50)
        fan = await client.schedule_new_orchestration(fan_out_in, input=40)
        done = await client.wait_for_orchestration_completion(sequence, timeout=TIMEOUT)
        assert done is not None
        assert done.runtime_status is OrchestrationStatus.COMPLETED, done.failure_details
        assert done.result == sum(range(50))
        done = await client.wait_for_orchestration_completion(fan, timeout=TIMEOUT)
        assert done is not None
        assert done.runtime_status is OrchestrationStatus.COMPLETED, done.failure_details
        assert done.result == sum(range(40))

    streamed = {instance_id for instance_id, _ in seen.calls}
    assert streamed == {sequence, fan}
    assert all(for_work_item for _, for_work_item in seen.calls)
    # Every episode after the first few streams its history: about one per activity.
    assert sum(1 for instance_id, _ in seen.calls if instance_id == sequence) >= 45
    assert max(seen.chunks) <= CHUNK
    assert len(seen.chunks) > len(seen.calls)  # long histories came in several chunks


# -- the official worker -----------------------------------------------------------------


async def test_the_official_worker_still_gets_whole_histories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = dataclasses.replace(TEST_OPTIONS, history_streaming_threshold=0)
    async for backend, seen in _serve(monkeypatch, options):
        async with official_worker(
            backend.address,
            orchestrators=[flows.chain, flows.fan_out],
            activities=[flows.hello, flows.double, flows.total],
        ):
            client = AsyncTaskHubGrpcClient(host_address=backend.address, logger=QUIET)
            try:
                chained = await client.schedule_new_orchestration(flows.chain, input="x")
                fanned = await client.schedule_new_orchestration(flows.fan_out, input=20)
                state = await client.wait_for_orchestration_completion(chained, timeout=TIMEOUT)
                assert state.runtime_status == OfficialStatus.COMPLETED
                assert state.serialized_output == '"Hello Hello Hello x!!!"'
                state = await client.wait_for_orchestration_completion(fanned, timeout=TIMEOUT)
                assert state.runtime_status == OfficialStatus.COMPLETED
                assert state.serialized_output == str(sum(2 * i for i in range(20)))
            finally:
                await client.close()
        assert seen.calls == []


# -- the protocol --------------------------------------------------------------------------


async def _start_and_grow(stub: Any, worker: ProtocolWorker, instance_id: str) -> None:
    """Start ``instance_id`` and give it some history: one activity, completed."""
    await stub.StartInstance(pb.CreateInstanceRequest(instanceId=instance_id, name="orch"))
    first = await worker.next()
    assert not first.orchestratorRequest.requiresHistoryStreaming  # no history yet
    await stub.CompleteOrchestratorTask(complete_with(first, schedule_task(1, "act", "x" * 200)))
    activity = await worker.next()
    await stub.CompleteActivityTask(
        pb.ActivityResponse(
            instanceId=instance_id,
            taskId=1,
            completionToken=activity.completionToken,
            result=StringValue(value='"' + "y" * 200 + '"'),
        )
    )


@pytest.fixture
async def streaming_stub(streaming: tuple[EmbeddedBackend, Streams]) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(streaming[0].address) as channel:
        yield pb_grpc.TaskHubSidecarServiceStub(channel)


async def test_work_items_ask_capable_workers_to_stream(
    streaming: tuple[EmbeddedBackend, Streams], streaming_stub: Any
) -> None:
    stub = streaming_stub
    _, seen = streaming
    capable = ProtocolWorker(stub, capabilities=(STREAMING,))
    try:
        await _start_and_grow(stub, capable, "streamed")
        item = await capable.next()
        request = item.orchestratorRequest
        assert request.requiresHistoryStreaming
        assert list(request.pastEvents) == []
        assert kinds(request.newEvents) == ["orchestratorStarted", "taskCompleted"]
        chunks = [
            chunk
            async for chunk in stub.StreamInstanceHistory(
                pb.StreamInstanceHistoryRequest(
                    instanceId="streamed",
                    executionId=request.executionId,
                    forWorkItemProcessing=True,
                )
            )
        ]
        history = [event for chunk in chunks for event in chunk.events]
        assert kinds(history) == [
            "orchestratorStarted",
            "executionStarted",
            "taskScheduled",
            "orchestratorCompleted",
        ]
        assert history[2].taskScheduled.input.value == "x" * 200
        await stub.CompleteOrchestratorTask(complete_with(item))
    finally:
        await capable.close()
    assert seen.calls == [("streamed", True)]

    # A worker without the capability gets the whole history, however long.
    plain = ProtocolWorker(stub)
    try:
        await stub.RaiseEvent(pb.RaiseEventRequest(instanceId="streamed", name="go"))
        item = await plain.next()
        request = item.orchestratorRequest
        assert not request.requiresHistoryStreaming
        assert kinds(request.pastEvents)[:3] == [
            "orchestratorStarted",
            "executionStarted",
            "taskScheduled",
        ]
        assert len(request.pastEvents) == 7
    finally:
        await plain.close()


async def test_histories_too_large_for_a_message_are_streamed_without_a_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = dataclasses.replace(TEST_OPTIONS, max_message_size=64 * 1024)
    async for backend, seen in _serve(monkeypatch, options):
        async with grpc.aio.insecure_channel(backend.address) as channel:
            stub = pb_grpc.TaskHubSidecarServiceStub(channel)
            worker = ProtocolWorker(stub, capabilities=(STREAMING,))
            try:
                await stub.StartInstance(pb.CreateInstanceRequest(instanceId="big", name="o"))
                for i in range(3):
                    item = await worker.next()
                    assert item.orchestratorRequest.requiresHistoryStreaming is (i == 2)
                    await stub.CompleteOrchestratorTask(complete_with(item))
                    await stub.RaiseEvent(
                        pb.RaiseEventRequest(
                            instanceId="big", name="e", input=StringValue(value="z" * 40_000)
                        )
                    )
                chunks = stub.StreamInstanceHistory(
                    pb.StreamInstanceHistoryRequest(instanceId="big", forWorkItemProcessing=True)
                )
                history = [event async for chunk in chunks for event in chunk.events]
                assert kinds(history).count("eventRaised") == 2
            finally:
                await worker.close()
        assert seen.calls == [("big", True)]
