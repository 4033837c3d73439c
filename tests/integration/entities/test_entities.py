"""Entities end to end: our worker and client on each backend."""

from __future__ import annotations

import random
import uuid
from typing import Any

from dtask_async import OrchestrationStatus
from dtask_async.client import AsyncDurableTaskClient, EntityQuery
from dtask_async.entities import EntityInstanceId
from dtask_async.worker import AsyncDurableTaskWorker
from tests.integration.entities import flows

from .conftest import eventually, run_all

TIMEOUT = 30


async def state_of(client: AsyncDurableTaskClient, entity_id: EntityInstanceId) -> Any:
    metadata = await client.get_entity(entity_id)
    return None if metadata is None else metadata.state


async def run(client: AsyncDurableTaskClient, orchestrator: Any, input: Any = None) -> Any:
    instance_id = await client.schedule_new_orchestration(orchestrator, input=input)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    return state


# -- seed 002 ---------------------------------------------------------------------------------


async def test_seed_counter(entity_backend: str, counter_form: str) -> None:
    async with (
        AsyncDurableTaskWorker(host_address=entity_backend, shutdown_timeout=5) as worker,
        AsyncDurableTaskClient(host_address=entity_backend) as client,
    ):
        flows.register(worker, counter_form=counter_form)
        await worker.start()
        entity_id = EntityInstanceId("counter", "my-counter")
        # Using entities from the client, as the seed does.
        await client.signal_entity(entity_id, "add", input=10)
        await eventually(lambda: state_of(client, entity_id), 10)
        state = await run(client, flows.workflow_with_entity)
        assert state.runtime_status is OrchestrationStatus.COMPLETED
        assert state.result == "Counter value: 15"
        await client.signal_entity(entity_id, "subtract", input=3)
        await eventually(lambda: state_of(client, entity_id), 12)
        await client.signal_entity("@counter@my-counter", "reset")
        await eventually(lambda: state_of(client, entity_id), 0)


