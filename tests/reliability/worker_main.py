"""A worker process for the reliability tests.

``python -m tests.reliability.worker_main --address HOST:PORT --log PATH [options]``

Serves :mod:`tests.reliability.flows` with :class:`AsyncDurableTaskWorker`, logs every
orchestration episode and activity execution to ``PATH`` (see
:mod:`tests.reliability.eventlog`), prints ``ready`` once its work-item stream is
open, and stops gracefully on SIGTERM (in-flight work drains or is abandoned).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import sys
from typing import Any

from dtask_async.worker import AsyncDurableTaskWorker, ConcurrencyOptions, ReconnectPolicy

from . import eventlog, flows


class LoggingWorker(AsyncDurableTaskWorker):
    """The SDK's worker, plus a log line where each orchestration episode starts
    and ends.

    It hooks two private methods because the boundaries of an episode (work item
    received, result about to be sent) are not visible through the public API.
    """

    def __init__(self, *, episode_delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._episode_delay = episode_delay
        self._open_episodes: dict[str, str] = {}

    async def _run_orchestration(self, request: Any, token: str) -> None:
        instance_id = request.instanceId
        self._open_episodes[token] = instance_id
        eventlog.write("E+", instance_id)
        try:
            if self._episode_delay:
                # Widen the episode, so that a second worker running the same
                # instance at the same time could not go unnoticed.
                await asyncio.sleep(random.uniform(0, self._episode_delay))
            await super()._run_orchestration(request, token)
        finally:
            if self._open_episodes.pop(token, None) is not None:
                eventlog.write("E-", instance_id)

    async def _complete(self, method: str, response: Any) -> bool:
        if method == "CompleteOrchestratorTask":
            instance_id = self._open_episodes.pop(response.completionToken, None)
            if instance_id is not None:
                eventlog.write("E-", instance_id)
        accepted = await super()._complete(method, response)
        if not accepted:
            eventlog.write("X", response.instanceId, method)
        return accepted


def dump_state(worker: LoggingWorker) -> None:
    """SIGUSR1: write the worker's lanes and every task's stack to stderr (to see what
    a stuck worker waits on)."""
    lanes = {kind.value: (lane.running, len(lane.waiting)) for kind, lane in worker._lanes.items()}
    sys.stderr.write(
        f"=== lanes (running, waiting): {lanes}; in flight: {len(worker._in_flight)}; "
        f"connected: {worker._connected.is_set()}\n"
    )
    for task in asyncio.all_tasks():
        sys.stderr.write(f"--- {task.get_name()}\n")
        for frame in task.get_stack():
            code = frame.f_code
            sys.stderr.write(f"    {code.co_filename}:{frame.f_lineno} {code.co_name}\n")
    sys.stderr.flush()


async def serve(args: argparse.Namespace) -> None:
    eventlog.open_log(args.log)
    flows.ACTIVITY_DELAY = args.activity_delay
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    worker = LoggingWorker(
        host_address=args.address,
        episode_delay=args.episode_delay,
        shutdown_timeout=args.shutdown_timeout,
        concurrency=ConcurrencyOptions(
            max_concurrent_orchestrations=args.orchestrations,
            max_concurrent_activities=args.activities,
        ),
        reconnect=ReconnectPolicy(max_delay=args.max_backoff),
    )
    loop.add_signal_handler(signal.SIGUSR1, dump_state, worker)
    async with worker:
        for orchestrator in flows.ORCHESTRATORS:
            worker.add_orchestrator(orchestrator)
        for activity in flows.ACTIVITIES:
            worker.add_activity(activity)
        await worker.start()
        await worker.wait_until_connected(timeout=60)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--activity-delay", type=float, default=0.0)
    parser.add_argument("--episode-delay", type=float, default=0.0)
    parser.add_argument("--orchestrations", type=int, default=100)
    parser.add_argument("--activities", type=int, default=100)
    parser.add_argument("--shutdown-timeout", type=float, default=5.0)
    parser.add_argument("--max-backoff", type=float, default=15.0)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
