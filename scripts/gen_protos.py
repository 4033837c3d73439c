"""Regenerate the committed protobuf and gRPC stubs from ``proto/``.

Usage: ``python scripts/gen_protos.py [OUTPUT_DIR]`` (``nox -s protos`` runs it).

The protocol has no package, so its message names (``HistoryEvent``,
``OrchestrationState`` ...) would collide in protobuf's default descriptor pool
with any other copy of the protocol loaded in the same process, such as the
``durabletask`` package. The generated modules are therefore rewritten to
register into a private pool (``dtask_async._proto._pool``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTO_FILES = ("orchestrator_service.proto", "work_channel.proto")
OUTPUT_DIR = ROOT / "src" / "dtask_async" / "_proto"
GENERATED = (
    "orchestrator_service_pb2.py",
    "orchestrator_service_pb2.pyi",
    "orchestrator_service_pb2_grpc.py",
    "work_channel_pb2.py",
    "work_channel_pb2.pyi",
)


def _replace_once(text: str, old: str, new: str, filename: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"expected exactly one {old!r} in generated {filename}")
    return text.replace(old, new)


def _rewrite_pb2(text: str) -> str:
    text = _replace_once(
        text,
        "from google.protobuf.internal import builder as _builder\n",
        "from google.protobuf.internal import builder as _builder\n"
        "from ._pool import POOL as _POOL\n",
        "pb2",
    )
    return _replace_once(
        text,
        "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(",
        "DESCRIPTOR = _POOL.AddSerializedFile(",
        "pb2",
    )


def _rewrite_grpc(text: str) -> str:
    text = _replace_once(
        text,
        "import orchestrator_service_pb2 as orchestrator__service__pb2\n",
        "from . import orchestrator_service_pb2 as orchestrator__service__pb2\n",
        "pb2_grpc",
    )
    return _replace_once(
        text,
        "from google.protobuf import empty_pb2 as google_dot_protobuf_dot_empty__pb2\n",
        "from ._pool import empty_pb2 as google_dot_protobuf_dot_empty__pb2\n",
        "pb2_grpc",
    )


def _rewrite_channel_pb2(text: str) -> str:
    text = _replace_once(
        text,
        "import orchestrator_service_pb2 as orchestrator__service__pb2\n",
        "from . import orchestrator_service_pb2 as orchestrator__service__pb2\n",
        "work_channel_pb2",
    )
    return _rewrite_pb2(text)


def generate(output_dir: Path) -> list[Path]:
    """Generate the stubs into ``output_dir`` and return the written paths."""
    from grpc_tools import protoc  # imported here: a build-time dependency only

    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(protoc.__file__).parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(PROTO_DIR / name) for name in PROTO_FILES),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed; see the messages above")
        rewrites = {
            "orchestrator_service_pb2.py": _rewrite_pb2,
            "orchestrator_service_pb2_grpc.py": _rewrite_grpc,
            "work_channel_pb2.py": _rewrite_channel_pb2,
        }
        written = []
        for name in GENERATED:
            text = (Path(tmp) / name).read_text(encoding="utf-8")
            text = rewrites.get(name, lambda t: t)(text)
            target = output_dir / name
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else OUTPUT_DIR
    for path in generate(out):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
