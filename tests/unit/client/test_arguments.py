"""Client arguments that are refused before anything is sent."""

from __future__ import annotations

import pytest

from dtask_async.client import AsyncDurableTaskClient


def orchestrator(ctx: object, _: object) -> None:
    return None


async def test_schedule_needs_an_orchestrator() -> None:
    async with AsyncDurableTaskClient(host_address="localhost:1") as client:
        with pytest.raises(TypeError, match="needs the orchestrator"):
            await client.schedule_new_orchestration(input=1)


async def test_schedule_refuses_both_spellings() -> None:
    async with AsyncDurableTaskClient(host_address="localhost:1") as client:
        with pytest.raises(TypeError, match="both 'orchestrator' and 'orchestration'"):
            await client.schedule_new_orchestration(
                orchestrator, orchestration=orchestrator, input=1
            )
