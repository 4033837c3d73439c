"""Promises 3 and 4: a worker that dies or freezes loses nothing, and its late results
are refused without corrupting anything."""

from __future__ import annotations

import asyncio
import signal
import time

from . import eventlog, flows
from .checks import check_all_completed, expected_outputs
from .conftest import Processes, WorkerProcess, client_for, wait_until

INSTANCES = 40


async def _schedule(address: str, expected: dict[str, object]) -> None:
    async with client_for(address) as client:
        for instance_id in expected:
            value = int(instance_id.rsplit("-", 1)[1])
            await client.schedule_new_orchestration(
                flows.chain_fan, input=value, instance_id=instance_id
            )


def _busy(worker: WorkerProcess) -> bool:
    """Whether ``worker`` is in the middle of activities and of an episode."""
    summary = eventlog.summarize(worker.events())
    return len(summary.unfinished_activities) >= 2 and len(summary.unfinished_episodes) >= 1


async def test_work_of_a_killed_worker_is_finished_by_another(processes: Processes) -> None:
    """Promise (DESIGN §5, §7): when a worker process is killed with ``kill -9`` in the
    middle of activities and orchestrator episodes, the server sees its stream drop and
    redelivers its work at once (long before the 60-second leases would expire);
    another worker finishes everything; the activities that were running are run again
    (at least once); no output is wrong and no step is recorded twice."""
    emulator = processes.emulator(lease_seconds=60)
    await emulator.start()
    doomed = processes.worker("doomed", emulator.address, activity_delay=0.5, episode_delay=0.3)
    await doomed.start()
    expected = expected_outputs("killed", INSTANCES, flows.expected_chain_fan)
    await _schedule(emulator.address, expected)
    await wait_until(lambda: _busy(doomed), timeout=30, what="the worker being busy")
    await doomed.kill()
    killed_at = time.monotonic()

    at_kill = eventlog.summarize(doomed.events())
    assert at_kill.unfinished_activities, "no activity was running at the kill"
    assert at_kill.unfinished_episodes, "no episode was running at the kill"

    rescuer = processes.worker("rescuer", emulator.address, activity_delay=0.01)
    await rescuer.start()
    async with client_for(emulator.address) as client:
        await check_all_completed(client, expected, timeout=60, histories=expected)
    assert time.monotonic() - killed_at < 30, "redelivery waited for the leases to expire"

    rescued = eventlog.summarize(rescuer.events())
    for _pid, instance_id, task_id in at_kill.unfinished_activities:
        assert rescued.activity_runs[(instance_id, task_id)] >= 1, (instance_id, task_id)
    for _pid, instance_id in at_kill.unfinished_episodes:
        assert rescued.episodes[instance_id], instance_id


async def test_a_frozen_worker_loses_its_leases_and_its_late_results_are_refused(
    processes: Processes,
) -> None:
    """Promise (DESIGN §5, §7): when a worker freezes (SIGSTOP: its connection stays open)
    in the middle of activities and episodes, its leases expire and another worker
    finishes everything. When it wakes up and reports the results it computed for the
    expired leases, the server refuses every one of them (stale tokens) and nothing
    changes: outputs stay right and each step stays recorded once."""
    emulator = processes.emulator(lease_seconds=2)
    await emulator.start()
    frozen = processes.worker(
        "frozen",
        emulator.address,
        activity_delay=0.5,
        episode_delay=0.3,
        orchestrations=4,
        activities=4,
    )
    await frozen.start()
    expected = expected_outputs("frozen", INSTANCES, flows.expected_chain_fan)
    await _schedule(emulator.address, expected)
    await wait_until(lambda: _busy(frozen), timeout=30, what="the worker being busy")
    frozen.signal(signal.SIGSTOP)
    at_freeze = eventlog.summarize(frozen.events())
    assert at_freeze.unfinished_activities
    assert at_freeze.unfinished_episodes

    rescuer = processes.worker("rescuer", emulator.address, activity_delay=0.01)
    await rescuer.start()
    async with client_for(emulator.address) as client:
        await check_all_completed(client, expected, timeout=60)

        frozen.signal(signal.SIGCONT)
        # The frozen worker finishes what it was doing and reports it, too late.
        await wait_until(
            lambda: _reported_everything(frozen, at_freeze),
            timeout=30,
            what="the woken worker reporting its work",
        )
        late = eventlog.summarize(frozen.events())
        assert late.refused >= len(at_freeze.unfinished_activities) + len(
            at_freeze.unfinished_episodes
        ), late.refused
        await asyncio.sleep(0.5)  # let any wrongly accepted result take effect
        await check_all_completed(client, expected, timeout=10, histories=expected)
    assert frozen.running, f"the woken worker died:\n{frozen.stderr()}"


def _reported_everything(worker: WorkerProcess, before: eventlog.Summary) -> bool:
    now = eventlog.summarize(worker.events())
    pending_activities = before.unfinished_activities & now.unfinished_activities
    pending_episodes = before.unfinished_episodes & now.unfinished_episodes
    return not pending_activities and not pending_episodes and now.refused > 0
