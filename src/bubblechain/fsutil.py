"""Atomic, durable file writes: a crash leaves the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    """Write `data` to `path` through a temporary file and a rename.

    With ``sync`` (the default) the file and its directory entry are on disk when
    this returns. Without it the write is still atomic (whole or absent), and
    durability is left to a later `fsync_paths` (a group commit).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync:
        fsync_dir(path.parent)


def fsync_paths(paths: Iterable[Path]) -> None:
    """Make files written without sync durable: each file, then each directory once."""
    dirs = set()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dirs.add(Path(path).parent)
    for d in dirs:
        fsync_dir(d)


def fsync_dir(path: Path) -> None:
    """Persist a directory entry (a rename or a new file) across power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
