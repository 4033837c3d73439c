"""Chaining, fan-out/fan-in, inputs, outputs and failures, in generator and async form."""

from __future__ import annotations

import dataclasses
import json
from collections import namedtuple
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import pytest

from dtask_async import task
from dtask_async.orchestration import OrchestrationRunner

from .history import (
    T0,
    Harness,
    completion,
    execution_started,
    failure,
    orchestrator_started,
    output,
    summary,
    task_completed,
    task_failed,
)


@task.activity
def hello(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name}!"


@task.activity(name="Shout")
def shout(ctx: task.ActivityContext, text: str) -> str:
    return text.upper()


# -- chaining -----------------------------------------------------------------------


@task.orchestration
def chain(ctx: task.OrchestrationContext, _: Any):
    r1 = yield ctx.call_activity(hello, input="Tokyo")
    r2 = yield ctx.call_activity(hello, input="Seattle")
    r3 = yield ctx.call_activity(shout, input=r2)
    return [r1, r2, r3]


@task.orchestration(name="chain")
async def chain_async(ctx: task.OrchestrationContext, _: Any):
    r1 = await ctx.call_activity(hello, input="Tokyo")
    r2 = await ctx.call_activity(hello, input="Seattle")
    r3 = await ctx.call_activity(activity=shout, input=r2)
    return [r1, r2, r3]


@pytest.mark.parametrize("orchestrator", [chain, chain_async], ids=["generator", "async"])
def test_chaining_schedules_one_activity_at_a_time(orchestrator: Callable[..., Any]) -> None:
    h = Harness(orchestrator)
    first = h.start("chain")
    assert summary(first) == [(1, "scheduleTask", "hello")]
    assert json.loads(first.actions[0].scheduleTask.input.value) == "Tokyo"
    assert not first.is_complete
    second = h.step(task_completed(1, "Hello Tokyo!"))
    assert summary(second) == [(2, "scheduleTask", "hello")]
    third = h.step(task_completed(2, "Hello Seattle!"))
    assert summary(third) == [(3, "scheduleTask", "Shout")]
    assert json.loads(third.actions[0].scheduleTask.input.value) == "Hello Seattle!"
    last = h.step(task_completed(3, "HELLO SEATTLE!"))
    assert summary(last) == [(4, "completeOrchestration")]
    assert output(last) == ["Hello Tokyo!", "Hello Seattle!", "HELLO SEATTLE!"]
    assert h.fallbacks == 0


def test_activity_called_by_name_string() -> None:
    def by_name(ctx: task.OrchestrationContext, _: Any):
        return (yield ctx.call_activity("say_hello", input="World"))

    h = Harness(by_name)
    assert summary(h.start(by_name)) == [(1, "scheduleTask", "say_hello")]
    assert output(h.step(task_completed(1, "Hello World!"))) == "Hello World!"


def test_several_completions_in_one_episode() -> None:
    h = Harness(chain)
    h.start(chain)
    # Completions of 1 and 2 in one work item: the code schedules activity 2 and
    # immediately gets its result. Action 2 is still unconfirmed by history, so it
    # is returned along with action 3 (as the official SDK does).
    result = h.step(task_completed(1, "a"), task_completed(2, "b"))
    assert summary(result) == [(2, "scheduleTask", "hello"), (3, "scheduleTask", "Shout")]
    assert json.loads(result.actions[1].scheduleTask.input.value) == "b"


# -- plain functions ------------------------------------------------------------------


def test_plain_function_completes_without_yielding() -> None:
    def add_one(ctx: task.OrchestrationContext, value: int) -> int:
        return value + 1

    result = Harness(add_one).start(add_one, 41)
    assert output(result) == 42
    assert summary(result) == [(1, "completeOrchestration")]


def test_orchestrator_taking_only_the_context() -> None:
    def no_input(ctx: task.OrchestrationContext) -> str:
        return ctx.instance_id

    assert output(Harness(no_input, instance_id="abc").start(no_input)) == "abc"


def test_none_result_completes_without_result_field() -> None:
    def nothing(ctx: task.OrchestrationContext, _: Any) -> None:
        return None

    result = Harness(nothing).start(nothing)
    assert not completion(result).HasField("result")
    assert completion(result).orchestrationStatus == task.OrchestrationStatus.COMPLETED.value


# -- fan-out / fan-in -----------------------------------------------------------------


@task.orchestration
def fan(ctx: task.OrchestrationContext, items: list[str]):
    tasks = [ctx.call_activity(hello, input=item) for item in items]
    results = yield task.when_all(tasks)
    total = yield ctx.call_activity("aggregate", input=results)
    return total


