"""The official ``durabletask`` worker, serving the benchmark's orchestrations.

Usage: python benchmarks/official_worker.py HOST:PORT   (stops on SIGTERM)
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from durabletask import task
from durabletask.worker import TaskHubGrpcWorker
from workflows import define


def main() -> None:
    address = sys.argv[1]
    flows = define(task)
    worker = TaskHubGrpcWorker(host_address=address, logger=logging.getLogger("bench.official"))
    for orchestrator in flows.orchestrators:
        worker.add_orchestrator(orchestrator)
    worker.add_activity(flows.increment)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stop.wait()
    worker.stop()


if __name__ == "__main__":
    main()
