"""EntityContext and DurableEntity used directly, as a user's unit test would."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from dtask_async import PayloadError, entities
from dtask_async.entities import DurableEntity, EntityContext, EntityInstanceId
from dtask_async.entities._context import EntityBatch
from dtask_async.entities._entity import instantiate, operation_table

COUNTER = EntityInstanceId("counter", "k")


def counter(ctx: entities.EntityContext, input: int):
    """The seed's function entity."""
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
    return None


class Counter(entities.DurableEntity):
    """The seed's class entity."""

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


@dataclasses.dataclass
class Balance:
    owner: str
    amount: int


def test_function_entity_against_a_hand_made_context() -> None:
    ctx = EntityContext(COUNTER, "add", state=5)
    counter(ctx, 3)
    assert ctx.get_state(int) == 8
    assert counter(EntityContext(COUNTER, "get", state=8), None) == 8
    fresh = EntityContext("@counter@fresh", "get")
    assert not fresh.has_state
    assert counter(fresh, None) == 0
    assert (fresh.entity_id, fresh.instance_id, fresh.operation) == (
        EntityInstanceId("counter", "fresh"),
        "@counter@fresh",
        "get",
    )
    assert fresh.orchestration_id == "@counter@fresh"


def test_state_reads_are_copies_and_typed() -> None:
    ctx = EntityContext(COUNTER, "op", state=Balance("ada", 10))
    balance = ctx.get_state(Balance)
    assert balance == Balance("ada", 10)
    balance.amount = 99
    assert ctx.get_state(Balance).amount == 10  # not written back
    assert ctx.get_state(dict) == {"owner": "ada", "amount": 10}
    assert ctx.get_state().owner == "ada"
    ctx.set_state([1, 2])
    with pytest.raises(TypeError, match="state of entity @counter@k is list"):
        ctx.get_state(int)
    ctx.set_state(None)
    assert ctx.get_state(int, 7) == 7
    assert not ctx.has_state


def test_unencodable_state_fails_where_it_is_set() -> None:
    ctx = EntityContext(COUNTER, "op")
    with pytest.raises(PayloadError, match="state of entity @counter@k"):
        ctx.set_state(object())
    assert not ctx.has_state


def test_outgoing_messages_are_recorded_in_order() -> None:
    batch = EntityBatch(None)
    ctx = EntityContext._in_batch(COUNTER, "notify", batch)
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    ctx.signal_entity(EntityInstanceId("Audit", "log"), "record", {"n": 1}, signal_time=when)
    ctx.signal_entity("@audit@log", "flush")
    started = ctx.schedule_new_orchestration("report", input=[1], instance_id="report-1")
    generated = ctx.schedule_new_orchestration(counter)
    batch.commit()
    actions = batch.committed_actions()
    assert [a.id for a in actions] == [0, 1, 2, 3]
    first = actions[0].sendSignal
    assert (first.instanceId, first.name, json.loads(first.input.value)) == (
        "@audit@log",
        "record",
        {"n": 1},
    )
    assert first.scheduledTime.ToJsonString() == "2030-01-01T00:00:00Z"
    assert first.HasField("requestTime")
    assert not actions[1].sendSignal.HasField("input")
    assert not actions[1].sendSignal.HasField("scheduledTime")
    start = actions[2].startNewOrchestration
    assert (start.instanceId, start.name, start.input.value) == ("report-1", "report", "[1]")
    assert started == "report-1"
    assert actions[3].startNewOrchestration.name == "counter"
    assert actions[3].startNewOrchestration.instanceId == generated
    assert len(generated) == 32


def test_signal_delays_and_bad_arguments() -> None:
    batch = EntityBatch(None)
    ctx = EntityContext._in_batch(COUNTER, "op", batch)
    ctx.signal_entity(COUNTER, "later", signal_time=timedelta(minutes=1))
    assert batch.actions[0].sendSignal.HasField("scheduledTime")
    with pytest.raises(TypeError, match="signal_time"):
        ctx.signal_entity(COUNTER, "op", signal_time=60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operation name"):
        ctx.signal_entity(COUNTER, "")
    with pytest.raises(TypeError, match="EntityInstanceId"):
        ctx.signal_entity(42, "op")  # type: ignore[arg-type]
    with pytest.raises(PayloadError):
        ctx.signal_entity(COUNTER, "op", object())


def test_batches_commit_and_roll_back() -> None:
    batch = EntityBatch('{"n":1}')
    ctx = EntityContext._in_batch(COUNTER, "op", batch)
    ctx.set_state({"n": 2})
    ctx.signal_entity(COUNTER, "kept")
    batch.commit()
    ctx.set_state({"n": 3})
    ctx.signal_entity(COUNTER, "dropped")
    batch.rollback()
    assert batch.state == '{"n":2}'
    assert [a.sendSignal.name for a in batch.committed_actions()] == ["kept"]
    assert EntityBatch("").state is None


def test_class_entity_outside_a_worker_keeps_state_locally() -> None:
    entity = Counter()
    entity.add(5)
    entity.subtract(2)
    assert entity.get() == 3
    entity.delete()
    assert entity.get() == 0
    assert entity.entity_id == EntityInstanceId("Counter", "local")


def test_a_stored_state_wins_over_the_constructor() -> None:
    stored = EntityContext._in_batch(COUNTER, "get", EntityBatch("41"))
    assert instantiate(Counter, stored).get() == 41
    new_batch = EntityBatch(None)
    fresh = instantiate(Counter, EntityContext._in_batch(COUNTER, "get", new_batch))
    assert fresh.get() == 0
    assert new_batch.state == "0"  # the constructor's state is the new entity's state
    fresh.add(2)
    assert new_batch.state == "2"


def test_operations_of_a_class() -> None:
    class Account(DurableEntity):
        limit = 10

        def deposit(self, amount: int) -> None: ...

        async def Withdraw(self, amount: int) -> None: ...

        @staticmethod
        def describe() -> str:
            return "account"

        @property
        def balance(self) -> int:
            return 0

        def _private(self) -> None: ...

    assert dict(operation_table(Account)) == {
        "delete": "delete",
        "deposit": "deposit",
        "describe": "describe",
        "withdraw": "Withdraw",
    }
    assert operation_table(Account) is operation_table(Account)


def test_public_names() -> None:
    assert sorted(entities.__all__) == [
        "DurableEntity",
        "EntityContext",
        "EntityInstanceId",
        "EntityLock",
        "EntityLockError",
        "EntityOperationFailedError",
    ]
    for name in entities.__all__:
        assert getattr(entities, name) is not None
    assert isinstance(Counter(), DurableEntity)
