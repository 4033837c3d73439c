"""Work-item streams, leases and the push dispatcher of one task hub.

Work becomes *ready* when it can run (an instance with new events and no live lease; a
queued activity). The dispatcher pairs ready work with open streams that have a free
slot, round robin, and pushes it at once: streams never poll. Each dispatch creates a
lease with a fresh completion token:

* completing or abandoning with that token ends the lease. Abandoned work is ready
  again at once the first time; work abandoned again without being completed in
  between waits ``ABANDON_BACKOFF`` seconds, doubling up to ``ABANDON_BACKOFF_MAX``,
  so a worker that cannot handle an item does not spin on it;
* a stream that closes leaves its leases *orphaned*: the work is ready again at once,
  and the old token stays valid until the work is sent to another stream;
* a lease older than ``lease_duration`` expires: the work is ready again and the token
  is dead. The stream's slot stays taken until its worker reports back with that token
  (the worker still counts the item against its own limit).

An orchestration instance has at most one live lease, so it never runs on two workers.

A stream is a worker's ``GetWorkItems`` call or its work channel (``WorkChannel.Connect``):
the dispatcher treats both alike. A channel's stream also queues the outcomes of the
completions that came over it, and sends them with its work items in batches
(:meth:`Stream.next_batch`).

Entities are the third kind: one ready entry per entity instance id (``@name@key``)
whose runnable operations (see ``_entities``) form the batch, leased like an
orchestration so an entity runs one batch at a time, with slots sized by
``maxConcurrentEntityWorkItems``. A batch that comes back uncompleted (abandoned,
expired, orphaned) is sent again first, with the same operations.

Orchestration work items carry the whole history, unless the stream's worker declared
``WORKER_CAPABILITY_HISTORY_STREAMING`` and the encoded history is larger than
``history_streaming_threshold`` bytes (or the work item would not fit in a message):
then the item says ``requiresHistoryStreaming`` and the worker reads the history with
``StreamInstanceHistory``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections import deque
from collections.abc import Iterable
from typing import Protocol

import anyio
import grpc

from .._proto import pb
from ._model import (
    ACTIVITY,
    ENTITY,
    ORCHESTRATION,
    ActivityItem,
    ActivityLease,
    Entity,
    EntityLease,
    Instance,
    Lease,
    OrchestrationLease,
)
from ._options import BackendOptions
from ._validation import RpcFailure
from ._wire import HEALTH_PING, activity_work_item, channel_item, orchestrator_work_item

__all__ = ("ACTIVITY", "ENTITY", "ORCHESTRATION", "Dispatcher", "Stream")

logger = logging.getLogger(__name__)

_FilterMap = dict[str, frozenset[str]]

# Room left for the instance id, execution id, token and framing of a work item when
# deciding whether its history still fits in one message.
_ENVELOPE_BYTES = 4096

ABANDON_BACKOFF = 0.25
"""Seconds before work abandoned a second time in a row is offered again."""
ABANDON_BACKOFF_MAX = 15.0
"""The longest wait before abandoned work is offered again."""
_ABANDONED_KEPT = 10_000


class DispatchHost(Protocol):
    """What the dispatcher needs from its hub."""

    def runnable(self, instance: Instance) -> bool: ...

    def episode(self, instance: Instance) -> tuple[int, list[pb.HistoryEvent]]: ...

    def entity_runnable(self, entity: Entity) -> bool: ...

    def entity_batch(self, entity: Entity) -> list[tuple[int, pb.HistoryEvent]]: ...

    def wake_clock(self) -> None: ...

    def now(self) -> int: ...


def _filters(
    request: pb.GetWorkItemsRequest,
) -> tuple[_FilterMap | None, _FilterMap | None, _FilterMap | None]:
    if not request.HasField("workItemFilters"):
        return None, None, None

    def build(entries: Iterable[pb.OrchestrationFilter | pb.ActivityFilter]) -> _FilterMap:
        result: _FilterMap = {}
        for entry in entries:
            result[entry.name] = result.get(entry.name, frozenset()) | frozenset(entry.versions)
        return result

    filters = request.workItemFilters
    entities: _FilterMap = {entry.name.lower(): frozenset() for entry in filters.entities}
    return build(filters.orchestrations), build(filters.activities), entities


def _accepts(filters: _FilterMap | None, name: str, version: str) -> bool:
    if filters is None:
        return True
    versions = filters.get(name)
    if versions is None:
        return False
    return not versions or version in versions


class Stream:
    """One worker's ``GetWorkItems`` call: its limits, its leases and its outbox."""

    def __init__(
        self,
        stream_id: int,
        *,
        max_orchestrations: int,
        max_activities: int,
        max_entities: int,
        orchestration_filter: _FilterMap | None,
        activity_filter: _FilterMap | None,
        entity_filter: _FilterMap | None,
        streams_history: bool = False,
    ) -> None:
        self.stream_id = stream_id
        self.max = {
            ORCHESTRATION: max_orchestrations,
            ACTIVITY: max_activities,
            ENTITY: max_entities,
        }
        self.used = {ORCHESTRATION: 0, ACTIVITY: 0, ENTITY: 0}
        self.filters = {
            ORCHESTRATION: orchestration_filter,
            ACTIVITY: activity_filter,
            ENTITY: entity_filter,
        }
        self.streams_history = streams_history
        self.tokens: set[str] = set()
        self.stale: set[str] = set()
        self.closed = False
        self._outbox: deque[bytes] = deque()
        self._outcomes: list[bytes] = []
        self._wake = asyncio.Event()

    def free(self, kind: str) -> int:
        return self.max[kind] - self.used[kind]

    def accepts(self, kind: str, name: str, version: str) -> bool:
        return _accepts(self.filters[kind], name, version)

    def push(self, item: bytes) -> None:
        self._outbox.append(item)
        self._wake.set()

    def push_outcome(self, outcome: bytes) -> None:
        """Queue an encoded ``ChannelDown.outcomes`` entry (work channel streams)."""
        self._outcomes.append(outcome)
        self._wake.set()

    def end(self) -> None:
        """Make :meth:`next_item` return ``None`` once the outbox is drained."""
        self.closed = True
        self._wake.set()

    async def _wait_for_work(self, ping_interval: float) -> bool:
        """Wait up to ``ping_interval`` seconds for something to send, unless the stream
        was ended; whether there is something (work items or outcomes)."""
        if not self._outbox and not self._outcomes and not self.closed:
            self._wake.clear()
            with anyio.move_on_after(ping_interval):
                await self._wake.wait()
        return bool(self._outbox or self._outcomes)

    async def next_item(self, ping_interval: float) -> bytes | None:
        """The next serialized work item; a ``HealthPing`` after ``ping_interval`` idle
        seconds; ``None`` when the stream was ended."""
        if not await self._wait_for_work(ping_interval):
            return None if self.closed else HEALTH_PING
        return self._outbox.popleft()

    async def next_batch(self, ping_interval: float, max_bytes: int) -> bytes | None:
        """The next ``ChannelDown`` message of a work channel: every waiting outcome
        and as many waiting work items as fit in ``max_bytes`` (at least one); a
        ``HealthPing`` after ``ping_interval`` idle seconds; ``None`` once ended.
        """
        if not await self._wait_for_work(ping_interval):
            return None if self.closed else channel_item(HEALTH_PING)
        parts = self._outcomes
        self._outcomes = []
        size = sum(map(len, parts))
        outbox = self._outbox
        while outbox:
            entry = channel_item(outbox[0])
            if parts and size + len(entry) > max_bytes:
                break
            outbox.popleft()
            parts.append(entry)
            size += len(entry)
        return b"".join(parts)

    def __repr__(self) -> str:
        return f"<Stream {self.stream_id} used={self.used} max={self.max}>"


