"""The entity samples run as users run them: ``python samples/<name>.py``.

On the official backend they get its address in ``DURABLETASK_CONNECTION_STRING``;
on the embedded backend nothing is configured, so each starts its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[3] / "samples"

EXPECTED = {
    "entity_counter.py": [
        "counter: Counter value: 15",
        "@counter@my-counter stored state: 15",
        "class_counter: Counter value: 15",
        "@class_counter@my-counter stored state: 15",
    ],
    "bank_transfer.py": [
        "moved 30 from alice to bob",
        "moved 10 from bob to alice",
        "moved 20 from alice to bob",
        "refused 1000 from alice: insufficient funds",
        "alice: 60, bob: 140, total: 200",
    ],
}


@pytest.mark.parametrize("sample", sorted(EXPECTED))
async def test_entity_sample(
    sample: str, entity_backend: str, request: pytest.FixtureRequest
) -> None:
    env = dict(os.environ)
    for name in ("DURABLETASK_CONNECTION_STRING", "ENDPOINT", "TASKHUB"):
        env.pop(name, None)
    if request.node.callspec.params.get("backend_address") == "official":
        env["DURABLETASK_CONNECTION_STRING"] = (
            f"Endpoint=http://{entity_backend};Authentication=None;TaskHub=default"
        )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SAMPLES / sample),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    text = output.decode()
    assert process.returncode == 0, text
    for line in EXPECTED[sample]:
        assert line in text, text
