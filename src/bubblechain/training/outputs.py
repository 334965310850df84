"""Where `train` and `predict` may write: never over a file the ledger vouches for."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import UsageError
from ..fsutil import check_writable
from ..ledger import Ledger


def check_output(ledger: Ledger, path: Path, what: str, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, an output that could not be written or must not be.

    Writing into the ledger's home (but for its models folder), into or over a
    committed dataset's source, or over a model that a `model.final` records
    (wherever it was moved or copied) would leave the record with nothing to
    check against; writing over an input destroys what is being read.
    Paths are compared resolved, so relative paths and symlinks do not slip by.
    """
    check_writable(path, what)
    target = path.resolve()
    home = ledger.home.root.resolve()
    if _within(target, home) and not _within(target, (home / "models").resolve()):
        raise UsageError(f"{what} {path} is inside the ledger home {home}: choose another file")
    for e in ledger.entries(kind="data.commit"):
        source = e.body.get("source")
        if source and "://" not in source and _within(target, Path(source).resolve()):
            raise UsageError(
                f"{what} {path} is {'in ' if target != Path(source).resolve() else ''}the "
                f"source of committed dataset {e.body.get('name')!r} (writing there would "
                "change the data its commitment vouches for): choose another file"
            )
    if not path.is_file():
        return
    if any(Path(p).resolve() == target for p in inputs):
        raise UsageError(f"{what} {path} is also the input: choose another file")
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    for e in ledger.entries(kind="model.final"):
        if e.body.get("model_hash") == digest:
            raise UsageError(
                f"{what} {path} holds the model of job {e.fields['job']} (model.final at "
                f"index {e.index}): choose another file"
            )


def _within(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)
