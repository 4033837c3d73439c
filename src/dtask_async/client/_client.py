"""The asyncio client: start, query, signal and manage orchestration instances and entities."""

from __future__ import annotations

import datetime as _dt
import enum
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import grpc

from .._errors import InvalidInstanceIdError, RPCTimeoutError
from .._models import OrchestrationStatus
from .._naming import name_of
from .._proto import Duration, Int32Value, pb
from .._protoutil import sv, to_timestamp, utcnow
from .._serialization import encode
from .._validation import check_sendable, validate_instance_id
from ..entities._id import EntityInstanceId, entity_id_of
from ..transport import ChannelOptions, Connection, TokenCredentialLike, translate_rpc_error
from ._state import (
    CleanEntityStorageResult,
    EntityMetadata,
    EntityQuery,
    HistoryEvent,
    HistoryStream,
    OrchestrationQuery,
    OrchestrationState,
    Page,
    PurgeResult,
)

__all__ = ("AsyncDurableTaskClient",)

logger = logging.getLogger(__name__)

Timeout = float | _dt.timedelta | None

DEFAULT_WAIT_TIMEOUT = 60.0


class _Lifecycle(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def _seconds(timeout: Timeout, what: str = "timeout") -> float | None:
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, _dt.timedelta) else float(timeout)
    if seconds <= 0:
        raise ValueError(f"{what} must be positive, got {timeout!r}")
    return seconds


def _statuses(statuses: Iterable[OrchestrationStatus] | None) -> list[Any]:
    return [OrchestrationStatus(s).value for s in statuses] if statuses else []


