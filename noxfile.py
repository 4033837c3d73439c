"""Development sessions: ``nox -s tests lint typecheck``, ``nox -s protos``, ``nox -s bench``."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typecheck"]

PYTHON = ["3.11"]
GRPC_TOOLS = "grpcio-tools==1.85.1"
LINTED = ("src", "tests", "samples", "scripts", "benchmarks", "noxfile.py")


def _install(session: nox.Session, *extras: str) -> None:
    """Install the package, editable (with ``extras``), into the session's environment."""
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Unit and integration tests."""
    _install(session, "test")
    session.run("pytest", "tests/unit", "tests/integration", *session.posargs)


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """Faults, restarts, bad input, soak and fuzzing (tests/reliability)."""
    _install(session, "test")
    session.run(
        "pytest", "tests/reliability", "--junitxml=.test-results/reliability.xml", *session.posargs
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *LINTED)
    session.run("ruff", "format", "--check", *LINTED)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Strict mypy over the package (generated stubs excluded)."""
    _install(session)
    session.install("mypy>=1.11", "types-protobuf")
    session.run("mypy")


@nox.session(python=PYTHON)
def protos(session: nox.Session) -> None:
    """Regenerate ``src/dtask_async/_proto`` from ``proto/``."""
    session.install(GRPC_TOOLS)
    session.run("python", "scripts/gen_protos.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Side-by-side benchmark against the official SDK (prints a table of ratios)."""
    # Both SDKs' bytecode is compiled at install time (uv does not by default), so that
    # neither worker's peak RSS includes compiling its own source.
    session.install(".[test]", env={"UV_COMPILE_BYTECODE": "1"})
    session.run("python", "benchmarks/run.py", *session.posargs)
