"""The client's entity methods without a server: arguments, results, paging helpers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dtask_async import InvalidInstanceIdError, PayloadError, client as client_module
from dtask_async._proto import pb
from dtask_async.client import (
    AsyncDurableTaskClient,
    CleanEntityStorageResult,
    EntityMetadata,
    EntityQuery,
)
from dtask_async.client._client import _entity_prefix, _next_token
from dtask_async.entities import EntityInstanceId


def test_entity_names_are_exported_by_the_client_package() -> None:
    for name in ("CleanEntityStorageResult", "EntityMetadata", "EntityQuery"):
        assert name in client_module.__all__
    assert EntityQuery().include_state is True
    assert CleanEntityStorageResult(1, 2).orphaned_locks_released == 2


def test_metadata_from_the_protocol_message() -> None:
    message = pb.EntityMetadata(instanceId="@counter@k", backlogQueueSize=2)
    message.lastModifiedTime.seconds = 1_700_000_000
    message.lockedBy.value = "section-1"
    message.serializedState.value = '{"n": 3}'
    metadata = EntityMetadata.from_pb(message, includes_state=True)
    assert metadata.id == EntityInstanceId("counter", "k")
    assert metadata.instance_id == "@counter@k"
    assert metadata.last_modified == dt.datetime.fromtimestamp(1_700_000_000, dt.timezone.utc)
    assert (metadata.backlog_queue_size, metadata.locked_by) == (2, "section-1")
    assert metadata.state == {"n": 3}
    assert metadata.get_state(dict) == {"n": 3}
    bare = EntityMetadata.from_pb(pb.EntityMetadata(instanceId="@counter@k"), includes_state=False)
    assert (bare.locked_by, bare.serialized_state, bare.state) == (None, None, None)
    with pytest.raises(InvalidInstanceIdError):
        EntityMetadata.from_pb(pb.EntityMetadata(instanceId="plain"), includes_state=False)


def test_prefixes_lower_the_entity_name_only() -> None:
    assert _entity_prefix("@Counter@Key") == "@counter@Key"
    assert _entity_prefix("@COUNT") == "@count"
    assert _entity_prefix("plain") == "plain"
    assert _entity_prefix("") is None
    assert _entity_prefix(None) is None


def _page(token: str | None) -> Any:
    response = pb.QueryEntitiesResponse()
    if token is not None:
        response.continuationToken.value = token
    return response


def test_paging_stops_on_no_token_zero_or_a_repeat() -> None:
    assert _next_token(_page(None), None) is None
    assert _next_token(_page(""), None) is None
    assert _next_token(_page("0"), None) is None
    assert _next_token(_page("2"), None) == "2"
    assert _next_token(_page("2"), "2") is None


async def test_arguments_are_checked_before_anything_is_sent() -> None:
    async with AsyncDurableTaskClient(host_address="localhost:1") as client:
        with pytest.raises(InvalidInstanceIdError, match="'@name@key'"):
            await client.signal_entity("counter", "add")
        with pytest.raises(TypeError, match="EntityInstanceId"):
            await client.get_entity(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="operation_name"):
            await client.signal_entity(EntityInstanceId("counter", "k"), "")
        with pytest.raises(PayloadError, match="input of operation 'add'"):
            await client.signal_entity(EntityInstanceId("counter", "k"), "add", object())
        with pytest.raises(ValueError, match="page_size"):
            [e async for e in client.query_entities(page_size=0)]
        with pytest.raises(TypeError, match="not both"):
            await client.get_all_entities(EntityQuery(), include_state=False)
