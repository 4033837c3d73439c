"""Seed 003's complete example, through the scheduler classes, on a local backend.

The seed uses ``connection_string = None`` (the emulator on localhost:8080);
here the same program gets a connection string for a backend on a free port.
"""

from __future__ import annotations

from typing import Any

from dtask_async import task
from dtask_async.azuremanaged import DurableTaskSchedulerClient, DurableTaskSchedulerWorker
from dtask_async.worker import ReconnectPolicy


class Order:
    def __init__(self, id: str, items: list[Any], total: float) -> None:
        self.id = id
        self.items = items
        self.total = total


@task.orchestration
def process_order(ctx: task.OrchestrationContext, order_dict: dict[str, Any]) -> Any:
    order = Order(**order_dict)
    is_valid = yield ctx.call_activity(validate_order, input=order_dict)
    if not is_valid:
        return {"success": False, "reason": "Invalid order"}
    item_tasks = [ctx.call_activity(process_item, input=item) for item in order.items]
    item_results = yield task.when_all(item_tasks)
    payment = yield ctx.call_activity(
        process_payment, input={"order_id": order.id, "total": order.total}
    )
    yield ctx.call_activity(schedule_shipping, input={"order_id": order.id, "items": item_results})
    return {"success": True, "order_id": order.id, "payment_id": payment["id"]}


@task.activity
def validate_order(ctx: task.ActivityContext, order: dict[str, Any]) -> bool:
    return len(order.get("items", [])) > 0


@task.activity
def process_item(ctx: task.ActivityContext, item: dict[str, Any]) -> dict[str, Any]:
    return {"item_id": item["id"], "status": "processed"}


@task.activity
def process_payment(ctx: task.ActivityContext, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"payment-{data['order_id']}", "status": "completed"}


@task.activity
def schedule_shipping(ctx: task.ActivityContext, data: dict[str, Any]) -> None:
    return None


async def test_seed_003_complete_example(backend_address: str) -> None:
    connection_string = f"Endpoint=http://{backend_address};Authentication=None"
    async with DurableTaskSchedulerWorker(
        connection_string, reconnect=ReconnectPolicy(initial_delay=0.05, max_delay=0.5)
    ) as worker:
        worker.add_orchestration(process_order)
        worker.add_activity(validate_order)
        worker.add_activity(process_item)
        worker.add_activity(process_payment)
        worker.add_activity(schedule_shipping)
        await worker.start()
        assert worker.taskhub == "default"

        async with DurableTaskSchedulerClient(connection_string) as client:
            order = {
                "id": "order-123",
                "items": [{"id": "item-1", "name": "Widget"}, {"id": "item-2", "name": "Gadget"}],
                "total": 99.99,
            }
            instance_id = await client.schedule_new_orchestration(process_order, input=order)
            result = await client.wait_for_orchestration_completion(instance_id, timeout=30)
    assert result is not None
    assert result.result == {
        "success": True,
        "order_id": "order-123",
        "payment_id": "payment-order-123",
    }
