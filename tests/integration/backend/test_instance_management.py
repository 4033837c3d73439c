"""Client operations on instances: terminate, suspend, purge, query, restart, reuse."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from durabletask.client import OrchestrationQuery, OrchestrationStatus

from dtask_async._proto import pb
from dtask_async.backend import EmbeddedBackend

from . import flows
from .conftest import official_worker

TIMEOUT = 30


async def test_terminate_a_waiting_orchestration(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    async with official_worker(backend.address, orchestrators=[flows.approval]):
        instance_id = await official_client.schedule_new_orchestration(flows.approval)
        await official_client.wait_for_orchestration_start(instance_id, timeout=TIMEOUT)
        await official_client.terminate_orchestration(instance_id, output="user cancelled")
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.TERMINATED
    assert json.loads(state.serialized_output) == "user cancelled"


async def test_terminate_before_any_worker_ran_it(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    instance_id = await official_client.schedule_new_orchestration("not_registered_anywhere")
    await official_client.terminate_orchestration(instance_id, output="never mind")
    state = await official_client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state.runtime_status == OrchestrationStatus.TERMINATED
    assert json.loads(state.serialized_output) == "never mind"


async def test_recursive_terminate(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.parent_waiting, flows.approval]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.parent_waiting)
        child_id = f"{instance_id}-child"
        await official_client.wait_for_orchestration_start(instance_id, timeout=TIMEOUT)
        await official_client.wait_for_orchestration_start(child_id, timeout=TIMEOUT)
        await official_client.terminate_orchestration(instance_id, output="stop", recursive=True)
        parent = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
        child = await official_client.wait_for_orchestration_completion(child_id, timeout=TIMEOUT)
    assert parent.runtime_status == OrchestrationStatus.TERMINATED
    assert child.runtime_status == OrchestrationStatus.TERMINATED


async def test_non_recursive_terminate_leaves_the_child_running(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.parent_waiting, flows.approval]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.parent_waiting)
        child_id = f"{instance_id}-child"
        await official_client.wait_for_orchestration_start(child_id, timeout=TIMEOUT)
        await official_client.terminate_orchestration(instance_id, recursive=False)
        await official_client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
        child = await official_client.get_orchestration_state(child_id)
        assert child.runtime_status == OrchestrationStatus.RUNNING
        await official_client.raise_orchestration_event(child_id, "approve", data=1)
        child = await official_client.wait_for_orchestration_completion(child_id, timeout=TIMEOUT)
    assert child.runtime_status == OrchestrationStatus.COMPLETED


async def test_suspend_and_resume(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(backend.address, orchestrators=[flows.approval]):
        instance_id = await official_client.schedule_new_orchestration(flows.approval)
        await official_client.wait_for_orchestration_start(instance_id, timeout=TIMEOUT)
        await official_client.suspend_orchestration(instance_id, reason="maintenance")
        state = await official_client.get_orchestration_state(instance_id)
        assert state.runtime_status == OrchestrationStatus.SUSPENDED
        await official_client.raise_orchestration_event(instance_id, "approve", data="later")
        with pytest.raises(TimeoutError):
            await official_client.wait_for_orchestration_completion(instance_id, timeout=1)
        assert (
            await official_client.get_orchestration_state(instance_id)
        ).runtime_status == OrchestrationStatus.SUSPENDED
        await official_client.resume_orchestration(instance_id, reason="done")
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == {"approved": "later"}
    names = [type(e).__name__ for e in await official_client.get_orchestration_history(instance_id)]
    assert names.index("ExecutionSuspendedEvent") < names.index("ExecutionResumedEvent")


async def test_suspend_a_finished_instance_is_refused(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    instance_id = await official_client.schedule_new_orchestration("x")
    await official_client.terminate_orchestration(instance_id)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await official_client.suspend_orchestration(instance_id)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_purge_single_and_recursive(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.parent, flows.chain], activities=[flows.hello]
    ):
        first = await official_client.schedule_new_orchestration(flows.chain, input="a")
        second = await official_client.schedule_new_orchestration(flows.parent, input="b")
        await official_client.wait_for_orchestration_completion(first, timeout=TIMEOUT)
        await official_client.wait_for_orchestration_completion(second, timeout=TIMEOUT)
    result = await official_client.purge_orchestration(first, recursive=False)
    assert result.deleted_instance_count == 1
    assert await official_client.get_orchestration_state(first) is None
    result = await official_client.purge_orchestration(second, recursive=True)
    assert result.deleted_instance_count == 2
    assert await official_client.get_orchestration_state(second) is None
    assert await official_client.get_orchestration_state(f"{second}-child") is None
    result = await official_client.purge_orchestration("never-existed")
    assert result.deleted_instance_count == 0


async def test_purge_of_a_running_instance_is_refused(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    instance_id = await official_client.schedule_new_orchestration("x")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await official_client.purge_orchestration(instance_id)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "terminate it first" in info.value.details()
    assert await official_client.get_orchestration_state(instance_id) is not None


async def test_purge_by_filter(backend: EmbeddedBackend, official_client: Any) -> None:
    before = datetime.now(timezone.utc)
    terminated = [await official_client.schedule_new_orchestration("x") for _ in range(3)]
    for instance_id in terminated:
        await official_client.terminate_orchestration(instance_id)
    pending = await official_client.schedule_new_orchestration("x")
    result = await official_client.purge_orchestrations_by(
        created_time_from=before - timedelta(seconds=1),
        runtime_status=[OrchestrationStatus.TERMINATED, OrchestrationStatus.PENDING],
    )
    assert result.deleted_instance_count == 3  # the pending one is not finished
    assert result.is_complete is True
    for instance_id in terminated:
        assert await official_client.get_orchestration_state(instance_id) is None
    assert await official_client.get_orchestration_state(pending) is not None
    result = await official_client.purge_orchestrations_by(created_time_to=before)
    assert result.deleted_instance_count == 0


async def test_query_with_paging(backend: EmbeddedBackend, official_client: Any, stub: Any) -> None:
    ids = [
        await official_client.schedule_new_orchestration("x", instance_id=f"page-{i:02d}", input=i)
        for i in range(25)
    ]
    await official_client.schedule_new_orchestration("x", instance_id="other-1")
    for instance_id in ids[:5]:
        await official_client.terminate_orchestration(instance_id)

    states = await official_client.get_all_orchestration_states(
        OrchestrationQuery(
            instance_id_prefix="page-", max_instance_count=10, fetch_inputs_and_outputs=True
        )
    )
    assert sorted(s.instance_id for s in states) == ids
    assert {s.instance_id: json.loads(s.serialized_input) for s in states}["page-07"] == 7

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = pb.InstanceQuery(maxInstanceCount=10)
        query.instanceIdPrefix.value = "page-"
        if token is not None:
            query.continuationToken.value = token
        response = await stub.QueryInstances(pb.QueryInstancesRequest(query=query))
        pages += 1
        seen.extend(s.instanceId for s in response.orchestrationState)
        assert all(not s.HasField("input") for s in response.orchestrationState)
        if not response.HasField("continuationToken"):
            break
        token = response.continuationToken.value
    assert pages == 3
    assert sorted(seen) == ids
    assert len(seen) == 25

    terminated = await official_client.get_all_orchestration_states(
        OrchestrationQuery(runtime_status=[OrchestrationStatus.TERMINATED])
    )
    assert sorted(s.instance_id for s in terminated) == ids[:5]


async def test_query_rejects_foreign_tokens(backend: EmbeddedBackend, stub: Any) -> None:
    query = pb.InstanceQuery()
    query.continuationToken.value = "not-a-token"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.QueryInstances(pb.QueryInstancesRequest(query=query))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_instance_ids(backend: EmbeddedBackend, official_client: Any) -> None:
    done = []
    for i in range(7):
        instance_id = await official_client.schedule_new_orchestration("x", instance_id=f"done-{i}")
        await official_client.terminate_orchestration(instance_id)
        done.append(instance_id)
    await official_client.schedule_new_orchestration("x", instance_id="still-pending")
    collected: list[str] = []
    token = None
    while True:
        page = await official_client.list_instance_ids(page_size=3, continuation_token=token)
        collected.extend(page.items)
        token = page.continuation_token
        if token is None:
            break
    assert collected == done  # finished ones only, in completion order


async def test_restart_with_same_and_new_id(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.chain], activities=[flows.hello]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.chain, input="again")
        first = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
        same = await official_client.restart_orchestration(instance_id)
        assert same == instance_id
        second = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
        other = await official_client.restart_orchestration(
            instance_id, restart_with_new_instance_id=True
        )
        assert other != instance_id
        third = await official_client.wait_for_orchestration_completion(other, timeout=TIMEOUT)
    assert first.serialized_output == second.serialized_output == third.serialized_output
    assert second.created_at > first.created_at


async def test_restart_of_a_running_instance_is_refused(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    instance_id = await official_client.schedule_new_orchestration("x")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await official_client.restart_orchestration(instance_id)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_instance_id_reuse(backend: EmbeddedBackend, official_client: Any) -> None:
    await official_client.schedule_new_orchestration("x", instance_id="reused", input=1)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await official_client.schedule_new_orchestration("x", instance_id="reused", input=2)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "PENDING" in info.value.details()

    await official_client.terminate_orchestration("reused")
    await official_client.wait_for_orchestration_completion("reused", timeout=TIMEOUT)
    # A finished instance is replaced by default...
    await official_client.schedule_new_orchestration("x", instance_id="reused", input=3)
    state = await official_client.get_orchestration_state("reused")
    assert state.runtime_status == OrchestrationStatus.PENDING
    assert json.loads(state.serialized_input) == 3

    # ...a policy lists the statuses that may be replaced...
    only_failed = pb.OrchestrationIdReusePolicy(replaceableStatus=[pb.ORCHESTRATION_STATUS_FAILED])
    await official_client.terminate_orchestration("reused")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await official_client.schedule_new_orchestration(
            "x", instance_id="reused", reuse_id_policy=_official(only_failed)
        )
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS

    # ...and may even name a running status.
    await official_client.schedule_new_orchestration("x", instance_id="reused", input=4)
    pending_ok = pb.OrchestrationIdReusePolicy(replaceableStatus=[pb.ORCHESTRATION_STATUS_PENDING])
    await official_client.schedule_new_orchestration(
        "x", instance_id="reused", input=5, reuse_id_policy=_official(pending_ok)
    )
    state = await official_client.get_orchestration_state("reused")
    assert json.loads(state.serialized_input) == 5


def _official(policy: pb.OrchestrationIdReusePolicy) -> Any:
    from durabletask.internal import orchestrator_service_pb2 as official_pb

    return official_pb.OrchestrationIdReusePolicy.FromString(policy.SerializeToString())


async def test_rewind_a_failed_orchestration(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    key = f"rewind-{id(backend)}"
    async with official_worker(
        backend.address, orchestrators=[flows.flaky], activities=[flows.hello, flows.fail_once]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.flaky, input=key)
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
        assert state.runtime_status == OrchestrationStatus.FAILED
        await official_client.rewind_orchestration(instance_id, reason="fixed it")
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == [f"Hello {key}!", f"{key} ok"]
    assert flows.count(key) == 2


async def test_rewind_requires_a_failed_instance(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    instance_id = await official_client.schedule_new_orchestration("x")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await official_client.rewind_orchestration(instance_id)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_unknown_instances(backend: EmbeddedBackend, official_client: Any) -> None:
    assert await official_client.get_orchestration_state("ghost") is None
    assert await official_client.wait_for_orchestration_completion("ghost", timeout=5) is None
    for call in (
        official_client.raise_orchestration_event("ghost", "e"),
        official_client.terminate_orchestration("ghost"),
        official_client.suspend_orchestration("ghost"),
        official_client.resume_orchestration("ghost"),
        official_client.restart_orchestration("ghost"),
        official_client.rewind_orchestration("ghost"),
        official_client.get_orchestration_history("ghost"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "ghost" in info.value.details()
