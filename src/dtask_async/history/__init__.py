"""The history JSON format: an orchestration instance's history as a file.

``dtask-async history ID --json`` and history export write it; the replayer reads it.
See ``docs/history-format.md``.
"""

from ._document import (
    FORMAT as FORMAT,
    FORMAT_VERSION as FORMAT_VERSION,
    HistoryDocument as HistoryDocument,
    HistoryFormatError as HistoryFormatError,
    InstanceInfo as InstanceInfo,
)
from ._fetch import fetch_history_document as fetch_history_document

__all__ = (
    "FORMAT",
    "FORMAT_VERSION",
    "HistoryDocument",
    "HistoryFormatError",
    "InstanceInfo",
    "fetch_history_document",
)
