"""Servers for tests and local development.

``EmbeddedBackend`` is the in-process server (``async with``); ``BackgroundBackend``
runs one in a thread for synchronous code.
"""

from ..backend import BackendOptions as BackendOptions, EmbeddedBackend as EmbeddedBackend
from ._background import BackgroundBackend as BackgroundBackend

__all__ = ("BackendOptions", "BackgroundBackend", "EmbeddedBackend")
