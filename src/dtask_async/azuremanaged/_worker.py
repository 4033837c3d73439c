"""The worker for the Azure Durable Task Scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..transport import ChannelOptions, TokenCredentialLike
from ..worker import AsyncDurableTaskWorker, ConcurrencyOptions, ReconnectPolicy
from ._connection_string import DurableTaskSchedulerConnectionString
from ._settings import SchedulerSettingsMixin, resolve_settings

__all__ = ("DurableTaskSchedulerWorker",)


class DurableTaskSchedulerWorker(SchedulerSettingsMixin, AsyncDurableTaskWorker):
    """An :class:`~dtask_async.worker.AsyncDurableTaskWorker` for the Durable Task Scheduler.

    Takes the same connection settings as
    :class:`~dtask_async.azuremanaged.DurableTaskSchedulerClient`: a connection
    string, the keyword form, or nothing for the local emulator::

        async with DurableTaskSchedulerWorker(connection_string) as worker:
            worker.add_orchestrator(my_orchestration)
            worker.add_activity(my_activity)
            await worker.start()

    Every call, the ``GetWorkItems`` stream and each reconnection included,
    carries ``taskhub``, ``workerid`` and, with a credential, a fresh
    ``authorization: Bearer`` token. A credential the connection string selects
    is closed when the worker stops.

    Args:
        connection_string: ``Endpoint=...;Authentication=...;TaskHub=...``, or ``None``.
        task_hub_name: the task hub; overrides the connection string's ``TaskHub``.
        host_address: the endpoint (keyword form). An address without a scheme
            uses TLS, except on loopback (the local emulator).
        taskhub: the same as ``task_hub_name``.
        token_credential: an azure-identity credential, sync or ``.aio`` (keyword form).
        secure_channel: TLS for an address without a scheme.
        endpoint: the same as ``host_address``.
        resource_id: the token audience (keyword form); ``https://durabletask.io``
            by default.
        interceptors: extra ``grpc.aio`` client interceptors.
        channel_options: message size limits, keepalive and retry settings.
        concurrency: how much work runs at once.
        reconnect: how to back off when the work-item stream breaks.
        shutdown_timeout: seconds that :meth:`stop` lets in-flight work finish.
        orchestration_cache_size: live orchestrators kept between episodes.
        worker_id: sent as the ``workerid`` header; a unique default.
        metadata: extra headers for every call.
        root_certificates: PEM root certificates for TLS, when not the system's.
        work_channel: use the embedded backend's batched work channel when the
            server offers it. ``None`` (the default) tries it only without a
            credential (a local emulator); the scheduler itself does not offer it.

    Raises:
        ConnectionStringError: the connection string is invalid or names no task
            hub for a remote endpoint.
        ValueError: the keyword form names a remote endpoint without a task hub.
        TypeError: a connection string together with keyword-form arguments.
    """

    def __init__(
        self,
        connection_string: str | DurableTaskSchedulerConnectionString | None = None,
        task_hub_name: str | None = None,
        *,
        host_address: str | None = None,
        taskhub: str | None = None,
        token_credential: TokenCredentialLike | None = None,
        secure_channel: bool | None = None,
        endpoint: str | None = None,
        resource_id: str | None = None,
        interceptors: Sequence[Any] | None = None,
        channel_options: ChannelOptions | None = None,
        concurrency: ConcurrencyOptions | None = None,
        reconnect: ReconnectPolicy | None = None,
        shutdown_timeout: float = 30.0,
        orchestration_cache_size: int = 512,
        worker_id: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        root_certificates: bytes | None = None,
        work_channel: bool | None = None,
    ) -> None:
        settings = resolve_settings(
            type(self).__name__,
            connection_string,
            task_hub_name=task_hub_name,
            taskhub=taskhub,
            host_address=host_address,
            endpoint=endpoint,
            secure_channel=secure_channel,
            token_credential=token_credential,
            resource_id=resource_id,
        )
        super().__init__(
            host_address=settings.host_address,
            taskhub=settings.taskhub,
            secure_channel=settings.secure_channel,
            token_credential=settings.token_credential,
            interceptors=interceptors,
            channel_options=channel_options,
            concurrency=concurrency,
            reconnect=reconnect,
            shutdown_timeout=shutdown_timeout,
            orchestration_cache_size=orchestration_cache_size,
            worker_id=worker_id,
            metadata=metadata,
            root_certificates=root_certificates,
            token_scope=settings.token_scope,
            work_channel=(
                settings.token_credential is None if work_channel is None else work_channel
            ),
        )
        self._keep(settings)

    async def __aenter__(self) -> DurableTaskSchedulerWorker:
        await super().__aenter__()
        return self

    async def stop(self, timeout: float | None = None) -> None:
        """Stop as :meth:`AsyncDurableTaskWorker.stop` does, then close the
        credential if the worker created it. Safe to call more than once."""
        try:
            await super().stop(timeout)
        finally:
            await self._close_owned_credential()
