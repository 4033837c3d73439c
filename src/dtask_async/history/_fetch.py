"""Making a history document from a server, through the client."""

from __future__ import annotations

from .._errors import OrchestrationNotFoundError
from ..client import AsyncDurableTaskClient
from ._document import HistoryDocument

__all__ = ("fetch_history_document",)


async def fetch_history_document(
    client: AsyncDurableTaskClient, instance_id: str, *, execution_id: str | None = None
) -> HistoryDocument:
    """The history document of one instance: its state and its whole history.

    Raises:
        OrchestrationNotFoundError: there is no such instance.
    """
    state = await client.get_orchestration_state(instance_id)
    if state is None:
        raise OrchestrationNotFoundError(
            f"there is no orchestration instance {instance_id!r}",
            code="NOT_FOUND",
            method="GetInstance",
        )
    events = await client.get_orchestration_history(instance_id, execution_id=execution_id)
    return HistoryDocument.from_events(instance_id, events, state=state)
