"""Durable entities of one task hub: state, message queues and critical sections.

An entity (``@name@key``) has a queue of messages in arrival order: operations
(``entityOperationSignaled``, ``entityOperationCalled``) and lock requests
(``entityLockRequested``). Workers run operations in batches, one batch per entity at a
time; lock requests are handled here, by the backend:

* A lock request names a critical section and its ``lockSet``. The entities are locked
  one at a time in sorted order: the request waits in the queue of the next entity to
  lock, and when it reaches the head of that queue (every earlier message processed,
  no batch in flight) the entity is locked and the request moves on to the next
  entity. Once every entity is held, the owner orchestration receives
  ``entityLockGranted``. Taking locks in one global order, first come first served at
  each entity, means overlapping critical sections never deadlock and are served in
  the order they asked.
* While an entity is locked, a batch holds only calls from the owner orchestration;
  every other message waits in the queue until the lock is released.
* ``entityUnlockSent`` from the owner releases one entity. An unlock for a section whose
  locks are not all granted yet (the orchestration ended while waiting) cancels the
  whole request. When an owner ends (completes, fails, is terminated, purged, replaced,
  or continues as new), everything it holds or waits for is released.

An entity exists from its first message (or lock) on, with or without state, until
``CleanEntityStorage`` removes it for having no state and nothing pending. Each change
is recorded in the caller's :class:`~._model.Txn`; a batch that was given back
(abandoned, expired, orphaned by a closed stream) is sent again first, unchanged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc

from .._proto import StringValue, Timestamp, pb
from . import _events as ev
from ._model import Entity, EntityLease, Section, TimerRecord, Txn
from ._store import StoredHub
from ._validation import RpcFailure, check_entity_id, check_instance_id, check_name

if TYPE_CHECKING:
    from ._hub import Hub

__all__ = ("Entities",)

logger = logging.getLogger(__name__)

MAX_BATCH_OPERATIONS = 100
"""Most operations sent to a worker in one entity batch."""

MAX_BATCH_BYTES = 1024 * 1024
"""Batches stop growing once their operations reach this many bytes."""

_LOCK = "entityLockRequested"
_CALL = "entityOperationCalled"
_SIGNAL = "entityOperationSignaled"


def _optional(message: object, field: str) -> StringValue | None:
    if message.HasField(field):  # type: ignore[attr-defined]
        value: StringValue = getattr(message, field)
        return value
    return None


def _failure(error_type: str, message: str) -> pb.TaskFailureDetails:
    return pb.TaskFailureDetails(errorType=error_type, errorMessage=message, isNonRetriable=True)


def lock_order(lock_set: Iterable[str]) -> tuple[str, ...]:
    """The entities of a lock set, valid and de-duplicated, in the order they are locked."""
    ids = set()
    for entity_id in lock_set:
        try:
            ids.add(check_entity_id(entity_id, field="lockSet entry"))
        except RpcFailure as exc:
            logger.warning("lock request: ignoring %s", exc.message)
    return tuple(sorted(ids))


class Entities:
    """The entities and critical sections of one hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.entities: dict[str, Entity] = {}
        self.sections: dict[str, Section] = {}
        self._by_owner: dict[str, set[str]] = {}
        self._todo: list[Entity] = []
        self._advancing = False

    # -- loading -----------------------------------------------------------------------

    def load(self, stored: StoredHub, txn: Txn, now: int) -> None:
        """Rebuild entities and sections from the store; settle what a crash left open."""
        for entity_id, state, modified_us, section_id, owner in stored.entities:
            entity = Entity(entity_id, state=state, modified_us=modified_us)
            self.entities[entity_id] = entity
            if section_id is not None:
                section = self._section(section_id, owner or "", ())
                section.held.add(entity_id)
                entity.lock = section
        for entity_id, rows in stored.entity_queue.items():
            known = self.entities.get(entity_id)
            entity = known if known is not None else self._create(entity_id, txn, now)
            entity.queue = rows
            entity.next_seq = rows[-1][0] + 1
            for _, event in rows:
                if ev.event_kind(event) == _LOCK:
                    request = event.entityLockRequested
                    section = self._section(
                        request.criticalSectionId,
                        request.parentInstanceId.value,
                        lock_order(request.lockSet),
                    )
                    section.waiting_at = entity_id
        for section in list(self.sections.values()):
            if not self._owner_alive(section):
                logger.info("releasing %r: its orchestration ended", section)
                self.end_section(section, txn, now)
        for entity in list(self.entities.values()):
            if entity.queue:
                self.advance(entity, txn, now)

    def _section(self, section_id: str, owner: str, lock_set: tuple[str, ...]) -> Section:
        section = self.sections.get(section_id)
        if section is None:
            section = self.sections[section_id] = Section(section_id, owner, lock_set)
            self._by_owner.setdefault(owner, set()).add(section_id)
        elif lock_set:
            section.lock_set = lock_set
        return section

    def _owner_alive(self, section: Section) -> bool:
        owner = self.hub.instances.get(section.owner)
        return owner is not None and not owner.terminal

    # -- entities and their queues ---------------------------------------------------------

    def _create(self, entity_id: str, txn: Txn, now: int) -> Entity:
        entity = self.entities[entity_id] = Entity(entity_id, modified_us=now)
        txn.touch_entity(entity)
        return entity

    def _enqueue(self, entity_id: str, event: pb.HistoryEvent, txn: Txn, now: int) -> Entity:
        entity = self.entities.get(entity_id)
        if entity is None:
            entity = self._create(entity_id, txn, now)
        seq = entity.next_seq
        entity.next_seq = seq + 1
        entity.queue.append((seq, event))
        txn.exec(self.hub.store.sql.add_entity_message, (entity_id, seq, event.SerializeToString()))
        return entity

    def deliver(self, entity_id: str, event: pb.HistoryEvent, txn: Txn, now: int) -> None:
        """Put a message in an entity's queue (creating the entity) and move it along."""
        entity = self._enqueue(entity_id, event, txn, now)
        lock = entity.lock
        if lock is not None and not _from_holder(event, lock):
            return  # it waits for the unlock, and changes nothing until then
        self.advance(entity, txn, now)

    def signal(
        self,
        entity_id: str,
        event: pb.HistoryEvent,
        scheduled: Timestamp | None,
        txn: Txn,
        now: int,
    ) -> None:
        """Deliver a signal now, or at ``scheduled`` through a durable timer."""
        if scheduled is not None and ev.us_of(scheduled) > now:
            self.hub.add_timer(entity_id, 0, ev.us_of(scheduled), event, txn)
            return
        self.deliver(entity_id, event, txn, now)

    def fire(self, record: TimerRecord, txn: Txn, now: int) -> None:
        """A scheduled signal is due."""
        record.event.timestamp.CopyFrom(ev.ts(now))
        self.deliver(record.instance_id, record.event, txn, now)

    def advance(self, entity: Entity, txn: Txn, now: int) -> None:
        """Take the locks requested at the head of the entity's queue, then offer the
        entity for dispatch if it has operations to run.

        Work that this causes on other entities (a request moving on, a lock released)
        is done in the same loop rather than recursively.
        """
        self._todo.append(entity)
        if self._advancing:
            return
        self._advancing = True
        try:
            while self._todo:
                self._step(self._todo.pop(), txn, now)
        finally:
            self._advancing = False
            self._todo.clear()

    def _step(self, entity: Entity, txn: Txn, now: int) -> None:
        if self.entities.get(entity.entity_id) is not entity:
            return
        queue = entity.queue
        while entity.lease is None and not entity.retry and entity.lock is None and queue:
            seq, event = queue[0]
            if ev.event_kind(event) != _LOCK:
                break
            del queue[0]
            txn.exec(self.hub.store.sql.delete_entity_message, (entity.entity_id, seq))
            self._take_lock(entity, event, txn, now)
        self.hub.dispatcher.offer_entity(entity)

    # -- dispatch ------------------------------------------------------------------------

    def runnable(self, entity: Entity) -> bool:
        """Whether ``entity`` has a batch to send and no batch out with a worker."""
        if self.entities.get(entity.entity_id) is not entity:
            return False
        lease = entity.lease
        if lease is not None:
            return lease.stream is None  # orphaned: send it again
        if entity.retry:
            return True
        lock = entity.lock
        for _, event in entity.queue:
            kind = ev.event_kind(event)
            if lock is None:
                return kind != _LOCK
            if _from_holder(event, lock):
                return True
        return False

    def batch(self, entity: Entity) -> list[tuple[int, pb.HistoryEvent]]:
        """The operations of the next batch: a batch given back, else those that may run."""
        if entity.retry:
            wanted = set(entity.retry)
            entity.retry = []
            again = [(seq, event) for seq, event in entity.queue if seq in wanted]
            if again:
                return again
        batch: list[tuple[int, pb.HistoryEvent]] = []
        size = 0
        lock = entity.lock
        for seq, event in entity.queue:
            kind = ev.event_kind(event)
            if lock is None:
                if kind == _LOCK:
                    break
            elif not _from_holder(event, lock):
                continue  # waits until the lock is released
            batch.append((seq, event))
            size += event.ByteSize()
            if len(batch) >= MAX_BATCH_OPERATIONS or size >= MAX_BATCH_BYTES:
                break
        return batch

    # -- batch results -------------------------------------------------------------------

    def complete(
        self, lease: EntityLease, result: pb.EntityBatchResult, txn: Txn, now: int
    ) -> None:
        """Apply a worker's ``EntityBatchResult`` for the batch of ``lease``."""
        entity = lease.entity
        entity.retry = []
        if self.entities.get(entity.entity_id) is not entity:
            return
        done = set(lease.seqs)
        entity.queue = [(seq, event) for seq, event in entity.queue if seq not in done]
        sql = self.hub.store.sql
        txn.many(sql.delete_entity_message, [(entity.entity_id, seq) for seq in lease.seqs])
        batch_failed = result.HasField("failureDetails")
        if not batch_failed:
            entity.state = result.entityState.value if result.HasField("entityState") else None
        entity.modified_us = now
        txn.touch_entity(entity)
        self._respond(entity, lease, result, txn, now)
        if batch_failed:
            logger.warning(
                "entity %s: the worker failed the whole batch: %s",
                entity.entity_id,
                result.failureDetails.errorMessage,
            )
        else:
            for action in result.actions:
                self._carry_out(entity, action, txn, now)
        self.advance(entity, txn, now)

    def _respond(
        self, entity: Entity, lease: EntityLease, result: pb.EntityBatchResult, txn: Txn, now: int
    ) -> None:
        infos = list(result.operationInfos)
        if len(infos) != len(lease.events):
            infos = [_info_of(event) for event in lease.events]
        results = result.results
        for index, info in enumerate(infos):
            destination = info.responseDestination
            if not destination.instanceId:
                continue  # a signal: nobody waits for it
            if index < len(results) and results[index].HasField("success"):
                answer = ev.entity_operation_completed(
                    now, info.requestId, _optional(results[index].success, "result")
                )
            else:
                if index < len(results) and results[index].HasField("failure"):
                    failure = results[index].failure.failureDetails
                elif result.HasField("failureDetails"):
                    failure = result.failureDetails
                else:
                    failure = _failure(
                        "EntityOperationLost",
                        f"the worker returned no result for this operation on entity "
                        f"{entity.entity_id}",
                    )
                answer = ev.entity_operation_failed(now, info.requestId, failure)
            target = self.hub.instances.get(destination.instanceId)
            execution = destination.executionId.value if destination.HasField("executionId") else ""
            if (
                target is None
                or target.terminal
                or (execution and execution != target.execution_id)
            ):
                logger.info(
                    "entity %s: dropping the response to %r, which is gone or has finished",
                    entity.entity_id,
                    destination.instanceId,
                )
                continue
            self.hub.enqueue(target, answer, txn)

    def _carry_out(self, entity: Entity, action: pb.OperationAction, txn: Txn, now: int) -> None:
        kind = action.WhichOneof("operationActionType")
        if kind == "sendSignal":
            send = action.sendSignal
            try:
                target = check_entity_id(send.instanceId, field="sendSignal.instanceId")
                check_name(send.name, what="operation name")
            except RpcFailure as exc:
                logger.warning("entity %s: signal not sent: %s", entity.entity_id, exc.message)
                return
            scheduled = send.scheduledTime if send.HasField("scheduledTime") else None
            event = ev.entity_operation_signaled(
                now,
                request_id=uuid.uuid4().hex,
                operation=send.name,
                target=target,
                input=_optional(send, "input"),
                scheduled_time=scheduled,
            )
            self.signal(target, event, scheduled, txn, now)
        elif kind == "startNewOrchestration":
            self._start_orchestration(entity, action.startNewOrchestration, txn, now)
        else:
            logger.warning("entity %s: ignoring an action of type %r", entity.entity_id, kind)

    def _start_orchestration(
        self, entity: Entity, start: pb.StartNewOrchestrationAction, txn: Txn, now: int
    ) -> None:
        instance_id = start.instanceId or uuid.uuid4().hex
        try:
            check_instance_id(instance_id, field="startNewOrchestration.instanceId")
            check_name(start.name, what="orchestration name")
        except RpcFailure as exc:
            logger.warning(
                "entity %s: orchestration not started: %s", entity.entity_id, exc.message
            )
            return
        existing = self.hub.instances.get(instance_id)
        if existing is not None and not existing.terminal:
            logger.warning(
                "entity %s: orchestration %r not started: it exists with status %s",
                entity.entity_id,
                instance_id,
                ev.status_name(existing.status),
            )
            return
        self.hub.create(
            txn,
            now,
            instance_id=instance_id,
            name=start.name,
            version=_optional(start, "version"),
            input=_optional(start, "input"),
            scheduled_start=start.scheduledTime if start.HasField("scheduledTime") else None,
            trace_context=start.parentTraceContext
            if start.HasField("parentTraceContext")
            else None,
        )

    # -- messages from orchestrations ----------------------------------------------------

    def from_orchestration(
        self,
        sender_id: str,
        execution_id: str,
        action: pb.OrchestratorAction,
        txn: Txn,
        now: int,
        *,
        silenced: bool,
    ) -> tuple[pb.HistoryEvent | None, str | None]:
        """Carry out a ``sendEntityMessage`` action.

        Returns its history event, or a problem that fails the orchestration (a message
        of an unknown type, or one that names no valid entity). ``silenced`` (the
        orchestration was terminated) sends nothing, but unlocks are still honoured.
        """
        message = action.sendEntityMessage
        kind = message.WhichOneof("EntityMessageType")
        if kind is None:
            return None, "the worker sent an entity message of an unknown type"
        body = getattr(message, kind)
        try:
            target = _check_message(kind, body)
        except RpcFailure as exc:
            return None, f"the orchestration sent an invalid entity message: {exc.message}"
        record = pb.HistoryEvent(eventId=action.id, timestamp=ev.ts(now))
        getattr(record, kind).CopyFrom(body)
        if kind == "entityUnlockSent":
            self.unlock(sender_id, body.criticalSectionId, target, txn, now)
        elif silenced:
            pass
        elif kind == _LOCK:
            self.request_locks(sender_id, body, txn, now)
        elif kind == _CALL:
            event = pb.HistoryEvent(eventId=-1, timestamp=ev.ts(now))
            called = event.entityOperationCalled
            called.CopyFrom(body)
            # The response goes to, and the lock check trusts, the orchestration that sent it.
            called.parentInstanceId.value = sender_id
            if not called.parentExecutionId.value:
                called.parentExecutionId.value = execution_id
            self.deliver(target, event, txn, now)
        else:
            event = pb.HistoryEvent(eventId=-1, timestamp=ev.ts(now))
            event.entityOperationSignaled.CopyFrom(body)
            scheduled = body.scheduledTime if body.HasField("scheduledTime") else None
            self.signal(target, event, scheduled, txn, now)
        return record, None

    # -- critical sections ---------------------------------------------------------------

    def request_locks(
        self, owner: str, requested: pb.EntityLockRequestedEvent, txn: Txn, now: int
    ) -> None:
        section_id = requested.criticalSectionId
        if section_id in self.sections:
            logger.warning("critical section %r was requested twice; ignoring", section_id)
            return
        section = self._section(section_id, owner, lock_order(requested.lockSet))
        self._forward(section, 0, txn, now)

    def _forward(self, section: Section, position: int, txn: Txn, now: int) -> None:
        """Queue the section's request at the entity it locks next."""
        target = section.lock_set[position]
        event = pb.HistoryEvent(eventId=-1, timestamp=ev.ts(now))
        request = event.entityLockRequested
        request.criticalSectionId = section.section_id
        request.lockSet.extend(section.lock_set)
        request.position = position
        request.parentInstanceId.value = section.owner
        section.waiting_at = target
        self.deliver(target, event, txn, now)

    def _take_lock(self, entity: Entity, event: pb.HistoryEvent, txn: Txn, now: int) -> None:
        section = self.sections.get(event.entityLockRequested.criticalSectionId)
        if section is None or section.waiting_at != entity.entity_id:
            return  # cancelled while it waited
        entity.lock = section
        section.held.add(entity.entity_id)
        txn.touch_entity(entity)
        position = section.lock_set.index(entity.entity_id) + 1
        if position < len(section.lock_set):
            self._forward(section, position, txn, now)
        else:
            self._grant(section, txn, now)

    def _grant(self, section: Section, txn: Txn, now: int) -> None:
        section.waiting_at = None
        owner = self.hub.instances.get(section.owner)
        if owner is None or owner.terminal:
            self.end_section(section, txn, now)
            return
        self.hub.enqueue(owner, ev.entity_lock_granted(now, section.section_id), txn)

    def unlock(self, owner: str, section_id: str, target: str, txn: Txn, now: int) -> None:
        """``entityUnlockSent`` from ``owner``: release ``target`` (or give up waiting)."""
        section = self.sections.get(section_id)
        if section is None or section.owner != owner:
            return
        if section.waiting_at is not None:
            self.end_section(section, txn, now)  # not granted yet: the owner stopped waiting
            return
        if target in section.held:
            self._release(section, target, txn, now)
        if not section.held:
            self._forget(section)

    def release_owner(self, owner: str, txn: Txn, now: int) -> None:
        """The orchestration ``owner`` ended: release and cancel all its sections."""
        for section_id in list(self._by_owner.get(owner, ())):
            section = self.sections.get(section_id)
            if section is not None:
                self.end_section(section, txn, now)

    def end_section(self, section: Section, txn: Txn, now: int) -> int:
        """Release every lock of ``section`` and cancel its request; return how many
        locks were released."""
        self._forget(section)
        waiting_at, section.waiting_at = section.waiting_at, None
        if waiting_at is not None:
            entity = self.entities.get(waiting_at)
            if entity is not None:
                self._drop_request(entity, section.section_id, txn)
                self.advance(entity, txn, now)
        held = list(section.held)
        for entity_id in held:
            self._release(section, entity_id, txn, now)
        return len(held)

    def _forget(self, section: Section) -> None:
        if self.sections.get(section.section_id) is section:
            del self.sections[section.section_id]
        owned = self._by_owner.get(section.owner)
        if owned is not None:
            owned.discard(section.section_id)
            if not owned:
                del self._by_owner[section.owner]

    def _drop_request(self, entity: Entity, section_id: str, txn: Txn) -> None:
        for index, (seq, event) in enumerate(entity.queue):
            if (
                ev.event_kind(event) == _LOCK
                and event.entityLockRequested.criticalSectionId == section_id
            ):
                del entity.queue[index]
                txn.exec(self.hub.store.sql.delete_entity_message, (entity.entity_id, seq))
                return

    def _release(self, section: Section, entity_id: str, txn: Txn, now: int) -> None:
        section.held.discard(entity_id)
        entity = self.entities.get(entity_id)
        if entity is not None and entity.lock is section:
            entity.lock = None
            txn.touch_entity(entity)
            self.advance(entity, txn, now)

    # -- client views and maintenance ------------------------------------------------------

    @staticmethod
    def metadata(entity: Entity, include_state: bool) -> pb.EntityMetadata:
        """``EntityMetadata`` of ``entity`` as ``GetEntity`` and ``QueryEntities`` return it."""
        in_flight = len(entity.lease.seqs) if entity.lease is not None else 0
        backlog = sum(1 for _, event in entity.queue if ev.event_kind(event) != _LOCK)
        metadata = pb.EntityMetadata(
            instanceId=entity.entity_id,
            lastModifiedTime=ev.ts(entity.modified_us),
            backlogQueueSize=max(0, backlog - in_flight),
        )
        if entity.lock is not None:
            metadata.lockedBy.value = entity.lock.owner
        if include_state and entity.state is not None:
            metadata.serializedState.value = entity.state
        return metadata

    def release_orphaned_locks(self, txn: Txn, now: int) -> int:
        """Release the locks of sections whose orchestration is gone or finished."""
        released = 0
        for section in list(self.sections.values()):
            if not self._owner_alive(section):
                released += self.end_section(section, txn, now)
        return released

    def remove_empty(self, txn: Txn) -> int:
        """Delete entities with no state, no messages, no lock and no batch in flight."""
        sql = self.hub.store.sql
        empty = [
            entity
            for entity in self.entities.values()
            if entity.state is None
            and not entity.queue
            and entity.lock is None
            and entity.lease is None
            and not entity.retry
        ]
        for entity in empty:
            del self.entities[entity.entity_id]
            txn.dirty_entities.pop(entity.entity_id, None)
            txn.exec(sql.delete_entity, (entity.entity_id,))
        return len(empty)

    def wipe(self) -> None:
        """Forget every entity and section (the tables are cleared by the caller)."""
        for entity in self.entities.values():
            self.hub.dispatcher.revoke(entity.lease)
        self.entities.clear()
        self.sections.clear()
        self._by_owner.clear()
        self.hub.dispatcher.ready_entities.clear()


