"""Orchestrators and activities for the official worker, and the gates tests use to
control them (activities run on the worker's threads, so gates are thread-safe)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from durabletask import task

_gates: dict[str, threading.Event] = {}
_counts: dict[str, int] = {}
_lock = threading.Lock()


def gate(name: str) -> threading.Event:
    """A named event shared between a test and the activities it runs."""
    with _lock:
        return _gates.setdefault(name, threading.Event())


def bump(name: str) -> int:
    """Count a call; returns how many times ``name`` was counted so far."""
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        return _counts[name]


def count(name: str) -> int:
    with _lock:
        return _counts.get(name, 0)


# -- activities ----------------------------------------------------------------------


def hello(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name}!"


def double(ctx: task.ActivityContext, value: int) -> int:
    return value * 2


def total(ctx: task.ActivityContext, values: list[int]) -> int:
    return sum(values)


def fail(ctx: task.ActivityContext, message: str) -> None:
    raise ValueError(message)


def fail_once(ctx: task.ActivityContext, key: str) -> str:
    if bump(key) == 1:
        raise RuntimeError(f"first attempt of {key} fails")
    return f"{key} ok"


def wait_gate(ctx: task.ActivityContext, key: str) -> str:
    """Signal ``key + ':started'`` and block until the test opens gate ``key``."""
    bump(key)
    gate(key + ":started").set()
    if not gate(key).wait(timeout=60):
        raise TimeoutError(f"gate {key} was never opened")
    return f"{key} done"


# -- orchestrators -------------------------------------------------------------------


def chain(ctx: task.OrchestrationContext, name: str) -> Any:
    a = yield ctx.call_activity(hello, input=name)
    b = yield ctx.call_activity(hello, input=a)
    c = yield ctx.call_activity(hello, input=b)
    return c


def fan_out(ctx: task.OrchestrationContext, n: int) -> Any:
    values = yield task.when_all([ctx.call_activity(double, input=i) for i in range(n)])
    result = yield ctx.call_activity(total, input=values)
    return result


def sleeper(ctx: task.OrchestrationContext, seconds: float) -> Any:
    start = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    return (ctx.current_utc_datetime - start).total_seconds()


def approval(ctx: task.OrchestrationContext, _: Any) -> Any:
    ctx.set_custom_status("waiting for approval")
    value = yield ctx.wait_for_external_event("approve")
    ctx.set_custom_status("approved")
    return {"approved": value}


def two_events(ctx: task.OrchestrationContext, _: Any) -> Any:
    first = yield ctx.wait_for_external_event("first")
    second = yield ctx.wait_for_external_event("second")
    return [first, second]


def parent(ctx: task.OrchestrationContext, name: str) -> Any:
    result = yield ctx.call_sub_orchestrator(
        chain, input=name, instance_id=f"{ctx.instance_id}-child"
    )
    return f"parent got {result}"


def parent_of_failure(ctx: task.OrchestrationContext, message: str) -> Any:
    try:
        yield ctx.call_sub_orchestrator(
            failing, input=message, instance_id=f"{ctx.instance_id}-child"
        )
    except task.TaskFailedError as exc:
        return f"caught: {exc.details.message}"
    return "no failure"


def failing(ctx: task.OrchestrationContext, message: str) -> Any:
    yield ctx.call_activity(fail, input=message)


def parent_waiting(ctx: task.OrchestrationContext, _: Any) -> Any:
    result = yield ctx.call_sub_orchestrator(approval, instance_id=f"{ctx.instance_id}-child")
    return result


def counter(ctx: task.OrchestrationContext, state: dict[str, int]) -> Any:
    n = state["n"]
    if n >= state["until"]:
        return n
    yield ctx.call_activity(double, input=n)
    ctx.continue_as_new({"n": n + 1, "until": state["until"]})


def caught_failure(ctx: task.OrchestrationContext, message: str) -> Any:
    try:
        yield ctx.call_activity(fail, input=message)
    except task.TaskFailedError as exc:
        ctx.set_custom_status("compensating")
        return f"compensated after {exc.details.error_type}: {exc.details.message}"
    return "no failure"


def flaky(ctx: task.OrchestrationContext, key: str) -> Any:
    first = yield ctx.call_activity(hello, input=key)
    second = yield ctx.call_activity(fail_once, input=key)
    return [first, second]


def gated(ctx: task.OrchestrationContext, key: str) -> Any:
    result = yield ctx.call_activity(wait_gate, input=key)
    return result


def send_to(ctx: task.OrchestrationContext, target: str) -> Any:
    ctx.send_event(target, "approve", data="from a friend")
    return "sent"


def recovery_mix(ctx: task.OrchestrationContext, key: str) -> Any:
    """Used across a kill -9: an activity, a timer and an event, in parallel."""
    work = ctx.call_activity(wait_gate, input=key)
    timer = ctx.create_timer(timedelta(seconds=2))
    event = ctx.wait_for_external_event("go")
    results = yield task.when_all([work, timer, event])
    return [results[0], results[2]]
