"""Filtering and paging instances for ``QueryInstances``, ``ListInstanceIds`` and purges.

Pages are ordered by ``(created time, instance id)`` (``QueryInstances``) or
``(completed time, instance id)`` (``ListInstanceIds``); a continuation token is the key
of the last item returned, ``"<microseconds>|<instance id>"``, so paging is stable
while instances are added or removed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import grpc

from .._proto import pb
from ._events import TERMINAL_STATUSES, us_of
from ._model import Instance
from ._validation import RpcFailure

__all__ = ("DEFAULT_PAGE_SIZE", "list_instance_ids", "matches_purge_filter", "query_instances")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 10_000

_Key = tuple[int, str]


def _parse_token(token: str, what: str) -> _Key:
    stamp, sep, instance_id = token.partition("|")
    if not sep or not stamp.isdigit():
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{what} {token[:80]!r} is not a token this backend issued",
        )
    return int(stamp), instance_id


def _token(key: _Key) -> str:
    return f"{key[0]}|{key[1]}"


def _page_size(requested: int) -> int:
    if requested <= 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def _created_us(instance: Instance) -> int:
    return us_of(instance.state.createdTimestamp)


def query_instances(
    instances: Iterable[Instance], query: pb.InstanceQuery
) -> tuple[list[Instance], str | None]:
    """One page of instances matching ``query``, and the token of the next page."""
    statuses = frozenset(query.runtimeStatus)
    created_from = us_of(query.createdTimeFrom) if query.HasField("createdTimeFrom") else None
    created_to = us_of(query.createdTimeTo) if query.HasField("createdTimeTo") else None
    prefix = query.instanceIdPrefix.value if query.HasField("instanceIdPrefix") else ""
    after: _Key | None = None
    if query.HasField("continuationToken") and query.continuationToken.value:
        after = _parse_token(query.continuationToken.value, "continuation token")
    size = _page_size(query.maxInstanceCount)

    def candidates() -> Iterable[tuple[_Key, Instance]]:
        for instance in instances:
            if statuses and instance.status not in statuses:
                continue
            if prefix and not instance.instance_id.startswith(prefix):
                continue
            created = _created_us(instance)
            if created_from is not None and created < created_from:
                continue
            if created_to is not None and created >= created_to:
                continue
            key = (created, instance.instance_id)
            if after is not None and key <= after:
                continue
            yield key, instance

    page = heapq.nsmallest(size + 1, candidates(), key=lambda pair: pair[0])
    more = len(page) > size
    page = page[:size]
    return [instance for _, instance in page], _token(page[-1][0]) if more else None


def list_instance_ids(
    instances: Iterable[Instance], request: pb.ListInstanceIdsRequest
) -> tuple[list[str], str | None]:
    """One page of ids of finished instances, by completion time, and the next token."""
    statuses = frozenset(request.runtimeStatus)
    done_from = us_of(request.completedTimeFrom) if request.HasField("completedTimeFrom") else None
    done_to = us_of(request.completedTimeTo) if request.HasField("completedTimeTo") else None
    after: _Key | None = None
    if request.HasField("lastInstanceKey") and request.lastInstanceKey.value:
        after = _parse_token(request.lastInstanceKey.value, "lastInstanceKey")
    size = _page_size(request.pageSize)

    def candidates() -> Iterable[_Key]:
        for instance in instances:
            status = instance.status
            if status not in TERMINAL_STATUSES or (statuses and status not in statuses):
                continue
            state = instance.state
            if not state.HasField("completedTimestamp"):
                continue
            completed = us_of(state.completedTimestamp)
            if done_from is not None and completed < done_from:
                continue
            if done_to is not None and completed >= done_to:
                continue
            key = (completed, instance.instance_id)
            if after is not None and key <= after:
                continue
            yield key

    page = heapq.nsmallest(size + 1, candidates())
    more = len(page) > size
    page = page[:size]
    return [instance_id for _, instance_id in page], _token(page[-1]) if more else None


def matches_purge_filter(instance: Instance, purge_filter: pb.PurgeInstanceFilter) -> bool:
    """Whether a purge by ``purge_filter`` removes ``instance`` (terminal ones only)."""
    if not instance.terminal:
        return False
    if purge_filter.runtimeStatus and instance.status not in purge_filter.runtimeStatus:
        return False
    created = _created_us(instance)
    if purge_filter.HasField("createdTimeFrom") and created < us_of(purge_filter.createdTimeFrom):
        return False
    return not (
        purge_filter.HasField("createdTimeTo") and created >= us_of(purge_filter.createdTimeTo)
    )
