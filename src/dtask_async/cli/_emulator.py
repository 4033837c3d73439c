"""``dtask-async emulator``: serve the embedded backend.

It listens on the Durable Task Scheduler emulator's port (8080), on loopback, until
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from typing import Any

__all__ = ("register",)


def _emulator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="SQLite file of the default task hub (default: a temporary file deleted on exit)",
    )
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=None,
        help="seconds a worker may hold a work item before it is redelivered (default: 30)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="log level on stderr (default: %(default)s)",
    )


async def _serve_emulator(args: argparse.Namespace) -> int:
    from ..backend import BackendOptions, EmbeddedBackend

    options = (
        BackendOptions()
        if args.lease_seconds is None
        else BackendOptions(lease_duration=args.lease_seconds)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    async with EmbeddedBackend(args.db, host=args.host, port=args.port, options=options) as backend:
        note = "" if args.db else " (temporary: deleted on exit; pass --db PATH to keep it)"
        sys.stdout.write(
            f"dtask-async emulator listening on {backend.address}\n"
            f"data: {backend.path}{note}\n"
            "press Ctrl-C to stop\n"
        )
        sys.stdout.flush()
        _tune_gc()
        await stop.wait()
    sys.stdout.write("dtask-async emulator stopped\n")
    sys.stdout.flush()
    return 0


def _tune_gc() -> None:
    # The emulator is a long-lived server of many small requests: with the default
    # thresholds, full collections over the loaded state and gRPC's objects cost a
    # quarter of its CPU. Startup objects are frozen out of collection, and young
    # collections happen less often. (A library must not do this to its host process,
    # so only the CLI does.)
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _emulator(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(_serve_emulator(args))
    except KeyboardInterrupt:  # pragma: no cover - signal handlers cover POSIX
        return 0
    except OSError as exc:
        sys.stderr.write(f"dtask-async emulator: {exc}\n")
        return 1


def register(commands: Any) -> None:
    """Add ``emulator`` to the ``dtask-async`` subcommands."""
    emulator = commands.add_parser(
        "emulator",
        help="serve the embedded Durable Task backend (SQLite storage)",
        description="Serve the embedded Durable Task backend until Ctrl-C or SIGTERM.",
    )
    _emulator_arguments(emulator)
    emulator.set_defaults(handler=_emulator)
