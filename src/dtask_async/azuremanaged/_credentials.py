"""The azure-identity credential for each ``Authentication`` value, and closing it."""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
from typing import TYPE_CHECKING, Any

from .._errors import ConnectionStringError
from ._connection_string import AuthenticationType

if TYPE_CHECKING:
    from ._connection_string import DurableTaskSchedulerConnectionString

__all__ = ("close_credential", "create_credential")

logger = logging.getLogger(__name__)

# WorkloadIdentity settings and the environment variables azure-identity falls back to.
_WORKLOAD_SETTINGS = (
    ("TenantId", "tenant_id", "AZURE_TENANT_ID"),
    ("ClientID", "client_id", "AZURE_CLIENT_ID"),
    ("TokenFilePath", "token_file_path", "AZURE_FEDERATED_TOKEN_FILE"),
)


def _http_options() -> dict[str, Any]:
    """Keyword arguments that give an ``azure.identity.aio`` credential an HTTP transport.

    azure-core's default asynchronous transport needs ``aiohttp``; without it,
    requests run through ``requests`` in threads (azure-core's
    ``AsyncioRequestsTransport``), which azure-core always has.
    """
    if importlib.util.find_spec("aiohttp") is not None:
        return {}
    from azure.core.pipeline.transport import AsyncioRequestsTransport

    return {"transport": AsyncioRequestsTransport()}


def _workload_options(cs: DurableTaskSchedulerConnectionString) -> dict[str, Any]:
    options: dict[str, Any] = {}
    missing: list[str] = []
    for key, attribute, variable in _WORKLOAD_SETTINGS:
        value = getattr(cs, attribute)
        if value:
            options[attribute] = value
        elif not os.environ.get(variable):
            missing.append(f"{key} (or {variable})")
    if missing:
        raise ConnectionStringError(
            "Authentication=WorkloadIdentity needs a tenant, a client id and a token file, "
            "from the connection string or the environment; missing: " + ", ".join(missing)
        )
    if cs.additionally_allowed_tenants:
        options["additionally_allowed_tenants"] = list(cs.additionally_allowed_tenants)
    return options


def create_credential(cs: DurableTaskSchedulerConnectionString) -> Any:
    """The credential that ``cs.authentication`` selects, or ``None`` for ``None``.

    The asynchronous ``azure.identity.aio`` credentials are used, except for
    InteractiveBrowser, which only exists in a synchronous form (its
    ``get_token`` then runs in a worker thread). Nothing here does I/O.

    Raises:
        ConnectionStringError: WorkloadIdentity lacks a setting that neither the
            string nor the environment supplies.
    """
    kind = cs.authentication
    if kind is AuthenticationType.NONE:
        return None
    authority: dict[str, Any] = {"authority": cs.authority_host} if cs.authority_host else {}

    from azure.identity import aio

    credential: Any
    if kind is AuthenticationType.DEFAULT_AZURE:
        credential = aio.DefaultAzureCredential(**authority, **_http_options())
    elif kind is AuthenticationType.MANAGED_IDENTITY:
        # Managed identity talks to its host's endpoint: an authority does not apply.
        credential = aio.ManagedIdentityCredential(client_id=cs.client_id, **_http_options())
    elif kind is AuthenticationType.WORKLOAD_IDENTITY:
        credential = aio.WorkloadIdentityCredential(
            **_workload_options(cs), **authority, **_http_options()
        )
    elif kind is AuthenticationType.ENVIRONMENT:
        credential = aio.EnvironmentCredential(**authority, **_http_options())
    elif kind is AuthenticationType.AZURE_CLI:
        credential = aio.AzureCliCredential()
    elif kind is AuthenticationType.AZURE_POWERSHELL:
        credential = aio.AzurePowerShellCredential()
    elif kind is AuthenticationType.VISUAL_STUDIO_CODE:
        credential = aio.VisualStudioCodeCredential()
    else:
        from azure.identity import InteractiveBrowserCredential

        credential = InteractiveBrowserCredential(**authority)
    logger.debug("Authentication=%s: using %s", kind.value, type(credential).__name__)
    return credential


async def close_credential(credential: Any) -> None:
    """Close a credential, whether its ``close`` is a coroutine or not.

    Failures are logged, not raised: closing happens during shutdown.
    """
    close = getattr(credential, "close", None)
    if not callable(close):
        return
    try:
        result = close()
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.warning("closing %s failed", type(credential).__name__, exc_info=True)
