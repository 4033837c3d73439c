"""The names ``dtask_async.task`` and ``dtask_async.orchestration`` export, pinned."""

from __future__ import annotations

import dtask_async.orchestration as orchestration
from dtask_async import task


def test_task_module_exports() -> None:
    assert sorted(task.__all__) == [
        "ActivityContext",
        "FailureDetails",
        "OrchestrationContext",
        "OrchestrationStatus",
        "RetryPolicy",
        "Task",
        "TaskFailedError",
        "activity",
        "orchestration",
        "when_all",
        "when_any",
    ]
    for name in task.__all__:
        assert getattr(task, name) is not None


def test_orchestration_package_exports() -> None:
    assert sorted(orchestration.__all__) == [
        "ActivityContext",
        "DEFAULT_MAX_TIMER_INTERVAL",
        "EpisodeResult",
        "OrchestrationContext",
        "OrchestrationRunner",
        "ReplaySafeLogger",
        "RetryPolicy",
        "Task",
        "activity",
        "orchestration",
        "when_all",
        "when_any",
    ]
    for name in orchestration.__all__:
        assert getattr(orchestration, name) is not None


def test_task_failed_error_is_the_package_error() -> None:
    from dtask_async import TaskFailedError

    assert task.TaskFailedError is TaskFailedError
    assert issubclass(task.TaskFailedError, Exception)
