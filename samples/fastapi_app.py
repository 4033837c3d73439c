"""A FastAPI app with the worker and client in its lifespan.

The worker runs on the app's own event loop, so ``async def`` activities share
the app's resources: here an in-memory inventory guarded by an ``asyncio.Lock``,
in real life a database pool or an HTTP client.

    pip install fastapi uvicorn
    uvicorn samples.fastapi_app:app          # or: python samples/fastapi_app.py

    curl -X POST localhost:8000/orders -H 'content-type: application/json' \\
         -d '{"product": "widget", "quantity": 2}'
    curl localhost:8000/orders/<instance_id>
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from dtask_async import DurableEnvironment, task


class Inventory:
    """Stands in for a resource the app owns: a DB pool, an HTTP client..."""

    def __init__(self) -> None:
        self.stock = {"widget": 10, "gadget": 3}
        self.lock = asyncio.Lock()

    async def reserve(self, product: str, quantity: int) -> bool:
        async with self.lock:
            if self.stock.get(product, 0) < quantity:
                return False
            self.stock[product] -= quantity
            return True


inventory = Inventory()


@dataclass
class Order:
    product: str
    quantity: int


async def reserve_stock(ctx: task.ActivityContext, order: Order) -> bool:
    return await inventory.reserve(order.product, order.quantity)


async def send_confirmation(ctx: task.ActivityContext, order: Order) -> str:
    return f"confirmed {order.quantity}x {order.product}"


def order_workflow(ctx: task.OrchestrationContext, order: Order):
    reserved = yield ctx.call_activity(reserve_stock, input=order)
    if not reserved:
        return {"status": "out of stock"}
    confirmation = yield ctx.call_activity(send_confirmation, input=order)
    return {"status": "placed", "confirmation": confirmation}


@asynccontextmanager
async def lifespan(app: FastAPI):
    async with AsyncExitStack() as stack:
        env = await stack.enter_async_context(DurableEnvironment.from_env())
        worker = await stack.enter_async_context(env.worker())
        worker.add_orchestrator(order_workflow)
        worker.add_activity(reserve_stock)
        worker.add_activity(send_confirmation)
        await worker.start()
        app.state.client = await stack.enter_async_context(env.client())
        yield


app = FastAPI(lifespan=lifespan)


class OrderIn(BaseModel):
    product: str
    quantity: int


@app.post("/orders", status_code=202)
async def place_order(order: OrderIn, request: Request) -> dict[str, str]:
    client = request.app.state.client
    instance_id = await client.schedule_new_orchestration(
        order_workflow, input=Order(order.product, order.quantity)
    )
    return {"instance_id": instance_id}


@app.get("/orders/{instance_id}")
async def order_status(instance_id: str, request: Request, wait: float = 0) -> dict[str, Any]:
    client = request.app.state.client
    if wait > 0:
        state = await client.wait_for_orchestration_completion(instance_id, timeout=wait)
    else:
        state = await client.get_orchestration_state(instance_id)
    if state is None:
        raise HTTPException(status_code=404, detail=f"no order {instance_id}")
    return {"status": state.runtime_status.name, "result": state.result}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
