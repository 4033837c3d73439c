"""Every sample runs as users run it: ``python samples/<name>.py``, nothing configured."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import free_port

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

EXPECTED = {
    "hello.py": ["Result: ['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']"],
    "fan_out_fan_in.py": [
        "fanout_fanin_workflow: {'items': 25, 'total': 290}",
        "batched_fanout_workflow: {'items': 25, 'total': 290}",
    ],
    "human_interaction.py": ["Approved by 'manager@company.com'", "Canceled - approval timeout"],
    "timers_and_scheduling.py": ["delayed_workflow: waited 1.5 s", "scheduled_workflow: ran at"],
    "sub_orchestrations.py": ["Result: ['<TOKYO>', '<SEATTLE>', '<LONDON>']"],
    "eternal_and_monitoring.py": [
        "eternal_orchestration: stopped after 5 iterations",
        "monitoring_workflow: {'status': 'success', 'attempts': 3}",
    ],
    "retries_and_errors.py": [
        "retrying_orchestrator: sync done after 3 attempts",
        "orchestrator_with_error_handling: Compensated",
    ],
    "versioning.py": ["v1.0.0: ['Hello Ada!']", "v2.0.0: ['Hello Ada!', 'Goodbye Ada!']"],
    "async_orchestrator.py": ["Quote: {'gadget': 7.0, 'widget': 10.0, 'total': 17.0}"],
}


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DURABLETASK_CONNECTION_STRING", "ENDPOINT", "TASKHUB"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("sample", sorted(EXPECTED))
async def test_sample_runs_on_the_embedded_backend(sample: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SAMPLES / sample),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_clean_env(),
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    text = output.decode()
    assert process.returncode == 0, text
    assert "Using an embedded backend" in text or sample != "hello.py"
    for line in EXPECTED[sample]:
        assert line in text, text


def test_every_sample_is_exercised() -> None:
    samples = {p.name for p in SAMPLES.glob("*.py")}
    covered = set(EXPECTED) | {"fastapi_app.py", "entity_counter.py", "bank_transfer.py"}
    assert samples <= covered, f"samples without a test: {samples - covered}"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, SAMPLES / f"{name.removeprefix('sample_')}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def fastapi_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip("fastapi")
    for name in ("DURABLETASK_CONNECTION_STRING", "ENDPOINT", "TASKHUB"):
        monkeypatch.delenv(name, raising=False)
    module = _load("sample_fastapi_app")
    port = free_port()
    config = uvicorn.Config(
        module.app, host="127.0.0.1", port=port, lifespan="on", log_level="warning"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)


async def test_fastapi_app_under_uvicorn(fastapi_server: str) -> None:
    httpx = pytest.importorskip("httpx")
    async with httpx.AsyncClient(base_url=fastapi_server, timeout=30) as http:
        placed = await http.post("/orders", json={"product": "widget", "quantity": 4})
        assert placed.status_code == 202
        instance_id = placed.json()["instance_id"]
        status = await http.get(f"/orders/{instance_id}", params={"wait": 20})
        assert status.status_code == 200
        assert status.json() == {
            "status": "COMPLETED",
            "result": {"status": "placed", "confirmation": "confirmed 4x widget"},
        }
        too_many = await http.post("/orders", json={"product": "gadget", "quantity": 50})
        refused = await http.get(f"/orders/{too_many.json()['instance_id']}", params={"wait": 20})
        assert refused.json()["result"] == {"status": "out of stock"}
        missing = await http.get("/orders/does-not-exist")
        assert missing.status_code == 404
