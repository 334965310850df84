"""Where `train` and `predict` may write: never over a file the ledger vouches for."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..fsutil import check_writable
from ..ledger import Ledger


def check_output(ledger: Ledger, path: Path, what: str, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse, before any work, an output that could not be written or must not be.

    Overwriting a committed dataset's source or a model that a `model.final`
    records would leave the record with nothing to check against (the data
    could no longer be verified, the job no longer audited), and overwriting an
    input destroys what is being read.
    """
    check_writable(path, what)
    if not path.exists():
        return
    target = path.resolve()
    if any(Path(p).resolve() == target for p in inputs):
        raise UsageError(f"{what} {path} is also the input: choose another file")
    for e in ledger.entries(kind="data.commit"):
        source = e.body.get("source")
        if source and "://" not in source and Path(source).resolve() == target:
            raise UsageError(
                f"{what} {path} is the source of committed dataset {e.body.get('name')!r} "
                "(writing there would destroy the data its commitment vouches for): "
                "choose another file"
            )
    for e in ledger.entries(kind="model.final"):
        recorded = e.body.get("path")
        if recorded and Path(recorded).resolve() == target:
            raise UsageError(
                f"{what} {path} holds the model of job {e.fields['job']} (model.final at "
                f"index {e.index}): choose another file"
            )