@task.orchestration(name="fan")
async def fan_async(ctx: task.OrchestrationContext, items: list[str]):
    tasks = [ctx.call_activity(hello, input=item) for item in items]
    results = await task.when_all(tasks)
    return await ctx.call_activity("aggregate", input=results)


@pytest.mark.parametrize("orchestrator", [fan, fan_async], ids=["generator", "async"])
def test_fan_out_fan_in_keeps_input_order(orchestrator: Callable[..., Any]) -> None:
    h = Harness(orchestrator)
    first = h.start("fan", ["a", "b", "c"])
    assert summary(first) == [(i, "scheduleTask", "hello") for i in (1, 2, 3)]
    assert summary(h.step(task_completed(3, "C"))) == []
    assert summary(h.step(task_completed(1, "A"))) == []
    gather = h.step(task_completed(2, "B"))
    assert summary(gather) == [(4, "scheduleTask", "aggregate")]
    assert json.loads(gather.actions[0].scheduleTask.input.value) == ["A", "B", "C"]
    assert output(h.step(task_completed(4, 3))) == 3


def test_when_all_of_nothing_completes_at_once() -> None:
    def empty(ctx: task.OrchestrationContext, _: Any):
        results = yield task.when_all([])
        return results

    assert output(Harness(empty).start(empty)) == []


def test_when_all_fails_with_the_first_failure_after_all_finish() -> None:
    seen: list[str] = []

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        tasks = [ctx.call_activity("work", input=i) for i in range(3)]
        try:
            yield task.when_all(tasks)
        except task.TaskFailedError as e:
            seen.append(e.details.message)
            return {"error": e.details.message, "type": e.details.error_type}
        return "ok"

    h = Harness(orchestrator, incremental=False)
    h.start(orchestrator)
    assert summary(h.step(task_failed(2, "second broke", "KeyError"))) == []
    assert summary(h.step(task_failed(1, "first broke"))) == []
    result = h.step(task_completed(3, "fine"))
    assert output(result) == {"error": "second broke", "type": "KeyError"}


def test_uncaught_when_all_failure_fails_the_orchestration() -> None:
    h = Harness(fan)
    h.start(fan, ["a", "b"])
    h.step(task_failed(1, "cannot greet", "ValueError"))
    result = h.step(task_completed(2, "B"))
    details = failure(result)
    assert details.errorType == "ValueError"
    assert details.errorMessage == "cannot greet"


# -- failures -------------------------------------------------------------------------


@task.orchestration
def compensating(ctx: task.OrchestrationContext, order: str):
    try:
        yield ctx.call_activity("charge", input=order)
    except task.TaskFailedError as e:
        ctx.set_custom_status({"error": str(e)})
        yield ctx.call_activity("refund", input=order)
        return {"compensated": e.details.message, "type": e.details.error_type}
    return "charged"


@task.orchestration(name="compensating")
async def compensating_async(ctx: task.OrchestrationContext, order: str):
    try:
        await ctx.call_activity("charge", input=order)
    except Exception as e:  # the seeds catch Exception: TaskFailedError is one
        details = getattr(e, "details", None)
        ctx.set_custom_status({"error": str(e)})
        await ctx.call_activity("refund", input=order)
        return {"compensated": details.message, "type": details.error_type}
    return "charged"


@pytest.mark.parametrize(
    "orchestrator", [compensating, compensating_async], ids=["generator", "async"]
)
def test_activity_failure_is_raised_in_the_orchestrator(orchestrator: Callable[..., Any]) -> None:
    h = Harness(orchestrator)
    h.start("compensating", "order-1")
    refund = h.step(task_failed(1, "card declined", "payments.CardError"))
    assert summary(refund) == [(2, "scheduleTask", "refund")]
    status = json.loads(refund.custom_status or "null")
    assert status == {"error": "activity 'charge' (task 1) failed: card declined"}
    result = h.step(task_completed(2))
    assert output(result) == {"compensated": "card declined", "type": "payments.CardError"}


class InventoryError(Exception):
    pass


