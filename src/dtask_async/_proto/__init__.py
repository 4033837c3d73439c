"""Generated protocol stubs (private).

``orchestrator_service_pb2*`` and ``work_channel_pb2*`` are produced by ``nox -s protos`` from
``proto/orchestrator_service.proto`` and ``proto/work_channel.proto`` (the embedded
backend's batched work channel) and must not be edited by hand.
"""

from . import (
    orchestrator_service_pb2 as pb,
    orchestrator_service_pb2_grpc as pb_grpc,
    work_channel_pb2 as wc,
)
from ._pool import (
    BoolValue,
    Duration,
    Empty,
    Int32Value,
    StringValue,
    Struct,
    Timestamp,
    Value,
)

__all__ = (
    "BoolValue",
    "Duration",
    "Empty",
    "Int32Value",
    "StringValue",
    "Struct",
    "Timestamp",
    "Value",
    "pb",
    "pb_grpc",
    "wc",
)
