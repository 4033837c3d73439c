"""The ``dtask-async`` command line.

Each subcommand lives in a module of its own with a ``register(commands)`` function
that adds its parser; :data:`COMMAND_MODULES` lists them in the order ``--help`` shows.
Commands that talk to a server share the connection options of :mod:`._connect` and
its exit codes: 0 ok, 1 not found or refused, 2 usage or connection.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._connect import EXIT_USAGE, CommandError

__all__ = ("build_parser", "main")

COMMAND_MODULES = ("_emulator",)
"""The modules under ``dtask_async.cli`` that each add one or more subcommands."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(prog="dtask-async", description="dtask-async tools")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except CommandError as exc:
        sys.stderr.write(f"dtask-async {args.command}: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:  # pragma: no cover - interactive
        return EXIT_USAGE
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