def _check_message(kind: str, body: Any) -> str:
    """Validate an entity message from an orchestration; return its target entity id
    (for a lock request, the first entity to lock)."""
    if kind in (_CALL, _SIGNAL):
        check_name(body.operation, what="entity operation name")
        return check_entity_id(body.targetInstanceId.value, field="targetInstanceId")
    if not body.criticalSectionId:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "criticalSectionId must not be empty")
    if kind == _LOCK:
        if not body.lockSet:
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "lockSet must not be empty")
        return min(check_entity_id(entity_id, field="lockSet entry") for entity_id in body.lockSet)
    return check_entity_id(body.targetInstanceId.value, field="targetInstanceId")


def _from_holder(event: pb.HistoryEvent, lock: Section) -> bool:
    """Whether ``event`` is a call from the orchestration holding ``lock`` (the only
    messages a locked entity runs)."""
    return (
        ev.event_kind(event) == _CALL
        and event.entityOperationCalled.parentInstanceId.value == lock.owner
    )


def _info_of(event: pb.HistoryEvent) -> pb.OperationInfo:
    """Where the response to a queued operation goes (nowhere for a signal)."""
    if ev.event_kind(event) == _CALL:
        called = event.entityOperationCalled
        info = pb.OperationInfo(requestId=called.requestId)
        info.responseDestination.instanceId = called.parentInstanceId.value
        if called.HasField("parentExecutionId"):
            info.responseDestination.executionId.value = called.parentExecutionId.value
        return info
    return pb.OperationInfo(requestId=event.entityOperationSignaled.requestId)
