"""Entities from the orchestration side: calls, signals, critical sections, replay."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from dtask_async import EntityLockError, EntityOperationFailedError, NonDeterminismError, task
from dtask_async.entities import EntityInstanceId, EntityLock
from dtask_async.orchestration import OrchestrationRunner
from tests.unit.entities.history import (
    EntityHarness,
    entity_completed,
    entity_failed,
    entity_messages,
    lock_granted,
    message,
    record_all,
)

from .history import (
    T0,
    completion,
    execution_started,
    failure,
    orchestrator_completed,
    orchestrator_started,
    output,
    resumed,
    suspended,
    task_completed,
    ts,
)

COUNTER = EntityInstanceId("counter", "my-counter")
ACCOUNT_1 = EntityInstanceId("account", "account-1")
ACCOUNT_2 = EntityInstanceId("account", "account-2")

# new_uuid() of instance "inst" at T0 (the official SDK gives the same values).
FIRST_UUID = "fbf3dde1-a0e8-5d0d-a49d-7ff3e28f9eb7"
SECOND_UUID = "0dd67449-fb57-5ffd-864b-9518e4d6927d"


# -- the seed's patterns ---------------------------------------------------------------


def workflow_with_entity(ctx: task.OrchestrationContext, _: Any):
    entity_id = EntityInstanceId("counter", "my-counter")
    ctx.signal_entity(entity_id=entity_id, operation_name="add", input=5)
    value = yield ctx.call_entity(entity=entity_id, operation="get")
    return f"Counter value: {value}"


def test_signal_then_call_as_in_the_seed() -> None:
    h = EntityHarness(workflow_with_entity)
    first = h.start(workflow_with_entity)
    assert entity_messages(first) == [
        (1, "signal", "@counter@my-counter", "add"),
        (2, "call", "@counter@my-counter", "get"),
    ]
    signal = message(first, 1)
    assert signal.requestId == FIRST_UUID
    assert json.loads(signal.input.value) == 5
    assert not signal.HasField("scheduledTime")
    call = message(first, 2)
    assert call.requestId == SECOND_UUID
    assert call.parentInstanceId.value == "inst"
    assert call.parentExecutionId.value == "exec-1"
    assert not call.HasField("input")
    assert not first.is_complete
    last = h.step(entity_completed(SECOND_UUID, 5))
    assert output(last) == "Counter value: 5"
    assert h.fallbacks == 0


def workflow_with_locks(ctx: task.OrchestrationContext, _: Any):
    entity_id_1 = EntityInstanceId("account", "account-1")
    entity_id_2 = EntityInstanceId("account", "account-2")
    with (yield ctx.lock_entities([entity_id_2, entity_id_1])):
        balance1 = yield ctx.call_entity(entity=entity_id_1, operation="get_balance")
        balance2 = yield ctx.call_entity(entity=entity_id_2, operation="get_balance")
        yield ctx.call_entity(entity=entity_id_1, operation="withdraw", input=100)
        yield ctx.call_entity(entity=entity_id_2, operation="deposit", input=100)
    return ["Transfer complete", balance1, balance2]


def _request_ids(h: EntityHarness) -> list[str]:
    return [m.requestId for r in h.results for m in _calls(r)]


def _calls(result: Any) -> list[Any]:
    return [
        a.sendEntityMessage.entityOperationCalled
        for a in result.actions
        if a.HasField("sendEntityMessage") and a.sendEntityMessage.HasField("entityOperationCalled")
    ]


def test_lock_call_release_as_in_the_seed() -> None:
    h = EntityHarness(workflow_with_locks)
    first = h.start(workflow_with_locks)
    assert entity_messages(first) == [(1, "lock", ["@account@account-1", "@account@account-2"])]
    lock = message(first, 1)
    assert lock.criticalSectionId == FIRST_UUID
    assert lock.position == 0
    assert lock.parentInstanceId.value == "inst"

    granted = h.step(lock_granted(FIRST_UUID))
    assert entity_messages(granted) == [(2, "call", "@account@account-1", "get_balance")]
    second = h.step(entity_completed(message(granted, 2).requestId, 500))
    assert entity_messages(second) == [(3, "call", "@account@account-2", "get_balance")]
    third = h.step(entity_completed(message(second, 3).requestId, 20))
    assert entity_messages(third) == [(4, "call", "@account@account-1", "withdraw")]
    fourth = h.step(entity_completed(message(third, 4).requestId))
    assert entity_messages(fourth) == [(5, "call", "@account@account-2", "deposit")]
    last = h.step(entity_completed(message(fourth, 5).requestId))
    # Leaving the `with` block unlocks each entity, in lock order, then it completes.
    assert entity_messages(last) == [
        (6, "unlock", "@account@account-1"),
        (7, "unlock", "@account@account-2"),
        (8, "completeOrchestration"),
    ]
    assert {message(last, 6).criticalSectionId, message(last, 7).criticalSectionId} == {FIRST_UUID}
    assert message(last, 6).parentInstanceId.value == "inst"
    assert output(last) == ["Transfer complete", 500, 20]
    assert len(set(_request_ids(h))) == 4
    assert h.fallbacks == 0


def test_request_ids_are_the_same_on_every_replay() -> None:
    h = EntityHarness(workflow_with_locks)
    h.start(workflow_with_locks)
    h.step(lock_granted(FIRST_UUID))
    h.step(entity_completed(message(h.results[-1], 2).requestId, 1))
    before = _request_ids(h)
    # Replaying the whole history from scratch confirms every call it made ...
    again = OrchestrationRunner("inst", h.lookup).execute(h.past, [])
    assert again.actions == []
    # ... and replaying up to the last work item makes the same call, same id.
    assert [m.requestId for m in _calls(_replay_last_work_item(h))] == before[-1:]
    # Another instance, or another time, gives other ids.
    other = EntityHarness(workflow_with_locks, instance_id="other")
    assert message(other.start(workflow_with_locks), 1).criticalSectionId != FIRST_UUID
    later = EntityHarness(workflow_with_locks, start=T0 + timedelta(seconds=1))
    assert message(later.start(workflow_with_locks), 1).criticalSectionId != FIRST_UUID


def test_parallel_calls_to_locked_entities_in_a_critical_section() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        with (yield ctx.lock_entities([ACCOUNT_1, ACCOUNT_2, ACCOUNT_1])) as lock:
            assert isinstance(lock, EntityLock)
            balances = yield task.when_all(
                [ctx.call_entity(ACCOUNT_1, "get"), ctx.call_entity(ACCOUNT_2, "get")]
            )
        return balances

    h = EntityHarness(orchestrator)
    first = h.start(orchestrator)
    assert entity_messages(first) == [(1, "lock", ["@account@account-1", "@account@account-2"])]
    granted = h.step(lock_granted(FIRST_UUID))
    assert [m[:3] for m in entity_messages(granted)] == [
        (2, "call", "@account@account-1"),
        (3, "call", "@account@account-2"),
    ]
    ids = [c.requestId for c in _calls(granted)]
    h.step(entity_completed(ids[1], 2))
    last = h.step(entity_completed(ids[0], 1))
    assert output(last) == [1, 2]
    assert [m[1] for m in entity_messages(last)] == ["unlock", "unlock", "completeOrchestration"]


async def async_transfer(ctx: task.OrchestrationContext, amount: int):
    with await ctx.lock_entities([ACCOUNT_1, ACCOUNT_2]):
        await ctx.call_entity(ACCOUNT_1, "withdraw", amount)
        await ctx.call_entity(ACCOUNT_2, "deposit", amount)
    return "done"


def test_async_orchestrators_lock_with_await() -> None:
    h = EntityHarness(async_transfer)
    h.start(async_transfer, 7)
    granted = h.step(lock_granted(FIRST_UUID))
    assert json.loads(message(granted, 2).input.value) == 7
    deposit = h.step(entity_completed(message(granted, 2).requestId))
    last = h.step(entity_completed(message(deposit, 3).requestId))
    assert output(last) == "done"
    assert [m[1] for m in entity_messages(last)] == ["unlock", "unlock", "completeOrchestration"]


# -- results and failures ----------------------------------------------------------------


def test_results_are_rebuilt_as_the_return_type() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        value = yield ctx.call_entity(COUNTER, "get", return_type=float)
        return [value, type(value).__name__]

    h = EntityHarness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(entity_completed(FIRST_UUID, 3))) == [3.0, "float"]


def test_failed_operation_raises_entity_operation_failed_error() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            yield ctx.call_entity(ACCOUNT_1, "withdraw", 1000)
        except EntityOperationFailedError as error:
            return {
                "message": str(error),
                "type": error.details.error_type,
                "entity": str(error.entity_instance_id),
                "operation": error.operation_name,
                "is_task_failure": isinstance(error, task.TaskFailedError),
            }
        return "withdrawn"

    h = EntityHarness(orchestrator)
    h.start(orchestrator)
    result = output(h.step(entity_failed(FIRST_UUID, "insufficient funds: 20 < 1000")))
    assert result == {
        "message": "operation 'withdraw' on entity @account@account-1 failed: "
        "ValueError: insufficient funds: 20 < 1000",
        "type": "ValueError",
        "entity": "@account@account-1",
        "operation": "withdraw",
        "is_task_failure": True,
    }


def test_uncaught_failure_inside_a_critical_section_releases_the_locks() -> None:
    h = EntityHarness(workflow_with_locks)
    h.start(workflow_with_locks)
    granted = h.step(lock_granted(FIRST_UUID))
    last = h.step(entity_failed(message(granted, 2).requestId, "account closed"))
    assert entity_messages(last) == [
        (3, "unlock", "@account@account-1"),
        (4, "unlock", "@account@account-2"),
        (5, "completeOrchestration"),
    ]
    details = failure(last)
    assert details.errorType == "dtask_async.EntityOperationFailedError"
    assert "operation 'get_balance' on entity @account@account-1 failed" in details.errorMessage
    assert "account closed" in details.errorMessage


def test_returning_inside_the_critical_section_releases_before_completing() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        lock = yield ctx.lock_entities([COUNTER])
        value = yield ctx.call_entity(COUNTER, "get")
        assert not lock.is_released
        return value  # never leaves a `with`: the locks go with the orchestration

    h = EntityHarness(orchestrator)
    h.start(orchestrator)
    granted = h.step(lock_granted(FIRST_UUID))
    last = h.step(entity_completed(message(granted, 2).requestId, 41))
    assert entity_messages(last) == [
        (3, "unlock", "@counter@my-counter"),
        (4, "completeOrchestration"),
    ]
    assert output(last) == 41


def test_continue_as_new_inside_a_critical_section_releases_first() -> None:
    def orchestrator(ctx: task.OrchestrationContext, n: int):
        with (yield ctx.lock_entities([COUNTER])):
            yield ctx.call_entity(COUNTER, "add", 1)
            ctx.continue_as_new(n + 1)
        return None

    h = EntityHarness(orchestrator)
    h.start(orchestrator, 0)
    granted = h.step(lock_granted(FIRST_UUID))
    last = h.step(entity_completed(message(granted, 2).requestId))
    assert [m[1] for m in entity_messages(last)] == ["unlock", "completeOrchestration"]
    assert completion(last).orchestrationStatus == 2  # CONTINUED_AS_NEW
    assert json.loads(completion(last).result.value) == 1


def test_a_lock_request_pending_when_the_orchestration_fails_is_released() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        pending = ctx.lock_entities([COUNTER])
        raise RuntimeError(f"gave up waiting for {pending}")

    h = EntityHarness(orchestrator)
    first = h.start(orchestrator)
    assert entity_messages(first) == [
        (1, "lock", ["@counter@my-counter"]),
        (2, "unlock", "@counter@my-counter"),
        (3, "completeOrchestration"),
    ]
    assert failure(first).errorType == "RuntimeError"


def test_the_lock_object_can_be_released_early_and_twice() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        lock = yield ctx.lock_entities([COUNTER])
        lock.release()
        lock.release()
        with lock:
            pass
        ctx.signal_entity(COUNTER, "add", 1)  # no longer locked: signals are fine
        return lock.is_released

    h = EntityHarness(orchestrator)
    h.start(orchestrator)
    last = h.step(lock_granted(FIRST_UUID))
    assert [m[1] for m in entity_messages(last)] == ["unlock", "signal", "completeOrchestration"]
    assert output(last) is True


# -- misuse of critical sections ------------------------------------------------------------


def _misuse(body: Any) -> str:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        with (yield ctx.lock_entities([ACCOUNT_1])):
            yield from body(ctx)
        return "no error"

    h = EntityHarness(orchestrator)
    h.start(orchestrator)
    last = h.step(lock_granted(FIRST_UUID))
    details = failure(last)
    assert details.errorType == "dtask_async.EntityLockError"
    # The failed orchestration still releases its lock.
    assert ("unlock" in [m[1] for m in entity_messages(last)]) is True
    return str(details.errorMessage)


def test_calling_an_entity_that_is_not_locked_is_refused() -> None:
    def body(ctx: task.OrchestrationContext):
        yield ctx.call_entity(ACCOUNT_2, "get")

    message_text = _misuse(body)
    assert "cannot call entity @account@account-2" in message_text
    assert "not locked it (locked: @account@account-1)" in message_text


def test_nested_critical_sections_are_refused() -> None:
    def body(ctx: task.OrchestrationContext):
        yield ctx.lock_entities([ACCOUNT_2])

    assert "critical sections cannot be nested" in _misuse(body)


def test_signaling_a_locked_entity_is_refused() -> None:
    def body(ctx: task.OrchestrationContext):
        ctx.signal_entity(ACCOUNT_1, "deposit", 1)
        yield ctx.call_entity(ACCOUNT_1, "get")

    assert "cannot signal entity @account@account-1 inside the critical section" in _misuse(body)


def test_two_pending_calls_to_one_locked_entity_are_refused() -> None:
    def body(ctx: task.OrchestrationContext):
        first = ctx.call_entity(ACCOUNT_1, "get")
        second = ctx.call_entity(ACCOUNT_1, "get")
        yield task.when_all([first, second])

    assert "earlier call to it is still waiting" in _misuse(body)


def test_calling_before_the_lock_is_granted_is_refused() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        ctx.lock_entities([ACCOUNT_1])
        yield ctx.call_entity(ACCOUNT_1, "get")

    h = EntityHarness(orchestrator)
    first = h.start(orchestrator)
    assert "before the locks requested by lock_entities()" in failure(first).errorMessage


def test_the_misuse_can_be_caught_by_the_orchestrator() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        with (yield ctx.lock_entities([ACCOUNT_1])):
            try:
                ctx.call_entity(ACCOUNT_2, "get")
            except EntityLockError as error:
                return type(error).__name__
        return "no error"

    h = EntityHarness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(lock_granted(FIRST_UUID))) == "EntityLockError"


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda ctx: ctx.lock_entities([]), ValueError, "at least one entity"),
        (lambda ctx: ctx.lock_entities(42), TypeError, "list of entities"),
        (lambda ctx: ctx.call_entity("counter", "get"), ValueError, "'@name@key'"),
        (lambda ctx: ctx.call_entity(COUNTER, ""), ValueError, "non-empty"),
        (lambda ctx: ctx.signal_entity(COUNTER, "add", object()), TypeError, "input of operation"),
    ],
)
def test_bad_arguments_fail_at_the_call_site(call: Any, error: type, text: str) -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        try:
            call(ctx)
        except error as caught:
            return str(caught)
        return "accepted"
        yield

    h = EntityHarness(orchestrator)
    assert text in output(h.start(orchestrator))


# -- signals -------------------------------------------------------------------------------


def test_signals_accept_ids_as_strings_and_a_delivery_time() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        ctx.signal_entity("@Counter@a", "add", 1, signal_time=timedelta(minutes=5))
        ctx.signal_entity(COUNTER, "reset", signal_time=T0 + timedelta(hours=1))
        return "sent"

    h = EntityHarness(orchestrator)
    first = h.start(orchestrator)
    assert entity_messages(first) == [
        (1, "signal", "@counter@a", "add"),
        (2, "signal", "@counter@my-counter", "reset"),
        (3, "completeOrchestration"),
    ]
    assert message(first, 1).scheduledTime.ToJsonString() == ts(T0 + timedelta(minutes=5))
    assert message(first, 2).scheduledTime.ToJsonString() == ts(T0 + timedelta(hours=1))
    assert message(first, 1).requestId != message(first, 2).requestId


# -- replay ---------------------------------------------------------------------------------


def test_history_naming_another_entity_is_non_deterministic() -> None:
    h = EntityHarness(workflow_with_entity)
    h.start(workflow_with_entity)
    changed = [
        event if not event.HasField("entityOperationCalled") else _renamed_call(event)
        for event in h.past
    ]
    result = OrchestrationRunner("inst", h.lookup).execute(changed, [orchestrator_started(T0)])
    details = failure(result)
    assert details.errorType == NonDeterminismError.__module__ + ".NonDeterminismError"
    assert "call_entity 'get' on '@counter@other'" in details.errorMessage
    assert "call_entity 'get' on '@counter@my-counter'" in details.errorMessage


def _renamed_call(event: Any) -> Any:
    copy = type(event)()
    copy.CopyFrom(event)
    copy.entityOperationCalled.targetInstanceId.value = "@counter@other"
    return copy


def test_a_backend_that_records_its_own_request_id_is_followed() -> None:
    h = EntityHarness(workflow_with_entity)
    h.start(workflow_with_entity)
    for event in h.past:
        if event.HasField("entityOperationCalled"):
            event.entityOperationCalled.requestId = "backend-assigned"
    assert output(h.step(entity_completed("backend-assigned", 9))) == "Counter value: 9"


def test_responses_wait_while_suspended() -> None:
    h = EntityHarness(workflow_with_entity)
    h.start(workflow_with_entity)
    assert h.step(suspended(), entity_completed(SECOND_UUID, 1)).actions == []
    assert output(h.step(resumed())) == "Counter value: 1"


def test_unexpected_responses_are_ignored() -> None:
    h = EntityHarness(workflow_with_entity)
    h.start(workflow_with_entity)
    quiet = h.step(
        entity_completed("nobody-asked", 1),
        entity_failed("nobody-asked-either"),
        lock_granted("no-such-section"),
        task_completed(99, "stray"),
    )
    assert quiet.actions == []
    assert output(h.step(entity_completed(SECOND_UUID, 2))) == "Counter value: 2"


def test_a_full_history_replays_to_the_same_result() -> None:
    h = EntityHarness(workflow_with_locks, incremental=False)
    h.start(workflow_with_locks)
    h.step(lock_granted(FIRST_UUID))
    for _ in range(4):
        h.step(entity_completed(_calls(h.results[-1])[0].requestId, 1))
    assert _replay_last_work_item(h) == h.results[-1]


def _replay_last_work_item(h: EntityHarness) -> Any:
    """A fresh runner's result for the last work item, all earlier ones as past events."""
    split = max(i for i, e in enumerate(h.past) if e.HasField("orchestratorStarted"))
    past, tail = h.past[:split], h.past[split:]
    new = [e for e in tail if e.eventId < 0 and not e.HasField("orchestratorCompleted")]
    return OrchestrationRunner("inst", h.lookup).execute(past, new)


def test_records_of_an_official_sdk_history_are_accepted() -> None:
    # Histories written by the official SDK carry no parentExecutionId: the
    # records match on kind, target and operation.
    lookup = {"workflow_with_entity": workflow_with_entity}.get
    events = [orchestrator_started(T0), execution_started("workflow_with_entity")]
    first = OrchestrationRunner("inst", lookup).execute([], events)
    records = record_all(first.actions)
    for record in records:
        if record.HasField("entityOperationCalled"):
            record.entityOperationCalled.ClearField("parentExecutionId")
    past = [*events, *records, orchestrator_completed()]
    new = [orchestrator_started(T0 + timedelta(seconds=1)), entity_completed(SECOND_UUID, 3)]
    assert output(OrchestrationRunner("inst", lookup).execute(past, new)) == "Counter value: 3"
