"""Promise 2: a worker keeps working however the server ends its work-item stream."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator

import anyio
import grpc
import pytest

from dtask_async import task
from dtask_async.worker import AsyncDurableTaskWorker, ReconnectPolicy

from .fake_sidecar import END, GARBAGE, RAISE, SILENT, FakeSidecar, Plan, activity_item

FAST = ReconnectPolicy(initial_delay=0.02, max_delay=0.2)

ENDINGS = [
    END,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ABORTED,
    RAISE,
    GARBAGE,
]


async def double(ctx: task.ActivityContext, value: int) -> int:
    return value * 2


_tokens = itertools.count()


def _token(prefix: str) -> str:
    return f"{prefix}-{next(_tokens)}"


@contextlib.asynccontextmanager
async def _run(fake: FakeSidecar) -> AsyncIterator[AsyncDurableTaskWorker]:
    async with AsyncDurableTaskWorker(
        host_address=fake.address, reconnect=FAST, shutdown_timeout=1
    ) as worker:
        worker.add_activity(double)
        await worker.start()
        yield worker


def _name(ending: object) -> str:
    return ending.name if isinstance(ending, grpc.StatusCode) else str(ending)


@pytest.mark.parametrize("ending", ENDINGS, ids=_name)
async def test_worker_reconnects_after_the_server_ends_its_stream(ending: object) -> None:
    """Promise (DESIGN §7): however the server ends the ``GetWorkItems`` stream (a clean
    end, any status code including CANCELLED, an error in the handler, a message that
    does not decode), the worker finishes the work that stream handed out, reconnects by
    itself and keeps taking work. Three resets in a row, then a healthy stream."""
    async with FakeSidecar([]) as fake:
        tokens = []
        for _ in range(3):
            token = _token(_name(ending))
            tokens.append(token)
            fake.add_plan(Plan(items=[activity_item(token, value=len(tokens))], ending=ending))
        healthy = [_token("healthy") for _ in range(5)]
        fake.add_plan(Plan(items=[activity_item(t, value=10) for t in healthy]))
        async with _run(fake) as worker:
            await fake.wait_for(tokens + healthy)
            assert worker.is_running
            await worker.wait_until_connected(timeout=5)
            # The stream stays usable: more work on the same (fourth) connection.
            assert fake.connections == 4
        for n, token in enumerate(tokens, start=1):
            assert fake.completions[token].result.value == str(2 * n)
        for token in healthy:
            assert fake.completions[token].result.value == "20"
        assert not fake.duplicates
        assert not fake.abandoned


async def test_worker_survives_a_long_series_of_mixed_resets() -> None:
    """Promise (DESIGN §7): the worker reconnects after every kind of reset in a row,
    including streams that end before sending anything, without giving up or slowing
    to a crawl (the backoff is capped), and loses none of the work handed out."""
    plans = []
    tokens = []
    for ending in [*ENDINGS, *ENDINGS]:
        token = _token("mixed")
        tokens.append(token)
        plans.append(Plan(items=[activity_item(token, value=1)], ending=ending))
        plans.append(Plan(ending=ending))  # and once with nothing sent at all
    async with FakeSidecar(plans) as fake:
        last = _token("last")
        fake.add_plan(Plan(items=[activity_item(last, value=21)]))
        with anyio.fail_after(60):
            async with _run(fake) as worker:
                await fake.wait_for([*tokens, last], timeout=60)
                assert worker.is_running
        assert fake.connections == len(plans) + 1
        assert fake.completions[last].result.value == "42"
        assert all(fake.completions[t].result.value == "2" for t in tokens)


# UNAVAILABLE is left out: grpc itself retries it (ChannelOptions.retry_unavailable_attempts)
# before the worker sees it, which blurs the timing measured here.
@pytest.mark.parametrize(
    "ending", [END, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL], ids=_name
)
async def test_backoff_grows_while_streams_fail_at_once(ending: object) -> None:
    """Promise (DESIGN §7): reconnection backs off exponentially (with jitter) while
    the server keeps ending the stream before sending anything, instead of retrying at
    the initial delay forever."""
    policy = ReconnectPolicy(initial_delay=0.05, max_delay=0.4, jitter=0.1)
    failing = 6
    plans = [Plan(ending=ending) for _ in range(failing)]
    async with FakeSidecar(plans) as fake:
        token = _token("after-backoff")
        fake.add_plan(Plan(items=[activity_item(token, value=2)]))
        async with AsyncDurableTaskWorker(
            host_address=fake.address, reconnect=policy, shutdown_timeout=1
        ) as worker:
            worker.add_activity(double)
            await worker.start()
            await fake.wait_for([token], timeout=30)
    gaps = [b - a for a, b in zip(fake.connected_at, fake.connected_at[1:], strict=False)]
    assert len(gaps) == failing
    # 0.05, 0.1, 0.2, 0.4, 0.4, 0.4 (±10 %)
    floors = [min(policy.max_delay, policy.initial_delay * 2**n) * 0.85 for n in range(failing)]
    assert all(gap >= floor for gap, floor in zip(gaps, floors, strict=True)), (gaps, floors)
    assert gaps[-1] < 2.0, gaps
    assert fake.completions[token].result.value == "4"


async def test_worker_reconnects_when_the_stream_goes_silent() -> None:
    """Promise (DESIGN §7): a stream that stays open but on which nothing arrives any
    more, not even the server's health pings (the connection died without anyone being
    told), is given up after ``ReconnectPolicy.silent_disconnect_timeout``: the worker
    reconnects and takes work again instead of waiting forever."""
    policy = ReconnectPolicy(initial_delay=0.02, max_delay=0.2, silent_disconnect_timeout=0.5)
    first, second = _token("silent"), _token("silent")
    after = _token("after-silence")
    plans = [
        Plan(items=[activity_item(first, value=1)], ending=SILENT),
        Plan(items=[activity_item(second, value=2)], ending=SILENT),
        Plan(items=[activity_item(after, value=3)]),
    ]
    async with FakeSidecar(plans) as fake:
        async with AsyncDurableTaskWorker(
            host_address=fake.address, reconnect=policy, shutdown_timeout=1
        ) as worker:
            worker.add_activity(double)
            await worker.start()
            with anyio.fail_after(10):
                await fake.wait_for([first, second, after])
        assert fake.connections == 3
        assert [fake.completions[t].result.value for t in (first, second, after)] == [
            "2",
            "4",
            "6",
        ]
        # The healthy third stream sends pings every 0.2 s: it is not dropped.
        assert fake.connected_at[2] - fake.connected_at[1] >= 0.5
