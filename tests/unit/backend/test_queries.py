"""Paging of QueryInstances and ListInstanceIds is stable and complete."""

from __future__ import annotations

import grpc
import pytest

from dtask_async._proto import pb
from dtask_async.backend import _events as ev
from dtask_async.backend._model import Instance
from dtask_async.backend._queries import list_instance_ids, matches_purge_filter, query_instances
from dtask_async.backend._validation import RpcFailure


def _instance(
    instance_id: str, created: int, status: int, completed: int | None = None
) -> Instance:
    state = pb.OrchestrationState(instanceId=instance_id, name="o")
    state.orchestrationStatus = status  # type: ignore[assignment]
    state.createdTimestamp.CopyFrom(ev.ts(created))
    if completed is not None:
        state.completedTimestamp.CopyFrom(ev.ts(completed))
    return Instance(state, generation=1)


INSTANCES = [
    _instance(f"id-{i:02d}", created=1000 + i // 2, status=i % 3, completed=5000 - i)
    for i in range(30)
]


def test_query_pages_cover_everything_once() -> None:
    seen: list[str] = []
    token = None
    while True:
        query = pb.InstanceQuery(maxInstanceCount=7)
        if token:
            query.continuationToken.value = token
        page, token = query_instances(INSTANCES, query)
        assert len(page) <= 7
        seen.extend(i.instance_id for i in page)
        if token is None:
            break
    assert seen == [i.instance_id for i in INSTANCES]  # created, then id order


def test_query_filters() -> None:
    query = pb.InstanceQuery(runtimeStatus=[pb.ORCHESTRATION_STATUS_COMPLETED])
    query.instanceIdPrefix.value = "id-1"
    query.createdTimeFrom.CopyFrom(ev.ts(1005))
    page, token = query_instances(INSTANCES, query)
    assert token is None
    assert [i.instance_id for i in page] == ["id-10", "id-13", "id-16", "id-19"]


def test_list_ids_of_finished_instances_by_completion() -> None:
    request = pb.ListInstanceIdsRequest(pageSize=4)
    collected: list[str] = []
    while True:
        ids, token = list_instance_ids(INSTANCES, request)
        collected.extend(ids)
        if token is None:
            break
        request.lastInstanceKey.value = token
    finished = [i for i in INSTANCES if i.terminal]
    assert collected == [
        i.instance_id for i in sorted(finished, key=lambda i: 5000 - int(i.instance_id[3:]))
    ]


def test_foreign_tokens_are_invalid_arguments() -> None:
    query = pb.InstanceQuery()
    query.continuationToken.value = "abc"
    with pytest.raises(RpcFailure) as info:
        query_instances(INSTANCES, query)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_purge_filter_only_matches_finished_instances() -> None:
    purge_filter = pb.PurgeInstanceFilter()
    matched = [i.instance_id for i in INSTANCES if matches_purge_filter(i, purge_filter)]
    assert matched == [i.instance_id for i in INSTANCES if i.terminal]
