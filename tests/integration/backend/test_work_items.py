"""Work items at the protocol level: tokens, leases, redelivery, limits, pings."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from dtask_async._proto import Empty, pb
from dtask_async.backend import EmbeddedBackend
from dtask_async.backend._dispatch import ABANDON_BACKOFF

from .conftest import ProtocolWorker, complete_orchestration, complete_with, kinds, schedule_task

Workers = Callable[..., ProtocolWorker]


async def start(stub: Any, instance_id: str, name: str = "orch", input: str | None = None) -> None:
    request = pb.CreateInstanceRequest(instanceId=instance_id, name=name)
    if input is not None:
        request.input.value = input
    await stub.StartInstance(request)


async def state_of(stub: Any, instance_id: str) -> pb.OrchestrationState:
    response = await stub.GetInstance(
        pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=True)
    )
    assert response.exists
    return response.orchestrationState  # type: ignore[no-any-return]


async def history_of(stub: Any, instance_id: str) -> list[pb.HistoryEvent]:
    events: list[pb.HistoryEvent] = []
    async for chunk in stub.StreamInstanceHistory(
        pb.StreamInstanceHistoryRequest(instanceId=instance_id)
    ):
        events.extend(chunk.events)
    return events


async def test_episode_contents(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await start(stub, "shape", input='"in"')
    item = await worker.next()
    request = item.orchestratorRequest
    assert request.instanceId == "shape"
    assert request.executionId.value
    assert list(request.pastEvents) == []
    assert kinds(request.newEvents) == ["orchestratorStarted", "executionStarted"]
    started = request.newEvents[1].executionStarted
    assert started.name == "orch"
    assert started.input.value == '"in"'
    assert started.orchestrationInstance.instanceId == "shape"
    assert started.orchestrationInstance.executionId.value == request.executionId.value
    assert request.newEvents[0].timestamp.seconds > 0
    await stub.CompleteOrchestratorTask(complete_with(item, schedule_task(1, "act", '"x"')))

    activity = await worker.next()
    assert activity.activityRequest.name == "act"
    assert activity.activityRequest.taskId == 1
    assert activity.activityRequest.input.value == '"x"'
    assert activity.activityRequest.orchestrationInstance.instanceId == "shape"
    assert activity.completionToken
    assert activity.completionToken != item.completionToken
    await stub.CompleteActivityTask(
        pb.ActivityResponse(
            instanceId="shape",
            taskId=1,
            result=pb.ActivityResponse().result.__class__(value='"y"'),
            completionToken=activity.completionToken,
        )
    )

    second = await worker.next()
    past = second.orchestratorRequest.pastEvents
    assert kinds(past) == [
        "orchestratorStarted",
        "executionStarted",
        "taskScheduled",
        "orchestratorCompleted",
    ]
    assert past[2].eventId == 1
    assert past[2].taskScheduled.name == "act"
    new = second.orchestratorRequest.newEvents
    assert kinds(new) == ["orchestratorStarted", "taskCompleted"]
    assert new[1].eventId == -1
    assert new[1].taskCompleted.taskScheduledId == 1
    assert new[1].taskCompleted.result.value == '"y"'
    await stub.CompleteOrchestratorTask(
        complete_with(second, complete_orchestration(2, '"done"'), custom_status='"cs"')
    )
    state = await state_of(stub, "shape")
    assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
    assert state.output.value == '"done"'
    assert state.customStatus.value == '"cs"'
    assert state.HasField("completedTimestamp")
    history = await history_of(stub, "shape")
    assert kinds(history)[-2:] == ["orchestratorCompleted", "executionCompleted"]
    assert history[-1].eventId == 2
    assert history[-1].executionCompleted.result.value == '"done"'


async def test_stale_token_is_rejected_and_changes_nothing(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await start(stub, "stale")
    item = await worker.next()
    await stub.CompleteOrchestratorTask(complete_with(item, schedule_task(1, "act")))
    activity = await worker.next()

    bogus = pb.ActivityResponse(instanceId="stale", taskId=1, completionToken="made-up")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteActivityTask(bogus)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "made-up" in info.value.details()

    good = pb.ActivityResponse(
        instanceId="stale", taskId=1, completionToken=activity.completionToken
    )
    await stub.CompleteActivityTask(good)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteActivityTask(good)  # the same token twice
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # The orchestration token is single-use too.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteOrchestratorTask(complete_with(item, complete_orchestration(9)))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    second = await worker.next()
    assert kinds(second.orchestratorRequest.newEvents) == ["orchestratorStarted", "taskCompleted"]
    state = await state_of(stub, "stale")
    assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_RUNNING


async def test_token_of_another_kind_is_rejected(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await start(stub, "kinds")
    item = await worker.next()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteActivityTask(
            pb.ActivityResponse(instanceId="kinds", taskId=1, completionToken=item.completionToken)
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    response = complete_with(item)
    response.instanceId = "someone-else"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteOrchestratorTask(response)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stub.CompleteOrchestratorTask(complete_with(item))  # still valid after both


async def test_dropped_stream_redelivers_at_once(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    first = protocol_workers()
    await start(stub, "dropped")
    item = await first.next()
    second = protocol_workers()
    await second.nothing_for(0.3)  # leased to the first stream
    await first.close()
    again = await second.next(timeout=5)
    assert again.orchestratorRequest.instanceId == "dropped"
    assert again.completionToken != item.completionToken
    assert kinds(again.orchestratorRequest.newEvents) == ["orchestratorStarted", "executionStarted"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteOrchestratorTask(complete_with(item))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await stub.CompleteOrchestratorTask(complete_with(again, complete_orchestration(1)))
    state = await state_of(stub, "dropped")
    assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED


async def test_work_of_a_dropped_stream_may_still_be_completed_until_redelivered(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    first = protocol_workers()
    await start(stub, "orphan")
    item = await first.next()
    await first.close()  # e.g. a worker shutting down that finishes its in-flight work
    await stub.CompleteOrchestratorTask(complete_with(item, complete_orchestration(1)))
    state = await state_of(stub, "orphan")
    assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
    second = protocol_workers()
    await second.nothing_for(0.3)


@pytest.mark.parametrize("backend", [{"lease_duration": 0.5}], indirect=True)
async def test_expired_lease_is_redelivered(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    frozen = protocol_workers(orchestrations=1, activities=1)
    await start(stub, "frozen")
    item = await frozen.next()
    healthy = protocol_workers()
    again = await healthy.next(timeout=5)  # after the 0.5 s lease
    assert again.orchestratorRequest.instanceId == "frozen"
    assert again.completionToken != item.completionToken
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteOrchestratorTask(complete_with(item, complete_orchestration(1)))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in info.value.details()
    await stub.CompleteOrchestratorTask(complete_with(again, schedule_task(1, "act")))
    activity = await _next_of(frozen, healthy)
    assert activity.HasField("activityRequest")
    state = await state_of(stub, "frozen")
    assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_RUNNING


async def _next_of(a: ProtocolWorker, b: ProtocolWorker) -> pb.WorkItem:
    """The next item from ``b``, else from ``a`` once ``b`` is closed."""
    try:
        return await b.next(timeout=1)
    except TimeoutError:
        return await a.next(timeout=5)


@pytest.mark.parametrize("backend", [{"lease_duration": 0.5}], indirect=True)
async def test_expired_activity_lease_is_redelivered(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers(orchestrations=5, activities=5)
    await start(stub, "slow-activity")
    item = await worker.next()
    await stub.CompleteOrchestratorTask(complete_with(item, schedule_task(1, "act")))
    activity = await worker.next()
    again = await worker.next(timeout=5)
    assert again.activityRequest.taskId == 1
    assert again.completionToken != activity.completionToken
    late = pb.ActivityResponse(
        instanceId="slow-activity", taskId=1, completionToken=activity.completionToken
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.CompleteActivityTask(late)
    late.completionToken = again.completionToken
    await stub.CompleteActivityTask(late)
    second = await worker.next()
    assert kinds(second.orchestratorRequest.newEvents) == ["orchestratorStarted", "taskCompleted"]


async def test_abandon_returns_work_at_once(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await start(stub, "abandoned")
    item = await worker.next()
    await stub.AbandonTaskOrchestratorWorkItem(
        pb.AbandonOrchestrationTaskRequest(completionToken=item.completionToken)
    )
    again = await worker.next(timeout=5)
    assert again.orchestratorRequest.instanceId == "abandoned"
    assert again.completionToken != item.completionToken
    await stub.CompleteOrchestratorTask(complete_with(again, schedule_task(1, "act")))
    activity = await worker.next()
    await stub.AbandonTaskActivityWorkItem(
        pb.AbandonActivityTaskRequest(completionToken=activity.completionToken)
    )
    redo = await worker.next(timeout=5)
    assert redo.activityRequest.taskId == 1
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.AbandonTaskActivityWorkItem(
            pb.AbandonActivityTaskRequest(completionToken=activity.completionToken)
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_work_abandoned_again_and_again_waits_longer_each_time(
    backend: EmbeddedBackend,
    stub: Any,
    protocol_workers: Workers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker that gives the same item back every time does not spin on it: the
    second abandon in a row delays the item ABANDON_BACKOFF seconds, doubling each
    time; completing the work resets the count."""
    caplog.set_level(logging.INFO, logger="dtask_async.backend")
    loop = asyncio.get_running_loop()
    worker = protocol_workers()
    await start(stub, "spinning")
    arrivals = []
    for _ in range(5):
        item = await worker.next(timeout=10)
        arrivals.append(loop.time())
        assert item.orchestratorRequest.instanceId == "spinning"
        await stub.AbandonTaskOrchestratorWorkItem(
            pb.AbandonOrchestrationTaskRequest(completionToken=item.completionToken)
        )
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    for times, gap in enumerate(gaps[1:], start=2):
        assert gap >= 0.9 * ABANDON_BACKOFF * 2 ** (times - 2), gaps
    assert "abandoned 4 times in a row" in caplog.text

    item = await worker.next(timeout=10)
    await stub.CompleteOrchestratorTask(complete_with(item, schedule_task(1, "act")))
    caplog.clear()
    activity = await worker.next(timeout=10)
    await stub.AbandonTaskActivityWorkItem(
        pb.AbandonActivityTaskRequest(completionToken=activity.completionToken)
    )
    activity = await worker.next(timeout=10)
    await stub.CompleteActivityTask(
        pb.ActivityResponse(
            instanceId="spinning", taskId=1, completionToken=activity.completionToken
        )
    )
    item = await worker.next(timeout=10)  # completing reset the instance's count
    await stub.AbandonTaskOrchestratorWorkItem(
        pb.AbandonOrchestrationTaskRequest(completionToken=item.completionToken)
    )
    again = await worker.next(timeout=10)
    assert again.orchestratorRequest.instanceId == "spinning"
    assert "in a row" not in caplog.text


