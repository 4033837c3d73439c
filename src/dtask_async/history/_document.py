"""The history JSON format: one orchestration instance's history in a file.

Written by ``dtask-async history ID --json`` and by history export, read by the
replayer (``dtask_async.testing.Replayer``, ``dtask-async replay FILE``). The format
is documented in ``docs/history-format.md``; this module is its one implementation.

A document is a JSON object::

    {
      "format": "dtask-async/history",
      "version": 1,
      "instance_id": "order-17",
      "exported_at": "2026-12-05T10:00:00.123456Z",
      "instance": {"name": "process_order", "runtime_status": "COMPLETED", ...},
      "events": [
        {"eventId": -1, "timestamp": "2026-12-05T09:59:58.100Z", "orchestratorStarted": {}},
        {"eventId": -1, "timestamp": "...", "executionStarted": {"name": "process_order", ...}},
        ...
      ]
    }

Each event is the protocol's ``HistoryEvent`` message in protobuf's canonical JSON
mapping (field names as in ``proto/orchestrator_service.proto``), so nothing of an
event is lost and any protobuf library can read it. ``instance`` is optional.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from .._errors import HistoryFormatError
from .._models import FailureDetails, OrchestrationStatus
from .._proto import pb
from .._protoutil import utcnow
from ..client._state import HistoryEvent, OrchestrationState

__all__ = (
    "FORMAT",
    "FORMAT_VERSION",
    "HistoryDocument",
    "HistoryFormatError",
    "InstanceInfo",
)

FORMAT = "dtask-async/history"
"""The value of a document's ``format`` field."""

FORMAT_VERSION = 1
"""The version this module writes; it reads this version and older ones."""


