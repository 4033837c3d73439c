"""Entities on the embedded backend with our worker and client: locks under contention,
deferred signals, scheduled signals, storage cleanup, and durability (restart, kill -9)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from durabletask import entities as official_entities
from durabletask.client import AsyncTaskHubGrpcClient

from dtask_async import entities, task
from dtask_async.backend import EmbeddedBackend
from dtask_async.client import AsyncDurableTaskClient, OrchestrationStatus
from dtask_async.entities import EntityInstanceId
from dtask_async.worker import AsyncDurableTaskWorker
from tests.conftest import free_port

from .conftest import QUIET, TEST_OPTIONS, emulator, eventually, official_worker

TIMEOUT = 60


# -- entities and orchestrations -----------------------------------------------------------


def counter(ctx: entities.EntityContext, input: Any) -> Any:
    state = ctx.get_state(int, 0)
    if ctx.operation == "add":
        ctx.set_state(state + input)
    elif ctx.operation == "get":
        return state
    elif ctx.operation == "set":
        ctx.set_state(input)
    elif ctx.operation == "delete":
        ctx.set_state(None)
    elif ctx.operation == "add_later":
        # Signal this entity itself, ``input["seconds"]`` from now.
        ctx.signal_entity(
            ctx.entity_id,
            "add",
            input["amount"],
            signal_time=dt.timedelta(seconds=input["seconds"]),
        )
    return None


def increment_all(ctx: task.OrchestrationContext, keys: list[str]) -> Any:
    """Lock every counter of ``keys``, then read and write each: no update may be lost."""
    ids = [EntityInstanceId("counter", key) for key in keys]
    with (yield ctx.lock_entities(ids)):
        for entity_id in ids:
            value = yield ctx.call_entity(entity_id, "get")
            yield ctx.call_entity(entity_id, "set", value + 1)
    return len(ids)


def hold_lock(ctx: task.OrchestrationContext, key: str) -> Any:
    """Lock a counter, wait for ``release`` (adding its value while locked), unlock."""
    entity_id = EntityInstanceId("counter", key)
    with (yield ctx.lock_entities([entity_id])):
        amount = yield ctx.wait_for_external_event("release")
        yield ctx.call_entity(entity_id, "add", amount)
    return "released"


def signal_later(ctx: task.OrchestrationContext, key: str) -> Any:
    ctx.signal_entity(
        EntityInstanceId("counter", key), "add", 1, signal_time=dt.timedelta(seconds=1)
    )
    return "sent"


@contextlib.asynccontextmanager
async def running(address: str) -> AsyncIterator[AsyncDurableTaskClient]:
    """Our worker (counter entity and the orchestrations above) and a client."""
    async with (
        AsyncDurableTaskWorker(host_address=address, shutdown_timeout=5) as worker,
        AsyncDurableTaskClient(host_address=address) as client,
    ):
        worker.add_entity(counter, name="counter")
        for orchestrator in (increment_all, hold_lock, signal_later):
            worker.add_orchestrator(orchestrator)
        await worker.start()
        await worker.wait_until_connected(timeout=10)
        yield client


async def state_of(client: AsyncDurableTaskClient, key: str) -> Any:
    metadata = await client.get_entity(EntityInstanceId("counter", key))
    return None if metadata is None else metadata.state


async def locked_by(client: AsyncDurableTaskClient, key: str) -> str | None:
    metadata = await client.get_entity(EntityInstanceId("counter", key))
    return None if metadata is None else metadata.locked_by


async def backlog_of(client: AsyncDurableTaskClient, key: str) -> int | None:
    metadata = await client.get_entity(EntityInstanceId("counter", key))
    return None if metadata is None else metadata.backlog_queue_size


# -- locks ------------------------------------------------------------------------------------


async def test_overlapping_lock_sets_neither_deadlock_nor_lose_updates(
    backend: EmbeddedBackend,
) -> None:
    sets = [["a", "b"], ["b", "c"], ["c", "a"], ["a", "b", "c"], ["c"], ["b", "a"]] * 5
    async with running(backend.address) as client:
        ids = await asyncio.gather(
            *(client.schedule_new_orchestration(increment_all, input=keys) for keys in sets)
        )
        for instance_id in ids:
            state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
            assert state is not None
            assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
        for key in ("a", "b", "c"):
            assert await state_of(client, key) == sum(key in keys for keys in sets)
            assert await locked_by(client, key) is None


async def test_signals_to_a_locked_entity_run_after_the_unlock(backend: EmbeddedBackend) -> None:
    async with running(backend.address) as client:
        await client.signal_entity(EntityInstanceId("counter", "held"), "set", 100)
        await eventually(lambda: state_of(client, "held"), 100)
        instance_id = await client.schedule_new_orchestration(hold_lock, input="held")
        await eventually(lambda: locked_by(client, "held"), instance_id)
        await client.signal_entity(EntityInstanceId("counter", "held"), "add", 1)
        await client.signal_entity(EntityInstanceId("counter", "held"), "set", 7)
        await eventually(lambda: backlog_of(client, "held"), 2)
        assert await state_of(client, "held") == 100  # the signals wait
        await client.raise_orchestration_event(instance_id, "release", data=10)
        done = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
        assert done is not None
        assert done.result == "released"
        # The holder's own call ran first (110), then the signals in order: +1, then 7.
        await eventually(lambda: state_of(client, "held"), 7)
        assert await locked_by(client, "held") is None


async def test_terminating_the_holder_releases_its_locks(backend: EmbeddedBackend) -> None:
    async with running(backend.address) as client:
        holder = await client.schedule_new_orchestration(hold_lock, input="t")
        await eventually(lambda: locked_by(client, "t"), holder)
        waiter = await client.schedule_new_orchestration(hold_lock, input="t")
        await client.signal_entity(EntityInstanceId("counter", "t"), "add", 1)
        await client.terminate_orchestration(holder)
        await eventually(lambda: locked_by(client, "t"), waiter)
        await client.raise_orchestration_event(waiter, "release", data=5)
        done = await client.wait_for_orchestration_completion(waiter, timeout=TIMEOUT)
        assert done is not None
        assert done.runtime_status is OrchestrationStatus.COMPLETED
        await eventually(lambda: state_of(client, "t"), 6)


# -- scheduled signals --------------------------------------------------------------------------


async def test_scheduled_signals_run_when_due(backend: EmbeddedBackend) -> None:
    async with running(backend.address) as client:
        start = asyncio.get_running_loop().time()
        await client.signal_entity(
            EntityInstanceId("counter", "client"),
            "add",
            3,
            signal_time=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1),
        )
        assert await client.get_entity(EntityInstanceId("counter", "client")) is None
        await client.signal_entity(
            EntityInstanceId("counter", "entity"), "add_later", {"amount": 4, "seconds": 1}
        )
        instance_id = await client.schedule_new_orchestration(signal_later, input="orch")
        await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
        await eventually(lambda: state_of(client, "client"), 3)
        await eventually(lambda: state_of(client, "entity"), 4)
        await eventually(lambda: state_of(client, "orch"), 1)
        assert asyncio.get_running_loop().time() - start >= 0.9


# -- cleanup ------------------------------------------------------------------------------------


async def test_clean_entity_storage_removes_only_idle_empty_entities(
    backend: EmbeddedBackend,
) -> None:
    async with running(backend.address) as client:
        await client.signal_entity(EntityInstanceId("counter", "kept"), "add", 1)
        await client.signal_entity(EntityInstanceId("counter", "emptied"), "add", 1)
        await client.signal_entity(EntityInstanceId("counter", "emptied"), "delete")
        holder = await client.schedule_new_orchestration(hold_lock, input="locked")
        await eventually(lambda: locked_by(client, "locked"), holder)
        await eventually(lambda: state_of(client, "kept"), 1)
        emptied = await client.get_entity(EntityInstanceId("counter", "emptied"))
        await eventually(lambda: backlog_of(client, "emptied"), 0)
        assert emptied is not None

        transient = await client.get_all_entities(include_transient=True)
        assert {str(e.id) for e in transient} == {
            "@counter@kept",
            "@counter@emptied",
            "@counter@locked",
        }
        assert {str(e.id) for e in await client.get_all_entities()} == {"@counter@kept"}

        result = await client.clean_entity_storage()
        assert (result.empty_entities_removed, result.orphaned_locks_released) == (1, 0)
        assert await client.get_entity(EntityInstanceId("counter", "emptied")) is None
        assert await locked_by(client, "locked") == holder  # locked: kept although empty
        again = await client.clean_entity_storage()
        assert (again.empty_entities_removed, again.orphaned_locks_released) == (0, 0)

        await client.raise_orchestration_event(holder, "release", data=0)
        await client.wait_for_orchestration_completion(holder, timeout=TIMEOUT)
        await eventually(lambda: locked_by(client, "locked"), None)


async def test_query_entities_pages_and_filters(backend: EmbeddedBackend) -> None:
    async with running(backend.address) as client:
        for key in ("k1", "k2", "k3", "k4", "k5"):
            await client.signal_entity(EntityInstanceId("counter", key), "add", 1)
        for key in ("k1", "k2", "k3", "k4", "k5"):
            await eventually(lambda k=key: state_of(client, k), 1)
        middle = dt.datetime.now(dt.timezone.utc)
        await asyncio.sleep(0.01)
        await client.signal_entity(EntityInstanceId("counter", "k5"), "add", 1)
        await eventually(lambda: state_of(client, "k5"), 2)
        paged = [e async for e in client.query_entities(page_size=2)]
        assert [str(e.id) for e in paged] == [f"@counter@k{i}" for i in range(1, 6)]
        recent = await client.get_all_entities(last_modified_from=middle)
        assert [str(e.id) for e in recent] == ["@counter@k5"]
        older = await client.get_all_entities(last_modified_to=middle)
        assert len(older) == 4
        bare = await client.get_all_entities(instance_id_starts_with="@counter@k1")
        assert [(str(e.id), e.state) for e in bare] == [("@counter@k1", 1)]


# -- durability ---------------------------------------------------------------------------------


async def test_entities_locks_and_scheduled_signals_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "entities.db"
    async with (
        EmbeddedBackend(db, options=TEST_OPTIONS) as backend,
        running(backend.address) as client,
    ):
        await client.signal_entity(EntityInstanceId("counter", "c"), "add", 2)
        await client.signal_entity(
            EntityInstanceId("counter", "c"),
            "add",
            40,
            signal_time=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1),
        )
        holder = await client.schedule_new_orchestration(hold_lock, input="w")
        await eventually(lambda: locked_by(client, "w"), holder)
        waiter = await client.schedule_new_orchestration(hold_lock, input="w")
        await client.wait_for_orchestration_start(waiter, timeout=TIMEOUT)  # it asked
    async with (
        EmbeddedBackend(db, options=TEST_OPTIONS) as backend,
        running(backend.address) as client,
    ):
        assert await locked_by(client, "w") == holder
        await client.raise_orchestration_event(holder, "release", data=1)
        await eventually(lambda: locked_by(client, "w"), waiter)  # next in line
        await client.raise_orchestration_event(waiter, "release", data=2)
        for instance_id in (holder, waiter):
            done = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
            assert done is not None
            assert done.result == "released"
        assert await state_of(client, "w") == 3
        await eventually(lambda: state_of(client, "c"), 42)


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
async def test_kill_9_keeps_entity_state_queues_locks_and_timers(tmp_path: Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    db = tmp_path / "kill.db"
    log = tmp_path / "emulator.log"
    key = f"k-{uuid.uuid4().hex[:6]}"
    async with emulator(port, db, log) as process:
        async with running(address) as client:
            await client.signal_entity(EntityInstanceId("counter", key), "add", 5)
            await eventually(lambda: state_of(client, key), 5)
            holder = await client.schedule_new_orchestration(hold_lock, input="held")
            await eventually(lambda: locked_by(client, "held"), holder)
        # No worker now: what follows is only queued, and acknowledged.
        async with AsyncDurableTaskClient(host_address=address) as client:
            await client.signal_entity(EntityInstanceId("counter", key), "add", 10)
            await client.signal_entity(EntityInstanceId("counter", "held"), "add", 1)
            await client.signal_entity(
                EntityInstanceId("counter", key),
                "add",
                100,
                signal_time=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5),
            )
        process.kill()  # SIGKILL: no flush, no goodbye
        await process.wait()

    async with emulator(port, db, log):
        async with AsyncDurableTaskClient(host_address=address) as client:
            assert await state_of(client, key) == 5
            assert await backlog_of(client, key) == 1
            assert await locked_by(client, "held") == holder
            assert await backlog_of(client, "held") == 1
        async with running(address) as client:
            await eventually(lambda: state_of(client, key), 15)
            assert await locked_by(client, "held") == holder
            assert await backlog_of(client, "held") == 1  # still waits for the unlock
            await client.raise_orchestration_event(holder, "release", data=20)
            done = await client.wait_for_orchestration_completion(holder, timeout=TIMEOUT)
            assert done is not None
            assert done.result == "released"
            await eventually(lambda: state_of(client, "held"), 21)
            await eventually(lambda: locked_by(client, "held"), None)
            await eventually(lambda: state_of(client, key), 115, timeout=30)


# -- the official worker --------------------------------------------------------------------


def official_counter(ctx: Any, input: Any) -> Any:
    state = ctx.get_state(int, 0)
    if ctx.operation == "add":
        ctx.set_state(state + input)
    return state


def official_locked_read_add(ctx: Any, _: Any) -> Any:
    counter_id = official_entities.EntityInstanceId("official_counter", "x")
    with (yield ctx.lock_entities([counter_id])):
        before = yield ctx.call_entity(counter_id, "get")
        yield ctx.call_entity(counter_id, "add", 1)
    after = yield ctx.call_entity(counter_id, "get")
    return [before, after]


async def test_the_official_worker_runs_entities_and_critical_sections(
    backend: EmbeddedBackend,
) -> None:
    async with official_worker(
        backend.address, orchestrators=[official_locked_read_add], entities=[official_counter]
    ):
        client = AsyncTaskHubGrpcClient(host_address=backend.address, logger=QUIET)
        try:
            counter_id = official_entities.EntityInstanceId("official_counter", "x")
            await client.signal_entity(counter_id, "add", 5)
            instance_id = await client.schedule_new_orchestration(official_locked_read_add)
            state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
            assert state.serialized_output == "[5, 6]"
            metadata = await client.get_entity(counter_id)
            assert metadata is not None
            assert metadata.get_state(int) == 6
        finally:
            await client.close()
