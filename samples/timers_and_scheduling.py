"""Durable timers and scheduled execution.

python samples/timers_and_scheduling.py
"""

import asyncio
from datetime import datetime, timedelta, timezone

from dtask_async import DurableEnvironment, task


def report(ctx: task.ActivityContext, message: str) -> str:
    return message


def delayed_workflow(ctx: task.OrchestrationContext, seconds: float):
    started = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))  # survives restarts
    waited = (ctx.current_utc_datetime - started).total_seconds()
    return (yield ctx.call_activity(report, input=f"waited {waited:.1f} s"))


def scheduled_workflow(ctx: task.OrchestrationContext, scheduled_time: datetime):
    delay = scheduled_time - ctx.current_utc_datetime
    if delay > timedelta(0):
        yield ctx.create_timer(delay)
    return (yield ctx.call_activity(report, input=f"ran at {ctx.current_utc_datetime:%X}"))


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestrator(delayed_workflow)
            worker.add_orchestrator(scheduled_workflow)
            worker.add_activity(report)
            await worker.start()

            timer = await client.schedule_new_orchestration(delayed_workflow, input=1.5)
            at = datetime.now(timezone.utc) + timedelta(seconds=2)
            scheduled = await client.schedule_new_orchestration(scheduled_workflow, input=at)
            # Or let the server hold the start until a given time:
            later = await client.schedule_new_orchestration(
                delayed_workflow,
                input=0,
                start_at=datetime.now(timezone.utc) + timedelta(seconds=1),
            )
            for instance_id in (timer, scheduled, later):
                state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
                print(f"{state.name}: {state.result}")


if __name__ == "__main__":
    asyncio.run(main())
