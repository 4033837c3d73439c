import orchestrator_service_pb2 as _orchestrator_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelUp(_message.Message):
    __slots__ = ("open", "max_receive_bytes", "completions", "drain")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    MAX_RECEIVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    open: _orchestrator_service_pb2.GetWorkItemsRequest
    max_receive_bytes: int
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    drain: bool
    def __init__(self, open: _Optional[_Union[_orchestrator_service_pb2.GetWorkItemsRequest, _Mapping]] = ..., max_receive_bytes: _Optional[int] = ..., completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ..., drain: _Optional[bool] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("id", "orchestrator", "activity", "entity", "abandon_orchestrator", "abandon_activity", "abandon_entity")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATOR_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    ABANDON_ORCHESTRATOR_FIELD_NUMBER: _ClassVar[int]
    ABANDON_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    ABANDON_ENTITY_FIELD_NUMBER: _ClassVar[int]
    id: int
    orchestrator: _orchestrator_service_pb2.OrchestratorResponse
    activity: _orchestrator_service_pb2.ActivityResponse
    entity: _orchestrator_service_pb2.EntityBatchResult
    abandon_orchestrator: _orchestrator_service_pb2.AbandonOrchestrationTaskRequest
    abandon_activity: _orchestrator_service_pb2.AbandonActivityTaskRequest
    abandon_entity: _orchestrator_service_pb2.AbandonEntityTaskRequest
    def __init__(self, id: _Optional[int] = ..., orchestrator: _Optional[_Union[_orchestrator_service_pb2.OrchestratorResponse, _Mapping]] = ..., activity: _Optional[_Union[_orchestrator_service_pb2.ActivityResponse, _Mapping]] = ..., entity: _Optional[_Union[_orchestrator_service_pb2.EntityBatchResult, _Mapping]] = ..., abandon_orchestrator: _Optional[_Union[_orchestrator_service_pb2.AbandonOrchestrationTaskRequest, _Mapping]] = ..., abandon_activity: _Optional[_Union[_orchestrator_service_pb2.AbandonActivityTaskRequest, _Mapping]] = ..., abandon_entity: _Optional[_Union[_orchestrator_service_pb2.AbandonEntityTaskRequest, _Mapping]] = ...) -> None: ...

class ChannelDown(_message.Message):
    __slots__ = ("items", "outcomes", "max_receive_bytes")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    MAX_RECEIVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_orchestrator_service_pb2.WorkItem]
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    max_receive_bytes: int
    def __init__(self, items: _Optional[_Iterable[_Union[_orchestrator_service_pb2.WorkItem, _Mapping]]] = ..., outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ..., max_receive_bytes: _Optional[int] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("id", "code", "message")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    code: int
    message: str
    def __init__(self, id: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...
