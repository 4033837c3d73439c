"""Running one activity work item: decode, call, encode, report."""

from __future__ import annotations

import logging
from typing import Any

from .._errors import PayloadError
from .._models import FailureDetails
from .._proto import pb
from .._protoutil import failure_from_exception, failure_to_pb
from .._serialization import decode, encode
from ..orchestration import ActivityContext
from ._registry import Registry
from ._threads import ThreadRunner

__all__ = ("run_activity",)

logger = logging.getLogger(__name__)


def _failed(
    request: pb.ActivityRequest, token: str, details: FailureDetails
) -> pb.ActivityResponse:
    return pb.ActivityResponse(
        instanceId=request.orchestrationInstance.instanceId,
        taskId=request.taskId,
        failureDetails=failure_to_pb(details),
        completionToken=token,
    )


async def run_activity(
    registry: Registry,
    request: pb.ActivityRequest,
    token: str,
    threads: ThreadRunner,
) -> pb.ActivityResponse:
    """Execute an activity and build the response to send back.

    User exceptions, unknown names and unencodable results all become a failed
    response that names what went wrong; nothing here raises for those.
    """
    name = request.name
    instance_id = request.orchestrationInstance.instanceId
    registered = registry.activities.get(name)
    if registered is None:
        known = ", ".join(sorted(registry.activities)) or "none"
        return _failed(
            request,
            token,
            FailureDetails(
                message=f"activity {name!r} is not registered with this worker "
                f"(registered activities: {known})",
                error_type="ActivityNotRegisteredError",
                is_non_retriable=True,
            ),
        )
    context = ActivityContext(orchestration_id=instance_id, task_id=request.taskId, task_name=name)
    try:
        raw = request.input.value if request.HasField("input") else None
        value = decode(raw, registered.input_type)
        args: tuple[Any, ...] = (context, value) if registered.takes_input else (context,)
        if registered.is_async:
            result = await registered.fn(*args)
        else:
            result = await threads.run(registered.fn, *args)
        encoded = encode(result, f"result of activity {name!r}")
    except PayloadError as exc:
        logger.warning("activity %r of %r: %s", name, instance_id, exc)
        return _failed(request, token, failure_from_exception(exc))
    except Exception as exc:
        logger.info("activity %r of %r raised %s: %s", name, instance_id, type(exc).__name__, exc)
        return _failed(request, token, failure_from_exception(exc))
    response = pb.ActivityResponse(
        instanceId=instance_id, taskId=request.taskId, completionToken=token
    )
    if encoded is not None:
        response.result.value = encoded
    return response
