"""External events, when_any races, send_event, suspend/resume, terminate, continue-as-new."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from dtask_async import task

from .history import (
    CONTINUED_AS_NEW,
    T0,
    TERMINATED,
    Harness,
    completion,
    event_raised,
    failure,
    output,
    resumed,
    summary,
    suspended,
    task_completed,
    terminated,
    timer_fired,
    ts,
)

# -- waiting for events ------------------------------------------------------------


def test_event_arriving_after_the_wait_completes_it() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        approval = yield ctx.wait_for_external_event("Approval")
        return approval

    h = Harness(orchestrator)
    assert summary(h.start(orchestrator)) == []
    assert summary(h.step(event_raised("Other", 1))) == []
    assert output(h.step(event_raised("Approval", {"ok": True}))) == {"ok": True}


def test_events_are_buffered_case_insensitively_until_waited_for() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("prepare")
        first = yield ctx.wait_for_external_event("approval")
        second = yield ctx.wait_for_external_event("APPROVAL")
        return [first, second]

    h = Harness(orchestrator)
    h.start(orchestrator)
    h.step(event_raised("Approval", "one"))
    h.step(event_raised("aPPROVAL", "two"))
    assert output(h.step(task_completed(1))) == ["one", "two"]


def test_several_waiters_are_served_first_come_first_served() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        waits = [ctx.wait_for_external_event("vote") for _ in range(3)]
        votes = yield task.when_all(waits)
        return votes

    h = Harness(orchestrator)
    h.start(orchestrator)
    h.step(event_raised("vote", "a"))
    assert output(h.step(event_raised("Vote", "b"), event_raised("VOTE", "c"))) == ["a", "b", "c"]


def test_event_without_data_gives_none() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        value = yield ctx.wait_for_external_event("go")
        return {"value": value}

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(event_raised("go"))) == {"value": None}


def test_event_data_type_rebuilds_the_payload() -> None:
    from datetime import datetime

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        when = yield ctx.wait_for_external_event("when", data_type=datetime)
        return type(when).__name__

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(event_raised("when", T0.isoformat()))) == "datetime"


# -- when_any races ----------------------------------------------------------------


@task.orchestration
def approval(ctx: task.OrchestrationContext, _: Any):
    approval_event = ctx.wait_for_external_event("approval_received")
    timeout_event = ctx.create_timer(timedelta(hours=24))
    winner = yield task.when_any([approval_event, timeout_event])
    if winner == timeout_event:
        return "Canceled - approval timeout"
    yield ctx.call_activity("place_order")
    approval_details = approval_event.get_result()
    return f"Approved by '{approval_details.approver}'"


@task.orchestration(name="approval")
async def approval_async(ctx: task.OrchestrationContext, _: Any):
    approval_event = ctx.wait_for_external_event("approval_received")
    timeout_event = ctx.create_timer(timedelta(hours=24))
    winner = await task.when_any([approval_event, timeout_event])
    if winner == timeout_event:
        return "Canceled - approval timeout"
    await ctx.call_activity("place_order")
    approval_details = approval_event.get_result()
    return f"Approved by '{approval_details.approver}'"


@pytest.mark.parametrize("orchestrator", [approval, approval_async], ids=["generator", "async"])
def test_when_any_event_wins(orchestrator: Callable[..., Any]) -> None:
    h = Harness(orchestrator)
    first = h.start("approval")
    assert summary(first) == [(1, "createTimer", ts(T0 + timedelta(hours=24)))]
    from collections import namedtuple

    from dtask_async._serialization import encode

    approval_data = namedtuple("Approval", ["approver"])("manager@company.com")
    event = event_raised("approval_received")
    event.eventRaised.input.value = encode(approval_data) or ""
    assert summary(h.step(event)) == [(2, "scheduleTask", "place_order")]
    assert output(h.step(task_completed(2))) == "Approved by 'manager@company.com'"


@pytest.mark.parametrize("orchestrator", [approval, approval_async], ids=["generator", "async"])
def test_when_any_timer_wins(orchestrator: Callable[..., Any]) -> None:
    h = Harness(orchestrator)
    h.start("approval")
    result = h.step(timer_fired(1, T0 + timedelta(hours=24)), advance=timedelta(hours=24))
    assert output(result) == "Canceled - approval timeout"


def test_when_any_seed_pattern_yields_the_winner_again() -> None:
    def orchestrator(ctx: task.OrchestrationContext, request: dict[str, Any]):
        yield ctx.call_activity("send_approval_request", input=request)
        timeout_at = ctx.current_utc_datetime + timedelta(days=3)
        timer_task = ctx.create_timer(timeout_at)
        approval_task = ctx.wait_for_external_event("ApprovalReceived")
        winner = yield task.when_any([timer_task, approval_task])
        if winner == approval_task:
            decision = yield approval_task
            if decision.get("approved"):
                yield ctx.call_activity("process_approval", input=request)
                return {"status": "approved"}
            return {"status": "rejected"}
        yield ctx.call_activity("escalate_request", input=request)
        return {"status": "escalated"}

    h = Harness(orchestrator)
    h.start(orchestrator, {"id": 1})
    timer = h.step(task_completed(1))
    assert summary(timer) == [(2, "createTimer", ts(T0 + timedelta(seconds=1, days=3)))]
    approve = h.step(event_raised("approvalreceived", {"approved": True}))
    assert summary(approve) == [(3, "scheduleTask", "process_approval")]
    assert output(h.step(task_completed(3))) == {"status": "approved"}


def test_when_any_with_a_failed_task_returns_it_as_winner() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        work = ctx.call_activity("work")
        timer = ctx.create_timer(timedelta(minutes=1))
        winner = yield task.when_any([work, timer])
        return [winner is work, winner.is_failed]

    from .history import task_failed

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(task_failed(1))) == [True, True]


def test_when_any_needs_a_task() -> None:
    with pytest.raises(ValueError, match="at least one task"):
        task.when_any([])


# -- send_event ---------------------------------------------------------------------


def test_send_event_emits_an_action_with_a_sequence_number() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        ctx.send_event("other-instance", "Ping", data={"n": 1})
        result = yield ctx.call_activity("after")
        return result

    h = Harness(orchestrator)
    first = h.start(orchestrator)
    assert summary(first) == [
        (1, "sendEvent", "other-instance", "Ping"),
        (2, "scheduleTask", "after"),
    ]
    assert json.loads(first.actions[0].sendEvent.data.value) == {"n": 1}
    assert output(h.step(task_completed(2, "x"))) == "x"


def test_send_event_rejects_bad_targets() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        errors = []
        for target, name in [("", "e"), ("@counter@x", "e"), ("ok", " ")]:
            try:
                ctx.send_event(target, name)
            except ValueError as e:
                errors.append(type(e).__name__)
        return errors

    result = Harness(orchestrator).start(orchestrator)
    assert output(result) == ["InvalidInstanceIdError", "ValueError", "ValueError"]


# -- suspend / resume / terminate ------------------------------------------------------


def test_events_received_while_suspended_are_applied_on_resume() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        a = yield ctx.call_activity("a")
        b = yield ctx.wait_for_external_event("b")
        return [a, b]

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert summary(h.step(suspended())) == []
    assert summary(h.step(task_completed(1, "A"))) == []
    assert summary(h.step(event_raised("b", "B"))) == []
    assert output(h.step(resumed())) == ["A", "B"]


def test_suspend_and_resume_in_one_work_item() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        return (yield ctx.call_activity("a"))

    h = Harness(orchestrator)
    h.start(orchestrator)
    assert output(h.step(suspended(), task_completed(1, 5), resumed())) == 5


def test_actions_scheduled_before_a_suspension_are_confirmed_normally() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("a")
        return (yield ctx.call_activity("b"))

    h = Harness(orchestrator)
    h.start(orchestrator)
    # Completion of 1 schedules 2, then the instance is suspended in the same work item.
    assert summary(h.step(task_completed(1), suspended())) == [(2, "scheduleTask", "b")]
    # The record of action 2 arrives while suspended: it confirms the action, and
    # nothing is scheduled twice.
    assert summary(h.step(event_raised("noise"))) == []
    assert output(h.step(task_completed(2, "B"), resumed())) == "B"


def test_terminate_completes_with_the_termination_output() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.wait_for_external_event("never")

    h = Harness(orchestrator)
    h.start(orchestrator)
    result = h.step(terminated("User cancelled"))
    complete = completion(result)
    assert complete.orchestrationStatus == TERMINATED
    assert json.loads(complete.result.value) == "User cancelled"
    assert summary(result) == [(1, "completeOrchestration")]


def test_terminate_is_applied_even_while_suspended() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.wait_for_external_event("never")

    h = Harness(orchestrator)
    h.start(orchestrator)
    h.step(suspended())
    complete = completion(h.step(terminated()))
    assert complete.orchestrationStatus == TERMINATED
    assert not complete.HasField("result")


def test_nothing_runs_after_termination() -> None:
    calls: list[str] = []

    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("a")
        calls.append("resumed")
        yield ctx.call_activity("b")

    h = Harness(orchestrator, incremental=False)
    h.start(orchestrator)
    result = h.step(terminated(), task_completed(1))
    assert summary(result) == [(2, "completeOrchestration")]
    assert calls == []


# -- continue-as-new ------------------------------------------------------------------


@task.orchestration
def eternal(ctx: task.OrchestrationContext, iteration: int):
    yield ctx.call_activity("periodic_work", input=iteration)
    yield ctx.create_timer(timedelta(minutes=5))
    ctx.continue_as_new(iteration + 1)


@task.orchestration(name="eternal")
async def eternal_async(ctx: task.OrchestrationContext, iteration: int):
    await ctx.call_activity("periodic_work", input=iteration)
    await ctx.create_timer(timedelta(minutes=5))
    ctx.continue_as_new(iteration + 1)


@pytest.mark.parametrize("orchestrator", [eternal, eternal_async], ids=["generator", "async"])
def test_continue_as_new_restarts_with_new_input(orchestrator: Callable[..., Any]) -> None:
    h = Harness(orchestrator)
    h.start("eternal", 7)
    h.step(task_completed(1))
    result = h.step(timer_fired(2, T0 + timedelta(minutes=5)), advance=timedelta(minutes=5))
    assert summary(result) == [(3, "completeOrchestration")]
    complete = completion(result)
    assert complete.orchestrationStatus == CONTINUED_AS_NEW
    assert json.loads(complete.result.value) == 8
    assert len(complete.carryoverEvents) == 0


def test_continue_as_new_without_save_events_drops_buffered_events() -> None:
    def orchestrator(ctx: task.OrchestrationContext, n: int):
        yield ctx.call_activity("work")
        ctx.continue_as_new(n + 1)

    h = Harness(orchestrator)
    h.start(orchestrator, 0)
    h.step(event_raised("early", 1))
    complete = completion(h.step(task_completed(1)))
    assert complete.orchestrationStatus == CONTINUED_AS_NEW
    assert len(complete.carryoverEvents) == 0


def test_continue_as_new_with_save_events_carries_unconsumed_events_in_order() -> None:
    def orchestrator(ctx: task.OrchestrationContext, n: int):
        consumed = yield ctx.wait_for_external_event("Take")
        yield ctx.call_activity("work", input=consumed)
        ctx.continue_as_new(n + 1, save_events=True, new_version="2")

    h = Harness(orchestrator)
    h.start(orchestrator, 0)
    h.step(event_raised("take", "consumed"))
    h.step(event_raised("Take", "second"), event_raised("Other", {"x": 1}))
    result = h.step(task_completed(1), event_raised("late", None))
    complete = completion(result)
    assert complete.orchestrationStatus == CONTINUED_AS_NEW
    assert complete.newVersion.value == "2"
    carried = [
        (e.eventRaised.name, e.eventRaised.input.value if e.eventRaised.HasField("input") else None)
        for e in complete.carryoverEvents
    ]
    assert carried == [("Take", '"second"'), ("Other", '{"x": 1}'), ("late", None)]
    assert all(e.eventId == -1 for e in complete.carryoverEvents)


def test_continue_as_new_keeps_actions_scheduled_in_the_same_episode() -> None:
    def orchestrator(ctx: task.OrchestrationContext, n: int):
        ctx.send_event("listener", "tick", data=n)
        ctx.continue_as_new(n + 1)
        return "ignored"

    result = Harness(orchestrator).start(orchestrator, 1)
    assert summary(result) == [
        (1, "sendEvent", "listener", "tick"),
        (2, "completeOrchestration"),
    ]
    assert completion(result).orchestrationStatus == CONTINUED_AS_NEW


def test_unserializable_continue_as_new_input_raises_in_the_orchestrator() -> None:
    def orchestrator(ctx: task.OrchestrationContext, _: Any):
        ctx.continue_as_new(object())

    details = failure(Harness(orchestrator).start(orchestrator))
    assert "input of continue_as_new()" in details.errorMessage
