"""Promise 6: bad input gives a clear error and loses no other work."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from dtask_async import (
    ConnectionStringError,
    InvalidArgumentError,
    InvalidInstanceIdError,
    InvalidOperationError,
    OrchestrationNotFoundError,
    PayloadError,
    RegistrationError,
    task,
)
from dtask_async._proto import Empty, pb, pb_grpc
from dtask_async.azuremanaged import (
    DurableTaskSchedulerClient,
    DurableTaskSchedulerConnectionString,
    DurableTaskSchedulerWorker,
)
from dtask_async.backend import EmbeddedBackend
from dtask_async.client import AsyncDurableTaskClient, OrchestrationState, OrchestrationStatus
from dtask_async.entities import DurableEntity, EntityInstanceId
from dtask_async.worker import AsyncDurableTaskWorker, ReconnectPolicy
from tests.conftest import free_port

from . import flows
from .checks import check_all_completed, expected_outputs
from .conftest import Processes, client_for
from .fake_sidecar import FakeSidecar, Plan, activity_item

SURROGATE = "bad \udcff text"  # what ``b"\xff".decode(errors="surrogateescape")`` gives

# -- workflows with bad values inside ---------------------------------------------------


def returns_object(ctx: task.ActivityContext, _: Any) -> Any:
    return object()


def returns_surrogate(ctx: task.ActivityContext, _: Any) -> str:
    return SURROGATE


def raises_surrogate(ctx: task.ActivityContext, _: Any) -> None:
    raise ValueError(f"cannot read {SURROGATE}")


def accepts(ctx: task.ActivityContext, value: Any) -> Any:
    return value


def call(ctx: task.OrchestrationContext, activity: str) -> Any:
    return (yield ctx.call_activity(activity, input=1))


def output_object(ctx: task.OrchestrationContext, _: Any) -> Any:
    return object()


def output_surrogate(ctx: task.OrchestrationContext, _: Any) -> str:
    return SURROGATE


def raise_surrogate(ctx: task.OrchestrationContext, _: Any) -> None:
    raise ValueError(f"cannot read {SURROGATE}")


def status_object(ctx: task.OrchestrationContext, _: Any) -> int:
    ctx.set_custom_status({"lock": object()})
    return 1


def activity_input_object(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.call_activity(accepts, input={"lock": object()}))


def sub_unknown(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.call_sub_orchestrator("no_such_sub_orchestrator"))


def echo(ctx: task.OrchestrationContext, value: Any) -> Any:
    return value


def gate(ctx: task.OrchestrationContext, _: Any) -> Any:
    """Waits for the event ``open``: work in progress while bad input arrives."""
    return (yield ctx.wait_for_external_event("open"))


def call_unsendable(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.call_activity(SURROGATE, input=1))


def wait_unsendable(ctx: task.OrchestrationContext, _: Any) -> Any:
    return (yield ctx.wait_for_external_event(SURROGATE))


def send_unsendable(ctx: task.OrchestrationContext, _: Any) -> None:
    ctx.send_event("gate", SURROGATE, data=1)


def signal_unsendable(ctx: task.OrchestrationContext, _: Any) -> None:
    ctx.signal_entity(EntityInstanceId("counter", "k"), SURROGATE)


ORCHESTRATORS = (
    call,
    call_unsendable,
    wait_unsendable,
    send_unsendable,
    signal_unsendable,
    output_object,
    output_surrogate,
    raise_surrogate,
    status_object,
    activity_input_object,
    sub_unknown,
    echo,
    gate,
)
ACTIVITIES = (returns_object, returns_surrogate, raises_surrogate, accepts)


@pytest.fixture
async def backend() -> AsyncIterator[EmbeddedBackend]:
    async with EmbeddedBackend() as embedded:
        yield embedded


@pytest.fixture
async def worker(backend: EmbeddedBackend) -> AsyncIterator[AsyncDurableTaskWorker]:
    async with AsyncDurableTaskWorker(host_address=backend.address, shutdown_timeout=1) as w:
        for orchestrator in ORCHESTRATORS:
            w.add_orchestrator(orchestrator)
        for activity in ACTIVITIES:
            w.add_activity(activity)
        await w.start()
        await w.wait_until_connected(timeout=10)
        yield w


@pytest.fixture
async def client(backend: EmbeddedBackend) -> AsyncIterator[AsyncDurableTaskClient]:
    async with AsyncDurableTaskClient(host_address=backend.address) as c:
        yield c


async def _run(client: AsyncDurableTaskClient, name: Any, value: Any = None) -> OrchestrationState:
    instance_id = await client.schedule_new_orchestration(name, input=value)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=15)
    assert state is not None
    return state


# -- unserializable payloads -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"lock": object()}, "object"),
        ([1, 2, {3, object()}], "object"),
        (SURROGATE, "surrogate"),
        ({"k": SURROGATE}, "surrogate"),
    ],
    ids=["object", "nested-object", "surrogate", "nested-surrogate"],
)
async def test_unserializable_client_payloads_fail_at_the_call_site(
    backend: EmbeddedBackend, client: AsyncDurableTaskClient, value: Any, named: str
) -> None:
    """Promise (DESIGN §2, §7): an input, event payload or termination output that cannot
    be serialized (no JSON form, or text that is not valid Unicode) fails the call at
    once with a PayloadError naming what is wrong; nothing reaches the server."""
    with pytest.raises(PayloadError, match=named) as info:
        await client.schedule_new_orchestration("echo", input=value, instance_id="never")
    assert "input of orchestration 'echo'" in str(info.value)
    assert await client.get_orchestration_state("never") is None

    waiting = await client.schedule_new_orchestration("gate", instance_id="waiting")
    with pytest.raises(PayloadError, match=named):
        await client.raise_orchestration_event(waiting, "open", data=value)
    with pytest.raises(PayloadError, match=named):
        await client.terminate_orchestration(waiting, output=value)
    state = await client.get_orchestration_state(waiting)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.PENDING


async def test_bad_values_inside_workflows_fail_only_their_orchestration(
    worker: AsyncDurableTaskWorker,
    client: AsyncDurableTaskClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Promise (DESIGN §7): a value a workflow cannot send (an activity result, an
    orchestration output, a custom status or an activity input with no JSON form or with
    invalid Unicode text; an exception message with invalid text; a stored input that
    is not JSON) fails only the orchestration concerned, with a message naming the
    problem; the worker never retries it in a loop and other work completes."""
    caplog.set_level(logging.ERROR, logger="dtask_async.worker")
    waiting = await client.schedule_new_orchestration(gate, instance_id="gate")
    cases: list[tuple[Any, Any, str]] = [
        (call, "returns_object", "object"),
        (call, "returns_surrogate", "surrogate"),
        (call, "raises_surrogate", "cannot read bad \\udcff text"),
        (output_object, None, "object"),
        (output_surrogate, None, "surrogate"),
        (raise_surrogate, None, "cannot read bad \\udcff text"),
        (status_object, None, "custom status"),
        (activity_input_object, None, "object"),
    ]
    states = await asyncio.gather(*(_run(client, fn, value) for fn, value, _ in cases))
    for (fn, value, expected), state in zip(cases, states, strict=True):
        assert state.runtime_status is OrchestrationStatus.FAILED, (fn.__name__, value)
        assert state.failure_details is not None
        assert expected in state.failure_details.message, (fn.__name__, state.failure_details)

    # A stored input that is not JSON (another SDK's bug): only this instance fails.
    async with grpc.aio.insecure_channel(client.address) as channel:
        request = pb.CreateInstanceRequest(instanceId="not-json", name="echo")
        request.input.value = "{not json"
        await pb_grpc.TaskHubSidecarServiceStub(channel).StartInstance(request)
    state = await client.wait_for_orchestration_completion("not-json", timeout=15)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "not valid JSON" in state.failure_details.message

    await client.raise_orchestration_event(waiting, "open", data="still here")
    state = await client.wait_for_orchestration_completion(waiting, timeout=15)
    assert state is not None
    assert json.loads(state.serialized_output or "null") == "still here"
    assert (await _run(client, echo, [1, "two"])).serialized_output == '[1,"two"]'
    internal = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert not internal, internal[0].getMessage()


