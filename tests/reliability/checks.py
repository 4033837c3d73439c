"""Checks shared by the reliability tests."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from dtask_async.client import AsyncDurableTaskClient, OrchestrationStatus


async def count_completed(client: AsyncDurableTaskClient) -> int:
    """How many instances are COMPLETED."""
    states = await client.get_all_orchestration_states(
        runtime_status=[OrchestrationStatus.COMPLETED], page_size=1000
    )
    return len(states)


async def history_problems(client: AsyncDurableTaskClient, instance_id: str) -> list[str]:
    """What is wrong with the history of a finished instance: anything recorded twice
    (a duplicated step or output) or missing."""
    kinds: Counter[str] = Counter()
    scheduled: Counter[int] = Counter()
    answered: Counter[int] = Counter()
    async for event in client.get_orchestration_history(instance_id):
        kinds[event.kind] += 1
        if event.kind == "taskScheduled":
            scheduled[event.event_id] += 1
        elif event.kind in ("taskCompleted", "taskFailed"):
            answered[int(event.data.get("taskScheduledId", 0))] += 1
    problems = []
    for kind in ("executionStarted", "executionCompleted"):
        if kinds[kind] != 1:
            problems.append(f"{kind} recorded {kinds[kind]} times")
    for task_id, count in scheduled.items():
        if count != 1:
            problems.append(f"task {task_id} scheduled {count} times")
        if answered[task_id] != 1:
            problems.append(f"task {task_id} answered {answered[task_id]} times")
    for task_id in answered.keys() - scheduled.keys():
        problems.append(f"an answer for task {task_id}, which was never scheduled")
    return [f"{instance_id}: {problem}" for problem in problems]


async def check_all_completed(
    client: AsyncDurableTaskClient,
    expected: dict[str, Any],
    *,
    timeout: float,
    histories: Iterable[str] = (),
    concurrency: int = 64,
) -> None:
    """Assert every instance in ``expected`` completes with its expected output, and
    that the histories of ``histories`` record each step exactly once."""
    limit = asyncio.Semaphore(concurrency)
    wrong: list[str] = []

    async def check(instance_id: str, output: Any) -> None:
        async with limit:
            state = await client.wait_for_orchestration_completion(instance_id, timeout=timeout)
        if state is None:
            wrong.append(f"{instance_id}: gone")
        elif state.runtime_status is not OrchestrationStatus.COMPLETED:
            wrong.append(f"{instance_id}: {state.runtime_status.name} {state.failure_details}")
        elif json.loads(state.serialized_output or "null") != output:
            wrong.append(f"{instance_id}: output {state.serialized_output}, expected {output}")

    await asyncio.gather(*(check(i, output) for i, output in expected.items()))
    for instance_id in histories:
        wrong.extend(await history_problems(client, instance_id))
    assert not wrong, f"{len(wrong)} problems, first ones: {wrong[:10]}"


def expected_outputs(
    prefix: str, count: int, fn: Callable[[int], Any], start: int = 0
) -> dict[str, Any]:
    """``{f"{prefix}-{i}": fn(i)}`` for ``i`` in ``range(start, start + count)``."""
    return {f"{prefix}-{i}": fn(i) for i in range(start, start + count)}
