"""RFC 6962 / RFC 9162 hashing: domain-separated leaves and nodes over SHA-256.

The 0x00 / 0x01 prefixes keep a leaf from ever being mistaken for an interior
node (the second-preimage attack on plain Merkle trees).
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
"""Bytes in every leaf, node and root hash (SHA-256)."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""Root of the tree with no leaves: SHA-256 of the empty string (RFC 9162 §2.1.1)."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Hash one entry as a leaf: SHA-256(0x00 ‖ data)."""
    return _sha256(LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes into their parent: SHA-256(0x01 ‖ left ‖ right)."""
    return _sha256(NODE_PREFIX + bytes(left) + bytes(right)).digest()


def short_hex(h: bytes) -> str:
    """A short hex prefix of a hash for one-line error messages."""
    text = bytes(h).hex()
    return text if len(text) <= 12 else text[:12] + "…"
