"""What the client returns: orchestration states, history events, purge results,
entity metadata."""

from __future__ import annotations

import datetime as _dt
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Generator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

from google.protobuf import json_format

from .._errors import OrchestrationFailedError, PayloadError
from .._models import FailureDetails, OrchestrationStatus
from .._proto import pb
from .._protoutil import failure_from_pb, opt_str, to_datetime, to_timestamp
from .._serialization import decode
from ..entities._id import EntityInstanceId

__all__ = (
    "CleanEntityStorageResult",
    "EntityMetadata",
    "EntityQuery",
    "HistoryEvent",
    "HistoryStream",
    "OrchestrationQuery",
    "OrchestrationState",
    "Page",
    "PurgeResult",
)

T = TypeVar("T")


def _decode_lenient(text: str | None, type_hint: Any = None) -> Any:
    # Payloads written by other SDKs are not always JSON; give the raw text then.
    try:
        return decode(text, type_hint)
    except PayloadError:
        return text


@dataclass(frozen=True)
class OrchestrationState:
    """A snapshot of an orchestration instance.

    ``input``, ``result`` and ``custom_status`` are the decoded payloads (decoded
    on first access); ``serialized_*`` are the JSON texts as stored. Times are
    aware UTC datetimes.
    """

    instance_id: str
    name: str
    runtime_status: OrchestrationStatus
    created_at: _dt.datetime
    last_updated_at: _dt.datetime
    serialized_input: str | None = None
    serialized_output: str | None = None
    serialized_custom_status: str | None = None
    failure_details: FailureDetails | None = None
    version: str | None = None
    execution_id: str | None = None
    parent_instance_id: str | None = None
    scheduled_start_at: _dt.datetime | None = None
    completed_at: _dt.datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @cached_property
    def input(self) -> Any:
        """The orchestration's input, decoded."""
        return _decode_lenient(self.serialized_input)

    @cached_property
    def result(self) -> Any:
        """The orchestration's output, decoded (``None`` until it completes)."""
        return _decode_lenient(self.serialized_output)

    @property
    def output(self) -> Any:
        """Same as :attr:`result`."""
        return self.result

    @cached_property
    def custom_status(self) -> Any:
        """The custom status the orchestrator set, decoded."""
        return _decode_lenient(self.serialized_custom_status)

    def get_input(self, expected_type: type[T] | None = None) -> Any:
        """The input, rebuilt as ``expected_type`` when given (a dataclass, say)."""
        return _decode_lenient(self.serialized_input, expected_type)

    def get_output(self, expected_type: type[T] | None = None) -> Any:
        """The output, rebuilt as ``expected_type`` when given."""
        return _decode_lenient(self.serialized_output, expected_type)

    def get_custom_status(self, expected_type: type[T] | None = None) -> Any:
        """The custom status, rebuilt as ``expected_type`` when given."""
        return _decode_lenient(self.serialized_custom_status, expected_type)

    @property
    def is_terminal(self) -> bool:
        """Whether the instance has finished (completed, failed, terminated, canceled)."""
        return self.runtime_status.is_terminal

    def raise_if_failed(self) -> None:
        """Raise :class:`~dtask_async.OrchestrationFailedError` if the instance failed."""
        if self.runtime_status is OrchestrationStatus.FAILED:
            what = self.failure_details.message if self.failure_details else "no details"
            raise OrchestrationFailedError(
                f"orchestration {self.instance_id!r} ({self.name}) failed: {what}",
                self.failure_details,
            )

    @classmethod
    def from_pb(cls, state: pb.OrchestrationState) -> OrchestrationState:
        """Build a state from the protocol message."""
        failure = None
        if state.HasField("failureDetails") and (
            state.failureDetails.errorType or state.failureDetails.errorMessage
        ):
            failure = failure_from_pb(state.failureDetails)
        return cls(
            instance_id=state.instanceId,
            name=state.name,
            runtime_status=OrchestrationStatus(state.orchestrationStatus),
            created_at=to_datetime(state.createdTimestamp),
            last_updated_at=to_datetime(state.lastUpdatedTimestamp),
            serialized_input=opt_str(state, "input"),
            serialized_output=opt_str(state, "output"),
            serialized_custom_status=opt_str(state, "customStatus"),
            failure_details=failure,
            version=opt_str(state, "version"),
            execution_id=opt_str(state, "executionId"),
            parent_instance_id=opt_str(state, "parentInstanceId"),
            scheduled_start_at=to_datetime(state.scheduledStartTimestamp)
            if state.HasField("scheduledStartTimestamp")
            else None,
            completed_at=to_datetime(state.completedTimestamp)
            if state.HasField("completedTimestamp")
            else None,
            tags=dict(state.tags),
        )


