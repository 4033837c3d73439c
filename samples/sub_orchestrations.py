"""Sub-orchestrations: a parent runs children in parallel and collects their results.

python samples/sub_orchestrations.py
"""

import asyncio

from dtask_async import DurableEnvironment, task


def activity_a(ctx: task.ActivityContext, data: str) -> str:
    return data.upper()


def activity_b(ctx: task.ActivityContext, data: str) -> str:
    return f"<{data}>"


def child_orchestration(ctx: task.OrchestrationContext, data: str):
    result1 = yield ctx.call_activity(activity_a, input=data)
    result2 = yield ctx.call_activity(activity_b, input=result1)
    return result2


def parent_orchestration(ctx: task.OrchestrationContext, items: list[str]):
    tasks = [ctx.call_sub_orchestrator(child_orchestration, input=item) for item in items]
    return (yield task.when_all(tasks))


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestrator(parent_orchestration)
            worker.add_orchestrator(child_orchestration)
            worker.add_activity(activity_a)
            worker.add_activity(activity_b)
            await worker.start()

            instance_id = await client.schedule_new_orchestration(
                parent_orchestration, input=["tokyo", "seattle", "london"]
            )
            state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
            print(f"Result: {state.result}")


if __name__ == "__main__":
    asyncio.run(main())
