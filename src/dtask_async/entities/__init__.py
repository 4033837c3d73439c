"""Durable entities: small stateful objects addressed by id.

``from dtask_async import entities``.

An entity is a function ``(ctx, input)`` or a :class:`DurableEntity` subclass,
registered with ``worker.add_entity(...)``. Operations on one entity run one at a
time; an operation that raises is rolled back (its state changes and the
messages it sent are dropped). Orchestrations use ``ctx.call_entity``,
``ctx.signal_entity`` and ``ctx.lock_entities``; clients use
``client.signal_entity`` and ``client.get_entity``.
"""

from .._errors import (
    EntityLockError as EntityLockError,
    EntityOperationFailedError as EntityOperationFailedError,
)
from ._context import EntityContext as EntityContext
from ._entity import DurableEntity as DurableEntity
from ._id import EntityInstanceId as EntityInstanceId
from ._lock import EntityLock as EntityLock

__all__ = (
    "DurableEntity",
    "EntityContext",
    "EntityInstanceId",
    "EntityLock",
    "EntityLockError",
    "EntityOperationFailedError",
)
