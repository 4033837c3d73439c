"""The interceptor that puts the protocol's metadata on every call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from .._version import __version__
from ._auth import AccessTokenProvider

__all__ = ("USER_AGENT", "MetadataInterceptor", "base_metadata")

USER_AGENT = f"dtask-async/{__version__}"


def base_metadata(
    *, taskhub: str | None, worker_id: str | None = None, extra: Sequence[tuple[str, str]] = ()
) -> tuple[tuple[str, str], ...]:
    """The static metadata for a connection: user agent, task hub, worker id."""
    items: list[tuple[str, str]] = [("x-user-agent", USER_AGENT)]
    if taskhub:
        items.append(("taskhub", taskhub))
    if worker_id:
        items.append(("workerid", worker_id))
    items.extend((k.lower(), v) for k, v in extra)
    return tuple(items)


class MetadataInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds fixed metadata, and a fresh ``authorization: Bearer`` token when a
    credential is configured, to every call, streaming calls included."""

    def __init__(
        self, metadata: Sequence[tuple[str, str]], tokens: AccessTokenProvider | None = None
    ) -> None:
        self._metadata = tuple(metadata)
        self._tokens = tokens

    async def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*self._metadata)
        if details.metadata:
            for key, value in details.metadata:
                metadata.add(key, value)
        if self._tokens is not None:
            metadata["authorization"] = f"Bearer {await self._tokens.get()}"
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(await self._details(details), request)

    async def intercept_stream_unary(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(await self._details(details), request_iterator)

    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(await self._details(details), request_iterator)
