"""The worker's entity runner: both work-item shapes, rollback, dispatch, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from typing import Any

import pytest

from dtask_async import RegistrationError, entities
from dtask_async._errors import PayloadTooLargeError
from dtask_async._proto import pb
from dtask_async.worker import Registry
from dtask_async.worker._entities import oversized_result, read_entity_work, run_entity_batch
from dtask_async.worker._threads import ThreadRunner

from .test_context import Counter, counter

Op = tuple[str, Any]  # (operation, input)


def v1(instance_id: str, state: Any, *ops: Op) -> pb.WorkItem:
    item = pb.WorkItem(completionToken="token-1")
    batch = item.entityRequest
    batch.instanceId = instance_id
    if state is not None:
        batch.entityState.value = json.dumps(state)
    for index, (name, value) in enumerate(ops):
        op = batch.operations.add(operation=name, requestId=f"req-{index}")
        if value is not None:
            op.input.value = json.dumps(value)
    return item


def v2(instance_id: str, state: Any, *ops: Op, caller: str | None = "orch-1") -> pb.WorkItem:
    """Operations as the history events that sent them; odd ones are calls."""
    item = pb.WorkItem(completionToken="token-2")
    request = item.entityRequestV2
    request.instanceId = instance_id
    request.executionId = "entity-exec"
    if state is not None:
        request.entityState.value = json.dumps(state)
    for index, (name, value) in enumerate(ops):
        event = request.operationRequests.add(eventId=-1)
        if index % 2 and caller is not None:
            called = event.entityOperationCalled
            called.requestId, called.operation = f"req-{index}", name
            called.parentInstanceId.value = caller
            called.parentExecutionId.value = "exec-9"
            called.targetInstanceId.value = instance_id
            message: Any = called
        else:
            signaled = event.entityOperationSignaled
            signaled.requestId, signaled.operation = f"req-{index}", name
            signaled.targetInstanceId.value = instance_id
            message = signaled
        if value is not None:
            message.input.value = json.dumps(value)
    return item


async def run(registry: Registry, item: pb.WorkItem) -> pb.EntityBatchResult:
    _, result = await run_entity_batch(registry, item, ThreadRunner(4))
    return result


def outcomes(result: pb.EntityBatchResult) -> list[Any]:
    """Each operation's result: the decoded value, or ``("failed", type, message)``."""
    out: list[Any] = []
    for r in result.results:
        if r.HasField("success"):
            s = r.success
            assert s.HasField("startTimeUtc")
            assert s.HasField("endTimeUtc")
            out.append(json.loads(s.result.value) if s.HasField("result") else None)
        else:
            f = r.failure.failureDetails
            out.append(("failed", f.errorType, f.errorMessage))
    return out


def state(result: pb.EntityBatchResult) -> Any:
    return json.loads(result.entityState.value) if result.HasField("entityState") else None


def registry_with(*entries: Any) -> Registry:
    registry = Registry()
    for entry in entries:
        if isinstance(entry, tuple):
            registry.add_entity(entry[0], entry[1])
        else:
            registry.add_entity(entry)
    return registry


# -- the seed's counters ---------------------------------------------------------------


@pytest.mark.parametrize("entity", [counter, Counter], ids=["function", "class"])
@pytest.mark.parametrize("shape", [v1, v2])
async def test_counter_batch(entity: Any, shape: Any) -> None:
    registry = registry_with((entity, "counter"))
    item = shape(
        "@counter@k",
        None,
        ("add", 10),
        ("subtract", 3),
        ("get", None),
        ("reset", None),
        ("add", 2),
        ("get", None),
    )
    result = await run(registry, item)
    assert outcomes(result) == [None, None, 7, None, None, 2]
    assert state(result) == 2
    assert result.completionToken == item.completionToken
    assert list(result.actions) == []


async def test_v2_results_say_where_responses_go() -> None:
    registry = registry_with((counter, "counter"))
    item = v2("@counter@k", 1, ("add", 1), ("get", None), ("add", 1), ("get", None))
    result = await run(registry, item)
    assert outcomes(result) == [None, 2, None, 3]
    infos = [
        (
            i.requestId,
            i.responseDestination.instanceId if i.HasField("responseDestination") else None,
            i.responseDestination.executionId.value
            if i.responseDestination.HasField("executionId")
            else None,
        )
        for i in result.operationInfos
    ]
    assert infos == [
        ("req-0", None, None),
        ("req-1", "orch-1", "exec-9"),
        ("req-2", None, None),
        ("req-3", "orch-1", "exec-9"),
    ]


