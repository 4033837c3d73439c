"""Promise 7: a long run with a worker restarted over and over loses nothing and leaks
nothing."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

import anyio
import pytest

from dtask_async.client import OrchestrationStatus

from . import eventlog, flows
from .checks import history_problems
from .conftest import REPORT, Processes, client_for, env_int

ORCHESTRATIONS = env_int("DTASK_SOAK_ORCHESTRATIONS", 10_000)
IN_FLIGHT = 300
RESTART_EVERY = 2.0
"""Seconds between restarts of the second worker."""
RSS_INTERVAL = 0.25
RSS_GROWTH_BOUND = 1.15
"""The last quarter's median RSS may exceed the first quarter's by at most 15 % ..."""
RSS_SLACK_KIB = 16 * 1024
"""... plus 16 MiB (allocator arenas, SQLite's page cache settling)."""


@dataclass
class Soak:
    wrong: list[str] = field(default_factory=list)
    done: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_soak_with_a_worker_restarted_every_few_seconds(
    processes: Processes, record_testsuite_property: object
) -> None:
    """Promise (DESIGN §5, §7): 10,000 orchestrations (one activity each) run through
    two worker processes while one of them is restarted every few seconds, alternately
    killed with ``kill -9`` and stopped gracefully with SIGTERM. Every instance
    completes with the expected output (checked, then purged, as it finishes; one in
    fifty also has its history checked for duplicated steps); activities that ran more
    than once are counted and reported; the server's resident memory in the last
    quarter of the run stays within a stated bound of the first quarter's."""
    emulator = processes.emulator()
    await emulator.start()
    steady = processes.worker("steady", emulator.address)
    restarted = processes.worker("restarted", emulator.address)
    await asyncio.gather(steady.start(), restarted.start())
    soak = Soak()
    started = time.monotonic()

    async def sample_memory() -> None:
        while True:
            soak.rss.append((time.monotonic() - started, emulator.rss_kib()))
            await asyncio.sleep(RSS_INTERVAL)

    async def restart_forever() -> None:
        kill = True
        while True:
            await asyncio.sleep(RESTART_EVERY)
            if kill:
                await restarted.kill()
                soak.restarts.append("kill -9")
            else:
                await restarted.stop()
                soak.restarts.append("SIGTERM")
            kill = not kill
            await restarted.start()

    async with client_for(emulator.address) as client:
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def one(value: int) -> None:
            instance_id = f"soak-{value:05d}"
            try:
                await client.schedule_new_orchestration(
                    flows.soak, input=value, instance_id=instance_id
                )
                state = await client.wait_for_orchestration_completion(instance_id, timeout=120)
                if state is None or state.runtime_status is not OrchestrationStatus.COMPLETED:
                    soak.wrong.append(f"{instance_id}: {state}")
                elif json.loads(state.serialized_output or "null") != flows.expected_soak(value):
                    soak.wrong.append(f"{instance_id}: output {state.serialized_output}")
                elif value % 50 == 0:
                    soak.wrong.extend(await history_problems(client, instance_id))
                await client.purge_orchestration(instance_id)
                soak.done += 1
            finally:
                slots.release()

        background = [
            asyncio.create_task(sample_memory()),
            asyncio.create_task(restart_forever()),
        ]
        try:
            async with anyio.create_task_group() as group:
                for value in range(ORCHESTRATIONS):
                    await slots.acquire()
                    group.start_soon(one, value)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        duration = time.monotonic() - started
        leftovers = await client.get_all_orchestration_states(page_size=1000)

    for worker in (steady, restarted):
        if worker.running:
            await worker.stop()
    summary = eventlog.summarize(eventlog.read(steady.log, restarted.log))
    repeated = summary.repeated_activities
    figures = _figures(soak, duration, summary, repeated)
    REPORT.extend(figures)
    for n, line in enumerate(figures):  # into the JUnit XML as well
        record_testsuite_property(f"soak-{n}", line)  # type: ignore[operator]

    assert not soak.wrong, f"{len(soak.wrong)} wrong, first ones: {soak.wrong[:10]}"
    assert soak.done == ORCHESTRATIONS
    assert not leftovers, f"{len(leftovers)} instances left after purging"
    assert len(summary.activity_runs) == ORCHESTRATIONS  # every activity ran at least once
    assert len(soak.restarts) >= 3, soak.restarts
    assert steady.starts == 1
    first, last = _quarters(soak.rss)
    bound = statistics.median(first) * RSS_GROWTH_BOUND + RSS_SLACK_KIB
    assert statistics.median(last) <= bound, figures


def _quarters(samples: list[tuple[float, int]]) -> tuple[list[int], list[int]]:
    values = [rss for _, rss in samples]
    quarter = max(1, len(values) // 4)
    return values[:quarter], values[-quarter:]


def _figures(
    soak: Soak,
    duration: float,
    summary: eventlog.Summary,
    repeated: dict[tuple[str, str], int],
) -> list[str]:
    kills = soak.restarts.count("kill -9")
    first, last = _quarters(soak.rss)
    timeline = []
    if soak.rss:
        for share in (0.0, 0.25, 0.5, 0.75, 1.0):
            at, rss = soak.rss[min(len(soak.rss) - 1, int(share * (len(soak.rss) - 1)))]
            timeline.append(f"{at:.0f}s={rss / 1024:.0f}")
    return [
        f"soak: {soak.done} orchestrations in {duration:.1f} s "
        f"({soak.done / duration:.0f}/s), {len(soak.wrong)} wrong",
        f"soak: worker restarted {len(soak.restarts)} times "
        f"({kills} kill -9, {len(soak.restarts) - kills} SIGTERM)",
        f"soak: {sum(summary.activity_runs.values())} activity executions for "
        f"{len(summary.activity_runs)} activities; {len(repeated)} ran more than once "
        f"({sum(repeated.values()) - len(repeated)} extra runs)",
        f"soak: server RSS MiB {', '.join(timeline)}; "
        f"first-quarter median {statistics.median(first) / 1024:.1f}, "
        f"last-quarter median {statistics.median(last) / 1024:.1f}, "
        f"peak {max(rss for _, rss in soak.rss) / 1024:.1f} "
        f"(bound: x{RSS_GROWTH_BOUND} + {RSS_SLACK_KIB // 1024} MiB)",
    ]
