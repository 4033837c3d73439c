"""The SQLite store: group commit, durability across reopen, failure handling."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import anyio
import pytest

from dtask_async._proto import pb
from dtask_async.backend import _events as ev
from dtask_async.backend._model import Entity, Instance, Section, Txn
from dtask_async.backend._store import StorageError, Store


def _instance(instance_id: str) -> Instance:
    state = pb.OrchestrationState(instanceId=instance_id, name="orch")
    state.createdTimestamp.CopyFrom(ev.ts(1))
    return Instance(state, generation=1, history=[])


async def _run(store: Store, body: object) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.run)
        await body  # type: ignore[misc]
        await store.barrier()
        tg.cancel_scope.cancel()


async def test_concurrent_requests_share_a_commit(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    await store.open()

    async def body() -> None:
        futures = []
        for i in range(50):
            txn = Txn()
            inst = _instance(f"i{i}")
            txn.touch(inst)
            txn.exec(
                store.sql.add_inbox,
                (inst.instance_id, 0, ev.orchestrator_started(1).SerializeToString()),
            )
            futures.append(store.submit(txn))
        assert len({id(f) for f in futures}) == 1  # one batch, one transaction
        await asyncio.gather(*futures)

    await _run(store, body())
    await store.close()

    reopened = Store(tmp_path / "s.db")
    stored = await reopened.open()
    assert sorted(state.instanceId for state, *_ in stored.instances) == sorted(
        f"i{i}" for i in range(50)
    )
    assert len(stored.inbox) == 50
    await reopened.close()


async def test_reads_see_earlier_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "r.db")
    await store.open()

    async def body() -> None:
        txn = Txn()
        events = [ev.orchestrator_started(1), ev.event_raised(2, "e", None)]
        for seq, event in enumerate(events):
            txn.exec(store.sql.add_history, ("h", seq, event.SerializeToString()))
        store.submit(txn)
        loaded, past = await store.read(store.read_history("h"))
        assert loaded == events
        assert past  # the encoded pastEvents field

    await _run(store, body())
    await store.close()


async def test_a_failed_write_stops_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "f.db")
    await store.open()

    async def body() -> None:
        txn = Txn()
        txn.exec("INSERT INTO no_such_table VALUES (1)", ())
        with pytest.raises(StorageError):
            await store.submit(txn)
        assert store.failed is not None
        with pytest.raises(StorageError):
            store.submit(Txn())

    async with anyio.create_task_group() as tg:
        tg.start_soon(store.run)
        await body()
        tg.cancel_scope.cancel()
    await store.close()


async def test_schema_version_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    store = Store(path)
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StorageError, match="schema version 999"):
        await Store(path).open()


async def test_tables_of_several_hubs_share_a_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = Store(path), Store(path, prefix="other:")
    await first.open()
    await second.open()

    async def body() -> None:
        txn = Txn()
        txn.touch(_instance("only-in-second"))
        await second.submit(txn)

    await _run(second, body())
    await first.close()
    await second.close()
    assert (await Store(path).open()).instances == []
    assert len((await Store(path, prefix="other:").open()).instances) == 1


async def test_entities_and_their_queues_are_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "e.db")
    await store.open()
    locked = Entity("@counter@a", state="5", modified_us=77)
    locked.lock = Section("section-1", "owner-1", ("@counter@a",))
    message = ev.entity_operation_signaled(
        1, request_id="r", operation="add", target="@counter@a", input=None, scheduled_time=None
    )

    async def body() -> None:
        txn = Txn()
        txn.touch_entity(locked)
        txn.touch_entity(Entity("@counter@b", modified_us=88))
        txn.exec(store.sql.add_entity_message, ("@counter@a", 3, message.SerializeToString()))
        await store.submit(txn)
        gone = Txn()
        gone.exec(store.sql.delete_entity, ("@counter@b",))
        await store.submit(gone)

    await _run(store, body())
    await store.close()
    stored = await Store(tmp_path / "e.db").open()
    assert stored.entities == [("@counter@a", "5", 77, "section-1", "owner-1")]
    assert stored.entity_queue == {"@counter@a": [(3, message)]}