@dataclass(frozen=True)
class PurgeResult:
    """The outcome of a purge.

    Attributes:
        deleted_instance_count: how many instances were removed.
        is_complete: ``False`` when the server stopped early (call again to go
            on), ``True`` when it finished, ``None`` when it does not say.
    """

    deleted_instance_count: int
    is_complete: bool | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results and the token for the next (``None`` on the last page)."""

    items: list[T]
    continuation_token: str | None


@dataclass(frozen=True)
class OrchestrationQuery:
    """Filters for :meth:`AsyncDurableTaskClient.get_all_orchestration_states`."""

    created_time_from: _dt.datetime | None = None
    """Only instances created at or after this time."""

    created_time_to: _dt.datetime | None = None
    """Only instances created at or before this time."""

    runtime_status: list[OrchestrationStatus] | None = None
    """Only instances in one of these statuses."""

    instance_id_prefix: str | None = None
    """Only instances whose id starts with this."""

    fetch_inputs_and_outputs: bool = False
    """Whether to include inputs, outputs and custom status."""

    page_size: int = 100
    """How many instances to ask for per round trip."""


@dataclass(frozen=True)
class HistoryEvent:
    """One event of an orchestration's history.

    Attributes:
        event_id: the event's id (the task id for scheduling events, -1 for others).
        timestamp: when the event was recorded.
        kind: the event type as the protocol names it (``"executionStarted"``,
            ``"taskScheduled"``, ``"timerFired"`` ...).
        data: the event's fields, with the protocol's (camelCase) names.
    """

    event_id: int
    timestamp: _dt.datetime
    kind: str
    data: dict[str, Any]

    @classmethod
    def from_pb(cls, event: pb.HistoryEvent) -> HistoryEvent:
        """Build an event from the protocol message."""
        kind = event.WhichOneof("eventType") or "unknown"
        payload = getattr(event, kind) if kind != "unknown" else None
        data = (
            json_format.MessageToDict(payload, preserving_proto_field_name=True)
            if payload is not None
            else {}
        )
        return cls(
            event_id=event.eventId, timestamp=to_datetime(event.timestamp), kind=kind, data=data
        )

    def to_pb(self) -> pb.HistoryEvent:
        """The protocol message this event was built from (the inverse of :meth:`from_pb`).

        Raises:
            ValueError: ``kind`` is not an event type of the protocol, or ``data`` does
                not fit it.
        """
        message = pb.HistoryEvent(eventId=self.event_id, timestamp=to_timestamp(self.timestamp))
        if self.kind not in _EVENT_KINDS:
            raise ValueError(f"{self.kind!r} is not a history event type of the protocol")
        payload = getattr(message, self.kind)
        payload.SetInParent()  # an event without fields (orchestratorStarted) is still one
        try:
            json_format.ParseDict(self.data, payload)
        except json_format.ParseError as exc:
            raise ValueError(f"the data of a {self.kind!r} event does not fit it: {exc}") from exc
        return message


_EVENT_KINDS = frozenset(
    field.name for field in pb.HistoryEvent.DESCRIPTOR.oneofs_by_name["eventType"].fields
)


class HistoryStream(AsyncIterable[HistoryEvent], Awaitable[list[HistoryEvent]]):
    """What :meth:`AsyncDurableTaskClient.get_orchestration_history` returns: ``await``
    it for the whole history as a list, or iterate it with ``async for`` to take the
    events as they arrive. It can be used once, either way."""

    def __init__(self, events: AsyncIterator[HistoryEvent]) -> None:
        self._events = events
        self._used = False

    def _take(self) -> AsyncIterator[HistoryEvent]:
        if self._used:
            raise RuntimeError(
                "this history was already read; call get_orchestration_history() again"
            )
        self._used = True
        return self._events

    def __aiter__(self) -> AsyncIterator[HistoryEvent]:
        return self._take()

    def __await__(self) -> Generator[Any, None, list[HistoryEvent]]:
        return self._collect().__await__()

    async def _collect(self) -> list[HistoryEvent]:
        return [event async for event in self._take()]

    async def aclose(self) -> None:
        """End the stream early (iterating with ``async for`` to the end does it)."""
        self._used = True
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass(frozen=True)
class EntityMetadata:
    """A snapshot of an entity instance, as the server stores it.

    Attributes:
        id: the entity's id.
        last_modified: when its state last changed (aware UTC).
        backlog_queue_size: operations waiting to run, as far as the server says.
        locked_by: the critical section (or orchestration) holding its lock, if any.
        includes_state: whether the state was asked for.
        serialized_state: the state's JSON text (``None`` when not asked for or absent).
    """

    id: EntityInstanceId
    last_modified: _dt.datetime
    backlog_queue_size: int = 0
    locked_by: str | None = None
    includes_state: bool = False
    serialized_state: str | None = None

    @property
    def instance_id(self) -> str:
        """The entity's instance id, ``@name@key``."""
        return str(self.id)

    @cached_property
    def state(self) -> Any:
        """The state, decoded (``None`` when absent or not asked for)."""
        return _decode_lenient(self.serialized_state)

    def get_state(self, intended_type: type[T] | None = None) -> Any:
        """The state, rebuilt as ``intended_type`` when given (a dataclass, say)."""
        return _decode_lenient(self.serialized_state, intended_type)

    @classmethod
    def from_pb(cls, entity: pb.EntityMetadata, includes_state: bool) -> EntityMetadata:
        """Build metadata from the protocol message.

        Raises:
            InvalidInstanceIdError: the server sent an id not of the form ``@name@key``.
        """
        return cls(
            id=EntityInstanceId.parse(entity.instanceId),
            last_modified=to_datetime(entity.lastModifiedTime),
            backlog_queue_size=entity.backlogQueueSize,
            locked_by=opt_str(entity, "lockedBy") or None,
            includes_state=includes_state,
            serialized_state=opt_str(entity, "serializedState") if includes_state else None,
        )


@dataclass(frozen=True)
class EntityQuery:
    """Filters for :meth:`AsyncDurableTaskClient.get_all_entities`."""

    instance_id_starts_with: str | None = None
    """Only entities whose instance id starts with this (``"@counter@"``: every
    counter); the entity-name part is matched case-insensitively."""

    last_modified_from: _dt.datetime | None = None
    """Only entities modified at or after this time."""

    last_modified_to: _dt.datetime | None = None
    """Only entities modified before this time."""

    include_state: bool = True
    """Whether to fetch each entity's state."""

    include_transient: bool = False
    """Whether to include entities with no state yet (only messages or locks)."""

    page_size: int | None = None
    """How many entities to ask for per round trip (the server's default when ``None``)."""


@dataclass(frozen=True)
class CleanEntityStorageResult:
    """What :meth:`AsyncDurableTaskClient.clean_entity_storage` removed.

    Attributes:
        empty_entities_removed: entities with no state and nothing pending that
            were deleted.
        orphaned_locks_released: locks held by orchestrations that no longer
            exist that were released.
    """

    empty_entities_removed: int
    orphaned_locks_released: int
