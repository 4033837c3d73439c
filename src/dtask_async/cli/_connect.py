"""What every command that talks to a server shares: the connection options, the
client they make, and how errors become one line and an exit code.

Options (each also read from the environment)::

    --connection-string S   DURABLETASK_CONNECTION_STRING   Endpoint=...;Authentication=...
    --endpoint URL          ENDPOINT                       default http://localhost:8080
    --taskhub NAME          TASKHUB / DURABLETASK_TASK_HUB_NAME

A connection string wins over an endpoint. An ``https://`` endpoint without a
connection string signs in with ``DefaultAzureCredential``, as the samples do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from .._errors import (
    AuthenticationError,
    ConnectionStringError,
    DurableTaskError,
    InvalidArgumentError,
    InvalidInstanceIdError,
    OrchestrationNotFoundError,
    RPCError,
    RPCTimeoutError,
    ServerUnavailableError,
)

__all__ = (
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "CommandError",
    "add_connection_arguments",
    "connected_client",
    "run_command",
)

T = TypeVar("T")

EXIT_OK = 0
EXIT_REFUSED = 1
"""Not found, or the server refused the operation."""
EXIT_USAGE = 2
"""Bad arguments, or no server to talk to."""

DEFAULT_ENDPOINT = "http://localhost:8080"


class CommandError(Exception):
    """Raised by a command to end with one line on stderr and ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--connection-string``, ``--endpoint`` and ``--taskhub`` to ``parser``."""
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--connection-string",
        metavar="S",
        default=None,
        help="Endpoint=...;Authentication=...;TaskHub=... "
        "(default: $DURABLETASK_CONNECTION_STRING)",
    )
    group.add_argument(
        "--endpoint",
        metavar="URL",
        default=None,
        help=f"the server's address (default: $ENDPOINT or {DEFAULT_ENDPOINT})",
    )
    group.add_argument(
        "--taskhub",
        metavar="NAME",
        default=None,
        help="the task hub (default: $TASKHUB, $DURABLETASK_TASK_HUB_NAME or default)",
    )


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    env = os.environ
    connection_string = args.connection_string or env.get("DURABLETASK_CONNECTION_STRING")
    endpoint = args.endpoint or env.get("ENDPOINT")
    taskhub = args.taskhub or env.get("TASKHUB") or env.get("DURABLETASK_TASK_HUB_NAME")
    if args.connection_string is None and args.endpoint is not None:
        connection_string = None  # an endpoint on the command line beats the environment
    if not connection_string and not endpoint:
        endpoint = DEFAULT_ENDPOINT
    return {
        "connection_string": connection_string or None,
        "endpoint": endpoint,
        "taskhub": taskhub,
    }


@asynccontextmanager
async def connected_client(args: argparse.Namespace) -> AsyncIterator[Any]:
    """An :class:`~dtask_async.client.AsyncDurableTaskClient` for the options in ``args``."""
    from .._environment import DurableEnvironment

    settings = _settings(args)
    try:
        environment = DurableEnvironment(**settings)
        async with environment, environment.client() as client:
            yield client
    except ConnectionStringError as exc:
        raise CommandError(f"bad connection string: {exc}", EXIT_USAGE) from None


def describe_target(args: argparse.Namespace) -> str:
    """Where the options in ``args`` point, for messages."""
    settings = _settings(args)
    if settings["connection_string"]:
        return "the server of the connection string"
    return str(settings["endpoint"])


def run_command(args: argparse.Namespace, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` on a new event loop, turning the errors a user can meet into one
    line and an exit code (:class:`CommandError`)."""
    try:
        return asyncio.run(_as_coroutine(work))
    except CommandError:
        raise
    except ServerUnavailableError:
        raise CommandError(
            f"cannot reach a Durable Task server at {describe_target(args)}", EXIT_USAGE
        ) from None
    except AuthenticationError as exc:
        raise CommandError(f"the server refused the credentials: {exc}", EXIT_USAGE) from None
    except (ConnectionStringError, InvalidInstanceIdError) as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except OrchestrationNotFoundError as exc:
        raise CommandError(str(exc), EXIT_REFUSED) from None
    except RPCTimeoutError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    except (RPCError, InvalidArgumentError) as exc:
        raise CommandError(str(exc), EXIT_REFUSED) from None
    except DurableTaskError as exc:
        raise CommandError(str(exc), EXIT_REFUSED) from None


async def _as_coroutine(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
