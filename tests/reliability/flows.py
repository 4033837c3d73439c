"""Orchestrations and activities of the reliability suite.

The worker processes (``worker_main.py``) register them and the tests start them by
name, so both sides agree on names and on the output each input must produce
(``expected_*``). Activities append a start and an end line to the worker's event log
(see :mod:`tests.reliability.eventlog`), which is how the tests count executions.
"""

from __future__ import annotations

import asyncio
from typing import Any

from dtask_async import task

from . import eventlog

ACTIVITY_DELAY = 0.0
"""Seconds each ``add`` activity takes; set by the worker process."""


async def add(ctx: task.ActivityContext, pair: list[int]) -> int:
    """``a + b``, taking :data:`ACTIVITY_DELAY` seconds."""
    eventlog.write("A+", ctx.orchestration_id, str(ctx.task_id))
    if ACTIVITY_DELAY:
        await asyncio.sleep(ACTIVITY_DELAY)
    eventlog.write("A-", ctx.orchestration_id, str(ctx.task_id))
    return pair[0] + pair[1]


def chain_fan(ctx: task.OrchestrationContext, value: int) -> Any:
    """One activity, then three in parallel: five episodes or so per instance."""
    first = yield ctx.call_activity(add, input=[value, 1])
    parts = yield task.when_all([ctx.call_activity(add, input=[first, k]) for k in range(3)])
    return {"input": value, "sum": sum(parts)}


def expected_chain_fan(value: int) -> dict[str, int]:
    """The output of ``chain_fan(value)``."""
    return {"input": value, "sum": 3 * (value + 1) + 3}


def soak(ctx: task.OrchestrationContext, value: int) -> Any:
    """The soak's orchestration: one activity."""
    total = yield ctx.call_activity(add, input=[value, value])
    return total + 1


def expected_soak(value: int) -> int:
    """The output of ``soak(value)``."""
    return 2 * value + 1


ORCHESTRATORS = (chain_fan, soak)
ACTIVITIES = (add,)
