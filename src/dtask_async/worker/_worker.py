"""The asyncio worker: one work-item stream, bounded concurrency, graceful stop."""

from __future__ import annotations

import asyncio
import collections
import enum
import itertools
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import grpc

from .._errors import PayloadTooLargeError, RPCError
from .._models import FailureDetails
from .._proto import pb
from .._protoutil import failure_to_pb, sv
from ..orchestration import OrchestrationRunner
from ..transport import ChannelOptions, Connection, TokenCredentialLike, translate_rpc_error
from ..transport._errors import status_error
from ..transport._work_channel import ChannelClosed, WorkChannel
from ._activities import run_activity
from ._entities import oversized_result, run_entity_batch
from ._options import ConcurrencyOptions, ReconnectPolicy
from ._registry import Registry
from ._threads import ThreadRunner

__all__ = ("AsyncDurableTaskWorker",)

logger = logging.getLogger(__name__)


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class _Kind(enum.Enum):
    ORCHESTRATION = "orchestration"
    ACTIVITY = "activity"
    ENTITY = "entity"


_ABANDON_METHOD = {
    _Kind.ORCHESTRATION: ("AbandonTaskOrchestratorWorkItem", pb.AbandonOrchestrationTaskRequest),
    _Kind.ACTIVITY: ("AbandonTaskActivityWorkItem", pb.AbandonActivityTaskRequest),
    _Kind.ENTITY: ("AbandonTaskEntityWorkItem", pb.AbandonEntityTaskRequest),
}


class _Lane:
    """Per-kind bookkeeping: how many items run, and the ones waiting for a slot.

    Items beyond the limit wait in a deque (no task per waiting item); a finishing
    handler takes the next waiting item itself.
    """

    def __init__(self, kind: _Kind, limit: int) -> None:
        self.kind = kind
        self.limit = limit
        self.running = 0
        self.waiting: collections.deque[pb.WorkItem] = collections.deque()


# Codes that say nothing about whether the server serves the work channel.
_TRANSIENT = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)

_END = object()
"""Returned by ``_next_message`` when the server ended the stream."""


def _default_worker_id() -> str:
    return f"{socket.gethostname()},{os.getpid()},{uuid.uuid4().hex[:12]}"


