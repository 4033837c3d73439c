"""The worker's side of the embedded backend's batched work channel.

``WorkChannel.Connect`` (``proto/work_channel.proto``) carries what ``GetWorkItems``
and the ``Complete*``/``Abandon*`` calls carry, on one bidirectional call, in batches:
every completion waiting when the channel is free to send goes in one message. A
busy worker then pays gRPC's per-call cost once per batch, not once per work item.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from typing import Any

import grpc

from .._proto import pb, wc
from .._protoutil import varint as _varint
from ._connection import Connection

__all__ = ("ChannelClosed", "WorkChannel")

logger = logging.getLogger(__name__)

METHOD = "/dtask_async.channel.v1.WorkChannel/Connect"

# Room left in a batch for gRPC's framing and the envelope of each completion.
_MARGIN = 1024

# Field tags (field number << 3 | 2, length-delimited) of the messages the worker sends.
_UP_COMPLETION = 0x1A  # ChannelUp.completions, field 3
_UP_DRAIN = b"\x20\x01"  # ChannelUp.drain (field 4, varint) = true
_COMPLETION_ID = 0x08  # Completion.id, field 1, varint
_RESULT_TAGS = {
    "CompleteOrchestratorTask": 0x12,  # Completion.orchestrator, field 2
    "CompleteActivityTask": 0x1A,  # Completion.activity, field 3
    "CompleteEntityTask": 0x22,  # Completion.entity, field 4
    "AbandonTaskOrchestratorWorkItem": 0x2A,  # field 5
    "AbandonTaskActivityWorkItem": 0x32,  # field 6
    "AbandonTaskEntityWorkItem": 0x3A,  # field 7
}


class ChannelClosed(Exception):
    """The channel ended before the server answered: send the completion another way."""


class WorkChannel:
    """One ``WorkChannel.Connect`` call: iterate it for ``ChannelDown`` batches, and
    :meth:`complete` work items over it.

    The call starts on the first iteration. Iteration raises what a ``GetWorkItems``
    stream would (``grpc.RpcError``, ``asyncio.CancelledError`` once cancelled) and
    stops when the server ends the call.
    """

    def __init__(
        self, connection: Connection, request: pb.GetWorkItemsRequest, *, receive_limit: int
    ) -> None:
        self._connection = connection
        self._request = request
        self._receive_limit = receive_limit
        self._call: Any = None
        self._sender: asyncio.Task[None] | None = None
        self._queue: collections.deque[bytes] = collections.deque()
        self._wake = asyncio.Event()
        self._pending: dict[int, asyncio.Future[wc.Outcome]] = {}
        self._ids = itertools.count(1)
        self._cancelled = False
        self._closed = False
        self.opened = False
        """Whether the server answered: it serves the channel."""
        self.batch_limit = connection.options.max_send_message_bytes - _MARGIN
        """The largest batch (and so the largest completion) sent over the channel."""

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    @property
    def usable(self) -> bool:
        """Whether completions can be sent over the channel now."""
        return self.opened and not self._closed

    async def start(self) -> None:
        if self._call is not None:
            return
        if self._cancelled:
            raise asyncio.CancelledError
        metadata = await self._connection.call_metadata("WorkChannel.Connect")
        connect = self._connection.stream_stream(METHOD, wc.ChannelDown.FromString)
        self._call = connect(metadata=metadata)
        if self.cancelled:  # cancelled while the token was being fetched
            self._call.cancel()
            raise asyncio.CancelledError
        first = wc.ChannelUp(open=self._request, max_receive_bytes=self._receive_limit)
        # The sender writes the first message too: a write that is awaited here would
        # never return if the call were cancelled meanwhile (grpc.aio does not wake a
        # pending write on cancel), and the worker's stop() would wait on it forever.
        self._queue.appendleft(first.SerializeToString())
        self._wake.set()
        self._sender = asyncio.get_running_loop().create_task(self._send_forever())

    def cancel(self) -> bool:
        """End the call; completions waiting for an outcome raise ``ChannelClosed``."""
        self._cancelled = True
        self._close()
        return bool(self._call.cancel()) if self._call is not None else True

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sender is not None:
            self._sender.cancel()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ChannelClosed())
        self._queue.clear()

    def __aiter__(self) -> WorkChannel:
        return self

    async def __anext__(self) -> wc.ChannelDown:
        if self._call is None:
            await self.start()
        try:
            message = await self._call.read()
        except BaseException:
            self._close()
            raise
        if message is grpc.aio.EOF:
            self._close()
            raise StopAsyncIteration
        if message is None:  # not decodable (grpc logged why)
            logger.error("ignoring a work channel message that could not be decoded")
            return wc.ChannelDown()
        if not self.opened:
            self.opened = True
            if message.max_receive_bytes:
                self.batch_limit = min(self.batch_limit, message.max_receive_bytes - _MARGIN)
        for outcome in message.outcomes:
            future = self._pending.pop(outcome.id, None)
            if future is not None and not future.done():
                future.set_result(outcome)
        down: wc.ChannelDown = message
        return down

    def drain(self) -> None:
        """Ask the server for no more work; completions still go over the channel
        until :meth:`cancel` ends it."""
        if self.usable:
            self._queue.append(_UP_DRAIN)
            self._wake.set()

    async def complete(self, method: str, payload: bytes) -> wc.Outcome:
        """Send one serialized ``method`` request (a completion or an abandon) in the
        next batch and wait for its outcome.

        Raises:
            ChannelClosed: the channel ended first, or was not usable, or the request
                is too large for a batch; if the channel ended after sending it, the
                server may or may not have taken it.
        """
        if not self.usable:
            raise ChannelClosed
        completion_id = next(self._ids)
        # One copy of ``payload``: the headers of both envelopes are computed first.
        result_header = bytes((_RESULT_TAGS[method],)) + _varint(len(payload))
        id_field = bytes((_COMPLETION_ID,)) + _varint(completion_id)
        body_size = len(id_field) + len(result_header) + len(payload)
        entry = b"".join(
            (bytes((_UP_COMPLETION,)), _varint(body_size), id_field, result_header, payload)
        )
        if len(entry) > self.batch_limit:
            # The unary call checks it against the limits and names them.
            raise ChannelClosed
        self._queue.append(entry)
        future: asyncio.Future[wc.Outcome] = asyncio.get_running_loop().create_future()
        self._pending[completion_id] = future
        self._wake.set()
        try:
            return await future
        finally:
            self._pending.pop(completion_id, None)

    async def _send_forever(self) -> None:
        queue = self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    parts = [queue.popleft()]
                    size = len(parts[0])
                    while queue and size + len(queue[0]) <= self.batch_limit:
                        entry = queue.popleft()
                        parts.append(entry)
                        size += len(entry)
                    await self._call.write(b"".join(parts))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The call ended (the reader sees why); waiting completions go another way.
            logger.debug("work channel send failed: %r", exc)
            self._close()
