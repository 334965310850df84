"""A content-addressed store for blobs referenced by hash (parameters, partials, manifests)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import UsageError
from .fsutil import write_atomic


class ArtifactMissing(UsageError):
    """An artifact named on the ledger is not in the store."""


class ArtifactCorrupt(UsageError):
    """An artifact's bytes no longer hash to its name."""


class ArtifactStore:
    """Blobs stored under their SHA-256 hex, written atomically, checked on read."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        p = self.path(digest)
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(p, data, mode=0o444)
        return digest

    def get(self, digest: str) -> bytes:
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise ArtifactMissing(f"artifact {digest} is missing from {self.root}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ArtifactCorrupt(f"artifact {digest} in {self.root} does not match its hash")
        return data

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()
