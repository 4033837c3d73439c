"""The same histories through the official ``durabletask`` executor and through ours.

Both SDKs must produce the same actions (ids, kinds, names, inputs, timer times,
child instance ids, completion) for the same history, so that an instance started
by one can be continued by the other. Each scenario is a script of work items; the
histories are built from our actions and fed to both engines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from dtask_async import task as our_task
from dtask_async._proto import pb
from dtask_async.orchestration import OrchestrationRunner

from .history import (
    T0,
    event_raised,
    execution_started,
    orchestrator_completed,
    orchestrator_started,
    record,
    resumed,
    sub_completed,
    sub_failed,
    suspended,
    task_completed,
    task_failed,
    terminated,
    timer_fired,
)

official_task = pytest.importorskip("durabletask.task")
official_worker = pytest.importorskip("durabletask.worker")
official_pb = pytest.importorskip("durabletask.internal.orchestrator_service_pb2")
official_serialization = pytest.importorskip("durabletask.serialization")

Script = list[list[pb.HistoryEvent]]


def _official_actions(
    fn: Callable[..., Any], past: list[pb.HistoryEvent], new: list[pb.HistoryEvent]
) -> list[pb.OrchestratorAction]:
    registry = official_worker._Registry()
    registry.add_named_orchestrator("scenario", fn)
    executor = official_worker._OrchestrationExecutor(
        registry, logging.getLogger("official"), official_serialization.JsonDataConverter()
    )

    def convert(events: list[pb.HistoryEvent]) -> list[Any]:
        return [official_pb.HistoryEvent.FromString(e.SerializeToString()) for e in events]

    result = executor.execute("inst", convert(past), convert(new))
    return [pb.OrchestratorAction.FromString(a.SerializeToString()) for a in result.actions]


def _json(message: Any, field: str) -> Any:
    return json.loads(getattr(message, field).value) if message.HasField(field) else None


def _normal(actions: list[pb.OrchestratorAction]) -> list[tuple[Any, ...]]:
    """What must match between the SDKs (payloads compared as decoded JSON)."""
    out: list[tuple[Any, ...]] = []
    for action in actions:
        kind = action.WhichOneof("orchestratorActionType")
        if kind == "scheduleTask":
            a = action.scheduleTask
            out.append((action.id, kind, a.name, _json(a, "input"), dict(a.tags)))
        elif kind == "createTimer":
            out.append((action.id, kind, action.createTimer.fireAt.ToJsonString()))
        elif kind == "createSubOrchestration":
            c = action.createSubOrchestration
            version = c.version.value if c.HasField("version") else None
            out.append((action.id, kind, c.name, c.instanceId, _json(c, "input"), version))
        elif kind == "sendEvent":
            s = action.sendEvent
            out.append((action.id, kind, s.instance.instanceId, s.name, _json(s, "data")))
        elif kind == "completeOrchestration":
            c = action.completeOrchestration
            carried = [
                (e.eventRaised.name.casefold(), _json(e.eventRaised, "input"))
                for e in c.carryoverEvents
            ]
            out.append(
                (
                    action.id,
                    kind,
                    c.orchestrationStatus,
                    _json(c, "result"),
                    c.HasField("failureDetails"),
                    carried,
                )
            )
        else:  # pragma: no cover
            out.append((action.id, kind))
    return out


def _compare(make: Callable[[ModuleType], Callable[..., Any]], input: Any, script: Script) -> Any:
    ours_fn = make(our_task)
    theirs_fn = make(official_task)
    past: list[pb.HistoryEvent] = []
    new = [orchestrator_started(T0), execution_started("scenario", input)]
    now = T0
    last: list[pb.OrchestratorAction] = []
    for step, events in enumerate([[], *script]):
        if step:
            now += timedelta(seconds=1)
            new = [orchestrator_started(now), *events]
        ours = OrchestrationRunner("inst", lambda name: ours_fn).execute(past, new)
        theirs = _official_actions(theirs_fn, past, new)
        assert _normal(ours.actions) == _normal(theirs), f"work item {step}"
        past += [*new, *record(ours.actions), orchestrator_completed()]
        last = ours.actions
    return _normal(last)


# -- new_uuid --------------------------------------------------------------------------


def test_new_uuid_known_values_match_the_official_sdk() -> None:
    def make(t: ModuleType) -> Callable[..., Any]:
        def scenario(ctx: Any, _: Any):
            first = [ctx.new_uuid(), ctx.new_uuid()]
            yield ctx.call_activity("a")
            return [*first, ctx.new_uuid()]

        return scenario

    final = _compare(make, None, [[task_completed(1)]])
    uuids = final[-1][3]
    # Computed by durabletask 1.12.0 for instance "inst" at 2024-05-06T07:08:09.123456Z.
    assert uuids[:2] == [
        "fbf3dde1-a0e8-5d0d-a49d-7ff3e28f9eb7",
        "0dd67449-fb57-5ffd-864b-9518e4d6927d",
    ]
    assert len(set(uuids)) == 3


# -- scenarios ---------------------------------------------------------------------------


def _chain(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, name: str):
        a = yield ctx.call_activity("hello", input=name, tags={"k": "v"})
        b = yield ctx.call_activity("hello", input={"prev": a})
        return [a, b]

    return scenario


def _fan(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, items: list[int]):
        try:
            results = yield t.when_all([ctx.call_activity("work", input=i) for i in items])
        except t.TaskFailedError:
            results = yield ctx.call_activity("recover")
        return results

    return scenario


def _retry(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, _: Any):
        policy = t.RetryPolicy(
            first_retry_interval=timedelta(seconds=5),
            max_number_of_attempts=3,
            backoff_coefficient=2.0,
            max_retry_interval=timedelta(seconds=7),
        )
        a = yield ctx.call_activity("flaky", input=1, retry_policy=policy)
        b = yield ctx.call_sub_orchestrator("child", input=2, retry_policy=policy)
        return [a, b]

    return scenario


def _long_timer(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, _: Any):
        yield ctx.create_timer(timedelta(days=7, hours=1))
        yield ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=1))
        return "later"

    return scenario


def _children(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, _: Any):
        tasks = [ctx.call_sub_orchestrator("child", input=i) for i in range(10)]
        named = ctx.call_sub_orchestrator("child", instance_id="fixed", version="2")
        results = yield t.when_all([*tasks, named])
        return results

    return scenario


def _race(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, _: Any):
        early = yield ctx.call_activity("prepare")
        approval = ctx.wait_for_external_event("Approval")
        timeout = ctx.create_timer(timedelta(hours=1))
        winner = yield t.when_any([approval, timeout])
        ctx.send_event("audit", "decided", data=early)
        if winner == approval:
            second = yield ctx.wait_for_external_event("APPROVAL")
            return [approval.get_result(), second]
        return "timeout"

    return scenario


def _eternal(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, n: int):
        got = yield ctx.wait_for_external_event("tick")
        yield ctx.call_activity("work", input=[n, got])
        ctx.continue_as_new(n + 1, save_events=True)

    return scenario


def _suspendable(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, _: Any):
        a = yield ctx.call_activity("a")
        b = yield ctx.wait_for_external_event("b")
        c = yield ctx.call_activity("c")
        return [a, b, c]

    return scenario


def _failing(t: ModuleType) -> Callable[..., Any]:
    def scenario(ctx: Any, _: Any):
        yield ctx.call_activity("a")
        raise ValueError("bad")

    return scenario


SCENARIOS: dict[str, tuple[Callable[[ModuleType], Callable[..., Any]], Any, Script]] = {
    "chain": (_chain, "x", [[task_completed(1, "A")], [task_completed(2, "B")]]),
    "fan-in": (
        _fan,
        [1, 2, 3],
        [[task_completed(2, 20)], [task_completed(1, 10), task_completed(3, 30)]],
    ),
    "fan-in-failure": (
        _fan,
        [1, 2],
        [[task_failed(2, "no")], [task_completed(1, 1)], [task_completed(3, "recovered")]],
    ),
    "retries": (
        _retry,
        None,
        [
            [task_failed(1)],
            [timer_fired(2, T0 + timedelta(seconds=6))],
            [task_failed(1)],
            [timer_fired(3, T0 + timedelta(seconds=10))],
            [task_completed(1, "third")],
            [sub_failed(4)],
            [timer_fired(5, T0 + timedelta(seconds=11))],
            [sub_failed(4)],
            [timer_fired(6, T0 + timedelta(seconds=19))],
            [sub_failed(4)],
        ],
    ),
    "long-timer": (
        _long_timer,
        None,
        [
            [timer_fired(1, T0 + timedelta(days=3))],
            [timer_fired(2, T0 + timedelta(days=6))],
            [timer_fired(3, T0 + timedelta(days=7, hours=1))],
            [timer_fired(4, T0 + timedelta(hours=2))],
        ],
    ),
    "children": (
        _children,
        None,
        [
            [sub_completed(11, "n")],
            [sub_completed(1, 0), sub_failed(2)],
            [sub_completed(i, i) for i in range(3, 11)],
        ],
    ),
    "race-event": (
        _race,
        None,
        [
            [event_raised("approval", "yes"), event_raised("Approval", "again")],
            [task_completed(1, "ready")],
        ],
    ),
    "race-timer": (
        _race,
        None,
        [[task_completed(1, "ready")], [timer_fired(2, T0 + timedelta(hours=1, seconds=1))]],
    ),
    "continue-as-new": (
        _eternal,
        0,
        [
            [event_raised("Tick", 1), event_raised("tick", 2), event_raised("other", 3)],
            [task_completed(1)],
        ],
    ),
    "suspend-resume": (
        _suspendable,
        None,
        [
            [task_completed(1, "A")],
            [suspended()],
            [event_raised("b", "B")],
            [resumed()],
            [task_completed(2, "C")],
        ],
    ),
    "terminate": (_suspendable, None, [[task_completed(1, "A")], [terminated({"why": "ops"})]]),
    "failure": (_failing, None, [[task_completed(1)]]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_actions_as_the_official_sdk(name: str) -> None:
    make, input, script = SCENARIOS[name]
    final = _compare(make, input, script)
    assert final, "the scenario produced no actions at the end"
