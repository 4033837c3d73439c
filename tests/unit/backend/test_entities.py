"""Entity ids, lock order and entity query paging."""

from __future__ import annotations

import grpc
import pytest

from dtask_async._proto import Int32Value, pb
from dtask_async.backend._entities import lock_order
from dtask_async.backend._entity_operations import _page
from dtask_async.backend._model import Entity
from dtask_async.backend._validation import RpcFailure, check_entity_id


def test_entity_ids_are_checked_and_names_lower_cased() -> None:
    assert check_entity_id("@Counter@Key") == "@counter@Key"
    assert check_entity_id("@c@key@with@ats") == "@c@key@with@ats"
    for bad in ("", "plain", "@name", "@@key", "@name@", "@n@\x00", "@n@" + "k" * 300):
        with pytest.raises(RpcFailure) as info:
            check_entity_id(bad)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_locks_are_taken_in_one_sorted_order_without_duplicates() -> None:
    assert lock_order(["@b@1", "@A@2", "@b@1", "@a@1"]) == ("@a@1", "@a@2", "@b@1")


ENTITIES = [
    Entity(f"@counter@{i:02d}", state=None if i % 4 == 0 else str(i), modified_us=1000 + i)
    for i in range(20)
] + [Entity("@account@x", state="1", modified_us=5000)]


def _all(query: pb.EntityQuery) -> list[str]:
    seen: list[str] = []
    while True:
        page, token = _page(ENTITIES, query)
        assert len(page) <= (query.pageSize.value if query.HasField("pageSize") else 100)
        seen.extend(e.entity_id for e in page)
        if token is None:
            return seen
        query.continuationToken.value = token


def test_entity_pages_cover_every_match_once_in_id_order() -> None:
    everything = _all(pb.EntityQuery(pageSize=Int32Value(value=3), includeTransient=True))
    assert everything == sorted(e.entity_id for e in ENTITIES)
    with_state = _all(pb.EntityQuery(pageSize=Int32Value(value=4)))
    assert with_state == sorted(e.entity_id for e in ENTITIES if e.state is not None)


def test_entity_filters() -> None:
    query = pb.EntityQuery(includeTransient=True)
    query.instanceIdStartsWith.value = "@counter@1"
    query.lastModifiedFrom.FromMicroseconds(1012)
    query.lastModifiedTo.FromMicroseconds(1015)
    assert _all(query) == ["@counter@12", "@counter@13", "@counter@14"]
    query = pb.EntityQuery()
    query.continuationToken.value = "0"  # "0" means: from the start
    assert len(_all(query)) == 16


def test_foreign_continuation_tokens_are_refused() -> None:
    query = pb.EntityQuery()
    query.continuationToken.value = "17"
    with pytest.raises(RpcFailure):
        _page(ENTITIES, query)
