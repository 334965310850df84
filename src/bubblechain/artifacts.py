"""A content-addressed store for blobs referenced by hash (parameters, partials, manifests).

A local directory by default (atomic, synced writes); any fsspec URL (`s3://…`,
`gs://…`, `file://…`) for clusters whose workers share no disk. Blobs are named by
their SHA-256, so a store never needs to be trusted: every read is checked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError
from .fsutil import fsync_paths, write_atomic


class ArtifactMissing(UsageError):
    """An artifact named on the ledger is not in the store."""


class ArtifactCorrupt(UsageError):
    """An artifact's bytes no longer hash to its name."""


class ArtifactStore:
    """Blobs stored under their SHA-256 hex, written once, checked on every read."""

    def __init__(self, location: str | Path):
        self.location = str(location)
        self._fs = None
        self._dirs: set[str] = set()  # fan-out directories known to exist
        if "://" in self.location and not self.location.startswith("file://"):
            import fsspec

            try:
                self._fs, self._base = fsspec.core.url_to_fs(self.location)
            except (ValueError, ImportError) as e:  # unknown protocol, its package missing
                raise UsageError(f"artifact store {self.location}: {e}") from None
            self.root = None
        else:
            self.root = Path(self.location.removeprefix("file://"))

    def path(self, digest: str) -> Path:
        """Where a blob lives in a local store (tests reach into it to tamper)."""
        if self.root is None:
            raise UsageError(f"artifact store {self.location} is not a local directory")
        return self.root / digest[:2] / digest[2:]

    def _key(self, digest: str) -> str:
        return f"{self._base.rstrip('/')}/{digest[:2]}/{digest[2:]}"

    def put(self, data: bytes, *, sync: bool = True) -> str:
        """Store `data` under its hash. ``sync=False`` defers durability to `sync`: the
        ledger syncs the artifacts a block names before it commits the block."""
        digest = hashlib.sha256(data).hexdigest()
        if self._fs is not None:
            key = self._key(digest)
            if not self._fs.exists(key):
                self._fs.makedirs(key.rsplit("/", 1)[0], exist_ok=True)  # no-op on object stores
                self._fs.pipe_file(key, data)  # one object write: whole or absent
            return digest
        path = os.path.join(self.location.removeprefix("file://"), digest[:2], digest[2:])
        if not os.path.exists(path):
            directory = os.path.dirname(path)
            if directory not in self._dirs:
                os.makedirs(directory, exist_ok=True)
                self._dirs.add(directory)
            write_atomic(path, data, mode=0o444, sync=sync)
        return digest

    def sync(self, digests: Iterable[str]) -> None:
        """Make the local blobs among `digests` durable (object stores already are)."""
        if self.root is not None:
            root = os.fspath(self.root)
            paths = (os.path.join(root, d[:2], d[2:]) for d in digests)
            fsync_paths(paths, missing_ok=True)

    def get(self, digest: str) -> bytes:
        try:
            if self._fs is not None:
                data = self._fs.cat_file(self._key(digest))
            else:
                data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise ArtifactMissing(f"artifact {digest} is missing from {self.location}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArtifactCorrupt(f"artifact {digest} in {self.location} does not match its hash")
        return data

    def has(self, digest: str) -> bool:
        if self._fs is not None:
            return self._fs.exists(self._key(digest))
        return self.path(digest).is_file()
