"""The SQL of one hub, and how a batch of it is written with few statements.

Every write the hub makes is a :class:`Statement` on exactly one table, addressed by
key, so writes to different tables commute. :func:`write_ops` therefore writes a
batch table by table, and within a table turns each run of one statement into a
single statement over many rows (``INSERT ... VALUES (...), (...)``,
``DELETE ... WHERE key IN (...)``), keeping the order of everything else.

Fewer statements matter more than it seems: the ``sqlite3`` module releases the GIL
around every step of every row, and each time the writer thread takes the GIL back
from the busy event loop costs far more than writing the row did.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Literal

from ._events import TERMINAL_STATUSES

__all__ = ("Sql", "Statement", "write_ops")

_TERMINAL_SQL = ",".join(str(int(s)) for s in sorted(TERMINAL_STATUSES))

Op = tuple["Statement", Sequence[object], bool]
"""``(statement, parameters, many)``: one row, or (``many``) a sequence of rows."""

_Kind = Literal["insert", "in", "or", "plain"]


class Statement:
    """One write statement, and how several of its rows combine into one statement.

    Args:
        table: the (quoted) table it changes.
        sql: the statement for one row.
        kind: ``insert`` (``INSERT OR REPLACE``: rows become one ``VALUES`` list),
            ``in`` (delete by one column: ``WHERE column IN (...)``), ``or`` (delete by
            a condition: the conditions are joined with ``OR``), or ``plain`` (no
            parameters; running it twice in a row is running it once).
        key: for ``insert``, how many leading parameters form the primary key: of rows
            with the same key in one run only the last is written.
        head: the part of a combined statement before its repeated part.
        each: the repeated part, one per row.
        joiner: what separates the repeated parts.
        tail: what closes a combined statement.
    """

    __slots__ = ("each", "head", "joiner", "key", "kind", "limit", "sql", "table", "tail", "texts")

    def __init__(
        self,
        table: str,
        sql: str,
        kind: _Kind,
        *,
        key: int = 0,
        head: str = "",
        each: str = "",
        joiner: str = ", ",
        tail: str = "",
        limit: int = 256,
    ) -> None:
        self.table = table
        self.sql = sql
        self.kind = kind
        self.key = key
        self.head = head
        self.each = each
        self.joiner = joiner
        self.tail = tail
        self.limit = limit
        self.texts: dict[int, str] = {1: sql}

    def text(self, rows: int) -> str:
        """The statement for ``rows`` rows (built once per size)."""
        text = self.texts.get(rows)
        if text is None:
            text = self.texts[rows] = self.head + self.joiner.join([self.each] * rows) + self.tail
        return text

    def run(self, conn: sqlite3.Connection, rows: list[Sequence[object]]) -> None:
        """Write ``rows`` (in order) with as few statements as the kind allows."""
        if self.kind == "plain":
            conn.execute(self.sql)
            return
        if len(rows) == 1:
            conn.execute(self.sql, rows[0])
            return
        if self.kind == "insert" and self.key:
            # INSERT OR REPLACE: a later row replaces an earlier one with its key.
            if self.key == 1:
                rows = list({row[0]: row for row in rows}.values())
            else:
                width = self.key
                rows = list({tuple(row[:width]): row for row in rows}.values())
        start, count = 0, len(rows)
        while start < count:
            # Sizes are powers of two, so few distinct texts reach the statement cache.
            size = min(count - start, self.limit)
            size = 1 << (size.bit_length() - 1)
            chunk = rows[start : start + size]
            start += size
            if size == 1:
                conn.execute(self.sql, chunk[0])
            else:
                conn.execute(self.text(size), [value for row in chunk for value in row])


def _insert(table: str, columns: Sequence[str], *, key: int) -> Statement:
    names = ", ".join(columns)
    marks = "(" + ", ".join("?" * len(columns)) + ")"
    head = f"INSERT OR REPLACE INTO {table} ({names}) VALUES "
    return Statement(
        table,
        head + marks,
        "insert",
        key=key,
        head=head,
        each=marks,
        limit=min(256, 32_000 // len(columns)),
    )


def _delete_in(table: str, column: str) -> Statement:
    return Statement(
        table,
        f"DELETE FROM {table} WHERE {column} = ?",
        "in",
        head=f"DELETE FROM {table} WHERE {column} IN (",
        each="?",
        tail=")",
    )


def _delete_or(table: str, condition: str) -> Statement:
    # Each term is answered from the primary key ("MULTI-INDEX OR"); row values with
    # IN (VALUES ...) would scan the table instead.
    return Statement(
        table,
        f"DELETE FROM {table} WHERE {condition}",
        "or",
        head=f"DELETE FROM {table} WHERE ",
        each=f"({condition})",
        joiner=" OR ",
        limit=64,
    )


class Sql:
    """The statements of one hub, with its (quoted) table names applied."""

    def __init__(self, prefix: str) -> None:
        def name(table: str) -> str:
            return '"' + prefix + table + '"'

        inst, hist, inbox = name("instances"), name("history"), name("inbox")
        timers, acts, meta = name("timers"), name("activities"), name("meta")
        ents, equeue = name("entities"), name("entity_queue")
        self.tables = (inst, hist, inbox, timers, acts, ents, equeue)
        self.schema = (
            f"CREATE TABLE IF NOT EXISTS {inst} (instance_id TEXT PRIMARY KEY, "
            "name TEXT NOT NULL, status INTEGER NOT NULL, created_us INTEGER NOT NULL, "
            "updated_us INTEGER NOT NULL, generation INTEGER NOT NULL, "
            "parent_generation INTEGER NOT NULL, state BLOB NOT NULL, parent BLOB)",
            f"CREATE TABLE IF NOT EXISTS {hist} (instance_id TEXT NOT NULL, "
            "seq INTEGER NOT NULL, event BLOB NOT NULL, PRIMARY KEY (instance_id, seq)) "
            "WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {inbox} (instance_id TEXT NOT NULL, "
            "seq INTEGER NOT NULL, event BLOB NOT NULL, PRIMARY KEY (instance_id, seq)) "
            "WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {timers} (timer_id INTEGER PRIMARY KEY, "
            "instance_id TEXT NOT NULL, generation INTEGER NOT NULL, fire_us INTEGER NOT NULL, "
            "event BLOB NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {name('timers_by_instance')} ON {timers} (instance_id)",
            f"CREATE TABLE IF NOT EXISTS {acts} (item_id INTEGER PRIMARY KEY, "
            "instance_id TEXT NOT NULL, generation INTEGER NOT NULL, request BLOB NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {name('activities_by_instance')} ON {acts} (instance_id)",
            f"CREATE TABLE IF NOT EXISTS {ents} (entity_id TEXT PRIMARY KEY, state TEXT, "
            "modified_us INTEGER NOT NULL, lock_section TEXT, lock_owner TEXT)",
            f"CREATE TABLE IF NOT EXISTS {equeue} (entity_id TEXT NOT NULL, "
            "seq INTEGER NOT NULL, event BLOB NOT NULL, PRIMARY KEY (entity_id, seq)) "
            "WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        )
        self.meta_get = f"SELECT value FROM {meta} WHERE key = ?"
        self.meta_put = f"INSERT OR REPLACE INTO {meta} (key, value) VALUES (?, ?)"

        # -- writes (see ``write_ops``) --
        self.put_instance = _insert(
            inst,
            (
                "instance_id",
                "name",
                "status",
                "created_us",
                "updated_us",
                "generation",
                "parent_generation",
                "state",
                "parent",
            ),
            key=1,
        )
        self.delete_instance = _delete_in(inst, "instance_id")
        self.add_history = _insert(hist, ("instance_id", "seq", "event"), key=2)
        self.clear_history = _delete_in(hist, "instance_id")
        self.add_inbox = _insert(inbox, ("instance_id", "seq", "event"), key=2)
        self.trim_inbox = _delete_or(inbox, "instance_id = ? AND seq <= ?")
        self.clear_inbox = _delete_in(inbox, "instance_id")
        self.add_timer = _insert(
            timers, ("timer_id", "instance_id", "generation", "fire_us", "event"), key=1
        )
        self.delete_timer = _delete_in(timers, "timer_id")
        self.clear_timers = _delete_in(timers, "instance_id")
        self.add_activity = _insert(
            acts, ("item_id", "instance_id", "generation", "request"), key=1
        )
        self.delete_activity = _delete_in(acts, "item_id")
        self.clear_activities = _delete_in(acts, "instance_id")
        self.put_entity = _insert(
            ents, ("entity_id", "state", "modified_us", "lock_section", "lock_owner"), key=1
        )
        self.delete_entity = _delete_in(ents, "entity_id")
        self.add_entity_message = _insert(equeue, ("entity_id", "seq", "event"), key=2)
        self.delete_entity_message = _delete_or(equeue, "entity_id = ? AND seq = ?")
        self.clear_entity_queue = _delete_in(equeue, "entity_id")
        self.wipe = tuple(
            Statement(table, f"DELETE FROM {table}", "plain") for table in self.tables
        )

        # -- reads --
        self.read_history = f"SELECT event FROM {hist} WHERE instance_id = ? ORDER BY seq"
        self.load_entities = (
            f"SELECT entity_id, state, modified_us, lock_section, lock_owner FROM {ents}"
        )
        self.load_entity_queue = (
            f"SELECT entity_id, seq, event FROM {equeue} ORDER BY entity_id, seq"
        )
        self.load_instances = f"SELECT state, parent, generation, parent_generation FROM {inst}"
        self.load_history = (
            f"SELECT h.instance_id, h.event FROM {hist} AS h JOIN {inst} AS i "
            f"ON i.instance_id = h.instance_id WHERE i.status NOT IN ({_TERMINAL_SQL}) "
            "ORDER BY h.instance_id, h.seq"
        )
        self.load_inbox = f"SELECT instance_id, seq, event FROM {inbox} ORDER BY instance_id, seq"
        self.load_timers = f"SELECT timer_id, instance_id, generation, fire_us, event FROM {timers}"
        self.load_activities = (
            f"SELECT item_id, instance_id, generation, request FROM {acts} ORDER BY item_id"
        )


def write_ops(conn: sqlite3.Connection, ops: Sequence[Op]) -> None:
    """Apply ``ops`` in order, with as few statements as possible (see the module doc).

    Runs inside the caller's transaction.
    """
    # table -> runs of one statement, in order: [statement, rows]
    tables: dict[str, list[tuple[Statement, list[Sequence[object]]]]] = {}
    for statement, params, many in ops:
        runs = tables.get(statement.table)
        if runs is None:
            runs = tables[statement.table] = []
        if runs and runs[-1][0] is statement:
            rows = runs[-1][1]
        else:
            rows = []
            runs.append((statement, rows))
        if many:
            rows.extend(params)  # type: ignore[arg-type]
        else:
            rows.append(params)
    for runs in tables.values():
        for statement, rows in runs:
            if rows or statement.kind == "plain":
                statement.run(conn, rows)
