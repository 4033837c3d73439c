"""Retry policies and error handling with compensation.

python samples/retries_and_errors.py
"""

import asyncio
from datetime import timedelta

from dtask_async import DurableEnvironment, task

CALLS: dict[str, int] = {}


def unreliable_activity(ctx: task.ActivityContext, data: str) -> str:
    CALLS[data] = CALLS.get(data, 0) + 1
    if CALLS[data] < 3:
        raise ConnectionError(f"attempt {CALLS[data]} failed")
    return f"{data} done after {CALLS[data]} attempts"


def risky_activity(ctx: task.ActivityContext, data: str) -> str:
    raise ValueError(f"cannot process {data}")


def compensation_activity(ctx: task.ActivityContext, data: str) -> str:
    return f"undid {data}"


retry_policy = task.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=200),  # or seconds: 5
    max_number_of_attempts=3,
    backoff_coefficient=2.0,
    max_retry_interval=60,
    retry_timeout=300,
)


def retrying_orchestrator(ctx: task.OrchestrationContext, data: str):
    return (yield ctx.call_activity(unreliable_activity, input=data, retry_policy=retry_policy))


def orchestrator_with_error_handling(ctx: task.OrchestrationContext, data: str):
    try:
        return (yield ctx.call_activity(risky_activity, input=data))
    except task.TaskFailedError as e:
        ctx.set_custom_status({"error": str(e)})
        yield ctx.call_activity(compensation_activity, input=data)
        return "Compensated"


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestrator(retrying_orchestrator)
            worker.add_orchestrator(orchestrator_with_error_handling)
            worker.add_activity(unreliable_activity)
            worker.add_activity(risky_activity)
            worker.add_activity(compensation_activity)
            await worker.start()

            retried = await client.schedule_new_orchestration(retrying_orchestrator, input="sync")
            handled = await client.schedule_new_orchestration(
                orchestrator_with_error_handling, input="payment"
            )
            for instance_id in (retried, handled):
                state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
                print(f"{state.name}: {state.result} (custom status: {state.custom_status})")


if __name__ == "__main__":
    asyncio.run(main())
