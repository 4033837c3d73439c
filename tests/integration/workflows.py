"""The seed documents' patterns, written against ``dtask_async.task``.

Integration tests run them on our worker against every backend.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dtask_async import task

# -- activities ----------------------------------------------------------------------


@task.activity
def hello(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name}!"


def get_work_items(ctx: task.ActivityContext, count: int | None) -> list[str]:
    return [f"work item {i}" for i in range(count if count is not None else 5)]


def process_work_item(ctx: task.ActivityContext, item: str) -> int:
    return int(item.rsplit(" ", 1)[1]) * 2


@dataclass
class Order:
    cost: float
    product: str
    quantity: int


Approval = namedtuple("Approval", ["approver"])


def send_approval_request(ctx: task.ActivityContext, order: Order) -> str:
    assert isinstance(order, Order), f"activity input was not rebuilt as Order: {order!r}"
    return f"Approval needed for {order.product} (${order.cost})"


def place_order(ctx: task.ActivityContext, order: Order) -> str:
    return f"Order placed: {order.quantity}x {order.product}"


ATTEMPTS: dict[str, int] = {}
_ATTEMPTS_LOCK = threading.Lock()


def unreliable(ctx: task.ActivityContext, key: str) -> str:
    """Fails twice per key, then succeeds."""
    with _ATTEMPTS_LOCK:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        attempt = ATTEMPTS[key]
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt} for {key} failed")
    return f"{key} succeeded on attempt {attempt}"


def risky(ctx: task.ActivityContext, data: str) -> str:
    raise ValueError(f"cannot process {data}")


def compensate(ctx: task.ActivityContext, data: str) -> str:
    return f"compensated {data}"


def check_job_status(ctx: task.ActivityContext, job_id: str) -> str:
    with _ATTEMPTS_LOCK:
        ATTEMPTS[job_id] = ATTEMPTS.get(job_id, 0) + 1
        return "completed" if ATTEMPTS[job_id] >= 3 else "running"


def periodic_work(ctx: task.ActivityContext, iteration: int) -> int:
    return iteration


def say_goodbye(ctx: task.ActivityContext, name: str) -> str:
    return f"Goodbye {name}!"


def get_random_delay(ctx: task.ActivityContext, _: Any) -> float:
    return random.choice([0.1, 0.2])


LOOPS: dict[str, asyncio.AbstractEventLoop] = {}


async def record_loop(ctx: task.ActivityContext, key: str) -> str:
    """An async activity that records which event loop ran it."""
    LOOPS[key] = asyncio.get_running_loop()
    await asyncio.sleep(0)
    return f"{key} ran on {threading.current_thread().name}"


# -- orchestrators -------------------------------------------------------------------


@task.orchestration
def chained_workflow(ctx: task.OrchestrationContext, _: Any) -> list[str]:
    result1 = yield ctx.call_activity(hello, input="Tokyo")
    result2 = yield ctx.call_activity(hello, input="Seattle")
    result3 = yield ctx.call_activity(hello, input="London")
    return [result1, result2, result3]


def fanout_fanin_workflow(ctx: task.OrchestrationContext, count: int) -> dict[str, Any]:
    work_items: list[str] = yield ctx.call_activity(get_work_items, input=count)
    tasks = [ctx.call_activity(process_work_item, input=item) for item in work_items]
    results: list[int] = yield task.when_all(tasks)
    return {"work_items": work_items, "results": results, "total": sum(results)}


def batched_fanout_workflow(ctx: task.OrchestrationContext, count: int) -> dict[str, int]:
    work_items = yield ctx.call_activity(get_work_items, input=count)
    batch_size = 10
    all_results: list[int] = []
    for i in range(0, len(work_items), batch_size):
        batch = work_items[i : i + batch_size]
        tasks = [ctx.call_activity(process_work_item, input=item) for item in batch]
        batch_results = yield task.when_all(tasks)
        all_results.extend(batch_results)
    return {"total": sum(all_results), "count": len(all_results)}


def purchase_order_workflow(ctx: task.OrchestrationContext, order: Order) -> str:
    if order.cost < 1000:
        return "Auto-approved"
    yield ctx.call_activity(send_approval_request, input=order)
    approval_event = ctx.wait_for_external_event("approval_received")
    timeout_event = ctx.create_timer(timedelta(seconds=order.quantity))
    winner = yield task.when_any([approval_event, timeout_event])
    if winner == timeout_event:
        return "Canceled - approval timeout"
    yield ctx.call_activity(place_order, input=order)
    approval_details = approval_event.get_result()
    return f"Approved by '{approval_details.approver}'"


def delayed_workflow(ctx: task.OrchestrationContext, seconds: float) -> dict[str, Any]:
    started = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    fired = ctx.current_utc_datetime
    return {"waited": (fired - started).total_seconds()}


def scheduled_workflow(ctx: task.OrchestrationContext, scheduled_time: datetime) -> str:
    delay = scheduled_time - ctx.current_utc_datetime
    if delay > timedelta(0):
        yield ctx.create_timer(delay)
    result = yield ctx.call_activity(hello, input="scheduled")
    return f"{result} at or after {scheduled_time.isoformat()}"


def child_orchestration(ctx: task.OrchestrationContext, data: str) -> str:
    result1 = yield ctx.call_activity(hello, input=data)
    result2 = yield ctx.call_activity(say_goodbye, input=result1)
    return result2


def parent_orchestration(ctx: task.OrchestrationContext, items: list[str]) -> list[str]:
    tasks = [ctx.call_sub_orchestrator(child_orchestration, input=item) for item in items]
    results = yield task.when_all(tasks)
    return results


def eternal_orchestration(ctx: task.OrchestrationContext, iteration: int) -> Any:
    yield ctx.call_activity(periodic_work, input=iteration)
    yield ctx.create_timer(timedelta(milliseconds=100))
    if iteration >= 3:
        return f"stopped after {iteration}"
    ctx.continue_as_new(iteration + 1)


def monitoring_workflow(ctx: task.OrchestrationContext, job_id: str) -> dict[str, Any]:
    max_attempts = 10
    polling_interval = timedelta(milliseconds=200)
    for attempt in range(max_attempts):
        status = yield ctx.call_activity(check_job_status, input=job_id)
        if status == "completed":
            return {"status": "success", "attempts": attempt + 1}
        yield ctx.create_timer(polling_interval)
    return {"status": "timeout", "attempts": max_attempts}


RETRY = task.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=100),
    max_number_of_attempts=3,
    backoff_coefficient=2.0,
    max_retry_interval=1,
    retry_timeout=30,
)


def retry_workflow(ctx: task.OrchestrationContext, key: str) -> str:
    return (yield ctx.call_activity(unreliable, input=key, retry_policy=RETRY))


def retry_exhausted_workflow(ctx: task.OrchestrationContext, key: str) -> str:
    policy = task.RetryPolicy(first_retry_interval=0.05, max_number_of_attempts=2)
    try:
        return (yield ctx.call_activity(unreliable, input=key, retry_policy=policy))
    except task.TaskFailedError as e:
        return f"gave up: {e.details.error_type}"


def orchestrator_with_error_handling(ctx: task.OrchestrationContext, data: str) -> str:
    try:
        result = yield ctx.call_activity(risky, input=data)
        return result
    except task.TaskFailedError as e:
        ctx.set_custom_status({"error": str(e)})
        yield ctx.call_activity(compensate, input=data)
        return "Compensated"


def failing_orchestration(ctx: task.OrchestrationContext, data: str) -> str:
    yield ctx.call_activity(hello, input=data)
    raise KeyError(f"missing {data}")


def versioned_orchestration(ctx: task.OrchestrationContext, name: str) -> dict[str, Any]:
    results = []
    orch_version = ctx.version
    hello_result = yield ctx.call_activity(hello, input=name)
    results.append(hello_result)
    if orch_version is not None and orch_version >= "2.0.0":
        goodbye = yield ctx.call_activity(say_goodbye, input=name)
        results.append(goodbye)
    return {"version": orch_version, "results": results}


def good_orchestration(ctx: task.OrchestrationContext, _: Any) -> dict[str, Any]:
    order_id = str(ctx.new_uuid())
    same = str(ctx.new_uuid())
    delay = yield ctx.call_activity(get_random_delay)
    yield ctx.create_timer(timedelta(seconds=delay))
    return {"ids": [order_id, same], "delay": delay}


async def async_chain(ctx: task.OrchestrationContext, name: str) -> list[str]:
    first = await ctx.call_activity(hello, input=name)
    second = await ctx.call_activity("record_loop", input=f"async-{ctx.instance_id}")
    both = await task.when_all(
        [ctx.call_activity(hello, input="a"), ctx.call_activity(hello, input="b")]
    )
    return [first, second.split(" ran")[0], *both]


def loop_probe(ctx: task.OrchestrationContext, key: str) -> str:
    return (yield ctx.call_activity(record_loop, input=key))


def wait_for_approval(ctx: task.OrchestrationContext, _: Any) -> Any:
    value = yield ctx.wait_for_external_event("Approval")
    return value


def register_all(worker: Any) -> None:
    """Register every orchestrator and activity above."""
    for orchestrator in (
        chained_workflow,
        fanout_fanin_workflow,
        batched_fanout_workflow,
        purchase_order_workflow,
        delayed_workflow,
        scheduled_workflow,
        child_orchestration,
        parent_orchestration,
        eternal_orchestration,
        monitoring_workflow,
        retry_workflow,
        retry_exhausted_workflow,
        orchestrator_with_error_handling,
        failing_orchestration,
        versioned_orchestration,
        good_orchestration,
        async_chain,
        loop_probe,
        wait_for_approval,
    ):
        worker.add_orchestrator(orchestrator)
    for activity in (
        hello,
        get_work_items,
        process_work_item,
        send_approval_request,
        place_order,
        unreliable,
        risky,
        compensate,
        check_job_status,
        periodic_work,
        say_goodbye,
        get_random_delay,
        record_loop,
    ):
        worker.add_activity(activity)
