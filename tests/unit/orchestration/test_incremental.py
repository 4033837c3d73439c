"""``continue_with``: same results as a full replay, at the cost of the new events only,
and a refusal (``None``) whenever the history is not what the runner expects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from dtask_async import task
from dtask_async._proto import pb
from dtask_async.orchestration import EpisodeResult, OrchestrationRunner

from .history import (
    T0,
    event_raised,
    execution_started,
    orchestrator_completed,
    orchestrator_started,
    output,
    record,
    summary,
    task_completed,
    task_scheduled,
    terminated,
    timer_fired,
)


def make_sequence(body_runs: list[int]) -> Callable[..., Any]:
    def sequence(ctx: task.OrchestrationContext, n: int):
        total = 0
        for i in range(n):
            body_runs.append(i)
            if i % 50 == 49:
                yield ctx.create_timer(timedelta(seconds=1))
            total += yield ctx.call_activity("step", input=i)
            ctx.set_custom_status({"done": i + 1})
        return total

    return sequence


def test_two_hundred_steps_incrementally_equal_full_replays() -> None:
    runs: list[int] = []
    replay_runs: list[int] = []
    incremental_fn = make_sequence(runs)
    full_fn = make_sequence(replay_runs)
    runner = OrchestrationRunner("seq", lambda name: incremental_fn)
    past: list[pb.HistoryEvent] = []
    new = [orchestrator_started(T0), execution_started("sequence", 200, instance_id="seq")]
    result = runner.execute(past, new)
    episodes = 1
    now = T0
    while not result.is_complete:
        past += [*new, *record(result.actions), orchestrator_completed()]
        now += timedelta(seconds=2)
        (action,) = result.actions
        if action.HasField("createTimer"):
            new = [orchestrator_started(now), timer_fired(action.id, now)]
        else:
            value = action.scheduleTask.input.value
            new = [orchestrator_started(now), task_completed(action.id, int(value))]
        incremental = runner.continue_with(past, new)
        assert incremental is not None, f"episode {episodes} fell back to a full replay"
        full = OrchestrationRunner("seq", lambda name: full_fn).execute(past, new)
        assert incremental == full, f"episode {episodes}: {summary(incremental)} != {summary(full)}"
        result = incremental
        episodes += 1
    assert output(result) == sum(range(200))
    assert episodes == 1 + 200 + 4  # start, one per activity, one per timer
    # The incremental runner ran each loop body exactly once and saw each event once.
    assert runs == list(range(200))
    assert runner.events_processed == len(past) + len(new)
    # Full replays ran the loop from the start every time: quadratic work.
    assert len(replay_runs) > 200 * 100


# -- refusals ---------------------------------------------------------------------------


def _chain(ctx: task.OrchestrationContext, _: Any):
    a = yield ctx.call_activity("a")
    b = yield ctx.call_activity("b")
    return [a, b]


class Episode:
    """A runner after its first episode, with the history a backend would send next."""

    def __init__(self, fn: Callable[..., Any] = _chain) -> None:
        self.fn = fn
        self.runner = OrchestrationRunner("inst", lambda name: fn)
        self.start = [orchestrator_started(T0), execution_started("chain", instance_id="inst")]
        self.first = self.runner.execute([], self.start)
        self.records = record(self.first.actions)
        self.past = [*self.start, *self.records, orchestrator_completed()]
        self.new = [orchestrator_started(T0 + timedelta(seconds=1)), task_completed(1, "A")]

    def full(self, past: list[pb.HistoryEvent]) -> EpisodeResult:
        return OrchestrationRunner("inst", lambda name: self.fn).execute(past, self.new)


def test_expected_history_is_accepted() -> None:
    e = Episode()
    result = e.runner.continue_with(e.past, e.new)
    assert result is not None
    assert summary(result) == [(2, "scheduleTask", "b")]


def test_bookends_are_optional_and_records_may_come_in_any_order() -> None:
    def fan(ctx: task.OrchestrationContext, _: Any):
        results = yield task.when_all([ctx.call_activity(n) for n in "abc"])
        return results

    e = Episode(fan)
    past = [*e.start, *reversed(e.records)]
    result = e.runner.continue_with(past, e.new)
    assert result == e.full(past)


def test_other_execution_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    e = Episode()
    past = list(e.past)
    past[1] = execution_started("chain", instance_id="inst", execution_id="exec-2")
    with caplog.at_level("DEBUG", logger="dtask_async.orchestration"):
        assert e.runner.continue_with(past, e.new) is None
    assert "full replay needed: another execution" in caplog.text


def test_shorter_history_is_refused() -> None:
    e = Episode()
    # A redelivered work item: the previous episode's result was never committed.
    assert e.runner.continue_with([], e.start) is None


@pytest.mark.parametrize(
    "extra",
    [
        event_raised("sneaky", 1),
        task_completed(1, "early"),
        orchestrator_started(T0),
        task_scheduled(7, "unknown"),
    ],
    ids=["event", "completion", "second-start", "foreign-record"],
)
def test_unexpected_event_in_the_new_past_is_refused(extra: pb.HistoryEvent) -> None:
    e = Episode()
    past = [*e.start, *e.records, extra, orchestrator_completed()]
    if extra.HasField("orchestratorStarted"):
        past.insert(len(e.start), orchestrator_started(T0))
    assert e.runner.continue_with(past, e.new) is None


def test_missing_record_is_refused() -> None:
    e = Episode()
    past = [*e.start, orchestrator_completed()]
    assert e.runner.continue_with(past, e.new) is None
    # A full replay of that history re-emits the unrecorded action.
    assert summary(e.full(past)) == [(1, "scheduleTask", "a"), (2, "scheduleTask", "b")]


def test_record_with_another_name_is_refused() -> None:
    e = Episode()
    past = [*e.start, task_scheduled(1, "not-a"), orchestrator_completed()]
    assert e.runner.continue_with(past, e.new) is None


def test_changed_start_event_is_refused() -> None:
    e = Episode()
    past = list(e.past)
    past[len(e.start) - 1] = execution_started("chain", input="other", instance_id="inst")
    assert e.runner.continue_with(past, e.new) is None


def test_changed_last_processed_event_is_refused() -> None:
    e = Episode()
    second = e.runner.continue_with(e.past, e.new)
    assert second is not None
    past = [*e.past, *e.new, *record(second.actions), orchestrator_completed()]
    changed = list(past)
    changed[len(e.past) + len(e.new) - 1] = task_completed(1, "not A")
    final = [orchestrator_started(T0), task_completed(2, "B")]
    assert e.runner.continue_with(changed, final) is None


def test_finished_orchestration_is_refused() -> None:
    e = Episode()
    done = e.runner.continue_with(e.past, [orchestrator_started(T0), terminated("stop")])
    assert done is not None
    assert done.is_complete
    past = [*e.past, orchestrator_started(T0), terminated("stop"), orchestrator_completed()]
    assert e.runner.continue_with(past, [orchestrator_started(T0), event_raised("x")]) is None


def test_a_refusing_runner_stays_unusable_until_execute() -> None:
    e = Episode()
    assert e.runner.continue_with([], e.new) is None
    assert e.runner.continue_with(e.past, e.new) is None
    result = e.runner.execute(e.past, e.new)
    assert summary(result) == [(2, "scheduleTask", "b")]
    past = [*e.past, *e.new, *record(result.actions), orchestrator_completed()]
    final = e.runner.continue_with(past, [orchestrator_started(T0), task_completed(2, "B")])
    assert final is not None
    assert output(final) == ["A", "B"]


def test_continue_with_before_execute_is_refused() -> None:
    runner = OrchestrationRunner("inst", lambda name: _chain)
    assert runner.continue_with([], [orchestrator_started(T0)]) is None


def test_failed_replay_is_refused() -> None:
    e = Episode()
    past = [*e.start, task_scheduled(1, "a"), orchestrator_completed()]
    broken = e.runner.continue_with(past, [orchestrator_started(T0), task_completed(1)])
    assert broken is not None
    assert not broken.is_complete
    runner = OrchestrationRunner("inst", lambda name: None)
    failed = runner.execute([], e.start)
    assert failed.is_complete
    assert runner.continue_with([*e.start, orchestrator_completed()], e.new) is None


def test_execute_twice_starts_over() -> None:
    runs: list[int] = []
    fn = make_sequence(runs)
    runner = OrchestrationRunner("inst", lambda name: fn)
    start = [orchestrator_started(T0), execution_started("sequence", 3)]
    first = runner.execute([], start)
    again = runner.execute([], start)
    assert first == again
    assert runs == [0, 0]
