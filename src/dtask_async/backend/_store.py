"""The SQLite log behind one task hub, written with group commit.

Every change the hub makes is a :class:`~._model.Txn` of SQL statements. ``submit``
appends it to the pending batch and returns that batch's future. One dedicated thread
owns the connection and writes one batch at a time, each in one SQLite transaction.
A batch is handed to the thread on the loop iteration after its first request, and
while the thread writes, new requests fill the next batch, so under load one commit
serves many requests (group commit).

Tables (``<prefix>`` is empty for a hub with its own file)::

    instances   instance_id PK, name, status, created_us, updated_us, generation,
                parent_generation, state (OrchestrationState bytes), parent (ParentInstanceInfo)
    history     (instance_id, seq) PK, event (HistoryEvent bytes)
    inbox       (instance_id, seq) PK, event      -- new events not yet in the history
    timers      timer_id PK, instance_id, generation, fire_us, event (the TimerFired event)
    activities  item_id PK, instance_id, generation, request (ActivityRequest bytes)
    entities    entity_id PK, state (TEXT or NULL), modified_us, lock_section, lock_owner
    entity_queue (entity_id, seq) PK, event       -- messages an entity has not processed
    meta        key PK, value                      -- schema version

Timers of entities (scheduled signals) live in ``timers`` under the entity's id with
generation 0. A lock request waiting for an entity is an ``entityLockRequested`` event
in that entity's queue (its ``position`` says how far the request got); a held lock is
the ``lock_section`` (and the owning orchestration) of the entity's row.

Leases are not stored: after a restart all work is unleased and is dispatched again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio

from .._proto import pb
from ._model import Entity, Instance, Txn
from ._sql import Op, Sql, write_ops
from ._wire import past_event_entry

__all__ = ("StorageError", "Store", "StoredHub")

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = "1"


class StorageError(Exception):
    """Raised when the hub's SQLite file cannot be read or written."""


@dataclass
class StoredHub:
    """Everything a hub needs to rebuild its working set after a restart."""

    instances: list[tuple[pb.OrchestrationState, pb.ParentInstanceInfo | None, int, int]] = field(
        default_factory=list
    )
    history: dict[str, tuple[list[pb.HistoryEvent], bytearray]] = field(default_factory=dict)
    inbox: dict[str, list[tuple[int, pb.HistoryEvent]]] = field(default_factory=dict)
    timers: list[tuple[int, str, int, int, pb.HistoryEvent]] = field(default_factory=list)
    activities: list[tuple[int, str, int, pb.ActivityRequest, bytes]] = field(default_factory=list)
    entities: list[tuple[str, str | None, int, str | None, str | None]] = field(
        default_factory=list
    )
    entity_queue: dict[str, list[tuple[int, pb.HistoryEvent]]] = field(default_factory=dict)


class _Batch:
    """Writes (and reads) that will share one transaction."""

    __slots__ = ("after", "future", "ops", "reads")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.ops: list[Op] = []
        self.after: list[Callable[[], None]] = []
        self.reads: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self.future: asyncio.Future[None] = loop.create_future()


def entity_row(entity: Entity) -> tuple[object, ...]:
    """The ``entities`` row of ``entity``."""
    lock = entity.lock
    return (
        entity.entity_id,
        entity.state,
        entity.modified_us,
        lock.section_id if lock is not None else None,
        lock.owner if lock is not None else None,
    )


def instance_row(instance: Instance) -> tuple[object, ...]:
    """The ``instances`` row of ``instance``."""
    state = instance.state
    return (
        instance.instance_id,
        state.name,
        int(state.orchestrationStatus),
        state.createdTimestamp.seconds * 1_000_000 + state.createdTimestamp.nanos // 1000,
        state.lastUpdatedTimestamp.seconds * 1_000_000 + state.lastUpdatedTimestamp.nanos // 1000,
        instance.generation,
        instance.parent_generation,
        state.SerializeToString(),
        instance.parent.SerializeToString() if instance.parent is not None else None,
    )


