"""Connecting to the Azure Durable Task Scheduler (DTS) and its emulator.

``from dtask_async.azuremanaged import DurableTaskSchedulerClient,
DurableTaskSchedulerWorker``; both take a connection string such as
``Endpoint=https://NAME.REGION.durabletask.io;Authentication=DefaultAzure;TaskHub=HUB``,
the keyword form (``host_address=``, ``taskhub=``, ``token_credential=``), or
nothing for the local emulator.
"""

from ._client import DurableTaskSchedulerClient as DurableTaskSchedulerClient
from ._connection_string import (
    DEFAULT_RESOURCE_ID as DEFAULT_RESOURCE_ID,
    AuthenticationType as AuthenticationType,
    DurableTaskSchedulerConnectionString as DurableTaskSchedulerConnectionString,
)
from ._settings import (
    DEFAULT_TASK_HUB as DEFAULT_TASK_HUB,
    LOCAL_EMULATOR_ENDPOINT as LOCAL_EMULATOR_ENDPOINT,
)
from ._worker import DurableTaskSchedulerWorker as DurableTaskSchedulerWorker

__all__ = (
    # client and worker
    "DurableTaskSchedulerClient",
    "DurableTaskSchedulerWorker",
    # connection strings
    "AuthenticationType",
    "DurableTaskSchedulerConnectionString",
    # defaults
    "DEFAULT_RESOURCE_ID",
    "DEFAULT_TASK_HUB",
    "LOCAL_EMULATOR_ENDPOINT",
)
