"""Nothing acknowledged is lost: restarts on the same file, and ``kill -9``."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from pathlib import Path

import anyio
import grpc
import pytest
from durabletask.client import AsyncTaskHubGrpcClient, OrchestrationStatus

from dtask_async._proto import Empty, pb, pb_grpc
from dtask_async.backend import EmbeddedBackend
from tests.conftest import free_port

from . import flows
from .conftest import (
    QUIET,
    TEST_OPTIONS,
    ProtocolWorker,
    complete_with,
    emulator,
    kinds,
    schedule_task,
)

TIMEOUT = 60


def _timer_action(action_id: int, seconds: float) -> pb.OrchestratorAction:
    action = pb.OrchestratorAction(id=action_id)
    fire_us = time.time_ns() // 1000 + int(seconds * 1_000_000)
    action.createTimer.fireAt.seconds = fire_us // 1_000_000
    action.createTimer.fireAt.nanos = (fire_us % 1_000_000) * 1000
    return action


async def test_graceful_restart_resumes_pending_work(tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    async with (
        EmbeddedBackend(db, options=TEST_OPTIONS) as backend,
        grpc.aio.insecure_channel(backend.address) as channel,
    ):
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        for name in ("timer", "activity", "event", "done", "later"):
            await stub.StartInstance(pb.CreateInstanceRequest(instanceId=name, name="orch"))
        worker = ProtocolWorker(stub)
        try:
            items = {}
            for _ in range(5):
                item = await worker.next()
                items[item.orchestratorRequest.instanceId] = item
            await stub.CompleteOrchestratorTask(
                complete_with(items["timer"], _timer_action(1, 1.0))
            )
            await stub.CompleteOrchestratorTask(
                complete_with(items["activity"], schedule_task(1, "act"))
            )
            await stub.CompleteOrchestratorTask(complete_with(items["event"]))
            done = complete_with(items["done"])
            done.actions.add(
                id=1
            ).completeOrchestration.orchestrationStatus = pb.ORCHESTRATION_STATUS_COMPLETED
            await stub.CompleteOrchestratorTask(done)
            activity = await worker.next()  # leased, never completed
            assert activity.HasField("activityRequest")
            # "later" stays leased and uncompleted as well
        finally:
            await worker.close()

    async with (
        EmbeddedBackend(db, options=TEST_OPTIONS) as backend,
        grpc.aio.insecure_channel(backend.address) as channel,
    ):
        stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        state = await stub.GetInstance(pb.GetInstanceRequest(instanceId="done"))
        assert state.orchestrationState.orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
        await stub.RaiseEvent(pb.RaiseEventRequest(instanceId="event", name="go"))
        worker = ProtocolWorker(stub)
        try:
            seen: dict[str, list[str]] = {}
            with anyio.fail_after(15):
                while len(seen) < 4:
                    item = await worker.next()
                    if item.HasField("activityRequest"):
                        seen["act"] = ["activity"]
                        continue
                    request = item.orchestratorRequest
                    seen[request.instanceId] = kinds(request.newEvents)[1:]
                    await stub.CompleteOrchestratorTask(complete_with(item))
        finally:
            await worker.close()
    assert seen == {
        "act": ["activity"],
        "later": ["executionStarted"],
        "event": ["eventRaised"],
        "timer": ["timerFired"],
    }


async def test_cli_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    async with emulator(port, tmp_path / "cli.db", tmp_path / "cli.log") as process:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await pb_grpc.TaskHubSidecarServiceStub(channel).Hello(Empty(), timeout=10)
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            code = await process.wait()
        assert code == 0
        assert process.stdout is not None
        assert b"stopped" in await process.stdout.read()
    assert (tmp_path / "cli.db").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
async def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    db = tmp_path / "kill.db"
    log = tmp_path / "emulator.log"
    keys = [f"kill-{i}-{uuid.uuid4().hex[:8]}" for i in range(3)]
    orchestrators = [flows.recovery_mix, flows.sleeper, flows.approval, flows.chain]
    activities = [flows.wait_gate, flows.hello]

    from .conftest import official_worker

    async with official_worker(
        address, orchestrators=orchestrators, activities=activities, concurrency=8
    ):
        async with emulator(port, db, log) as process:
            client = AsyncTaskHubGrpcClient(host_address=address, logger=QUIET)
            try:
                finished = await client.schedule_new_orchestration(flows.chain, input="before")
                state = await client.wait_for_orchestration_completion(finished, timeout=TIMEOUT)
                assert state.runtime_status == OrchestrationStatus.COMPLETED
                mixes = [
                    await client.schedule_new_orchestration(flows.recovery_mix, input=key)
                    for key in keys
                ]
                sleeper = await client.schedule_new_orchestration(flows.sleeper, input=3.0)
                approval = await client.schedule_new_orchestration(flows.approval)
                for key in keys:  # every activity is running on the worker
                    started = flows.gate(key + ":started")
                    assert await asyncio.to_thread(started.wait, TIMEOUT)
                await client.wait_for_orchestration_start(sleeper, timeout=TIMEOUT)
                await client.wait_for_orchestration_start(approval, timeout=TIMEOUT)
            finally:
                await client.close()
            process.kill()  # SIGKILL: no flush, no goodbye
            await process.wait()

        async with emulator(port, db, log):
            client = AsyncTaskHubGrpcClient(host_address=address, logger=QUIET)
            try:
                for key in keys:
                    flows.gate(key).set()  # the old runs report to a server that forgot them
                for i, instance_id in enumerate(mixes):
                    await client.raise_orchestration_event(instance_id, "go", data=i)
                await client.raise_orchestration_event(approval, "approve", data="after restart")
                for i, (key, instance_id) in enumerate(zip(keys, mixes, strict=True)):
                    state = await client.wait_for_orchestration_completion(
                        instance_id, timeout=TIMEOUT
                    )
                    assert state.runtime_status == OrchestrationStatus.COMPLETED, (
                        state.failure_details
                    )
                    assert json.loads(state.serialized_output) == [f"{key} done", i]
                    assert flows.count(key) == 2  # once before the kill, once redelivered
                state = await client.wait_for_orchestration_completion(sleeper, timeout=TIMEOUT)
                assert state.runtime_status == OrchestrationStatus.COMPLETED
                assert json.loads(state.serialized_output) >= 3.0
                state = await client.wait_for_orchestration_completion(approval, timeout=TIMEOUT)
                assert json.loads(state.serialized_output) == {"approved": "after restart"}
                state = await client.get_orchestration_state(finished)
                assert state.runtime_status == OrchestrationStatus.COMPLETED
                assert json.loads(state.serialized_output) == "Hello Hello Hello before!!!"
            finally:
                await client.close()
