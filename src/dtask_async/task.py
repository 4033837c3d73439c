"""What orchestrator and activity code imports: ``from dtask_async import task``.

Example::

    from dtask_async import task

    @task.activity
    def hello(ctx: task.ActivityContext, name: str) -> str:
        return f"Hello {name}!"

    @task.orchestration
    def greet(ctx: task.OrchestrationContext, name: str):
        greeting = yield ctx.call_activity(hello, input=name)
        return greeting
"""

from ._errors import TaskFailedError as TaskFailedError
from ._models import FailureDetails as FailureDetails, OrchestrationStatus as OrchestrationStatus
from .orchestration import (
    ActivityContext as ActivityContext,
    OrchestrationContext as OrchestrationContext,
    RetryPolicy as RetryPolicy,
    Task as Task,
    activity as activity,
    orchestration as orchestration,
    when_all as when_all,
    when_any as when_any,
)

__all__ = (
    # decorators
    "activity",
    "orchestration",
    # orchestrator API
    "OrchestrationContext",
    "RetryPolicy",
    "Task",
    "when_all",
    "when_any",
    # activity API
    "ActivityContext",
    # results and failures
    "FailureDetails",
    "OrchestrationStatus",
    "TaskFailedError",
)
