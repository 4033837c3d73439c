"""The client- and worker-facing operations of a hub, one function per RPC.

Each validates its request, changes the hub's state, lets the dispatcher push any work
that became ready, and returns once the change is durable.
"""

from __future__ import annotations

import logging
import uuid

import grpc

from .._proto import BoolValue, StringValue, pb
from . import _events as ev
from ._dispatch import ACTIVITY, ORCHESTRATION
from ._episode import apply_episode
from ._hub import PENDING, RUNNING, SUSPENDED, Hub
from ._model import ActivityLease, Instance, OrchestrationLease, Txn
from ._queries import list_instance_ids, matches_purge_filter, query_instances
from ._validation import RpcFailure, check_instance_id, check_name

__all__ = (
    "abandon",
    "complete_activity",
    "complete_orchestration",
    "get_instance",
    "list_ids",
    "purge",
    "query",
    "raise_event",
    "restart",
    "rewind",
    "start_instance",
    "suspend_or_resume",
    "terminate",
)

logger = logging.getLogger(__name__)


def _optional(message: object, field: str) -> StringValue | None:
    if message.HasField(field):  # type: ignore[attr-defined]
        value: StringValue = getattr(message, field)
        return value
    return None


def _instance(hub: Hub, instance_id: str) -> str:
    check_instance_id(instance_id)
    hub.get(instance_id)
    return instance_id


# -- instances -------------------------------------------------------------------------


async def start_instance(hub: Hub, request: pb.CreateInstanceRequest) -> str:
    """``StartInstance``: create an instance, or replace one the reuse policy allows."""
    instance_id = request.instanceId or uuid.uuid4().hex
    check_instance_id(instance_id)
    check_name(request.name, what="orchestration name")
    existing = hub.instances.get(instance_id)
    if existing is not None:
        replaceable = frozenset(request.orchestrationIdReusePolicy.replaceableStatus)
        allowed = existing.status in replaceable if replaceable else existing.terminal
        if not allowed:
            listed = ", ".join(sorted(ev.status_name(s) for s in replaceable)) or (
                "finished instances only (the default)"
            )
            raise RpcFailure(
                grpc.StatusCode.ALREADY_EXISTS,
                f"orchestration instance {instance_id!r} already exists with status "
                f"{ev.status_name(existing.status)}; the id reuse policy replaces {listed}",
            )
    now = ev.now_us()
    scheduled = None
    if request.HasField("scheduledStartTimestamp"):
        scheduled = request.scheduledStartTimestamp
    txn = Txn()
    hub.create(
        txn,
        now,
        instance_id=instance_id,
        name=request.name,
        version=_optional(request, "version"),
        input=_optional(request, "input"),
        tags=dict(request.tags),
        scheduled_start=scheduled,
        trace_context=request.parentTraceContext
        if request.HasField("parentTraceContext")
        else None,
        execution_id=request.executionId.value if request.HasField("executionId") else None,
    )
    hub.dispatcher.pump()
    await hub.commit(txn)
    return instance_id


async def get_instance(hub: Hub, request: pb.GetInstanceRequest) -> pb.GetInstanceResponse:
    check_instance_id(request.instanceId)
    instance = hub.instances.get(request.instanceId)
    response = (
        hub.snapshot(instance, request.getInputsAndOutputs)
        if instance is not None
        else pb.GetInstanceResponse(exists=False)
    )
    await hub.commit(Txn())
    return response


async def raise_event(hub: Hub, request: pb.RaiseEventRequest) -> None:
    instance = hub.get(_instance(hub, request.instanceId))
    check_name(request.name, what="event name")
    if instance.terminal:
        # Nothing would ever read it: say so rather than drop it silently.
        raise RpcFailure(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"cannot raise event {request.name!r} to orchestration instance "
            f"{instance.instance_id!r}: it finished with status {ev.status_name(instance.status)}",
        )
    txn = Txn()
    hub.enqueue(
        instance, ev.event_raised(ev.now_us(), request.name, _optional(request, "input")), txn
    )
    hub.dispatcher.pump()
    await hub.commit(txn)


