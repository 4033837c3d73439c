"""In-memory records of the embedded backend.

The SQLite file is the durable log; these objects are the working set the event loop
reads and changes. Each change is made on the loop, recorded as SQL in a :class:`Txn`,
and acknowledged only after the store has committed that transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from .._proto import pb
from ._events import TERMINAL_STATUSES

if TYPE_CHECKING:
    from ._dispatch import Stream
    from ._sql import Statement

__all__ = (
    "ACTIVITY",
    "ENTITY",
    "ORCHESTRATION",
    "ActivityItem",
    "ActivityLease",
    "Entity",
    "EntityLease",
    "Instance",
    "Lease",
    "OrchestrationLease",
    "Section",
    "TimerRecord",
    "Txn",
)


ORCHESTRATION = "orchestration"
ACTIVITY = "activity"
ENTITY = "entity"
"""The kinds of work item (and of lease, and of stream slot)."""


class Instance:
    """One orchestration instance: its state, history, inbox and lease.

    Attributes:
        state: the status, payloads and timestamps, exactly as ``GetInstance`` returns them.
        generation: a hub-wide unique number for this run of the instance. It changes on
            continue-as-new, restart and replacement (never on rewind); activity results,
            timers and sub-orchestration results of another generation are discarded.
        parent: who to tell when this (sub-)orchestration finishes, if anyone.
        parent_generation: the parent's generation when it created this instance.
        history: the committed history, or ``None`` when not loaded (terminal instances).
        past: ``history`` encoded as the ``pastEvents`` field of a work item (see
            ``_wire``), kept alongside so a dispatch only concatenates bytes.
        inbox: new events, ``(sequence number, event)``, not yet part of the history.
        lease: the work item currently out with a worker, if any.
        start_at_us: scheduled start time while it is still in the future, else 0.
    """

    __slots__ = (
        "activities",
        "generation",
        "history",
        "inbox",
        "instance_id",
        "lease",
        "next_seq",
        "parent",
        "parent_generation",
        "past",
        "queued",
        "start_at_us",
        "state",
        "timers",
    )

    def __init__(
        self,
        state: pb.OrchestrationState,
        *,
        generation: int,
        parent: pb.ParentInstanceInfo | None = None,
        parent_generation: int = 0,
        history: list[pb.HistoryEvent] | None = None,
        past: bytearray | None = None,
    ) -> None:
        self.instance_id: str = state.instanceId
        self.state = state
        self.generation = generation
        self.parent = parent
        self.parent_generation = parent_generation
        self.history = history
        self.past = past if past is not None or history is None else bytearray()
        self.inbox: list[tuple[int, pb.HistoryEvent]] = []
        self.next_seq = 0
        self.lease: OrchestrationLease | None = None
        self.queued = False
        self.start_at_us = 0
        self.activities: dict[int, ActivityItem] = {}
        self.timers: list[TimerRecord] = []

    @property
    def status(self) -> int:
        return self.state.orchestrationStatus

    @property
    def terminal(self) -> bool:
        return self.state.orchestrationStatus in TERMINAL_STATUSES

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def version(self) -> str:
        return self.state.version.value

    @property
    def execution_id(self) -> str:
        return self.state.executionId.value

    @property
    def parent_id(self) -> str | None:
        return self.parent.orchestrationInstance.instanceId if self.parent is not None else None

    def __repr__(self) -> str:
        return f"<Instance {self.instance_id!r} status={self.status} gen={self.generation}>"


class ActivityItem:
    """An activity to run: queued, or leased to a worker."""

    __slots__ = (
        "cancelled",
        "generation",
        "instance_id",
        "item_id",
        "lease",
        "queued",
        "request",
        "request_bytes",
        "task_id",
    )

    def __init__(
        self,
        item_id: int,
        instance_id: str,
        generation: int,
        request: pb.ActivityRequest,
        request_bytes: bytes | None = None,
    ) -> None:
        self.item_id = item_id
        self.instance_id = instance_id
        self.generation = generation
        self.task_id: int = request.taskId
        self.request = request
        self.request_bytes = (
            request_bytes if request_bytes is not None else request.SerializeToString()
        )
        self.lease: ActivityLease | None = None
        self.queued = False
        self.cancelled = False

    @property
    def name(self) -> str:
        return self.request.name

    @property
    def version(self) -> str:
        return self.request.version.value


class Entity:
    """One entity instance (``@name@key``): its state, its message queue and its lock.

    Attributes:
        state: the serialized state, or ``None`` when the entity has none.
        modified_us: when a batch last ran (or the entity was created).
        queue: messages not yet processed, ``(sequence number, event)`` in arrival
            order: ``entityOperationSignaled``, ``entityOperationCalled`` and
            ``entityLockRequested`` events.
        lease: the batch currently out with a worker, if any.
        lock: the critical section holding the entity, if any.
        retry: sequence numbers of a batch that was given back (abandoned, expired or
            orphaned): the next batch starts with exactly these operations.
    """

    __slots__ = (
        "entity_id",
        "lease",
        "lock",
        "modified_us",
        "name",
        "next_seq",
        "queue",
        "queued",
        "retry",
        "state",
    )

    def __init__(self, entity_id: str, *, state: str | None = None, modified_us: int = 0) -> None:
        self.entity_id = entity_id
        self.name = entity_id[1:].partition("@")[0]
        self.state = state
        self.modified_us = modified_us
        self.queue: list[tuple[int, pb.HistoryEvent]] = []
        self.next_seq = 0
        self.lease: EntityLease | None = None
        self.queued = False
        self.lock: Section | None = None
        self.retry: list[int] = []

    def __repr__(self) -> str:
        return f"<Entity {self.entity_id!r} queue={len(self.queue)} lock={self.lock}>"


@dataclass(eq=False, slots=True)
class Section:
    """A critical section: the locks one ``entityLockRequested`` asked for.

    The entities of ``lock_set`` are locked one at a time, in order. ``held`` are
    those locked so far; while the request waits in an entity's queue, ``waiting_at``
    names that entity. Once all are held the owner orchestration is told
    (``entityLockGranted``) and ``waiting_at`` is ``None``.
    """

    section_id: str
    owner: str
    lock_set: tuple[str, ...]
    held: set[str] = field(default_factory=set)
    waiting_at: str | None = None

    def __repr__(self) -> str:
        return f"<Section {self.section_id!r} of {self.owner!r} held={sorted(self.held)}>"


@dataclass(eq=False, slots=True)
class TimerRecord:
    """A durable timer: ``event`` goes to the instance's inbox at ``fire_us``."""

    timer_id: int
    instance_id: str
    generation: int
    fire_us: int
    event: pb.HistoryEvent
    cancelled: bool = False


