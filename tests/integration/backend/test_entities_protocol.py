"""Entities at the protocol level: work items, batches, leases and critical sections.

A hand-driven worker plays both the orchestrations and the entities, so each test sees
exactly which messages the backend sends, in which order, and when.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from dtask_async._proto import pb
from dtask_async.backend import EmbeddedBackend

from .conftest import ProtocolWorker, complete_orchestration, complete_with, kinds

Workers = Callable[..., ProtocolWorker]


# -- building messages ------------------------------------------------------------------


def lock(action_id: int, section: str, lock_set: list[str], owner: str) -> pb.OrchestratorAction:
    action = pb.OrchestratorAction(id=action_id)
    requested = action.sendEntityMessage.entityLockRequested
    requested.criticalSectionId = section
    requested.lockSet.extend(lock_set)
    requested.parentInstanceId.value = owner
    return action


def unlock(action_id: int, section: str, target: str, owner: str) -> pb.OrchestratorAction:
    action = pb.OrchestratorAction(id=action_id)
    sent = action.sendEntityMessage.entityUnlockSent
    sent.criticalSectionId = section
    sent.targetInstanceId.value = target
    sent.parentInstanceId.value = owner
    return action


def call(
    action_id: int, request_id: str, target: str, operation: str, owner: str
) -> pb.OrchestratorAction:
    action = pb.OrchestratorAction(id=action_id)
    called = action.sendEntityMessage.entityOperationCalled
    called.requestId = request_id
    called.operation = operation
    called.targetInstanceId.value = target
    called.parentInstanceId.value = owner
    return action


def operations(item: pb.WorkItem) -> list[tuple[str, str]]:
    """``(kind, requestId)`` of each operation of an entity work item."""
    out = []
    for event in item.entityRequestV2.operationRequests:
        kind = event.WhichOneof("eventType") or ""
        out.append((kind, getattr(event, kind).requestId))
    return out


def batch_result(
    item: pb.WorkItem, state: str | None, outputs: list[str | None] | None = None
) -> pb.EntityBatchResult:
    """A successful result for every operation of ``item`` (routed as our worker does)."""
    result = pb.EntityBatchResult(completionToken=item.completionToken)
    if state is not None:
        result.entityState.value = state
    events = item.entityRequestV2.operationRequests
    for index, event in enumerate(events):
        success = result.results.add().success
        output = outputs[index] if outputs is not None else None
        if output is not None:
            success.result.value = output
        info = result.operationInfos.add()
        if event.HasField("entityOperationCalled"):
            called = event.entityOperationCalled
            info.requestId = called.requestId
            info.responseDestination.instanceId = called.parentInstanceId.value
            info.responseDestination.executionId.CopyFrom(called.parentExecutionId)
        else:
            info.requestId = event.entityOperationSignaled.requestId
    return result


async def signal(stub: Any, entity_id: str, operation: str, request_id: str) -> None:
    await stub.SignalEntity(
        pb.SignalEntityRequest(instanceId=entity_id, name=operation, requestId=request_id)
    )


async def entity(stub: Any, entity_id: str, include_state: bool = True) -> pb.GetEntityResponse:
    return await stub.GetEntity(
        pb.GetEntityRequest(instanceId=entity_id, includeState=include_state)
    )


async def take(worker: ProtocolWorker, count: int) -> dict[str, pb.WorkItem]:
    """The next ``count`` work items, by instance (or entity) id."""
    items = {}
    for _ in range(count):
        item = await worker.next()
        if item.HasField("orchestratorRequest"):
            items[item.orchestratorRequest.instanceId] = item
        else:
            items[item.entityRequestV2.instanceId] = item
    return items


async def first_of(*workers: ProtocolWorker) -> pb.WorkItem:
    """The next work item on whichever of ``workers`` gets one first."""
    waits = [asyncio.ensure_future(worker.next()) for worker in workers]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return next(iter(done)).result()


def granted(item: pb.WorkItem) -> list[str]:
    return [
        e.entityLockGranted.criticalSectionId
        for e in item.orchestratorRequest.newEvents
        if e.HasField("entityLockGranted")
    ]


# -- batches ------------------------------------------------------------------------------


async def test_signals_become_batches_and_results_become_state(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    assert not (await entity(stub, "@counter@a")).exists
    await signal(stub, "@Counter@a", "add", "r1")  # entity names are case-insensitive
    await signal(stub, "@counter@a", "add", "r2")
    worker = protocol_workers()
    item = await worker.next()
    request = item.entityRequestV2
    assert request.instanceId == "@counter@a"
    assert not request.HasField("entityState")
    assert operations(item) == [
        ("entityOperationSignaled", "r1"),
        ("entityOperationSignaled", "r2"),
    ]
    assert request.operationRequests[0].entityOperationSignaled.operation == "add"

    await stub.CompleteEntityTask(batch_result(item, "5"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteEntityTask(batch_result(item, "6"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    found = await entity(stub, "@counter@a")
    assert found.exists
    assert found.entity.instanceId == "@counter@a"
    assert found.entity.serializedState.value == "5"
    assert found.entity.backlogQueueSize == 0
    assert not found.entity.HasField("lockedBy")
    assert found.entity.lastModifiedTime.seconds > 0
    assert not (await entity(stub, "@counter@a", include_state=False)).entity.HasField(
        "serializedState"
    )

    await signal(stub, "@counter@a", "delete", "r3")
    item = await worker.next()
    assert item.entityRequestV2.entityState.value == "5"
    await stub.CompleteEntityTask(batch_result(item, None))  # no state: deleted
    found = await entity(stub, "@counter@a")
    assert found.exists
    assert not found.entity.HasField("serializedState")


async def test_one_batch_per_entity_within_the_stream_limit(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers(entities=1)
    await signal(stub, "@counter@a", "add", "a1")
    first = await worker.next()
    await signal(stub, "@counter@b", "add", "b1")
    await signal(stub, "@counter@a", "add", "a2")
    await worker.nothing_for(0.3)  # the stream's one entity slot is taken
    backlog = await entity(stub, "@counter@a")
    assert backlog.entity.backlogQueueSize == 1

    other = protocol_workers(entities=5)
    second = await other.next()
    assert second.entityRequestV2.instanceId == "@counter@b"  # @counter@a is busy
    await other.nothing_for(0.3)
    await stub.CompleteEntityTask(batch_result(first, "1"))
    third = await first_of(worker, other)
    assert third.entityRequestV2.instanceId == "@counter@a"
    assert operations(third) == [("entityOperationSignaled", "a2")]
    assert third.entityRequestV2.entityState.value == "1"


async def test_abandoned_batches_come_back_first_and_unchanged(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await signal(stub, "@counter@a", "add", "r1")
    item = await worker.next()
    await signal(stub, "@counter@a", "add", "r2")
    await signal(stub, "@counter@a", "add", "r3")
    await stub.AbandonTaskEntityWorkItem(
        pb.AbandonEntityTaskRequest(completionToken=item.completionToken)
    )
    again = await worker.next()
    assert operations(again) == [("entityOperationSignaled", "r1")]
    assert again.completionToken != item.completionToken
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteEntityTask(batch_result(item, "1"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # A stream that goes away gives its batch back too.
    await worker.close()
    replacement = protocol_workers()
    resent = await replacement.next()
    assert operations(resent) == [("entityOperationSignaled", "r1")]
    await stub.CompleteEntityTask(batch_result(resent, "1"))
    rest = await replacement.next()
    assert operations(rest) == [
        ("entityOperationSignaled", "r2"),
        ("entityOperationSignaled", "r3"),
    ]


@pytest.mark.parametrize("backend", [{"lease_duration": 0.5}], indirect=True)
async def test_expired_entity_leases_are_redelivered(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await signal(stub, "@counter@a", "add", "r1")
    item = await worker.next()
    again = await worker.next(timeout=5)  # the lease expired: same batch, new token
    assert operations(again) == operations(item)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CompleteEntityTask(batch_result(item, "1"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await stub.CompleteEntityTask(batch_result(again, "1"))
    assert (await entity(stub, "@counter@a")).entity.serializedState.value == "1"


async def test_entity_requests_are_validated(backend: EmbeddedBackend, stub: Any) -> None:
    for bad in ("", "counter", "@counter", "@@key", "@counter@"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await signal(stub, bad, "add", "r")
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await entity(stub, bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await signal(stub, "@counter@a", "", "r")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- critical sections ------------------------------------------------------------------


async def test_locks_are_granted_first_come_first_served(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    for name in ("o1", "o2", "o3"):
        await stub.StartInstance(pb.CreateInstanceRequest(instanceId=name, name="orch"))
    started = await take(worker, 3)
    await stub.CompleteOrchestratorTask(
        complete_with(started["o1"], lock(1, "s1", ["@counter@a"], "o1"))
    )
    first = await worker.next()
    assert first.orchestratorRequest.instanceId == "o1"
    assert granted(first) == ["s1"]
    # o2 asks for both (in any order: the backend locks in sorted order), o3 for one.
    await stub.CompleteOrchestratorTask(
        complete_with(started["o2"], lock(1, "s2", ["@counter@b", "@counter@a"], "o2"))
    )
    await stub.CompleteOrchestratorTask(
        complete_with(started["o3"], lock(1, "s3", ["@counter@a"], "o3"))
    )
    await worker.nothing_for(0.3)
    held = await entity(stub, "@counter@a")
    assert held.entity.lockedBy.value == "o1"
    assert not (await entity(stub, "@counter@b")).exists  # o2 has not got that far

    await stub.CompleteOrchestratorTask(complete_with(first, unlock(2, "s1", "@counter@a", "o1")))
    second = await worker.next()
    assert second.orchestratorRequest.instanceId == "o2"
    assert granted(second) == ["s2"]
    for entity_id in ("@counter@a", "@counter@b"):
        assert (await entity(stub, entity_id)).entity.lockedBy.value == "o2"
    await worker.nothing_for(0.3)

    # o2 ends without unlocking: its locks are released anyway, and o3 is next.
    await stub.CompleteOrchestratorTask(complete_with(second, complete_orchestration(2)))
    third = await worker.next()
    assert third.orchestratorRequest.instanceId == "o3"
    assert granted(third) == ["s3"]
    assert not (await entity(stub, "@counter@b")).entity.HasField("lockedBy")

    # The history records the lock request as sent.
    chunks = stub.StreamInstanceHistory(pb.StreamInstanceHistoryRequest(instanceId="o1"))
    history = [event async for chunk in chunks for event in chunk.events]
    assert "entityLockRequested" in kinds(history)
    recorded = next(e for e in history if e.HasField("entityLockRequested"))
    assert recorded.eventId == 1
    sent = lock(1, "s1", ["@counter@a"], "o1").sendEntityMessage
    assert recorded.entityLockRequested == sent.entityLockRequested
    unlocked = next(e for e in history if e.HasField("entityUnlockSent"))
    assert unlocked.eventId == 2


async def test_a_locked_entity_runs_only_its_holders_calls(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    for name in ("holder", "other"):
        await stub.StartInstance(pb.CreateInstanceRequest(instanceId=name, name="orch"))
    started = await take(worker, 2)
    await stub.CompleteOrchestratorTask(
        complete_with(started["holder"], lock(1, "s", ["@counter@a"], "holder"))
    )
    holding = await worker.next()
    assert granted(holding) == ["s"]
    # Messages from others wait while the entity is locked ...
    await signal(stub, "@counter@a", "add", "signal-1")
    await stub.CompleteOrchestratorTask(
        complete_with(started["other"], call(1, "other-call", "@counter@a", "get", "other"))
    )
    await worker.nothing_for(0.3)
    assert (await entity(stub, "@counter@a")).entity.backlogQueueSize == 2
    # ... while the holder's calls run at once.
    await stub.CompleteOrchestratorTask(
        complete_with(holding, call(2, "holder-call", "@counter@a", "get", "holder"))
    )
    batch = await worker.next()
    assert operations(batch) == [("entityOperationCalled", "holder-call")]
    await stub.CompleteEntityTask(batch_result(batch, "10", ["10"]))
    answer = await worker.next()
    assert answer.orchestratorRequest.instanceId == "holder"
    completed = answer.orchestratorRequest.newEvents[-1].entityOperationCompleted
    assert (completed.requestId, completed.output.value) == ("holder-call", "10")

    # Unlocking lets the waiting messages run, in arrival order.
    await stub.CompleteOrchestratorTask(
        complete_with(answer, unlock(3, "s", "@counter@a", "holder"), complete_orchestration(4))
    )
    rest = await worker.next()
    assert operations(rest) == [
        ("entityOperationSignaled", "signal-1"),
        ("entityOperationCalled", "other-call"),
    ]
    await stub.CompleteEntityTask(batch_result(rest, "11", [None, "11"]))
    reply = await worker.next()
    assert reply.orchestratorRequest.instanceId == "other"
    completed = reply.orchestratorRequest.newEvents[-1].entityOperationCompleted
    assert (completed.requestId, completed.output.value) == ("other-call", "11")


async def test_waiting_lock_requests_are_cancelled_when_their_owner_ends(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    for name in ("first", "quitter", "terminated", "last"):
        await stub.StartInstance(pb.CreateInstanceRequest(instanceId=name, name="orch"))
    started = await take(worker, 4)
    await stub.CompleteOrchestratorTask(
        complete_with(started["first"], lock(1, "s1", ["@counter@a"], "first"))
    )
    holding = await worker.next()
    # "quitter" holds @counter@0 and waits for @counter@a; it gives up by unlocking.
    await stub.CompleteOrchestratorTask(
        complete_with(started["quitter"], lock(1, "sq", ["@counter@0", "@counter@a"], "quitter"))
    )
    await stub.CompleteOrchestratorTask(
        complete_with(started["terminated"], lock(1, "st", ["@counter@a"], "terminated"))
    )
    await stub.CompleteOrchestratorTask(
        complete_with(started["last"], lock(1, "sl", ["@counter@a"], "last"))
    )
    assert (await entity(stub, "@counter@0")).entity.lockedBy.value == "quitter"
    await worker.nothing_for(0.2)
    quitter_item = await _raise_and_take(stub, worker, "quitter")
    await stub.CompleteOrchestratorTask(
        complete_with(
            quitter_item,
            unlock(2, "sq", "@counter@0", "quitter"),
            unlock(3, "sq", "@counter@a", "quitter"),
            complete_orchestration(4),
        )
    )
    assert not (await entity(stub, "@counter@0")).entity.HasField("lockedBy")
    await stub.TerminateInstance(pb.TerminateRequest(instanceId="terminated"))
    terminate = await worker.next()
    await stub.CompleteOrchestratorTask(
        complete_with(
            terminate, complete_orchestration(2, status=pb.ORCHESTRATION_STATUS_TERMINATED)
        )
    )
    # Only "last" still waits: it is granted once "first" lets go.
    await stub.CompleteOrchestratorTask(
        complete_with(holding, unlock(2, "s1", "@counter@a", "first"))
    )
    last = await worker.next()
    assert last.orchestratorRequest.instanceId == "last"
    assert granted(last) == ["sl"]
    await worker.nothing_for(0.3)


async def _raise_and_take(stub: Any, worker: ProtocolWorker, instance_id: str) -> pb.WorkItem:
    await stub.RaiseEvent(pb.RaiseEventRequest(instanceId=instance_id, name="go"))
    item = await worker.next()
    assert item.orchestratorRequest.instanceId == instance_id
    return item


async def test_replacing_an_owner_releases_its_locks(
    backend: EmbeddedBackend, stub: Any, protocol_workers: Workers
) -> None:
    worker = protocol_workers()
    await stub.StartInstance(pb.CreateInstanceRequest(instanceId="owner", name="orch"))
    item = await worker.next()
    await stub.CompleteOrchestratorTask(
        complete_with(item, lock(1, "s", ["@counter@a", "@counter@b"], "owner"))
    )
    holding = await worker.next()
    assert granted(holding) == ["s"]
    assert (await entity(stub, "@counter@b")).entity.lockedBy.value == "owner"
    policy = pb.OrchestrationIdReusePolicy(
        replaceableStatus=[pb.ORCHESTRATION_STATUS_RUNNING, pb.ORCHESTRATION_STATUS_PENDING]
    )
    await stub.StartInstance(
        pb.CreateInstanceRequest(instanceId="owner", name="orch", orchestrationIdReusePolicy=policy)
    )
    for entity_id in ("@counter@a", "@counter@b"):
        assert not (await entity(stub, entity_id)).entity.HasField("lockedBy")