def test_uncaught_exception_fails_with_type_message_and_stack() -> None:
    def broken(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("reserve")
        raise InventoryError("out of widgets")

    h = Harness(broken)
    h.start(broken)
    details = failure(h.step(task_completed(1)))
    assert details.errorType == f"{__name__}.InventoryError"
    assert details.errorMessage == "out of widgets"
    assert "raise InventoryError" in details.stackTrace.value


def test_exception_before_first_yield_fails() -> None:
    def broken(ctx: task.OrchestrationContext, _: Any):
        raise RuntimeError("bad start")
        yield  # pragma: no cover

    details = failure(Harness(broken).start(broken))
    assert (details.errorType, details.errorMessage) == ("RuntimeError", "bad start")


def test_unknown_orchestrator_fails_with_its_name() -> None:
    runner = OrchestrationRunner("inst", lambda name: None)
    result = runner.execute([], [orchestrator_started(T0), execution_started("missing")])
    details = failure(result)
    assert details.errorMessage == "orchestrator 'missing' is not registered with this worker"
    assert details.errorType == "OrchestratorNotRegisteredError"


class Opaque:
    __slots__ = ()


def test_unserializable_result_fails_with_clear_message() -> None:
    def returns_socket(ctx: task.OrchestrationContext, _: Any):
        return Opaque()

    details = failure(Harness(returns_socket).start(returns_socket))
    assert "result of orchestrator 'returns_socket'" in details.errorMessage
    assert "not JSON-serializable" in details.errorMessage
    assert "Opaque" in details.errorMessage


def test_unserializable_activity_input_raises_at_the_call_site() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            ctx.call_activity("x", input=Opaque())
        except task.TaskFailedError:  # pragma: no cover - wrong type
            return "wrong"
        except TypeError as e:
            return str(e)
        return "no error"  # pragma: no cover

    message = output(Harness(orchestrator).start(orchestrator))
    assert message.startswith("input of activity 'x' is not JSON-serializable")


def test_invalid_json_input_fails_the_orchestration() -> None:
    def orchestrator(ctx: task.OrchestrationContext, value: Any) -> Any:
        return value

    runner = OrchestrationRunner("inst", lambda name: orchestrator)
    result = runner.execute(
        [], [orchestrator_started(T0), execution_started("o", raw_input="{not json")]
    )
    assert "the input of orchestrator 'o'" in failure(result).errorMessage


def test_yielding_a_non_task_fails_with_clear_message() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield 5

    details = failure(Harness(orchestrator).start(orchestrator))
    assert "yielded int 5, which is not a durable task" in details.errorMessage
    assert details.errorType.endswith("OrchestrationStateError")


def test_awaiting_asyncio_in_async_orchestrator_fails_clearly() -> None:
    import asyncio

    async def orchestrator(ctx: task.OrchestrationContext, _: Any):
        await asyncio.sleep(0)

    details = failure(Harness(orchestrator).start(orchestrator))
    assert "awaited NoneType None, which is not a durable task" in details.errorMessage
    assert "never asyncio" in details.errorMessage


def test_undecodable_activity_result_fails_the_task_not_the_engine() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            yield ctx.call_activity("x")
        except task.TaskFailedError as e:
            return e.details.error_type
        return "no error"  # pragma: no cover

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(task_completed(1, raw="{oops"))).endswith("PayloadError")


# -- context properties ---------------------------------------------------------------


def test_context_exposes_identity_and_start_metadata() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        return {
            "instance": ctx.instance_id,
            "name": ctx.name,
            "version": ctx.version,
            "parent": ctx.parent_instance_id,
            "tags": dict(ctx.tags),
            "now": ctx.current_utc_datetime.isoformat(),
        }

    result = Harness(orchestrator, instance_id="order-7").start(
        orchestrator, version="2.0.0", parent_instance_id="parent-1", tags={"team": "a"}
    )
    assert output(result) == {
        "instance": "order-7",
        "name": "orchestrator",
        "version": "2.0.0",
        "parent": "parent-1",
        "tags": {"team": "a"},
        "now": T0.isoformat(),
    }


def test_top_level_orchestration_has_no_parent_or_version() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        return [ctx.parent_instance_id, ctx.version]

    assert output(Harness(orchestrator).start(orchestrator)) == [None, None]


def test_current_utc_datetime_follows_orchestrator_started_events() -> None:
    times: list[datetime] = []

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        times.append(ctx.current_utc_datetime)
        yield ctx.call_activity("a")
        times.append(ctx.current_utc_datetime)
        yield ctx.call_activity("b")
        times.append(ctx.current_utc_datetime)
        return [t.isoformat() for t in times[-3:]]

    h = Harness(orchestrator, incremental=False)
    h.start(orchestrator)
    h.step(task_completed(1), advance=timedelta(minutes=5))
    result = h.step(task_completed(2), advance=timedelta(minutes=7))
    expected = [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=12)]
    assert output(result) == [t.isoformat() for t in expected]
    assert times[-1].tzinfo is timezone.utc


