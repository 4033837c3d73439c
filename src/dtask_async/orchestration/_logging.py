"""A logger for orchestrator code that stays silent while history is replayed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

__all__ = ("ReplaySafeLogger",)

if TYPE_CHECKING:
    _AdapterBase = logging.LoggerAdapter[logging.Logger]
else:  # LoggerAdapter is not subscriptable at runtime before Python 3.11
    _AdapterBase = logging.LoggerAdapter


class ReplaySafeLogger(_AdapterBase):
    """A ``logging.LoggerAdapter`` that drops records while the orchestrator replays.

    An orchestrator runs its code again from the start for every new history
    event; logging through this adapter writes each message once, when the code
    runs for the first time. Get one from ``ctx.logger`` or
    ``ctx.create_replay_safe_logger(logger)``.
    """

    def __init__(self, logger: logging.Logger, is_replaying: Callable[[], bool]) -> None:
        super().__init__(logger, {})
        self._is_replaying = is_replaying

    def isEnabledFor(self, level: int) -> bool:
        """Whether a record at ``level`` would be written now: never while replaying."""
        if self._is_replaying():
            return False
        return self.logger.isEnabledFor(level)
