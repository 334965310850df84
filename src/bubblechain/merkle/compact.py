"""Incremental Merkle tree for an append-only log, in O(log n) state.

A tree of ``n`` leaves is, by the RFC's split rule, a left-to-right run of
perfect subtrees, one per set bit of ``n`` (largest first). Their roots (the
*frontier*) are all that is needed to append more leaves and to compute the
root, so a ledger can persist the tree in one short row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from .hashing import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX
from .tree import _leaf_level, _next_level

_sha256 = hashlib.sha256
_SIZE_BYTES = 8
_CHUNK = 1 << 16  # extend() hashes aligned runs of up to this many leaves in bulk


class CompactTree:
    """Append-only Merkle tree keeping only the roots of its perfect subtrees.

    ``root()`` equals ``merkle.root`` of all leaves appended so far, at every
    size. Serialise with ``to_bytes()`` (8-byte big-endian size, then the
    frontier hashes largest subtree first) and reopen with ``from_bytes()``.
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def _push(self, subtree_root: bytes, height: int) -> None:
        """Add a perfect subtree of ``2**height`` leaves; ``size`` must be a multiple of it."""
        frontier, sha, prefix = self._frontier, _sha256, NODE_PREFIX
        n = self._size >> height
        node = subtree_root
        while n & 1:
            node = sha(prefix + frontier.pop() + node).digest()
            n >>= 1
        frontier.append(node)
        self._size += 1 << height

    def append(self, leaf_hash: bytes) -> None:
        """Append one leaf hash (``leaf_hash(data)``, 32 bytes)."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf_hash)}")
        self._push(bytes(leaf_hash), 0)

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes, hashing aligned runs of them level by level in bulk."""
        if not hasattr(leaf_hashes, "__array_interface__"):
            leaf_hashes = list(leaf_hashes)
        pending = _leaf_level(leaf_hashes)
        start, total = 0, len(pending)
        while start < total:
            # Largest power-of-two run that fits and keeps the frontier aligned.
            height = min(_CHUNK.bit_length() - 1, (total - start).bit_length() - 1)
            if self._size:
                height = min(height, (self._size & -self._size).bit_length() - 1)
            level = pending[start : start + (1 << height)]
            while len(level) > 1:
                level = _next_level(level)
            self._push(bytes(level[0]), height)
            start += 1 << height

    def root(self) -> bytes:
        """Merkle tree hash of all leaves so far (EMPTY_ROOT for none)."""
        if not self._frontier:
            return EMPTY_ROOT
        sha, prefix = _sha256, NODE_PREFIX
        node = self._frontier[-1]
        for left in reversed(self._frontier[:-1]):
            node = sha(prefix + left + node).digest()
        return node

    def copy(self) -> CompactTree:
        """An independent copy (e.g. to compute a tentative root before committing)."""
        other = CompactTree()
        other._size = self._size
        other._frontier = list(self._frontier)
        return other

    def to_bytes(self) -> bytes:
        """8-byte big-endian size followed by the frontier hashes, largest subtree first."""
        return self._size.to_bytes(_SIZE_BYTES, "big") + b"".join(self._frontier)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactTree:
        """Reopen a tree saved by ``to_bytes``; raises ValueError if the length is wrong."""
        data = bytes(data)
        if len(data) < _SIZE_BYTES:
            raise ValueError(f"a compact tree needs at least {_SIZE_BYTES} bytes, got {len(data)}")
        size = int.from_bytes(data[:_SIZE_BYTES], "big")
        count = size.bit_count()
        if len(data) != _SIZE_BYTES + count * HASH_SIZE:
            raise ValueError(
                f"a compact tree of {size} leaves has {count} frontier hashes "
                f"({_SIZE_BYTES + count * HASH_SIZE} bytes), got {len(data)} bytes"
            )
        tree = cls()
        tree._size = size
        tree._frontier = [data[i : i + HASH_SIZE] for i in range(_SIZE_BYTES, len(data), HASH_SIZE)]
        return tree

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactTree):
            return NotImplemented
        return self._size == other._size and self._frontier == other._frontier

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactTree(size={self._size}, root={self.root().hex()[:16]}…)"
