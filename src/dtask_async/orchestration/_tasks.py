"""Durable tasks: what an orchestrator yields (or awaits) to wait for something.

A task is created by the orchestration context (an activity call, a timer, an
external event ...) or by combining tasks with :func:`when_all` / :func:`when_any`.
The replay engine completes tasks as history events arrive; it never runs an
event loop. ``Task.__await__`` yields the task itself, so ``async def``
orchestrators are driven with ``coroutine.send()`` exactly like generators.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any, Generic, TypeVar

from .._errors import OrchestrationStateError, TaskFailedError

__all__ = ("CompletableTask", "Task", "WhenAllTask", "WhenAnyTask", "when_all", "when_any")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_PENDING, _SUCCEEDED, _FAILED = 0, 1, 2


class Task(Generic[T_co]):
    """Something an orchestrator waits for: yield it (``result = yield task``) or await it.

    Tasks are created by :class:`OrchestrationContext` methods and by
    :func:`when_all` / :func:`when_any`; user code never constructs them.
    Tasks compare by identity, so ``winner == approval_task`` tells which task won
    a :func:`when_any`.
    """

    __slots__ = ("_exception", "_label", "_parents", "_result", "_state")

    def __init__(self, label: str = "task") -> None:
        self._state = _PENDING
        self._result: Any = None
        self._exception: TaskFailedError | None = None
        self._parents: list[_CompositeTask[Any]] = []
        self._label = label

    @property
    def is_complete(self) -> bool:
        """Whether the task has finished, successfully or not."""
        return self._state != _PENDING

    @property
    def is_failed(self) -> bool:
        """Whether the task has finished with a failure."""
        return self._state == _FAILED

    def get_result(self) -> T_co:
        """The task's result.

        Raises:
            TaskFailedError: the task failed (the same error an orchestrator
                yielding the task would see).
            OrchestrationStateError: the task has not finished yet.
        """
        if self._state == _SUCCEEDED:
            return self._result  # type: ignore[no-any-return]
        if self._state == _FAILED:
            assert self._exception is not None
            raise self._exception
        raise OrchestrationStateError(f"{self._label} has not completed yet; yield it first")

    @property
    def result(self) -> T_co:
        """Alias of :meth:`get_result`."""
        return self.get_result()

    def get_exception(self) -> TaskFailedError | None:
        """The failure of a failed task, or ``None`` when it has not failed (or not finished)."""
        return self._exception

    def __await__(self) -> Generator[Task[T_co], Any, T_co]:
        # The engine receives the task from coroutine.send() and sends its result back.
        result = yield self
        return result  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        state = ("pending", "completed", "failed")[self._state]
        return f"<{type(self).__name__} {self._label} {state}>"

    # -- engine side -----------------------------------------------------------

    def _settle(self, state: int, result: Any, exception: TaskFailedError | None) -> None:
        if self._state != _PENDING:
            return
        self._state = state
        self._result = result
        self._exception = exception
        parents, self._parents = self._parents, []
        for parent in parents:
            parent._child_done(self)


class CompletableTask(Task[T_co]):
    """A task the engine completes directly (activities, timers, events ...)."""

    __slots__ = ()

    def _complete(self, result: Any) -> None:
        self._settle(_SUCCEEDED, result, None)

    def _fail(self, exception: TaskFailedError) -> None:
        self._settle(_FAILED, None, exception)


class _CompositeTask(Task[T_co]):
    __slots__ = ("_children",)

    def __init__(self, children: Iterable[Task[Any]], label: str) -> None:
        super().__init__(label)
        self._children = list(children)
        for child in self._children:
            if not isinstance(child, Task):
                raise TypeError(
                    f"{label} takes durable tasks, got {type(child).__name__}: {child!r:.80}"
                )

    def _watch(self, children: Iterable[Task[Any]]) -> None:
        for child in children:
            if self not in child._parents:
                child._parents.append(self)

    def _child_done(self, child: Task[Any]) -> None:
        raise NotImplementedError


class WhenAllTask(_CompositeTask[list[T]]):
    """Completes when every child task has finished (see :func:`when_all`)."""

    __slots__ = ("_first_failure", "_remaining")

    def __init__(self, children: Iterable[Task[T]]) -> None:
        super().__init__(children, "when_all")
        self._first_failure: TaskFailedError | None = None
        pending: dict[int, Task[Any]] = {}
        for child in self._children:
            if not child.is_complete:
                pending[id(child)] = child
            elif child.is_failed and self._first_failure is None:
                self._first_failure = child._exception
        self._remaining = len(pending)
        if self._remaining:
            self._watch(pending.values())
        else:
            self._finish()

    def _child_done(self, child: Task[Any]) -> None:
        if child.is_failed and self._first_failure is None:
            self._first_failure = child._exception
        self._remaining -= 1
        if self._remaining == 0:
            self._finish()

    def _finish(self) -> None:
        if self._first_failure is not None:
            self._settle(_FAILED, None, self._first_failure)
        else:
            self._settle(_SUCCEEDED, [child._result for child in self._children], None)


class WhenAnyTask(_CompositeTask[Task[T]]):
    """Completes with the first child task that finishes (see :func:`when_any`)."""

    __slots__ = ()

    def __init__(self, children: Iterable[Task[T]]) -> None:
        super().__init__(children, "when_any")
        if not self._children:
            raise ValueError("when_any() needs at least one task")
        for child in self._children:
            if child.is_complete:
                self._settle(_SUCCEEDED, child, None)
                return
        self._watch(self._children)

    def _child_done(self, child: Task[Any]) -> None:
        if self.is_complete:
            return
        for other in self._children:
            if self in other._parents:
                other._parents.remove(self)
        self._settle(_SUCCEEDED, child, None)


def when_all(tasks: Iterable[Task[T]]) -> Task[list[T]]:
    """A task that finishes when every task in ``tasks`` has finished.

    Its result is the list of the tasks' results, in the order given (a task
    listed twice appears twice). If any task fails, the combined task fails with
    the first failure that happened, once all tasks have finished — the same
    rule as the other Durable Task SDKs.

    Args:
        tasks: the tasks to wait for; an empty collection completes at once with ``[]``.

    Returns:
        The combined task, to be yielded or awaited.
    """
    return WhenAllTask(tasks)


def when_any(tasks: Iterable[Task[T]]) -> Task[Task[T]]:
    """A task that finishes as soon as any task in ``tasks`` finishes.

    Its result is the winning task itself (not its result), so an orchestrator
    can tell which one won and then read ``winner.get_result()``. A failed task
    wins too. The other tasks keep running; their results are ignored unless
    something else waits for them.

    Args:
        tasks: the tasks to race; at least one.

    Returns:
        The combined task, to be yielded or awaited.

    Raises:
        ValueError: ``tasks`` is empty.
    """
    return WhenAnyTask(tasks)
