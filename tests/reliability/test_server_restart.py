"""Promise 1: a worker survives the backend going away, and nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import time

from dtask_async.client import AsyncDurableTaskClient

from . import flows
from .checks import check_all_completed, count_completed, expected_outputs
from .conftest import Processes, client_for, wait_until

INSTANCES = 300


async def test_workers_reconnect_after_the_server_is_killed_under_load(
    processes: Processes,
) -> None:
    """Promise (DESIGN §5, §7): when the server is killed with ``kill -9`` while work is
    in flight and started again, worker processes reconnect by themselves (jittered
    backoff, no restart, no help) and every orchestration, whether scheduled before the
    kill or after the restart, completes with the right output and each step recorded
    once."""
    emulator = processes.emulator()
    await emulator.start()
    workers = [
        # Few slow activities at once, so that each batch lasts long enough for both
        # workers to be back (their reconnection delays are random) before it is done.
        processes.worker(f"worker-{n}", emulator.address, activity_delay=0.05, activities=10)
        for n in range(2)
    ]
    await asyncio.gather(*(worker.start() for worker in workers))

    half = INSTANCES // 2
    before = expected_outputs("before", half, flows.expected_chain_fan)
    batches = [
        expected_outputs(f"after-{n}", half // 2, flows.expected_chain_fan, start=half)
        for n in range(2)
    ]

    async with client_for(emulator.address) as client:
        await _schedule(client, before)
        completed = await wait_until(
            lambda: _at_least(client, half // 4), timeout=60, what="a quarter completing"
        )
    assert completed < half, "everything finished before the kill: no load to interrupt"

    for batch in batches:
        await emulator.kill()
        await asyncio.sleep(0.2)  # let the OS tear the connections down
        await emulator.start()
        restarted = time.monotonic_ns()
        async with client_for(emulator.address) as client:
            await _schedule(client, batch)
            # Both workers take work again, on their own.
            await wait_until(
                lambda restarted=restarted: all(
                    any(e.kind == "E+" and e.ns > restarted for e in worker.events())
                    for worker in workers
                ),
                timeout=60,
                what="both workers running episodes after the restart",
            )

    async with client_for(emulator.address) as client:
        everything = {**before, **batches[0], **batches[1]}
        await check_all_completed(client, everything, timeout=120, histories=list(everything)[::10])
    for worker in workers:
        assert worker.running, f"{worker.name} exited:\n{worker.stderr()}"
        assert worker.starts == 1
    assert emulator.starts == 3


async def _schedule(client: AsyncDurableTaskClient, expected: dict[str, object]) -> None:
    for instance_id in expected:
        value = int(instance_id.rsplit("-", 1)[1])
        await client.schedule_new_orchestration(
            flows.chain_fan, input=value, instance_id=instance_id
        )


async def _at_least(client: AsyncDurableTaskClient, count: int) -> int:
    done = await count_completed(client)
    return done if done >= count else 0
