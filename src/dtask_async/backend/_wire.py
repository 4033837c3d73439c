"""Work items encoded by hand, so a dispatch never copies or re-serializes a history.

An active instance keeps its history both as messages and as the encoded
``OrchestratorRequest.pastEvents`` field (one length-delimited entry per event, in
order). A work item is then a few byte concatenations: protobuf allows a message to be
written field by field, and the work item stream sends these bytes unchanged.

Field numbers (see ``proto/orchestrator_service.proto``): ``WorkItem.orchestratorRequest``
= 1, ``activityRequest`` = 2, ``healthPing`` = 4, ``completionToken`` = 10;
``OrchestratorRequest.instanceId`` = 1, ``executionId`` = 2, ``pastEvents`` = 3,
``newEvents`` = 4, ``requiresHistoryStreaming`` = 6; ``StringValue.value`` = 1;
``HistoryChunk.events`` = 1.

A ``pastEvents`` entry and a ``HistoryChunk.events`` entry differ only in their tag
byte, so ``StreamInstanceHistory`` cuts the same bytes into chunks without parsing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .._protoutil import length_delimited as _field, varint as _varint

__all__ = (
    "HEALTH_PING",
    "activity_work_item",
    "history_chunks",
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
_REQUEST_STREAMING = 0x30  # field 6, varint
_CHUNK_EVENT = 0x0A  # HistoryChunk field 1
_STRING_VALUE = 0x0A  # field 1

HEALTH_PING = b"\x22\x00"
"""A ``WorkItem`` whose ``healthPing`` (field 4) is set and empty."""

_DOWN_ITEM = 0x0A  # ChannelDown.items, field 1
_DOWN_OUTCOME = 0x12  # ChannelDown.outcomes, field 2
_DOWN_LIMIT = 0x18  # ChannelDown.max_receive_bytes, field 3, varint
_OUTCOME_ID = 0x08  # Outcome.id, field 1, varint
_OUTCOME_CODE = 0x10  # Outcome.code, field 2, varint
_OUTCOME_MESSAGE = 0x1A  # Outcome.message, field 3


def past_event_entry(event: bytes) -> bytes:
    """One encoded ``pastEvents`` entry for a serialized ``HistoryEvent``."""
    return _field(_REQUEST_PAST_EVENT, event)


def orchestrator_work_item(
    instance_id: str,
    execution_id: str,
    past_events: bytes | bytearray,
    new_events: Iterable[bytes],
    token: str,
    *,
    requires_history_streaming: bool = False,
) -> bytes:
    """A serialized ``WorkItem`` carrying an ``OrchestratorRequest``.

    With ``requires_history_streaming`` the request says so, and ``past_events``
    should be empty: the worker streams the history instead.
    """
    request = bytearray(_field(_REQUEST_INSTANCE_ID, instance_id.encode()))
    request += _field(_REQUEST_EXECUTION_ID, _field(_STRING_VALUE, execution_id.encode()))
    request += past_events
    for event in new_events:
        request += _field(_REQUEST_NEW_EVENT, event)
    if requires_history_streaming:
        request += bytes((_REQUEST_STREAMING, 1))
    return (
        bytes((_WORK_ITEM_ORCHESTRATOR,))
        + _varint(len(request))
        + request
        + _field(_WORK_ITEM_TOKEN, token.encode())
    )


def activity_work_item(request: bytes, token: str) -> bytes:
    """A serialized ``WorkItem`` carrying a serialized ``ActivityRequest``."""
    return _field(_WORK_ITEM_ACTIVITY, request) + _field(_WORK_ITEM_TOKEN, token.encode())


def history_chunks(past_events: bytes | bytearray, max_bytes: int) -> Iterator[bytes]:
    """Serialized ``HistoryChunk`` messages holding the events of ``past_events``.

    ``past_events`` is an encoded ``pastEvents`` field (see :func:`past_event_entry`).
    Each chunk holds whole events, in order, and is at most ``max_bytes`` long unless a
    single event is larger (it then travels alone).
    """
    data = bytes(past_events)
    end = len(data)
    chunk = bytearray()
    position = 0
    while position < end:
        # One entry: the tag byte, the payload's length as a varint, the payload.
        cursor = position + 1
        length = shift = 0
        while True:
            byte = data[cursor]
            cursor += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        entry_end = cursor + length
        if chunk and len(chunk) + entry_end - position > max_bytes:
            yield bytes(chunk)
            chunk = bytearray()
        chunk.append(_CHUNK_EVENT)
        chunk += data[position + 1 : entry_end]
        position = entry_end
    if chunk:
        yield bytes(chunk)


# -- the batched work channel (proto/work_channel.proto) ---------------------------------


def channel_item(item: bytes) -> bytes:
    """One encoded ``ChannelDown.items`` entry for a serialized ``WorkItem``."""
    return _field(_DOWN_ITEM, item)


def channel_outcome(completion_id: int, code: int = 0, message: str = "") -> bytes:
    """One encoded ``ChannelDown.outcomes`` entry: ``code`` 0 is OK."""
    body = bytes((_OUTCOME_ID,)) + _varint(completion_id)
    if code:
        body += bytes((_OUTCOME_CODE,)) + _varint(code)
    if message:
        body += _field(_OUTCOME_MESSAGE, message.encode("utf-8", "replace"))
    return _field(_DOWN_OUTCOME, body)


def channel_hello(max_receive_bytes: int) -> bytes:
    """The first ``ChannelDown`` of a call: the server's receive limit, nothing else."""
    return bytes((_DOWN_LIMIT,)) + _varint(max_receive_bytes)
