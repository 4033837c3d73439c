"""Work items encoded by hand, so a dispatch never copies or re-serializes a history.

An active instance keeps its history both as messages and as the encoded
``OrchestratorRequest.pastEvents`` field (one length-delimited entry per event, in
order). A work item is then a few byte concatenations: protobuf allows a message to be
written field by field, and the work item stream sends these bytes unchanged.

Field numbers (see ``proto/orchestrator_service.proto``): ``WorkItem.orchestratorRequest``
= 1, ``activityRequest`` = 2, ``healthPing`` = 4, ``completionToken`` = 10;
``OrchestratorRequest.instanceId`` = 1, ``executionId`` = 2, ``pastEvents`` = 3,
``newEvents`` = 4; ``StringValue.value`` = 1.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = (
    "HEALTH_PING",
    "activity_work_item",
    "orchestrator_work_item",
    "past_event_entry",
)

_WORK_ITEM_ORCHESTRATOR = 0x0A  # field 1, length-delimited
_WORK_ITEM_ACTIVITY = 0x12  # field 2
_WORK_ITEM_TOKEN = 0x52  # field 10
_REQUEST_INSTANCE_ID = 0x0A  # field 1
_REQUEST_EXECUTION_ID = 0x12  # field 2
_REQUEST_PAST_EVENT = 0x1A  # field 3
_REQUEST_NEW_EVENT = 0x22  # field 4
_STRING_VALUE = 0x0A  # field 1

HEALTH_PING = b"\x22\x00"
"""A ``WorkItem`` whose ``healthPing`` (field 4) is set and empty."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + _varint(len(payload)) + payload


def past_event_entry(event: bytes) -> bytes:
    """One encoded ``pastEvents`` entry for a serialized ``HistoryEvent``."""
    return _field(_REQUEST_PAST_EVENT, event)


def orchestrator_work_item(
    instance_id: str,
    execution_id: str,
    past_events: bytes | bytearray,
    new_events: Iterable[bytes],
    token: str,
) -> bytes:
    """A serialized ``WorkItem`` carrying an ``OrchestratorRequest``."""
    request = bytearray(_field(_REQUEST_INSTANCE_ID, instance_id.encode()))
    request += _field(_REQUEST_EXECUTION_ID, _field(_STRING_VALUE, execution_id.encode()))
    request += past_events
    for event in new_events:
        request += _field(_REQUEST_NEW_EVENT, event)
    return (
        bytes((_WORK_ITEM_ORCHESTRATOR,))
        + _varint(len(request))
        + request
        + _field(_WORK_ITEM_TOKEN, token.encode())
    )


def activity_work_item(request: bytes, token: str) -> bytes:
    """A serialized ``WorkItem`` carrying a serialized ``ActivityRequest``."""
    return _field(_WORK_ITEM_ACTIVITY, request) + _field(_WORK_ITEM_TOKEN, token.encode())
