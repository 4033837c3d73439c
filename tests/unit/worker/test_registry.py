from __future__ import annotations

import dataclasses

import pytest

from dtask_async import RegistrationError, task
from dtask_async.worker import ConcurrencyOptions, ReconnectPolicy, Registry


@dataclasses.dataclass
class Order:
    product: str


def plain(ctx: task.ActivityContext, order: Order) -> str:
    return order.product


async def coroutine(ctx: task.ActivityContext, value: int) -> int:
    return value


def no_input(ctx: task.ActivityContext) -> str:
    return "x"


@task.activity(name="renamed")
def decorated(ctx: task.ActivityContext, value: int) -> int:
    return value


class HelloActivity:
    async def run(self, context: object, input: str) -> str:
        return input


def test_activities_are_described_for_calling() -> None:
    registry = Registry()
    assert registry.add_activity(plain) == "plain"
    assert registry.add_activity(coroutine) == "coroutine"
    assert registry.add_activity(no_input) == "no_input"
    assert registry.add_activity(decorated) == "renamed"
    assert registry.add_activity(HelloActivity()) == "HelloActivity"
    a = registry.activities
    assert (a["plain"].is_async, a["plain"].takes_input, a["plain"].input_type) == (
        False,
        True,
        Order,
    )
    assert a["coroutine"].is_async
    assert not a["no_input"].takes_input
    assert a["HelloActivity"].is_async


def test_duplicate_names_are_refused_with_the_name() -> None:
    registry = Registry()
    registry.add_activity(plain)
    with pytest.raises(RegistrationError, match="activity named 'plain' is already registered"):
        registry.add_activity(plain)
    registry.add_orchestrator(plain, "orch")
    with pytest.raises(RegistrationError, match="'orch'"):
        registry.add_orchestrator(coroutine, "orch")
    with pytest.raises(ValueError):  # RegistrationError is a ValueError too
        registry.add_activity(coroutine, "plain")


def test_entity_names_are_lower_case() -> None:
    registry = Registry()
    assert registry.add_entity(plain, "Counter") == "counter"
    with pytest.raises(RegistrationError):
        registry.add_entity(coroutine, "COUNTER")


def test_lambdas_need_a_name() -> None:
    registry = Registry()
    with pytest.raises(TypeError, match="name"):
        registry.add_activity(lambda ctx, x: x)
    assert registry.add_activity(lambda ctx, x: x, "double") == "double"


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="max_concurrent_activities"):
        ConcurrencyOptions(max_concurrent_activities=0)
    with pytest.raises(ValueError, match="jitter"):
        ReconnectPolicy(jitter=1.5)
    with pytest.raises(ValueError):
        ReconnectPolicy(initial_delay=5, max_delay=1)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = ReconnectPolicy(initial_delay=0.5, max_delay=8, multiplier=2, jitter=0.2)
    for attempt, base in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 8.0), (1000, 8.0)]:
        delays = {policy.delay(attempt) for _ in range(20)}
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len(delays) > 1  # jittered