class Dispatcher:
    """Pairs ready work with streams and keeps the lease table."""

    def __init__(self, host: DispatchHost, options: BackendOptions) -> None:
        self._host = host
        self._options = options
        self._lease_us = int(options.lease_duration * 1_000_000)
        self._streams: list[Stream] = []
        self._closing = False
        self._rr = 0
        self._ids = itertools.count(1)
        self._token_prefix = secrets.token_hex(4) + "-"
        self._token_ids = itertools.count(1)
        self.ready_instances: deque[Instance] = deque()
        self.ready_activities: deque[ActivityItem] = deque()
        self.ready_entities: deque[Entity] = deque()
        self.leases: dict[str, Lease] = {}
        self._stale: dict[str, tuple[Stream, str]] = {}
        # Work abandoned since it was last completed: (kind, id) -> times in a row.
        self._abandoned: dict[tuple[str, object], int] = {}
        # (expiry, token) in dispatch order: every lease lasts equally long, so this is
        # also expiry order. Only tokens are kept, so finished leases are freed at once.
        self._fifo: deque[tuple[int, str]] = deque()

    # -- streams ---------------------------------------------------------------------

    def open_stream(self, request: pb.GetWorkItemsRequest) -> Stream:
        if self._closing:
            raise RpcFailure(grpc.StatusCode.UNAVAILABLE, "the backend is shutting down")
        orchestration_filter, activity_filter, entity_filter = _filters(request)
        options = self._options
        stream = Stream(
            next(self._ids),
            max_orchestrations=request.maxConcurrentOrchestrationWorkItems
            if request.maxConcurrentOrchestrationWorkItems > 0
            else options.default_orchestration_concurrency,
            max_activities=request.maxConcurrentActivityWorkItems
            if request.maxConcurrentActivityWorkItems > 0
            else options.default_activity_concurrency,
            max_entities=request.maxConcurrentEntityWorkItems
            if request.maxConcurrentEntityWorkItems > 0
            else options.default_entity_concurrency,
            orchestration_filter=orchestration_filter,
            activity_filter=activity_filter,
            entity_filter=entity_filter,
            streams_history=pb.WORKER_CAPABILITY_HISTORY_STREAMING in request.capabilities,
        )
        self._streams.append(stream)
        logger.debug("work item stream %s opened", stream)
        self.pump()
        return stream

    def retire_stream(self, stream: Stream) -> None:
        """Send ``stream`` no more work; its leases stay its own until it closes (a
        worker that stops gracefully finishes what it holds)."""
        if stream in self._streams:
            self._streams.remove(stream)
            logger.debug("work item stream %s retired", stream)
            self.pump()

    def close_stream(self, stream: Stream) -> None:
        """Forget ``stream``; its leased work is ready again at once."""
        if stream in self._streams:
            self._streams.remove(stream)
        stream.end()
        for token in stream.tokens:
            lease = self.leases.get(token)
            if lease is not None:
                lease.stream = None
                self._reoffer(lease)
        stream.tokens.clear()
        for token in stream.stale:
            self._stale.pop(token, None)
        stream.stale.clear()
        logger.debug("work item stream %s closed", stream)
        self.pump()

    def end_all_streams(self) -> None:
        """End every stream and refuse new ones: the backend is stopping."""
        self._closing = True
        for stream in list(self._streams):
            stream.end()

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    # -- ready work ------------------------------------------------------------------

    def offer_instance(self, instance: Instance) -> None:
        if not instance.queued and self._host.runnable(instance):
            instance.queued = True
            self.ready_instances.append(instance)

    def offer_activity(self, item: ActivityItem) -> None:
        if (
            not item.queued
            and not item.cancelled
            and (item.lease is None or item.lease.stream is None)
        ):
            item.queued = True
            self.ready_activities.append(item)

    def offer_entity(self, entity: Entity) -> None:
        if not entity.queued and self._host.entity_runnable(entity):
            entity.queued = True
            self.ready_entities.append(entity)

    def pump(self) -> None:
        """Send ready work to streams with free slots."""
        if not self._streams:
            return
        if self.ready_instances:
            self._pump_instances()
        if self.ready_activities:
            self._pump_activities()
        if self.ready_entities:
            self._pump_entities()

    def _choose(self, kind: str, name: str, version: str) -> Stream | None:
        streams = self._streams
        count = len(streams)
        for offset in range(count):
            stream = streams[(self._rr + offset) % count]
            if stream.free(kind) > 0 and stream.accepts(kind, name, version):
                self._rr = (self._rr + offset + 1) % count
                return stream
        return None

    def _has_room(self, kind: str) -> bool:
        return any(stream.free(kind) > 0 for stream in self._streams)

    def _pump_instances(self) -> None:
        queue = self.ready_instances
        skipped: list[Instance] = []
        while queue:
            instance = queue[0]
            if not self._host.runnable(instance):
                queue.popleft()
                instance.queued = False
                continue
            stream = self._choose(ORCHESTRATION, instance.name, instance.version)
            if stream is None:
                if not self._has_room(ORCHESTRATION):
                    break
                skipped.append(queue.popleft())  # no open stream accepts this name
                continue
            queue.popleft()
            instance.queued = False
            self._send_instance(stream, instance)
        queue.extendleft(reversed(skipped))

    def _pump_activities(self) -> None:
        queue = self.ready_activities
        skipped: list[ActivityItem] = []
        while queue:
            item = queue[0]
            if item.cancelled or (item.lease is not None and item.lease.stream is not None):
                queue.popleft()
                item.queued = False
                continue
            stream = self._choose(ACTIVITY, item.name, item.version)
            if stream is None:
                if not self._has_room(ACTIVITY):
                    break
                skipped.append(queue.popleft())
                continue
            queue.popleft()
            item.queued = False
            self._send_activity(stream, item)
        queue.extendleft(reversed(skipped))

    def _pump_entities(self) -> None:
        queue = self.ready_entities
        skipped: list[Entity] = []
        while queue:
            entity = queue[0]
            if not self._host.entity_runnable(entity):
                queue.popleft()
                entity.queued = False
                continue
            stream = self._choose(ENTITY, entity.name, "")
            if stream is None:
                if not self._has_room(ENTITY):
                    break
                skipped.append(queue.popleft())
                continue
            queue.popleft()
            entity.queued = False
            self._send_entity(stream, entity)
        queue.extendleft(reversed(skipped))

    def _new_lease_token(self, stream: Stream, kind: str) -> tuple[str, int]:
        token = f"{self._token_prefix}{next(self._token_ids)}"
        stream.used[kind] += 1
        stream.tokens.add(token)
        return token, self._host.now() + self._lease_us

    def _track(self, lease: Lease) -> None:
        self.leases[lease.token] = lease
        if not self._fifo:
            self._host.wake_clock()
        self._fifo.append((lease.expires_us, lease.token))

    def _send_instance(self, stream: Stream, instance: Instance) -> None:
        if instance.lease is not None:  # orphaned by a closed stream: its token dies now
            self.leases.pop(instance.lease.token, None)
        upto_seq, new_events = self._host.episode(instance)
        token, expires = self._new_lease_token(stream, ORCHESTRATION)
        lease = OrchestrationLease(token, stream, expires, instance, upto_seq, new_events)
        instance.lease = lease
        self._track(lease)
        past = instance.past
        assert past is not None
        encoded = [event.SerializeToString() for event in new_events]
        streamed = stream.streams_history and self._streams_history(past, encoded)
        if streamed:
            logger.debug(
                "%r: %d bytes of history left for the worker to stream",
                instance.instance_id,
                len(past),
            )
        stream.push(
            orchestrator_work_item(
                instance.instance_id,
                instance.execution_id,
                b"" if streamed else past,
                encoded,
                token,
                requires_history_streaming=streamed,
            )
        )

    def _streams_history(self, past: bytearray, new_events: list[bytes]) -> bool:
        """Whether a work item should leave its history for the worker to stream."""
        threshold = self._options.history_streaming_threshold
        if threshold is not None and len(past) > threshold:
            return True
        size = len(past) + sum(len(event) + 6 for event in new_events) + _ENVELOPE_BYTES
        return size > self._options.max_message_size

    def _send_activity(self, stream: Stream, item: ActivityItem) -> None:
        if item.lease is not None:
            self.leases.pop(item.lease.token, None)
        token, expires = self._new_lease_token(stream, ACTIVITY)
        lease = ActivityLease(token, stream, expires, item)
        item.lease = lease
        self._track(lease)
        stream.push(activity_work_item(item.request_bytes, token))

    def _send_entity(self, stream: Stream, entity: Entity) -> None:
        if entity.lease is not None:  # orphaned by a closed stream: its token dies now
            self.leases.pop(entity.lease.token, None)
            entity.lease = None
        batch = self._host.entity_batch(entity)
        token, expires = self._new_lease_token(stream, ENTITY)
        seqs = [seq for seq, _ in batch]
        events = [event for _, event in batch]
        lease = EntityLease(token, stream, expires, entity, seqs, events)
        entity.lease = lease
        self._track(lease)
        item = pb.WorkItem(completionToken=token)
        request = item.entityRequestV2
        request.instanceId = entity.entity_id
        if entity.state is not None:
            request.entityState.value = entity.state
        request.operationRequests.extend(events)
        stream.push(item.SerializeToString())

    # -- leases ----------------------------------------------------------------------

    def find(self, token: str, kind: str) -> Lease:
        """The live lease of ``token``, or raise FAILED_PRECONDITION (changing nothing)."""
        lease = self.leases.get(token)
        if lease is None:
            stale = self._stale.pop(token, None)
            if stale is not None:
                stream, stale_kind = stale
                stream.stale.discard(token)
                stream.used[stale_kind] -= 1
                self.pump()
                raise RpcFailure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"the lease of {kind} work item with completion token {token!r} expired "
                    "before it was completed; the work was redelivered and this result is "
                    "discarded",
                )
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no leased {kind} work item has completion token {token!r}: it was already "
                "completed or abandoned, its lease expired, or the backend restarted",
            )
        if lease.kind != kind:
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"completion token {token!r} belongs to an {lease.kind} work item, "
                f"not to an {kind} one",
            )
        return lease

    def finish(self, lease: Lease) -> None:
        """End ``lease`` (its work was completed or is being given back)."""
        if self._abandoned:
            self._abandoned.pop(_work_key(lease), None)
        self.leases.pop(lease.token, None)
        stream = lease.stream
        if stream is not None:
            stream.tokens.discard(lease.token)
            stream.used[lease.kind] -= 1
            lease.stream = None
        _detach(lease)

    def abandon(self, lease: Lease) -> None:
        """End ``lease`` and make its work ready again: at once the first time, after
        a growing delay when it is abandoned again without completing in between."""
        key = _work_key(lease)
        times = self._abandoned.get(key, 0) + 1
        self.finish(lease)
        if times == 1:
            self._reoffer(lease)
        else:
            delay = min(ABANDON_BACKOFF * 2 ** (times - 2), ABANDON_BACKOFF_MAX)
            logger.info(
                "%s work item abandoned %d times in a row; offering it again in %.2f s",
                lease.kind,
                times,
                delay,
            )
            _keep_batch(lease)  # new messages may arrive while it waits
            asyncio.get_running_loop().call_later(delay, self._reoffer_later, lease)
        self._abandoned[key] = times
        if len(self._abandoned) > _ABANDONED_KEPT:  # work dropped while it waited
            del self._abandoned[next(iter(self._abandoned))]

    def _reoffer_later(self, lease: Lease) -> None:
        if self._closing:
            return
        self._reoffer(lease)
        self.pump()

    def revoke(self, lease: Lease | None) -> None:
        """Invalidate ``lease`` without making its work ready (the work is gone)."""
        if lease is None or self.leases.get(lease.token) is not lease:
            return
        self._kill(lease)

    def _kill(self, lease: Lease) -> None:
        if self._abandoned:
            self._abandoned.pop(_work_key(lease), None)
        del self.leases[lease.token]
        stream = lease.stream
        kind = lease.kind
        if stream is not None:
            stream.tokens.discard(lease.token)
            if stream.closed:
                stream.used[kind] -= 1
            else:
                stream.stale.add(lease.token)
                self._stale[lease.token] = (stream, kind)
            lease.stream = None
        _detach(lease)

    def _reoffer(self, lease: Lease) -> None:
        if isinstance(lease, OrchestrationLease):
            self.offer_instance(lease.instance)
        elif isinstance(lease, ActivityLease):
            self.offer_activity(lease.item)
        elif isinstance(lease, EntityLease):
            _keep_batch(lease)
            self.offer_entity(lease.entity)

    def next_expiry_us(self) -> int | None:
        fifo = self._fifo
        leases = self.leases
        while fifo and fifo[0][1] not in leases:
            fifo.popleft()
        return fifo[0][0] if fifo else None

    def expire_due(self, now_us: int) -> None:
        fifo = self._fifo
        expired = 0
        while fifo and fifo[0][0] <= now_us:
            expires_us, token = fifo.popleft()
            lease = self.leases.get(token)
            if lease is not None and lease.expires_us == expires_us:
                expired += 1
                logger.warning(
                    "lease of work item %r expired after %.1fs; redelivering it",
                    lease.token,
                    self._options.lease_duration,
                )
                self._kill(lease)
                self._reoffer(lease)
        if expired:
            self.pump()


def _detach(lease: Lease) -> None:
    """Forget ``lease`` on the work it was for (if it is still that work's lease)."""
    if isinstance(lease, OrchestrationLease):
        if lease.instance.lease is lease:
            lease.instance.lease = None
    elif isinstance(lease, ActivityLease):
        if lease.item.lease is lease:
            lease.item.lease = None
    elif isinstance(lease, EntityLease) and lease.entity.lease is lease:
        lease.entity.lease = None


def _keep_batch(lease: Lease) -> None:
    """Make an entity's uncompleted batch the first one it is sent next."""
    if isinstance(lease, EntityLease) and not lease.entity.retry:
        lease.entity.retry = list(lease.seqs)


def _work_key(lease: Lease) -> tuple[str, object]:
    """What ``lease`` works on, the same across its redeliveries."""
    if isinstance(lease, OrchestrationLease):
        return (ORCHESTRATION, lease.instance.instance_id)
    if isinstance(lease, ActivityLease):
        return (ACTIVITY, lease.item.item_id)
    if isinstance(lease, EntityLease):
        return (ENTITY, lease.entity.entity_id)
    return (lease.kind, lease.token)
