"""Short names for connection-string programs: ``DurableTaskClient``,
``DurableTaskWorker`` and class-based ``TaskActivity``.

These let a program written as ``from dtask_async import DurableTaskClient,
DurableTaskWorker, TaskActivity`` run as is: a worker constructed with
``orchestrators=`` and ``activities=`` dictionaries starts when its ``async
with`` block is entered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .azuremanaged import DurableTaskSchedulerClient, DurableTaskSchedulerWorker

__all__ = ("DurableTaskClient", "DurableTaskWorker", "TaskActivity")


class TaskActivity:
    """Base class for class-based activities and orchestrators.

    Override ``run(self, context, input)``; it may be ``async def``. Register an
    instance: ``worker.add_activity(HelloActivity())`` registers it as
    ``"HelloActivity"``, or pass it in ``DurableTaskWorker(activities={...})``.
    """

    async def run(self, context: Any, input: Any) -> Any:
        """Do the work; the return value is the result."""
        raise NotImplementedError(f"{type(self).__name__}.run is not implemented")


class DurableTaskClient(DurableTaskSchedulerClient):
    """A client from a connection string: ``DurableTaskClient(connection_string, task_hub)``.

    The same as :class:`~dtask_async.azuremanaged.DurableTaskSchedulerClient`.
    """


class DurableTaskWorker(DurableTaskSchedulerWorker):
    """A worker from a connection string, with its registrations given up front.

    Args:
        connection_string: ``Endpoint=...;Authentication=...;TaskHub=...``; ``None``
            means the local emulator.
        task_hub_name: the task hub, when the string has none.
        orchestrators: orchestrators by name (functions or ``TaskActivity``-style
            objects with a ``run`` method).
        activities: activities by name.
        entities: entities by name.
        **kwargs: the other options of
            :class:`~dtask_async.azuremanaged.DurableTaskSchedulerWorker`.

    When any registrations are given, entering ``async with`` starts the worker.
    """

    def __init__(
        self,
        connection_string: Any = None,
        task_hub_name: str | None = None,
        *,
        orchestrators: Mapping[str, Any] | None = None,
        activities: Mapping[str, Any] | None = None,
        entities: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(connection_string, task_hub_name, **kwargs)
        for name, orchestrator in (orchestrators or {}).items():
            self.add_orchestrator(orchestrator, name=name)
        for name, activity in (activities or {}).items():
            self.add_activity(activity, name=name)
        for name, entity in (entities or {}).items():
            self.add_entity(entity, name=name)
        self._autostart = bool(orchestrators or activities or entities)

    async def __aenter__(self) -> DurableTaskWorker:
        await super().__aenter__()
        if self._autostart:
            await self.start()
        return self