async def test_v1_results_carry_no_operation_infos() -> None:
    result = await run(registry_with((counter, "counter")), v1("@counter@k", None, ("get", None)))
    assert outcomes(result) == [0]
    assert len(result.operationInfos) == 0
    assert not result.HasField("entityState")  # no state: none is sent


# -- rollback ----------------------------------------------------------------------------


class Account(entities.DurableEntity):
    def deposit(self, amount: int) -> int:
        balance = self.get_state(int, 0) + amount
        self.set_state(balance)
        self.signal_entity("@audit@log", "record", {"deposit": amount})
        return balance

    def withdraw(self, amount: int) -> int:
        balance = self.get_state(int, 0)
        self.set_state(balance - amount)  # changed, then refused: must be undone
        self.signal_entity("@audit@log", "record", {"withdraw": amount})
        self.schedule_new_orchestration("alert", input=amount)
        if amount > balance:
            raise ValueError(f"insufficient funds: {balance} < {amount}")
        return balance - amount

    def get_balance(self) -> int:
        return self.get_state(int, 0)

    def leak(self) -> Any:
        self.set_state(1)
        return object()


@pytest.mark.parametrize("shape", [v1, v2])
async def test_a_failing_operation_is_rolled_back_alone(shape: Any) -> None:
    registry = registry_with(Account)
    item = shape(
        "@account@a",
        100,
        ("withdraw", 30),
        ("withdraw", 500),
        ("deposit", 5),
        ("leak", None),
        ("get_balance", None),
    )
    result = await run(registry, item)
    got = outcomes(result)
    assert got[0] == 70
    assert got[1] == ("failed", "ValueError", "insufficient funds: 70 < 500")
    assert got[2] == 75
    assert got[3][:2] == ("failed", "dtask_async.PayloadError")
    assert "result of operation 'leak' on entity @account@a" in got[3][2]
    assert got[4] == 75
    assert state(result) == 75
    kept = [
        (a.id, a.WhichOneof("operationActionType"), a.sendSignal.input.value)
        for a in result.actions
    ]
    assert kept == [
        (0, "sendSignal", '{"withdraw":30}'),
        (1, "startNewOrchestration", ""),
        (2, "sendSignal", '{"deposit":5}'),
    ]
    assert result.actions[1].startNewOrchestration.name == "alert"
    failure = result.results[1].failure
    assert failure.failureDetails.HasField("stackTrace")
    assert failure.HasField("startTimeUtc")


# -- dispatch ----------------------------------------------------------------------------


class Gadget(entities.DurableEntity):
    seen_threads: list[str] = []  # noqa: RUF012 - test bookkeeping

    def __init__(self) -> None:
        self.set_state({"count": 0})

    async def bump(self, by: int = 1) -> int:
        await asyncio.sleep(0)
        count = self.get_state(dict)["count"] + by
        self.set_state({"count": count})
        return count

    def where(self) -> str:
        name = threading.current_thread().name
        Gadget.seen_threads.append(name)
        return name

    def echo(self, value: Any = None) -> Any:
        return value

    def typed(self, point: Point) -> str:
        return f"{type(point).__name__}({point.x}, {point.y})"

    @staticmethod
    def constant() -> int:
        return 42


@dataclasses.dataclass
class Point:
    x: int
    y: int


async def test_class_operations_are_dispatched_by_name() -> None:
    registry = registry_with(Gadget)
    result = await run(
        registry,
        v1(
            "@gadget@g",
            None,
            ("bump", None),
            ("BUMP", 5),
            ("echo", None),
            ("echo", [1]),
            ("typed", {"x": 1, "y": 2}),
            ("constant", "ignored input"),
            ("where", None),
            ("delete", None),
        ),
    )
    got = outcomes(result)
    assert got[:6] == [1, 6, None, [1], "Point(1, 2)", 42]
    assert got[6] != threading.current_thread().name  # sync operations run in threads
    assert got[7] is None
    assert state(result) is None  # deleted


