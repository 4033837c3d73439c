"""Fan-out/fan-in: process work items in parallel, then aggregate (and in batches).

python samples/fan_out_fan_in.py
"""

import asyncio

from dtask_async import DurableEnvironment, task


def get_work_items(ctx: task.ActivityContext, count: int) -> list[str]:
    return [f"work item {i}" for i in range(count)]


async def process_work_item(ctx: task.ActivityContext, item: str) -> int:
    await asyncio.sleep(0.01)  # async activities run on this program's event loop
    return len(item)


def fanout_fanin_workflow(ctx: task.OrchestrationContext, count: int):
    work_items = yield ctx.call_activity(get_work_items, input=count)
    tasks = [ctx.call_activity(process_work_item, input=item) for item in work_items]
    results = yield task.when_all(tasks)
    return {"items": len(work_items), "total": sum(results)}


def batched_fanout_workflow(ctx: task.OrchestrationContext, count: int):
    work_items = yield ctx.call_activity(get_work_items, input=count)
    batch_size = 10
    all_results = []
    for i in range(0, len(work_items), batch_size):
        batch = work_items[i : i + batch_size]
        results = yield task.when_all(
            [ctx.call_activity(process_work_item, input=item) for item in batch]
        )
        all_results.extend(results)
    return {"items": len(all_results), "total": sum(all_results)}


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestrator(fanout_fanin_workflow)
            worker.add_orchestrator(batched_fanout_workflow)
            worker.add_activity(get_work_items)
            worker.add_activity(process_work_item)
            await worker.start()

            for workflow in (fanout_fanin_workflow, batched_fanout_workflow):
                instance_id = await client.schedule_new_orchestration(workflow, input=25)
                state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
                print(f"{workflow.__name__}: {state.result}")


if __name__ == "__main__":
    asyncio.run(main())
