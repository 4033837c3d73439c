"""The client for the Azure Durable Task Scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..client import AsyncDurableTaskClient
from ..transport import ChannelOptions, TokenCredentialLike
from ._connection_string import DurableTaskSchedulerConnectionString
from ._settings import SchedulerSettingsMixin, resolve_settings

__all__ = ("DurableTaskSchedulerClient",)


class DurableTaskSchedulerClient(SchedulerSettingsMixin, AsyncDurableTaskClient):
    """An :class:`~dtask_async.client.AsyncDurableTaskClient` for the Durable Task Scheduler.

    Give it a connection string::

        client = DurableTaskSchedulerClient(
            "Endpoint=https://NAME.REGION.durabletask.io;Authentication=DefaultAzure;TaskHub=HUB"
        )

    or the keyword form (``host_address=``, ``taskhub=``, ``token_credential=``,
    ``secure_channel=``), or nothing at all for the local emulator at
    ``http://localhost:8080`` with the task hub ``default``. A credential the
    connection string selects is created here, used for every call (tokens for
    ``<ResourceId>/.default``, fetched once and refreshed before they expire)
    and closed with the client; a ``token_credential=`` stays the caller's.

    Args:
        connection_string: ``Endpoint=...;Authentication=...;TaskHub=...`` (see
            :class:`DurableTaskSchedulerConnectionString`), or ``None``.
        task_hub_name: the task hub; overrides the connection string's ``TaskHub``.
        host_address: the endpoint (keyword form). An address without a scheme
            uses TLS, except on loopback (the local emulator).
        taskhub: the same as ``task_hub_name``.
        token_credential: an azure-identity credential, sync or ``.aio`` (keyword form).
        secure_channel: TLS for an address without a scheme (an ``http://`` or
            ``https://`` address decides by itself).
        endpoint: the same as ``host_address``.
        resource_id: the token audience (keyword form); ``https://durabletask.io``
            by default (``https://durabletask.azure.us`` when ``REGION_NAME`` is
            an Azure Government region).
        interceptors: extra ``grpc.aio`` client interceptors.
        channel_options: message size limits, keepalive and retry settings.
        metadata: extra headers for every call.
        default_version: the version given to orchestrations started without one.
        root_certificates: PEM root certificates for TLS, when not the system's.

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
        metadata: Sequence[tuple[str, str]] = (),
        default_version: str | None = None,
        root_certificates: bytes | None = None,
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
            metadata=metadata,
            default_version=default_version,
            root_certificates=root_certificates,
            token_scope=settings.token_scope,
        )
        self._keep(settings)

    async def __aenter__(self) -> DurableTaskSchedulerClient:
        await super().__aenter__()
        return self

    async def aclose(self) -> None:
        """Close the channel, and the credential if the client created it.

        Safe to call more than once.
        """
        try:
            await super().aclose()
        finally:
            await self._close_owned_credential()

    close = aclose
