"""Running one entity work item: a batch of operations on one entity.

Two work-item shapes carry the same thing:

* ``entityRequest`` (``EntityBatchRequest``): ``OperationRequest`` messages
  (operation, requestId, input). The backend knows where each response goes.
* ``entityRequestV2`` (``EntityRequest``): the operations as the history events
  that sent them, ``EntityOperationSignaled`` or ``EntityOperationCalled``. The
  result then lists one ``OperationInfo`` per operation, in order: its requestId
  and, for calls, the orchestration (instance and execution) to answer.

Both are answered with ``CompleteEntityTask(EntityBatchResult)``: one
``OperationResult`` per operation in order, the messages the successful
operations sent (``OperationAction``, numbered from 0), and the final state
(absent when the entity has no state).

Operations run one after another. An operation that raises is rolled back (its
state changes and messages are dropped) and fails alone; the next operation
starts from the last good state.
"""

from __future__ import annotations

import inspect
import logging
import typing
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidInstanceIdError, PayloadTooLargeError
from .._models import FailureDetails
from .._proto import pb
from .._protoutil import failure_from_exception, failure_to_pb, sv, to_timestamp, utcnow
from .._serialization import decode, encode
from ..entities._context import EntityBatch, EntityContext
from ..entities._entity import DurableEntity, instantiate, operation_table
from ..entities._id import EntityInstanceId
from ._registry import RegisteredEntity, Registry
from ._threads import ThreadRunner

__all__ = ("EntityWork", "oversized_result", "read_entity_work", "run_entity_batch")

logger = logging.getLogger(__name__)


class _OperationRefused(Exception):
    """An operation that fails before user code runs, with ready-made details."""

    def __init__(self, details: FailureDetails) -> None:
        super().__init__(details.message)
        self.details = details


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a batch."""

    name: str
    request_id: str
    input: str | None


@dataclass(frozen=True, slots=True)
class EntityWork:
    """An entity work item in either shape, read once."""

    instance_id: str
    state: str | None
    operations: list[Operation]
    infos: list[pb.OperationInfo] | None
    """For ``entityRequestV2``: where each operation's response goes."""
    token: str


def _text(message: Any, field: str) -> str | None:
    return str(getattr(message, field).value) if message.HasField(field) else None


def read_entity_work(item: pb.WorkItem) -> EntityWork:
    """Read an ``entityRequest`` or ``entityRequestV2`` work item."""
    if item.HasField("entityRequest"):
        batch = item.entityRequest
        operations = [
            Operation(op.operation, op.requestId, _text(op, "input")) for op in batch.operations
        ]
        return EntityWork(
            batch.instanceId, _text(batch, "entityState"), operations, None, item.completionToken
        )
    request = item.entityRequestV2
    operations = []
    infos: list[pb.OperationInfo] = []
    for event in request.operationRequests:
        kind = event.WhichOneof("eventType")
        if kind == "entityOperationSignaled":
            signaled = event.entityOperationSignaled
            operations.append(
                Operation(signaled.operation, signaled.requestId, _text(signaled, "input"))
            )
            infos.append(pb.OperationInfo(requestId=signaled.requestId))
        elif kind == "entityOperationCalled":
            called = event.entityOperationCalled
            operations.append(Operation(called.operation, called.requestId, _text(called, "input")))
            info = pb.OperationInfo(requestId=called.requestId)
            info.responseDestination.instanceId = called.parentInstanceId.value
            if called.HasField("parentExecutionId"):
                info.responseDestination.executionId.value = called.parentExecutionId.value
            infos.append(info)
        else:
            logger.warning(
                "entity %s: skipping an operation request of unexpected type %r",
                request.instanceId,
                kind,
            )
    return EntityWork(
        request.instanceId, _text(request, "entityState"), operations, infos, item.completionToken
    )


def _result(
    work: EntityWork,
    results: list[pb.OperationResult],
    state: str | None,
    actions: list[pb.OperationAction],
) -> pb.EntityBatchResult:
    result = pb.EntityBatchResult(
        results=results,
        actions=actions,
        entityState=sv(state),
        completionToken=work.token,
    )
    if work.infos is not None:
        result.operationInfos.extend(work.infos)
    return result


def _refuse_all(work: EntityWork, details: FailureDetails) -> pb.EntityBatchResult:
    # Nothing ran: the state stays as it was and nothing is sent.
    now = to_timestamp(utcnow())
    failure = failure_to_pb(details)
    results = [
        pb.OperationResult(
            failure=pb.OperationResultFailure(
                failureDetails=failure, startTimeUtc=now, endTimeUtc=now
            )
        )
        for _ in work.operations
    ]
    return _result(work, results, work.state, [])


def oversized_result(work: EntityWork, exc: PayloadTooLargeError) -> pb.EntityBatchResult:
    """The answer when the batch's result is too large to send: every operation fails."""
    return _refuse_all(
        work,
        FailureDetails(
            message=f"the results of the batch of operations on entity {work.instance_id} "
            f"are too large to send: {exc}",
            error_type="dtask_async.PayloadTooLargeError",
            is_non_retriable=True,
        ),
    )


