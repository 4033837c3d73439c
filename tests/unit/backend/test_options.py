"""Backend options refuse values that cannot work."""

from __future__ import annotations

import pytest

from dtask_async.backend import BackendOptions


@pytest.mark.parametrize(
    "bad",
    [
        {"history_streaming_threshold": -1},
        {"history_chunk_size": 0},
        {"default_entity_concurrency": 0},
        {"lease_duration": 0},
    ],
)
def test_bad_values_are_refused(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        BackendOptions(**bad)  # type: ignore[arg-type]


def test_history_streaming_is_off_by_default() -> None:
    assert BackendOptions().history_streaming_threshold is None
    assert BackendOptions(history_streaming_threshold=0).history_streaming_threshold == 0
