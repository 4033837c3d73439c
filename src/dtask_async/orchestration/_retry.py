"""Retry policies for activity and sub-orchestration calls.

Retries run inside the orchestration, deterministically: after a failed attempt
the engine starts a durable timer for the backoff delay and, when it fires,
schedules the call again. Time is orchestration time, never the wall clock.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

__all__ = ("RetryPolicy",)

_LONGEST_DELAY = 100 * 365 * 86400.0
"""A cap on computed delays, so a steep backoff cannot overflow ``timedelta``."""


def _interval(value: Any, what: str, *, optional: bool) -> timedelta | None:
    if value is None:
        if optional:
            return None
        raise ValueError(f"{what} is required (a timedelta or a number of seconds)")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(
            f"{what} must be a timedelta or a number of seconds, got {type(value).__name__}"
        )
    if not math.isfinite(seconds):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {seconds:g} seconds")
    return value if isinstance(value, timedelta) else timedelta(seconds=seconds)


class RetryPolicy:
    """How often, and how far apart, to retry a failed activity or sub-orchestration.

    Pass it as ``retry_policy=`` to ``call_activity`` or ``call_sub_orchestrator``.
    After attempt *n* fails, the next attempt starts after
    ``first_retry_interval * backoff_coefficient ** (n - 1)``, capped at
    ``max_retry_interval``. Retrying stops after ``max_number_of_attempts``
    attempts in all, once ``retry_timeout`` has passed since the first attempt
    (measured in orchestration time), or when a failure is marked non-retriable;
    the last failure is then raised in the orchestrator as ``TaskFailedError``.

    Args:
        first_retry_interval: delay before the first retry, as a ``timedelta`` or
            seconds.
        max_number_of_attempts: attempts in all, counting the first one (>= 1).
        backoff_coefficient: growth factor of the delay between retries (>= 1);
            ``None`` means 1.
        max_retry_interval: the longest delay between two attempts, or ``None``.
        retry_timeout: how long after the first attempt a failure may still be
            retried, or ``None`` for no limit.

    Raises:
        ValueError: a value is of the wrong type, negative, not finite, or out of range.
    """

    __slots__ = (
        "_backoff_coefficient",
        "_first_retry_interval",
        "_max_number_of_attempts",
        "_max_retry_interval",
        "_retry_timeout",
    )

    def __init__(
        self,
        first_retry_interval: timedelta | float,
        max_number_of_attempts: int,
        backoff_coefficient: float | None = 1.0,
        max_retry_interval: timedelta | float | None = None,
        retry_timeout: timedelta | float | None = None,
    ) -> None:
        first = _interval(first_retry_interval, "first_retry_interval", optional=False)
        assert first is not None
        if isinstance(max_number_of_attempts, bool) or not isinstance(max_number_of_attempts, int):
            raise ValueError(
                "max_number_of_attempts must be an int, got "
                f"{type(max_number_of_attempts).__name__}"
            )
        if max_number_of_attempts < 1:
            raise ValueError(
                f"max_number_of_attempts must be at least 1, got {max_number_of_attempts}"
            )
        if backoff_coefficient is None:
            backoff_coefficient = 1.0
        if isinstance(backoff_coefficient, bool) or not isinstance(
            backoff_coefficient, (int, float)
        ):
            raise ValueError(
                f"backoff_coefficient must be a number, got {type(backoff_coefficient).__name__}"
            )
        if not math.isfinite(backoff_coefficient) or backoff_coefficient < 1:
            raise ValueError(f"backoff_coefficient must be at least 1, got {backoff_coefficient!r}")
        self._first_retry_interval = first
        self._max_number_of_attempts = max_number_of_attempts
        self._backoff_coefficient = float(backoff_coefficient)
        self._max_retry_interval = _interval(
            max_retry_interval, "max_retry_interval", optional=True
        )
        self._retry_timeout = _interval(retry_timeout, "retry_timeout", optional=True)

    @property
    def first_retry_interval(self) -> timedelta:
        """Delay before the first retry."""
        return self._first_retry_interval

    @property
    def max_number_of_attempts(self) -> int:
        """Attempts in all, counting the first one."""
        return self._max_number_of_attempts

    @property
    def backoff_coefficient(self) -> float:
        """Growth factor of the delay between retries."""
        return self._backoff_coefficient

    @property
    def max_retry_interval(self) -> timedelta | None:
        """The longest delay between two attempts, if capped."""
        return self._max_retry_interval

    @property
    def retry_timeout(self) -> timedelta | None:
        """How long after the first attempt a failure may still be retried, if limited."""
        return self._retry_timeout

    def next_delay(
        self, attempts_made: int, started_at: datetime, now: datetime
    ) -> timedelta | None:
        """The delay before the next attempt, or ``None`` when retrying is over.

        Args:
            attempts_made: attempts so far, all failed (1 after the first failure).
            started_at: orchestration time of the first attempt.
            now: orchestration time of the latest failure.
        """
        if attempts_made >= self._max_number_of_attempts:
            return None
        if self._retry_timeout is not None and now >= started_at + self._retry_timeout:
            return None
        # Same arithmetic as the other Durable Task SDKs, so timers fire at equal times.
        try:
            seconds = (
                math.pow(self._backoff_coefficient, attempts_made - 1)
                * self._first_retry_interval.total_seconds()
            )
        except OverflowError:
            seconds = _LONGEST_DELAY
        if self._max_retry_interval is not None:
            seconds = min(seconds, self._max_retry_interval.total_seconds())
        return timedelta(seconds=min(seconds, _LONGEST_DELAY))

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(first_retry_interval={self._first_retry_interval!r}, "
            f"max_number_of_attempts={self._max_number_of_attempts}, "
            f"backoff_coefficient={self._backoff_coefficient!r}, "
            f"max_retry_interval={self._max_retry_interval!r}, "
            f"retry_timeout={self._retry_timeout!r})"
        )

    def _key(self) -> tuple[Any, ...]:
        return (
            self._first_retry_interval,
            self._max_number_of_attempts,
            self._backoff_coefficient,
            self._max_retry_interval,
            self._retry_timeout,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryPolicy):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())
