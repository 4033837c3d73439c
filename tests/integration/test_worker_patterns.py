"""The seed patterns, run by our worker and client, against every backend."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from dtask_async import OrchestrationStatus
from dtask_async.client import AsyncDurableTaskClient, OrchestrationState
from dtask_async.worker import AsyncDurableTaskWorker
from tests.integration import workflows as wf

TIMEOUT = 30


async def run(
    client: AsyncDurableTaskClient, orchestrator: Any, input: Any = None, **kwargs: Any
) -> OrchestrationState:
    instance_id = await client.schedule_new_orchestration(orchestrator, input=input, **kwargs)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    return state


def _key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_function_chaining(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.chained_workflow)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.result == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


async def test_fan_out_fan_in(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.fanout_fanin_workflow, 8)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.result["results"] == [i * 2 for i in range(8)]
    assert state.result["total"] == 56


async def test_batched_fan_out(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.batched_fanout_workflow, 35)
    assert state.result == {"total": sum(i * 2 for i in range(35)), "count": 35}


async def test_human_interaction_approved(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    order = wf.Order(cost=2000, product="Server", quantity=60)
    instance_id = await client.schedule_new_orchestration(wf.purchase_order_workflow, input=order)
    await client.wait_for_orchestration_start(instance_id, timeout=TIMEOUT)
    await client.raise_orchestration_event(
        instance_id, "approval_received", data=wf.Approval("manager@company.com")
    )
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.result == "Approved by 'manager@company.com'"


async def test_human_interaction_timeout_and_auto_approval(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    timed_out = await run(client, wf.purchase_order_workflow, wf.Order(5000, "Rack", 1))
    assert timed_out.result == "Canceled - approval timeout"
    cheap = await run(client, wf.purchase_order_workflow, wf.Order(10, "Cable", 1))
    assert cheap.result == "Auto-approved"


async def test_durable_timer(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.delayed_workflow, 0.5)
    assert state.result["waited"] >= 0.5


async def test_scheduled_execution(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    at = datetime.now(timezone.utc) + timedelta(seconds=0.5)
    state = await run(client, wf.scheduled_workflow, at)
    assert state.result.startswith("Hello scheduled! at or after")
    assert state.last_updated_at >= at


async def test_scheduled_start(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    start_at = datetime.now(timezone.utc) + timedelta(seconds=1)
    state = await run(client, wf.chained_workflow, start_at=start_at)
    assert state.runtime_status is OrchestrationStatus.COMPLETED


async def test_sub_orchestrations(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.parent_orchestration, ["a", "b", "c"])
    assert state.result == [f"Goodbye Hello {x}!!" for x in "abc"]


async def test_eternal_orchestration(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.eternal_orchestration, 0)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.result == "stopped after 3"


async def test_monitoring(worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient) -> None:
    state = await run(client, wf.monitoring_workflow, _key("job"))
    assert state.result == {"status": "success", "attempts": 3}


async def test_retry_policy(worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient) -> None:
    key = _key("retry")
    state = await run(client, wf.retry_workflow, key)
    assert state.result == f"{key} succeeded on attempt 3"
    assert wf.ATTEMPTS[key] == 3


async def test_retry_exhausted(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    key = _key("exhaust")
    state = await run(client, wf.retry_exhausted_workflow, key)
    assert state.result == "gave up: ConnectionError"
    assert wf.ATTEMPTS[key] == 2


async def test_error_handling_with_compensation(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.orchestrator_with_error_handling, "order-7")
    assert state.result == "Compensated"
    assert "cannot process order-7" in state.custom_status["error"]


async def test_unhandled_exception_fails_with_details(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.failing_orchestration, "k")
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "KeyError"
    assert "missing k" in state.failure_details.message
    assert "failing_orchestration" in (state.failure_details.stack_trace or "")


async def test_versioning(worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient) -> None:
    v1 = await run(client, "versioned_orchestration", "Ann", version="1.0.0")
    v2 = await run(client, "versioned_orchestration", "Ann", version="2.0.0")
    assert v1.result == {"version": "1.0.0", "results": ["Hello Ann!"]}
    assert v2.result == {"version": "2.0.0", "results": ["Hello Ann!", "Goodbye Ann!"]}


async def test_deterministic_helpers(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.good_orchestration)
    first, second = state.result["ids"]
    assert first != second
    assert uuid.UUID(first).version == 5


async def test_async_def_orchestrator(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, wf.async_chain, "Kyiv")
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    assert state.result[0] == "Hello Kyiv!"
    assert state.result[1].startswith("async-")
    assert state.result[2:] == ["Hello a!", "Hello b!"]


async def test_async_activity_runs_on_the_callers_loop(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    key = _key("loop")
    state = await run(client, wf.loop_probe, key)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert wf.LOOPS[key] is asyncio.get_running_loop()
    assert "MainThread" in state.result


async def test_case_insensitive_buffered_event(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    instance_id = await client.schedule_new_orchestration(wf.wait_for_approval)
    await client.raise_event(instance_id, "APPROVAL", {"ok": True})
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.result == {"ok": True}


async def test_unknown_orchestrator_fails_with_its_name(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    state = await run(client, "no_such_orchestrator")
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "no_such_orchestrator" in state.failure_details.message


async def test_many_orchestrations_at_once(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    ids = [await client.schedule_new_orchestration(wf.chained_workflow) for _ in range(30)]
    # The official backend serves blocking waits from 10 threads: wait in small groups.
    for i in range(0, len(ids), 5):
        states = await asyncio.gather(
            *(client.wait_for_orchestration_completion(x, timeout=TIMEOUT) for x in ids[i : i + 5])
        )
        assert all(
            s is not None and s.runtime_status is OrchestrationStatus.COMPLETED for s in states
        )
