"""The embedded Durable Task backend: a grpc.aio server with SQLite storage.

Run it in-process (``async with EmbeddedBackend() as backend``) or as
``dtask-async emulator``; any Durable Task worker or client connects to its address.
"""

from ._options import BackendOptions as BackendOptions
from ._server import EmbeddedBackend as EmbeddedBackend
from ._validation import MAX_INSTANCE_ID_LENGTH as MAX_INSTANCE_ID_LENGTH

__all__ = (
    "BackendOptions",
    "EmbeddedBackend",
    "MAX_INSTANCE_ID_LENGTH",
)
