"""The benchmark's orchestrations, written once for both SDKs.

``define(task_module)`` builds the functions against one SDK's ``task`` module
(``durabletask.task`` or ``dtask_async.task``); only ``when_all`` differs.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any


def define(task: Any) -> SimpleNamespace:
    """The orchestrators and activity of the benchmark, for the SDK of ``task``."""

    def increment(ctx: Any, value: int) -> int:
        return value + 1

    def chain(ctx: Any, value: int) -> Any:
        value = yield ctx.call_activity(increment, input=value)
        value = yield ctx.call_activity(increment, input=value)
        value = yield ctx.call_activity(increment, input=value)
        return value

    def fan(ctx: Any, count: int) -> Any:
        results = yield task.when_all([ctx.call_activity(increment, input=i) for i in range(count)])
        return sum(results)

    def seq(ctx: Any, count: int) -> Any:
        value = 0
        for _ in range(count):
            value = yield ctx.call_activity(increment, input=value)
        return value

    return SimpleNamespace(
        increment=increment, chain=chain, fan=fan, seq=seq, orchestrators=(chain, fan, seq)
    )