async def run_entity_batch(
    registry: Registry, item: pb.WorkItem, threads: ThreadRunner
) -> tuple[EntityWork, pb.EntityBatchResult]:
    """Run every operation of an entity work item and build the result to send.

    Operations that raise, unknown entities and operations, and bad payloads
    all become failed operation results; only internal errors raise.
    """
    work = read_entity_work(item)
    try:
        entity_id = EntityInstanceId.parse(work.instance_id)
    except InvalidInstanceIdError as exc:
        return work, _refuse_all(
            work,
            FailureDetails(
                message=f"entity work item for {work.instance_id!r}: {exc}",
                error_type="dtask_async.InvalidInstanceIdError",
                is_non_retriable=True,
            ),
        )
    registered = registry.entities.get(entity_id.name)
    if registered is None:
        known = ", ".join(sorted(registry.entities)) or "none"
        return work, _refuse_all(
            work,
            FailureDetails(
                message=f"entity {entity_id.name!r} is not registered with this worker "
                f"(registered entities: {known})",
                error_type="EntityNotRegisteredError",
                is_non_retriable=True,
            ),
        )
    batch = EntityBatch(work.state)
    results = []
    for operation in work.operations:
        results.append(await _run_operation(registered, entity_id, operation, batch, threads))
    return work, _result(work, results, batch.state, batch.committed_actions())


async def _run_operation(
    registered: RegisteredEntity,
    entity_id: EntityInstanceId,
    operation: Operation,
    batch: EntityBatch,
    threads: ThreadRunner,
) -> pb.OperationResult:
    started = to_timestamp(utcnow())
    context = EntityContext._in_batch(entity_id, operation.name, batch)
    try:
        if registered.is_class:
            output = await _run_method(registered.target, context, operation, threads)
        else:
            output = await _run_function(registered, context, operation, threads)
        encoded = encode(output, f"result of operation {operation.name!r} on entity {entity_id}")
    except _OperationRefused as refused:
        batch.rollback()
        logger.warning("entity %s: %s", entity_id, refused)
        return _failed(refused.details, started)
    except Exception as exc:
        batch.rollback()
        logger.info(
            "entity %s: operation %r raised %s: %s",
            entity_id,
            operation.name,
            type(exc).__name__,
            exc,
        )
        return _failed(failure_from_exception(exc), started)
    batch.commit()
    success = pb.OperationResultSuccess(
        result=sv(encoded), startTimeUtc=started, endTimeUtc=to_timestamp(utcnow())
    )
    return pb.OperationResult(success=success)


def _failed(details: FailureDetails, started: Any) -> pb.OperationResult:
    failure = pb.OperationResultFailure(
        failureDetails=failure_to_pb(details),
        startTimeUtc=started,
        endTimeUtc=to_timestamp(utcnow()),
    )
    return pb.OperationResult(failure=failure)


async def _settle(value: Any) -> Any:
    # A plain function may hand back an awaitable (a coroutine made by a helper).
    if inspect.isawaitable(value):
        return await value
    return value


async def _run_function(
    registered: RegisteredEntity,
    context: EntityContext,
    operation: Operation,
    threads: ThreadRunner,
) -> Any:
    fn = registered.target

    def call() -> Any:
        value = decode(operation.input, registered.input_type)
        return fn(context, value) if registered.takes_input else fn(context)

    if registered.is_async:
        return await call()
    return await _settle(await threads.run(call))


@dataclass(frozen=True, slots=True)
class _Method:
    attribute: str
    is_async: bool
    takes_input: bool
    needs_input: bool
    input_type: Any


_METHODS: dict[tuple[type, str], _Method] = {}


def _method(cls: type, attribute: str) -> _Method:
    known = _METHODS.get((cls, attribute))
    if known is None:
        known = _METHODS[(cls, attribute)] = _describe_method(cls, attribute)
    return known


def _describe_method(cls: type, attribute: str) -> _Method:
    member = getattr(cls, attribute)
    is_async = inspect.iscoroutinefunction(member)
    try:
        parameters = list(inspect.signature(member).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    # Plain functions on the class list ``self`` first; the operation's input is
    # the parameter after it.
    static = isinstance(inspect.getattr_static(cls, attribute), staticmethod)
    if inspect.isfunction(member) and not static and parameters:
        parameters = parameters[1:]
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    first = positional[0] if positional else None
    input_type = None
    if first is not None:
        try:
            input_type = typing.get_type_hints(member).get(first.name)
        except Exception:  # unresolvable annotations: decode as plain JSON
            input_type = None
    return _Method(
        attribute=attribute,
        is_async=is_async,
        takes_input=first is not None or variadic,
        needs_input=first is not None and first.default is inspect.Parameter.empty,
        input_type=input_type,
    )


def _resolve(cls: type[DurableEntity], entity_id: EntityInstanceId, operation: str) -> _Method:
    table = operation_table(cls)
    attribute = operation if operation in table.values() else table.get(operation.lower())
    if attribute is None:
        known = ", ".join(sorted(table.values())) or "none"
        raise _OperationRefused(
            FailureDetails(
                message=f"entity {entity_id} (class {cls.__name__}) has no operation "
                f"{operation!r}; its operations are: {known}",
                error_type="EntityOperationNotFoundError",
                is_non_retriable=True,
            )
        )
    return _method(cls, attribute)


async def _run_method(
    cls: type[DurableEntity],
    context: EntityContext,
    operation: Operation,
    threads: ThreadRunner,
) -> Any:
    method = _resolve(cls, context.entity_id, operation.name)

    def call() -> Any:
        entity = instantiate(cls, context)
        bound = getattr(entity, method.attribute)
        if not method.takes_input:
            return bound()
        value = decode(operation.input, method.input_type)
        if value is None and not method.needs_input:
            return bound()
        return bound(value)

    if method.is_async:
        return await call()
    return await _settle(await threads.run(call))
