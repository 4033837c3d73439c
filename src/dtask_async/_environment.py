"""Pick where to run from the environment: a configured server, or an embedded one.

Samples and small apps use :class:`DurableEnvironment` so the same program runs
on a laptop with nothing installed and against the managed scheduler when a
connection string is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from ._errors import ConnectionStringError
from .client import AsyncDurableTaskClient
from .worker import AsyncDurableTaskWorker

__all__ = ("DurableEnvironment",)

logger = logging.getLogger(__name__)

CONNECTION_STRING_VARIABLE = "DURABLETASK_CONNECTION_STRING"
TASK_HUB_VARIABLES = ("DURABLETASK_TASK_HUB_NAME", "TASKHUB")
ENDPOINT_VARIABLE = "ENDPOINT"


class DurableEnvironment:
    """Where clients and workers connect, decided by environment variables.

    In order of precedence:

    1. ``DURABLETASK_CONNECTION_STRING`` (``Endpoint=...;Authentication=...;TaskHub=...``),
       with ``DURABLETASK_TASK_HUB_NAME`` or ``TASKHUB`` as the hub when the string
       has none: the Durable Task Scheduler, its emulator or any sidecar.
    2. ``ENDPOINT`` (and ``TASKHUB``): that server; an ``https://`` endpoint uses
       TLS and ``DefaultAzureCredential``, as in the Durable Task Scheduler samples;
       ``http://`` (or a bare ``host:port``) is plaintext without credentials.
    3. Nothing set: an embedded backend is started in this process (a SQLite file
       when ``db_path`` is given, else throwaway storage) and stopped on exit.

    Use it as ``async with DurableEnvironment.from_env() as env:`` and make
    clients and workers with :meth:`client` and :meth:`worker`.
    """

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        taskhub: str | None = None,
        db_path: str | None = None,
    ) -> None:
        self.connection_string = connection_string
        self.endpoint = endpoint
        self.taskhub = taskhub
        self.db_path = db_path
        self._backend: Any = None
        self._settings: dict[str, Any] | None = None
        self._credential: Any = None
        self._dts = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, db_path: str | None = None
    ) -> DurableEnvironment:
        """Read the configuration from ``environ`` (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        taskhub = next((env[v] for v in TASK_HUB_VARIABLES if env.get(v)), None)
        return cls(
            connection_string=env.get(CONNECTION_STRING_VARIABLE) or None,
            endpoint=env.get(ENDPOINT_VARIABLE) or None,
            taskhub=taskhub,
            db_path=db_path,
        )

    @property
    def uses_embedded_backend(self) -> bool:
        """Whether this environment runs its own embedded backend."""
        return not self.connection_string and not self.endpoint

    @property
    def description(self) -> str:
        """Where clients and workers connect, for printing."""
        if self.connection_string:
            return "the server in DURABLETASK_CONNECTION_STRING"
        if self.endpoint:
            return f"{self.endpoint} (task hub {self.taskhub or 'default'})"
        if self._backend is not None:
            where = self.db_path or "temporary storage"
            return f"an embedded backend at {self._backend.address} ({where})"
        return "an embedded backend (not started)"

    async def __aenter__(self) -> DurableEnvironment:
        if self.connection_string:
            self._dts = True
            self._settings = {"task_hub_name": self.taskhub} if self.taskhub else {}
        elif self.endpoint:
            # Plaintext endpoints (http://, grpc://, a bare host:port) are local
            # emulators or sidecars; TLS endpoints are the managed scheduler.
            secure = self.endpoint.lower().startswith(("https://", "grpcs://"))
            if secure:
                from azure.identity.aio import DefaultAzureCredential

                self._credential = DefaultAzureCredential()
            self._settings = {
                "host_address": self.endpoint,
                "taskhub": self.taskhub or "default",
                "secure_channel": secure,
                "token_credential": self._credential,
            }
        else:
            from .backend import EmbeddedBackend

            self._backend = EmbeddedBackend(path=self.db_path)
            await self._backend.start()
            self._settings = {"host_address": self._backend.address}
        logger.info("using %s", self.description)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the embedded backend (if any) and close credentials made here."""
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.aclose()
        credential, self._credential = self._credential, None
        if credential is not None:
            await credential.close()

    def _checked(self) -> dict[str, Any]:
        if self._settings is None:
            raise RuntimeError("use the environment inside `async with` first")
        return dict(self._settings)

    def client(self, **kwargs: Any) -> AsyncDurableTaskClient:
        """A client for this environment; ``kwargs`` go to its constructor."""
        settings = {**self._checked(), **kwargs}
        if self._dts:
            from .azuremanaged import DurableTaskSchedulerClient

            return DurableTaskSchedulerClient(self._connection_string(), **settings)
        return AsyncDurableTaskClient(**settings)

    def worker(self, **kwargs: Any) -> AsyncDurableTaskWorker:
        """A worker for this environment; ``kwargs`` go to its constructor."""
        settings = {**self._checked(), **kwargs}
        if self._dts:
            from .azuremanaged import DurableTaskSchedulerWorker

            return DurableTaskSchedulerWorker(self._connection_string(), **settings)
        return AsyncDurableTaskWorker(**settings)

    def _connection_string(self) -> str:
        if not self.connection_string:
            raise ConnectionStringError(f"{CONNECTION_STRING_VARIABLE} is empty")
        return self.connection_string
