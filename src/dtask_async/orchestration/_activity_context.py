"""What an activity function receives as its first argument."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ("ActivityContext",)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityContext:
    """Where an activity execution comes from.

    The worker builds one for each execution and passes it as the activity
    function's first argument.
    """

    orchestration_id: str
    """The instance id of the orchestration that scheduled the activity."""

    task_id: int
    """The call's sequence number in that orchestration; a retried call keeps its number."""

    task_name: str
    """The name the activity was called by."""
