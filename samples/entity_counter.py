"""Durable entities: a counter written as a function and as a class.

python samples/entity_counter.py

The client signals the counter; an orchestration signals it and then calls it for
its value; the client reads the stored state back. With no configuration it
starts an embedded backend in this process.
"""

import asyncio

from dtask_async import DurableEnvironment, entities, task


def counter(ctx: entities.EntityContext, input: int):
    """Function-based entity for a counter"""
    state = ctx.get_state(int, 0)
    if ctx.operation == "add":
        state += input
        ctx.set_state(state)
    elif ctx.operation == "subtract":
        state -= input
        ctx.set_state(state)
    elif ctx.operation == "get":
        return state
    elif ctx.operation == "reset":
        ctx.set_state(0)


class Counter(entities.DurableEntity):
    """Class-based entity for a counter: one method per operation"""

    def __init__(self):
        self.set_state(0)  # the state of a new counter; a stored state wins

    def add(self, amount: int):
        self.set_state(self.get_state(int, 0) + amount)

    def get(self) -> int:
        return self.get_state(int, 0)


def workflow_with_entity(ctx: task.OrchestrationContext, entity_name: str):
    """Orchestration that interacts with entities"""
    entity_id = entities.EntityInstanceId(entity_name, "my-counter")
    ctx.signal_entity(entity_id=entity_id, operation_name="add", input=5)
    value = yield ctx.call_entity(entity=entity_id, operation="get")
    return f"Counter value: {value}"


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_entity(counter)
            worker.add_entity(Counter, name="class_counter")
            worker.add_orchestrator(workflow_with_entity)
            await worker.start()

            for name in ("counter", "class_counter"):
                entity_id = entities.EntityInstanceId(name, "my-counter")
                await client.signal_entity(entity_id, "add", input=10)
                instance_id = await client.schedule_new_orchestration(
                    workflow_with_entity, input=name
                )
                state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
                print(f"{name}: {state.result}")
                metadata = await client.get_entity(entity_id)
                print(f"{entity_id} stored state: {metadata.state}")


if __name__ == "__main__":
    asyncio.run(main())
