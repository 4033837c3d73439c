"""Every kind of call gets the metadata interceptor (grpc/grpc#31442 worked around)."""

from __future__ import annotations

from typing import Any

import grpc.aio

from dtask_async.transport import MetadataInterceptor
from dtask_async.transport._connection import one_kind_each

KINDS = (
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
)


class OnlyUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(details, request)


def kinds_of(interceptor: Any) -> list[type]:
    return [kind for kind in KINDS if isinstance(interceptor, kind)]


def test_a_multi_kind_interceptor_becomes_one_adapter_per_kind() -> None:
    metadata = MetadataInterceptor((("taskhub", "hub"),))
    single = OnlyUnary()
    split = one_kind_each([metadata, single])
    # grpc.aio files each interceptor under the first kind it matches only
    assert [kinds_of(interceptor) for interceptor in split] == [[kind] for kind in KINDS] + [
        [grpc.aio.UnaryUnaryClientInterceptor]
    ]
    assert all(adapter.inner is metadata for adapter in split[:4])
    assert split[4] is single


async def test_adapters_delegate_to_the_interceptor() -> None:
    seen: list[str] = []

    class Both(grpc.aio.UnaryStreamClientInterceptor, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
        async def intercept_unary_stream(
            self, continuation: Any, details: Any, request: Any
        ) -> Any:
            seen.append("unary-stream")
            return await continuation(details, request)

        async def intercept_stream_stream(
            self, continuation: Any, details: Any, request_iterator: Any
        ) -> Any:
            seen.append("stream-stream")
            return await continuation(details, request_iterator)

    async def continuation(details: Any, request: Any) -> str:
        return f"{details}:{request}"

    unary_stream, stream_stream = one_kind_each([Both()])
    assert await unary_stream.intercept_unary_stream(continuation, "d", "r") == "d:r"
    assert await stream_stream.intercept_stream_stream(continuation, "d", "it") == "d:it"
    assert seen == ["unary-stream", "stream-stream"]
