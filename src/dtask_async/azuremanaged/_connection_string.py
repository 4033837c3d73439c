"""Durable Task Scheduler connection strings: ``Key=Value`` pairs separated by ``;``."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConnectionStringError
from ..transport import parse_address

__all__ = (
    "DEFAULT_RESOURCE_ID",
    "GOVERNMENT_RESOURCE_ID",
    "AuthenticationType",
    "DurableTaskSchedulerConnectionString",
    "default_resource_id",
    "normalize_resource_id",
)

DEFAULT_RESOURCE_ID = "https://durabletask.io"
"""The scheduler's token audience in the public cloud."""

GOVERNMENT_RESOURCE_ID = "https://durabletask.azure.us"
"""The scheduler's token audience in Azure Government."""

EXAMPLE = "Endpoint=https://NAME.REGION.durabletask.io;Authentication=DefaultAzure;TaskHub=HUB"

_KEYS = (
    "Endpoint",
    "TaskHub",
    "Authentication",
    "ClientID",
    "TenantId",
    "TokenFilePath",
    "AdditionallyAllowedTenants",
    "ResourceId",
    "AuthorityHost",
)
_KEY_BY_LOWER = {key.lower(): key for key in _KEYS}
_SUFFIX = "/.default"


class AuthenticationType(str, enum.Enum):
    """The ``Authentication`` values: which azure-identity credential gets the tokens."""

    DEFAULT_AZURE = "DefaultAzure"
    MANAGED_IDENTITY = "ManagedIdentity"
    WORKLOAD_IDENTITY = "WorkloadIdentity"
    ENVIRONMENT = "Environment"
    AZURE_CLI = "AzureCli"
    AZURE_POWERSHELL = "AzurePowerShell"
    VISUAL_STUDIO_CODE = "VisualStudioCode"
    INTERACTIVE_BROWSER = "InteractiveBrowser"
    NONE = "None"
    """No token is sent (the local emulator)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def from_text(cls, text: str) -> AuthenticationType:
        """The member named by ``text``, ignoring case and spaces.

        Raises:
            ConnectionStringError: ``text`` names no member; the message lists them.
        """
        wanted = "".join(text.split()).lower()
        for member in cls:
            if member.value.lower() == wanted:
                return member
        raise ConnectionStringError(
            f"unsupported Authentication {text.strip()!r} in the connection string; "
            f"valid values: {_valid_authentications()}"
        )


def _valid_authentications() -> str:
    return ", ".join(member.value for member in AuthenticationType)


def default_resource_id() -> str:
    """The token audience used when none is configured.

    Azure Government hosts (``REGION_NAME`` starting with ``usgov`` or ``usdod``)
    get :data:`GOVERNMENT_RESOURCE_ID`, everything else :data:`DEFAULT_RESOURCE_ID`.
    """
    region = os.environ.get("REGION_NAME", "").strip().lower()
    if region.startswith(("usgov", "usdod")):
        return GOVERNMENT_RESOURCE_ID
    return DEFAULT_RESOURCE_ID


def normalize_resource_id(value: str | None, *, name: str = "ResourceId") -> str:
    """The token audience for ``value``, without a ``/.default`` suffix.

    Surrounding whitespace, trailing slashes and one ``/.default`` suffix (any
    case) are removed; ``None`` or ``""`` means :func:`default_resource_id`.
    Token requests use the result plus ``/.default``.

    Args:
        value: the configured audience.
        name: how the setting is called in error messages.

    Raises:
        ConnectionStringError: a non-empty value is empty once normalized
            (``"  "``, ``"/"``, ``"/.default"``).
    """
    if value is None or value == "":
        return default_resource_id()
    text = value.strip().rstrip("/")
    if text.lower().endswith(_SUFFIX):
        text = text[: -len(_SUFFIX)].rstrip("/")
    if not text:
        raise ConnectionStringError(
            f"{name} {value!r} is empty once whitespace, trailing '/' and '/.default' are "
            f"removed; give the scheduler's audience, such as {DEFAULT_RESOURCE_ID!r}"
        )
    return text


def _normalize_endpoint(value: str) -> str:
    text = value.strip()
    if not text:
        raise ConnectionStringError(
            f"the connection string has no Endpoint; expected e.g. {EXAMPLE!r}"
        )
    if "://" not in text:
        text = f"https://{text}"  # the scheduler is always TLS
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # such as an unclosed "[" of an IPv6 address
        raise ConnectionStringError(f"invalid Endpoint: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConnectionStringError(
            f"Endpoint has the scheme {parts.scheme!r}; use https:// for the scheduler or "
            "http:// for a local emulator"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ConnectionStringError(
            "Endpoint must be only a scheme, a host and an optional port, such as "
            "'https://NAME.REGION.durabletask.io' (no user info, path or query)"
        )
    endpoint = f"{scheme}://{parts.netloc}"
    try:
        parse_address(endpoint)
    except ValueError as exc:
        raise ConnectionStringError(f"invalid Endpoint: {exc}") from exc
    return endpoint


def _check_authority_host(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme.lower() != "https" or not parts.netloc:
        raise ConnectionStringError(
            f"AuthorityHost must be an absolute https:// URL, such as "
            f"'https://login.microsoftonline.us/'; got {value!r}"
        )


def _split_tenants(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _optional(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


@dataclass(frozen=True, kw_only=True, repr=False)
class DurableTaskSchedulerConnectionString:
    """A parsed Durable Task Scheduler connection string.

    ``Endpoint=https://NAME.REGION.durabletask.io;Authentication=DefaultAzure;TaskHub=HUB``
    is the usual form; ``Endpoint=http://localhost:8080;Authentication=None``
    reaches the local emulator. Build one with :meth:`parse`; constructing it
    directly validates and normalizes the same way.

    Keys and ``Authentication`` values are case-insensitive. ``Endpoint`` and
    ``Authentication`` are required; ``TaskHub`` may instead be given to the
    client or worker (``task_hub_name=``). The representation masks the identity
    details (client id, tenant, token file), and no key that holds a secret is
    accepted.
    """

    endpoint: str
    """The scheduler's URL, ``scheme://host[:port]``; ``https://`` is added when the
    string has no scheme, and ``http://`` means a plaintext channel (emulator)."""

    authentication: AuthenticationType
    """Which credential gets tokens (``Authentication``); ``NONE`` sends none."""

    task_hub: str | None = None
    """The task hub (``TaskHub``), sent as the ``taskhub`` header."""

    client_id: str | None = None
    """The managed identity's or workload identity's client id (``ClientID``)."""

    tenant_id: str | None = None
    """The workload identity's tenant (``TenantId``)."""

    token_file_path: str | None = None
    """The workload identity's federated token file (``TokenFilePath``)."""

    additionally_allowed_tenants: tuple[str, ...] = ()
    """More tenants the workload identity may get tokens for
    (``AdditionallyAllowedTenants``, comma-separated)."""

    resource_id: str = ""
    """The token audience (``ResourceId``) without ``/.default``; empty selects
    :func:`default_resource_id` when the object is built."""

    authority_host: str | None = None
    """The Microsoft Entra authority (``AuthorityHost``) for the credentials that
    take one: DefaultAzure, Environment, WorkloadIdentity and InteractiveBrowser."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "endpoint", _normalize_endpoint(self.endpoint))
        authentication: object = self.authentication  # a plain str is welcome too
        if not isinstance(authentication, AuthenticationType):
            set_(self, "authentication", AuthenticationType.from_text(str(authentication)))
        set_(self, "task_hub", _optional(self.task_hub))
        set_(self, "client_id", _optional(self.client_id))
        set_(self, "tenant_id", _optional(self.tenant_id))
        set_(self, "token_file_path", _optional(self.token_file_path))
        set_(self, "additionally_allowed_tenants", tuple(self.additionally_allowed_tenants))
        set_(self, "resource_id", normalize_resource_id(self.resource_id))
        authority = _optional(self.authority_host)
        if authority is not None:
            _check_authority_host(authority)
        set_(self, "authority_host", authority)

    @classmethod
    def parse(cls, text: str) -> DurableTaskSchedulerConnectionString:
        """Parse ``Key=Value;Key=Value``.

        Raises:
            ConnectionStringError: the string is empty or malformed (a segment
                without ``=``, an empty key, a key given twice), has an unknown
                key, lacks ``Endpoint`` or ``Authentication``, or has an invalid
                value. The message names the key and, for a value out of a
                fixed set, lists the valid ones. Values are not echoed except
                where they cannot be secrets.
        """
        if not isinstance(text, str):
            raise TypeError(f"a connection string must be a str, got {type(text).__name__}")
        if not text.replace(";", "").strip():
            raise ConnectionStringError(
                f"the connection string is empty; expected e.g. {EXAMPLE!r}"
            )
        if "=" not in text:
            raise ConnectionStringError(
                f"this is not a connection string (it has no Key=Value pairs); expected e.g. "
                f"{EXAMPLE!r}, or pass a server address as host_address="
            )
        values: dict[str, str] = {}
        for index, segment in enumerate(text.split(";"), start=1):
            if not segment.strip():
                continue  # ";;" and a trailing ";" are harmless
            raw_key, has_equals, value = segment.partition("=")
            key = raw_key.strip()
            if not has_equals:
                raise ConnectionStringError(
                    f"segment {index} of the connection string has no '='; expected Key=Value "
                    "pairs separated by ';'"
                )
            if not key:
                raise ConnectionStringError(
                    f"segment {index} of the connection string has an empty key "
                    "(it starts with '=')"
                )
            canonical = _KEY_BY_LOWER.get(key.lower())
            if canonical is None:
                raise ConnectionStringError(
                    f"unknown connection string key {key[:64]!r}; valid keys: {', '.join(_KEYS)}"
                )
            if canonical in values:
                raise ConnectionStringError(
                    f"the connection string sets {canonical} more than once"
                )
            # ResourceId keeps its whitespace so that a blank one is an error, not the default.
            values[canonical] = value if canonical == "ResourceId" else value.strip()
        endpoint = values.get("Endpoint", "")
        if not endpoint:
            raise ConnectionStringError(
                f"the connection string has no Endpoint; expected e.g. {EXAMPLE!r}"
            )
        authentication = values.get("Authentication", "")
        if not authentication:
            raise ConnectionStringError(
                "the connection string has no Authentication; valid values: "
                f"{_valid_authentications()} (None sends no token, for a local emulator)"
            )
        return cls(
            endpoint=endpoint,
            authentication=AuthenticationType.from_text(authentication),
            task_hub=values.get("TaskHub"),
            client_id=values.get("ClientID"),
            tenant_id=values.get("TenantId"),
            token_file_path=values.get("TokenFilePath"),
            additionally_allowed_tenants=_split_tenants(
                values.get("AdditionallyAllowedTenants", "")
            ),
            resource_id=values.get("ResourceId", ""),
            authority_host=values.get("AuthorityHost"),
        )

    @property
    def secure(self) -> bool:
        """Whether the channel uses TLS (an ``https://`` endpoint)."""
        return self.endpoint.startswith("https://")

    @property
    def token_scope(self) -> str:
        """The scope tokens are requested for: ``<resource_id>/.default``."""
        return f"{self.resource_id}{_SUFFIX}"

    def create_credential(self) -> Any:
        """A new azure-identity credential for :attr:`authentication`, or ``None``.

        The credential is asynchronous (``azure.identity.aio``) except for
        InteractiveBrowser, which azure-identity only has in a synchronous form.
        Creating one does no I/O; the caller owns it and closes it.

        Raises:
            ConnectionStringError: WorkloadIdentity lacks a setting that neither
                the string nor the environment supplies.
        """
        from ._credentials import create_credential

        return create_credential(self)

    def __repr__(self) -> str:
        masked = [
            name
            for name in (
                "client_id",
                "tenant_id",
                "token_file_path",
                "additionally_allowed_tenants",
            )
            if getattr(self, name)
        ]
        parts = [
            f"endpoint={self.endpoint!r}",
            f"authentication={self.authentication.value!r}",
            f"task_hub={self.task_hub!r}",
            f"resource_id={self.resource_id!r}",
        ]
        if self.authority_host is not None:
            parts.append(f"authority_host={self.authority_host!r}")
        parts.extend(f"{name}=<set>" for name in masked)
        return f"{type(self).__name__}({', '.join(parts)})"
