"""A content-addressed in-memory artifact store with the ledger store's interface.

Commit and verify only need ``put(bytes) -> hex`` and ``get(hex) -> bytes``;
the ledger's ``ledger.artifacts`` offers the same two methods. This one lets the
Python API and the tests work without a ledger.
"""

from __future__ import annotations

import hashlib

from .errors import DataError


class MemoryStore:
    """Artifacts keyed by the hex SHA-256 of their bytes."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its address (hex SHA-256)."""
        key = hashlib.sha256(data).hexdigest()
        self.blobs[key] = bytes(data)
        return key

    def get(self, key: str) -> bytes:
        """Return the bytes stored under ``key``; DataError if there are none."""
        try:
            return self.blobs[key]
        except KeyError:
            raise DataError(f"artifact {key} is not in the store") from None