async def test_seed_locked_transfer(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    one, two = EntityInstanceId("account", "account-1"), EntityInstanceId("account", "account-2")
    await client.signal_entity(one, "deposit", 250)
    await client.signal_entity(two, "deposit", 40)
    await eventually(lambda: state_of(client, two), 40)
    await eventually(lambda: state_of(client, one), 250)
    state = await run(client, flows.workflow_with_locks)
    assert state.result == {"result": "Transfer complete", "before": [250, 40]}
    assert (await state_of(client, one), await state_of(client, two)) == (150, 140)
    unlocked = await client.get_entity(one)
    assert unlocked is not None
    assert unlocked.locked_by is None


# -- mutual exclusion -------------------------------------------------------------------------


async def test_thirty_locked_increments_never_lose_an_update(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    key = f"shared-{uuid.uuid4().hex[:8]}"
    states = await run_all(client, flows.locked_increment, [key] * 30, timeout=120)
    assert [s.runtime_status for s in states] == [OrchestrationStatus.COMPLETED] * 30
    # Every orchestration saw a different value: 1 .. 30, each exactly once.
    assert sorted(s.result for s in states) == list(range(1, 31))
    assert await state_of(client, EntityInstanceId("counter", key)) == 30


async def test_concurrent_transfers_keep_the_total_and_refuse_overdrafts(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    a, b = EntityInstanceId("account", "alice"), EntityInstanceId("account", "bob")
    await client.signal_entity(a, "deposit", 100)
    await client.signal_entity(b, "deposit", 100)
    await eventually(lambda: state_of(client, a), 100)
    await eventually(lambda: state_of(client, b), 100)
    rng = random.Random(7)
    orders = [
        {"from": "alice", "to": "bob", "amount": rng.randint(1, 60)}
        if i % 2
        else {"from": "bob", "to": "alice", "amount": rng.randint(1, 60)}
        for i in range(24)
    ]
    orders += [{"from": "alice", "to": "bob", "amount": 1_000}]  # always an overdraft
    states = await run_all(client, flows.transfer, orders, timeout=120)
    assert all(s.runtime_status is OrchestrationStatus.COMPLETED for s in states)
    results = [s.result for s in states]
    refused = [r for r in results if not r["ok"]]
    assert results[-1]["ok"] is False
    assert "insufficient funds" in results[-1]["reason"]
    assert "operation 'withdraw' on entity @account@alice failed" in results[-1]["reason"]
    assert all("insufficient funds" in r["reason"] for r in refused)
    alice, bob = await state_of(client, a), await state_of(client, b)
    assert alice + bob == 200
    assert alice >= 0
    assert bob >= 0
    moved = sum(
        (o["amount"] if o["to"] == "alice" else -o["amount"])
        for o, r in zip(orders, results, strict=True)
        if r["ok"]
    )
    assert alice == 100 + moved


# -- failures -----------------------------------------------------------------------------------


async def test_a_failing_operation_is_rolled_back_and_reported(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    entity_id = EntityInstanceId("counter", "fragile")
    await client.signal_entity(entity_id, "add", 5)
    await client.signal_entity(entity_id, "explode")
    await client.signal_entity(entity_id, "add", 1)
    await eventually(lambda: state_of(client, entity_id), 6)
    state = await run(
        client, flows.call_and_report, {"entity": str(entity_id), "operation": "explode"}
    )
    assert state.result == {
        "failed": "operation 'explode' on entity @counter@fragile failed: "
        "RuntimeError: the counter exploded",
        "type": "RuntimeError",
        "operation": "explode",
    }
    assert await state_of(client, entity_id) == 6


async def test_unknown_operation_and_unknown_entity(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    unknown_op = await run(
        client, flows.call_and_report, {"entity": "@account@x", "operation": "steal"}
    )
    assert unknown_op.result["type"] == "EntityOperationNotFoundError"
    assert (
        "entity @account@x (class Account) has no operation 'steal'"
        in (unknown_op.result["failed"])
    )
    unknown_entity = await run(
        client, flows.call_and_report, {"entity": "@ghost@x", "operation": "boo"}
    )
    assert unknown_entity.result["type"] == "EntityNotRegisteredError"
    assert "entity 'ghost' is not registered" in unknown_entity.result["failed"]


async def test_calling_an_unlocked_entity_fails_the_orchestration_and_frees_the_lock(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, flows.call_unlocked_entity)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "dtask_async.EntityLockError"
    assert "cannot call entity @counter@other" in state.failure_details.message
    # The lock was released when the orchestration failed: another can take it.
    again = await run(client, flows.locked_increment, "locked")
    assert again.result == 1


# -- entities sending messages ------------------------------------------------------------------


async def test_entity_messages_go_out_only_when_the_operation_succeeds(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    relay = EntityInstanceId("relay", "r")
    await client.signal_entity(relay, "forward_then_fail", 1)
    await client.signal_entity(relay, "forward", 7)

    async def started_yet() -> bool:
        return await client.get_orchestration_state("relayed-7") is not None

    # The entity starts it asynchronously; a backend may answer a wait for an instance
    # that does not exist yet with "no such instance" (the embedded one does).
    await eventually(started_yet, True)
    started = await client.wait_for_orchestration_completion("relayed-7", timeout=TIMEOUT)
    assert started is not None
    assert started.result == "relayed 7"
    relayed = EntityInstanceId("counter", "relayed")
    assert await eventually(lambda: state_of(client, relayed), 7) == 7
    assert await client.get_orchestration_state("never") is None


# -- client entity operations -------------------------------------------------------------------


async def test_client_queries_and_cleanup(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    assert await client.get_entity(EntityInstanceId("counter", "nobody")) is None
    for key, value in [("a", 1), ("b", 2), ("c", 3)]:
        await client.signal_entity(EntityInstanceId("counter", key), "add", value)
    await client.signal_entity(EntityInstanceId("account", "z"), "deposit", 9)
    for key, value in [("a", 1), ("b", 2), ("c", 3)]:
        await eventually(lambda k=key: state_of(client, EntityInstanceId("counter", k)), value)
    await eventually(lambda: state_of(client, EntityInstanceId("account", "z")), 9)

    without_state = await client.get_entity("@counter@a", include_state=False)
    assert without_state is not None
    assert (without_state.includes_state, without_state.state) == (False, None)
    assert without_state.instance_id == "@counter@a"
    assert without_state.last_modified.tzinfo is not None

    paged = [
        e async for e in client.query_entities(instance_id_starts_with="@Counter@", page_size=1)
    ]
    assert [(str(e.id), e.state) for e in paged] == [
        ("@counter@a", 1),
        ("@counter@b", 2),
        ("@counter@c", 3),
    ]
    everything = await client.get_all_entities()
    assert {str(e.id) for e in everything} == {
        "@counter@a",
        "@counter@b",
        "@counter@c",
        "@account@z",
    }
    accounts = await client.get_all_entities(
        EntityQuery(instance_id_starts_with="@account@", include_state=False)
    )
    assert [(str(e.id), e.serialized_state) for e in accounts] == [("@account@z", None)]

    # An entity whose state is deleted (the built-in ``delete`` operation of class
    # entities) is empty: cleaning storage removes it.
    await client.signal_entity("@account@z", "delete")
    await eventually(lambda: state_of(client, EntityInstanceId("account", "z")), None)
    result = await client.clean_entity_storage()
    assert result.empty_entities_removed >= 1
    assert result.orphaned_locks_released == 0
    assert await client.get_entity("@account@z") is None
    remaining = {str(e.id) for e in await client.get_all_entities()}
    assert remaining == {"@counter@a", "@counter@b", "@counter@c"}
