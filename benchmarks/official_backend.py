"""The official in-memory backend in a process of its own.

Usage: python benchmarks/official_backend.py PORT   (stops on SIGTERM)
"""

from __future__ import annotations

import signal
import sys
import threading

from durabletask.testing import InMemoryOrchestrationBackend


def main() -> None:
    backend = InMemoryOrchestrationBackend(port=int(sys.argv[1]), max_history_size=100_000)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    backend.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    stop.wait()
    backend.stop(grace=0)


if __name__ == "__main__":
    main()
