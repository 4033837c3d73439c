"""Where a scheduler client or worker connects, with which hub and credential."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .._errors import ConnectionStringError
from ..transport import Target, TokenCredentialLike, parse_address
from ._connection_string import DurableTaskSchedulerConnectionString, normalize_resource_id

__all__ = (
    "SchedulerSettingsMixin",
    "DEFAULT_TASK_HUB",
    "LOCAL_EMULATOR_ENDPOINT",
    "SchedulerSettings",
    "resolve_settings",
)

logger = logging.getLogger(__name__)

LOCAL_EMULATOR_ENDPOINT = "http://localhost:8080"
"""Where the Durable Task Scheduler emulator (and ``dtask-async emulator``) listens."""

DEFAULT_TASK_HUB = "default"
"""The emulator's task hub, used when a local endpoint is given without one."""

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_SCHEMES = ("http://", "https://", "grpc://", "grpcs://")


@dataclass(frozen=True)
class SchedulerSettings:
    """The resolved connection settings of one client or worker."""

    host_address: str
    """The address handed to the transport."""

    secure_channel: bool | None
    """``None`` when the address's scheme decides, else whether to use TLS."""

    taskhub: str
    """The task hub, sent as the ``taskhub`` header."""

    token_credential: TokenCredentialLike | None
    """The credential whose tokens go in ``authorization: Bearer``."""

    owns_credential: bool
    """Whether the credential was created here (and is closed with its owner)."""

    token_scope: str
    """The scope tokens are requested for."""

    connection_string: DurableTaskSchedulerConnectionString | None
    """The parsed connection string, when one was given."""


def _is_loopback(target: Target) -> bool:
    return target.host_port.rsplit(":", 1)[0].lower() in _LOOPBACK_HOSTS


def _is_local(target: Target) -> bool:
    """Whether the target is not the managed scheduler: plaintext or loopback."""
    return not target.secure or _is_loopback(target)


def _has_scheme(address: str) -> bool:
    return address.strip().lower().startswith(_SCHEMES)


def _pick(owner: str, first: tuple[str, str | None], second: tuple[str, str | None]) -> str | None:
    """The value of two spellings of one argument, refusing two different values."""
    (first_name, first_value), (second_name, second_value) = first, second
    if first_value and second_value and first_value != second_value:
        raise TypeError(
            f"{owner}() got {first_name}={first_value!r} and {second_name}={second_value!r}; "
            "give one of them"
        )
    return first_value or second_value or None


def resolve_settings(
    owner: str,
    connection_string: str | DurableTaskSchedulerConnectionString | None,
    *,
    task_hub_name: str | None,
    taskhub: str | None,
    host_address: str | None,
    endpoint: str | None,
    secure_channel: bool | None,
    token_credential: TokenCredentialLike | None,
    resource_id: str | None,
) -> SchedulerSettings:
    """Resolve a scheduler client's or worker's constructor arguments.

    Args:
        owner: the class name, for error messages.
        connection_string: a connection string (text or parsed); ``None`` for
            the keyword form, or for the local emulator when no address is given.
        task_hub_name: the task hub; overrides the connection string's.
        taskhub: the same as ``task_hub_name`` (the keyword form's spelling).
        host_address: the endpoint in the keyword form.
        endpoint: the same as ``host_address``.
        secure_channel: TLS for an address without a scheme.
        token_credential: the credential in the keyword form.
        resource_id: the token audience in the keyword form.

    Raises:
        ConnectionStringError: the connection string is invalid, or neither it
            nor ``task_hub_name`` names a hub for a remote endpoint.
        ValueError: the keyword form names a remote endpoint without a hub, or
            an invalid address or resource id.
        TypeError: arguments that contradict each other.
    """
    hub = _pick(owner, ("task_hub_name", task_hub_name), ("taskhub", taskhub))
    address = _pick(owner, ("host_address", host_address), ("endpoint", endpoint))
    if connection_string is not None:
        conflicting = [
            name
            for name, value in (
                ("host_address", host_address),
                ("endpoint", endpoint),
                ("secure_channel", secure_channel),
                ("token_credential", token_credential),
                ("resource_id", resource_id),
            )
            if value is not None
        ]
        if conflicting:
            raise TypeError(
                f"{owner}() got a connection string and {', '.join(conflicting)}=; the "
                "connection string already sets the endpoint, TLS and credential"
            )
        return _from_connection_string(owner, connection_string, hub)
    return _from_keywords(
        owner,
        address=address,
        hub=hub,
        secure_channel=secure_channel,
        token_credential=token_credential,
        resource_id=resource_id,
    )


