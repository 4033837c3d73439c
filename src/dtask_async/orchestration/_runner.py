"""The replay engine's entry point: one runner per orchestration instance.

``execute`` replays a work item's whole history from the start. For the next work
item of the same instance, ``continue_with`` carries on from where the previous
episode stopped, without running the orchestrator code again from its first
line — but only when it can prove that the new history is exactly the old one
plus the backend's records of the actions it was given. Otherwise it returns
``None`` and the worker replays in full with a fresh runner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from .._proto import pb
from . import _actions
from ._context import DEFAULT_MAX_TIMER_INTERVAL, OrchestrationContext
from ._replay import Lookup, Replay

__all__ = ("EpisodeResult", "OrchestrationRunner")

logger = logging.getLogger(__name__)

_BOOKENDS = ("orchestratorStarted", "orchestratorCompleted")


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """What one orchestrator work item produced."""

    actions: list[pb.OrchestratorAction]
    """The actions for the backend, in the order the code produced them."""

    custom_status: str | None
    """The JSON-encoded custom status, or ``None`` when none is set."""

    is_complete: bool
    """Whether a ``CompleteOrchestrationAction`` is among the actions (completed,
    failed, terminated or continued-as-new)."""


def _copy(event: pb.HistoryEvent) -> pb.HistoryEvent:
    copy = pb.HistoryEvent()
    copy.CopyFrom(event)
    return copy


class OrchestrationRunner:
    """Replays one orchestration instance's history and returns the actions to take.

    The runner is pure and synchronous: no I/O, no clock, no event loop. Keep it
    between work items of the same instance to use :meth:`continue_with`.

    Args:
        instance_id: the orchestration instance id.
        lookup: returns the orchestrator function registered under a name, or
            ``None`` when there is none.
        max_timer_interval: timers further away than this are chained from
            shorter timers; ``None`` disables that.
    """

    def __init__(
        self,
        instance_id: str,
        lookup: Lookup,
        *,
        max_timer_interval: timedelta | None = DEFAULT_MAX_TIMER_INTERVAL,
    ) -> None:
        self._instance_id = instance_id
        self._lookup = lookup
        self._max_timer_interval = max_timer_interval
        self._replay: Replay | None = None
        self._consumed = 0
        self._last_event: pb.HistoryEvent | None = None

    @property
    def instance_id(self) -> str:
        """The instance this runner replays."""
        return self._instance_id

    @property
    def events_processed(self) -> int:
        """History events processed by the current execution's replay (for diagnostics)."""
        return 0 if self._replay is None else self._replay.processed

    def execute(
        self, past_events: Sequence[pb.HistoryEvent], new_events: Sequence[pb.HistoryEvent]
    ) -> EpisodeResult:
        """Replay the whole history and return this episode's actions.

        Any state from earlier calls is discarded first.

        Args:
            past_events: the history the instance already has (replayed with
                ``is_replaying`` true).
            new_events: the events of this work item.

        Returns:
            The actions, custom status and completion flag of the episode.
        """
        self.close()
        replay = Replay(
            OrchestrationContext(self._instance_id, max_timer_interval=self._max_timer_interval),
            self._lookup,
        )
        self._replay = replay
        replay.feed(past_events, 0, 0, replaying=True)
        replay.feed(new_events, 0, len(past_events), replaying=False)
        return self._finish_episode(past_events, new_events)

    def continue_with(
        self, past_events: Sequence[pb.HistoryEvent], new_events: Sequence[pb.HistoryEvent]
    ) -> EpisodeResult | None:
        """Process the next work item of the same execution incrementally.

        Succeeds when ``past_events`` is exactly the history processed so far
        followed only by the backend's records of the actions of the previous
        episode (each recorded once) and at most one ``OrchestratorStarted`` and
        one ``OrchestratorCompleted``. The result is then the same as
        :meth:`execute` on a fresh runner would give, at the cost of the new
        events only.

        Args:
            past_events: the history the instance has now.
            new_events: the events of this work item.

        Returns:
            The episode's result, or ``None`` when the runner cannot vouch for
            the history (another execution, events it did not expect, an
            orchestration already finished ...). The runner is then unusable:
            replay in full with a new one.
        """
        replay = self._replay
        refusal = "nothing executed yet" if replay is None else self._refusal(replay, past_events)
        if refusal is not None or replay is None:
            logger.debug("%s: full replay needed: %s", self._instance_id, refusal)
            self.close()
            return None
        replay.feed(past_events, self._consumed, 0, replaying=True)
        replay.feed(new_events, 0, len(past_events), replaying=False)
        return self._finish_episode(past_events, new_events)

    def close(self) -> None:
        """Drop the current replay state (closing the orchestrator's generator)."""
        if self._replay is not None:
            self._replay.close()
        self._replay = None
        self._consumed = 0
        self._last_event = None

    def _finish_episode(
        self, past_events: Sequence[pb.HistoryEvent], new_events: Sequence[pb.HistoryEvent]
    ) -> EpisodeResult:
        replay = self._replay
        assert replay is not None
        ctx = replay.ctx
        actions = replay.result_actions()
        self._consumed = len(past_events) + len(new_events)
        if new_events:
            self._last_event = _copy(new_events[-1])
        elif past_events:
            self._last_event = _copy(past_events[-1])
        return EpisodeResult(
            actions=actions,
            custom_status=ctx._custom_status,
            is_complete=ctx._outcome is not None,
        )

    def _refusal(self, replay: Replay, past: Sequence[pb.HistoryEvent]) -> str | None:
        """Why ``past`` cannot be continued incrementally, or ``None`` when it can."""
        ctx = replay.ctx
        if replay.aborted or ctx._outcome is not None:
            return "the execution has finished"
        if replay.started is None:
            return "no ExecutionStarted event seen yet"
        consumed = self._consumed
        if len(past) < consumed:
            return f"the history has {len(past)} events, fewer than the {consumed} processed"
        started_at, started = replay.started
        # Same execution (the ExecutionStarted event carries the execution id) and the
        # same history up to where the last episode stopped.
        if past[started_at] != started:
            return "another execution (its ExecutionStarted event differs)"
        if past[consumed - 1] != self._last_event:
            return f"history event {consumed - 1} differs from the one processed"
        unconfirmed = dict(ctx._actions)
        bookends: set[str] = set()
        for index in range(consumed, len(past)):
            event = past[index]
            kind = event.WhichOneof("eventType")
            if kind in _BOOKENDS:
                if kind in bookends:
                    return f"a second {kind} event after the last episode"
                bookends.add(kind)
                continue
            if kind not in _actions.RECORD_KINDS:
                return f"history event {index} ({kind}) is not a record of an action"
            action = unconfirmed.pop(event.eventId, None)
            if action is None or _actions.mismatch(action, event):
                return f"history event {index} ({kind}) does not record an action we emitted"
        if unconfirmed:
            return f"{len(unconfirmed)} emitted action(s) have no record in the history"
        return None