def test_is_replaying_is_true_for_past_events_only() -> None:
    observed: list[tuple[str, bool]] = []

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        observed.append(("start", ctx.is_replaying))
        yield ctx.call_activity("a")
        observed.append(("after a", ctx.is_replaying))
        yield ctx.call_activity("b")
        observed.append(("after b", ctx.is_replaying))

    h = Harness(orchestrator, incremental=False)
    h.start(orchestrator)
    assert observed == [("start", False)]
    observed.clear()
    h.step(task_completed(1))
    assert observed == [("start", True), ("after a", False)]
    observed.clear()
    h.step(task_completed(2))
    assert observed == [("start", True), ("after a", True), ("after b", False)]


def test_replay_safe_logger_is_silent_while_replaying(caplog: pytest.LogCaptureFixture) -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        ctx.logger.warning("step %d", 1)
        yield ctx.call_activity("a")
        ctx.logger.warning("step %d", 2)

    h = Harness(orchestrator, incremental=False)
    with caplog.at_level("WARNING", logger=__name__):
        h.start(orchestrator)
        h.step(task_completed(1))
    messages = [r.getMessage() for r in caplog.records if r.name == __name__]
    assert messages == ["step 1", "step 2"]


def test_custom_status_is_reported_every_episode() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        ctx.set_custom_status({"stage": "charging"})
        yield ctx.call_activity("charge")
        ctx.set_custom_status("shipping")
        yield ctx.call_activity("ship")
        ctx.set_custom_status(None)
        return "done"

    h = Harness(orchestrator)
    assert json.loads(h.start(orchestrator).custom_status or "") == {"stage": "charging"}
    assert h.step(task_completed(1)).custom_status == '"shipping"'
    assert h.step(task_completed(2)).custom_status is None


def test_new_uuid_is_deterministic_and_matches_the_official_sdk() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        return [ctx.new_uuid() for _ in range(3)]

    # Values computed by durabletask 1.12.0 (instance "inst", 2024-05-06T07:08:09.123456Z).
    assert output(Harness(orchestrator).start(orchestrator)) == [
        "fbf3dde1-a0e8-5d0d-a49d-7ff3e28f9eb7",
        "0dd67449-fb57-5ffd-864b-9518e4d6927d",
        "bace4a95-8246-58e9-b5e9-25a8b9e31dc8",
    ]


# -- typed inputs and results ---------------------------------------------------------


@dataclasses.dataclass
class Order:
    product: str
    quantity: int
    cost: float


class Approval(NamedTuple):
    approver: str
    level: int


def test_dataclass_namedtuple_and_datetime_inputs_are_rebuilt() -> None:
    seen: list[Any] = []

    def by_order(ctx: task.OrchestrationContext, order: Order):
        seen.append(order)
        return f"{order.quantity}x {order.product}"

    def by_approval(ctx: task.OrchestrationContext, approval: Approval):
        seen.append(approval)
        return approval.approver

    def by_time(ctx: task.OrchestrationContext, when: datetime):
        seen.append(when)
        return (when - ctx.current_utc_datetime).total_seconds()

    order = Order("widget", 3, 9.5)
    assert output(Harness(by_order).start(by_order, dataclasses.asdict(order))) == "3x widget"
    assert seen[-1] == order
    assert output(Harness(by_approval).start(by_approval, {"approver": "m", "level": 2})) == "m"
    assert seen[-1] == Approval("m", 2)
    later = (T0 + timedelta(hours=1)).isoformat()
    assert output(Harness(by_time).start(by_time, later)) == 3600.0
    assert seen[-1] == T0 + timedelta(hours=1)


def test_object_inputs_encode_and_results_come_back_with_attributes() -> None:
    Shipment = namedtuple("Shipment", ["carrier", "days"])

    def orchestrator(ctx: task.OrchestrationContext, order: Order):
        shipment = yield ctx.call_activity("plan", input=order)
        return f"{shipment.carrier} in {shipment.days} days"

    h = Harness(orchestrator)
    first = h.start(orchestrator, {"product": "p", "quantity": 1, "cost": 2.0})
    sent = json.loads(first.actions[0].scheduleTask.input.value)
    assert sent["product"] == "p"
    assert sent["__durabletask_autoobject__"] is True
    from dtask_async._serialization import encode

    result = h.step(task_completed(1, raw=encode(Shipment("ups", 2))))
    assert output(result) == "ups in 2 days"


