"""A TCP proxy whose connections a test can cut (reset) or freeze (half-open)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    frozen: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; ``async with TcpProxy(target)``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pairs: set[_Pair] = set()
        self.accepted = 0
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.sever()
        tasks = [task for pair in self._pairs for task in pair.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def open_connections(self) -> int:
        return sum(1 for pair in self._pairs if not pair.frozen.is_set())

    def sever(self) -> int:
        """Reset every open connection (both sides see the TCP connection drop)."""
        pairs = list(self._pairs)
        for pair in pairs:
            for writer in (pair.client, pair.upstream):
                writer.transport.abort()
        return len(pairs)

    def freeze(self) -> int:
        """Stop forwarding on every open connection, keeping the sockets open: to both
        sides the peer looks alive but silent. New connections are forwarded normally."""
        count = 0
        for pair in self._pairs:
            if not pair.frozen.is_set():
                pair.frozen.set()
                count += 1
        return count

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.tasks = [
            asyncio.create_task(self._pump(pair, reader, up_writer)),
            asyncio.create_task(self._pump(pair, up_reader, writer)),
        ]

    async def _pump(
        self, pair: _Pair, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                data = await source.read(65536)
                if pair.frozen.is_set():
                    await asyncio.Event().wait()  # hold the data and the socket forever
                if not data:
                    break
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if not pair.frozen.is_set():
                sink.transport.abort()
                self._pairs.discard(pair)
                with contextlib.suppress(Exception):
                    sink.close()
