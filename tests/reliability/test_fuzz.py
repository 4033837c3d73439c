"""Promise 8: any input to the connection-string parser and to the replay engine gives a
result or a clear error, never a hang or a crashed worker (property-based, hypothesis)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from dtask_async import ConnectionStringError, task
from dtask_async._proto import Timestamp, pb
from dtask_async.azuremanaged import (
    DurableTaskSchedulerClient,
    DurableTaskSchedulerConnectionString,
)
from dtask_async.orchestration import OrchestrationRunner
from dtask_async.worker import AsyncDurableTaskWorker

from .fake_sidecar import FakeSidecar, Plan, activity_item, orchestrator_item

FUZZ = settings(
    max_examples=300,
    deadline=1000,  # ms per example: a hang or a quadratic blow-up fails here
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- connection strings ----------------------------------------------------------------

KEYS = [
    "Endpoint",
    "TaskHub",
    "Authentication",
    "ClientID",
    "TenantId",
    "TokenFilePath",
    "AdditionallyAllowedTenants",
    "ResourceId",
    "AuthorityHost",
]
VALUES = [
    "https://NAME.westus2.durabletask.io",
    "http://localhost:8080",
    "localhost:8080",
    "https://[::1]:443",
    "https://[::1",
    "https://x:99999",
    "grpc://x",
    "None",
    "DefaultAzure",
    "managed identity",
    "https://durabletask.io/.default",
    "/.default",
    "https://login.microsoftonline.us/",
    "a,b, ,c",
    "",
    " ",
    "=",
    ";",
    "\x00",
    "\udcff",
]


def _case(text: str) -> st.SearchStrategy[str]:
    return st.sampled_from([text, text.lower(), text.upper(), f" {text} "])


segments = st.one_of(
    st.builds(
        lambda key, value: f"{key}={value}",
        st.sampled_from(KEYS).flatmap(_case) | st.text(max_size=12),
        st.sampled_from(VALUES) | st.text(max_size=40),
    ),
    st.text(max_size=20),
)
connection_strings = st.one_of(
    st.lists(segments, max_size=8).map(";".join),
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("utf-8", "surrogateescape")),
)


@FUZZ
@given(connection_strings)
def test_connection_string_parser_gives_a_result_or_a_clear_error(text: str) -> None:
    """Promise (DESIGN §7): any text given as a connection string is either parsed
    into a usable, normalized value or refused with a ConnectionStringError (a
    ValueError) with a message; never another exception, never a hang."""
    try:
        parsed = DurableTaskSchedulerConnectionString.parse(text)
    except ConnectionStringError as exc:
        message = str(exc)
        assert message
        return
    assert parsed.endpoint.startswith(("http://", "https://"))
    assert parsed.secure == parsed.endpoint.startswith("https://")
    assert parsed.token_scope.endswith("/.default")
    assert "\n" not in repr(parsed) or "\n" in text
    # The normalized form parses to the same thing.
    again = DurableTaskSchedulerConnectionString.parse(
        f"Endpoint={parsed.endpoint};Authentication={parsed.authentication.value}"
    )
    assert again.endpoint == parsed.endpoint


@FUZZ
@given(connection_strings, st.sampled_from([None, "hub"]))
def test_scheduler_client_accepts_or_refuses_any_connection_string(
    text: str, hub: str | None
) -> None:
    """Promise (DESIGN §7): building a scheduler client from any connection string
    either works (no I/O happens) or raises a ValueError saying why."""
    try:
        client = DurableTaskSchedulerClient(text, task_hub_name=hub)
    except ValueError as exc:
        message = str(exc)
        assert message
        return
    assert client.address


# -- the replay engine -----------------------------------------------------------------


def fuzzed(ctx: task.OrchestrationContext, value: Any) -> Any:
    """Uses every kind of task, so that fuzzed histories reach every handler."""
    ctx.set_custom_status({"seen": value})
    first = yield ctx.call_activity("a", input=value)
    retried = ctx.call_activity(
        "r", retry_policy=task.RetryPolicy(first_retry_interval=1, max_number_of_attempts=3)
    )
    timer = ctx.create_timer(timedelta(seconds=1))
    event = ctx.wait_for_external_event("go")
    child = ctx.call_sub_orchestrator("child", input=first)
    winner = yield task.when_any([timer, event, child, retried])
    results = yield task.when_all([ctx.call_activity("b", input=i) for i in range(2)])
    if value == "again":
        ctx.continue_as_new("done")
        return None
    return [first, results, winner is event]


async def fuzzed_async(ctx: task.OrchestrationContext, value: Any) -> Any:
    first = await ctx.call_activity("a", input=value)
    try:
        second = await ctx.call_activity("b", input=first)
    except task.TaskFailedError as exc:
        second = str(exc)
    await ctx.create_timer(timedelta(seconds=2))
    return [first, second, await ctx.wait_for_external_event("go")]


REGISTERED = {"fuzzed": fuzzed, "fuzzed_async": fuzzed_async}

json_or_not = st.one_of(
    st.none(),
    st.sampled_from(['"x"', "1", "[1,2]", '{"a":1}', "null", "again", "{", "", "1e999"]),
    st.text(max_size=30),
)
valid_json = st.sampled_from(['"x"', "1", "[1,2]", '{"a":1}', "null", '"again"', "true"])
mostly_json = st.one_of(valid_json, valid_json, valid_json, json_or_not)
small_ids = st.integers(min_value=-1, max_value=6)
timestamps = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=4_000_000_000),
    st.integers(min_value=-(2**62), max_value=2**62),
)
names = st.sampled_from(["fuzzed", "fuzzed_async", "a", "b", "r", "go", "GO", "child", "x", ""])

KINDS = [
    "executionStarted",
    "executionCompleted",
    "executionTerminated",
    "taskScheduled",
    "taskCompleted",
    "taskFailed",
    "subOrchestrationInstanceCreated",
    "subOrchestrationInstanceCompleted",
    "subOrchestrationInstanceFailed",
    "timerCreated",
    "timerFired",
    "orchestratorStarted",
    "orchestratorCompleted",
    "eventSent",
    "eventRaised",
    "genericEvent",
    "historyState",
    "continueAsNew",
    "executionSuspended",
    "executionResumed",
    "entityOperationSignaled",
    "entityOperationCalled",
    "entityOperationCompleted",
    "entityOperationFailed",
    "entityLockRequested",
    "entityLockGranted",
    "entityUnlockSent",
    "executionRewound",
    None,  # an event of no type
]


def _stamp(target: Timestamp, seconds: int | None) -> None:
    if seconds is not None:
        target.seconds = seconds


@st.composite
def history_events(draw: st.DrawFn) -> pb.HistoryEvent:
    event = pb.HistoryEvent(eventId=draw(small_ids))
    _stamp(event.timestamp, draw(timestamps))
    kind = draw(st.sampled_from(KINDS))
    if kind is None:
        return event
    body = getattr(event, kind)
    body.SetInParent()
    fields = body.DESCRIPTOR.fields_by_name

    def has(name: str, kind: str) -> bool:
        field = fields.get(name)
        if field is None:
            return False
        if kind == "message":
            return field.message_type is not None
        return field.message_type is None

    if has("name", "scalar"):
        body.name = draw(names)
    for name in ("taskScheduledId", "timerId"):
        if has(name, "scalar"):
            setattr(body, name, draw(small_ids))
    for name in ("input", "result"):
        if has(name, "message"):
            payload = draw(json_or_not)
            if payload is not None:
                getattr(body, name).value = payload
    if has("fireAt", "message"):
        _stamp(body.fireAt, draw(timestamps))
    if has("failureDetails", "message"):
        body.failureDetails.errorMessage = draw(st.text(max_size=20))
        body.failureDetails.isNonRetriable = draw(st.booleans())
    if has("requestId", "scalar"):
        body.requestId = draw(st.sampled_from(["", "r1", "00000000-0000-0000-0000-000000000000"]))
    if has("criticalSectionId", "scalar"):
        body.criticalSectionId = draw(st.sampled_from(["", "cs"]))
    return event


@st.composite
def plausible_starts(draw: st.DrawFn) -> list[pb.HistoryEvent]:
    """``orchestratorStarted`` then ``executionStarted`` of a registered orchestrator."""
    started = pb.HistoryEvent(eventId=-1)
    started.orchestratorStarted.SetInParent()
    _stamp(started.timestamp, draw(timestamps))
    execution = pb.HistoryEvent(eventId=-1)
    execution.executionStarted.name = draw(st.sampled_from(["fuzzed", "fuzzed_async"]))
    value = draw(mostly_json)
    if value is not None:
        execution.executionStarted.input.value = value
    execution.executionStarted.orchestrationInstance.instanceId = "fuzz"
    return [started, execution]


def _record(action: pb.OrchestratorAction) -> pb.HistoryEvent | None:
    """The history event a backend writes for ``action``."""
    event = pb.HistoryEvent(eventId=action.id)
    kind = action.WhichOneof("orchestratorActionType")
    if kind == "scheduleTask":
        event.taskScheduled.name = action.scheduleTask.name
    elif kind == "createTimer":
        event.timerCreated.fireAt.CopyFrom(action.createTimer.fireAt)
    elif kind == "createSubOrchestration":
        event.subOrchestrationInstanceCreated.name = action.createSubOrchestration.name
        event.subOrchestrationInstanceCreated.instanceId = action.createSubOrchestration.instanceId
    else:
        return None
    return event


@st.composite
def answer(draw: st.DrawFn, record: pb.HistoryEvent) -> pb.HistoryEvent:
    """A (possibly odd) answer to the task ``record`` created."""
    event = pb.HistoryEvent(eventId=-1)
    task_id = record.eventId
    kind = record.WhichOneof("eventType")
    payload = draw(mostly_json)
    if kind == "timerCreated":
        event.timerFired.timerId = task_id
        event.timerFired.fireAt.CopyFrom(record.timerCreated.fireAt)
        return event
    failed = draw(st.integers(min_value=0, max_value=3)) == 0
    body: Any
    if kind == "taskScheduled":
        body = event.taskFailed if failed else event.taskCompleted
    else:
        body = (
            event.subOrchestrationInstanceFailed
            if failed
            else event.subOrchestrationInstanceCompleted
        )
    body.taskScheduledId = task_id
    if failed:
        body.failureDetails.errorMessage = "fuzzed failure"
        body.failureDetails.isNonRetriable = draw(st.booleans())
    elif payload is not None:
        body.result.value = payload
    return event


@st.composite
def coherent_histories(draw: st.DrawFn) -> list[pb.HistoryEvent]:
    """Histories a backend could write: the engine's own actions recorded, then
    answered (successes, failures, odd payloads, events), episode after episode, with
    a little noise."""
    history = draw(plausible_starts())
    open_tasks: list[pb.HistoryEvent] = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        result = OrchestrationRunner("fuzz", REGISTERED.get).execute(history, [])
        if result.is_complete:
            break
        history.append(_completed())
        for action in result.actions:
            record = _record(action)
            if record is not None:
                history.append(record)
                open_tasks.append(record)
        started = pb.HistoryEvent(eventId=-1)
        started.orchestratorStarted.SetInParent()
        history.append(started)
        if open_tasks:
            chosen = draw(st.lists(st.sampled_from(open_tasks), max_size=3, unique_by=id))
            for record in chosen:
                history.append(draw(answer(record)))
                if draw(st.booleans()):
                    open_tasks.remove(record)
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            raised = pb.HistoryEvent(eventId=-1)
            raised.eventRaised.name = "go"
            if (payload := draw(mostly_json)) is not None:
                raised.eventRaised.input.value = payload
            history.append(raised)
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            history.append(draw(history_events()))
    return history


def _completed() -> pb.HistoryEvent:
    event = pb.HistoryEvent(eventId=-1)
    event.orchestratorCompleted.SetInParent()
    return event


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[pb.HistoryEvent], list[pb.HistoryEvent]]:
    """(past, new): a coherent history, or a plausible start followed by random
    events, or random events alone; cut anywhere."""
    events = draw(
        st.one_of(
            coherent_histories(),
            st.builds(
                lambda start, rest: start + rest,
                st.one_of(plausible_starts(), st.just([])),
                st.lists(history_events(), max_size=25),
            ),
        )
    )
    cut = draw(st.integers(min_value=0, max_value=len(events)))
    return events[:cut], events[cut:]


def run_episode(
    past: list[pb.HistoryEvent], new: list[pb.HistoryEvent], runner: OrchestrationRunner | None
) -> pb.OrchestratorResponse:
    """What the worker does with a work item: replay and build the response."""
    runner = runner or OrchestrationRunner("fuzz", REGISTERED.get)
    result = runner.execute(past, new)
    response = pb.OrchestratorResponse(instanceId="fuzz", actions=result.actions)
    if result.custom_status is not None:
        response.customStatus.value = result.custom_status
    response.SerializeToString()  # everything in it can be sent
    return response


@FUZZ
@given(histories(), st.lists(history_events(), max_size=10))
def test_replay_engine_gives_actions_for_any_history(
    history: tuple[list[pb.HistoryEvent], list[pb.HistoryEvent]], more: list[pb.HistoryEvent]
) -> None:
    """Promise (DESIGN §3, §7): the replay engine turns any history (events of any kind
    in any order, unknown ids, payloads that are not JSON, absurd timestamps, no start
    at all) into actions that can be sent, raising nothing: a history it cannot make
    sense of fails that orchestration. The next episode of the same runner (incremental
    replay) holds to the same rule."""
    past, new = history
    runner = OrchestrationRunner("fuzz", REGISTERED.get)
    response = run_episode(past, new, runner)
    event(_outcome(response))
    follow_up = runner.continue_with([*past, *new], more)
    if follow_up is not None:
        pb.OrchestratorResponse(actions=follow_up.actions).SerializeToString()


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=12))
def test_replay_engine_survives_events_decoded_from_random_bytes(chunks: list[bytes]) -> None:
    """Promise (DESIGN §7): events decoded from arbitrary bytes (fields of unexpected
    types, unknown fields, truncated messages that happen to parse) are handled like
    any other history: a result, never an exception."""
    events = []
    for chunk in chunks:
        try:
            events.append(pb.HistoryEvent.FromString(chunk))
        except Exception:  # not a HistoryEvent: grpc refuses those before the engine
            continue
    start = pb.HistoryEvent()
    start.executionStarted.name = "fuzzed"
    run_episode([start, *events], [], None)


def _outcome(response: pb.OrchestratorResponse) -> str:
    """A label for hypothesis's statistics: how far the fuzzed episode got."""
    for action in response.actions:
        if action.HasField("completeOrchestration"):
            status = action.completeOrchestration.orchestrationStatus
            return f"finished: {pb.OrchestrationStatus.Name(status)}"
    return f"running, {len(response.actions)} actions"


