"""Eternal orchestrations (continue-as-new) and the monitoring pattern.

python samples/eternal_and_monitoring.py
"""

import asyncio
from datetime import timedelta

from dtask_async import DurableEnvironment, task

JOB_POLLS: dict[str, int] = {}


def periodic_work(ctx: task.ActivityContext, iteration: int) -> int:
    return iteration


def check_job_status(ctx: task.ActivityContext, job_id: str) -> str:
    JOB_POLLS[job_id] = JOB_POLLS.get(job_id, 0) + 1
    return "completed" if JOB_POLLS[job_id] >= 3 else "running"


def eternal_orchestration(ctx: task.OrchestrationContext, iteration: int):
    yield ctx.call_activity(periodic_work, input=iteration)
    yield ctx.create_timer(timedelta(milliseconds=200))  # minutes in real life
    if iteration >= 4:
        return f"stopped after {iteration + 1} iterations"
    # Start over with fresh history, so it can run forever.
    ctx.continue_as_new(iteration + 1)


def monitoring_workflow(ctx: task.OrchestrationContext, job_id: str):
    for attempt in range(10):
        status = yield ctx.call_activity(check_job_status, input=job_id)
        if status == "completed":
            return {"status": "success", "attempts": attempt + 1}
        yield ctx.create_timer(timedelta(milliseconds=300))
    return {"status": "timeout", "attempts": 10}


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestrator(eternal_orchestration)
            worker.add_orchestrator(monitoring_workflow)
            worker.add_activity(periodic_work)
            worker.add_activity(check_job_status)
            await worker.start()

            eternal = await client.schedule_new_orchestration(eternal_orchestration, input=0)
            monitor = await client.schedule_new_orchestration(monitoring_workflow, input="job-42")
            for instance_id in (eternal, monitor):
                state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
                print(f"{state.name}: {state.result}")


if __name__ == "__main__":
    asyncio.run(main())
