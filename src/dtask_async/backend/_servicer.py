"""The ``TaskHubSidecarService`` servicer: gRPC in, hub operations, gRPC status out.

Every call is routed to the hub named by its ``taskhub`` metadata (``default`` when
absent). Failures become statuses in one place, :func:`_guarded`: an
:class:`~._validation.RpcFailure` keeps its code, a storage failure is UNAVAILABLE, and
anything unexpected is logged and reported as INTERNAL, so no request can take the
server down.

It also serves the batched work channel (``WorkChannel.Connect``, see
``proto/work_channel.proto``): a ``GetWorkItems`` stream and the completion calls on one
bidirectional call, where each completion gets, as an ``Outcome``, the status its unary
call would have had.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import anyio
import grpc

from .._proto import Empty, pb, pb_grpc, wc
from . import _entity_operations as entity_ops, _operations as ops
from ._dispatch import Stream
from ._hub import Hub, not_found
from ._model import ACTIVITY, ENTITY, ORCHESTRATION, Txn
from ._store import StorageError
from ._validation import RpcFailure, check_instance_id
from ._wire import channel_hello, channel_outcome, history_chunks

__all__ = ("Servicer",)

logger = logging.getLogger(__name__)

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

# Streaming methods whose responses the servicer encodes itself (see ``_wire``).
_PRE_ENCODED = frozenset({"GetWorkItems", "StreamInstanceHistory"})

# Room left in a work channel batch for gRPC's own framing.
_BATCH_MARGIN = 1024

_COMPLETERS: dict[str, tuple[str, Callable[[Hub, Any], Awaitable[None]]]] = {
    "orchestrator": ("CompleteOrchestratorTask", ops.complete_orchestration),
    "activity": ("CompleteActivityTask", ops.complete_activity),
    "entity": ("CompleteEntityTask", entity_ops.complete_entity),
}
_ABANDONS = {
    "abandon_orchestrator": ("AbandonTaskOrchestratorWorkItem", ORCHESTRATION),
    "abandon_activity": ("AbandonTaskActivityWorkItem", ACTIVITY),
    "abandon_entity": ("AbandonTaskEntityWorkItem", ENTITY),
}


class HubSource(Protocol):
    """Finds (opening on first use) the hub a call addresses."""

    async def get(self, name: str) -> Hub: ...

    @property
    def ping_interval(self) -> float: ...

    @property
    def history_chunk_size(self) -> int: ...

    @property
    def max_message_size(self) -> int: ...


def _failure_of(exc: Exception, method: str) -> RpcFailure:
    if isinstance(exc, RpcFailure):
        return exc
    if isinstance(exc, StorageError):
        return RpcFailure(grpc.StatusCode.UNAVAILABLE, str(exc))
    logger.error("%s failed inside the backend", method, exc_info=exc)
    return RpcFailure(
        grpc.StatusCode.INTERNAL,
        f"{method} failed inside the backend: {type(exc).__name__}: {exc}",
    )


def _guarded(
    method: Callable[[Servicer, _Req, Any], Awaitable[_Resp]],
) -> Callable[[Servicer, _Req, Any], Awaitable[_Resp]]:
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Servicer, request: _Req, context: Any) -> _Resp:
        try:
            return await method(self, request, context)
        except Exception as exc:
            failure = _failure_of(exc, name)
        await context.abort(failure.code, failure.message)
        raise failure  # abort() raises; this line is never reached

    return wrapper


class Servicer(pb_grpc.TaskHubSidecarServiceServicer):
    """Serves every RPC of the protocol from the hubs of one embedded backend."""

    def __init__(self, hubs: HubSource) -> None:
        self._hubs = hubs

    async def _hub(self, context: Any) -> Hub:
        name = "default"
        metadata: Sequence[tuple[str, Any]] = context.invocation_metadata() or ()
        for key, value in metadata:
            if key == "taskhub" and isinstance(value, str) and value:
                name = value
        return await self._hubs.get(name)

    # -- service -------------------------------------------------------------------

    @_guarded
    async def Hello(self, request: Empty, context: Any) -> Empty:
        await self._hub(context)  # a worker configured for a bad hub name learns it here
        return Empty()

    @_guarded
    async def CreateTaskHub(
        self, request: pb.CreateTaskHubRequest, context: Any
    ) -> pb.CreateTaskHubResponse:
        hub = await self._hub(context)
        if request.recreateIfExists:
            txn = Txn()
            hub.wipe(txn)
            await hub.commit(txn)
        return pb.CreateTaskHubResponse()

    @_guarded
    async def DeleteTaskHub(
        self, request: pb.DeleteTaskHubRequest, context: Any
    ) -> pb.DeleteTaskHubResponse:
        hub = await self._hub(context)
        txn = Txn()
        hub.wipe(txn)
        await hub.commit(txn)
        return pb.DeleteTaskHubResponse()

    # -- instances -----------------------------------------------------------------

    @_guarded
    async def StartInstance(
        self, request: pb.CreateInstanceRequest, context: Any
    ) -> pb.CreateInstanceResponse:
        instance_id = await ops.start_instance(await self._hub(context), request)
        return pb.CreateInstanceResponse(instanceId=instance_id)

    @_guarded
    async def GetInstance(
        self, request: pb.GetInstanceRequest, context: Any
    ) -> pb.GetInstanceResponse:
        return await ops.get_instance(await self._hub(context), request)

    async def _wait(self, request: pb.GetInstanceRequest, context: Any, *, complete: bool) -> Any:
        hub = await self._hub(context)
        check_instance_id(request.instanceId)
        waiting = hub.wait(
            request.instanceId, until_complete=complete, payloads=request.getInputsAndOutputs
        )
        remaining = context.time_remaining()
        if remaining is None:
            return await waiting
        # Answer just before the caller's deadline: if gRPC's own deadline fired first,
        # the caller could see CANCELLED instead of DEADLINE_EXCEEDED.
        with anyio.move_on_after(max(0.0, remaining - min(0.1, remaining / 10))):
            return await waiting
        raise RpcFailure(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"orchestration instance {request.instanceId!r} did not "
            f"{'finish' if complete else 'start'} before the call's deadline",
        )

    @_guarded
    async def WaitForInstanceStart(
        self, request: pb.GetInstanceRequest, context: Any
    ) -> pb.GetInstanceResponse:
        response: pb.GetInstanceResponse = await self._wait(request, context, complete=False)
        return response

    @_guarded
    async def WaitForInstanceCompletion(
        self, request: pb.GetInstanceRequest, context: Any
    ) -> pb.GetInstanceResponse:
        response: pb.GetInstanceResponse = await self._wait(request, context, complete=True)
        return response

    @_guarded
    async def RaiseEvent(
        self, request: pb.RaiseEventRequest, context: Any
    ) -> pb.RaiseEventResponse:
        await ops.raise_event(await self._hub(context), request)
        return pb.RaiseEventResponse()

    @_guarded
    async def TerminateInstance(
        self, request: pb.TerminateRequest, context: Any
    ) -> pb.TerminateResponse:
        await ops.terminate(await self._hub(context), request)
        return pb.TerminateResponse()

    @_guarded
    async def SuspendInstance(self, request: pb.SuspendRequest, context: Any) -> pb.SuspendResponse:
        reason = request.reason if request.HasField("reason") else None
        await ops.suspend_or_resume(
            await self._hub(context), request.instanceId, reason, suspend=True
        )
        return pb.SuspendResponse()

    @_guarded
    async def ResumeInstance(self, request: pb.ResumeRequest, context: Any) -> pb.ResumeResponse:
        reason = request.reason if request.HasField("reason") else None
        await ops.suspend_or_resume(
            await self._hub(context), request.instanceId, reason, suspend=False
        )
        return pb.ResumeResponse()

    @_guarded
    async def QueryInstances(
        self, request: pb.QueryInstancesRequest, context: Any
    ) -> pb.QueryInstancesResponse:
        return await ops.query(await self._hub(context), request)

    @_guarded
    async def ListInstanceIds(
        self, request: pb.ListInstanceIdsRequest, context: Any
    ) -> pb.ListInstanceIdsResponse:
        return await ops.list_ids(await self._hub(context), request)

    @_guarded
    async def PurgeInstances(
        self, request: pb.PurgeInstancesRequest, context: Any
    ) -> pb.PurgeInstancesResponse:
        return await ops.purge(await self._hub(context), request)

    @_guarded
    async def RestartInstance(
        self, request: pb.RestartInstanceRequest, context: Any
    ) -> pb.RestartInstanceResponse:
        instance_id = await ops.restart(await self._hub(context), request)
        return pb.RestartInstanceResponse(instanceId=instance_id)

    @_guarded
    async def RewindInstance(
        self, request: pb.RewindInstanceRequest, context: Any
    ) -> pb.RewindInstanceResponse:
        await ops.rewind(await self._hub(context), request)
        return pb.RewindInstanceResponse()

    @_guarded
    async def SkipGracefulOrchestrationTerminations(
        self, request: pb.SkipGracefulOrchestrationTerminationsRequest, context: Any
    ) -> pb.SkipGracefulOrchestrationTerminationsResponse:
        raise RpcFailure(
            grpc.StatusCode.UNIMPLEMENTED,
            "SkipGracefulOrchestrationTerminations is not supported by the embedded backend: "
            "terminations are always delivered to the orchestration",
        )

    async def StreamInstanceHistory(
        self, request: pb.StreamInstanceHistoryRequest, context: Any
    ) -> AsyncIterator[bytes]:
        # Chunks are cut from the encoded history without parsing it (see ``_wire``).
        try:
            hub = await self._hub(context)
            check_instance_id(request.instanceId)
            instance = hub.instances.get(request.instanceId)
            if instance is None:
                raise not_found(request.instanceId)
            if request.HasField("executionId") and request.executionId.value not in (
                "",
                instance.execution_id,
            ):
                raise RpcFailure(
                    grpc.StatusCode.NOT_FOUND,
                    f"execution {request.executionId.value!r} of instance "
                    f"{request.instanceId!r} is not stored; the current execution is "
                    f"{instance.execution_id!r}",
                )
            past = await hub.encoded_history_of(instance)
        except Exception as exc:
            failure = _failure_of(exc, "StreamInstanceHistory")
            await context.abort(failure.code, failure.message)
            return
        for chunk in history_chunks(past, self._hubs.history_chunk_size):
            yield chunk

    # -- work items ----------------------------------------------------------------

    async def GetWorkItems(
        self, request: pb.GetWorkItemsRequest, context: Any
    ) -> AsyncIterator[bytes]:
        # Work items are encoded by the dispatcher (see ``_wire``); they are sent as is.
        try:
            hub = await self._hub(context)
            stream = hub.dispatcher.open_stream(request)
        except Exception as exc:
            failure = _failure_of(exc, "GetWorkItems")
            await context.abort(failure.code, failure.message)
            return
        interval = self._hubs.ping_interval
        try:
            while True:
                item = await stream.next_item(interval)
                if item is None:
                    return
                yield item
        finally:
            hub.dispatcher.close_stream(stream)

    # -- the batched work channel (proto/work_channel.proto) --------------------------

    async def Connect(
        self, requests: AsyncIterator[wc.ChannelUp], context: Any
    ) -> AsyncIterator[bytes]:
        """``WorkChannel.Connect``: ``GetWorkItems`` and the completion calls on one
        call, in batches. Each completion is handled as its unary call would be, and
        its outcome (OK once durable, or the status the call would fail with) goes
        back in a later batch."""
        try:
            hub = await self._hub(context)
            first = await requests.__anext__()
            if not first.HasField("open"):
                raise RpcFailure(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "the first message of a work channel must carry `open`",
                )
            stream = hub.dispatcher.open_stream(first.open)
        except StopAsyncIteration:
            return
        except Exception as exc:
            failure = _failure_of(exc, "WorkChannel.Connect")
            await context.abort(failure.code, failure.message)
            return
        limit = self._hubs.max_message_size
        peer_limit = first.max_receive_bytes or limit
        batch_bytes = max(1, min(limit, peer_limit) - _BATCH_MARGIN)
        interval = self._hubs.ping_interval
        reader = asyncio.get_running_loop().create_task(
            self._read_completions(hub, stream, requests, first)
        )
        try:
            yield channel_hello(limit)
            while True:
                batch = await stream.next_batch(interval, batch_bytes)
                if batch is None:
                    return
                yield batch
        finally:
            reader.cancel()
            hub.dispatcher.close_stream(stream)

    async def _read_completions(
        self,
        hub: Hub,
        stream: Stream,
        requests: AsyncIterator[wc.ChannelUp],
        first: wc.ChannelUp,
    ) -> None:
        loop = asyncio.get_running_loop()
        handling: set[asyncio.Task[None]] = set()  # keeps the tasks referenced
        message = first
        try:
            while True:
                for completion in message.completions:
                    which = completion.WhichOneof("result") or ""
                    completer = _COMPLETERS.get(which)
                    if completer is not None:
                        method, complete = completer
                        # Handled concurrently, like unary calls: their commits share
                        # one group commit.
                        task = loop.create_task(
                            self._complete(
                                hub,
                                stream,
                                completion.id,
                                method,
                                complete,
                                getattr(completion, which),
                            )
                        )
                        handling.add(task)
                        task.add_done_callback(handling.discard)
                    else:
                        stream.push_outcome(self._abandon(hub, completion, which))
                if message.drain:
                    hub.dispatcher.retire_stream(stream)
                message = await requests.__anext__()
        except StopAsyncIteration:
            stream.end()  # the worker is done with the channel
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the call broke: its writer ends it too
            logger.debug("work channel %s: %s", stream, exc)
            stream.end()

    @staticmethod
    async def _complete(
        hub: Hub,
        stream: Stream,
        completion_id: int,
        method: str,
        complete: Callable[[Hub, Any], Awaitable[None]],
        payload: Any,
    ) -> None:
        try:
            await complete(hub, payload)
        except Exception as exc:
            failure = _failure_of(exc, method)
            stream.push_outcome(
                channel_outcome(completion_id, failure.code.value[0], failure.message)
            )
        else:
            stream.push_outcome(channel_outcome(completion_id))

    @staticmethod
    def _abandon(hub: Hub, completion: wc.Completion, which: str) -> bytes:
        abandon = _ABANDONS.get(which)
        if abandon is None:
            return channel_outcome(
                completion.id,
                grpc.StatusCode.INVALID_ARGUMENT.value[0],
                f"completion {completion.id} of the work channel carries no result",
            )
        method, kind = abandon
        try:
            ops.abandon(hub, getattr(completion, which).completionToken, kind)
        except Exception as exc:
            failure = _failure_of(exc, method)
            return channel_outcome(completion.id, failure.code.value[0], failure.message)
        return channel_outcome(completion.id)

    @_guarded
    async def CompleteOrchestratorTask(
        self, request: pb.OrchestratorResponse, context: Any
    ) -> pb.CompleteTaskResponse:
        await ops.complete_orchestration(await self._hub(context), request)
        return pb.CompleteTaskResponse()

    @_guarded
    async def CompleteActivityTask(
        self, request: pb.ActivityResponse, context: Any
    ) -> pb.CompleteTaskResponse:
        await ops.complete_activity(await self._hub(context), request)
        return pb.CompleteTaskResponse()

    @_guarded
    async def AbandonTaskOrchestratorWorkItem(
        self, request: pb.AbandonOrchestrationTaskRequest, context: Any
    ) -> pb.AbandonOrchestrationTaskResponse:
        ops.abandon(await self._hub(context), request.completionToken, ORCHESTRATION)
        return pb.AbandonOrchestrationTaskResponse()

    @_guarded
    async def AbandonTaskActivityWorkItem(
        self, request: pb.AbandonActivityTaskRequest, context: Any
    ) -> pb.AbandonActivityTaskResponse:
        ops.abandon(await self._hub(context), request.completionToken, ACTIVITY)
        return pb.AbandonActivityTaskResponse()

    # -- entities ------------------------------------------------------------------

    @_guarded
    async def CompleteEntityTask(
        self, request: pb.EntityBatchResult, context: Any
    ) -> pb.CompleteTaskResponse:
        await entity_ops.complete_entity(await self._hub(context), request)
        return pb.CompleteTaskResponse()

    @_guarded
    async def AbandonTaskEntityWorkItem(
        self, request: pb.AbandonEntityTaskRequest, context: Any
    ) -> pb.AbandonEntityTaskResponse:
        ops.abandon(await self._hub(context), request.completionToken, ENTITY)
        return pb.AbandonEntityTaskResponse()

    @_guarded
    async def SignalEntity(
        self, request: pb.SignalEntityRequest, context: Any
    ) -> pb.SignalEntityResponse:
        await entity_ops.signal_entity(await self._hub(context), request)
        return pb.SignalEntityResponse()

    @_guarded
    async def GetEntity(self, request: pb.GetEntityRequest, context: Any) -> pb.GetEntityResponse:
        return await entity_ops.get_entity(await self._hub(context), request)

    @_guarded
    async def QueryEntities(
        self, request: pb.QueryEntitiesRequest, context: Any
    ) -> pb.QueryEntitiesResponse:
        return await entity_ops.query_entities(await self._hub(context), request)

    @_guarded
    async def CleanEntityStorage(
        self, request: pb.CleanEntityStorageRequest, context: Any
    ) -> pb.CleanEntityStorageResponse:
        return await entity_ops.clean_entity_storage(await self._hub(context), request)

    def register(self, server: Any) -> None:
        """Add this servicer's handlers to a ``grpc.aio`` server.

        Like the generated ``add_TaskHubSidecarServiceServicer_to_server``, except that
        ``GetWorkItems`` and ``StreamInstanceHistory`` send the bytes they encoded
        without re-serializing, and that no method is registered with the server.
        """
        service = pb.DESCRIPTOR.services_by_name["TaskHubSidecarService"]
        handlers = {}
        for method in service.methods:
            request_type = _message_class(method.input_type.full_name)
            response_type = _message_class(method.output_type.full_name)
            serialize = (
                _as_bytes if method.name in _PRE_ENCODED else response_type.SerializeToString
            )
            make = (
                grpc.unary_stream_rpc_method_handler
                if method.server_streaming
                else grpc.unary_unary_rpc_method_handler
            )
            handlers[method.name] = make(
                getattr(self, method.name),
                request_deserializer=request_type.FromString,
                response_serializer=serialize,
            )
        # Generic handlers only: grpc.aio keeps one pending "next call" future per
        # registered method and waits on all of them (asyncio.wait) for every call,
        # which costs more per call than the dictionary lookup of a generic handler.
        channel = wc.DESCRIPTOR.services_by_name["WorkChannel"]
        channel_handlers = {
            "Connect": grpc.stream_stream_rpc_method_handler(
                self.Connect,
                request_deserializer=wc.ChannelUp.FromString,
                response_serializer=_as_bytes,
            )
        }
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(service.full_name, handlers),
                grpc.method_handlers_generic_handler(channel.full_name, channel_handlers),
            )
        )


def _message_class(full_name: str) -> Any:
    if full_name == "google.protobuf.Empty":
        return Empty
    return getattr(pb, full_name)


def _as_bytes(item: bytes | Any) -> bytes:
    if isinstance(item, bytes):
        return item
    serialized: bytes = item.SerializeToString()
    return serialized
