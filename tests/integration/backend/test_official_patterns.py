"""Real orchestrations, run by the official ``durabletask`` worker against our backend."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from durabletask.client import OrchestrationStatus

from dtask_async.backend import EmbeddedBackend

from . import flows
from .conftest import official_worker

TIMEOUT = 30


async def test_activity_chain(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.chain], activities=[flows.hello]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.chain, input="World")
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == "Hello Hello Hello World!!!"
    assert json.loads(state.serialized_input) == "World"
    assert state.created_at <= state.last_updated_at


async def test_history_shape_of_a_chain(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.chain], activities=[flows.hello]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.chain, input="x")
        await official_client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    history = await official_client.get_orchestration_history(instance_id)
    names = [type(event).__name__.removesuffix("Event") for event in history]
    episode = ["OrchestratorStarted", "TaskCompleted", "TaskScheduled", "OrchestratorCompleted"]
    assert names == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
        *episode,
        *episode,
        "OrchestratorStarted",
        "TaskCompleted",
        "OrchestratorCompleted",
        "ExecutionCompleted",
    ]


async def test_fan_out_fan_in(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.fan_out], activities=[flows.double, flows.total]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.fan_out, input=25)
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == sum(2 * i for i in range(25))


async def test_durable_timer(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(backend.address, orchestrators=[flows.sleeper]):
        instance_id = await official_client.schedule_new_orchestration(flows.sleeper, input=0.5)
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) >= 0.5
    history = await official_client.get_orchestration_history(instance_id)
    created = [e for e in history if type(e).__name__ == "TimerCreatedEvent"]
    fired = [e for e in history if type(e).__name__ == "TimerFiredEvent"]
    assert len(created) == len(fired) == 1
    assert fired[0].timestamp >= created[0].fire_at - timedelta(milliseconds=1)


async def test_event_raised_before_the_orchestrator_runs(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    instance_id = await official_client.schedule_new_orchestration(flows.approval)
    await official_client.raise_orchestration_event(instance_id, "approve", data=True)
    async with official_worker(backend.address, orchestrators=[flows.approval]):
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == {"approved": True}


async def test_event_raised_while_the_orchestrator_waits(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    async with official_worker(backend.address, orchestrators=[flows.approval]):
        instance_id = await official_client.schedule_new_orchestration(flows.approval)
        # RUNNING is recorded when the first episode is committed: the orchestrator is
        # then waiting for the event.
        started = await official_client.wait_for_orchestration_start(instance_id, timeout=TIMEOUT)
        assert started.runtime_status == OrchestrationStatus.RUNNING
        assert json.loads(started.serialized_custom_status) == "waiting for approval"
        await official_client.raise_orchestration_event(instance_id, "approve", data="yes")
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert json.loads(state.serialized_output) == {"approved": "yes"}
    assert json.loads(state.serialized_custom_status) == "approved"


async def test_events_are_delivered_in_order(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    instance_id = await official_client.schedule_new_orchestration(flows.two_events)
    await official_client.raise_orchestration_event(instance_id, "second", data=2)
    await official_client.raise_orchestration_event(instance_id, "first", data=1)
    async with official_worker(backend.address, orchestrators=[flows.two_events]):
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert json.loads(state.serialized_output) == [1, 2]


async def test_event_sent_by_another_orchestration(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    async with official_worker(backend.address, orchestrators=[flows.approval, flows.send_to]):
        target = await official_client.schedule_new_orchestration(flows.approval)
        await official_client.wait_for_orchestration_start(target, timeout=TIMEOUT)
        sender = await official_client.schedule_new_orchestration(flows.send_to, input=target)
        state = await official_client.wait_for_orchestration_completion(target, timeout=TIMEOUT)
        await official_client.wait_for_orchestration_completion(sender, timeout=TIMEOUT)
    assert json.loads(state.serialized_output) == {"approved": "from a friend"}
    history = await official_client.get_orchestration_history(sender)
    sent = [e for e in history if type(e).__name__ == "EventSentEvent"]
    assert len(sent) == 1
    assert sent[0].instance_id == target
    assert sent[0].name == "approve"


async def test_sub_orchestration(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.parent, flows.chain], activities=[flows.hello]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.parent, input="kid")
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == "parent got Hello Hello Hello kid!!!"
    child = await official_client.get_orchestration_state(f"{instance_id}-child")
    assert child.runtime_status == OrchestrationStatus.COMPLETED


async def test_sub_orchestration_failure_reaches_the_parent(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    async with official_worker(
        backend.address,
        orchestrators=[flows.parent_of_failure, flows.failing],
        activities=[flows.fail],
    ):
        instance_id = await official_client.schedule_new_orchestration(
            flows.parent_of_failure, input="child broke"
        )
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert "child broke" in json.loads(state.serialized_output)
    child = await official_client.get_orchestration_state(f"{instance_id}-child")
    assert child.runtime_status == OrchestrationStatus.FAILED


async def test_continue_as_new(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.counter], activities=[flows.double]
    ):
        instance_id = await official_client.schedule_new_orchestration(
            flows.counter, input={"n": 0, "until": 5}
        )
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output) == 5
    assert json.loads(state.serialized_input) == {"n": 5, "until": 5}
    history = await official_client.get_orchestration_history(instance_id)
    names = [type(e).__name__ for e in history]
    assert names.count("ExecutionStartedEvent") == 1  # only the last execution is kept
    assert "TaskScheduledEvent" not in names


async def test_failure_details(backend: EmbeddedBackend, official_client: Any) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.failing], activities=[flows.fail]
    ):
        instance_id = await official_client.schedule_new_orchestration(flows.failing, input="boom")
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.FAILED
    details = state.failure_details
    assert details is not None
    assert "boom" in details.message
    assert details.error_type.endswith("TaskFailedError")
    assert state.serialized_output is None


async def test_caught_failure_and_custom_status(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    async with official_worker(
        backend.address, orchestrators=[flows.caught_failure], activities=[flows.fail]
    ):
        instance_id = await official_client.schedule_new_orchestration(
            flows.caught_failure, input="oops"
        )
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    assert json.loads(state.serialized_output).startswith("compensated after builtins.ValueError")
    assert json.loads(state.serialized_custom_status) == "compensating"


async def test_unregistered_orchestrator_fails_cleanly(
    backend: EmbeddedBackend, official_client: Any
) -> None:
    async with official_worker(backend.address, orchestrators=[flows.chain]):
        instance_id = await official_client.schedule_new_orchestration("nobody_knows_me")
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.FAILED
    assert "nobody_knows_me" in state.failure_details.message


async def test_scheduled_start(backend: EmbeddedBackend, official_client: Any) -> None:
    start_at = datetime.now(timezone.utc) + timedelta(seconds=1)
    async with official_worker(
        backend.address, orchestrators=[flows.chain], activities=[flows.hello]
    ):
        instance_id = await official_client.schedule_new_orchestration(
            flows.chain, input="later", start_at=start_at
        )
        pending = await official_client.get_orchestration_state(instance_id)
        assert pending.runtime_status == OrchestrationStatus.PENDING
        state = await official_client.wait_for_orchestration_completion(
            instance_id, timeout=TIMEOUT
        )
    assert state.runtime_status == OrchestrationStatus.COMPLETED
    history = await official_client.get_orchestration_history(instance_id)
    assert history[0].timestamp >= start_at - timedelta(milliseconds=1)


def _tagged_double(tag: str, seen: list[str]) -> Any:
    def double(ctx: Any, value: int) -> int:
        seen.append(tag)
        return value * 2

    return double


async def test_two_workers_share_the_work(backend: EmbeddedBackend, official_client: Any) -> None:
    seen: list[str] = []
    first, second = _tagged_double("first", seen), _tagged_double("second", seen)
    async with (
        official_worker(
            backend.address, orchestrators=[flows.fan_out], activities=[first, flows.total]
        ),
        official_worker(
            backend.address, orchestrators=[flows.fan_out], activities=[second, flows.total]
        ),
    ):
        ids = [
            await official_client.schedule_new_orchestration(flows.fan_out, input=20)
            for _ in range(5)
        ]
        for instance_id in ids:
            state = await official_client.wait_for_orchestration_completion(
                instance_id, timeout=TIMEOUT
            )
            assert json.loads(state.serialized_output) == sum(2 * i for i in range(20))
    assert len(seen) == 100
    assert {"first", "second"} <= set(seen)
