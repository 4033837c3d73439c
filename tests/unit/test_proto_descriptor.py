"""The wire contract: our .proto must describe exactly the protocol's messages."""

from __future__ import annotations

import difflib

import pytest
from google.protobuf import descriptor_pb2, text_format

from dtask_async._proto import pb, pb_grpc

reference = pytest.importorskip("durabletask.internal.orchestrator_service_pb2")


def _file_proto(descriptor: object) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    descriptor.CopyToProto(proto)  # type: ignore[attr-defined]
    proto.ClearField("name")  # where the file sits differs; everything else must not
    return proto


def test_descriptor_matches_the_reference_protocol() -> None:
    ours = _file_proto(pb.DESCRIPTOR)
    theirs = _file_proto(reference.DESCRIPTOR)
    if ours != theirs:
        diff = "".join(
            difflib.unified_diff(
                text_format.MessageToString(theirs).splitlines(keepends=True),
                text_format.MessageToString(ours).splitlines(keepends=True),
                fromfile="reference",
                tofile="proto/orchestrator_service.proto",
                n=6,
            )
        )
        pytest.fail(f"our descriptor differs from the protocol:\n{diff}")


def test_no_package_so_method_paths_are_bare() -> None:
    assert pb.DESCRIPTOR.package == ""
    service = pb.DESCRIPTOR.services_by_name["TaskHubSidecarService"]
    assert service.full_name == "TaskHubSidecarService"
    assert "StartInstance" in service.methods_by_name
    assert hasattr(pb_grpc, "TaskHubSidecarServiceStub")


def test_messages_cross_the_wire_both_ways() -> None:
    ours = pb.HistoryEvent(eventId=7)
    ours.taskScheduled.name = "charge"
    ours.taskScheduled.input.value = '{"amount": 5}'
    ours.timestamp.seconds = 1_700_000_000
    theirs = reference.HistoryEvent.FromString(ours.SerializeToString())
    assert theirs.taskScheduled.name == "charge"
    assert theirs.taskScheduled.input.value == '{"amount": 5}'
    assert pb.HistoryEvent.FromString(theirs.SerializeToString()) == ours


def test_both_copies_of_the_protocol_load_in_one_process() -> None:
    # Our stubs live in a private descriptor pool, so importing them next to the
    # reference package (which uses the default pool) must not clash.
    assert pb.HistoryEvent.DESCRIPTOR.file.pool is not reference.HistoryEvent.DESCRIPTOR.file.pool
