"""Entity messages from the official ``durabletask`` executor and from ours, compared.

Request ids, critical-section ids, lock sets, targets, operations, inputs and
action ids must be equal, so that an instance started by one SDK can be replayed
by the other (and the backend sees the same messages from both). The one
difference allowed: which unlock goes first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from dtask_async import entities as our_entities, task as our_task
from dtask_async._proto import pb
from dtask_async.orchestration import OrchestrationRunner
from tests.unit.entities.history import (
    entity_completed,
    entity_failed,
    lock_granted,
    record_all,
)

from .history import T0, execution_started, orchestrator_completed, orchestrator_started

official_task = pytest.importorskip("durabletask.task")
official_entities = pytest.importorskip("durabletask.entities")
official_worker = pytest.importorskip("durabletask.worker")
official_pb = pytest.importorskip("durabletask.internal.orchestrator_service_pb2")
official_serialization = pytest.importorskip("durabletask.serialization")

Respond = Callable[[list[pb.OrchestratorAction]], list[pb.HistoryEvent]]


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


def _payload(message: Any, field: str) -> Any:
    return json.loads(getattr(message, field).value) if message.HasField(field) else None


def _normal(actions: list[pb.OrchestratorAction]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for action in actions:
        kind = action.WhichOneof("orchestratorActionType")
        if kind == "completeOrchestration":
            c = action.completeOrchestration
            out.append((action.id, kind, c.orchestrationStatus, _payload(c, "result")))
            continue
        assert kind == "sendEntityMessage", kind
        message = action.sendEntityMessage
        which = message.WhichOneof("EntityMessageType")
        m = getattr(message, which)
        if which == "entityOperationCalled":
            out.append(
                (
                    action.id,
                    which,
                    m.requestId,
                    m.operation,
                    m.targetInstanceId.value,
                    m.parentInstanceId.value,
                    _payload(m, "input"),
                )
            )
        elif which == "entityOperationSignaled":
            out.append(
                (
                    action.id,
                    which,
                    m.requestId,
                    m.operation,
                    m.targetInstanceId.value,
                    _payload(m, "input"),
                    m.scheduledTime.ToJsonString() if m.HasField("scheduledTime") else None,
                )
            )
        elif which == "entityLockRequested":
            out.append(
                (
                    action.id,
                    which,
                    m.criticalSectionId,
                    list(m.lockSet),
                    m.position,
                    m.parentInstanceId.value,
                )
            )
        else:
            # Which entity each unlock id carries differs (the official SDK reorders
            # its lock list as calls complete); the set of unlocks must be equal.
            out.append((action.id, which, m.criticalSectionId, m.parentInstanceId.value))
    unlocked = sorted(
        a.sendEntityMessage.entityUnlockSent.targetInstanceId.value
        for a in actions
        if a.HasField("sendEntityMessage") and a.sendEntityMessage.HasField("entityUnlockSent")
    )
    if unlocked:
        out.append(("unlocked", *unlocked))
    return out


def _compare(
    make: Callable[[ModuleType, ModuleType], Callable[..., Any]],
    responses: list[Respond],
    *,
    recorded: str = "ours",
) -> Any:
    ours_fn = make(our_task, our_entities)
    theirs_fn = make(official_task, official_entities)
    past: list[pb.HistoryEvent] = []
    new = [orchestrator_started(T0), execution_started("scenario")]
    now = T0
    for step in range(len(responses) + 1):
        ours = OrchestrationRunner("inst", lambda name: ours_fn).execute(past, new)
        theirs = _official_actions(theirs_fn, past, new)
        assert _normal(ours.actions) == _normal(theirs), f"work item {step}"
        if step == len(responses):
            return ours
        actions = ours.actions if recorded == "ours" else theirs
        past = [*past, *new, *record_all(actions), orchestrator_completed()]
        now += timedelta(seconds=1)
        new = [orchestrator_started(now), *responses[step](ours.actions)]
    return None


def _call_id(actions: list[pb.OrchestratorAction], index: int = 0) -> str:
    calls = [
        a.sendEntityMessage.entityOperationCalled.requestId
        for a in actions
        if a.sendEntityMessage.HasField("entityOperationCalled")
    ]
    return calls[index]


def _section_id(actions: list[pb.OrchestratorAction]) -> str:
    return next(
        a.sendEntityMessage.entityLockRequested.criticalSectionId
        for a in actions
        if a.sendEntityMessage.HasField("entityLockRequested")
    )


def test_signal_and_call_match_the_official_sdk() -> None:
    def make(t: ModuleType, e: ModuleType) -> Callable[..., Any]:
        def scenario(ctx: Any, _: Any):
            counter = e.EntityInstanceId("Counter", "my-counter")
            ctx.signal_entity(entity_id=counter, operation_name="add", input={"n": 5})
            first = yield ctx.call_entity(entity=counter, operation="get")
            second = yield ctx.call_entity(counter, "add", 2)
            return [first, second]

        return scenario

    last = _compare(
        make,
        [
            lambda actions: [entity_completed(_call_id(actions), 5)],
            lambda actions: [entity_completed(_call_id(actions), 7)],
        ],
    )
    assert last.is_complete


def test_locks_and_unlocks_match_the_official_sdk() -> None:
    def make(t: ModuleType, e: ModuleType) -> Callable[..., Any]:
        def scenario(ctx: Any, _: Any):
            a = e.EntityInstanceId("account", "b")
            b = e.EntityInstanceId("account", "a")
            with (yield ctx.lock_entities([a, b, a])):
                balance = yield ctx.call_entity(a, "get_balance")
                yield ctx.call_entity(b, "deposit", balance)
            ctx.signal_entity(a, "audit")
            return balance

        return scenario

    _compare(
        make,
        [
            lambda actions: [lock_granted(_section_id(actions))],
            lambda actions: [entity_completed(_call_id(actions), 10)],
            lambda actions: [entity_completed(_call_id(actions))],
        ],
    )


def test_a_history_written_by_the_official_sdk_replays_here() -> None:
    def make(t: ModuleType, e: ModuleType) -> Callable[..., Any]:
        def scenario(ctx: Any, _: Any):
            a = e.EntityInstanceId("account", "b")
            b = e.EntityInstanceId("account", "a")
            with (yield ctx.lock_entities([a, b])):
                yield ctx.call_entity(a, "get_balance")
                yield ctx.call_entity(b, "get_balance")
            counter = e.EntityInstanceId("counter", "c")
            ctx.signal_entity(counter, "add", 1)
            return (yield ctx.call_entity(counter, "get"))

        return scenario

    last = _compare(
        make,
        [
            lambda actions: [lock_granted(_section_id(actions))],
            lambda actions: [entity_completed(_call_id(actions), 1)],
            lambda actions: [entity_completed(_call_id(actions), 2)],
            lambda actions: [entity_completed(_call_id(actions), 3)],
        ],
        recorded="official",
    )
    assert json.loads(last.actions[-1].completeOrchestration.result.value) == 3


def test_failed_operations_match_the_official_sdk() -> None:
    def make(t: ModuleType, e: ModuleType) -> Callable[..., Any]:
        def scenario(ctx: Any, _: Any):
            account = e.EntityInstanceId("account", "a")
            with (yield ctx.lock_entities([account])):
                try:
                    yield ctx.call_entity(account, "withdraw", 100)
                except t.TaskFailedError:
                    return "refused"
                except Exception:  # the official SDK raises its own exception type
                    return "refused"
            return "withdrawn"

        return scenario

    _compare(
        make,
        [
            lambda actions: [lock_granted(_section_id(actions))],
            lambda actions: [entity_failed(_call_id(actions))],
        ],
    )
