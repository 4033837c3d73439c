"""Human interaction: wait for an approval event, or give up when a timer fires.

python samples/human_interaction.py
"""

import asyncio
from collections import namedtuple
from dataclasses import dataclass
from datetime import timedelta

from dtask_async import DurableEnvironment, task


@dataclass
class Order:
    cost: float
    product: str
    quantity: int


Approval = namedtuple("Approval", ["approver"])


def send_approval_request(ctx: task.ActivityContext, order: Order) -> None:
    print(f"  (approval needed for {order.product}, ${order.cost})")


def place_order(ctx: task.ActivityContext, order: Order) -> str:
    return f"Order placed: {order.quantity}x {order.product}"


def purchase_order_workflow(ctx: task.OrchestrationContext, order: Order):
    if order.cost < 1000:
        return "Auto-approved"
    yield ctx.call_activity(send_approval_request, input=order)

    approval_event = ctx.wait_for_external_event("approval_received")
    timeout_event = ctx.create_timer(timedelta(seconds=3))  # hours or days in real life
    winner = yield task.when_any([approval_event, timeout_event])
    if winner == timeout_event:
        return "Canceled - approval timeout"

    yield ctx.call_activity(place_order, input=order)
    approval_details = approval_event.get_result()
    return f"Approved by '{approval_details.approver}'"


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_orchestrator(purchase_order_workflow)
            worker.add_activity(send_approval_request)
            worker.add_activity(place_order)
            await worker.start()

            approved = await client.schedule_new_orchestration(
                purchase_order_workflow, input=Order(cost=2500, product="Server", quantity=2)
            )
            await client.wait_for_orchestration_start(approved)
            await client.raise_orchestration_event(
                approved, "approval_received", data=Approval("manager@company.com")
            )
            ignored = await client.schedule_new_orchestration(
                purchase_order_workflow, input=Order(cost=5000, product="Rack", quantity=1)
            )
            for instance_id in (approved, ignored):
                state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
                print(f"{instance_id}: {state.result}")


if __name__ == "__main__":
    asyncio.run(main())
