"""Every client operation, with the official worker running the orchestrations,
against the official in-memory backend and against ours."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib
import uuid
from collections import namedtuple
from collections.abc import AsyncIterator

import pytest

from dtask_async import (
    InvalidInstanceIdError,
    OrchestrationFailedError,
    OrchestrationNotFoundError,
    PayloadError,
    PayloadTooLargeError,
    RPCTimeoutError,
    ServerUnavailableError,
)
from dtask_async.client import (
    AsyncDurableTaskClient,
    OrchestrationQuery,
    OrchestrationStatus,
)
from dtask_async.transport import ChannelOptions
from tests.conftest import free_port
from tests.integration import official_workflows as wf
from tests.integration.conftest import OfficialServer, wait_for_status

TIMEOUT = 30


@pytest.fixture
async def client(official_server: OfficialServer) -> AsyncIterator[AsyncDurableTaskClient]:
    async with AsyncDurableTaskClient(host_address=official_server.address) as client:
        yield client


def _id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclasses.dataclass
class Order:
    product: str
    quantity: int
    cost: float


async def test_schedule_and_wait_for_completion(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.hello_cities, input=None)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.name == "hello_cities"
    assert state.instance_id == instance_id
    assert state.result == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert state.serialized_output == '["Hello Tokyo!", "Hello Seattle!", "Hello London!"]'
    assert state.custom_status == {"cities": 3}
    assert state.created_at.tzinfo is not None
    assert state.created_at <= state.last_updated_at
    assert state.failure_details is None
    state.raise_if_failed()


async def test_schedule_by_name_with_id_version_and_dataclass_input(
    client: AsyncDurableTaskClient,
) -> None:
    instance_id = _id()
    order = Order("widget", 3, 9.5)
    returned = await client.schedule_new_orchestration(
        "echo", input=order, instance_id=instance_id, version="2.0.0", tags={"team": "a"}
    )
    assert returned == instance_id
    state = await client.wait_for_orchestration_completion(
        instance_id, timeout=dt.timedelta(seconds=TIMEOUT)
    )
    assert state is not None
    assert state.result["version"] == "2.0.0"
    assert state.result["input"]["product"] == "widget"
    assert state.input.quantity == 3  # decoded back as an object with attributes
    assert state.get_input(Order) == order


async def test_namedtuple_event_data_reaches_the_orchestrator(
    client: AsyncDurableTaskClient,
) -> None:
    approval = namedtuple("Approval", ["approver"])
    instance_id = await client.schedule_new_orchestration(wf.wait_for_approval)
    await client.wait_for_orchestration_start(instance_id, timeout=TIMEOUT)
    await client.raise_orchestration_event(
        instance_id, "approval", data=approval("manager@company.com")
    )
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.result == {"approved_by": {"approver": "manager@company.com"}}


async def test_raise_event_seed_spelling(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.wait_for_approval)
    await client.raise_event(instance_id=instance_id, event_name="approval", data="alice")
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.result == {"approved_by": "alice"}


async def test_wait_for_start_returns_running_state(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.wait_long)
    state = await client.wait_for_orchestration_start(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.RUNNING
    await client.terminate_orchestration(instance_id)


async def test_wait_timeout_raises_timeout_error(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.wait_long)
    with pytest.raises(TimeoutError) as info:
        await client.wait_for_orchestration_completion(instance_id, timeout=0.5)
    assert isinstance(info.value, RPCTimeoutError)
    assert instance_id in str(info.value)
    await client.terminate_orchestration(instance_id)


async def test_get_state_of_unknown_instance_is_none(client: AsyncDurableTaskClient) -> None:
    assert await client.get_orchestration_state(_id("missing")) is None


async def test_get_state_without_payloads(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.echo, input={"k": 1})
    await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    state = await client.get_orchestration_state(instance_id, fetch_payloads=False)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.serialized_input is None
    full = await client.get_orchestration_state(instance_id)
    assert full is not None
    assert full.input == {"k": 1}


async def test_terminate_with_output_and_reason(client: AsyncDurableTaskClient) -> None:
    first = await client.schedule_new_orchestration(wf.wait_long)
    second = await client.schedule_new_orchestration(wf.wait_long)
    await client.wait_for_orchestration_start(first, timeout=TIMEOUT)
    await client.terminate_orchestration(first, output="User cancelled")
    await client.terminate_orchestration(instance_id=second, reason="Cancelled by user")
    for instance_id, expected in ((first, "User cancelled"), (second, "Cancelled by user")):
        state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
        assert state is not None
        assert state.runtime_status is OrchestrationStatus.TERMINATED
        assert state.result == expected


async def test_terminate_recursive_ends_the_child(
    client: AsyncDurableTaskClient, official_server: OfficialServer
) -> None:
    if official_server.kind == "official":
        pytest.skip("the official in-memory backend does not implement recursive termination")
    parent = await client.schedule_new_orchestration(wf.parent_waits_for_child)
    # The child exists once the parent's first episode has run.
    await wait_for_status(client, f"{parent}-child", OrchestrationStatus.RUNNING)
    await client.terminate_orchestration(parent, recursive=True)
    state = await client.wait_for_orchestration_completion(f"{parent}-child", timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.TERMINATED


async def test_suspend_and_resume(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.wait_for_approval)
    await client.wait_for_orchestration_start(instance_id, timeout=TIMEOUT)
    await client.suspend_orchestration(instance_id, reason="maintenance")
    # The worker applies the suspension in its next episode.
    state = await wait_for_status(client, instance_id, OrchestrationStatus.SUSPENDED)
    assert state.runtime_status is OrchestrationStatus.SUSPENDED
    await client.raise_orchestration_event(instance_id, "approval", data="bob")
    await client.resume_orchestration(instance_id=instance_id, reason="done")
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.result == {"approved_by": "bob"}


async def test_failed_orchestration_details(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.failing, input="boom")
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "boom" in state.failure_details.message
    with pytest.raises(OrchestrationFailedError, match="boom"):
        state.raise_if_failed()


async def test_restart_same_and_new_id(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.echo, input=5)
    await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    same = await client.restart_orchestration(instance_id)
    assert same == instance_id
    state = await client.wait_for_orchestration_completion(same, timeout=TIMEOUT)
    assert state is not None
    assert state.result["input"] == 5
    other = await client.restart_orchestration(instance_id, restart_with_new_instance_id=True)
    assert other != instance_id
    state = await client.wait_for_orchestration_completion(other, timeout=TIMEOUT)
    assert state is not None
    assert state.result["input"] == 5


async def test_rewind_retries_the_failed_activity(client: AsyncDurableTaskClient) -> None:
    key = _id("flaky")
    instance_id = await client.schedule_new_orchestration(wf.flaky, input=key)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.FAILED
    await client.rewind_orchestration(instance_id, reason="try again")
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.result == "ok after 2"


async def test_purge_single_instance(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.echo, input=1)
    await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    result = await client.purge_orchestration(instance_id)
    assert result.deleted_instance_count == 1
    assert await client.get_orchestration_state(instance_id) is None


async def test_purge_by_filter(client: AsyncDurableTaskClient) -> None:
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    ids = [await client.schedule_new_orchestration(wf.echo, input=i) for i in range(3)]
    for instance_id in ids:
        await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    result = await client.purge_orchestrations_by(
        created_time_from=start, runtime_status=[OrchestrationStatus.COMPLETED]
    )
    assert result.deleted_instance_count >= 3
    for instance_id in ids:
        assert await client.get_orchestration_state(instance_id) is None


async def test_query_instances_pages_transparently(client: AsyncDurableTaskClient) -> None:
    prefix = _id("query")
    ids = {
        await client.schedule_new_orchestration(wf.echo, input=i, instance_id=f"{prefix}-{i}")
        for i in range(7)
    }
    for instance_id in ids:
        await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    seen = [
        state.instance_id
        async for state in client.query_instances(instance_id_prefix=prefix, page_size=3)
    ]
    assert sorted(seen) == sorted(ids)
    completed = await client.get_all_orchestration_states(
        OrchestrationQuery(
            instance_id_prefix=prefix,
            runtime_status=[OrchestrationStatus.COMPLETED],
            fetch_inputs_and_outputs=True,
        )
    )
    assert {s.instance_id for s in completed} == ids
    assert {s.input for s in completed} == set(range(7))
    none_running = await client.get_all_orchestration_states(
        instance_id_prefix=prefix, runtime_status=[OrchestrationStatus.RUNNING]
    )
    assert none_running == []


async def test_list_instance_ids_pages(client: AsyncDurableTaskClient) -> None:
    ids = [await client.schedule_new_orchestration(wf.echo, input=i) for i in range(4)]
    for instance_id in ids:
        await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    found: list[str] = []
    token = None
    for _ in range(1000):
        page = await client.list_instance_ids(
            runtime_status=[OrchestrationStatus.COMPLETED], page_size=2, continuation_token=token
        )
        found.extend(page.items)
        token = page.continuation_token
        if token is None:
            break
    assert set(ids) <= set(found)


async def test_history_is_streamed(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.hello_cities)
    await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    events = [e async for e in client.get_orchestration_history(instance_id)]
    kinds = [e.kind for e in events]
    assert kinds[0] in ("orchestratorStarted", "executionStarted")
    assert "executionStarted" in kinds
    assert kinds.count("taskScheduled") == 3
    assert kinds.count("taskCompleted") == 3
    assert "executionCompleted" in kinds
    scheduled = [e for e in events if e.kind == "taskScheduled"]
    assert {e.data["name"] for e in scheduled} == {"say_hello"}


async def test_history_is_awaited_as_a_list(client: AsyncDurableTaskClient) -> None:
    """``await client.get_orchestration_history(id)``, as with the official async client."""
    instance_id = await client.schedule_new_orchestration(wf.hello_cities)
    await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    events = await client.get_orchestration_history(instance_id)
    assert isinstance(events, list)
    streamed = [e async for e in client.get_orchestration_history(instance_id)]
    assert events == streamed
    # Each event goes back to the protocol message it came from.
    assert [e.to_pb().WhichOneof("eventType") for e in events] == [e.kind for e in events]
    assert [type(e).from_pb(e.to_pb()) for e in events] == events


async def test_history_of_an_unknown_instance(client: AsyncDurableTaskClient) -> None:
    with pytest.raises(OrchestrationNotFoundError):
        await client.get_orchestration_history(_id("nobody"))
    with pytest.raises(OrchestrationNotFoundError):
        async for _ in client.get_orchestration_history(_id("nobody")):
            pass


async def test_history_is_read_once(client: AsyncDurableTaskClient) -> None:
    instance_id = await client.schedule_new_orchestration(wf.hello_cities)
    await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    history = client.get_orchestration_history(instance_id)
    assert await history
    with pytest.raises(RuntimeError, match="already read"):
        await history


async def test_raise_event_on_unknown_instance(client: AsyncDurableTaskClient) -> None:
    with pytest.raises(OrchestrationNotFoundError):
        await client.raise_orchestration_event(_id("nobody"), "approval", data=1)


async def test_unserializable_input_fails_before_sending(client: AsyncDurableTaskClient) -> None:
    instance_id = _id()
    with pytest.raises(TypeError) as info:
        await client.schedule_new_orchestration(
            wf.echo, input={"lock": object()}, instance_id=instance_id
        )
    assert isinstance(info.value, PayloadError)
    assert "object" in str(info.value)
    assert "['lock']" in str(info.value)
    assert await client.get_orchestration_state(instance_id) is None


@pytest.mark.parametrize("bad", ["", "a" * 300, "tab\there"])
async def test_invalid_instance_ids(client: AsyncDurableTaskClient, bad: str) -> None:
    with pytest.raises(InvalidInstanceIdError):
        await client.schedule_new_orchestration(wf.echo, instance_id=bad)


async def test_oversized_input_fails_with_size_and_limit(official_server: OfficialServer) -> None:
    options = ChannelOptions(max_send_message_bytes=64 * 1024)
    async with AsyncDurableTaskClient(
        host_address=official_server.address, channel_options=options
    ) as client:
        with pytest.raises(PayloadTooLargeError) as info:
            await client.schedule_new_orchestration(wf.echo, input="x" * 100_000)
    assert "65,536" in str(info.value)
    assert info.value.limit == 65536
    assert info.value.size > 100_000


async def test_unreachable_server_names_the_address() -> None:
    address = f"localhost:{free_port()}"
    async with AsyncDurableTaskClient(host_address=address) as client:
        with pytest.raises(ServerUnavailableError) as info:
            await client.get_orchestration_state("anything")
    assert address in str(info.value)


async def test_closed_client_cannot_be_reused(official_server: OfficialServer) -> None:
    client = AsyncDurableTaskClient(host_address=official_server.address)
    async with client:
        assert await client.get_orchestration_state(_id()) is None
    await client.aclose()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        async with client:
            pass
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_orchestration_state(_id())


async def test_history_document_of_a_server_instance(
    client: AsyncDurableTaskClient, tmp_path: pathlib.Path
) -> None:
    from dtask_async.history import HistoryDocument, fetch_history_document

    instance_id = await client.schedule_new_orchestration(wf.hello_cities)
    await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    document = await fetch_history_document(client, instance_id)
    assert document.instance.name == "hello_cities"
    assert document.instance.runtime_status is OrchestrationStatus.COMPLETED
    assert document.events == await client.get_orchestration_history(instance_id)
    assert HistoryDocument.read(document.write(tmp_path / "h.json")) == document
    with pytest.raises(OrchestrationNotFoundError):
        await fetch_history_document(client, _id("nobody"))