async def test_an_instance_never_runs_on_two_workers(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    first = protocol_workers()
    await start(stub, "single")
    item = await first.next()
    second = protocol_workers()
    await stub.RaiseEvent(pb.RaiseEventRequest(instanceId="single", name="ping"))
    await second.nothing_for(0.5)  # the event waits for the episode in flight
    await stub.CompleteOrchestratorTask(complete_with(item))
    await first.close()  # whatever it was sent now goes to the second stream
    again = await second.next(timeout=5)
    assert again.orchestratorRequest.instanceId == "single"
    assert kinds(again.orchestratorRequest.newEvents) == ["orchestratorStarted", "eventRaised"]
    assert kinds(again.orchestratorRequest.pastEvents)[-1] == "orchestratorCompleted"


async def test_stream_concurrency_limit(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers(orchestrations=2, activities=1)
    for i in range(3):
        await start(stub, f"limit-{i}")
    items = [await worker.next(), await worker.next()]
    await worker.nothing_for(0.3)
    await stub.CompleteOrchestratorTask(complete_with(items[0], complete_orchestration(1)))
    third = await worker.next()
    assert {i.orchestratorRequest.instanceId for i in [*items, third]} == {
        "limit-0",
        "limit-1",
        "limit-2",
    }


async def test_idle_streams_get_health_pings(backend: EmbeddedBackend, stub: Any) -> None:
    call = stub.GetWorkItems(pb.GetWorkItemsRequest())
    try:
        item = await call.read()  # TEST_OPTIONS ping every second
        assert item.HasField("healthPing")
        assert not item.completionToken
    finally:
        call.cancel()


async def test_work_item_filters(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    request = pb.GetWorkItemsRequest()
    request.workItemFilters.orchestrations.add(name="alpha")
    picky = stub.GetWorkItems(request)
    try:
        await start(stub, "b-1", name="beta")
        await start(stub, "a-1", name="alpha")
        while True:
            item = await picky.read()
            if not item.HasField("healthPing"):
                break
        assert item.orchestratorRequest.instanceId == "a-1"
        anyone = protocol_workers()
        other = await anyone.next()
        assert other.orchestratorRequest.instanceId == "b-1"
    finally:
        picky.cancel()


async def test_results_for_a_terminated_instance_are_dropped(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await start(stub, "late-result")
    item = await worker.next()
    await stub.CompleteOrchestratorTask(complete_with(item, schedule_task(1, "act")))
    activity = await worker.next()
    await stub.TerminateInstance(pb.TerminateRequest(instanceId="late-result"))
    terminate = await worker.next()
    assert kinds(terminate.orchestratorRequest.newEvents)[-1] == "executionTerminated"
    await stub.CompleteOrchestratorTask(
        complete_with(
            terminate, complete_orchestration(2, status=pb.ORCHESTRATION_STATUS_TERMINATED)
        )
    )
    await stub.CompleteActivityTask(
        pb.ActivityResponse(
            instanceId="late-result", taskId=1, completionToken=activity.completionToken
        )
    )
    state = await state_of(stub, "late-result")
    assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_TERMINATED
    await worker.nothing_for(0.3)


async def test_bad_worker_responses_fail_only_their_orchestration(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    for name in ("bad-status", "entity-user", "bad-child"):
        await start(stub, name)
    items = {}
    for _ in range(3):
        item = await worker.next()
        items[item.orchestratorRequest.instanceId] = item

    await stub.CompleteOrchestratorTask(
        complete_with(
            items["bad-status"], complete_orchestration(1, status=pb.ORCHESTRATION_STATUS_RUNNING)
        )
    )
    entity = pb.OrchestratorAction(id=1)
    entity.sendEntityMessage.entityOperationSignaled.operation = "add"
    await stub.CompleteOrchestratorTask(complete_with(items["entity-user"], entity))
    child = pb.OrchestratorAction(id=1)
    child.createSubOrchestration.name = "sub"
    child.createSubOrchestration.instanceId = "@not-allowed"
    await stub.CompleteOrchestratorTask(complete_with(items["bad-child"], child))

    for name, words in (
        ("bad-status", "not a final status"),
        ("entity-user", "invalid entity message: targetInstanceId must not be empty"),
    ):
        state = await state_of(stub, name)
        assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_FAILED
        assert words in state.failureDetails.errorMessage
    reply = await worker.next()
    assert reply.orchestratorRequest.instanceId == "bad-child"
    failed = reply.orchestratorRequest.newEvents[1].subOrchestrationInstanceFailed
    assert failed.taskScheduledId == 1
    assert "reserved for entity" in failed.failureDetails.errorMessage
    await stub.Hello(Empty())  # the server is fine


async def test_sub_orchestration_protocol(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await start(stub, "mom")
    item = await worker.next()
    child = pb.OrchestratorAction(id=3)
    child.createSubOrchestration.name = "kid"
    child.createSubOrchestration.instanceId = "mom-kid"
    child.createSubOrchestration.input.value = '"hi"'
    await stub.CompleteOrchestratorTask(complete_with(item, child))
    kid = await worker.next()
    started = kid.orchestratorRequest.newEvents[1].executionStarted
    assert kid.orchestratorRequest.instanceId == "mom-kid"
    assert started.parentInstance.taskScheduledId == 3
    assert started.parentInstance.name.value == "orch"
    assert started.parentInstance.orchestrationInstance.instanceId == "mom"
    assert started.input.value == '"hi"'
    state = await state_of(stub, "mom-kid")
    assert state.parentInstanceId.value == "mom"
    await stub.CompleteOrchestratorTask(complete_with(kid, complete_orchestration(1, '"bye"')))
    back = await worker.next()
    assert kinds(back.orchestratorRequest.newEvents) == [
        "orchestratorStarted",
        "subOrchestrationInstanceCompleted",
    ]
    done = back.orchestratorRequest.newEvents[1].subOrchestrationInstanceCompleted
    assert done.taskScheduledId == 3
    assert done.result.value == '"bye"'
    created = back.orchestratorRequest.pastEvents[2]
    assert created.eventId == 3
    assert created.subOrchestrationInstanceCreated.instanceId == "mom-kid"


async def test_continue_as_new_protocol(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await start(stub, "loop", input='"1"')
    first = await worker.next()
    await stub.RaiseEvent(pb.RaiseEventRequest(instanceId="loop", name="late"))  # while leased
    again = pb.OrchestratorAction(id=1)
    done = again.completeOrchestration
    done.orchestrationStatus = pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW
    done.result.value = '"2"'
    kept = done.carryoverEvents.add(eventId=-1)
    kept.eventRaised.name = "kept"
    await stub.CompleteOrchestratorTask(complete_with(first, again))
    second = await worker.next()
    request = second.orchestratorRequest
    assert list(request.pastEvents) == []
    assert kinds(request.newEvents) == [
        "orchestratorStarted",
        "executionStarted",
        "eventRaised",
        "eventRaised",
    ]
    assert [e.eventRaised.name for e in request.newEvents[2:]] == ["kept", "late"]
    assert request.newEvents[1].executionStarted.input.value == '"2"'
    assert request.executionId.value != first.orchestratorRequest.executionId.value
    state = await state_of(stub, "loop")
    assert state.orchestrationStatus == pb.ORCHESTRATION_STATUS_RUNNING
    assert state.input.value == '"2"'
