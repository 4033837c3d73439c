"""Code that no longer matches its history fails with a message naming both sides."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dtask_async import task
from dtask_async._proto import pb
from dtask_async.orchestration import EpisodeResult, OrchestrationRunner

from .history import (
    T0,
    event_sent,
    execution_started,
    failure,
    orchestrator_completed,
    orchestrator_started,
    sub_created,
    summary,
    task_completed,
    task_scheduled,
    timer_created,
)


def _run(fn: Any, past: list[pb.HistoryEvent], new: list[pb.HistoryEvent]) -> EpisodeResult:
    return OrchestrationRunner("inst", lambda name: fn).execute(past, new)


def _history(*records: pb.HistoryEvent) -> list[pb.HistoryEvent]:
    return [
        orchestrator_started(T0),
        execution_started("order"),
        *records,
        orchestrator_completed(),
    ]


def _later() -> pb.HistoryEvent:
    return orchestrator_started(T0 + timedelta(minutes=1))


def test_different_action_kind_names_history_and_code() -> None:
    def order(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("reserve")
        yield ctx.create_timer(timedelta(minutes=1))  # was: call_activity("charge")

    past = _history(task_scheduled(1, "reserve"))
    past += [_later(), task_completed(1), task_scheduled(2, "charge"), orchestrator_completed()]
    details = failure(_run(order, past, [_later(), task_completed(2)]))
    assert details.errorMessage.startswith(
        "task 2: history has ScheduleTask 'charge' but the orchestrator now calls CreateTimer"
    )
    assert "instance 'inst'" in details.errorMessage
    assert details.errorType.endswith("NonDeterminismError")
    assert not details.HasField("stackTrace")


def test_different_activity_name() -> None:
    def order(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("bill")

    details = failure(
        _run(order, _history(task_scheduled(1, "charge")), [_later(), task_completed(1)])
    )
    assert details.errorMessage.startswith(
        "task 1: history has ScheduleTask 'charge' but the orchestrator now calls "
        "ScheduleTask 'bill'"
    )


def test_history_action_the_code_no_longer_produces() -> None:
    def order(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("reserve")

    past = _history(task_scheduled(1, "reserve"), timer_created(2, T0 + timedelta(hours=1)))
    details = failure(_run(order, past, [_later(), task_completed(1)]))
    assert details.errorMessage.startswith(
        "task 2: history has CreateTimer but the orchestrator now calls nothing with that id"
    )


def test_different_sub_orchestration_name() -> None:
    def order(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_sub_orchestrator("ship_v2")

    past = _history(sub_created(1, "ship", "inst:0001"))
    details = failure(_run(order, past, [_later()]))
    assert details.errorMessage.startswith(
        "task 1: history has CreateSubOrchestration 'ship' but the orchestrator now calls "
        "CreateSubOrchestration 'ship_v2'"
    )


def test_send_event_to_another_target() -> None:
    def order(ctx: task.OrchestrationContext, _: Any):
        ctx.send_event("b", "ping")
        yield ctx.create_timer(timedelta(hours=1))

    past = _history(event_sent(1, "a", "ping"), timer_created(2, T0 + timedelta(hours=1)))
    details = failure(_run(order, past, [_later()]))
    assert details.errorMessage.startswith(
        "task 1: history has SendEvent 'ping' to 'a' but the orchestrator now calls "
        "SendEvent 'ping' to 'b'"
    )


def test_event_sent_name_matches_case_insensitively() -> None:
    def order(ctx: task.OrchestrationContext, _: Any):
        ctx.send_event("a", "PING")
        yield ctx.create_timer(timedelta(hours=1))

    past = _history(event_sent(1, "a", "ping"), timer_created(2, T0 + timedelta(hours=1)))
    assert summary(_run(order, past, [_later()])) == []


def test_entity_record_where_the_code_now_does_something_else_is_non_deterministic() -> None:
    def order(ctx: task.OrchestrationContext, _: Any):
        yield ctx.create_timer(timedelta(hours=1))

    signal = pb.HistoryEvent(eventId=1)
    signal.entityOperationSignaled.requestId = "r"
    signal.entityOperationSignaled.operation = "add"
    signal.entityOperationSignaled.targetInstanceId.value = "@counter@c"
    details = failure(_run(order, _history(signal), [_later()]))
    assert details.errorMessage.startswith(
        "task 1: history has signal_entity 'add' to '@counter@c' but the "
        "orchestrator now calls CreateTimer"
    )


def test_actions_confirmed_before_the_mismatch_are_not_returned() -> None:
    def order(ctx: task.OrchestrationContext, _: Any):
        yield ctx.call_activity("reserve")
        yield ctx.call_activity("other")

    past = _history(task_scheduled(1, "reserve"))
    past += [_later(), task_completed(1), task_scheduled(2, "charge"), orchestrator_completed()]
    result = _run(order, past, [_later()])
    assert summary(result) == [(3, "completeOrchestration")]
