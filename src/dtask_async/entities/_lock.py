"""The object an orchestrator holds while it has entities locked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._id import EntityInstanceId

__all__ = ("EntityLock",)


class EntityLock:
    """The critical section granted by ``ctx.lock_entities(...)``.

    Use it as a context manager: the entities stay locked by this orchestration
    until the ``with`` block is left, then the locks are released::

        with (yield ctx.lock_entities([account_a, account_b])):
            ...  # only this orchestration can operate on the two accounts here

    Locks still held when the orchestration ends are released then. User code
    never constructs it.
    """

    __slots__ = ("_entity_ids", "_release")

    def __init__(self, entity_ids: Sequence[EntityInstanceId], release: Callable[[], None]) -> None:
        self._entity_ids = tuple(entity_ids)
        self._release: Callable[[], None] | None = release

    @property
    def entity_ids(self) -> tuple[EntityInstanceId, ...]:
        """The locked entities, in the order the locks were taken."""
        return self._entity_ids

    @property
    def is_released(self) -> bool:
        """Whether the locks have been released."""
        return self._release is None

    def release(self) -> None:
        """Release the locks now (leaving the ``with`` block does it). Safe to call twice."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> EntityLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self.is_released else "held"
        return f"<EntityLock {state} {[str(e) for e in self._entity_ids]}>"
