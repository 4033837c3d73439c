"""``async def`` orchestrators: driven with ``coroutine.send()``, they must behave
exactly like their generator twins, work item by work item."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from dtask_async import task
from dtask_async._proto import pb

from .history import (
    T0,
    Harness,
    event_raised,
    output,
    resumed,
    sub_completed,
    summary,
    suspended,
    task_completed,
    task_failed,
    terminated,
    timer_fired,
)

POLICY = task.RetryPolicy(first_retry_interval=2, max_number_of_attempts=3)

# -- twins ------------------------------------------------------------------------------


def retry_gen(ctx: task.OrchestrationContext, _: Any):
    try:
        value = yield ctx.call_activity("flaky", retry_policy=POLICY)
    except task.TaskFailedError as e:
        return f"gave up: {e.details.message}"
    return value


async def retry_async(ctx: task.OrchestrationContext, _: Any):
    try:
        value = await ctx.call_activity("flaky", retry_policy=POLICY)
    except task.TaskFailedError as e:
        return f"gave up: {e.details.message}"
    return value


def events_gen(ctx: task.OrchestrationContext, _: Any):
    yield ctx.call_activity("prepare")
    first = yield ctx.wait_for_external_event("Go")
    second = yield ctx.wait_for_external_event("go")
    timer = ctx.create_timer(timedelta(minutes=1))
    third = ctx.wait_for_external_event("GO")
    winner = yield task.when_any([timer, third])
    return [first, second, winner == third]


async def events_async(ctx: task.OrchestrationContext, _: Any):
    await ctx.call_activity("prepare")
    first = await ctx.wait_for_external_event("Go")
    second = await ctx.wait_for_external_event("go")
    timer = ctx.create_timer(timedelta(minutes=1))
    third = ctx.wait_for_external_event("GO")
    winner = await task.when_any([timer, third])
    return [first, second, winner == third]


def children_gen(ctx: task.OrchestrationContext, n: int):
    results = yield task.when_all([ctx.call_sub_orchestrator("child", input=i) for i in range(n)])
    ctx.set_custom_status({"children": len(results)})
    ctx.send_event("audit", "done", data=results)
    return sum(results)


async def children_async(ctx: task.OrchestrationContext, n: int):
    results = await task.when_all([ctx.call_sub_orchestrator("child", input=i) for i in range(n)])
    ctx.set_custom_status({"children": len(results)})
    ctx.send_event("audit", "done", data=results)
    return sum(results)


def helper_gen(ctx: task.OrchestrationContext, _: Any):
    def step(name: str):
        value = yield ctx.call_activity(name)
        return value * 2

    a = yield from step("a")
    b = yield from step("b")
    return [a, b, ctx.new_uuid()]


async def helper_async(ctx: task.OrchestrationContext, _: Any):
    async def step(name: str) -> Any:
        value = await ctx.call_activity(name)
        return value * 2

    a = await step("a")
    b = await step("b")
    return [a, b, ctx.new_uuid()]


def loop_gen(ctx: task.OrchestrationContext, n: int):
    yield ctx.create_timer(timedelta(hours=1))
    ctx.continue_as_new(n + 1)


async def loop_async(ctx: task.OrchestrationContext, n: int):
    await ctx.create_timer(timedelta(hours=1))
    ctx.continue_as_new(n + 1)


TWINS: dict[
    str, tuple[Callable[..., Any], Callable[..., Any], Any, list[list[pb.HistoryEvent]]]
] = {
    "retry-success": (
        retry_gen,
        retry_async,
        None,
        [[task_failed(1)], [timer_fired(2, T0 + timedelta(seconds=3))], [task_completed(1, 7)]],
    ),
    "retry-exhausted": (
        retry_gen,
        retry_async,
        None,
        [
            [task_failed(1, "a")],
            [timer_fired(2, T0 + timedelta(seconds=3))],
            [task_failed(1, "b")],
            [timer_fired(3, T0 + timedelta(seconds=6))],
            [task_failed(1, "c")],
        ],
    ),
    "events": (
        events_gen,
        events_async,
        None,
        [
            [event_raised("GO", 1)],
            [suspended()],
            [event_raised("gO", 2)],
            [task_completed(1), resumed()],
            [event_raised("go", 3)],
        ],
    ),
    "children": (
        children_gen,
        children_async,
        3,
        [[sub_completed(2, 20)], [sub_completed(3, 30), sub_completed(1, 10)]],
    ),
    "helpers": (
        helper_gen,
        helper_async,
        None,
        [[task_completed(1, 1)], [task_completed(2, 2)]],
    ),
    "continue-as-new": (
        loop_gen,
        loop_async,
        5,
        [[timer_fired(1, T0 + timedelta(hours=1))]],
    ),
    "terminate": (events_gen, events_async, None, [[task_completed(1)], [terminated("stop")]]),
}


@pytest.mark.parametrize("name", list(TWINS))
def test_async_twin_gives_the_same_results(name: str) -> None:
    gen_fn, async_fn, input, script = TWINS[name]
    gen = Harness(gen_fn, instance_id="twin")
    coro = Harness(async_fn, instance_id="twin")
    assert gen.start(gen_fn, input) == coro.start(async_fn, input)
    for events in script:
        expected = gen.step(*events)
        assert coro.step(*events) == expected, summary(expected)
    assert gen.results[-1].is_complete
    assert coro.fallbacks == 0


def test_async_results_are_the_expected_values() -> None:
    h = Harness(helper_async)
    h.start(helper_async)
    h.step(task_completed(1, 1))
    assert output(h.step(task_completed(2, 2)))[:2] == [2, 4]

    h = Harness(retry_async)
    h.start(retry_async)
    assert summary(h.step(task_failed(1))) == [(2, "createTimer", "2024-05-06T07:08:12.123456Z")]


def test_async_orchestrator_without_awaits_completes_at_once() -> None:
    async def quick(ctx: task.OrchestrationContext, value: int) -> int:
        return value * 3

    assert output(Harness(quick).start(quick, 3)) == 9


def test_async_exception_fails_the_orchestration() -> None:
    async def broken(ctx: task.OrchestrationContext, _: Any) -> None:
        await ctx.call_activity("a")
        raise LookupError("gone")

    h = Harness(broken)
    h.start(broken)
    result = h.step(task_completed(1))
    complete = result.actions[-1].completeOrchestration
    assert complete.orchestrationStatus == pb.ORCHESTRATION_STATUS_FAILED
    assert (complete.failureDetails.errorType, complete.failureDetails.errorMessage) == (
        "LookupError",
        "gone",
    )


def test_async_generator_orchestrator_is_rejected() -> None:
    async def agen(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("a")

    result = Harness(agen).start(agen)
    complete = result.actions[-1].completeOrchestration
    assert complete.orchestrationStatus == pb.ORCHESTRATION_STATUS_FAILED
    assert "is an async generator" in complete.failureDetails.errorMessage


def test_is_replaying_in_async_orchestrators() -> None:
    seen: list[bool] = []

    async def orchestrator(ctx: task.OrchestrationContext, _: Any) -> None:
        seen.append(ctx.is_replaying)
        await ctx.call_activity("a")
        seen.append(ctx.is_replaying)

    h = Harness(orchestrator, incremental=False)
    h.start(orchestrator)
    h.step(task_completed(1))
    assert seen == [False, True, False]
