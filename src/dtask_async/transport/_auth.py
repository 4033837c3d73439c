"""Bearer tokens from azure-identity credentials, fetched lazily and shared."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any, Protocol

import anyio.to_thread
import grpc
import grpc.aio

__all__ = ("DEFAULT_SCOPE", "AccessTokenProvider", "TokenCredentialLike", "TokenUnavailableError")

logger = logging.getLogger(__name__)

DEFAULT_SCOPE = "https://durabletask.io/.default"


class TokenCredentialLike(Protocol):
    """Anything with azure-identity's ``get_token(*scopes)`` (sync or async)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class TokenUnavailableError(grpc.aio.AioRpcError):
    """Raised when the credential cannot produce a token, so the call is never sent.

    It is a failed call with status ``UNAUTHENTICATED``: whatever handles a
    refused call (translation to ``AuthenticationError``, the worker's
    reconnect loop) handles a credential that fails too.
    """

    def __init__(self, message: str) -> None:
        super().__init__(
            grpc.StatusCode.UNAUTHENTICATED, grpc.aio.Metadata(), grpc.aio.Metadata(), message
        )
        self.message = message

    def __str__(self) -> str:
        return self.message


class AccessTokenProvider:
    """Hands out a bearer token for one scope, refreshing it before it expires.

    Concurrent callers share one in-flight request (single flight): a hundred
    calls made together cause one ``get_token``, and when it fails they all
    get that failure (as :class:`TokenUnavailableError`) rather than asking the
    credential again one after another. Works with the synchronous
    credentials of ``azure.identity`` (run in a worker thread) and the
    asynchronous ones of ``azure.identity.aio``.

    Args:
        credential: the credential.
        scope: the token scope; the Durable Task Scheduler's by default.
        refresh_margin: seconds before expiry at which a token is renewed.
    """

    def __init__(
        self,
        credential: TokenCredentialLike,
        *,
        scope: str = DEFAULT_SCOPE,
        refresh_margin: float = 300.0,
    ) -> None:
        self.credential = credential
        self.scope = scope
        self.refresh_margin = refresh_margin
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock: asyncio.Lock | None = None
        self._finished = 0
        self._failure: tuple[int, str, BaseException] | None = None
        self.fetch_count = 0
        """How many tokens were requested from the credential (for diagnostics)."""

    def _fresh(self) -> str | None:
        if self._token is not None and time.time() < self._expires_on - self.refresh_margin:
            return self._token
        return None

    async def get(self) -> str:
        """The current token, fetching a new one when it is missing or about to expire.

        Raises:
            TokenUnavailableError: the credential failed (its error is the ``__cause__``).
        """
        token = self._fresh()
        if token is not None:
            return token
        if self._lock is None:
            self._lock = asyncio.Lock()
        finished_on_arrival = self._finished
        async with self._lock:
            token = self._fresh()
            if token is not None:
                return token
            failure = self._failure
            if failure is not None and failure[0] > finished_on_arrival:
                # A request that was under way when this caller arrived failed: share it.
                raise TokenUnavailableError(failure[1]) from failure[2]
            try:
                access = await self._fetch()
            except Exception as exc:
                self._finished += 1
                message = (
                    f"could not get an access token for {self.scope} from "
                    f"{type(self.credential).__name__}: {type(exc).__name__}: {exc}"
                )
                self._failure = (self._finished, message, exc)
                logger.warning("%s", message)
                raise TokenUnavailableError(message) from exc
            self._finished += 1
            self._failure = None
            self.fetch_count += 1
            self._token = str(access.token)
            self._expires_on = float(access.expires_on)
            logger.debug("fetched a token for %s, valid until %s", self.scope, self._expires_on)
            return self._token

    async def _fetch(self) -> Any:
        get_token = self.credential.get_token
        if inspect.iscoroutinefunction(get_token):
            return await get_token(self.scope)
        result = await anyio.to_thread.run_sync(get_token, self.scope)
        if inspect.isawaitable(result):
            return await result
        return result

    def invalidate(self) -> None:
        """Forget the cached token (after the server refused it)."""
        self._token = None
        self._expires_on = 0.0
