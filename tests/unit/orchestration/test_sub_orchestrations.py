"""Sub-orchestrations: instance ids, results, failures and retries."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from dtask_async import task

from .history import (
    T0,
    Harness,
    failure,
    output,
    sub_completed,
    sub_failed,
    summary,
    timer_fired,
    ts,
)


@dataclass
class Receipt:
    total: float


@task.orchestration
def child_orchestration(ctx: task.OrchestrationContext, data: str):
    r = yield ctx.call_activity("activity_a", input=data)
    return r


@task.orchestration
def parent(ctx: task.OrchestrationContext, items: list[str]):
    tasks = [ctx.call_sub_orchestrator(child_orchestration, input=item) for item in items]
    results = yield task.when_all(tasks)
    return results


@task.orchestration(name="parent")
async def parent_async(ctx: task.OrchestrationContext, items: list[str]):
    tasks = [ctx.call_sub_orchestrator(child_orchestration, input=item) for item in items]
    return await task.when_all(tasks)


@pytest.mark.parametrize("orchestrator", [parent, parent_async], ids=["generator", "async"])
def test_default_child_instance_ids_follow_the_sequence_number(
    orchestrator: Callable[..., Any],
) -> None:
    h = Harness(orchestrator, instance_id="order-42")
    first = h.start("parent", ["a", "b"])
    assert summary(first) == [
        (1, "createSubOrchestration", "child_orchestration", "order-42:0001"),
        (2, "createSubOrchestration", "child_orchestration", "order-42:0002"),
    ]
    assert json.loads(first.actions[1].createSubOrchestration.input.value) == "b"
    h.step(sub_completed(2, "B"))
    assert output(h.step(sub_completed(1, "A"))) == ["A", "B"]


def test_child_ids_use_four_hex_digits() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        tasks = [ctx.call_sub_orchestrator("child") for _ in range(11)]
        yield task.when_all(tasks)

    result = Harness(orchestrator, instance_id="p").start(orchestrator)
    assert summary(result)[-1] == (11, "createSubOrchestration", "child", "p:000b")


def test_explicit_instance_id_version_and_keyword_spellings() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        a = ctx.call_sub_orchestration(
            orchestration=child_orchestration, input="x", instance_id="child-123", version="2"
        )
        b = ctx.call_sub_orchestrator(orchestrator="by_name")
        results = yield task.when_all([a, b])
        return results

    h = Harness(orchestrator)
    first = h.start(orchestrator)
    assert summary(first) == [
        (1, "createSubOrchestration", "child_orchestration", "child-123"),
        (2, "createSubOrchestration", "by_name", "inst:0002"),
    ]
    assert first.actions[0].createSubOrchestration.version.value == "2"
    assert not first.actions[1].createSubOrchestration.HasField("version")
    h.step(sub_completed(1, 1))
    assert output(h.step(sub_completed(2))) == [1, None]


def test_orchestrator_must_be_given_exactly_once() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        errors = []
        for kwargs in ({}, {"orchestrator": "a", "orchestration": "b"}):
            try:
                ctx.call_sub_orchestrator(**kwargs)
            except TypeError as e:
                errors.append(str(e))
        return errors

    errors = output(Harness(orchestrator).start(orchestrator))
    assert len(errors) == 2
    assert all("takes the orchestrator once" in e for e in errors)


def test_invalid_child_instance_id_raises_at_the_call_site() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            ctx.call_sub_orchestrator("child", instance_id="bad\nid")
        except ValueError as e:
            return type(e).__name__
        return "no error"  # pragma: no cover

    assert output(Harness(orchestrator).start(orchestrator)) == "InvalidInstanceIdError"


def test_child_failure_is_raised_in_the_parent() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            yield ctx.call_sub_orchestrator(child_orchestration, input="x")
        except task.TaskFailedError as e:
            return [str(e), e.details.error_type, e.details.message]
        return "no error"  # pragma: no cover

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(sub_failed(1, "missing key", "KeyError"))) == [
        "sub-orchestration 'child_orchestration' (task 1) failed: missing key",
        "KeyError",
        "missing key",
    ]


def test_uncaught_child_failure_fails_the_parent_with_the_child_details() -> None:
    h = Harness(parent)
    h.start(parent, ["a"])
    details = failure(h.step(sub_failed(1, "child broke", "KeyError")))
    assert (details.errorType, details.errorMessage) == ("KeyError", "child broke")


def test_child_retry_reuses_the_instance_id_and_sequence_number() -> None:
    policy = task.RetryPolicy(first_retry_interval=timedelta(seconds=30), max_number_of_attempts=2)

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        return (yield ctx.call_sub_orchestrator("child", retry_policy=policy))

    h = Harness(orchestrator)
    assert summary(h.start(orchestrator)) == [(1, "createSubOrchestration", "child", "inst:0001")]
    wait = h.step(sub_failed(1))
    assert summary(wait) == [(2, "createTimer", ts(T0 + timedelta(seconds=31)))]
    again = h.step(timer_fired(2, T0 + timedelta(seconds=31)), advance=timedelta(seconds=30))
    assert summary(again) == [(1, "createSubOrchestration", "child", "inst:0001")]
    assert output(h.step(sub_completed(1, "ok"))) == "ok"


def test_sub_orchestration_result_uses_the_generator_return_annotation() -> None:
    def typed_child(ctx: task.OrchestrationContext, _: Any) -> Generator[Any, Any, Receipt]:
        yield ctx.call_activity("x")  # pragma: no cover
        return Receipt(1.0)  # pragma: no cover

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        receipt = yield ctx.call_sub_orchestrator(typed_child)
        return type(receipt).__name__

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(sub_completed(1, {"total": 2.5}))) == "Receipt"
