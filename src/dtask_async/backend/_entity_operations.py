"""The entity RPCs of a hub: signals, reads, queries, cleanup and batch results.

Like the orchestration operations, each validates its request, changes the hub's state,
lets the dispatcher push any work that became ready, and returns once the change (or,
for a read, everything before it) is durable.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable

import grpc

from .._proto import pb
from . import _events as ev
from ._hub import Hub
from ._model import ENTITY, Entity, EntityLease, Txn
from ._queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from ._validation import RpcFailure, check_entity_id, check_name

__all__ = (
    "clean_entity_storage",
    "complete_entity",
    "get_entity",
    "query_entities",
    "signal_entity",
)


async def signal_entity(hub: Hub, request: pb.SignalEntityRequest) -> None:
    """``SignalEntity``: queue an operation (now, or at ``scheduledTime``)."""
    entity_id = check_entity_id(request.instanceId)
    check_name(request.name, what="operation name")
    now = ev.now_us()
    scheduled = request.scheduledTime if request.HasField("scheduledTime") else None
    event = ev.entity_operation_signaled(
        now,
        request_id=request.requestId or uuid.uuid4().hex,
        operation=request.name,
        target=entity_id,
        input=request.input if request.HasField("input") else None,
        scheduled_time=scheduled,
    )
    txn = Txn()
    hub.entities.signal(entity_id, event, scheduled, txn, now)
    hub.dispatcher.pump()
    await hub.commit(txn)


async def get_entity(hub: Hub, request: pb.GetEntityRequest) -> pb.GetEntityResponse:
    entity = hub.entities.entities.get(check_entity_id(request.instanceId))
    if entity is None:
        response = pb.GetEntityResponse(exists=False)
    else:
        response = pb.GetEntityResponse(
            exists=True, entity=hub.entities.metadata(entity, request.includeState)
        )
    await hub.commit(Txn())
    return response


def _page(entities: Iterable[Entity], query: pb.EntityQuery) -> tuple[list[Entity], str | None]:
    """One page of entities matching ``query`` in id order, and the next page's token.

    The token is the id of the last entity returned.
    """
    prefix = query.instanceIdStartsWith.value if query.HasField("instanceIdStartsWith") else ""
    modified_from = ev.us_of(query.lastModifiedFrom) if query.HasField("lastModifiedFrom") else None
    modified_to = ev.us_of(query.lastModifiedTo) if query.HasField("lastModifiedTo") else None
    after = query.continuationToken.value if query.HasField("continuationToken") else ""
    if after == "0":
        after = ""
    if after and not after.startswith("@"):
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"continuation token {after[:80]!r} is not a token this backend issued",
        )
    size = DEFAULT_PAGE_SIZE
    if query.HasField("pageSize") and query.pageSize.value > 0:
        size = min(query.pageSize.value, MAX_PAGE_SIZE)

    def candidates() -> Iterable[Entity]:
        for entity in entities:
            entity_id = entity.entity_id
            if prefix and not entity_id.startswith(prefix):
                continue
            if after and entity_id <= after:
                continue
            if entity.state is None and not query.includeTransient:
                continue
            if modified_from is not None and entity.modified_us < modified_from:
                continue
            if modified_to is not None and entity.modified_us >= modified_to:
                continue
            yield entity

    page = heapq.nsmallest(size + 1, candidates(), key=lambda entity: entity.entity_id)
    more = len(page) > size
    page = page[:size]
    return page, page[-1].entity_id if more else None


async def query_entities(hub: Hub, request: pb.QueryEntitiesRequest) -> pb.QueryEntitiesResponse:
    """``QueryEntities``: by id prefix, last-modified range (``from`` inclusive, ``to``
    exclusive), with or without state and stateless (transient) entities, paged."""
    query = request.query
    page, token = _page(hub.entities.entities.values(), query)
    response = pb.QueryEntitiesResponse(
        entities=[hub.entities.metadata(entity, query.includeState) for entity in page]
    )
    if token is not None:
        response.continuationToken.value = token
    await hub.commit(Txn())
    return response


async def clean_entity_storage(
    hub: Hub, request: pb.CleanEntityStorageRequest
) -> pb.CleanEntityStorageResponse:
    """``CleanEntityStorage``: release locks of orchestrations that are gone or finished,
    then delete entities with no state and nothing pending. Done in one call: the
    response never has a continuation token."""
    txn = Txn()
    now = ev.now_us()
    released = removed = 0
    if request.releaseOrphanedLocks:
        released = hub.entities.release_orphaned_locks(txn, now)
    if request.removeEmptyEntities:
        removed = hub.entities.remove_empty(txn)
    hub.dispatcher.pump()
    await hub.commit(txn)
    return pb.CleanEntityStorageResponse(
        emptyEntitiesRemoved=removed, orphanedLocksReleased=released
    )


async def complete_entity(hub: Hub, result: pb.EntityBatchResult) -> None:
    """``CompleteEntityTask``: store the new state, answer callers, send messages."""
    lease = hub.dispatcher.find(result.completionToken, ENTITY)
    assert isinstance(lease, EntityLease)
    hub.dispatcher.finish(lease)
    txn = Txn()
    hub.entities.complete(lease, result, txn, ev.now_us())
    hub.dispatcher.pump()
    await hub.commit(txn)
