"""Shared fixtures: a fresh ledger home, and the CLI run as a user runs it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bubblechain.cli.main import app
from bubblechain.ledger import Ledger

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A freshly initialised ledger home (3 witnesses, quorum 2)."""
    h = tmp_path / "home"
    Ledger.init(h).close()
    return h


@pytest.fixture
def cli():
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None):
        r = runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
        return r.exit_code, r.stdout, r.stderr

    return run


def run_cli_process(*args: str, cwd: Path | None = None, timeout: float = 120):
    """Run the real console entry point in a subprocess."""
    env = {k: v for k, v in os.environ.items() if k != "BUBBLECHAIN_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "bubblechain", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under `path` with its SHA-256: to assert nothing changed on disk."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
