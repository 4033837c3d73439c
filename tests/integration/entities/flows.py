"""Entities and orchestrations of the entity integration tests, written as the seeds do."""

from __future__ import annotations

import asyncio
from typing import Any

from dtask_async import EntityOperationFailedError, entities, task
from dtask_async.worker import AsyncDurableTaskWorker

# -- seed 002: the counter, as a function and as a class ---------------------------------


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
    elif ctx.operation == "set":
        ctx.set_state(input)
    elif ctx.operation == "explode":
        ctx.set_state(-1_000_000)
        raise RuntimeError("the counter exploded")
    return None


class Counter(entities.DurableEntity):
    """Class-based entity for a counter"""

    def __init__(self):
        self.set_state(0)

    def add(self, amount: int):
        current = self.get_state(int, 0)
        self.set_state(current + amount)

    def subtract(self, amount: int):
        current = self.get_state(int, 0)
        self.set_state(current - amount)

    def get(self) -> int:
        return self.get_state(int, 0)

    def reset(self):
        self.set_state(0)

    def set(self, value: int):
        self.set_state(value)

    def explode(self):
        self.set_state(-1_000_000)
        raise RuntimeError("the counter exploded")


def workflow_with_entity(ctx: task.OrchestrationContext, _):
    """Orchestration that interacts with entities"""
    entity_id = entities.EntityInstanceId("counter", "my-counter")
    ctx.signal_entity(entity_id=entity_id, operation_name="add", input=5)
    value = yield ctx.call_entity(entity=entity_id, operation="get")
    return f"Counter value: {value}"


# -- seed 002: accounts and the locked transfer ------------------------------------------


class Account(entities.DurableEntity):
    """A bank account that refuses overdrafts."""

    def deposit(self, amount: int) -> int:
        balance = self.get_state(int, 0) + amount
        self.set_state(balance)
        return balance

    def withdraw(self, amount: int) -> int:
        balance = self.get_state(int, 0)
        if amount > balance:
            raise ValueError(f"insufficient funds: balance {balance}, withdrawal {amount}")
        self.set_state(balance - amount)
        return balance - amount

    async def get_balance(self) -> int:
        await asyncio.sleep(0)  # async operations run on the worker's loop
        return self.get_state(int, 0)


def workflow_with_locks(ctx: task.OrchestrationContext, _):
    """Lock multiple entities for atomic operations"""
    entity_id_1 = entities.EntityInstanceId("account", "account-1")
    entity_id_2 = entities.EntityInstanceId("account", "account-2")
    with (yield ctx.lock_entities([entity_id_1, entity_id_2])):
        balance1 = yield ctx.call_entity(entity=entity_id_1, operation="get_balance")
        balance2 = yield ctx.call_entity(entity=entity_id_2, operation="get_balance")
        yield ctx.call_entity(entity=entity_id_1, operation="withdraw", input=100)
        yield ctx.call_entity(entity=entity_id_2, operation="deposit", input=100)
    return {"result": "Transfer complete", "before": [balance1, balance2]}


def transfer(ctx: task.OrchestrationContext, order: dict[str, Any]):
    """Move money between two accounts inside one critical section; refuse overdrafts."""
    source = entities.EntityInstanceId("account", order["from"])
    target = entities.EntityInstanceId("account", order["to"])
    with (yield ctx.lock_entities([source, target])):
        try:
            yield ctx.call_entity(source, "withdraw", order["amount"])
        except EntityOperationFailedError as error:
            return {"ok": False, "reason": str(error)}
        yield ctx.call_entity(target, "deposit", order["amount"])
    return {"ok": True}


# -- mutual exclusion -----------------------------------------------------------------------


def locked_increment(ctx: task.OrchestrationContext, key: str):
    """Read, then write, a counter inside a critical section: no update may be lost."""
    entity_id = entities.EntityInstanceId("counter", key)
    with (yield ctx.lock_entities([entity_id])):
        value = yield ctx.call_entity(entity_id, "get")
        yield ctx.create_timer(ctx.current_utc_datetime)  # widen the window
        yield ctx.call_entity(entity_id, "set", value + 1)
    return value + 1


# -- failures and misuse ----------------------------------------------------------------------


def call_and_report(ctx: task.OrchestrationContext, request: dict[str, Any]):
    """Call an operation and report its result or its failure."""
    entity_id = entities.EntityInstanceId.parse(request["entity"])
    try:
        value = yield ctx.call_entity(entity_id, request["operation"], request.get("input"))
    except EntityOperationFailedError as error:
        return {
            "failed": str(error),
            "type": error.details.error_type,
            "operation": error.operation_name,
        }
    return {"value": value}


def call_unlocked_entity(ctx: task.OrchestrationContext, _):
    """Misuse: call an entity the critical section did not lock."""
    locked = entities.EntityInstanceId("counter", "locked")
    other = entities.EntityInstanceId("counter", "other")
    with (yield ctx.lock_entities([locked])):
        yield ctx.call_entity(other, "get")
    return "unreachable"


# -- entities that send messages --------------------------------------------------------------


class Relay(entities.DurableEntity):
    """Forwards to a counter and starts an orchestration, once its operation succeeds."""

    def forward(self, amount: int) -> str:
        self.signal_entity(entities.EntityInstanceId("counter", "relayed"), "add", amount)
        return self.schedule_new_orchestration(
            "relayed_report", input=amount, instance_id=f"relayed-{amount}"
        )

    def forward_then_fail(self, amount: int) -> None:
        self.signal_entity(entities.EntityInstanceId("counter", "relayed"), "add", 1000)
        self.schedule_new_orchestration("relayed_report", input=-1, instance_id="never")
        raise ValueError("rolled back: nothing above is sent")


def relayed_report(ctx: task.OrchestrationContext, amount: int):
    return f"relayed {amount}"


def register(worker: AsyncDurableTaskWorker, *, counter_form: str = "function") -> None:
    """Everything above, with the counter as a function or as a class."""
    worker.add_entity(counter if counter_form == "function" else Counter, name="counter")
    worker.add_entity(Account)
    worker.add_entity(Relay)
    for orchestrator in (
        workflow_with_entity,
        workflow_with_locks,
        transfer,
        locked_increment,
        call_and_report,
        call_unlocked_entity,
        relayed_report,
    ):
        worker.add_orchestrator(orchestrator)
