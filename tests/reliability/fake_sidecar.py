"""A scripted ``TaskHubSidecarService`` for driving a real worker through faults.

Each ``GetWorkItems`` call (a *connection*) follows the next :class:`Plan` of the
script: it sends the plan's work items, then ends the stream as the plan says (cleanly,
with a status, with undecodable bytes) or keeps it open. Completions and abandons are
recorded whichever connection they belong to, so a test can check that the worker
finished the work handed out on a stream that was reset under it.

Messages are built with the classes of ``dtask_async._proto`` (the stubs live in a
private descriptor pool: the well-known types come from there too).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import grpc

from dtask_async._proto import Empty, pb

END = "end"
"""Return from the handler: the stream ends with status OK."""

GARBAGE = "garbage"
"""Send bytes that do not decode as a ``WorkItem``, then end cleanly."""

RAISE = "raise"
"""Raise an exception in the handler (the worker sees UNKNOWN)."""

OPEN = "open"
"""Keep the stream open (health pings every 0.2 s) until the server stops."""

SILENT = "silent"
"""Keep the stream open and send nothing more, ever (a connection that died unseen)."""


@dataclass
class Plan:
    """What one ``GetWorkItems`` connection does."""

    items: list[pb.WorkItem] = field(default_factory=list)
    ending: str | grpc.StatusCode = OPEN
    """:data:`END`, :data:`GARBAGE`, :data:`RAISE`, :data:`OPEN`, :data:`SILENT`, or a
    status code to abort with."""


def activity_item(token: str, *, name: str = "double", value: int = 0) -> pb.WorkItem:
    """An activity work item calling ``name`` with ``value``."""
    item = pb.WorkItem(completionToken=token)
    request = item.activityRequest
    request.name = name
    request.taskId = 1
    request.orchestrationInstance.instanceId = f"instance-{token}"
    request.input.value = str(value)
    return item


def orchestrator_item(
    token: str,
    instance_id: str,
    past: list[pb.HistoryEvent],
    new: list[pb.HistoryEvent],
) -> pb.WorkItem:
    """An orchestrator work item with the given history."""
    item = pb.WorkItem(completionToken=token)
    request = item.orchestratorRequest
    request.instanceId = instance_id
    request.pastEvents.extend(past)
    request.newEvents.extend(new)
    return item


class FakeSidecar:
    """The scripted server. Use ``async with FakeSidecar(plans) as fake``."""

    def __init__(self, plans: list[Plan], *, then: Plan | None = None) -> None:
        self._plans = list(plans)
        self._then = then or Plan()
        self.connections = 0
        self.connected_at: list[float] = []
        """When each connection arrived (event loop time)."""
        self.completions: dict[str, Any] = {}
        """Completion token -> the worker's response (activity, orchestrator or entity)."""
        self.duplicates: list[str] = []
        """Tokens completed more than once."""
        self.abandoned: list[str] = []
        self._changed = asyncio.Event()
        self._server: Any = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> FakeSidecar:
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((self._handlers(),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._server.stop(0)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_plan(self, plan: Plan) -> None:
        """Queue a plan for a later connection."""
        self._plans.append(plan)

    async def wait_for(self, tokens: list[str], timeout: float = 15) -> None:
        """Wait until every token in ``tokens`` was completed or abandoned."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not all(t in self.completions or t in self.abandoned for t in tokens):
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                missing = [t for t in tokens if t not in self.completions]
                raise AssertionError(
                    f"no completion for {missing} after {timeout} s "
                    f"({self.connections} connections)"
                )
            with anyio.move_on_after(remaining):
                await self._changed.wait()

    # -- the service -----------------------------------------------------------------

    def _handlers(self) -> Any:
        unary = grpc.unary_unary_rpc_method_handler

        def handler(fn: Any, request_type: Any, response_type: Any) -> Any:
            return unary(
                fn,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )

        methods = {
            "Hello": handler(self._hello, Empty, Empty),
            "GetWorkItems": grpc.unary_stream_rpc_method_handler(
                self._get_work_items,
                request_deserializer=pb.GetWorkItemsRequest.FromString,
                response_serializer=lambda item: (
                    item if isinstance(item, bytes) else item.SerializeToString()
                ),
            ),
            "CompleteActivityTask": handler(
                self._complete, pb.ActivityResponse, pb.CompleteTaskResponse
            ),
            "CompleteOrchestratorTask": handler(
                self._complete, pb.OrchestratorResponse, pb.CompleteTaskResponse
            ),
            "CompleteEntityTask": handler(
                self._complete, pb.EntityBatchResult, pb.CompleteTaskResponse
            ),
        }
        for name, request_type, response_type in (
            (
                "AbandonTaskActivityWorkItem",
                pb.AbandonActivityTaskRequest,
                pb.AbandonActivityTaskResponse,
            ),
            (
                "AbandonTaskOrchestratorWorkItem",
                pb.AbandonOrchestrationTaskRequest,
                pb.AbandonOrchestrationTaskResponse,
            ),
            (
                "AbandonTaskEntityWorkItem",
                pb.AbandonEntityTaskRequest,
                pb.AbandonEntityTaskResponse,
            ),
        ):
            methods[name] = handler(self._abandon_as(response_type), request_type, response_type)
        return grpc.method_handlers_generic_handler("TaskHubSidecarService", methods)

    async def _hello(self, request: Any, context: Any) -> Any:
        return Empty()

    async def _get_work_items(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self.connections += 1
        self.connected_at.append(asyncio.get_running_loop().time())
        plan = self._plans.pop(0) if self._plans else self._then
        self._changed.set()
        for item in plan.items:
            yield item
        if plan.ending == END:
            return
        if plan.ending == GARBAGE:
            yield b"\xff\xff\xff\xff not a work item"
            return
        if plan.ending == RAISE:
            raise RuntimeError("the fake server failed")
        if plan.ending == SILENT:
            await asyncio.Event().wait()
        if plan.ending == OPEN:
            for _ in itertools.count():
                await asyncio.sleep(0.2)
                yield pb.WorkItem(healthPing=pb.HealthPing())
        assert isinstance(plan.ending, grpc.StatusCode)
        await context.abort(plan.ending, f"the fake server ends this stream with {plan.ending}")

    async def _complete(self, request: Any, context: Any) -> Any:
        token = request.completionToken
        if token in self.completions:
            self.duplicates.append(token)
        self.completions[token] = request
        self._changed.set()
        return pb.CompleteTaskResponse()

    def _abandon_as(self, response_type: Any) -> Any:
        async def abandon(request: Any, context: Any) -> Any:
            self.abandoned.append(request.completionToken)
            self._changed.set()
            return response_type()

        return abandon
