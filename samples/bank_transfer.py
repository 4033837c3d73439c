"""Bank transfers with entity locks: concurrent transfers never lose money.

python samples/bank_transfer.py

Each transfer locks both accounts (a critical section), withdraws, then
deposits. A withdrawal larger than the balance raises inside the entity; the
orchestration catches EntityOperationFailedError and refuses the transfer. With
no configuration it starts an embedded backend in this process.
"""

import asyncio

from dtask_async import DurableEnvironment, EntityOperationFailedError, entities, task


class Account(entities.DurableEntity):
    def deposit(self, amount: int) -> int:
        balance = self.get_state(int, 0) + amount
        self.set_state(balance)
        return balance

    def withdraw(self, amount: int) -> int:
        balance = self.get_state(int, 0)
        if amount > balance:
            raise ValueError(f"insufficient funds: balance {balance}, asked {amount}")
        self.set_state(balance - amount)
        return balance - amount

    def get_balance(self) -> int:
        return self.get_state(int, 0)


def account(name: str) -> entities.EntityInstanceId:
    return entities.EntityInstanceId("account", name)


def open_accounts(ctx: task.OrchestrationContext, deposits: dict):
    yield task.when_all(
        [ctx.call_entity(account(name), "deposit", amount) for name, amount in deposits.items()]
    )


def transfer(ctx: task.OrchestrationContext, order: dict):
    source, target = account(order["from"]), account(order["to"])
    with (yield ctx.lock_entities([source, target])):
        try:
            yield ctx.call_entity(source, "withdraw", order["amount"])
        except EntityOperationFailedError as error:
            return f"refused {order['amount']} from {order['from']}: {error.details.message}"
        yield ctx.call_entity(target, "deposit", order["amount"])
    return f"moved {order['amount']} from {order['from']} to {order['to']}"


def balances(ctx: task.OrchestrationContext, names: list):
    values = yield task.when_all([ctx.call_entity(account(n), "get_balance") for n in names])
    return dict(zip(names, values, strict=True))


async def run(client, orchestrator, input=None):
    instance_id = await client.schedule_new_orchestration(orchestrator, input=input)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=60)
    return state.result


async def main() -> None:
    async with DurableEnvironment.from_env() as env:
        async with env.worker() as worker, env.client() as client:
            worker.add_entity(Account)
            for orchestrator in (open_accounts, transfer, balances):
                worker.add_orchestrator(orchestrator)
            await worker.start()

            await run(client, open_accounts, {"alice": 100, "bob": 100})
            orders = [
                {"from": "alice", "to": "bob", "amount": 30},
                {"from": "bob", "to": "alice", "amount": 10},
                {"from": "alice", "to": "bob", "amount": 20},
                {"from": "alice", "to": "bob", "amount": 1000},
            ]
            # All four run at once; the locks serialize them.
            for outcome in await asyncio.gather(*(run(client, transfer, o) for o in orders)):
                print(outcome)
            final = await run(client, balances, ["alice", "bob"])
            print(f"alice: {final['alice']}, bob: {final['bob']}, total: {sum(final.values())}")


if __name__ == "__main__":
    asyncio.run(main())