class Store:
    """One hub's SQLite file (or table set) and its group-commit writer thread.

    Args:
        path: the SQLite file; created with its directory if missing.
        prefix: table-name prefix, so several hubs can share one file.
        synchronous: SQLite's ``synchronous`` pragma (``off``, ``normal`` or ``full``).
    """

    def __init__(self, path: Path, *, prefix: str = "", synchronous: str = "normal") -> None:
        self.path = path
        self.sql = Sql(prefix)
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Loop side: the batch being filled, and the one the thread is writing.
        self._pending: _Batch | None = None
        self._writing: _Batch | None = None
        self._handoff_scheduled = False
        # Thread side: at most one batch waits here; ``None`` asks the thread to exit.
        self._cv = threading.Condition()
        self._inbox: deque[_Batch | None] = deque()
        self._error: BaseException | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> StoredHub:
        """Open (or create) the file and read back everything stored in it."""
        self._loop = asyncio.get_running_loop()
        try:
            return await anyio.to_thread.run_sync(self._open_sync)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open task hub store {str(self.path)!r}: {exc}") from exc

    async def run(self) -> None:
        """Own the writer thread: start it, and stop it when this task is cancelled.

        The thread finishes the batch it holds before exiting; ``drain`` (waiting on
        :meth:`barrier`) before cancelling lets every submitted batch reach the disk.
        """
        assert self._loop is not None
        exited: asyncio.Future[None] = self._loop.create_future()
        thread = threading.Thread(
            target=self._thread_main,
            args=(exited,),
            name=f"dtask-async store {self.path.name}",
            daemon=True,
        )
        thread.start()
        try:
            await anyio.sleep_forever()
        finally:
            with self._cv:
                self._inbox.append(None)
                self._cv.notify()
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await exited

    async def close(self) -> None:
        """Fail what is still pending and close the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        pending, self._pending = self._pending, None
        if pending is not None:
            self._fail(pending, StorageError("the task hub store was closed before writing"))
        if self._conn is not None:
            await anyio.to_thread.run_sync(self._conn.close)
            self._conn = None

    # -- writes and reads ------------------------------------------------------------

    @property
    def failed(self) -> BaseException | None:
        """The error that stopped the store, if any (every later request fails too)."""
        return self._error

    def submit(self, txn: Txn) -> asyncio.Future[None]:
        """Queue ``txn`` for the next commit; the future resolves once it is durable."""
        batch = self._batch()
        ops = batch.ops
        ops.extend(txn.ops)
        if txn.dirty:
            ops.append((self.sql.put_instance, [instance_row(i) for i in txn.dirty.values()], True))
        if txn.dirty_entities:
            ops.append(
                (self.sql.put_entity, [entity_row(e) for e in txn.dirty_entities.values()], True)
            )
        batch.after.extend(txn.after)
        return batch.future

    def barrier(self) -> asyncio.Future[None]:
        """A future that resolves once everything submitted so far is durable."""
        if self._error is not None:
            return self._failed_future()
        if self._pending is not None:
            return self._pending.future
        if self._writing is not None:
            return self._writing.future
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        done.set_result(None)
        return done

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the store's thread after every write submitted so far."""
        batch = self._batch()
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()
        batch.reads.append((fn, future))
        return await future

    def read_history(
        self, instance_id: str
    ) -> Callable[[sqlite3.Connection], tuple[list[pb.HistoryEvent], bytearray]]:
        """A reader (for :meth:`read`) of an instance's stored history: the events and
        their encoded ``pastEvents`` field."""
        sql = self.sql.read_history

        def read(conn: sqlite3.Connection) -> tuple[list[pb.HistoryEvent], bytearray]:
            events: list[pb.HistoryEvent] = []
            past = bytearray()
            for (event,) in conn.execute(sql, (instance_id,)):
                events.append(pb.HistoryEvent.FromString(event))
                past.extend(past_event_entry(event))
            return events, past

        return read

    # -- internals -------------------------------------------------------------------

    def _batch(self) -> _Batch:
        if self._error is not None:
            raise StorageError(f"the task hub store failed earlier: {self._error}")
        if self._closed:
            raise StorageError("the task hub store is closed")
        if self._pending is None:
            assert self._loop is not None
            self._pending = _Batch(self._loop)
            if self._writing is None and not self._handoff_scheduled:
                # Hand over on the next loop iteration, so that every request handled
                # in this one shares the transaction (group commit).
                self._handoff_scheduled = True
                self._loop.call_soon(self._hand_over)
        return self._pending

    def _hand_over(self) -> None:
        self._handoff_scheduled = False
        batch = self._pending
        if batch is None or self._writing is not None:
            return
        self._pending = None
        self._writing = batch
        with self._cv:
            self._inbox.append(batch)
            self._cv.notify()

    def _written(self, batch: _Batch, error: BaseException | None) -> None:
        """Back on the loop: settle ``batch`` and hand over the next one."""
        self._writing = None
        if error is None:
            self._succeed(batch)
        else:
            self._fail(batch, error)
            pending, self._pending = self._pending, None
            if pending is not None:
                self._fail(pending, StorageError(f"the task hub store failed: {error}"))
        if self._pending is not None and not self._handoff_scheduled:
            self._hand_over()

    def _thread_main(self, exited: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            while True:
                with self._cv:
                    while not self._inbox:
                        self._cv.wait()
                    batch = self._inbox.popleft()
                if batch is None:
                    return
                error: BaseException | None = None
                try:
                    self._write_sync(batch)
                except Exception as exc:
                    error = exc
                loop.call_soon_threadsafe(self._written, batch, error)
        finally:
            loop.call_soon_threadsafe(_settle, exited, None, None)

    def _failed_future(self) -> asyncio.Future[None]:
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        future.set_exception(StorageError(f"the task hub store failed earlier: {self._error}"))
        return future

    def _succeed(self, batch: _Batch) -> None:
        if not batch.future.done():
            batch.future.set_result(None)
        for callback in batch.after:
            try:
                callback()
            except Exception:
                logger.exception("post-commit callback failed")

    def _fail(self, batch: _Batch, exc: BaseException) -> None:
        if not isinstance(exc, StorageError):
            logger.error("task hub store %s failed; refusing further work: %s", self.path, exc)
            self._error = exc
            exc = StorageError(f"writing the task hub store failed: {exc}")
        if not batch.future.done():
            batch.future.set_exception(exc)
            batch.future.exception()  # mark retrieved: nobody may be awaiting it
        for _, future in batch.reads:
            if not future.done():
                future.set_exception(exc)

    def _open_sync(self) -> StoredHub:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=512
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("BEGIN IMMEDIATE")
            for statement in self.sql.schema:
                conn.execute(statement)
            row = conn.execute(self.sql.meta_get, ("schema_version",)).fetchone()
            if row is None:
                conn.execute(self.sql.meta_put, ("schema_version", SCHEMA_VERSION))
            elif row[0] != SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} has schema version {row[0]}; this dtask-async reads "
                    f"version {SCHEMA_VERSION}"
                )
            conn.execute("COMMIT")
            stored = self._load_sync(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return stored

    def _load_sync(self, conn: sqlite3.Connection) -> StoredHub:
        sql = self.sql
        stored = StoredHub()
        parse_state = pb.OrchestrationState.FromString
        parse_parent = pb.ParentInstanceInfo.FromString
        parse_event = pb.HistoryEvent.FromString
        for state, parent, generation, parent_generation in conn.execute(sql.load_instances):
            stored.instances.append(
                (
                    parse_state(state),
                    parse_parent(parent) if parent is not None else None,
                    generation,
                    parent_generation,
                )
            )
        for instance_id, event in conn.execute(sql.load_history):
            entry = stored.history.get(instance_id)
            if entry is None:
                entry = stored.history[instance_id] = ([], bytearray())
            entry[0].append(parse_event(event))
            entry[1].extend(past_event_entry(event))
        for instance_id, seq, event in conn.execute(sql.load_inbox):
            stored.inbox.setdefault(instance_id, []).append((seq, parse_event(event)))
        for timer_id, instance_id, generation, fire_us, event in conn.execute(sql.load_timers):
            stored.timers.append((timer_id, instance_id, generation, fire_us, parse_event(event)))
        for item_id, instance_id, generation, request in conn.execute(sql.load_activities):
            stored.activities.append(
                (item_id, instance_id, generation, pb.ActivityRequest.FromString(request), request)
            )
        stored.entities.extend(conn.execute(sql.load_entities))
        for entity_id, seq, event in conn.execute(sql.load_entity_queue):
            stored.entity_queue.setdefault(entity_id, []).append((seq, parse_event(event)))
        return stored

    def _write_sync(self, batch: _Batch) -> None:
        conn = self._conn
        if conn is None:
            raise StorageError("the task hub store is not open")
        if batch.ops:
            conn.execute("BEGIN IMMEDIATE")
            try:
                write_ops(conn, batch.ops)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        loop = self._loop
        assert loop is not None
        for fn, future in batch.reads:
            try:
                result = fn(conn)
            except Exception as exc:
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
