"""Promise 4: replayed and late completions are refused and change nothing."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio
import grpc
import pytest

from dtask_async._proto import pb, pb_grpc
from dtask_async.backend import BackendOptions, EmbeddedBackend

LEASE = 0.5


class Stream:
    """A hand-driven ``GetWorkItems`` stream (one slot per kind unless told)."""

    def __init__(self, stub: Any, slots: int = 1) -> None:
        self.call = stub.GetWorkItems(
            pb.GetWorkItemsRequest(
                maxConcurrentOrchestrationWorkItems=slots, maxConcurrentActivityWorkItems=slots
            )
        )
        self.items: asyncio.Queue[pb.WorkItem] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for item in self.call:
                if not item.HasField("healthPing"):
                    self.items.put_nowait(item)

    async def next(self, timeout: float = 10) -> pb.WorkItem:
        with anyio.fail_after(timeout):
            return await self.items.get()

    async def close(self) -> None:
        self.call.cancel()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


async def refused(call: Any, request: Any, *, containing: str = "") -> str:
    """Assert that ``call(request)`` fails with FAILED_PRECONDITION; return the details."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(request)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, info.value
    details = info.value.details() or ""
    assert repr(request.completionToken) in details  # the message names the token
    assert containing in details, details
    return details


def schedule(item: pb.WorkItem, value: str) -> pb.OrchestratorResponse:
    response = pb.OrchestratorResponse(
        instanceId=item.orchestratorRequest.instanceId, completionToken=item.completionToken
    )
    action = response.actions.add(id=1)
    action.scheduleTask.name = "double"
    action.scheduleTask.input.value = value
    return response


def finish(item: pb.WorkItem, value: str) -> pb.OrchestratorResponse:
    response = pb.OrchestratorResponse(
        instanceId=item.orchestratorRequest.instanceId, completionToken=item.completionToken
    )
    action = response.actions.add(id=2)
    action.completeOrchestration.orchestrationStatus = pb.ORCHESTRATION_STATUS_COMPLETED
    action.completeOrchestration.result.value = value
    return response


def result(item: pb.WorkItem, value: str) -> pb.ActivityResponse:
    request = item.activityRequest
    response = pb.ActivityResponse(
        instanceId=request.orchestrationInstance.instanceId,
        taskId=request.taskId,
        completionToken=item.completionToken,
    )
    response.result.value = value
    return response


async def test_replayed_and_late_completions_are_refused_and_change_nothing() -> None:
    """Promise (DESIGN §5, §7): an orchestration advances exactly once per completion
    token. Replaying a completion (same token, same or different content), completing
    after the lease expired (before or after the redelivered copy completed) and
    abandoning with a dead token are each refused with FAILED_PRECONDITION naming the
    token, and none of them leaks into the instance: its history records each step once
    and its output is the one the valid completions produced."""
    options = BackendOptions(lease_duration=LEASE, health_ping_interval=1.0)
    async with (
        EmbeddedBackend(options=options) as backend,
        grpc.aio.insecure_channel(backend.address) as channel,
    ):
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        first, second = Stream(stub), Stream(stub)
        try:
            request = pb.CreateInstanceRequest(instanceId="ledger", name="orch")
            request.input.value = "10"
            await stub.StartInstance(request)

            # Episode 1: schedule the activity; then replay that completion.
            episode = await _next_of(first, second)
            await stub.CompleteOrchestratorTask(schedule(episode, "10"))
            await refused(stub.CompleteOrchestratorTask, schedule(episode, "10"))
            await refused(stub.CompleteOrchestratorTask, schedule(episode, "666"))
            await refused(stub.CompleteOrchestratorTask, finish(episode, '"hijacked"'))

            # The activity's lease expires; its redelivered copy completes first, the
            # late original afterwards.
            stale = await _next_of(first, second)
            assert stale.HasField("activityRequest")
            fresh = await _next_of(first, second, timeout=LEASE * 10)
            assert fresh.activityRequest.taskId == stale.activityRequest.taskId
            assert fresh.completionToken != stale.completionToken
            await stub.CompleteActivityTask(result(fresh, "20"))
            await refused(stub.CompleteActivityTask, result(stale, "666"), containing="expired")
            await refused(stub.CompleteActivityTask, result(fresh, "666"))
            await refused(
                stub.AbandonTaskActivityWorkItem,
                pb.AbandonActivityTaskRequest(completionToken=fresh.completionToken),
            )

            # Episode 2 expires too; the late original answers after the redelivered one.
            stale_episode = await _next_of(first, second)
            completed = [
                e
                for e in stale_episode.orchestratorRequest.newEvents
                if e.HasField("taskCompleted")
            ]
            assert [e.taskCompleted.result.value for e in completed] == ["20"]
            fresh_episode = await _next_of(first, second, timeout=LEASE * 10)
            assert fresh_episode.completionToken != stale_episode.completionToken
            await refused(
                stub.CompleteOrchestratorTask, finish(stale_episode, '"666"'), containing="expired"
            )
            await stub.CompleteOrchestratorTask(finish(fresh_episode, "20"))
            await refused(stub.CompleteOrchestratorTask, finish(fresh_episode, '"666"'))
            await refused(
                stub.AbandonTaskOrchestratorWorkItem,
                pb.AbandonOrchestrationTaskRequest(completionToken=fresh_episode.completionToken),
            )
            for made_up in ("", "no-such-token", "\x00" * 3, "9" * 500):
                await refused(
                    stub.CompleteActivityTask,
                    pb.ActivityResponse(instanceId="ledger", taskId=1, completionToken=made_up),
                )

            state = await stub.GetInstance(
                pb.GetInstanceRequest(instanceId="ledger", getInputsAndOutputs=True)
            )
            assert state.orchestrationState.orchestrationStatus == (
                pb.ORCHESTRATION_STATUS_COMPLETED
            )
            assert state.orchestrationState.output.value == "20"
            history = [
                event
                async for chunk in stub.StreamInstanceHistory(
                    pb.StreamInstanceHistoryRequest(instanceId="ledger")
                )
                for event in chunk.events
            ]
            kinds = [event.WhichOneof("eventType") for event in history]
            for kind in (
                "executionStarted",
                "taskScheduled",
                "taskCompleted",
                "executionCompleted",
            ):
                assert kinds.count(kind) == 1, kinds
            assert b"666" not in b"".join(event.SerializeToString() for event in history)
            assert b"hijacked" not in b"".join(event.SerializeToString() for event in history)
            # Nothing else is waiting to run.
            for stream in (first, second):
                with pytest.raises(TimeoutError):
                    await stream.next(timeout=LEASE * 2)
        finally:
            await first.close()
            await second.close()


async def _next_of(a: Stream, b: Stream, timeout: float = 10) -> pb.WorkItem:
    """The next work item from either stream."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for stream in (a, b):
            if not stream.items.empty():
                return stream.items.get_nowait()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no work item within {timeout} s")
