"""Worker-side hashing: leaf hashes of encoded rows and Merkle roots of runs of them.

Kept free of pyarrow so that pool workers start fast. hashlib holds the GIL
for inputs this small, so the parallelism comes from processes.
"""

from __future__ import annotations

import hashlib
import itertools
import struct

import numpy as np

from bubblechain.merkle import root_from_buffer

HASH = 32


def hash_rows(buf: bytes, offsets: bytes | None, width: int) -> bytes:
    """SHA-256 of each row slice (the rows already start with the 0x00 leaf prefix)."""
    sha = hashlib.sha256
    if width:  # iter_unpack cuts the rows in C: ~10% faster than slicing in the loop
        return b"".join([sha(row).digest() for (row,) in struct.iter_unpack(f"{width}s", buf)])
    offs = np.frombuffer(offsets, dtype=np.int64).tolist()
    return b"".join([sha(buf[a:b]).digest() for a, b in itertools.pairwise(offs)])


def run_roots(leaves: bytes, counts: list[int]) -> list[bytes]:
    """RFC 9162 root of each consecutive run of ``counts[i]`` leaf hashes."""
    out, pos = [], 0
    for c in counts:
        out.append(root_from_buffer(leaves[pos * HASH : (pos + c) * HASH]))
        pos += c
    return out


def hash_task(
    buf: bytes, offsets: bytes | None, width: int, counts: list[int]
) -> tuple[bytes, list[bytes]]:
    """Leaf hashes of all rows, and the root of each run of ``counts`` rows among them."""
    leaves = hash_rows(buf, offsets, width)
    return leaves, run_roots(leaves, counts)
