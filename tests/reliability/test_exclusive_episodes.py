"""DESIGN §5: an orchestration instance is never run by two workers at the same time."""

from __future__ import annotations

import asyncio

from . import eventlog, flows
from .checks import check_all_completed, expected_outputs
from .conftest import Processes, client_for

INSTANCES = 500
WORKERS = 3


async def test_three_workers_never_run_one_instance_at_once(processes: Processes) -> None:
    """Promise (DESIGN §5): three worker processes on one backend finish 500
    orchestrations (about five episodes each, activities completing in parallel), and
    no instance ever has two episodes in progress at once, on different workers or on
    one. Each worker logs when an episode starts (work item received) and ends (result
    about to be sent) on the machine-wide monotonic clock; episodes are widened by a
    random wait of up to 5 ms so that an overlap could not slip between them."""
    emulator = processes.emulator()
    await emulator.start()
    workers = [
        processes.worker(f"worker-{n}", emulator.address, episode_delay=0.005)
        for n in range(WORKERS)
    ]
    await asyncio.gather(*(worker.start() for worker in workers))
    expected = expected_outputs("exclusive", INSTANCES, flows.expected_chain_fan)
    async with client_for(emulator.address) as client:
        for instance_id in expected:
            value = int(instance_id.rsplit("-", 1)[1])
            await client.schedule_new_orchestration(
                flows.chain_fan, input=value, instance_id=instance_id
            )
        await check_all_completed(client, expected, timeout=120)
    for worker in workers:
        await worker.stop()

    summary = eventlog.summarize(eventlog.read(*(worker.log for worker in workers)))
    assert not summary.unfinished_episodes
    assert set(summary.episodes) == set(expected)
    overlapping = eventlog.overlaps(summary)
    assert not overlapping, f"{len(overlapping)} overlaps, first ones: {overlapping[:5]}"

    # The check means something only if the work was really shared.
    episodes = sum(len(intervals) for intervals in summary.episodes.values())
    assert episodes >= 3 * INSTANCES
    per_worker = {pid for intervals in summary.episodes.values() for *_, pid in intervals}
    assert len(per_worker) == WORKERS
    shared = sum(
        1 for intervals in summary.episodes.values() if len({pid for *_, pid in intervals}) > 1
    )
    assert shared >= INSTANCES // 2, f"only {shared} instances ran on more than one worker"


def test_the_overlap_check_finds_overlaps() -> None:
    """The check above is not vacuous: it reports intervals that overlap, also when a
    long episode covers several later ones, and accepts episodes that touch."""
    summary = eventlog.Summary()
    summary.episodes["a"] = [(0, 10, 1), (10, 20, 2)]  # back to back: fine
    summary.episodes["b"] = [(0, 100, 1), (10, 20, 2), (30, 40, 3)]  # one long episode
    summary.episodes["c"] = [(5, 15, 2), (0, 6, 1)]  # unordered
    found = eventlog.overlaps(summary)
    assert len(found) == 3
    assert not any(line.startswith("a:") for line in found)
