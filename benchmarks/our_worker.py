"""The dtask-async worker, serving the benchmark's orchestrations.

Usage: python benchmarks/our_worker.py HOST:PORT [--no-work-channel]   (stops on SIGTERM)
"""

from __future__ import annotations

import asyncio
import signal
import sys

from workflows import define

from dtask_async import task
from dtask_async.worker import AsyncDurableTaskWorker


async def main() -> None:
    address = sys.argv[1]
    flows = define(task)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    work_channel = "--no-work-channel" not in sys.argv[2:]
    async with AsyncDurableTaskWorker(
        host_address=address, shutdown_timeout=2, work_channel=work_channel
    ) as worker:
        for orchestrator in flows.orchestrators:
            worker.add_orchestrator(orchestrator)
        worker.add_activity(flows.increment)
        await worker.start()
        await worker.wait_until_connected(timeout=30)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
