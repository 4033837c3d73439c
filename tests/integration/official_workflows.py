"""Orchestrations and activities run by the official ``durabletask`` worker.

They let the client tests check every client operation against a worker nobody
on this project wrote.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from durabletask import task

ATTEMPTS: dict[str, int] = {}


def say_hello(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name}!"


def fail_once(ctx: task.ActivityContext, key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] == 1:
        raise ValueError(f"first attempt for {key} fails")
    return f"ok after {ATTEMPTS[key]}"


def always_fail(ctx: task.ActivityContext, message: str) -> None:
    raise RuntimeError(message)


def hello_cities(ctx: task.OrchestrationContext, _: Any) -> list[str]:
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield ctx.call_activity(say_hello, input=city)))
    ctx.set_custom_status({"cities": len(results)})
    return results


def echo(ctx: task.OrchestrationContext, value: Any) -> Any:
    return {"input": value, "version": ctx.version}
    yield  # pragma: no cover - makes this a generator


def wait_for_approval(ctx: task.OrchestrationContext, _: Any) -> Any:
    approval = yield ctx.wait_for_external_event("approval")
    return {"approved_by": approval}


def wait_long(ctx: task.OrchestrationContext, _: Any) -> str:
    yield ctx.create_timer(timedelta(hours=1))
    return "timer fired"


def parent_waits_for_child(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.call_sub_orchestrator(wait_long, instance_id=f"{ctx.instance_id}-child"))


def failing(ctx: task.OrchestrationContext, message: str) -> Any:
    return (yield ctx.call_activity(always_fail, input=message))


def flaky(ctx: task.OrchestrationContext, key: str) -> Any:
    return (yield ctx.call_activity(fail_once, input=key))


def register(worker: Any) -> None:
    for orchestrator in (
        hello_cities,
        echo,
        wait_for_approval,
        wait_long,
        parent_waits_for_child,
        failing,
        flaky,
    ):
        worker.add_orchestrator(orchestrator)
    for activity in (say_hello, fail_once, always_fail):
        worker.add_activity(activity)