def test_activity_result_is_rebuilt_from_its_return_annotation() -> None:
    def plan(ctx: task.ActivityContext, order: Order) -> Order:  # pragma: no cover
        return order

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        planned = yield ctx.call_activity(plan)
        explicit = yield ctx.call_activity("plan", return_type=Order)
        return [type(planned).__name__, type(explicit).__name__, planned.quantity]

    h = Harness(orchestrator)
    h.start(orchestrator)
    h.step(task_completed(1, {"product": "a", "quantity": 2, "cost": 1.0}))
    result = h.step(task_completed(2, {"product": "b", "quantity": 3, "cost": 1.0}))
    assert output(result) == ["Order", "Order", 2]


# -- tasks ---------------------------------------------------------------------------


def test_completed_task_yielded_again_returns_its_result() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        first = ctx.call_activity("a")
        value = yield first
        again = yield first
        return [value, again, first.get_result(), first.get_exception(), first.is_failed]

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(task_completed(1, "x"))) == ["x", "x", "x", None, False]


def test_get_result_of_unfinished_task_raises_state_error() -> None:
    from dtask_async import OrchestrationStateError

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        pending = ctx.call_activity("a")
        try:
            pending.get_result()
        except OrchestrationStateError as e:
            return str(e)
        return "no error"  # pragma: no cover

    assert "has not completed yet" in output(Harness(orchestrator).start(orchestrator))


def test_failed_task_exposes_its_exception() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        t = ctx.call_activity("a")
        try:
            yield t
        except task.TaskFailedError:
            pass
        error = t.get_exception()
        assert error is not None
        return [t.is_failed, error.details.message, error.error_type]

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(task_failed(1, "nope", "IOError"))) == [True, "nope", "IOError"]


def test_decorators_return_the_function_and_set_the_name() -> None:
    from dtask_async._naming import name_of

    def plain(ctx: task.ActivityContext, x: int) -> int:
        return x

    assert task.activity(plain) is plain
    assert name_of(plain) == "plain"
    assert name_of(shout) == "Shout"
    assert (
        shout(task.ActivityContext(orchestration_id="o", task_id=1, task_name="Shout"), "a") == "A"
    )
    assert name_of(chain_async) == "chain"
    with pytest.raises(ValueError, match="non-empty string"):
        task.orchestration(name="")


def test_activity_context_repr_and_fields() -> None:
    ctx = task.ActivityContext(orchestration_id="o-1", task_id=4, task_name="charge")
    assert (ctx.orchestration_id, ctx.task_id, ctx.task_name) == ("o-1", 4, "charge")
    assert repr(ctx) == "ActivityContext(orchestration_id='o-1', task_id=4, task_name='charge')"


# -- events with no effect ------------------------------------------------------------


def test_informational_and_entity_events_do_not_disturb_the_orchestrator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dtask_async._proto import pb

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        return (yield ctx.call_activity("a"))

    generic = pb.HistoryEvent(eventId=-1)
    generic.genericEvent.data.value = "note"
    state = pb.HistoryEvent(eventId=-1)
    state.historyState.SetInParent()
    rewound = pb.HistoryEvent(eventId=-1)
    rewound.executionRewound.SetInParent()
    entity_done = pb.HistoryEvent(eventId=-1)
    entity_done.entityOperationCompleted.requestId = "r-1"
    untyped = pb.HistoryEvent(eventId=-1)
    h = Harness(orchestrator, incremental=False)
    h.start(orchestrator)
    with caplog.at_level("WARNING"):
        quiet = h.step(generic, state, rewound, entity_done, untyped, execution_started("again"))
    assert summary(quiet) == []
    assert "entityOperationCompleted" in caplog.text
    assert "second ExecutionStarted" in caplog.text
    assert output(h.step(task_completed(1, "ok"))) == "ok"


def test_create_replay_safe_logger_wraps_any_logger(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    target = logging.getLogger("tests.replay_safe")

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        log = ctx.create_replay_safe_logger(target)
        log.info("before")
        yield ctx.call_activity("a")
        log.info("after")

    h = Harness(orchestrator, incremental=False)
    with caplog.at_level("INFO", logger="tests.replay_safe"):
        h.start(orchestrator)
        h.step(task_completed(1))
    assert [r.getMessage() for r in caplog.records if r.name == "tests.replay_safe"] == [
        "before",
        "after",
    ]


def test_episode_result_is_immutable() -> None:
    result = Harness(chain).start(chain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.is_complete = True  # type: ignore[misc]