def _from_connection_string(
    owner: str, connection_string: str | DurableTaskSchedulerConnectionString, hub: str | None
) -> SchedulerSettings:
    if isinstance(connection_string, DurableTaskSchedulerConnectionString):
        parsed = connection_string
    elif isinstance(connection_string, str):
        parsed = DurableTaskSchedulerConnectionString.parse(connection_string)
    else:
        raise TypeError(
            f"{owner}() takes a connection string (str), got {type(connection_string).__name__}"
        )
    target = parse_address(parsed.endpoint)
    taskhub = hub or parsed.task_hub
    if not taskhub:
        if not _is_local(target):
            raise ConnectionStringError(
                f"the connection string has no TaskHub and no task_hub_name= was given; the "
                f"Durable Task Scheduler at {parsed.endpoint} needs a task hub"
            )
        taskhub = DEFAULT_TASK_HUB
    credential = parsed.create_credential()
    if credential is not None and not target.secure:
        logger.warning(
            "%s: sending %s tokens to %s over a plaintext channel",
            owner,
            parsed.authentication.value,
            parsed.endpoint,
        )
    return SchedulerSettings(
        host_address=parsed.endpoint,
        secure_channel=None,
        taskhub=taskhub,
        token_credential=credential,
        owns_credential=credential is not None,
        token_scope=parsed.token_scope,
        connection_string=parsed,
    )


def _from_keywords(
    owner: str,
    *,
    address: str | None,
    hub: str | None,
    secure_channel: bool | None,
    token_credential: Any,
    resource_id: str | None,
) -> SchedulerSettings:
    scope = normalize_resource_id(resource_id, name="resource_id") + "/.default"
    if address is None:
        address = LOCAL_EMULATOR_ENDPOINT
    secure: bool | None
    if _has_scheme(address):
        secure = None  # the scheme decides, as in the official SDK
    elif secure_channel is not None:
        secure = secure_channel
    else:
        # The scheduler is TLS only; a bare loopback address is the local emulator.
        secure = not _is_loopback(parse_address(address))
    target = parse_address(address, secure)
    if not hub:
        if not _is_local(target):
            raise ValueError(
                f"{owner}(): the Durable Task Scheduler at {address} needs a task hub; "
                "pass taskhub= (or task_hub_name=)"
            )
        hub = DEFAULT_TASK_HUB
    return SchedulerSettings(
        host_address=address,
        secure_channel=secure,
        taskhub=hub,
        token_credential=token_credential,
        owns_credential=False,
        token_scope=scope,
        connection_string=None,
    )


class SchedulerSettingsMixin:
    """What the scheduler client and worker share: their resolved settings, and
    the credential they close when they created it."""

    _settings: SchedulerSettings
    _owned_credential: Any

    def _keep(self, settings: SchedulerSettings) -> None:
        self._settings = settings
        self._owned_credential = settings.token_credential if settings.owns_credential else None

    @property
    def taskhub(self) -> str:
        """The task hub every call goes to."""
        return self._settings.taskhub

    @property
    def connection_string(self) -> DurableTaskSchedulerConnectionString | None:
        """The parsed connection string, when made from one."""
        return self._settings.connection_string

    @property
    def token_credential(self) -> TokenCredentialLike | None:
        """The credential whose tokens are sent, if any."""
        return self._settings.token_credential

    async def _close_owned_credential(self) -> None:
        from ._credentials import close_credential

        credential, self._owned_credential = self._owned_credential, None
        if credential is not None:
            await close_credential(credential)
