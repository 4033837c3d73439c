"""The public surface, pinned: a change here is a deliberate API change."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "dtask_async": {
        "__version__",
        "AsyncDurableTaskClient",
        "AsyncDurableTaskWorker",
        "DurableEnvironment",
        "OrchestrationState",
        "ChannelOptions",
        "ConcurrencyOptions",
        "ReconnectPolicy",
        "DurableTaskClient",
        "DurableTaskWorker",
        "OrchestrationContext",
        "Task",
        "TaskActivity",
        "FailureDetails",
        "OrchestrationStatus",
        "AuthenticationError",
        "ConnectionStringError",
        "DurableTaskError",
        "EntityLockError",
        "EntityOperationFailedError",
        "HistoryFormatError",
        "InvalidArgumentError",
        "InvalidInstanceIdError",
        "InvalidOperationError",
        "NonDeterminismError",
        "OrchestrationAlreadyExistsError",
        "OrchestrationFailedError",
        "OrchestrationNotFoundError",
        "OrchestrationStateError",
        "PayloadError",
        "PayloadTooLargeError",
        "RPCError",
        "RPCTimeoutError",
        "RegistrationError",
        "ServerUnavailableError",
        "TaskFailedError",
    },
    "dtask_async.task": {
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
    },
    "dtask_async.entities": {
        "DurableEntity",
        "EntityContext",
        "EntityInstanceId",
        "EntityLock",
        "EntityLockError",
        "EntityOperationFailedError",
    },
    "dtask_async.client": {
        "AsyncDurableTaskClient",
        "CleanEntityStorageResult",
        "EntityMetadata",
        "EntityQuery",
        "FailureDetails",
        "HistoryEvent",
        "HistoryStream",
        "OrchestrationQuery",
        "OrchestrationState",
        "OrchestrationStatus",
        "Page",
        "PurgeResult",
    },
    "dtask_async.worker": {
        "AsyncDurableTaskWorker",
        "ConcurrencyOptions",
        "ReconnectPolicy",
        "Registry",
    },
    "dtask_async.azuremanaged": {
        "AuthenticationType",
        "DEFAULT_RESOURCE_ID",
        "DEFAULT_TASK_HUB",
        "DurableTaskSchedulerClient",
        "DurableTaskSchedulerConnectionString",
        "DurableTaskSchedulerWorker",
        "LOCAL_EMULATOR_ENDPOINT",
    },
    "dtask_async.testing": {"BackendOptions", "BackgroundBackend", "EmbeddedBackend"},
    "dtask_async.history": {
        "FORMAT",
        "FORMAT_VERSION",
        "HistoryDocument",
        "HistoryFormatError",
        "InstanceInfo",
        "fetch_history_document",
    },
    "dtask_async.transport": {
        "AccessTokenProvider",
        "ChannelOptions",
        "Connection",
        "DEFAULT_ADDRESS",
        "DEFAULT_MAX_MESSAGE_BYTES",
        "DEFAULT_SCOPE",
        "MetadataInterceptor",
        "Target",
        "TokenCredentialLike",
        "USER_AGENT",
        "parse_address",
        "translate_rpc_error",
    },
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exported_names_are_pinned(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    assert len(module.__all__) == len(set(module.__all__)), "duplicate names in __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is listed but missing"


def test_the_seed_imports_work() -> None:
    from dtask_async import entities, task
    from dtask_async.azuremanaged import DurableTaskSchedulerClient, DurableTaskSchedulerWorker
    from dtask_async.azuremanaged.client import DurableTaskSchedulerClient as Client
    from dtask_async.azuremanaged.worker import DurableTaskSchedulerWorker as Worker
    from dtask_async.client import OrchestrationState, OrchestrationStatus
    from dtask_async.task import RetryPolicy

    assert Client is DurableTaskSchedulerClient
    assert Worker is DurableTaskSchedulerWorker
    assert task.OrchestrationStatus is OrchestrationStatus
    assert callable(task.when_all)
    assert callable(entities.EntityInstanceId)
    assert RetryPolicy is task.RetryPolicy
    assert OrchestrationState.__module__.startswith("dtask_async")


def test_errors_report_the_public_module() -> None:
    import dtask_async

    assert dtask_async.TaskFailedError.__module__ == "dtask_async"
    assert issubclass(dtask_async.ConnectionStringError, ValueError)
    assert issubclass(dtask_async.PayloadError, TypeError)
    assert issubclass(dtask_async.RPCTimeoutError, TimeoutError)
