"""One lazily opened channel to the server, and calls over it."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from .._errors import AuthenticationError, PayloadTooLargeError
from .._proto import pb_grpc
from ._address import Target, parse_address
from ._auth import DEFAULT_SCOPE, AccessTokenProvider, TokenCredentialLike, TokenUnavailableError
from ._errors import translate_rpc_error
from ._metadata import base_metadata
from ._options import ChannelOptions

__all__ = ("Connection", "Stream")

logger = logging.getLogger(__name__)


class Connection:
    """A channel to a ``TaskHubSidecarService`` server, opened on first use.

    Constructing one does no I/O, so it can happen outside an event loop; the
    channel is created by the first call, on the running loop, and re-created
    if a later call runs on a different loop.

    Args:
        host_address: the server (see :func:`parse_address`).
        taskhub: sent as the ``taskhub`` header when given.
        secure_channel: ``True`` forces TLS.
        token_credential: an azure-identity credential; its tokens go in
            ``authorization: Bearer`` on every call.
        interceptors: extra ``grpc.aio`` client interceptors, run after ours.
        options: channel settings.
        worker_id: sent as the ``workerid`` header (workers only).
        metadata: extra headers for every call.
        root_certificates: PEM roots for TLS, when not the system's.
        token_scope: the scope tokens are requested for.
    """

    def __init__(
        self,
        *,
        host_address: str | None = None,
        taskhub: str | None = None,
        secure_channel: bool | None = None,
        token_credential: TokenCredentialLike | None = None,
        interceptors: Sequence[Any] | None = None,
        options: ChannelOptions | None = None,
        worker_id: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        root_certificates: bytes | None = None,
        token_scope: str | None = None,
    ) -> None:
        self.target: Target = parse_address(host_address, secure_channel)
        self.taskhub = taskhub
        self.options = options or ChannelOptions()
        self.tokens = (
            AccessTokenProvider(token_credential, scope=token_scope or DEFAULT_SCOPE)
            if token_credential is not None
            else None
        )
        self.metadata = base_metadata(taskhub=taskhub, worker_id=worker_id, extra=metadata)
        self._user_interceptors = list(interceptors or ())
        self._root_certificates = root_certificates
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.TaskHubSidecarServiceStub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def _open(self) -> pb_grpc.TaskHubSidecarServiceStub:
        if self._closed:
            raise RuntimeError("this client or worker is closed; create a new one")
        loop = asyncio.get_running_loop()
        if self._stub is not None and self._loop is loop:
            return self._stub
        # Our own headers go on each call directly (see _call_metadata): a
        # client interceptor costs tens of microseconds per call in grpc.aio.
        interceptors = one_kind_each(self._user_interceptors) or None
        grpc_options = self.options.grpc_options()
        if self.target.secure:
            credentials = grpc.ssl_channel_credentials(root_certificates=self._root_certificates)
            channel = grpc.aio.secure_channel(
                self.target.host_port, credentials, options=grpc_options, interceptors=interceptors
            )
        else:
            channel = grpc.aio.insecure_channel(
                self.target.host_port, options=grpc_options, interceptors=interceptors
            )
        # A channel from another loop cannot be used (or awaited) here: drop it.
        self._channel, self._loop = channel, loop
        self._stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        logger.debug("opened a channel to %s", self.target)
        return self._stub

    @property
    def stub(self) -> pb_grpc.TaskHubSidecarServiceStub:
        """The service stub, opening the channel if needed (call from the loop)."""
        return self._open()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the channel to connect.

        Returns:
            Whether the channel is connected.
        """
        self._open()
        assert self._channel is not None
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def check_size(self, method: str, request: Any) -> None:
        """Refuse a request larger than the send limit before it is sent.

        Raises:
            PayloadTooLargeError: naming the size and the limit.
        """
        limit = self.options.max_send_message_bytes
        size = request.ByteSize()
        if size > limit:
            raise PayloadTooLargeError(
                f"{method}: the request is {size:,} bytes, larger than the {limit:,}-byte "
                "message limit (ChannelOptions.max_send_message_bytes)",
                size=size,
                limit=limit,
            )

    async def call_metadata(self, method: str) -> tuple[tuple[str, str], ...]:
        """The headers for one call: ours, plus a bearer token when configured.

        Raises:
            AuthenticationError: no token could be had (nothing was sent).
        """
        if self.tokens is None:
            return self.metadata
        try:
            token = await self.tokens.get()
        except TokenUnavailableError as exc:
            # Nothing was sent: the credential failed, not the server.
            raise AuthenticationError(
                f"{method}: no call was made to {self.target.original}: {exc.message}",
                code="UNAUTHENTICATED",
                details=exc.message,
                method=method,
            ) from exc
        return (*self.metadata, ("authorization", f"Bearer {token}"))

    async def call(self, method: str, request: Any, *, timeout: float | None = None) -> Any:
        """Make a unary call, translating gRPC errors to dtask-async errors."""
        self.check_size(method, request)
        stub = self._open()
        metadata = self.metadata if self.tokens is None else await self.call_metadata(method)
        try:
            return await getattr(stub, method)(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            if self.tokens is not None and exc.code() is grpc.StatusCode.UNAUTHENTICATED:
                self.tokens.invalidate()
            raise translate_rpc_error(exc, method=method, target=self.target) from exc

    def stream_stream(self, path: str, response_deserializer: Any) -> Any:
        """A ``grpc.aio`` multi-callable for the bidirectional method ``path``; its
        requests are sent as the bytes they are (already serialized)."""
        self._open()
        assert self._channel is not None
        return self._channel.stream_stream(path, response_deserializer=response_deserializer)

    def stream(self, method: str, request: Any, *, timeout: float | None = None) -> Stream:
        """A server-streaming call, started when first iterated (``async for``).

        Errors raised while iterating are gRPC errors: pass them to
        :func:`~dtask_async.transport.translate_rpc_error`. A stream the server
        refuses with ``UNAUTHENTICATED`` drops the cached token, so the next
        attempt (a worker's reconnect) asks the credential for a new one.
        """
        self.check_size(method, request)
        return Stream(self, method, request, timeout)

    async def aclose(self) -> None:
        """Close the channel. Safe to call twice."""
        self._closed = True
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            try:
                await channel.close()
            except RuntimeError:  # the channel's loop is gone
                pass


class Stream:
    """A server-streaming call that fetches its headers (and token) when started.

    Iterate it with ``async for``; :meth:`cancel` works before and after the
    call has started.
    """

    def __init__(self, connection: Connection, method: str, request: Any, timeout: float | None):
        self._connection = connection
        self._method = method
        self._request = request
        self._timeout = timeout
        self._call: Any = None
        self._iterator: Any = None
        self._cancelled = False

    async def start(self) -> None:
        """Send the request (done by the first iteration when not called)."""
        if self._call is not None:
            return
        if self._cancelled:
            raise asyncio.CancelledError
        metadata = await self._connection.call_metadata(self._method)
        stub = self._connection._open()
        self._call = getattr(stub, self._method)(
            self._request, timeout=self._timeout, metadata=metadata
        )
        if self.cancelled:  # cancelled while the token was being fetched
            self._call.cancel()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def cancel(self) -> bool:
        """Cancel the call; returns whether anything was cancelled."""
        self._cancelled = True
        return bool(self._call.cancel()) if self._call is not None else True

    def _refused(self, exc: grpc.RpcError) -> None:
        tokens = self._connection.tokens
        code = getattr(exc, "code", None)
        if tokens is not None and callable(code) and code() is grpc.StatusCode.UNAUTHENTICATED:
            tokens.invalidate()

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Any:
        if self._iterator is None:
            await self.start()
            self._iterator = self._call.__aiter__()
        try:
            return await self._iterator.__anext__()
        except grpc.RpcError as exc:
            self._refused(exc)
            raise


# grpc.aio files an interceptor under the first kind it implements only (an
# if/elif chain in grpc.aio.Channel, grpc/grpc#31442), so the metadata
# interceptor would never see streaming calls: no task hub and no token on
# GetWorkItems. Each kind gets its own single-kind adapter instead.


async def _resolve(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


class _UnaryUnaryAdapter(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await _resolve(self.inner.intercept_unary_unary(continuation, details, request))


class _UnaryStreamAdapter(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await _resolve(self.inner.intercept_unary_stream(continuation, details, request))


class _StreamUnaryAdapter(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await _resolve(
            self.inner.intercept_stream_unary(continuation, details, request_iterator)
        )


class _StreamStreamAdapter(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await _resolve(
            self.inner.intercept_stream_stream(continuation, details, request_iterator)
        )


_ADAPTERS: tuple[tuple[type, type], ...] = (
    (grpc.aio.UnaryUnaryClientInterceptor, _UnaryUnaryAdapter),
    (grpc.aio.UnaryStreamClientInterceptor, _UnaryStreamAdapter),
    (grpc.aio.StreamUnaryClientInterceptor, _StreamUnaryAdapter),
    (grpc.aio.StreamStreamClientInterceptor, _StreamStreamAdapter),
)


def one_kind_each(interceptors: Sequence[Any]) -> list[Any]:
    """The interceptors, each implementing a single kind of call.

    One that implements several kinds is replaced by an adapter per kind, in
    the same position, so that ``grpc.aio`` runs it for every kind of call.
    """
    result: list[Any] = []
    for interceptor in interceptors:
        adapters = [adapter for kind, adapter in _ADAPTERS if isinstance(interceptor, kind)]
        if len(adapters) > 1:
            result.extend(adapter(interceptor) for adapter in adapters)
        else:
            result.append(interceptor)
    return result
