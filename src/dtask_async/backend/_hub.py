"""One task hub: its instances, inboxes, timers, waiters and work dispatch; its
entities live in :class:`~._entities.Entities` (``hub.entities``).

Everything here runs on the event loop. An operation checks its input against the
in-memory state, changes that state, records the change in a :class:`~._model.Txn`,
hands ready work to the dispatcher, and returns only once the store has committed the
transaction. Reads take a snapshot and wait for the writes before them to be durable,
so a caller never sees a state that a crash could take back.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import grpc
from anyio.abc import TaskGroup

from .._proto import StringValue, Timestamp, pb
from . import _events as ev
from ._dispatch import Dispatcher
from ._entities import Entities
from ._model import ActivityItem, Entity, Instance, TimerRecord, Txn
from ._options import BackendOptions
from ._store import Store
from ._validation import RpcFailure
from ._wire import past_event_entry

__all__ = ("Hub",)

logger = logging.getLogger(__name__)

PENDING = pb.ORCHESTRATION_STATUS_PENDING
RUNNING = pb.ORCHESTRATION_STATUS_RUNNING
SUSPENDED = pb.ORCHESTRATION_STATUS_SUSPENDED
COMPLETED = pb.ORCHESTRATION_STATUS_COMPLETED
FAILED = pb.ORCHESTRATION_STATUS_FAILED
TERMINATED = pb.ORCHESTRATION_STATUS_TERMINATED

# Events that must reach the worker even while the instance is suspended.
_WAKES_SUSPENDED = frozenset({"executionSuspended", "executionResumed", "executionTerminated"})


@dataclass(eq=False)
class _Waiter:
    until_complete: bool
    payloads: bool
    future: asyncio.Future[pb.GetInstanceResponse]


def not_found(instance_id: str) -> RpcFailure:
    return RpcFailure(
        grpc.StatusCode.NOT_FOUND, f"no orchestration instance has id {instance_id!r}"
    )


class Hub:
    """The state and the operations of one task hub."""

    def __init__(self, name: str, store: Store, options: BackendOptions) -> None:
        self.name = name
        self.store = store
        self.options = options
        self.instances: dict[str, Instance] = {}
        self.children: dict[str, set[str]] = {}
        self.activities: dict[int, ActivityItem] = {}
        self.dispatcher = Dispatcher(self, options)
        self.entities = Entities(self)
        self._waiters: dict[str, list[_Waiter]] = {}
        self._clock: list[tuple[int, int, TimerRecord | Instance]] = []
        self._clock_seq = itertools.count()
        self._clock_wake = asyncio.Event()
        self._history_loads: set[str] = set()
        self._task_group: TaskGroup | None = None
        self._next_timer_id = 1
        self._next_item_id = 1
        self._next_generation = 1

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Read the store back into memory and queue whatever work was pending."""
        stored = await self.store.open()
        txn = Txn()
        now = ev.now_us()
        for state, parent, generation, parent_generation in stored.instances:
            instance = Instance(
                state, generation=generation, parent=parent, parent_generation=parent_generation
            )
            if not instance.terminal:
                events, past = stored.history.get(instance.instance_id, ([], bytearray()))
                instance.history = events
                instance.past = past
            self.instances[instance.instance_id] = instance
            if instance.parent_id is not None:
                self.children.setdefault(instance.parent_id, set()).add(instance.instance_id)
            self._next_generation = max(
                self._next_generation, generation + 1, parent_generation + 1
            )
        for instance_id, rows in stored.inbox.items():
            owner = self.instances.get(instance_id)
            if owner is None or owner.terminal:
                txn.exec(self.store.sql.clear_inbox, (instance_id,))
                continue
            owner.inbox = rows
            owner.next_seq = rows[-1][0] + 1
        for timer_id, instance_id, generation, fire_us, event in stored.timers:
            self._next_timer_id = max(self._next_timer_id, timer_id + 1)
            if instance_id.startswith("@"):  # a scheduled entity signal
                self._at(fire_us, TimerRecord(timer_id, instance_id, generation, fire_us, event))
                continue
            owner = self.instances.get(instance_id)
            if owner is None or owner.terminal or owner.generation != generation:
                txn.exec(self.store.sql.delete_timer, (timer_id,))
                continue
            record = TimerRecord(timer_id, instance_id, generation, fire_us, event)
            owner.timers.append(record)
            self._at(fire_us, record)
        for item_id, instance_id, generation, request, request_bytes in stored.activities:
            self._next_item_id = max(self._next_item_id, item_id + 1)
            owner = self.instances.get(instance_id)
            if owner is None or owner.terminal or owner.generation != generation:
                txn.exec(self.store.sql.delete_activity, (item_id,))
                continue
            item = ActivityItem(item_id, instance_id, generation, request, request_bytes)
            owner.activities[item.task_id] = item
            self.activities[item_id] = item
            self.dispatcher.offer_activity(item)
        for instance in self.instances.values():
            scheduled = instance.state.scheduledStartTimestamp
            if (
                instance.status == PENDING
                and not instance.history
                and instance.state.HasField("scheduledStartTimestamp")
                and ev.us_of(scheduled) > now
            ):
                instance.start_at_us = ev.us_of(scheduled)
                self._at(instance.start_at_us, instance)
            self.dispatcher.offer_instance(instance)
        self.entities.load(stored, txn, now)
        if txn.ops or txn.dirty or txn.dirty_entities:
            self.store.submit(txn)
        logger.info(
            "task hub %r: %d instances, %d entities, %d queued orchestrations, "
            "%d queued activities, %d queued entities",
            self.name,
            len(self.instances),
            len(self.entities.entities),
            len(self.dispatcher.ready_instances),
            len(self.dispatcher.ready_activities),
            len(self.dispatcher.ready_entities),
        )

    async def run(self, task_group: TaskGroup) -> None:
        """Start the hub's writer and clock tasks in ``task_group`` (their owner)."""
        self._task_group = task_group
        task_group.start_soon(self.store.run, name=f"hub {self.name!r} store writer")
        task_group.start_soon(self._run_clock, name=f"hub {self.name!r} clock")

    def begin_close(self) -> None:
        """End every work-item stream and every waiting call: the backend is stopping."""
        self.dispatcher.end_all_streams()
        waiting = [w for ws in self._waiters.values() for w in ws]
        self._waiters.clear()
        for waiter in waiting:
            if not waiter.future.done():
                waiter.future.set_exception(
                    RpcFailure(grpc.StatusCode.UNAVAILABLE, "the backend is shutting down")
                )

    async def drain(self, grace: float) -> None:
        """Wait (at most ``grace`` seconds) for submitted writes to reach the disk."""
        with anyio.move_on_after(grace):
            try:
                await asyncio.shield(self.store.barrier())
            except Exception as exc:
                logger.warning("task hub %r: final writes failed: %s", self.name, exc)

    # -- dispatch host -----------------------------------------------------------------

    def now(self) -> int:
        return ev.now_us()

    def wake_clock(self) -> None:
        self._clock_wake.set()

    def runnable(self, instance: Instance) -> bool:
        """Whether ``instance`` can be sent to a worker now."""
        if self.instances.get(instance.instance_id) is not instance:
            return False
        lease = instance.lease
        if lease is not None and lease.stream is not None:
            return False
        if not instance.inbox or instance.start_at_us or instance.terminal:
            return False
        if instance.history is None:
            self._load_history_later(instance)
            return False
        if instance.status == SUSPENDED:
            return any(ev.event_kind(event) in _WAKES_SUSPENDED for _, event in instance.inbox)
        return True

    def entity_runnable(self, entity: Entity) -> bool:
        return self.entities.runnable(entity)

    def entity_batch(self, entity: Entity) -> list[tuple[int, pb.HistoryEvent]]:
        return self.entities.batch(entity)

    def episode(self, instance: Instance) -> tuple[int, list[pb.HistoryEvent]]:
        """The inbox events the next episode of ``instance`` processes, and their events.

        A rewind of a finished instance is sent alone (workers expect exactly
        ``orchestratorStarted`` and ``executionRewound``); events after it wait.
        """
        inbox = instance.inbox
        cut = len(inbox)
        history = instance.history
        if history and ev.event_kind(history[-1]) == "executionCompleted":
            for index, (_, event) in enumerate(inbox):
                if ev.event_kind(event) == "executionRewound":
                    cut = index + 1
                    break
        new_events = [ev.orchestrator_started(ev.now_us())]
        new_events.extend(
            event for _, event in inbox[:cut] if ev.event_kind(event) != "orchestratorStarted"
        )
        return inbox[cut - 1][0], new_events

    # -- commit ----------------------------------------------------------------------

    async def commit(self, txn: Txn) -> None:
        """Submit ``txn`` (or, if it is empty, wait for earlier writes) until durable."""
        if txn.ops or txn.dirty or txn.dirty_entities or txn.after:
            future = self.store.submit(txn)
        else:
            future = self.store.barrier()
        await asyncio.shield(future)

    # -- building blocks used by operations and episodes ------------------------------

    def get(self, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise not_found(instance_id)
        return instance

    def new_generation(self) -> int:
        generation = self._next_generation
        self._next_generation += 1
        return generation

    def enqueue(self, instance: Instance, event: pb.HistoryEvent, txn: Txn) -> None:
        """Add ``event`` to the inbox of ``instance`` and offer it for dispatch."""
        seq = instance.next_seq
        instance.next_seq = seq + 1
        instance.inbox.append((seq, event))
        txn.exec(self.store.sql.add_inbox, (instance.instance_id, seq, event.SerializeToString()))
        self.dispatcher.offer_instance(instance)

    def append_history(self, instance: Instance, events: list[pb.HistoryEvent], txn: Txn) -> None:
        history, past = instance.history, instance.past
        assert history is not None
        assert past is not None
        base = len(history)
        instance_id = instance.instance_id
        rows = []
        for i, event in enumerate(events):
            data = event.SerializeToString()
            rows.append((instance_id, base + i, data))
            past += past_event_entry(data)
        txn.many(self.store.sql.add_history, rows)
        history.extend(events)

    def reset_history(self, instance: Instance, txn: Txn) -> None:
        txn.exec(self.store.sql.clear_history, (instance.instance_id,))
        instance.history = []
        instance.past = bytearray()

    @staticmethod
    def evict_history(instance: Instance) -> None:
        instance.history = None
        instance.past = None

    @staticmethod
    def adopt_history(instance: Instance, loaded: tuple[list[pb.HistoryEvent], bytearray]) -> None:
        instance.history, instance.past = loaded

    def trim_inbox(self, instance: Instance, upto_seq: int, txn: Txn) -> None:
        inbox = instance.inbox
        keep = 0
        while keep < len(inbox) and inbox[keep][0] <= upto_seq:
            keep += 1
        if keep:
            del inbox[:keep]
            txn.exec(self.store.sql.trim_inbox, (instance.instance_id, upto_seq))

    def clear_inbox(self, instance: Instance, txn: Txn) -> None:
        if instance.inbox:
            instance.inbox.clear()
            txn.exec(self.store.sql.clear_inbox, (instance.instance_id,))

    def set_status(self, instance: Instance, status: int, txn: Txn, now: int) -> None:
        instance.state.orchestrationStatus = status  # type: ignore[assignment]
        self.touch(instance, txn, now)
        self._notify(instance, txn)

    def touch(self, instance: Instance, txn: Txn, now: int) -> None:
        stamp = instance.state.lastUpdatedTimestamp
        stamp.seconds = now // 1_000_000
        stamp.nanos = (now % 1_000_000) * 1000
        txn.touch(instance)

    def create(
        self,
        txn: Txn,
        now: int,
        *,
        instance_id: str,
        name: str,
        version: StringValue | None = None,
        input: StringValue | None = None,
        tags: dict[str, str] | None = None,
        scheduled_start: Timestamp | None = None,
        parent: pb.ParentInstanceInfo | None = None,
        parent_generation: int = 0,
        trace_context: pb.TraceContext | None = None,
        execution_id: str | None = None,
    ) -> Instance:
        """Create (or replace) an instance and queue its ``executionStarted`` event."""
        existing = self.instances.get(instance_id)
        if existing is not None:
            self.discard(existing, txn)
        execution_id = execution_id or uuid.uuid4().hex
        state = pb.OrchestrationState(instanceId=instance_id, name=name)
        state.orchestrationStatus = PENDING
        state.createdTimestamp.CopyFrom(ev.ts(now))
        state.lastUpdatedTimestamp.CopyFrom(ev.ts(now))
        state.executionId.value = execution_id
        if version is not None:
            state.version.CopyFrom(version)
        if input is not None:
            state.input.CopyFrom(input)
        if tags:
            state.tags.update(tags)
        start_us = 0
        if scheduled_start is not None:
            state.scheduledStartTimestamp.CopyFrom(scheduled_start)
            start_us = ev.us_of(scheduled_start)
        if parent is not None:
            state.parentInstanceId.value = parent.orchestrationInstance.instanceId
        instance = Instance(
            state,
            generation=self.new_generation(),
            parent=parent,
            parent_generation=parent_generation,
            history=[],
        )
        self.instances[instance_id] = instance
        if parent is not None:
            self.children.setdefault(parent.orchestrationInstance.instanceId, set()).add(
                instance_id
            )
        txn.touch(instance)
        if start_us > now:
            instance.start_at_us = start_us
            self._at(start_us, instance)
        started = ev.execution_started(
            now,
            name=name,
            instance_id=instance_id,
            execution_id=execution_id,
            version=version,
            input=input,
            parent=parent,
            scheduled_start=scheduled_start,
            trace_context=trace_context,
            tags=tags,
        )
        self.enqueue(instance, started, txn)
        if existing is not None:
            # Waiters of the replaced run now wait for the new one.
            self._notify(instance, txn)
        return instance

    def discard(self, instance: Instance, txn: Txn) -> None:
        """Drop an instance's work, lease, inbox and history (it is replaced or purged)."""
        self.cancel_work(instance, txn)
        self.dispatcher.revoke(instance.lease)
        self.entities.release_owner(instance.instance_id, txn, ev.now_us())
        instance.lease = None
        instance.inbox.clear()
        self.evict_history(instance)
        sql = self.store.sql
        txn.exec(sql.clear_inbox, (instance.instance_id,))
        txn.exec(sql.clear_history, (instance.instance_id,))
        parent_id = instance.parent_id
        if parent_id is not None:
            siblings = self.children.get(parent_id)
            if siblings is not None:
                siblings.discard(instance.instance_id)
                if not siblings:
                    del self.children[parent_id]
        if self.instances.get(instance.instance_id) is instance:
            del self.instances[instance.instance_id]
        txn.dirty.pop(instance.instance_id, None)

    def remove(self, instance: Instance, txn: Txn) -> None:
        """Purge ``instance`` for good."""
        self.discard(instance, txn)
        txn.exec(self.store.sql.delete_instance, (instance.instance_id,))
        self._notify_gone(instance.instance_id, txn)

    def cancel_work(self, instance: Instance, txn: Txn) -> None:
        """Forget the instance's queued activities, timers and scheduled start."""
        sql = self.store.sql
        if instance.activities:
            for item in instance.activities.values():
                item.cancelled = True
                self.activities.pop(item.item_id, None)
            instance.activities.clear()
            txn.exec(sql.clear_activities, (instance.instance_id,))
        if instance.timers:
            for record in instance.timers:
                record.cancelled = True
            instance.timers.clear()
            txn.exec(sql.clear_timers, (instance.instance_id,))
        instance.start_at_us = 0

    def schedule_activity(self, instance: Instance, task_id: int, template: Any, txn: Txn) -> None:
        """Queue an activity described by a ``ScheduleTaskAction`` or ``TaskScheduledEvent``."""
        request = pb.ActivityRequest(name=template.name, taskId=task_id)
        if template.HasField("version"):
            request.version.CopyFrom(template.version)
        if template.HasField("input"):
            request.input.CopyFrom(template.input)
        if template.HasField("parentTraceContext"):
            request.parentTraceContext.CopyFrom(template.parentTraceContext)
        if template.tags:
            request.tags.update(template.tags)
        request.orchestrationInstance.instanceId = instance.instance_id
        request.orchestrationInstance.executionId.value = instance.execution_id
        item = ActivityItem(self._next_item_id, instance.instance_id, instance.generation, request)
        self._next_item_id += 1
        instance.activities[task_id] = item
        self.activities[item.item_id] = item
        txn.exec(
            self.store.sql.add_activity,
            (item.item_id, instance.instance_id, instance.generation, item.request_bytes),
        )
        self.dispatcher.offer_activity(item)

    def schedule_timer(
        self, instance: Instance, timer_id: int, fire_at: Timestamp, txn: Txn, now: int
    ) -> None:
        fire_us = ev.us_of(fire_at)
        event = ev.timer_fired(now, timer_id, fire_at)
        record = self.add_timer(instance.instance_id, instance.generation, fire_us, event, txn)
        instance.timers.append(record)

    def add_timer(
        self, owner_id: str, generation: int, fire_us: int, event: pb.HistoryEvent, txn: Txn
    ) -> TimerRecord:
        """A durable timer that puts ``event`` in the inbox (or, for an entity id, the
        queue) of ``owner_id`` at ``fire_us``."""
        record = TimerRecord(self._next_timer_id, owner_id, generation, fire_us, event)
        self._next_timer_id += 1
        txn.exec(
            self.store.sql.add_timer,
            (
                record.timer_id,
                record.instance_id,
                record.generation,
                fire_us,
                record.event.SerializeToString(),
            ),
        )
        self._at(fire_us, record)
        return record

    def finish(
        self,
        instance: Instance,
        status: int,
        result: StringValue | None,
        failure: pb.TaskFailureDetails | None,
        txn: Txn,
        now: int,
    ) -> None:
        """Record a terminal status (the history is already written) and tell others."""
        state = instance.state
        if result is not None:
            state.output.CopyFrom(result)
        else:
            state.ClearField("output")
        if failure is not None:
            state.failureDetails.CopyFrom(failure)
        else:
            state.ClearField("failureDetails")
        state.completedTimestamp.CopyFrom(ev.ts(now))
        self.cancel_work(instance, txn)
        self.clear_inbox(instance, txn)
        self.entities.release_owner(instance.instance_id, txn, now)
        self.evict_history(instance)  # terminal histories are read from the store
        self.set_status(instance, status, txn, now)
        self._notify_parent(instance, txn, now)

    def terminate(
        self, instance: Instance, output: StringValue | None, recurse: bool, txn: Txn, now: int
    ) -> None:
        """Terminate ``instance`` (and, if ``recurse``, its running sub-orchestrations)."""
        if instance.terminal:
            return
        if not instance.history and instance.lease is None:
            # It never ran: no worker holds any of its state, so end it here.
            events = [ev.orchestrator_started(now)]
            events.extend(e for _, e in instance.inbox if ev.event_kind(e) != "orchestratorStarted")
            events.append(ev.execution_terminated(now, output, recurse))
            events.append(ev.orchestrator_completed(now))
            events.append(ev.execution_completed(now, -1, TERMINATED, output, None))
            self.append_history(instance, events, txn)
            self.finish(instance, TERMINATED, output, None, txn, now)
        else:
            self.enqueue(instance, ev.execution_terminated(now, output, recurse), txn)
        if recurse:
            for child in list(self.children_of(instance)):
                self.terminate(child, output, True, txn, now)

    def children_of(self, instance: Instance) -> Iterator[Instance]:
        """The sub-orchestrations the current run of ``instance`` created."""
        for child_id in self.children.get(instance.instance_id, ()):
            child = self.instances.get(child_id)
            if child is not None and child.parent_generation == instance.generation:
                yield child

    def rewind(
        self,
        instance: Instance,
        reason: StringValue | None,
        parent_execution_id: str | None,
        txn: Txn,
        now: int,
    ) -> None:
        """Make a failed instance run again from its last good state."""
        state = instance.state
        state.ClearField("output")
        state.ClearField("failureDetails")
        state.ClearField("completedTimestamp")
        self.set_status(instance, RUNNING, txn, now)
        self.enqueue(instance, ev.execution_rewound(now, reason, parent_execution_id), txn)
        if instance.history is None:
            self._load_history_later(instance)

    def _load_history_later(self, instance: Instance) -> None:
        if instance.instance_id in self._history_loads or self._task_group is None:
            return
        self._history_loads.add(instance.instance_id)
        self._task_group.start_soon(self._load_history, instance)

    async def _load_history(self, instance: Instance) -> None:
        try:
            loaded = await self.store.read(self.store.read_history(instance.instance_id))
        except Exception as exc:
            logger.error("cannot load the history of %r: %s", instance.instance_id, exc)
            return
        finally:
            self._history_loads.discard(instance.instance_id)
        if self.instances.get(instance.instance_id) is instance and instance.history is None:
            self.adopt_history(instance, loaded)
            self.dispatcher.offer_instance(instance)
            self.dispatcher.pump()

    async def encoded_history_of(self, instance: Instance) -> bytes:
        """The committed history of ``instance`` (from memory or from the store), encoded
        as the ``pastEvents`` field of a work item."""
        if instance.past is not None:
            past = bytes(instance.past)
            await self.commit(Txn())
            return past
        _, stored = await self.store.read(self.store.read_history(instance.instance_id))
        return bytes(stored)

    def _notify_parent(self, instance: Instance, txn: Txn, now: int) -> None:
        parent_info = instance.parent
        if parent_info is None:
            return
        parent = self.instances.get(parent_info.orchestrationInstance.instanceId)
        if parent is None or parent.terminal or parent.generation != instance.parent_generation:
            return
        task_id = parent_info.taskScheduledId
        state = instance.state
        if instance.status == COMPLETED:
            result = state.output if state.HasField("output") else None
            self.enqueue(parent, ev.sub_orchestration_completed(now, task_id, result), txn)
            return
        if state.HasField("failureDetails"):
            failure = state.failureDetails
        else:
            failure = pb.TaskFailureDetails(
                errorType="OrchestrationTerminated",
                errorMessage=f"sub-orchestration {instance.instance_id!r} ended with status "
                f"{ev.status_name(instance.status)}"
                + (f": {state.output.value}" if state.HasField("output") else ""),
            )
        self.enqueue(parent, ev.sub_orchestration_failed(now, task_id, failure), txn)

    # -- waiters ---------------------------------------------------------------------

    def snapshot(self, instance: Instance, payloads: bool) -> pb.GetInstanceResponse:
        response = pb.GetInstanceResponse(exists=True)
        state = response.orchestrationState
        state.CopyFrom(instance.state)
        if not payloads:
            state.ClearField("input")
            state.ClearField("output")
        return response

    async def wait(
        self, instance_id: str, *, until_complete: bool, payloads: bool
    ) -> pb.GetInstanceResponse:
        """Wait, at no thread's cost, until the instance started (or finished)."""
        instance = self.instances.get(instance_id)
        if instance is None:
            await self.commit(Txn())
            return pb.GetInstanceResponse(exists=False)
        if self._satisfies(instance, until_complete):
            response = self.snapshot(instance, payloads)
            await self.commit(Txn())
            return response
        waiter = _Waiter(until_complete, payloads, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(instance_id, []).append(waiter)
        try:
            return await waiter.future
        finally:
            if not waiter.future.done():
                waiting = self._waiters.get(instance_id)
                if waiting is not None and waiter in waiting:
                    waiting.remove(waiter)
                    if not waiting:
                        del self._waiters[instance_id]

    @staticmethod
    def _satisfies(instance: Instance, until_complete: bool) -> bool:
        return instance.terminal if until_complete else instance.status != PENDING

    def _notify(self, instance: Instance, txn: Txn) -> None:
        waiting = self._waiters.get(instance.instance_id)
        if not waiting:
            return
        ready = [w for w in waiting if self._satisfies(instance, w.until_complete)]
        if not ready:
            return
        rest = [w for w in waiting if not self._satisfies(instance, w.until_complete)]
        if rest:
            self._waiters[instance.instance_id] = rest
        else:
            del self._waiters[instance.instance_id]
        snapshots = {flag: self.snapshot(instance, flag) for flag in {w.payloads for w in ready}}

        def resolve() -> None:
            for waiter in ready:
                if not waiter.future.done():
                    waiter.future.set_result(snapshots[waiter.payloads])

        txn.on_commit(resolve)

    def _notify_gone(self, instance_id: str, txn: Txn) -> None:
        waiting = self._waiters.pop(instance_id, None)
        if not waiting:
            return

        def resolve() -> None:
            for waiter in waiting:
                if not waiter.future.done():
                    waiter.future.set_result(pb.GetInstanceResponse(exists=False))

        txn.on_commit(resolve)

    def wipe(self, txn: Txn) -> None:
        """Forget every instance and all work (``DeleteTaskHub``)."""
        for instance in list(self.instances.values()):
            self.cancel_work(instance, txn)
            self.dispatcher.revoke(instance.lease)
            self._notify_gone(instance.instance_id, txn)
        for item in self.activities.values():
            item.cancelled = True
            self.dispatcher.revoke(item.lease)
        self.entities.wipe()
        self.instances.clear()
        self.children.clear()
        self.activities.clear()
        self.dispatcher.ready_instances.clear()
        self.dispatcher.ready_activities.clear()
        self._clock.clear()
        txn.dirty.clear()
        txn.dirty_entities.clear()
        for statement in self.store.sql.wipe:
            txn.exec(statement, ())

    # -- the clock: durable timers, scheduled starts, lease expiry ---------------------

    def _at(self, when_us: int, entry: TimerRecord | Instance) -> None:
        clock = self._clock
        if not clock or when_us < clock[0][0]:
            self._clock_wake.set()
        heapq.heappush(clock, (when_us, next(self._clock_seq), entry))

    async def _run_clock(self) -> None:
        while True:
            self._clock_wake.clear()
            now = ev.now_us()
            try:
                self._fire_due(now)
                self.dispatcher.expire_due(now)
            except Exception:
                logger.exception("task hub %r: firing timers failed", self.name)
            deadline = self._clock[0][0] if self._clock else None
            lease_deadline = self.dispatcher.next_expiry_us()
            if lease_deadline is not None and (deadline is None or lease_deadline < deadline):
                deadline = lease_deadline
            if deadline is None:
                await self._clock_wake.wait()
                continue
            delay = (deadline - ev.now_us()) / 1_000_000
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._clock_wake.wait()

    def _fire_due(self, now: int) -> None:
        clock = self._clock
        if not clock or clock[0][0] > now:
            return
        txn = Txn()
        while clock and clock[0][0] <= now:
            _, _, entry = heapq.heappop(clock)
            if isinstance(entry, Instance):
                if self.instances.get(entry.instance_id) is entry and entry.start_at_us:
                    entry.start_at_us = 0
                    self.dispatcher.offer_instance(entry)
                continue
            if entry.cancelled:
                continue
            entry.cancelled = True
            txn.exec(self.store.sql.delete_timer, (entry.timer_id,))
            if entry.instance_id.startswith("@"):
                self.entities.fire(entry, txn, now)
                continue
            owner = self.instances.get(entry.instance_id)
            if owner is None or owner.terminal or owner.generation != entry.generation:
                continue
            if entry in owner.timers:
                owner.timers.remove(entry)
            entry.event.timestamp.CopyFrom(ev.ts(now))
            self.enqueue(owner, entry.event, txn)
        if txn.ops or txn.dirty or txn.dirty_entities:
            self.store.submit(txn)
        self.dispatcher.pump()