class AsyncDurableTaskClient:
    """A client for a Durable Task server, used from asyncio code.

    Every operation is a coroutine. The constructor does no I/O: the channel
    opens with the first call. Use it as ``async with AsyncDurableTaskClient(...)
    as client:`` or call :meth:`aclose` when done.

    Args:
        host_address: the server, as ``host:port`` or an ``http(s)://`` /
            ``grpc(s)://`` URL; ``None`` means ``localhost:8080`` (the emulator).
        taskhub: the task hub, sent as the ``taskhub`` header.
        secure_channel: ``True`` forces TLS (an ``https``/``grpcs`` address implies it).
        token_credential: an azure-identity credential (sync or ``.aio``); its
            tokens are sent as ``authorization: Bearer`` on every call.
        interceptors: extra ``grpc.aio`` client interceptors.
        channel_options: message size limits, keepalive and retry settings.
        metadata: extra headers for every call.
        default_version: the version given to orchestrations started without one.
        root_certificates: PEM root certificates for TLS, when not the system's.
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
        metadata: Sequence[tuple[str, str]] = (),
        default_version: str | None = None,
        root_certificates: bytes | None = None,
        token_scope: str | None = None,
    ) -> None:
        self._connection = Connection(
            host_address=host_address,
            taskhub=taskhub,
            secure_channel=secure_channel,
            token_credential=token_credential,
            interceptors=interceptors,
            options=channel_options,
            metadata=metadata,
            root_certificates=root_certificates,
            token_scope=token_scope,
        )
        self.default_version = default_version
        self._state = _Lifecycle.UNOPENED

    # -- lifecycle -------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The server address as given (or the default)."""
        return self._connection.target.original

    async def __aenter__(self) -> AsyncDurableTaskClient:
        if self._state is _Lifecycle.CLOSED:
            raise RuntimeError("this client is closed; create a new one")
        self._state = _Lifecycle.OPEN
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the channel. Safe to call more than once."""
        self._state = _Lifecycle.CLOSED
        await self._connection.aclose()

    close = aclose

    async def _call(self, method: str, request: Any, *, timeout: float | None = None) -> Any:
        return await self._connection.call(method, request, timeout=timeout)

    # -- starting and waiting --------------------------------------------------------

    async def schedule_new_orchestration(
        self,
        orchestrator: Any = None,
        input: Any = None,
        *,
        instance_id: str | None = None,
        start_at: _dt.datetime | None = None,
        reuse_id_policy: Iterable[OrchestrationStatus] | None = None,
        tags: dict[str, str] | None = None,
        version: str | None = None,
        orchestration: Any = None,
    ) -> str:
        """Start a new orchestration instance.

        Args:
            orchestrator: the orchestrator function, or its registered name.
            input: the orchestrator's input (JSON-encoded; dataclasses and
                namedtuples welcome).
            instance_id: the new instance's id; a random one when omitted.
            start_at: do not run before this time (naive datetimes are UTC).
            reuse_id_policy: statuses in which an existing instance with the same
                id may be replaced; by default the server refuses a used id.
            tags: string labels stored with the instance.
            version: the orchestration version (``ctx.version``).
            orchestration: the same as ``orchestrator``, for programs that name it
                by keyword (``schedule_new_orchestration(orchestration=fn, input=x)``).

        Returns:
            The instance id.

        Raises:
            PayloadError: the input cannot be JSON-encoded (nothing was sent).
            InvalidInstanceIdError: the instance id is unusable (nothing was sent).
            OrchestrationAlreadyExistsError: the id is in use.
        """
        if orchestrator is not None and orchestration is not None:
            raise TypeError(
                "schedule_new_orchestration() got both 'orchestrator' and 'orchestration'; "
                "pass one of them"
            )
        target = orchestrator if orchestrator is not None else orchestration
        if target is None:
            raise TypeError(
                "schedule_new_orchestration() needs the orchestrator, or its name, as its "
                "first argument or as 'orchestrator=' or 'orchestration='"
            )
        name = name_of(target, "orchestrator")
        resolved_id = validate_instance_id(instance_id) if instance_id is not None else None
        request = pb.CreateInstanceRequest(
            instanceId=resolved_id or uuid.uuid4().hex,
            name=name,
            input=sv(encode(input, f"input of orchestration {name!r}")),
            version=sv(version or self.default_version),
        )
        if start_at is not None:
            request.scheduledStartTimestamp.CopyFrom(to_timestamp(start_at))
        if reuse_id_policy is not None:
            request.orchestrationIdReusePolicy.replaceableStatus.extend(_statuses(reuse_id_policy))
        if tags:
            request.tags.update({str(k): str(v) for k, v in tags.items()})
        response = await self._call("StartInstance", request)
        logger.info("started orchestration %r as %r", name, response.instanceId)
        return str(response.instanceId)

    async def get_orchestration_state(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> OrchestrationState | None:
        """The instance's current state, or ``None`` if there is no such instance."""
        validate_instance_id(instance_id)
        request = pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=fetch_payloads)
        response = await self._call("GetInstance", request)
        return OrchestrationState.from_pb(response.orchestrationState) if response.exists else None

    async def _wait(
        self, method: str, instance_id: str, fetch_payloads: bool, timeout: Timeout, what: str
    ) -> OrchestrationState | None:
        validate_instance_id(instance_id)
        seconds = _seconds(timeout)
        request = pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=fetch_payloads)
        try:
            response = await self._call(method, request, timeout=seconds)
        except RPCTimeoutError as exc:
            raise RPCTimeoutError(
                f"orchestration {instance_id!r} did not {what} within {seconds:g} s",
                code=exc.code,
                details=exc.details,
                method=method,
            ) from exc
        return OrchestrationState.from_pb(response.orchestrationState) if response.exists else None

    async def wait_for_orchestration_start(
        self,
        instance_id: str,
        *,
        fetch_payloads: bool = False,
        timeout: Timeout = DEFAULT_WAIT_TIMEOUT,
    ) -> OrchestrationState | None:
        """Wait until the instance has started running (or finished).

        Args:
            instance_id: the instance.
            fetch_payloads: include input and output in the result.
            timeout: seconds or a ``timedelta``; ``None`` waits without limit.

        Raises:
            TimeoutError: (an :class:`~dtask_async.RPCTimeoutError`) the timeout passed.
        """
        return await self._wait(
            "WaitForInstanceStart", instance_id, fetch_payloads, timeout, "start"
        )

    async def wait_for_orchestration_completion(
        self,
        instance_id: str,
        *,
        fetch_payloads: bool = True,
        timeout: Timeout = DEFAULT_WAIT_TIMEOUT,
        timeout_in_seconds: float | None = None,
    ) -> OrchestrationState | None:
        """Wait until the instance completes, fails or is terminated.

        Args:
            instance_id: the instance.
            fetch_payloads: include input and output in the result.
            timeout: seconds or a ``timedelta``; ``None`` waits without limit.
            timeout_in_seconds: the same as ``timeout``, in seconds.

        Returns:
            The final state, or ``None`` if there is no such instance.

        Raises:
            TimeoutError: (an :class:`~dtask_async.RPCTimeoutError`) the timeout passed.
        """
        if timeout_in_seconds is not None:
            timeout = timeout_in_seconds
        return await self._wait(
            "WaitForInstanceCompletion", instance_id, fetch_payloads, timeout, "complete"
        )

    # -- talking to running instances ------------------------------------------------

    async def raise_orchestration_event(
        self, instance_id: str, event_name: str, *, data: Any = None
    ) -> None:
        """Send an external event to an instance (``ctx.wait_for_external_event``).

        Raises:
            PayloadError: the data cannot be JSON-encoded (nothing was sent).
            ValueError: the event name is empty or cannot be sent as UTF-8.
            OrchestrationNotFoundError: there is no such instance.
            InvalidOperationError: the instance has finished (on servers that
                say so; some accept and drop the event).
        """
        validate_instance_id(instance_id)
        if not event_name:
            raise ValueError("event_name is empty")
        check_sendable(event_name, "event name")
        request = pb.RaiseEventRequest(
            instanceId=instance_id,
            name=event_name,
            input=sv(encode(data, f"data of event {event_name!r}")),
        )
        await self._call("RaiseEvent", request)

    async def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Same as :meth:`raise_orchestration_event`."""
        await self.raise_orchestration_event(instance_id, event_name, data=data)

    async def terminate_orchestration(
        self,
        instance_id: str,
        *,
        output: Any = None,
        reason: Any = None,
        recursive: bool = True,
    ) -> None:
        """Terminate an instance; it ends with status TERMINATED.

        Args:
            instance_id: the instance.
            output: recorded as the instance's output.
            reason: the same as ``output`` (used when ``output`` is not given).
            recursive: terminate its sub-orchestrations too.
        """
        validate_instance_id(instance_id)
        value = output if output is not None else reason
        request = pb.TerminateRequest(
            instanceId=instance_id,
            output=sv(encode(value, "termination output")),
            recursive=recursive,
        )
        await self._call("TerminateInstance", request)

    async def suspend_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        """Suspend an instance: it takes no new steps until resumed."""
        validate_instance_id(instance_id)
        await self._call(
            "SuspendInstance", pb.SuspendRequest(instanceId=instance_id, reason=sv(reason))
        )

    async def resume_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        """Resume a suspended instance."""
        validate_instance_id(instance_id)
        await self._call(
            "ResumeInstance", pb.ResumeRequest(instanceId=instance_id, reason=sv(reason))
        )

    async def restart_orchestration(
        self, instance_id: str, *, restart_with_new_instance_id: bool = False
    ) -> str:
        """Run a finished instance again from the start, with its original input.

        Returns:
            The id of the restarted instance (a new one if asked for).
        """
        validate_instance_id(instance_id)
        request = pb.RestartInstanceRequest(
            instanceId=instance_id, restartWithNewInstanceId=restart_with_new_instance_id
        )
        response = await self._call("RestartInstance", request)
        return str(response.instanceId)

    async def rewind_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        """Rewind a failed instance: failed work is retried, succeeded work is kept."""
        validate_instance_id(instance_id)
        await self._call(
            "RewindInstance", pb.RewindInstanceRequest(instanceId=instance_id, reason=sv(reason))
        )

    # -- purging ---------------------------------------------------------------------

    async def purge_orchestration(self, instance_id: str, *, recursive: bool = True) -> PurgeResult:
        """Delete a finished instance's state and history.

        Args:
            instance_id: the instance.
            recursive: delete its sub-orchestrations too.
        """
        validate_instance_id(instance_id)
        request = pb.PurgeInstancesRequest(
            instanceId=instance_id, recursive=recursive, isOrchestration=True
        )
        return self._purge_result(await self._call("PurgeInstances", request))

    async def purge_orchestrations_by(
        self,
        *,
        created_time_from: _dt.datetime | None = None,
        created_time_to: _dt.datetime | None = None,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        recursive: bool = False,
        timeout: Timeout = None,
    ) -> PurgeResult:
        """Delete every finished instance matching the filter."""
        purge_filter = pb.PurgeInstanceFilter(runtimeStatus=_statuses(runtime_status))
        if created_time_from is not None:
            purge_filter.createdTimeFrom.CopyFrom(to_timestamp(created_time_from))
        if created_time_to is not None:
            purge_filter.createdTimeTo.CopyFrom(to_timestamp(created_time_to))
        seconds = _seconds(timeout)
        if seconds is not None:
            purge_filter.timeout.CopyFrom(
                Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))
            )
        request = pb.PurgeInstancesRequest(purgeInstanceFilter=purge_filter, recursive=recursive)
        return self._purge_result(await self._call("PurgeInstances", request))

    @staticmethod
    def _purge_result(response: Any) -> PurgeResult:
        complete = response.isComplete.value if response.HasField("isComplete") else None
        return PurgeResult(
            deleted_instance_count=response.deletedInstanceCount, is_complete=complete
        )

    # -- queries ---------------------------------------------------------------------

    async def query_instances(
        self,
        *,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        created_time_from: _dt.datetime | None = None,
        created_time_to: _dt.datetime | None = None,
        instance_id_prefix: str | None = None,
        page_size: int = 100,
        fetch_payloads: bool = False,
    ) -> AsyncIterator[OrchestrationState]:
        """Iterate over matching instances, fetching pages as needed.

        Use ``async for state in client.query_instances(...)``.

        Args:
            runtime_status: only these statuses.
            created_time_from: only instances created at or after this time.
            created_time_to: only instances created at or before this time.
            instance_id_prefix: only ids starting with this.
            page_size: instances per round trip.
            fetch_payloads: include inputs, outputs and custom status.
        """
        token: str | None = None
        while True:
            page = await self.query_instances_page(
                runtime_status=runtime_status,
                created_time_from=created_time_from,
                created_time_to=created_time_to,
                instance_id_prefix=instance_id_prefix,
                page_size=page_size,
                fetch_payloads=fetch_payloads,
                continuation_token=token,
            )
            for state in page.items:
                yield state
            if page.continuation_token is None or page.continuation_token == token:
                return
            token = page.continuation_token

    async def query_instances_page(
        self,
        *,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        created_time_from: _dt.datetime | None = None,
        created_time_to: _dt.datetime | None = None,
        instance_id_prefix: str | None = None,
        page_size: int = 100,
        fetch_payloads: bool = False,
        continuation_token: str | None = None,
    ) -> Page[OrchestrationState]:
        """One page of matching instances (one round trip) and the token of the next.

        Takes the filters of :meth:`query_instances`; pass the returned
        ``continuation_token`` back to get the following page (it is ``None`` on
        the last one). Servers decide the order and may return fewer than
        ``page_size`` instances on a page that is not the last.

        Raises:
            ValueError: ``page_size`` is not positive.
            InvalidArgumentError: the server did not accept the token.
        """
        if page_size <= 0:
            raise ValueError(f"page_size must be positive, got {page_size}")
        query = pb.InstanceQuery(
            runtimeStatus=_statuses(runtime_status),
            maxInstanceCount=page_size,
            instanceIdPrefix=sv(instance_id_prefix),
            fetchInputsAndOutputs=fetch_payloads,
            continuationToken=sv(continuation_token),
        )
        if created_time_from is not None:
            query.createdTimeFrom.CopyFrom(to_timestamp(created_time_from))
        if created_time_to is not None:
            query.createdTimeTo.CopyFrom(to_timestamp(created_time_to))
        response = await self._call("QueryInstances", pb.QueryInstancesRequest(query=query))
        token = response.continuationToken.value if response.HasField("continuationToken") else ""
        return Page(
            items=[OrchestrationState.from_pb(state) for state in response.orchestrationState],
            continuation_token=None if not token or token == "0" else str(token),
        )

    async def get_all_orchestration_states(
        self, orchestration_query: OrchestrationQuery | None = None, **filters: Any
    ) -> list[OrchestrationState]:
        """All instances matching a query, as a list.

        Args:
            orchestration_query: the filters as one object; or pass the keyword
                arguments of :meth:`query_instances` directly.
        """
        if orchestration_query is not None:
            if filters:
                raise TypeError("pass either an OrchestrationQuery or keyword filters, not both")
            filters = {
                "runtime_status": orchestration_query.runtime_status,
                "created_time_from": orchestration_query.created_time_from,
                "created_time_to": orchestration_query.created_time_to,
                "instance_id_prefix": orchestration_query.instance_id_prefix,
                "page_size": orchestration_query.page_size,
                "fetch_payloads": orchestration_query.fetch_inputs_and_outputs,
            }
        return [state async for state in self.query_instances(**filters)]

    async def list_instance_ids(
        self,
        *,
        runtime_status: Iterable[OrchestrationStatus] | None = None,
        completed_time_from: _dt.datetime | None = None,
        completed_time_to: _dt.datetime | None = None,
        page_size: int | None = None,
        continuation_token: str | None = None,
    ) -> Page[str]:
        """One page of ids of finished instances; pass the returned token for the next."""
        request = pb.ListInstanceIdsRequest(
            runtimeStatus=_statuses(runtime_status),
            pageSize=page_size or 0,
            lastInstanceKey=sv(continuation_token),
        )
        if completed_time_from is not None:
            request.completedTimeFrom.CopyFrom(to_timestamp(completed_time_from))
        if completed_time_to is not None:
            request.completedTimeTo.CopyFrom(to_timestamp(completed_time_to))
        response = await self._call("ListInstanceIds", request)
        token = response.lastInstanceKey.value if response.HasField("lastInstanceKey") else None
        return Page(items=list(response.instanceIds), continuation_token=token or None)

    def get_orchestration_history(
        self,
        instance_id: str,
        *,
        execution_id: str | None = None,
        for_work_item_processing: bool = False,
    ) -> HistoryStream:
        """An instance's history: ``await`` it for a list, or ``async for`` over it to
        take the events as the server streams them (large histories need not fit in
        memory).

        ``events = await client.get_orchestration_history(id)`` or
        ``async for event in client.get_orchestration_history(id): ...``.

        Args:
            instance_id: the instance.
            execution_id: one execution of it (after ``continue_as_new``); the
                current one by default.
            for_work_item_processing: passed to the server as the protocol's
                ``forWorkItemProcessing`` flag.

        Raises:
            InvalidInstanceIdError: the id is unusable (raised at once).
            OrchestrationNotFoundError: there is no such instance (raised on
                awaiting or iterating).
        """
        validate_instance_id(instance_id)
        request = pb.StreamInstanceHistoryRequest(
            instanceId=instance_id,
            executionId=sv(execution_id),
            forWorkItemProcessing=for_work_item_processing,
        )
        return HistoryStream(self._stream_history(request))

    async def _stream_history(
        self, request: pb.StreamInstanceHistoryRequest
    ) -> AsyncIterator[HistoryEvent]:
        call = self._connection.stream("StreamInstanceHistory", request)
        try:
            async for chunk in call:
                for event in chunk.events:
                    yield HistoryEvent.from_pb(event)
        except grpc.RpcError as exc:
            raise translate_rpc_error(
                exc, method="StreamInstanceHistory", target=self._connection.target
            ) from exc
        finally:
            call.cancel()

    # -- entities --------------------------------------------------------------------

    async def signal_entity(
        self,
        entity_instance_id: EntityInstanceId | str,
        operation_name: str,
        input: Any = None,
        *,
        signal_time: _dt.datetime | None = None,
    ) -> None:
        """Send an operation to an entity without waiting for it to run.

        Args:
            entity_instance_id: the entity (or its ``@name@key`` string form).
            operation_name: the operation to run.
            input: the operation's input.
            signal_time: run the operation no earlier than this (naive is UTC).

        Raises:
            PayloadError: the input cannot be JSON-encoded (nothing was sent).
            InvalidInstanceIdError: the entity id is unusable (nothing was sent).
        """
        entity_id = entity_id_of(entity_instance_id, "entity_instance_id")
        if not isinstance(operation_name, str) or not operation_name:
            raise ValueError(f"operation_name must be a non-empty string, got {operation_name!r}")
        check_sendable(operation_name, "entity operation name")
        request = pb.SignalEntityRequest(
            instanceId=str(entity_id),
            name=operation_name,
            input=sv(encode(input, f"input of operation {operation_name!r} on entity {entity_id}")),
            requestId=str(uuid.uuid4()),
        )
        request.requestTime.CopyFrom(to_timestamp(utcnow()))
        if signal_time is not None:
            request.scheduledTime.CopyFrom(to_timestamp(signal_time))
        await self._call("SignalEntity", request)
        logger.info("signaled entity %s: %r", entity_id, operation_name)

    async def get_entity(
        self, entity_instance_id: EntityInstanceId | str, *, include_state: bool = True
    ) -> EntityMetadata | None:
        """An entity's metadata (and state), or ``None`` if it does not exist.

        Args:
            entity_instance_id: the entity (or its ``@name@key`` string form).
            include_state: fetch the state too (``metadata.state``).
        """
        entity_id = entity_id_of(entity_instance_id, "entity_instance_id")
        request = pb.GetEntityRequest(instanceId=str(entity_id), includeState=include_state)
        response = await self._call("GetEntity", request)
        if not response.exists:
            return None
        return EntityMetadata.from_pb(response.entity, include_state)

    async def query_entities(
        self,
        *,
        instance_id_starts_with: str | None = None,
        last_modified_from: _dt.datetime | None = None,
        last_modified_to: _dt.datetime | None = None,
        include_state: bool = True,
        include_transient: bool = False,
        page_size: int | None = None,
    ) -> AsyncIterator[EntityMetadata]:
        """Iterate over matching entities, fetching pages as needed.

        Use ``async for entity in client.query_entities(instance_id_starts_with="@counter@")``.

        Args:
            instance_id_starts_with: only ids starting with this; the entity-name
                part (after the first ``@``) is matched case-insensitively.
            last_modified_from: only entities modified at or after this time.
            last_modified_to: only entities modified before this time.
            include_state: fetch each entity's state.
            include_transient: include entities without state (only locks or
                pending messages).
            page_size: entities per round trip; the server's default when ``None``.
        """
        token: str | None = None
        while True:
            page = await self.query_entities_page(
                instance_id_starts_with=instance_id_starts_with,
                last_modified_from=last_modified_from,
                last_modified_to=last_modified_to,
                include_state=include_state,
                include_transient=include_transient,
                page_size=page_size,
                continuation_token=token,
            )
            for entity in page.items:
                yield entity
            if page.continuation_token is None:
                return
            if page.continuation_token == token:
                logger.warning("the server returned the same continuation token twice; stopping")
                return
            token = page.continuation_token

    async def query_entities_page(
        self,
        *,
        instance_id_starts_with: str | None = None,
        last_modified_from: _dt.datetime | None = None,
        last_modified_to: _dt.datetime | None = None,
        include_state: bool = True,
        include_transient: bool = False,
        page_size: int | None = None,
        continuation_token: str | None = None,
    ) -> Page[EntityMetadata]:
        """One page of matching entities (one round trip) and the token of the next.

        Takes the filters of :meth:`query_entities`; pass the returned
        ``continuation_token`` back for the following page (``None`` on the last).

        Raises:
            ValueError: ``page_size`` is not positive.
            InvalidArgumentError: the server did not accept the token.
        """
        if page_size is not None and page_size <= 0:
            raise ValueError(f"page_size must be positive, got {page_size}")
        query = pb.EntityQuery(
            instanceIdStartsWith=sv(_entity_prefix(instance_id_starts_with)),
            includeState=include_state,
            includeTransient=include_transient,
            continuationToken=sv(continuation_token),
        )
        if page_size is not None:
            query.pageSize.CopyFrom(Int32Value(value=page_size))
        if last_modified_from is not None:
            query.lastModifiedFrom.CopyFrom(to_timestamp(last_modified_from))
        if last_modified_to is not None:
            query.lastModifiedTo.CopyFrom(to_timestamp(last_modified_to))
        response = await self._call("QueryEntities", pb.QueryEntitiesRequest(query=query))
        entities: list[EntityMetadata] = []
        for entity in response.entities:
            try:
                entities.append(EntityMetadata.from_pb(entity, include_state))
            except InvalidInstanceIdError:
                logger.warning("skipping %r: not an entity instance id", entity.instanceId)
        token = response.continuationToken.value if response.HasField("continuationToken") else ""
        return Page(
            items=entities, continuation_token=None if not token or token == "0" else str(token)
        )

    async def get_all_entities(
        self, entity_query: EntityQuery | None = None, **filters: Any
    ) -> list[EntityMetadata]:
        """All entities matching a query, as a list.

        Args:
            entity_query: the filters as one object; or pass the keyword
                arguments of :meth:`query_entities` directly.
        """
        if entity_query is not None:
            if filters:
                raise TypeError("pass either an EntityQuery or keyword filters, not both")
            filters = {
                "instance_id_starts_with": entity_query.instance_id_starts_with,
                "last_modified_from": entity_query.last_modified_from,
                "last_modified_to": entity_query.last_modified_to,
                "include_state": entity_query.include_state,
                "include_transient": entity_query.include_transient,
                "page_size": entity_query.page_size,
            }
        return [entity async for entity in self.query_entities(**filters)]

    async def clean_entity_storage(
        self, remove_empty_entities: bool = True, release_orphaned_locks: bool = True
    ) -> CleanEntityStorageResult:
        """Delete entities that have no state, and release locks whose owner is gone.

        The server may work in steps; this calls it until it reports it is done.

        Args:
            remove_empty_entities: delete entities with no state and nothing pending.
            release_orphaned_locks: release locks held by orchestrations that no
                longer exist.
        """
        removed = released = 0
        previous: str | None = None
        request = pb.CleanEntityStorageRequest(
            removeEmptyEntities=remove_empty_entities,
            releaseOrphanedLocks=release_orphaned_locks,
        )
        while True:
            response = await self._call("CleanEntityStorage", request)
            removed += response.emptyEntitiesRemoved
            released += response.orphanedLocksReleased
            token = _next_token(response, previous)
            if token is None:
                break
            previous = token
            request.continuationToken.value = token
        return CleanEntityStorageResult(
            empty_entities_removed=removed, orphaned_locks_released=released
        )


def _next_token(response: Any, previous: str | None) -> str | None:
    """The continuation token to send next, or ``None`` when paging is over."""
    token = response.continuationToken.value if response.HasField("continuationToken") else ""
    if not token or token == "0":
        return None
    if token == previous:
        logger.warning("the server returned the same continuation token twice; stopping")
        return None
    return str(token)


def _entity_prefix(prefix: str | None) -> str | None:
    # Entity names are stored lower-cased: lower the name part of "@Name@key...".
    if not prefix or not prefix.startswith("@"):
        return prefix or None
    name, separator, rest = prefix[1:].partition("@")
    return f"@{name.lower()}{separator}{rest}"