async def terminate(hub: Hub, request: pb.TerminateRequest) -> None:
    instance = hub.get(_instance(hub, request.instanceId))
    txn = Txn()
    hub.terminate(instance, _optional(request, "output"), request.recursive, txn, ev.now_us())
    hub.dispatcher.pump()
    await hub.commit(txn)


async def suspend_or_resume(
    hub: Hub, instance_id: str, reason: StringValue | None, *, suspend: bool
) -> None:
    instance = hub.get(_instance(hub, instance_id))
    if instance.terminal:
        raise RpcFailure(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"cannot {'suspend' if suspend else 'resume'} orchestration instance "
            f"{instance_id!r}: it finished with status {ev.status_name(instance.status)}",
        )
    txn = Txn()
    now = ev.now_us()
    if suspend and instance.status != SUSPENDED:
        hub.set_status(instance, SUSPENDED, txn, now)
        hub.enqueue(
            instance, ev.execution_suspended_or_resumed(now, suspend=True, reason=reason), txn
        )
    elif not suspend and instance.status == SUSPENDED:
        hub.set_status(instance, RUNNING if instance.history else PENDING, txn, now)
        hub.enqueue(
            instance, ev.execution_suspended_or_resumed(now, suspend=False, reason=reason), txn
        )
    hub.dispatcher.pump()
    await hub.commit(txn)


async def restart(hub: Hub, request: pb.RestartInstanceRequest) -> str:
    instance = hub.get(_instance(hub, request.instanceId))
    if not instance.terminal:
        raise RpcFailure(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"cannot restart orchestration instance {request.instanceId!r}: it is still "
            f"{ev.status_name(instance.status)}; only finished instances can be restarted",
        )
    new_id = uuid.uuid4().hex if request.restartWithNewInstanceId else instance.instance_id
    state = instance.state
    txn = Txn()
    hub.create(
        txn,
        ev.now_us(),
        instance_id=new_id,
        name=state.name,
        version=_optional(state, "version"),
        input=_optional(state, "input"),
        tags=dict(state.tags),
    )
    hub.dispatcher.pump()
    await hub.commit(txn)
    return new_id


async def rewind(hub: Hub, request: pb.RewindInstanceRequest) -> None:
    instance = hub.get(_instance(hub, request.instanceId))

    def check() -> None:
        if instance.status != pb.ORCHESTRATION_STATUS_FAILED:
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cannot rewind orchestration instance {request.instanceId!r}: its status is "
                f"{ev.status_name(instance.status)}; only FAILED instances can be rewound",
            )

    check()
    if instance.history is None:
        loaded = await hub.store.read(hub.store.read_history(instance.instance_id))
        if hub.instances.get(instance.instance_id) is not instance:
            raise RpcFailure(
                grpc.StatusCode.NOT_FOUND,
                f"orchestration instance {request.instanceId!r} was purged or replaced",
            )
        check()
        if instance.history is None:
            hub.adopt_history(instance, loaded)
    txn = Txn()
    hub.rewind(instance, _optional(request, "reason"), None, txn, ev.now_us())
    hub.dispatcher.pump()
    await hub.commit(txn)


async def purge(hub: Hub, request: pb.PurgeInstancesRequest) -> pb.PurgeInstancesResponse:
    txn = Txn()
    kind = request.WhichOneof("request")
    count = 0
    if kind == "instanceId":
        instance = hub.instances.get(check_instance_id(request.instanceId))
        if instance is not None:
            if not instance.terminal:
                raise RpcFailure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"cannot purge orchestration instance {request.instanceId!r}: it is "
                    f"{ev.status_name(instance.status)}; terminate it first",
                )
            count = _purge_tree(hub, instance, request.recursive, txn)
    elif kind == "purgeInstanceFilter":
        purge_filter = request.purgeInstanceFilter
        for instance in [
            i for i in hub.instances.values() if matches_purge_filter(i, purge_filter)
        ]:
            if hub.instances.get(instance.instance_id) is instance:
                count += _purge_tree(hub, instance, request.recursive, txn)
    elif kind == "instanceBatch":
        for instance_id in request.instanceBatch.instanceIds:
            instance = hub.instances.get(instance_id)
            if instance is not None and instance.terminal:
                count += _purge_tree(hub, instance, request.recursive, txn)
    else:
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            "PurgeInstancesRequest names no instanceId, purgeInstanceFilter or instanceBatch",
        )
    hub.dispatcher.pump()
    await hub.commit(txn)
    return pb.PurgeInstancesResponse(deletedInstanceCount=count, isComplete=BoolValue(value=True))


