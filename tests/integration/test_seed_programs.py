"""The seeds' own programs, with ``durabletask`` replaced by ``dtask_async`` and the
client and worker calls awaited, run against the embedded backend."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dtask_async.backend import EmbeddedBackend

# -- seed 000: the skill document's quick start, on the emulator's address ------------


@pytest.fixture
async def emulator_port_8080() -> AsyncIterator[None]:
    """The seed hard-codes http://localhost:8080: serve it there, if the port is free."""
    backend = EmbeddedBackend(port=8080)
    try:
        await backend.start()
    except Exception as exc:  # the port is taken on this machine
        pytest.skip(f"port 8080 is not available: {exc}")
    try:
        yield
    finally:
        await backend.aclose()


async def test_seed_000_quick_start(
    emulator_port_8080: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ENDPOINT", raising=False)
    monkeypatch.delenv("TASKHUB", raising=False)

    from azure.identity import DefaultAzureCredential

    from dtask_async import task
    from dtask_async.azuremanaged.client import DurableTaskSchedulerClient
    from dtask_async.azuremanaged.worker import DurableTaskSchedulerWorker
    from dtask_async.client import OrchestrationStatus

    # Activity function
    def hello(ctx: task.ActivityContext, name: str) -> str:
        return f"Hello {name}!"

    # Orchestrator function
    def my_orchestration(ctx: task.OrchestrationContext, input: str) -> Any:
        result = yield ctx.call_activity(hello, input=input)
        return result

    # Configuration - defaults to local emulator
    taskhub = os.getenv("TASKHUB", "default")
    endpoint = os.getenv("ENDPOINT", "http://localhost:8080")
    secure_channel = endpoint != "http://localhost:8080"
    credential = None if endpoint == "http://localhost:8080" else DefaultAzureCredential()

    # Start worker and run orchestration
    async with DurableTaskSchedulerWorker(
        host_address=endpoint,
        secure_channel=secure_channel,
        taskhub=taskhub,
        token_credential=credential,
    ) as worker:
        worker.add_orchestrator(my_orchestration)
        worker.add_activity(hello)
        await worker.start()

        # Create client and schedule orchestration
        dts_client = DurableTaskSchedulerClient(
            host_address=endpoint,
            secure_channel=secure_channel,
            taskhub=taskhub,
            token_credential=credential,
        )
        instance_id = await dts_client.schedule_new_orchestration(my_orchestration, input="World")
        state = await dts_client.wait_for_orchestration_completion(instance_id, timeout=60)
        if state and state.runtime_status == OrchestrationStatus.COMPLETED:
            print(f"Result: {state.serialized_output}")

    assert 'Result: "Hello World!"' in capsys.readouterr().out


# -- seed 001: class-based activities and a connection string -------------------------


async def test_seed_001_quick_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with EmbeddedBackend() as backend:
        monkeypatch.setenv(
            "DURABLETASK_CONNECTION_STRING",
            f"Endpoint=http://{backend.address};Authentication=None",
        )
        monkeypatch.delenv("DURABLETASK_TASK_HUB_NAME", raising=False)

        from dtask_async import (
            DurableTaskClient,
            DurableTaskWorker,
            OrchestrationContext,
            TaskActivity,
        )

        CONNECTION_STRING = os.environ.get(
            "DURABLETASK_CONNECTION_STRING", "Endpoint=http://localhost:8080;Authentication=None"
        )
        TASK_HUB_NAME = os.environ.get("DURABLETASK_TASK_HUB_NAME", "default")

        class HelloActivity(TaskActivity):
            async def run(self, context: OrchestrationContext, input: str) -> str:
                print(f"Executing HelloActivity with input: {input}")
                return f"Hello, {input}!"

        class HelloOrchestrator(TaskActivity):
            async def run(self, context: OrchestrationContext, input: str) -> str:
                print(f"Starting HelloOrchestrator with input: {input}")
                # Call an activity function
                result = await context.call_activity("HelloActivity", input)
                print(f"Orchestrator received result: {result}")
                return result

        async def main() -> None:
            client = DurableTaskClient(CONNECTION_STRING, TASK_HUB_NAME)

            # Register orchestrators and activities with the worker
            worker = DurableTaskWorker(
                CONNECTION_STRING,
                TASK_HUB_NAME,
                orchestrators={"HelloOrchestrator": HelloOrchestrator()},
                activities={"HelloActivity": HelloActivity()},
            )

            async with worker:
                print("Worker started. Starting orchestration...")
                # Start a new orchestration
                instance_id = await client.schedule_new_orchestration("HelloOrchestrator", "World")
                print(f"Orchestration instance started: {instance_id}")

                # Wait for the orchestration to complete
                status = await client.wait_for_orchestration_completion(
                    instance_id, timeout_in_seconds=60
                )
                if status:
                    print(
                        f"Orchestration '{instance_id}' completed. "
                        f"Status: {status.runtime_status}, Output: {status.output}"
                    )
                else:
                    print(f"Orchestration '{instance_id}' did not complete within the timeout.")

        await asyncio.wait_for(main(), timeout=60)

    out = capsys.readouterr().out
    assert "Status: COMPLETED, Output: Hello, World!" in out
    assert "Executing HelloActivity with input: World" in out


# -- seed 003: the API reference's examples, with their exact keywords ----------------


async def test_seed_003_api_reference_keywords() -> None:
    from datetime import datetime, timedelta

    from dtask_async import task
    from dtask_async.azuremanaged import DurableTaskSchedulerClient, DurableTaskSchedulerWorker

    @task.activity
    def my_activity(ctx: task.ActivityContext, input_data: Any) -> Any:
        return {"echo": input_data, "task_id": ctx.task_id, "parent": ctx.orchestration_id}

    @task.orchestration
    def child_orchestration(ctx: task.OrchestrationContext, input_data: Any) -> Any:
        return {"child": ctx.instance_id, "input": input_data}

    @task.orchestration
    def my_orchestration(ctx: task.OrchestrationContext, input_data: Any) -> Any:
        result = yield ctx.call_activity(activity=my_activity, input=input_data)
        child = yield ctx.call_sub_orchestration(
            orchestration=child_orchestration,
            input=input_data,
            instance_id=f"{ctx.instance_id}-child-123",
        )
        yield ctx.create_timer(timedelta(milliseconds=10))
        fire_at = ctx.current_utc_datetime + timedelta(milliseconds=10)
        yield ctx.create_timer(fire_at)
        event_data = yield ctx.wait_for_external_event("ApprovalEvent")
        return {"activity": result, "child": child, "event": event_data}

    @task.orchestration
    def waits_forever(ctx: task.OrchestrationContext, _: Any) -> Any:
        yield ctx.wait_for_external_event("never")

    async with EmbeddedBackend() as backend:
        connection_string = f"Endpoint=http://{backend.address};Authentication=None"
        worker = DurableTaskSchedulerWorker(
            connection_string=connection_string,
            task_hub_name="default",  # Optional
        )
        async with worker:
            worker.add_orchestration(my_orchestration)
            worker.add_orchestration(child_orchestration)
            worker.add_orchestration(waits_forever)
            worker.add_activity(my_activity)
            await worker.start()

            client = DurableTaskSchedulerClient(
                connection_string=connection_string,
                task_hub_name="default",  # Optional
            )
            input_data = {"order": 7}

            # With auto-generated ID
            instance_id = await client.schedule_new_orchestration(
                orchestration=my_orchestration, input=input_data
            )
            state = await client.wait_for_orchestration_start(instance_id)
            assert state is not None
            await client.raise_event(
                instance_id=instance_id, event_name="ApprovalEvent", data={"approved": True}
            )
            state = await client.wait_for_orchestration_completion(
                instance_id,
                timeout=timedelta(minutes=5),  # Optional
            )
            assert state is not None
            assert state.runtime_status == task.OrchestrationStatus.COMPLETED, state
            assert state.result["activity"]["echo"] == input_data
            assert state.result["activity"]["parent"] == instance_id
            assert state.result["child"] == {
                "child": f"{instance_id}-child-123",
                "input": input_data,
            }
            assert state.result["event"] == {"approved": True}

            # With specific ID
            instance_id = await client.schedule_new_orchestration(
                orchestration=waits_forever, input=input_data, instance_id="my-custom-id"
            )
            assert instance_id == "my-custom-id"
            await client.wait_for_orchestration_start(instance_id)
            await client.suspend_orchestration(instance_id=instance_id, reason="Maintenance")
            await _wait_status(client, instance_id, task.OrchestrationStatus.SUSPENDED)
            await client.resume_orchestration(
                instance_id=instance_id, reason="Maintenance complete"
            )
            await _wait_status(client, instance_id, task.OrchestrationStatus.RUNNING)
            await client.terminate_orchestration(
                instance_id=instance_id, reason="Cancelled by user"
            )
            state = await client.wait_for_orchestration_completion(instance_id)
            assert state is not None
            assert state.runtime_status == task.OrchestrationStatus.TERMINATED
            await client.purge_orchestration(instance_id)
            assert await client.get_orchestration_state(instance_id) is None

            # Scheduled start
            instance_id = await client.schedule_new_orchestration(
                orchestration=my_orchestration,
                input=input_data,
                start_at=datetime.utcnow() + timedelta(hours=1),
            )
            state = await client.get_orchestration_state(instance_id)
            assert state is not None
            assert state.runtime_status == task.OrchestrationStatus.PENDING
            await client.aclose()


async def _wait_status(client: Any, instance_id: str, status: Any) -> None:
    for _ in range(500):
        state = await client.get_orchestration_state(instance_id)
        if state is not None and state.runtime_status == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{instance_id} did not reach {status}")