class AsyncDurableTaskWorker:
    """Runs orchestrators, activities and entities on the caller's event loop.

    ``async def`` activities run on the loop that started the worker, so they can
    share the application's connection pools and clients; plain ``def``
    activities run in worker threads. Orchestrators are replayed from history by
    a pure engine, on the loop.

    Use it as an async context manager: leaving the block stops it gracefully::

        async with AsyncDurableTaskWorker(host_address="localhost:8080") as worker:
            worker.add_orchestrator(my_orchestration)
            worker.add_activity(my_activity)
            await worker.start()
            ...

    Args:
        host_address: the server (``host:port`` or an ``http(s)://``/``grpc(s)://``
            URL); ``None`` means ``localhost:8080``.
        taskhub: the task hub, sent as the ``taskhub`` header.
        secure_channel: ``True`` forces TLS.
        token_credential: an azure-identity credential for ``authorization: Bearer``.
        interceptors: extra ``grpc.aio`` client interceptors.
        channel_options: message size limits, keepalive and retry settings.
        concurrency: how much work runs at once.
        reconnect: how to back off when the work-item stream breaks.
        shutdown_timeout: seconds that :meth:`stop` lets in-flight work finish
            before abandoning it to be redelivered.
        orchestration_cache_size: live orchestrators kept between episodes so a
            long orchestration is not replayed from the start every time (0 turns
            the cache off).
        worker_id: sent as the ``workerid`` header; a unique default.
        metadata: extra headers for every call.
        root_certificates: PEM root certificates for TLS, when not the system's.
        work_channel: take work and send results over the batched work channel when
            the server offers it (the embedded backend does; other servers answer
            UNIMPLEMENTED once, and the worker uses ``GetWorkItems`` and a call per
            result, as it does with ``False``).
    """

    def __init__(
        self,
        *,
        host_address: str | None = None,
        taskhub: str | None = None,
        secure_channel: bool | None = None,
        token_credential: TokenCredentialLike | None = None,
        interceptors: Sequence[Any] | None = None,
        channel_options: ChannelOptions | None = None,
        concurrency: ConcurrencyOptions | None = None,
        reconnect: ReconnectPolicy | None = None,
        shutdown_timeout: float = 30.0,
        orchestration_cache_size: int = 512,
        worker_id: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        root_certificates: bytes | None = None,
        token_scope: str | None = None,
        work_channel: bool = True,
    ) -> None:
        self.worker_id = worker_id or _default_worker_id()
        self._use_channel = work_channel
        self._connection = Connection(
            host_address=host_address,
            taskhub=taskhub,
            secure_channel=secure_channel,
            token_credential=token_credential,
            interceptors=interceptors,
            options=channel_options,
            worker_id=self.worker_id,
            metadata=metadata,
            root_certificates=root_certificates,
            token_scope=token_scope,
        )
        self.concurrency = concurrency or ConcurrencyOptions()
        self.reconnect = reconnect or ReconnectPolicy()
        if shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must not be negative, got {shutdown_timeout}")
        self.shutdown_timeout = shutdown_timeout
        if orchestration_cache_size < 0:
            raise ValueError("orchestration_cache_size must not be negative")
        self._cache_size = orchestration_cache_size
        self._cache: collections.OrderedDict[str, OrchestrationRunner] = collections.OrderedDict()
        self._registry = Registry()
        self._state = _State.NEW
        self._main: asyncio.Task[None] | None = None
        self._call: Any = None
        self._lanes = {
            _Kind.ORCHESTRATION: _Lane(
                _Kind.ORCHESTRATION, self.concurrency.max_concurrent_orchestrations
            ),
            _Kind.ACTIVITY: _Lane(_Kind.ACTIVITY, self.concurrency.max_concurrent_activities),
            _Kind.ENTITY: _Lane(_Kind.ENTITY, self.concurrency.max_concurrent_entities),
        }
        self._in_flight: dict[int, tuple[_Kind, str]] = {}
        self._keys = itertools.count()
        self._idle = asyncio.Event()
        self._idle.set()
        self._connected = asyncio.Event()
        self._connect_timeout = 5.0
        self._stopping = asyncio.Event()
        self._threads: ThreadRunner | None = None
        # Lane loops are plain asyncio tasks: an anyio task group costs several times
        # more per task, and the worker starts one for most work items.
        self._lane_tasks: set[asyncio.Task[None]] = set()
        # The silence watchdog: when the last message arrived, and the stream it
        # cancelled for saying nothing for too long.
        self._last_message_at = 0.0
        self._silenced: Any = None

    # -- registration ----------------------------------------------------------------

    def add_orchestrator(self, fn: Any, *, name: str | None = None) -> str:
        """Register an orchestrator (generator function, ``async def`` or plain).

        Returns:
            The registered name: ``name``, the decorator's name, or ``fn.__name__``.

        Raises:
            RegistrationError: the name is already registered.
        """
        self._check_not_running("add an orchestrator")
        return self._registry.add_orchestrator(fn, name)

    add_orchestration = add_orchestrator

    def add_activity(self, fn: Any, *, name: str | None = None) -> str:
        """Register an activity (``async def`` runs on the loop, ``def`` in a thread).

        Returns:
            The registered name.

        Raises:
            RegistrationError: the name is already registered.
        """
        self._check_not_running("add an activity")
        return self._registry.add_activity(fn, name)

    def add_entity(self, entity: Any, *, name: str | None = None) -> str:
        """Register an entity: a function ``(ctx, input)`` or a ``DurableEntity`` class.

        ``async def`` operations run on the loop, plain ones in worker threads.

        Returns:
            The registered (lower-case) entity name: ``name``, or the function's
            or class's name.

        Raises:
            RegistrationError: the name is taken, contains ``@``, or the class does
                not subclass ``entities.DurableEntity``.
        """
        self._check_not_running("add an entity")
        return self._registry.add_entity(entity, name)

    def _check_not_running(self, what: str) -> None:
        if self._state is not _State.NEW:
            raise RuntimeError(f"cannot {what} after the worker has started")

    @property
    def registry(self) -> Registry:
        """The registered orchestrators, activities and entities."""
        return self._registry

    # -- lifecycle -------------------------------------------------------------------

    def _active(self) -> bool:
        # A method, not an inline comparison: the state changes while we await.
        return self._state is _State.RUNNING

    @property
    def is_running(self) -> bool:
        """Whether the worker is taking work."""
        return self._state is _State.RUNNING

    async def __aenter__(self) -> AsyncDurableTaskWorker:
        if self._state is _State.STOPPED:
            raise RuntimeError("this worker is stopped; create a new one")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start taking work in the background and return.

        The worker connects (and reconnects) by itself; use :meth:`wait_until_connected`
        to wait for the first connection.
        """
        if self._state is _State.RUNNING:
            return
        if self._state is not _State.NEW:
            raise RuntimeError("this worker is stopped; create a new one")
        self._state = _State.RUNNING
        self._threads = ThreadRunner(self.concurrency.max_activity_threads)
        self._main = asyncio.create_task(self._run(), name=f"dtask-worker {self.worker_id}")

    async def wait_until_connected(self, timeout: float | None = None) -> None:
        """Wait until the work-item stream is open.

        Raises:
            TimeoutError: not connected within ``timeout`` seconds.
        """
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def run(self) -> None:
        """Start the worker and run until cancelled (then stop gracefully)."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop taking work; let in-flight work finish, then abandon what is left.

        Over the work channel the server is told to send no more work, and the work in
        flight stays this worker's until it finishes or is abandoned; over a
        ``GetWorkItems`` stream, the stream is closed first, and the server may hand
        that work to another worker meanwhile.

        Args:
            timeout: seconds to let in-flight work finish; the worker's
                ``shutdown_timeout`` by default. Abandoned work is redelivered.

        Safe to call more than once.
        """
        if self._state in (_State.STOPPED, _State.NEW):
            self._state = _State.STOPPED
            await self._connection.aclose()
            return
        if timeout is not None:
            self.shutdown_timeout = timeout
        self._state = _State.STOPPING
        self._stopping.set()
        call = self._call
        if isinstance(call, WorkChannel) and call.usable:
            # No more work, but the channel stays open for the results of the work in
            # flight, which stays this worker's own (``_run`` closes it after draining).
            call.drain()
        elif call is not None:
            call.cancel()
        main = self._main
        if main is not None:
            try:
                # Waiting, not awaiting the task: a caller that gives up on stop()
                # (a timeout) gets its cancellation, and the worker stops at once.
                await asyncio.wait({main})
            except asyncio.CancelledError:
                main.cancel()
                raise
            if not main.cancelled() and main.exception() is not None:
                logger.error("the worker's main task failed", exc_info=main.exception())
        self._state = _State.STOPPED
        if self._threads is not None:
            self._threads.close()
        await self._connection.aclose()
        logger.info("worker %s stopped", self.worker_id)

    # -- the work-item stream --------------------------------------------------------

    def _request(self) -> pb.GetWorkItemsRequest:
        return pb.GetWorkItemsRequest(
            maxConcurrentOrchestrationWorkItems=self.concurrency.max_concurrent_orchestrations,
            maxConcurrentActivityWorkItems=self.concurrency.max_concurrent_activities,
            maxConcurrentEntityWorkItems=self.concurrency.max_concurrent_entities,
            capabilities=[pb.WORKER_CAPABILITY_HISTORY_STREAMING],
        )

    async def _run(self) -> None:
        receiving = asyncio.get_running_loop().create_task(self._receive_forever())
        try:
            stopping = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            # A work channel still carries results while in-flight work finishes; a
            # GetWorkItems stream was cancelled by stop().
            await self._drain()
            call = self._call
            if call is not None:
                call.cancel()
            # The receiver is cancelled as well, not left to notice the call's end:
            # a read or write that grpc.aio has not started yet is not always woken
            # by cancelling the call, and stop() must not wait on it.
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
        finally:
            receiving.cancel()
            tasks = list(self._lane_tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                with anyio.CancelScope(shield=True):
                    await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive_forever(self) -> None:
        attempt = 0
        while self._active():
            received = False
            watchdog: asyncio.Task[None] | None = None
            try:
                if not await self._connection.wait_ready(self._connect_timeout):
                    logger.warning(
                        "cannot reach the Durable Task server at %s; still trying",
                        self._connection.target.original,
                    )
                    attempt += 1
                    continue
                channel = self._open_call()
                watchdog = self._watch_silence(self._call)
                self._connected.set()
                logger.info("worker %s connected to %s", self.worker_id, self._connection.target)
                while (message := await self._next_message(self._call)) is not _END:
                    received = True
                    if channel is not None:
                        for item in message.items:
                            self._dispatch(item)
                    elif message is None:
                        # grpc yields None for a message it cannot decode (and logs why).
                        # Without its token it cannot be abandoned: the server redelivers
                        # it when the lease expires.
                        logger.error("ignoring a work item that could not be decoded")
                    else:
                        self._dispatch(message)
                if self._active():
                    logger.info("the server ended the work-item stream; reconnecting")
            except (grpc.RpcError, RPCError) as exc:
                if not self._active():
                    break
                if self._no_channel_here(exc):
                    continue
                error = (
                    exc
                    if isinstance(exc, RPCError)
                    else translate_rpc_error(
                        exc, method="GetWorkItems", target=self._connection.target
                    )
                )
                logger.warning("work-item stream broke: %s", error)
            except TimeoutError:
                if not self._active():
                    break
                logger.warning(
                    "no message on the work-item stream for %.0f s, not even a health ping: "
                    "presuming the connection dead; reconnecting",
                    self.reconnect.silent_disconnect_timeout,
                )
            except asyncio.CancelledError:
                if not self._active():
                    break
                raise
            except Exception:
                # Whatever goes wrong on the stream, the worker must not stop taking
                # work while it is running: drop the stream and reconnect.
                if not self._active():
                    break
                logger.exception("unexpected error on the work-item stream; reconnecting")
            finally:
                if watchdog is not None:
                    watchdog.cancel()
                    watchdog = None
                self._connected.clear()
                call, self._call = self._call, None
                if call is not None:
                    call.cancel()
            if not self._active():
                break
            # Back off further only while streams fail without delivering anything: a
            # server that accepts the call and ends it at once is not hammered.
            if received:
                attempt = 0
            delay = self.reconnect.delay(attempt)
            attempt += 1
            logger.info("reconnecting to %s in %.2f s", self._connection.target, delay)
            await self._sleep_unless_stopping(delay)

    def _open_call(self) -> WorkChannel | None:
        """Set ``_call`` to a new work channel, or to a ``GetWorkItems`` stream when
        the server has no channel; return the channel, if that is what it is."""
        if self._use_channel:
            channel = WorkChannel(
                self._connection,
                self._request(),
                receive_limit=self._connection.options.max_receive_message_bytes,
            )
            self._call = channel
            return channel
        self._call = self._connection.stream("GetWorkItems", self._request())
        return None

    def _no_channel_here(self, exc: grpc.RpcError | RPCError) -> bool:
        """Whether ``exc`` says that the server does not serve the work channel: then
        the worker uses ``GetWorkItems`` from now on."""
        call = self._call
        if not isinstance(call, WorkChannel) or call.opened or isinstance(exc, RPCError):
            return False
        code_of = getattr(exc, "code", None)
        code = code_of() if callable(code_of) else None
        # Only an answer from a server that is there and lets us in says "not here".
        if code in _TRANSIENT:
            return False
        self._use_channel = False
        logger.info(
            "%s does not serve the batched work channel (%s); using GetWorkItems",
            self._connection.target,
            code.name if code is not None else exc,
        )
        return True

    async def _next_message(self, stream: Any) -> Any:
        """The next message of ``stream``, or ``_END``.

        Raises:
            TimeoutError: nothing arrived for ``reconnect.silent_disconnect_timeout`` s.
        """
        try:
            message = await stream.__anext__()
        except StopAsyncIteration:
            return _END
        except (asyncio.CancelledError, grpc.RpcError, RPCError):
            if self._silenced is stream and not _cancelling():
                self._silenced = None
                raise TimeoutError from None
            raise
        self._last_message_at = asyncio.get_running_loop().time()
        return message

    def _watch_silence(self, stream: Any) -> asyncio.Task[None] | None:
        """Cancel ``stream`` once it has said nothing for the silent-disconnect timeout.

        One timer per stream, not one per message: ``_next_message`` only notes when
        each message arrived.
        """
        silence = self.reconnect.silent_disconnect_timeout
        if silence is None:
            return None
        loop = asyncio.get_running_loop()
        self._last_message_at = loop.time()
        self._silenced = None

        async def watch() -> None:
            while True:
                remaining = self._last_message_at + silence - loop.time()
                if remaining <= 0:
                    self._silenced = stream
                    stream.cancel()
                    return
                await asyncio.sleep(remaining)

        return loop.create_task(watch(), name=f"dtask-worker {self.worker_id} silence watchdog")

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._stopping.wait()

    def _dispatch(self, item: pb.WorkItem) -> None:
        which = item.WhichOneof("request")
        if which == "orchestratorRequest":
            kind = _Kind.ORCHESTRATION
        elif which == "activityRequest":
            kind = _Kind.ACTIVITY
        elif which in ("entityRequest", "entityRequestV2"):
            kind = _Kind.ENTITY
        elif which == "healthPing":
            return
        else:
            logger.warning("ignoring a work item of unknown type %r", which)
            return
        if not self._active():
            # Sent before the server learned that this worker is stopping: give it back.
            task = asyncio.get_running_loop().create_task(self._abandon(kind, item.completionToken))
            self._lane_tasks.add(task)
            task.add_done_callback(self._lane_done)
            return
        lane = self._lanes[kind]
        if lane.running >= lane.limit:
            lane.waiting.append(item)
            return
        lane.running += 1
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(self._lane_loop(lane, item))
        self._lane_tasks.add(task)
        task.add_done_callback(self._lane_done)

    def _lane_done(self, task: asyncio.Task[None]) -> None:
        self._lane_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a work-item task failed", exc_info=task.exception())

    async def _lane_loop(self, lane: _Lane, item: pb.WorkItem) -> None:
        try:
            current: pb.WorkItem | None = item
            while current is not None:
                await self._handle(lane.kind, current)
                if not self._active():
                    break
                current = lane.waiting.popleft() if lane.waiting else None
        finally:
            lane.running -= 1
            if not any(lane.running for lane in self._lanes.values()):
                self._idle.set()

    async def _drain(self) -> None:
        for lane in self._lanes.values():
            while lane.waiting:
                await self._abandon(lane.kind, lane.waiting.popleft().completionToken)
        if self._in_flight:
            logger.info(
                "letting %d work item(s) finish (up to %.1f s)",
                len(self._in_flight),
                self.shutdown_timeout,
            )
            with anyio.move_on_after(self.shutdown_timeout):
                await self._idle.wait()

    async def _handle(self, kind: _Kind, item: pb.WorkItem) -> None:
        token = item.completionToken
        key = next(self._keys)
        self._in_flight[key] = (kind, token)
        completed = False
        try:
            if kind is _Kind.ACTIVITY:
                await self._run_activity(item.activityRequest, token)
            elif kind is _Kind.ORCHESTRATION:
                await self._run_orchestration(item.orchestratorRequest, token)
            else:
                await self._run_entity(item)
            completed = True
        except Exception:
            logger.exception("internal error handling a %s work item; abandoning it", kind.value)
        finally:
            del self._in_flight[key]
            if not completed:
                with anyio.CancelScope(shield=True):
                    await self._abandon(kind, token)

    async def _abandon(self, kind: _Kind, token: str) -> None:
        method, request_type = _ABANDON_METHOD[kind]
        try:
            with anyio.fail_after(5):
                await self._call_or_channel(method, request_type(completionToken=token))
        except (RPCError, TimeoutError) as exc:
            logger.warning("could not abandon a %s work item: %s", kind.value, exc)

    async def _call_or_channel(self, method: str, request: Any) -> None:
        """Send ``request`` in the work channel's next batch when it is open, else
        (or when the channel ends before the answer) as a unary call.

        Raises:
            RPCError: the server refused it, as the unary call would raise.
        """
        channel = self._call
        if isinstance(channel, WorkChannel) and channel.usable:
            try:
                outcome = await channel.complete(method, request.SerializeToString())
            except ChannelClosed:
                pass  # it may not have arrived: the unary call tells
            else:
                if outcome.code:
                    raise status_error(
                        outcome.code, outcome.message, method=method, target=self._connection.target
                    )
                return
        await self._connection.call(method, request)

    async def _complete(self, method: str, response: Any) -> bool:
        """Send a work item's result; whether the server accepted it.

        Raises:
            PayloadTooLargeError: the server's message limit is below the result's size.
        """
        try:
            await self._call_or_channel(method, response)
            return True
        except RPCError as exc:  # (PayloadTooLargeError is not one: it propagates)
            # A stale token (the lease expired or the stream dropped) or a server
            # gone: the server redelivers the work, so there is nothing to retry.
            logger.warning("%s was not accepted: %s", method, exc)
            return False

    async def _send(
        self, method: str, response: Any, too_large: Callable[[PayloadTooLargeError], Any]
    ) -> bool:
        """Send a result, or the failure ``too_large`` makes of it when it exceeds
        this side's message limit or the server's.

        Sending a result the server cannot take would only get the work redelivered
        and run again, forever: it is replaced by a (small) failure that names the
        size and the limit.
        """
        try:
            self._connection.check_size(method, response)
        except PayloadTooLargeError as exc:
            response = too_large(exc)
        else:
            try:
                return await self._complete(method, response)
            except PayloadTooLargeError as exc:
                logger.warning("%s refused by the server as too large: %s", method, exc)
                response = too_large(exc)
        try:
            return await self._complete(method, response)
        except PayloadTooLargeError as exc:
            logger.warning("%s was not accepted: %s", method, exc)
            return False

    # -- activities ------------------------------------------------------------------

    async def _run_activity(self, request: pb.ActivityRequest, token: str) -> None:
        assert self._threads is not None
        response = await run_activity(self._registry, request, token, self._threads)
        await self._send(
            "CompleteActivityTask",
            response,
            lambda exc: self._activity_too_large(request, response, exc),
        )

    @staticmethod
    def _activity_too_large(
        request: pb.ActivityRequest, response: pb.ActivityResponse, exc: PayloadTooLargeError
    ) -> pb.ActivityResponse:
        failed = pb.ActivityResponse()
        failed.CopyFrom(response)
        failed.ClearField("result")
        failed.failureDetails.CopyFrom(
            failure_to_pb(
                FailureDetails(
                    message=f"the result of activity {request.name!r} is too large: {exc}",
                    error_type="dtask_async.PayloadTooLargeError",
                    is_non_retriable=True,
                )
            )
        )
        return failed

    # -- orchestrations --------------------------------------------------------------

    async def _history(self, request: pb.OrchestratorRequest) -> Sequence[pb.HistoryEvent]:
        if not request.requiresHistoryStreaming:
            return request.pastEvents
        stream_request = pb.StreamInstanceHistoryRequest(
            instanceId=request.instanceId,
            executionId=request.executionId if request.HasField("executionId") else None,
            forWorkItemProcessing=True,
        )
        events: list[pb.HistoryEvent] = []
        call = self._connection.stream("StreamInstanceHistory", stream_request)
        try:
            async for chunk in call:
                events.extend(chunk.events)
        except grpc.RpcError as exc:
            raise translate_rpc_error(
                exc, method="StreamInstanceHistory", target=self._connection.target
            ) from exc
        return events

    def _runner_result(
        self, request: pb.OrchestratorRequest, past: Sequence[pb.HistoryEvent]
    ) -> Any:
        instance_id = request.instanceId
        new = request.newEvents
        runner = self._cache.pop(instance_id, None) if self._cache_size else None
        result = runner.continue_with(past, new) if runner is not None else None
        if result is None:
            runner = OrchestrationRunner(instance_id, self._registry.orchestrator)
            result = runner.execute(past, new)
        if self._cache_size and not result.is_complete and runner is not None:
            self._cache[instance_id] = runner
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    async def _run_orchestration(self, request: pb.OrchestratorRequest, token: str) -> None:
        past = await self._history(request)
        result = self._runner_result(request, past)
        response = pb.OrchestratorResponse(
            instanceId=request.instanceId,
            actions=result.actions,
            customStatus=sv(result.custom_status),
            completionToken=token,
        )

        def too_large(exc: PayloadTooLargeError) -> pb.OrchestratorResponse:
            self._cache.pop(request.instanceId, None)
            return self._too_large(request, token, exc)

        if not await self._send("CompleteOrchestratorTask", response, too_large):
            self._cache.pop(request.instanceId, None)

    @staticmethod
    def _too_large(
        request: pb.OrchestratorRequest, token: str, exc: PayloadTooLargeError
    ) -> pb.OrchestratorResponse:
        failure = FailureDetails(
            message=f"orchestration {request.instanceId!r} produced a step too large to "
            f"send: {exc}",
            error_type="dtask_async.PayloadTooLargeError",
            is_non_retriable=True,
        )
        action = pb.OrchestratorAction(id=-1)
        action.completeOrchestration.orchestrationStatus = pb.ORCHESTRATION_STATUS_FAILED
        action.completeOrchestration.failureDetails.CopyFrom(failure_to_pb(failure))
        return pb.OrchestratorResponse(
            instanceId=request.instanceId, actions=[action], completionToken=token
        )

    # -- entities --------------------------------------------------------------------

    async def _run_entity(self, item: pb.WorkItem) -> None:
        assert self._threads is not None
        work, result = await run_entity_batch(self._registry, item, self._threads)
        await self._send("CompleteEntityTask", result, lambda exc: oversized_result(work, exc))


def _cancelling() -> bool:
    """Whether the current task has been asked to stop (Python 3.11+ can tell)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling()) if cancelling is not None else False
