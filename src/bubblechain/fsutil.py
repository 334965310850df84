"""Atomic, durable file writes: a crash leaves the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError


def write_atomic(path: Path | str, data: bytes, mode: int = 0o644, *, sync: bool = True) -> None:
    """Write `data` to `path` through a temporary file and a rename.

    With ``sync`` (the default) the file and its directory entry are on disk when
    this returns. Without it the write is still atomic (whole or absent), and
    durability is left to a later `fsync_paths` (a group commit). Plain `os` calls:
    a training worker writes one small artifact per task, and `tempfile` and
    buffered files doubled the cost of that write.
    """
    directory, name = os.path.split(os.fspath(path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync:
        fsync_dir(directory or ".")


def fsync_paths(paths: Iterable[Path | str], *, missing_ok: bool = False) -> None:
    """Make files written without sync durable: each file, then each directory once.

    ``missing_ok`` skips a path that does not exist. Plain `os` calls on strings: a
    ledger writer syncs every artifact a block names, and pathlib and a stat per
    file cost it more CPU than the syscalls.
    """
    dirs = set()
    for path in map(os.fspath, paths):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            if missing_ok:
                continue
            raise
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dirs.add(os.path.dirname(path) or ".")
    for d in dirs:
        fsync_dir(d)


def fsync_dir(path: Path | str) -> None:
    """Persist a directory entry (a rename or a new file) across power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(path: Path | str, what: str) -> None:
    """Refuse, before any work, an output path that could not be written.

    Its nearest existing ancestor must be a directory where a file can really be
    created (missing directories are created on writing): a probe file is made
    and removed, because permission bits do not tell (root, read-only mounts,
    /proc). The path itself must not be a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory, not a file name")
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{what} {path}: {parent} is not a directory")
    probe = parent / f".bubblechain-probe-{secrets.token_hex(6)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot create files in {parent} ({e.strerror})") from None
    with contextlib.suppress(OSError):
        os.unlink(probe)
