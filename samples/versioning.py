"""Versioned orchestrations: one worker serves old and new versions side by side.

python samples/versioning.py
"""

import asyncio

from dtask_async import DurableEnvironment, task


def say_hello(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name}!"


def say_goodbye(ctx: task.ActivityContext, name: str) -> str:
    return f"Goodbye {name}!"


def version_tuple(version: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")) if version else (0,)


def versioned_orchestration(ctx: task.OrchestrationContext, name: str):
    results = [(yield ctx.call_activity(say_hello, input=name))]
    if version_tuple(ctx.version) >= (2, 0, 0):  # added in 2.0.0
        results.append((yield ctx.call_activity(say_goodbye, input=name)))
    return {"version": ctx.version, "results": results}


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestrator(versioned_orchestration)
            worker.add_activity(say_hello)
            worker.add_activity(say_goodbye)
            await worker.start()

            for version in ("1.0.0", "2.0.0"):
                instance_id = await client.schedule_new_orchestration(
                    "versioned_orchestration", input="Ada", version=version
                )
                state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
                print(f"v{version}: {state.result['results']}")


if __name__ == "__main__":
    asyncio.run(main())
