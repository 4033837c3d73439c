"""Promise 5: a payload above the message limit fails the call or the orchestration with
an error naming the size and the limit; nothing stalls, no other work is lost."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from dtask_async import PayloadTooLargeError, task
from dtask_async.backend import BackendOptions, EmbeddedBackend
from dtask_async.client import AsyncDurableTaskClient, OrchestrationStatus
from dtask_async.transport import ChannelOptions
from dtask_async.worker import AsyncDurableTaskWorker

LIMIT = 64 * 1024
BIG = 100_000
"""Characters in an oversized payload (its message is a little larger)."""


def big(ctx: task.ActivityContext, size: int) -> str:
    return "x" * size


def length(ctx: task.ActivityContext, text: str) -> int:
    return len(text)


def big_output(ctx: task.OrchestrationContext, size: int) -> str:
    return "x" * size


def big_activity_result(ctx: task.OrchestrationContext, size: int) -> Any:
    text = yield ctx.call_activity(big, input=size)
    return len(text)


def caught_activity_result(ctx: task.OrchestrationContext, size: int) -> Any:
    try:
        yield ctx.call_activity(big, input=size)
    except task.TaskFailedError as exc:
        return f"caught: {exc}"
    return "not caught"


def big_activity_input(ctx: task.OrchestrationContext, size: int) -> Any:
    return (yield ctx.call_activity(length, input="x" * size))


def growing_history(ctx: task.OrchestrationContext, size: int) -> Any:
    """Each result fits in a message; together they do not."""
    total = 0
    for _ in range(3):
        total += len((yield ctx.call_activity(big, input=size)))
    return total


def echo(ctx: task.OrchestrationContext, value: Any) -> Any:
    return value


ORCHESTRATORS = (
    big_output,
    big_activity_result,
    caught_activity_result,
    big_activity_input,
    growing_history,
    echo,
)


@dataclass
class Setup:
    client: AsyncDurableTaskClient
    limit_side: str


@pytest.fixture(params=["worker-limit", "server-limit"])
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    """A backend and a worker where one of the two has the small message limit."""
    server_limited = request.param == "server-limit"
    options = BackendOptions(max_message_size=LIMIT if server_limited else 16 * 1024 * 1024)
    channel = None if server_limited else ChannelOptions(max_send_message_bytes=LIMIT)
    async with (
        EmbeddedBackend(options=options) as backend,
        AsyncDurableTaskWorker(
            host_address=backend.address, channel_options=channel, shutdown_timeout=1
        ) as worker,
        AsyncDurableTaskClient(host_address=backend.address) as client,
    ):
        for orchestrator in ORCHESTRATORS:
            worker.add_orchestrator(orchestrator)
        worker.add_activity(big)
        worker.add_activity(length)
        await worker.start()
        yield Setup(client, request.param)


def assert_names_size_and_limit(message: str) -> None:
    assert f"{LIMIT:,}" in message, message
    sizes = [int(word.replace(",", "")) for word in message.split() if _is_size(word)]
    assert any(size > BIG for size in sizes), message


def _is_size(word: str) -> bool:
    return word.replace(",", "").isdigit() and "," in word


async def _finishes(client: AsyncDurableTaskClient, orchestrator: Any, value: Any) -> Any:
    instance_id = await client.schedule_new_orchestration(orchestrator, input=value)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=15)
    assert state is not None
    return state


async def _others_unaffected(client: AsyncDurableTaskClient) -> None:
    state = await _finishes(client, echo, {"still": "working"})
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == {"still": "working"}


async def test_oversized_orchestration_output_fails_the_orchestration(setup: Setup) -> None:
    """Promise (DESIGN §7): an orchestration whose output exceeds the message limit (the
    worker's or, unknown to the worker, the server's) ends FAILED with a
    PayloadTooLargeError naming the size and the limit, instead of being retried
    forever; other orchestrations keep completing."""
    state = await _finishes(setup.client, big_output, BIG)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "dtask_async.PayloadTooLargeError"
    assert_names_size_and_limit(state.failure_details.message)
    await _others_unaffected(setup.client)


async def test_oversized_activity_result_fails_the_activity(setup: Setup) -> None:
    """Promise (DESIGN §7): an activity result above the message limit (the worker's or
    the server's) fails the activity with a non-retriable PayloadTooLargeError naming
    the size and the limit: the orchestration sees a TaskFailedError it can catch, or
    fails with that message; nothing is redelivered forever."""
    state = await _finishes(setup.client, caught_activity_result, BIG)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    message = json.loads(state.serialized_output)
    assert message.startswith("caught: "), message
    assert "too large" in message
    assert_names_size_and_limit(message)

    state = await _finishes(setup.client, big_activity_result, BIG)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert_names_size_and_limit(state.failure_details.message)
    await _others_unaffected(setup.client)


async def test_oversized_activity_input_fails_the_orchestration(setup: Setup) -> None:
    """Promise (DESIGN §7): an orchestration step that schedules an activity with an
    input above the message limit fails the orchestration with an error naming the size
    and the limit."""
    state = await _finishes(setup.client, big_activity_input, BIG)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert_names_size_and_limit(state.failure_details.message)
    await _others_unaffected(setup.client)


async def test_history_beyond_the_message_limit_does_not_stall() -> None:
    """Promise (DESIGN §7): when an orchestration's history grows beyond the server's
    message limit although every single result fits, the orchestration still finishes
    (by history streaming) or fails with an error naming the size and the limit; it
    does not stall with its work item redelivered forever."""
    async with (
        EmbeddedBackend(options=BackendOptions(max_message_size=LIMIT)) as backend,
        AsyncDurableTaskWorker(host_address=backend.address, shutdown_timeout=1) as worker,
        AsyncDurableTaskClient(host_address=backend.address) as client,
    ):
        worker.add_orchestrator(growing_history)
        worker.add_activity(big)
        await worker.start()
        instance_id = await client.schedule_new_orchestration(growing_history, input=LIMIT // 2)
        state = await client.wait_for_orchestration_completion(instance_id, timeout=8)
        assert state is not None
        if state.runtime_status is OrchestrationStatus.FAILED:
            assert state.failure_details is not None
            assert f"{LIMIT:,}" in state.failure_details.message
        else:
            assert state.runtime_status is OrchestrationStatus.COMPLETED
            assert json.loads(state.serialized_output) == 3 * (LIMIT // 2)


@pytest.mark.parametrize("side", ["client-limit", "server-limit"])
async def test_oversized_client_payloads_are_refused(side: str) -> None:
    """Promise (DESIGN §7): an input, event payload or termination output above the
    message limit (the client's own, checked before sending, or the server's) fails the
    call with PayloadTooLargeError carrying the size and the limit; no instance is
    created and the instance receiving the event is not harmed."""
    server_limited = side == "server-limit"
    options = BackendOptions(max_message_size=LIMIT if server_limited else 16 * 1024 * 1024)
    channel = None if server_limited else ChannelOptions(max_send_message_bytes=LIMIT)
    async with (
        EmbeddedBackend(options=options) as backend,
        AsyncDurableTaskClient(host_address=backend.address, channel_options=channel) as client,
    ):
        with pytest.raises(PayloadTooLargeError) as info:
            await client.schedule_new_orchestration("echo", input="x" * BIG, instance_id="huge")
        assert info.value.limit == LIMIT
        assert info.value.size > BIG
        assert f"{info.value.size:,}" in str(info.value)
        assert f"{LIMIT:,}" in str(info.value)
        assert await client.get_orchestration_state("huge") is None

        waiting = await client.schedule_new_orchestration("echo", input=1, instance_id="small")
        with pytest.raises(PayloadTooLargeError) as info:
            await client.raise_orchestration_event(waiting, "data", data="x" * BIG)
        assert info.value.limit == LIMIT
        with pytest.raises(PayloadTooLargeError):
            await client.terminate_orchestration(waiting, output="x" * BIG)
        state = await client.get_orchestration_state(waiting)
        assert state is not None
        assert state.runtime_status is OrchestrationStatus.PENDING
