"""Hello, durable world: an orchestration that chains three activity calls.

Run it with nothing installed but this package:

    python samples/hello.py

With no configuration it starts an embedded backend in this process. Set
DURABLETASK_CONNECTION_STRING (or ENDPOINT and TASKHUB) to use another server,
such as the Durable Task Scheduler or `dtask-async emulator`.
"""

import asyncio

from dtask_async import DurableEnvironment, task


@task.activity
def say_hello(ctx: task.ActivityContext, city: str) -> str:
    return f"Hello {city}!"


@task.orchestration
def hello_cities(ctx: task.OrchestrationContext, _):
    result1 = yield ctx.call_activity(say_hello, input="Tokyo")
    result2 = yield ctx.call_activity(say_hello, input="Seattle")
    result3 = yield ctx.call_activity(say_hello, input="London")
    return [result1, result2, result3]


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        print(f"Using {env.description}")
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestration(hello_cities)
            worker.add_activity(say_hello)
            await worker.start()

            instance_id = await client.schedule_new_orchestration(hello_cities)
            state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
            print(f"Orchestration {instance_id} {state.runtime_status.name}")
            print(f"Result: {state.result}")


if __name__ == "__main__":
    asyncio.run(main())
