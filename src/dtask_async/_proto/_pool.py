"""The private descriptor pool that holds the protocol's messages.

The protocol declares no package, so registering it in protobuf's default pool
would clash with any other copy of it in the process (the ``durabletask``
package, for one). The generated modules register here instead. Well-known
types used by the protocol are registered in this pool too, and their message
classes are exported: code that fills a ``Timestamp`` or ``StringValue`` field by
assignment must use these classes, not those of ``google.protobuf.*_pb2``.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, cast

from google.protobuf import (
    descriptor_pool,
    duration_pb2,
    empty_pb2 as _empty_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

POOL = descriptor_pool.DescriptorPool()
for _module in (timestamp_pb2, duration_pb2, wrappers_pb2, _empty_pb2, struct_pb2):
    POOL.AddSerializedFile(_module.DESCRIPTOR.serialized_pb)


def _cls(full_name: str) -> type:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))


if TYPE_CHECKING:
    from google.protobuf.duration_pb2 import Duration
    from google.protobuf.empty_pb2 import Empty
    from google.protobuf.struct_pb2 import Struct, Value
    from google.protobuf.timestamp_pb2 import Timestamp
    from google.protobuf.wrappers_pb2 import BoolValue, Int32Value, StringValue
else:
    Timestamp = _cls("google.protobuf.Timestamp")
    Duration = _cls("google.protobuf.Duration")
    StringValue = _cls("google.protobuf.StringValue")
    Int32Value = _cls("google.protobuf.Int32Value")
    BoolValue = _cls("google.protobuf.BoolValue")
    Empty = _cls("google.protobuf.Empty")
    Value = _cls("google.protobuf.Value")
    Struct = _cls("google.protobuf.Struct")

# Stands in for ``google.protobuf.empty_pb2`` in the generated gRPC module.
empty_pb2 = cast(types.ModuleType, types.SimpleNamespace(Empty=Empty))

__all__ = (
    "POOL",
    "BoolValue",
    "Duration",
    "Empty",
    "Int32Value",
    "StringValue",
    "Struct",
    "Timestamp",
    "Value",
)
