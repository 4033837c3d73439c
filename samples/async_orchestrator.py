"""An ``async def`` orchestrator with ``async def`` activities.

The orchestrator awaits durable tasks instead of yielding them; it is replayed
by the same engine. The activities run on this program's own event loop, so
they can share its clients and connection pools.

    python samples/async_orchestrator.py
"""

import asyncio

from dtask_async import DurableEnvironment, task


async def fetch_price(ctx: task.ActivityContext, product: str) -> float:
    await asyncio.sleep(0.05)  # an HTTP call or a database query in real life
    return {"widget": 2.5, "gadget": 7.0}.get(product, 1.0)


async def quote(ctx: task.OrchestrationContext, basket: dict[str, int]) -> dict[str, float]:
    products = sorted(basket)
    prices = await task.when_all([ctx.call_activity(fetch_price, input=p) for p in products])
    lines = {p: price * basket[p] for p, price in zip(products, prices, strict=True)}
    return {**lines, "total": sum(lines.values())}


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestrator(quote)
            worker.add_activity(fetch_price)
            await worker.start()

            instance_id = await client.schedule_new_orchestration(
                quote, input={"widget": 4, "gadget": 1}
            )
            state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
            print(f"Quote: {state.result}")


if __name__ == "__main__":
    asyncio.run(main())