@dataclass(frozen=True)
class InstanceInfo:
    """What a document records of the instance besides its events (all optional).

    The names and meanings are those of :class:`~dtask_async.client.OrchestrationState`.
    """

    name: str | None = None
    runtime_status: OrchestrationStatus | None = None
    version: str | None = None
    execution_id: str | None = None
    parent_instance_id: str | None = None
    created_at: _dt.datetime | None = None
    last_updated_at: _dt.datetime | None = None
    completed_at: _dt.datetime | None = None
    scheduled_start_at: _dt.datetime | None = None
    serialized_input: str | None = None
    serialized_output: str | None = None
    serialized_custom_status: str | None = None
    failure_details: FailureDetails | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: OrchestrationState) -> InstanceInfo:
        """The instance facts of a state the client returned."""
        return cls(
            name=state.name,
            runtime_status=state.runtime_status,
            version=state.version,
            execution_id=state.execution_id,
            parent_instance_id=state.parent_instance_id,
            created_at=state.created_at,
            last_updated_at=state.last_updated_at,
            completed_at=state.completed_at,
            scheduled_start_at=state.scheduled_start_at,
            serialized_input=state.serialized_input,
            serialized_output=state.serialized_output,
            serialized_custom_status=state.serialized_custom_status,
            failure_details=state.failure_details,
            tags=dict(state.tags),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``instance`` object of a document (absent values left out)."""
        out: dict[str, Any] = {}
        for name in _INSTANCE_TEXT:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.runtime_status is not None:
            out["runtime_status"] = self.runtime_status.name
        for name in _INSTANCE_TIMES:
            value = getattr(self, name)
            if value is not None:
                out[name] = _time_text(value)
        if self.failure_details is not None:
            out["failure_details"] = _failure_to_dict(self.failure_details)
        if self.tags:
            out["tags"] = dict(self.tags)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InstanceInfo:
        """Read the ``instance`` object of a document.

        Raises:
            HistoryFormatError: a value has the wrong type or is not a known status.
        """
        if not isinstance(data, Mapping):
            raise HistoryFormatError("'instance' must be a JSON object")
        values: dict[str, Any] = {}
        for name in _INSTANCE_TEXT:
            if data.get(name) is not None:
                values[name] = _expect(data[name], str, f"instance.{name}")
        status = data.get("runtime_status")
        if status is not None:
            try:
                values["runtime_status"] = OrchestrationStatus[_expect(status, str, "status")]
            except KeyError:
                known = ", ".join(s.name for s in OrchestrationStatus)
                raise HistoryFormatError(
                    f"instance.runtime_status {status!r} is not one of {known}"
                ) from None
        for name in _INSTANCE_TIMES:
            if data.get(name) is not None:
                values[name] = _parse_time(data[name], f"instance.{name}")
        if data.get("failure_details") is not None:
            values["failure_details"] = _failure_from_dict(data["failure_details"])
        tags = data.get("tags")
        if tags is not None:
            if not isinstance(tags, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
            ):
                raise HistoryFormatError("instance.tags must map strings to strings")
            values["tags"] = dict(tags)
        return cls(**values)


_INSTANCE_TEXT = (
    "name",
    "version",
    "execution_id",
    "parent_instance_id",
    "serialized_input",
    "serialized_output",
    "serialized_custom_status",
)
_INSTANCE_TIMES = ("created_at", "last_updated_at", "completed_at", "scheduled_start_at")


@dataclass(frozen=True)
class HistoryDocument:
    """One instance's history, as the history JSON format holds it.

    Attributes:
        instance_id: the instance the events belong to.
        events: the history, oldest first.
        instance: what is known of the instance besides its events.
        exported_at: when the document was made.
    """

    instance_id: str
    events: list[HistoryEvent]
    instance: InstanceInfo = field(default_factory=InstanceInfo)
    exported_at: _dt.datetime | None = None

    @classmethod
    def from_events(
        cls,
        instance_id: str,
        events: Iterable[HistoryEvent | pb.HistoryEvent],
        *,
        state: OrchestrationState | None = None,
    ) -> HistoryDocument:
        """A document of ``events`` (the client's or protocol messages), made now."""
        converted = [e if isinstance(e, HistoryEvent) else HistoryEvent.from_pb(e) for e in events]
        info = InstanceInfo.from_state(state) if state is not None else InstanceInfo()
        return cls(instance_id=instance_id, events=converted, instance=info, exported_at=utcnow())

    def pb_events(self) -> list[pb.HistoryEvent]:
        """The events as protocol messages (what the replay engine takes)."""
        return [event.to_pb() for event in self.events]

    # -- JSON ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The document as JSON-ready values."""
        document: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "instance_id": self.instance_id,
        }
        if self.exported_at is not None:
            document["exported_at"] = _time_text(self.exported_at)
        instance = self.instance.to_dict()
        if instance:
            document["instance"] = instance
        document["events"] = [_event_to_dict(event) for event in self.events]
        return document

    def to_json(self, *, indent: int | None = 2) -> str:
        """The document as JSON text (``indent=None`` for one line)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> HistoryDocument:
        """Read a document from JSON-decoded values.

        Raises:
            HistoryFormatError: it is not a history document, is of a newer version,
                or an event does not fit the protocol; the message says which.
        """
        if not isinstance(data, Mapping):
            raise HistoryFormatError("a history document is a JSON object")
        if data.get("format") != FORMAT:
            raise HistoryFormatError(
                f"not a history document: 'format' is {data.get('format')!r}, expected {FORMAT!r}"
            )
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise HistoryFormatError(f"'version' must be a positive integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise HistoryFormatError(
                f"this history document is version {version}; this dtask-async reads "
                f"versions up to {FORMAT_VERSION}: upgrade dtask-async to read it"
            )
        instance_id = _expect(data.get("instance_id"), str, "instance_id")
        raw_events = data.get("events")
        if not isinstance(raw_events, list):
            raise HistoryFormatError("'events' must be a JSON array")
        events = []
        for index, raw in enumerate(raw_events):
            message = pb.HistoryEvent()
            try:
                json_format.ParseDict(raw, message)
            except (json_format.ParseError, TypeError, AttributeError) as exc:
                raise HistoryFormatError(f"events[{index}] is not a history event: {exc}") from exc
            if message.WhichOneof("eventType") is None:
                raise HistoryFormatError(f"events[{index}] has no event type")
            events.append(HistoryEvent.from_pb(message))
        exported = data.get("exported_at")
        return cls(
            instance_id=instance_id,
            events=events,
            instance=InstanceInfo.from_dict(data.get("instance") or {}),
            exported_at=_parse_time(exported, "exported_at") if exported is not None else None,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> HistoryDocument:
        """Read a document from JSON text.

        Raises:
            HistoryFormatError: the text is not JSON, or not a document this version reads.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise HistoryFormatError(f"not JSON: {exc}") from exc
        return cls.from_dict(data)

    # -- files -----------------------------------------------------------------------

    def write(self, path: str | Path) -> Path:
        """Write the document to ``path`` (UTF-8) and return the path."""
        target = Path(path)
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def read(cls, path: str | Path) -> HistoryDocument:
        """Read a document from a file.

        Raises:
            HistoryFormatError: the file is not a history document (the message names it).
            OSError: the file cannot be read.
        """
        source = Path(path)
        try:
            return cls.from_json(source.read_bytes())
        except HistoryFormatError as exc:
            raise HistoryFormatError(f"{source}: {exc}") from exc


def _event_to_dict(event: HistoryEvent) -> dict[str, Any]:
    # eventId first and always there (protobuf's mapping leaves a zero out).
    data = json_format.MessageToDict(event.to_pb(), preserving_proto_field_name=True)
    data.pop("eventId", None)
    return {"eventId": event.event_id, **data}


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise HistoryFormatError(f"{what} must be a {kind.__name__}, got {value!r}")
    return value


def _time_text(value: _dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_time(value: Any, what: str) -> _dt.datetime:
    text = _expect(value, str, what)
    try:
        parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HistoryFormatError(f"{what} is not an ISO 8601 time: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)


def _failure_to_dict(failure: FailureDetails) -> dict[str, Any]:
    out: dict[str, Any] = {"message": failure.message, "error_type": failure.error_type}
    if failure.stack_trace is not None:
        out["stack_trace"] = failure.stack_trace
    if failure.inner_failure is not None:
        out["inner_failure"] = _failure_to_dict(failure.inner_failure)
    if failure.is_non_retriable:
        out["is_non_retriable"] = True
    return out


def _failure_from_dict(data: Any) -> FailureDetails:
    if not isinstance(data, Mapping):
        raise HistoryFormatError("instance.failure_details must be a JSON object")
    inner = data.get("inner_failure")
    stack = data.get("stack_trace")
    return FailureDetails(
        message=_expect(data.get("message", ""), str, "failure_details.message"),
        error_type=_expect(data.get("error_type", ""), str, "failure_details.error_type"),
        stack_trace=_expect(stack, str, "failure_details.stack_trace") if stack else None,
        inner_failure=_failure_from_dict(inner) if inner is not None else None,
        is_non_retriable=bool(data.get("is_non_retriable", False)),
    )