def _purge_tree(hub: Hub, instance: Instance, recursive: bool, txn: Txn) -> int:
    count = 0
    if recursive:
        for child in list(hub.children_of(instance)):
            if child.terminal:
                count += _purge_tree(hub, child, True, txn)
    hub.remove(instance, txn)
    return count + 1


async def query(hub: Hub, request: pb.QueryInstancesRequest) -> pb.QueryInstancesResponse:
    instances, token = query_instances(hub.instances.values(), request.query)
    payloads = request.query.fetchInputsAndOutputs
    response = pb.QueryInstancesResponse(
        orchestrationState=[hub.snapshot(i, payloads).orchestrationState for i in instances]
    )
    if token is not None:
        response.continuationToken.value = token
    await hub.commit(Txn())
    return response


async def list_ids(hub: Hub, request: pb.ListInstanceIdsRequest) -> pb.ListInstanceIdsResponse:
    ids, token = list_instance_ids(hub.instances.values(), request)
    response = pb.ListInstanceIdsResponse(instanceIds=ids)
    if token is not None:
        response.lastInstanceKey.value = token
    await hub.commit(Txn())
    return response


# -- work items ------------------------------------------------------------------------


async def complete_orchestration(hub: Hub, response: pb.OrchestratorResponse) -> None:
    lease = hub.dispatcher.find(response.completionToken, ORCHESTRATION)
    assert isinstance(lease, OrchestrationLease)
    instance = lease.instance
    if response.instanceId and response.instanceId != instance.instance_id:
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"completion token {response.completionToken!r} was issued for instance "
            f"{instance.instance_id!r}, not {response.instanceId!r}",
        )
    hub.dispatcher.finish(lease)
    txn = Txn()
    if hub.instances.get(instance.instance_id) is instance and not instance.terminal:
        apply_episode(hub, lease, response, txn, ev.now_us())
    hub.dispatcher.offer_instance(instance)
    hub.dispatcher.pump()
    await hub.commit(txn)


async def complete_activity(hub: Hub, response: pb.ActivityResponse) -> None:
    lease = hub.dispatcher.find(response.completionToken, ACTIVITY)
    assert isinstance(lease, ActivityLease)
    item = lease.item
    if response.instanceId and (
        response.instanceId != item.instance_id or response.taskId != item.task_id
    ):
        raise RpcFailure(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"completion token {response.completionToken!r} was issued for task "
            f"{item.task_id} of instance {item.instance_id!r}, not task {response.taskId} "
            f"of {response.instanceId!r}",
        )
    hub.dispatcher.finish(lease)
    txn = Txn()
    if not item.cancelled:
        item.cancelled = True
        hub.activities.pop(item.item_id, None)
        txn.exec(hub.store.sql.delete_activity, (item.item_id,))
        owner = hub.instances.get(item.instance_id)
        if owner is not None and owner.activities.get(item.task_id) is item:
            del owner.activities[item.task_id]
        if owner is not None and owner.generation == item.generation and not owner.terminal:
            now = ev.now_us()
            if response.HasField("failureDetails"):
                event = ev.task_failed(now, item.task_id, response.failureDetails)
            else:
                event = ev.task_completed(now, item.task_id, _optional(response, "result"))
            hub.enqueue(owner, event, txn)
    hub.dispatcher.pump()
    await hub.commit(txn)


def abandon(hub: Hub, token: str, kind: str) -> None:
    """Give a leased work item back: it is ready for any stream again at once."""
    lease = hub.dispatcher.find(token, kind)
    hub.dispatcher.abandon(lease)
    hub.dispatcher.pump()