# -- names that cannot be sent -----------------------------------------------------------


async def test_names_that_cannot_be_sent_are_refused_by_the_client() -> None:
    """Promise (DESIGN §7): an orchestrator, event or entity-operation name holding a
    lone surrogate (text decoded with ``surrogateescape``) is refused by the client
    with a ValueError naming the name and the position, before anything is sent."""
    nowhere = f"127.0.0.1:{free_port()}"
    async with AsyncDurableTaskClient(host_address=nowhere) as client:
        calls = [
            ("orchestrator name", client.schedule_new_orchestration(SURROGATE)),
            ("event name", client.raise_orchestration_event("some-id", SURROGATE)),
            (
                "entity operation name",
                client.signal_entity(EntityInstanceId("counter", "k"), SURROGATE),
            ),
        ]
        for what, call_ in calls:
            with pytest.raises(ValueError, match="lone surrogate") as info:
                await call_
            assert str(info.value).startswith(f"{what} {SURROGATE!r}")
            assert "position 4" in str(info.value)


async def test_names_that_cannot_be_sent_fail_only_their_orchestration(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    """Promise (DESIGN §7): an orchestrator that calls an activity, waits for or sends
    an event, or signals an entity operation under a name with a lone surrogate fails
    at that call with a message naming the name; the worker keeps serving the rest."""
    cases: list[tuple[Any, Any, str]] = [
        (call_unsendable, None, "activity name"),
        (wait_unsendable, None, "event name"),
        (send_unsendable, None, "event name"),
        (signal_unsendable, None, "entity operation name"),
    ]
    states = await asyncio.gather(*(_run(client, fn, value) for fn, value, _ in cases))
    for (fn, _, what), state in zip(cases, states, strict=True):
        assert state.runtime_status is OrchestrationStatus.FAILED, fn.__name__
        assert state.failure_details is not None
        assert state.failure_details.error_type == "ValueError"
        assert f"{what} 'bad \\udcff text' contains the lone surrogate" in (
            state.failure_details.message
        ), state.failure_details.message
    assert (await _run(client, echo, "fine")).serialized_output == '"fine"'


# -- unknown names ---------------------------------------------------------------------


async def test_unknown_orchestrator_activity_and_sub_orchestrator_names(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    """Promise (DESIGN §7): starting an orchestrator, calling an activity or a
    sub-orchestrator that no worker registered fails that orchestration with a message
    naming the missing name; the worker keeps serving everything else."""
    state = await _run(client, "no_such_orchestrator")
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "OrchestratorNotRegisteredError"
    assert "'no_such_orchestrator' is not registered" in state.failure_details.message

    state = await _run(client, call, "no_such_activity")
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "'no_such_activity' is not registered" in state.failure_details.message
    assert "registered activities: accepts" in state.failure_details.message

    state = await _run(client, sub_unknown)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "no_such_sub_orchestrator" in state.failure_details.message

    assert (await _run(client, echo, 7)).serialized_output == "7"


async def test_unknown_entity_name_fails_its_operations() -> None:
    """Promise (DESIGN §7): an entity work item for an entity no worker registered
    (both work-item formats) is answered with every operation failed and a message
    naming the entity, the state untouched; the worker keeps taking work."""

    class Counter(DurableEntity):
        def add(self, amount: int) -> int:
            value = int(self.get_state(int, 0)) + amount
            self.set_state(value)
            return value

    v1 = pb.WorkItem(completionToken="entity-v1")
    v1.entityRequest.instanceId = "@nosuch@key"
    v1.entityRequest.entityState.value = "41"
    v1.entityRequest.operations.add(operation="add", requestId="r1").input.value = "1"
    v1.entityRequest.operations.add(operation="add", requestId="r2")
    v2 = pb.WorkItem(completionToken="entity-v2")
    v2.entityRequestV2.instanceId = "@nosuch@other"
    signaled = v2.entityRequestV2.operationRequests.add().entityOperationSignaled
    signaled.operation = "add"
    signaled.requestId = "r3"
    plan = Plan(items=[v1, v2, activity_item("after", value=5)])
    async with (
        FakeSidecar([plan]) as fake,
        AsyncDurableTaskWorker(host_address=fake.address, shutdown_timeout=1) as w,
    ):
        w.add_entity(Counter)
        w.add_activity(_double, name="double")
        await w.start()
        await fake.wait_for(["entity-v1", "entity-v2", "after"])
    for token, operations in (("entity-v1", 2), ("entity-v2", 1)):
        result = fake.completions[token]
        assert len(result.results) == operations
        for operation in result.results:
            message = operation.failure.failureDetails.errorMessage
            assert "entity 'nosuch' is not registered" in message
            assert "registered entities: counter" in message
        assert not result.actions
    assert fake.completions["entity-v1"].entityState.value == "41"
    assert fake.completions["after"].result.value == "10"


def _double(ctx: task.ActivityContext, value: int) -> int:
    return value * 2


# -- instance ids ----------------------------------------------------------------------

BAD_IDS = [
    pytest.param("", id="empty"),
    pytest.param("x" * 257, id="too-long"),
    pytest.param("line\nbreak", id="newline"),
    pytest.param("nul\x00", id="nul"),
    pytest.param("tab\there", id="tab"),
    pytest.param("del\x7f", id="del"),
    pytest.param("c1\x85", id="c1-control"),
    pytest.param("lone\ud800", id="surrogate"),
]


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_invalid_instance_ids_are_refused_before_sending(bad: str) -> None:
    """Promise (DESIGN §7): an empty, too long (over 256 characters) or
    control-character instance id is refused by every client call that takes one,
    with an InvalidInstanceIdError saying what is wrong, before anything is sent (the
    client points at a port where nothing listens)."""
    nowhere = f"127.0.0.1:{free_port()}"
    async with AsyncDurableTaskClient(host_address=nowhere) as client:
        calls = [
            client.schedule_new_orchestration("echo", instance_id=bad),
            client.get_orchestration_state(bad),
            client.wait_for_orchestration_completion(bad, timeout=1),
            client.raise_orchestration_event(bad, "open"),
            client.terminate_orchestration(bad),
            client.suspend_orchestration(bad),
            client.purge_orchestration(bad),
        ]
        for call_ in calls:
            with pytest.raises(InvalidInstanceIdError) as info:
                await call_
            assert "instance id" in str(info.value)


async def test_longest_valid_instance_id_is_accepted(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    """Promise (DESIGN §7): the limits are exact: a 256-character id with any printable
    text works end to end."""
    instance_id = "é" + "x" * 254 + "✓"
    await client.schedule_new_orchestration(echo, input=1, instance_id=instance_id)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=15)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED


@pytest.mark.parametrize(
    "bad", [pytest.param(p.values[0], id=p.id) for p in BAD_IDS[:-1]] + ["@entity@like"]
)
async def test_invalid_instance_ids_are_refused_by_the_server(
    backend: EmbeddedBackend, client: AsyncDurableTaskClient, bad: str
) -> None:
    """Promise (DESIGN §5, §7): the server refuses the same ids (and ids starting with
    ``@``, kept for entities) with INVALID_ARGUMENT and a message naming the problem,
    whichever SDK sent them, and keeps serving."""
    async with grpc.aio.insecure_channel(backend.address) as channel:
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        for request, method in (
            (pb.CreateInstanceRequest(instanceId=bad, name="echo"), stub.StartInstance),
            (pb.GetInstanceRequest(instanceId=bad), stub.GetInstance),
            (pb.RaiseEventRequest(instanceId=bad, name="e"), stub.RaiseEvent),
        ):
            if not bad and method is stub.StartInstance:
                continue  # an empty id asks the server to pick one
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await method(request)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "instanceId" in (info.value.details() or "")
        await stub.Hello(Empty())
    if bad.startswith("@"):
        with pytest.raises(InvalidArgumentError, match="reserved for entity"):
            await client.schedule_new_orchestration("echo", instance_id=bad)


# -- connection strings ----------------------------------------------------------------

MALFORMED = [
    ("", "empty"),
    (";;;", "empty"),
    ("just some text", "no Key=Value"),
    ("Endpoint", "no Key=Value"),
    ("Endpoint=https://x.durabletask.io;Authentication", "has no '='"),
    ("=value;Endpoint=https://x.durabletask.io", "empty key"),
    ("Endpoint=https://x.durabletask.io;Authentication=None;Password=hunter2", "unknown"),
    ("Endpoint=https://a.io;Endpoint=https://b.io;Authentication=None", "more than once"),
    ("Authentication=None", "no Endpoint"),
    ("Endpoint=;Authentication=None", "no Endpoint"),
    ("Endpoint=https://x.durabletask.io", "no Authentication"),
    ("Endpoint=https://x.durabletask.io;Authentication=Telepathy", "unsupported"),
    ("Endpoint=ftp://x.durabletask.io;Authentication=None", "scheme"),
    ("Endpoint=https://user:pw@x.durabletask.io;Authentication=None", "no user info"),
    ("Endpoint=https://x.durabletask.io/path?q=1;Authentication=None", "no user info"),
    ("Endpoint=https://[::1;Authentication=None", "invalid Endpoint"),
    ("Endpoint=https://x.io:99999;Authentication=None", "invalid Endpoint"),
    ("Endpoint=https://x.io;Authentication=None;ResourceId=/.default", "empty"),
    ("Endpoint=https://x.io;Authentication=None;AuthorityHost=http://login", "https"),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_malformed_connection_strings_are_refused(text: str, expected: str) -> None:
    """Promise (DESIGN §7): a malformed connection string is refused when the client or
    worker is built, with a ConnectionStringError (a ValueError) saying what is wrong,
    and without echoing values that may be secrets."""
    with pytest.raises(ConnectionStringError, match=expected) as info:
        DurableTaskSchedulerConnectionString.parse(text)
    assert isinstance(info.value, ValueError)
    assert "hunter2" not in str(info.value)
    assert "pw@" not in str(info.value)
    with pytest.raises(ConnectionStringError):
        DurableTaskSchedulerClient(text, task_hub_name="hub")
    with pytest.raises(ConnectionStringError):
        DurableTaskSchedulerWorker(text, task_hub_name="hub")


# -- events ----------------------------------------------------------------------------


async def test_event_for_an_unknown_instance_is_refused(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    """Promise (DESIGN §7): raising an event on an instance that does not exist fails
    with OrchestrationNotFoundError naming the instance; the server keeps serving."""
    with pytest.raises(OrchestrationNotFoundError, match="nobody-home"):
        await client.raise_orchestration_event("nobody-home", "open", data=1)
    assert (await _run(client, echo, 3)).serialized_output == "3"


async def test_event_for_a_finished_instance_changes_nothing(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    """Promise (DESIGN §7): an event raised on a finished instance neither reopens it
    nor changes its output, status or history."""
    done = await client.schedule_new_orchestration(gate, instance_id="finished")
    await client.raise_orchestration_event(done, "open", data="first")
    before = await client.wait_for_orchestration_completion(done, timeout=15)
    assert before is not None
    history = [event.kind async for event in client.get_orchestration_history(done)]
    with pytest.raises(InvalidOperationError):
        await client.raise_orchestration_event(done, "open", data="second")
    assert (await _run(client, echo, 4)).serialized_output == "4"
    after = await client.get_orchestration_state(done)
    assert after is not None
    assert after.runtime_status is OrchestrationStatus.COMPLETED
    assert after.serialized_output == before.serialized_output == '"first"'
    assert [event.kind async for event in client.get_orchestration_history(done)] == history


async def test_event_for_a_finished_instance_is_refused(
    worker: AsyncDurableTaskWorker, client: AsyncDurableTaskClient
) -> None:
    """Promise (DESIGN §7, the issue's list of bad input): raising an event on a
    finished instance fails with a clear error (InvalidOperationError, i.e.
    FAILED_PRECONDITION) naming the instance and its status, rather than being
    accepted and dropped."""
    done = await client.schedule_new_orchestration(echo, input=1, instance_id="over")
    await client.wait_for_orchestration_completion(done, timeout=15)
    with pytest.raises(InvalidOperationError, match="over") as info:
        await client.raise_orchestration_event(done, "open", data=1)
    assert "COMPLETED" in str(info.value)


# -- garbage on the wire ---------------------------------------------------------------

GARBAGE = [
    os.urandom(4096),
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),  # a TLS ClientHello
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(2048),  # preface, then noise frames
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    + b"\xff\xff\xff\x01\x04\x00\x00\x00\x01"
    + os.urandom(512),  # settings, then a huge HEADERS frame
    b"\x00" * 65536,
]


@pytest.mark.skipif(sys.platform == "win32", reason="subprocess signals")
async def test_garbage_bytes_on_the_server_port_harm_nothing(processes: Processes) -> None:
    """Promise (DESIGN §7): bytes that are not gRPC sent to the server's port (random
    noise, HTTP/1.1, TLS, a broken HTTP/2 connection, connections opened and dropped or
    left half-written) neither crash the server nor disturb the worker connected to it:
    orchestrations started before, during and after all complete."""
    emulator = processes.emulator()
    await emulator.start()
    worker_process = processes.worker("worker", emulator.address, activity_delay=0.05)
    await worker_process.start()
    before = expected_outputs("before-garbage", 20, flows.expected_chain_fan)
    during = expected_outputs("during-garbage", 20, flows.expected_chain_fan)
    async with client_for(emulator.address) as client:
        for instance_id in before:
            await client.schedule_new_orchestration(
                flows.chain_fan, input=int(instance_id.rsplit("-", 1)[1]), instance_id=instance_id
            )
        held = []
        for round_ in range(3):
            for payload in GARBAGE:
                _, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
                writer.write(payload)
                await writer.drain()
                if round_ == 0:
                    held.append(writer)  # left open, half-written
                else:
                    writer.transport.abort()
            for _ in range(20):  # connect and drop at once
                _, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
                writer.transport.abort()
        for instance_id in during:
            await client.schedule_new_orchestration(
                flows.chain_fan, input=int(instance_id.rsplit("-", 1)[1]), instance_id=instance_id
            )
        await check_all_completed(client, {**before, **during}, timeout=60)
        for writer in held:
            writer.transport.abort()
        assert (await _run(client, flows.chain_fan, 1)).runtime_status is (
            OrchestrationStatus.COMPLETED
        )
    assert emulator.running, emulator.stderr()
    assert worker_process.running, worker_process.stderr()


# -- registration ----------------------------------------------------------------------


async def test_registering_a_name_twice_is_refused(backend: EmbeddedBackend) -> None:
    """Promise (DESIGN §7): registering an orchestrator, activity or entity under a name
    already taken (also through a decorator's name, or an entity name differing only in
    case) raises a RegistrationError naming it; the first registration stays in force
    and the worker runs normally."""

    @task.orchestration(name="echo")
    def impostor(ctx: task.OrchestrationContext, _: Any) -> str:
        return "impostor"

    class Counter(DurableEntity):
        pass

    class COUNTER(DurableEntity):
        pass

    async with (
        AsyncDurableTaskWorker(host_address=backend.address, shutdown_timeout=1) as worker,
        AsyncDurableTaskClient(host_address=backend.address) as client,
    ):
        worker.add_orchestrator(echo)
        worker.add_activity(accepts)
        worker.add_entity(Counter)
        with pytest.raises(RegistrationError, match="'echo' is already registered"):
            worker.add_orchestrator(echo)
        with pytest.raises(RegistrationError, match="'echo' is already registered"):
            worker.add_orchestrator(impostor)
        with pytest.raises(RegistrationError, match="'echo' is already registered"):
            worker.add_orchestration(lambda ctx: None, name="echo")
        with pytest.raises(RegistrationError, match="'accepts' is already registered"):
            worker.add_activity(accepts)
        with pytest.raises(RegistrationError, match="'accepts' is already registered"):
            worker.add_activity(returns_object, name="accepts")
        with pytest.raises(RegistrationError, match="'counter' is already registered"):
            worker.add_entity(COUNTER)
        await worker.start()
        state = await _run(client, "echo", "original")
        assert state.serialized_output == '"original"'


async def test_worker_without_a_server_keeps_trying(caplog: pytest.LogCaptureFixture) -> None:
    """Promise (DESIGN §7): a worker pointed at an address where nothing listens yet
    neither crashes nor gives up: it keeps trying and serves as soon as a server
    appears there."""
    port = free_port()
    async with AsyncDurableTaskWorker(
        host_address=f"127.0.0.1:{port}",
        reconnect=ReconnectPolicy(initial_delay=0.05, max_delay=0.5),
        shutdown_timeout=1,
    ) as worker:
        worker.add_orchestrator(echo)
        worker._connect_timeout = 0.5  # notice the server sooner than the default 5 s
        await worker.start()
        with pytest.raises(TimeoutError):
            await worker.wait_until_connected(timeout=1.5)
        assert worker.is_running
        async with EmbeddedBackend(port=port) as backend, client_for(backend.address) as client:
            await worker.wait_until_connected(timeout=20)
            assert (await _run(client, "echo", 5)).serialized_output == "5"