@dataclass(eq=False, slots=True)
class Lease:
    """A work item out with a worker.

    ``stream`` is the stream it was sent on, or ``None`` once that stream closed: the
    work is then queued again, and the token stays valid until the work is sent to
    someone else or the lease expires.
    """

    kind: ClassVar[str] = ""
    token: str
    stream: Stream | None
    expires_us: int


@dataclass(eq=False, slots=True)
class OrchestrationLease(Lease):
    """An orchestration episode: ``new_events`` were sent, inbox up to ``upto_seq``."""

    kind: ClassVar[str] = ORCHESTRATION
    instance: Instance
    upto_seq: int
    new_events: list[pb.HistoryEvent]


@dataclass(eq=False, slots=True)
class ActivityLease(Lease):
    kind: ClassVar[str] = ACTIVITY
    item: ActivityItem


@dataclass(eq=False, slots=True)
class EntityLease(Lease):
    """An entity batch: the queued operations ``seqs`` were sent, in this order."""

    kind: ClassVar[str] = ENTITY
    entity: Entity
    seqs: list[int]
    events: list[pb.HistoryEvent]


@dataclass(eq=False, slots=True)
class Txn:
    """The SQL of one logical change plus what to do once it is durable.

    ``dirty`` instances and ``dirty_entities`` have their row rewritten when the
    transaction is submitted.
    """

    ops: list[tuple[Statement, Sequence[object], bool]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)
    dirty: dict[str, Instance] = field(default_factory=dict)
    dirty_entities: dict[str, Entity] = field(default_factory=dict)

    def exec(self, statement: Statement, params: Sequence[object]) -> None:
        self.ops.append((statement, params, False))

    def many(self, statement: Statement, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            self.ops.append((statement, rows, True))

    def touch(self, instance: Instance) -> None:
        self.dirty[instance.instance_id] = instance

    def touch_entity(self, entity: Entity) -> None:
        self.dirty_entities[entity.entity_id] = entity

    def on_commit(self, callback: Callable[[], None]) -> None:
        self.after.append(callback)