async def test_unknown_operations_name_the_entity_and_the_operation() -> None:
    result = await run(
        registry_with(Account), v1("@account@a", 5, ("steal", 5), ("get_state", None))
    )
    got = outcomes(result)
    assert got[0] == (
        "failed",
        "EntityOperationNotFoundError",
        "entity @account@a (class Account) has no operation 'steal'; its operations are: "
        "delete, deposit, get_balance, leak, withdraw",
    )
    assert got[1][2].startswith("entity @account@a (class Account) has no operation 'get_state'")
    assert state(result) == 5


async def test_async_function_entities_and_input_types() -> None:
    async def tally(ctx: entities.EntityContext, point: Point) -> Any:
        await asyncio.sleep(0)
        if ctx.operation == "put":
            ctx.set_state(point)
            return type(point).__name__
        return ctx.get_state(Point)

    def no_input(ctx: entities.EntityContext) -> str:
        return ctx.operation

    registry = registry_with(tally, no_input)
    result = await run(registry, v1("@tally@t", None, ("put", {"x": 3, "y": 4}), ("get", None)))
    put, got = outcomes(result)
    assert put == "Point"
    assert got == {"x": 3, "y": 4, "__durabletask_autoobject__": True}  # a dataclass again
    assert outcomes(await run(registry, v1("@no_input@n", None, ("hello", 1)))) == ["hello"]


async def test_bad_input_fails_only_that_operation() -> None:
    item = v1("@counter@k", 1, ("add", 1), ("add", None))
    item.entityRequest.operations[1].input.value = "{not json"
    result = await run(registry_with((counter, "counter")), item)
    got = outcomes(result)
    assert got[0] is None
    assert got[1][:2] == ("failed", "dtask_async.PayloadError")
    assert state(result) == 2


# -- whole-batch refusals --------------------------------------------------------------------


async def test_unregistered_entity_fails_every_operation_and_keeps_the_state() -> None:
    registry = registry_with((counter, "counter"))
    result = await run(registry, v2("@ghost@g", {"keep": True}, ("a", None), ("b", 1)))
    assert (
        outcomes(result)
        == [
            (
                "failed",
                "EntityNotRegisteredError",
                "entity 'ghost' is not registered with this worker (registered entities: counter)",
            )
        ]
        * 2
    )
    assert all(r.failure.failureDetails.isNonRetriable for r in result.results)
    assert state(result) == {"keep": True}
    assert len(result.operationInfos) == 2


async def test_invalid_entity_id_fails_every_operation() -> None:
    result = await run(registry_with((counter, "counter")), v1("not-an-entity", 3, ("get", None)))
    assert outcomes(result)[0][:2] == ("failed", "dtask_async.InvalidInstanceIdError")
    assert "not-an-entity" in outcomes(result)[0][2]
    assert state(result) == 3


async def test_oversized_results_become_failures() -> None:
    item = v2("@counter@k", 1, ("add", 1), ("get", None))
    work = read_entity_work(item)
    result = oversized_result(work, PayloadTooLargeError("too big", size=10, limit=5))
    assert [o[1] for o in outcomes(result)] == ["dtask_async.PayloadTooLargeError"] * 2
    assert state(result) == 1
    assert len(result.operationInfos) == 2
    assert result.completionToken == "token-2"


async def test_unexpected_v2_events_are_skipped() -> None:
    item = v2("@counter@k", None, ("add", 2))
    item.entityRequestV2.operationRequests.add(eventId=-1).eventRaised.name = "odd"
    result = await run(registry_with((counter, "counter")), item)
    assert outcomes(result) == [None]
    assert len(result.operationInfos) == 1


# -- registration -------------------------------------------------------------------------


def test_registration_rules() -> None:
    registry = Registry()
    assert registry.add_entity(Counter) == "counter"
    assert registry.add_entity(counter, "Counter2") == "counter2"
    assert registry.entities["counter"].is_class
    described = registry.entities["counter2"]
    assert (described.is_async, described.takes_input, described.input_type) == (
        False,
        True,
        int,
    )
    with pytest.raises(RegistrationError, match="already registered"):
        registry.add_entity(counter)
    with pytest.raises(RegistrationError, match=r"must subclass entities\.DurableEntity"):
        registry.add_entity(Point)
    with pytest.raises(RegistrationError, match="contain no '@'"):
        registry.add_entity(counter, "a@b")
    with pytest.raises(RegistrationError, match="a function"):
        registry.add_entity(42)