# -- a real worker fed fuzzed work items -------------------------------------------------

WORK_ITEMS = 40


async def test_worker_answers_every_fuzzed_work_item() -> None:
    """Promise (DESIGN §7): a worker fed orchestrator work items with fuzzed histories
    answers every one with a completion (never an abandon, which would only bring the
    item back forever), stays connected, and still runs ordinary work afterwards."""
    collected: list[tuple[list[pb.HistoryEvent], list[pb.HistoryEvent]]] = []

    @settings(max_examples=WORK_ITEMS, deadline=None, database=None)
    @given(histories())
    def collect(history: tuple[list[pb.HistoryEvent], list[pb.HistoryEvent]]) -> None:
        collected.append(history)

    collect()
    items = [
        orchestrator_item(f"fuzz-{n}", f"fuzz-{n}", past, new)
        for n, (past, new) in enumerate(collected)
    ]
    plan = Plan(items=[*items, activity_item("after", value=4)])
    async with (
        FakeSidecar([plan]) as fake,
        AsyncDurableTaskWorker(host_address=fake.address, shutdown_timeout=1) as worker,
    ):
        for name, fn in REGISTERED.items():
            worker.add_orchestrator(fn, name=name)
        worker.add_activity(_double, name="double")
        await worker.start()
        await fake.wait_for([item.completionToken for item in items] + ["after"], timeout=30)
        assert worker.is_running
    assert not fake.abandoned, f"abandoned: {fake.abandoned}"
    assert fake.completions["after"].result.value == "8"


def _double(ctx: task.ActivityContext, value: int) -> int:
    return value * 2


@pytest.fixture(autouse=True)
def _quiet_engine(caplog: pytest.LogCaptureFixture) -> None:
    # Fuzzed histories make the engine log a warning per odd event: keep them out of
    # the captured output.
    caplog.set_level("ERROR", logger="dtask_async.orchestration")
