"""The committed stubs must be what ``nox -s protos`` makes from ``proto/`` today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("grpc_tools")


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_are_not_stale(tmp_path: Path) -> None:
    gen = _generator()
    written = gen.generate(tmp_path)
    stale = [
        path.name
        for path in written
        if path.read_text(encoding="utf-8")
        != (gen.OUTPUT_DIR / path.name).read_text(encoding="utf-8")
    ]
    assert not stale, f"regenerate with `nox -s protos`: stale stubs {stale}"
