"""Durable timers (including long ones) and retry policies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from dtask_async import task
from dtask_async.orchestration import OrchestrationRunner

from .history import (
    T0,
    Harness,
    execution_started,
    failure,
    orchestrator_started,
    output,
    summary,
    task_completed,
    task_failed,
    timer_created,
    timer_fired,
    ts,
)

# -- timers -------------------------------------------------------------------------


def test_timer_from_timedelta_is_relative_to_orchestration_time() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("start")
        yield ctx.create_timer(timedelta(minutes=5))
        return "done"

    h = Harness(orchestrator)
    h.start(orchestrator)
    timer = h.step(task_completed(1), advance=timedelta(seconds=30))
    assert summary(timer) == [(2, "createTimer", ts(T0 + timedelta(seconds=30, minutes=5)))]
    done = h.step(
        timer_fired(2, T0 + timedelta(minutes=5, seconds=30)), advance=timedelta(minutes=5)
    )
    assert output(done) == "done"


def test_timer_from_datetime_aware_or_naive() -> None:
    local = timezone(timedelta(hours=2))

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.create_timer(datetime(2030, 1, 1, 12, 0, tzinfo=local))
        yield ctx.create_timer(datetime(2030, 1, 1, 12, 0))
        return "done"

    def run(past: list[Any], new: list[Any]) -> Any:
        # A far-away timer would be chained from shorter ones; switch that off here.
        runner = OrchestrationRunner("inst", lambda name: orchestrator, max_timer_interval=None)
        return runner.execute(past, new)

    start = [orchestrator_started(T0), execution_started("orchestrator")]
    first = run([], start)
    assert summary(first) == [(1, "createTimer", "2030-01-01T10:00:00Z")]
    fired = [
        timer_created(1, datetime(2030, 1, 1, 10, tzinfo=timezone.utc)),
        orchestrator_started(datetime(2030, 1, 1, 10, tzinfo=timezone.utc)),
        timer_fired(1, datetime(2030, 1, 1, 10, tzinfo=timezone.utc)),
    ]
    second = run(start, fired)
    assert summary(second) == [(2, "createTimer", "2030-01-01T12:00:00Z")]


def test_timer_result_is_none_and_timer_task_is_a_task() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        timer = ctx.create_timer(timedelta(seconds=1))
        value = yield timer
        return [value, isinstance(timer, task.Task)]

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(timer_fired(1, T0 + timedelta(seconds=1)))) == [None, True]


def test_create_timer_rejects_other_types() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            ctx.create_timer(5)  # type: ignore[arg-type]
        except TypeError as e:
            return str(e)
        return "no error"  # pragma: no cover

    assert "takes a datetime or a timedelta, got int" in output(
        Harness(orchestrator).start(orchestrator)
    )


def test_long_timer_is_chained_from_three_day_timers() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.create_timer(timedelta(days=7))
        return "a week later"

    h = Harness(orchestrator)
    first = h.start(orchestrator)
    assert summary(first) == [(1, "createTimer", ts(T0 + timedelta(days=3)))]
    second = h.step(timer_fired(1, T0 + timedelta(days=3)), advance=timedelta(days=3))
    assert summary(second) == [(2, "createTimer", ts(T0 + timedelta(days=6)))]
    third = h.step(timer_fired(2, T0 + timedelta(days=6)), advance=timedelta(days=3))
    assert summary(third) == [(3, "createTimer", ts(T0 + timedelta(days=7)))]
    assert output(h.step(timer_fired(3, T0 + timedelta(days=7)), advance=timedelta(days=1))) == (
        "a week later"
    )


def test_timer_fired_twice_is_ignored_the_second_time() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.create_timer(timedelta(seconds=1))
        yield ctx.call_activity("next")

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert summary(h.step(timer_fired(1, T0 + timedelta(seconds=1)))) == [
        (2, "scheduleTask", "next")
    ]
    assert summary(h.step(timer_fired(1, T0 + timedelta(seconds=1)))) == []


def test_completion_for_unknown_task_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        return (yield ctx.call_activity("a"))

    h = Harness(orchestrator, incremental=False)
    h.start(orchestrator)
    with caplog.at_level("WARNING"):
        assert summary(h.step(task_completed(9, "stray"))) == []
    assert "ignoring TaskCompleted for task 9" in caplog.text
    assert output(h.step(task_completed(1, "real"))) == "real"


# -- retries --------------------------------------------------------------------------


def _flaky(policy: task.RetryPolicy) -> Callable[..., Any]:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            result = yield ctx.call_activity("flaky", input="data", retry_policy=policy)
        except task.TaskFailedError as e:
            return {"error": str(e), "message": e.details.message}
        return result

    return orchestrator


def test_retry_succeeds_on_the_third_attempt() -> None:
    policy = task.RetryPolicy(
        first_retry_interval=timedelta(seconds=5), max_number_of_attempts=3, backoff_coefficient=2.0
    )
    orchestrator = _flaky(policy)
    h = Harness(orchestrator)
    assert summary(h.start(orchestrator)) == [(1, "scheduleTask", "flaky")]
    # Attempt 1 fails at T0+1s: a 5 s timer takes the next sequence number.
    wait1 = h.step(task_failed(1, "try again"))
    assert summary(wait1) == [(2, "createTimer", ts(T0 + timedelta(seconds=6)))]
    # When it fires the call is scheduled again under its original number.
    retry1 = h.step(timer_fired(2, T0 + timedelta(seconds=6)), advance=timedelta(seconds=5))
    assert summary(retry1) == [(1, "scheduleTask", "flaky")]
    assert retry1.actions[0].scheduleTask.input.value == '"data"'
    # Attempt 2 fails at T0+7s: the delay doubles to 10 s.
    wait2 = h.step(task_failed(1, "again"))
    assert summary(wait2) == [(3, "createTimer", ts(T0 + timedelta(seconds=17)))]
    retry2 = h.step(timer_fired(3, T0 + timedelta(seconds=17)), advance=timedelta(seconds=10))
    assert summary(retry2) == [(1, "scheduleTask", "flaky")]
    assert output(h.step(task_completed(1, "third time lucky"))) == "third time lucky"


def test_retries_exhausted_raise_the_last_failure() -> None:
    policy = task.RetryPolicy(first_retry_interval=1, max_number_of_attempts=2)
    orchestrator = _flaky(policy)
    h = Harness(orchestrator)
    h.start(orchestrator)
    assert summary(h.step(task_failed(1, "first"))) == [
        (2, "createTimer", ts(T0 + timedelta(seconds=2)))
    ]
    h.step(timer_fired(2, T0 + timedelta(seconds=2)))
    result = h.step(task_failed(1, "second", "ConnectionError"))
    assert output(result) == {
        "error": "activity 'flaky' (task 1) failed after 2 attempts: second",
        "message": "second",
    }


def test_retry_timeout_is_measured_in_orchestration_time() -> None:
    policy = task.RetryPolicy(
        first_retry_interval=timedelta(seconds=10),
        max_number_of_attempts=100,
        retry_timeout=timedelta(seconds=30),
    )
    orchestrator = _flaky(policy)
    h = Harness(orchestrator)
    h.start(orchestrator)  # first attempt at T0
    timer_id = 2
    for failed_at in (1, 12, 23):
        result = h.step(task_failed(1, f"at {failed_at}"), advance=timedelta(seconds=1))
        fire_at = T0 + timedelta(seconds=failed_at + 10)
        assert summary(result) == [(timer_id, "createTimer", ts(fire_at))]
        h.step(timer_fired(timer_id, fire_at), advance=timedelta(seconds=10))
        timer_id += 1
    # The fourth failure comes at T0+34s, past the 30 s retry timeout.
    result = h.step(task_failed(1, "too late"), advance=timedelta(seconds=1))
    assert output(result)["message"] == "too late"
    assert "after 4 attempts" in output(result)["error"]


def test_non_retriable_failure_is_not_retried() -> None:
    orchestrator = _flaky(task.RetryPolicy(first_retry_interval=1, max_number_of_attempts=5))
    h = Harness(orchestrator)
    h.start(orchestrator)
    result = h.step(task_failed(1, "fatal", retriable=False))
    assert output(result)["message"] == "fatal"


def test_retry_with_max_interval_caps_the_delay() -> None:
    policy = task.RetryPolicy(
        first_retry_interval=10,
        max_number_of_attempts=5,
        backoff_coefficient=3,
        max_retry_interval=20,
    )
    assert [policy.next_delay(n, T0, T0) for n in (1, 2, 3, 4, 5)] == [
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=20),
        timedelta(seconds=20),
        None,
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_retry_interval": -1, "max_number_of_attempts": 3}, "must not be negative"),
        ({"first_retry_interval": "5", "max_number_of_attempts": 3}, "timedelta or a number"),
        ({"first_retry_interval": 1, "max_number_of_attempts": 0}, "at least 1"),
        ({"first_retry_interval": 1, "max_number_of_attempts": 2.5}, "must be an int"),
        (
            {"first_retry_interval": 1, "max_number_of_attempts": 2, "backoff_coefficient": 0.5},
            "backoff_coefficient must be at least 1",
        ),
        (
            {"first_retry_interval": 1, "max_number_of_attempts": 2, "retry_timeout": float("inf")},
            "must be finite",
        ),
        (
            {"first_retry_interval": 1, "max_number_of_attempts": 2, "max_retry_interval": -5},
            "max_retry_interval must not be negative",
        ),
    ],
)
def test_retry_policy_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        task.RetryPolicy(**kwargs)


def test_retry_policy_accepts_seconds_and_timedeltas() -> None:
    policy = task.RetryPolicy(
        first_retry_interval=5,
        max_number_of_attempts=3,
        backoff_coefficient=2.0,
        max_retry_interval=60,
        retry_timeout=300,
    )
    assert policy.first_retry_interval == timedelta(seconds=5)
    assert policy.max_retry_interval == timedelta(seconds=60)
    assert policy.retry_timeout == timedelta(minutes=5)
    assert policy == task.RetryPolicy(timedelta(seconds=5), 3, 2, timedelta(minutes=1), 300.0)
    assert "max_number_of_attempts=3" in repr(policy)


def test_retry_policy_must_be_a_retry_policy() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            ctx.call_activity("x", retry_policy={"max": 3})  # type: ignore[arg-type]
        except TypeError as e:
            return str(e)
        return "no error"  # pragma: no cover

    assert output(Harness(orchestrator).start(orchestrator)) == (
        "retry_policy must be a RetryPolicy, got dict"
    )


def test_retry_failure_when_exhausted_fails_uncaught() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        policy = task.RetryPolicy(first_retry_interval=1, max_number_of_attempts=1)
        return (yield ctx.call_activity("x", retry_policy=policy))

    h = Harness(orchestrator)
    h.start(orchestrator)
    details = failure(h.step(task_failed(1, "once", "OSError")))
    assert (details.errorType, details.errorMessage) == ("OSError", "once")
