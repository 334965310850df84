"""The columnar rows digest of index format 4: a partition checked without assembling rows.

A format 3 digest hashes a partition's leaf inputs, so a checker must first
interleave every column into rows (as the leaves need), which cost a training
worker more than the hashing itself. The format 4 digest hashes the same
values column by column: for each column (the id first, then the leaf order),
three BLAKE3 streams over all the partition's rows in id order: the type tags,
the fixed-width part of each present value's payload, and the variable part
(string and binary bytes). For the usual numeric column that is one byte
repeated and the column's values as they are laid out in memory. The digest is
BLAKE3 of a domain prefix and the 3 × columns stream digests
(docs/row-encoding.md, "Rows digest").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from blake3 import blake3

from .encoding import EncodedColumn

PREFIX = b"bubblechain-rows/3\x00"
"""Never the start of a leaf input (0x00), a node (0x01) or a format 2/3 digest's input."""


class _Tags:
    """A tags stream whose trailing run of one tag is counted, not hashed, until it ends.

    A typed column without nulls has one tag in every row, so a whole partition's
    stream is usually one run, and the digest of a run depends only on its tag and
    length: it is taken once per process (`_run_digest`) and shared by every such
    column and partition instead of hashing a byte per row and column.
    """

    def __init__(self) -> None:
        self._hash: blake3 | None = None
        self._tag, self._run = 0, 0

    def update(self, piece: EncodedColumn, start: int, stop: int) -> None:
        if piece.uniform is not None:
            if self._run and piece.uniform != self._tag:
                self._flush()
            self._tag, self._run = piece.uniform, self._run + stop - start
            return
        self._flush()
        self._hasher().update(piece.tags[start:stop])

    def digest(self) -> bytes:
        if self._hash is None:
            return _run_digest(self._tag, self._run)
        self._flush()
        return self._hash.digest()

    def _hasher(self) -> blake3:
        if self._hash is None:
            self._hash = blake3()
        return self._hash

    def _flush(self) -> None:
        _hash_run(self._hasher(), self._tag, self._run)
        self._run = 0


def _hash_run(h: blake3, tag: int, count: int) -> None:
    chunk = bytes([tag]) * min(count, 1 << 20)
    while count:
        n = min(count, len(chunk))
        h.update(chunk[:n])
        count -= n


@functools.lru_cache(maxsize=64)
def _run_digest(tag: int, count: int) -> bytes:
    h = blake3()
    _hash_run(h, tag, count)
    return h.digest()


class ColumnsDigest:
    """A running format 4 rows digest of one partition: feed it its rows' columns in id order."""

    def __init__(self, columns: int):
        self._streams = [(_Tags(), blake3(), blake3()) for _ in range(columns)]

    def feed(self, pieces: Sequence[EncodedColumn], start: int, stop: int) -> None:
        """Add rows ``start:stop`` of a batch encoded column by column (`encode_pieces`)."""
        if len(pieces) != len(self._streams):
            raise ValueError(f"{len(pieces)} columns fed to a digest of {len(self._streams)}")
        for (tags, fixed, var), p in zip(self._streams, pieces, strict=True):
            tags.update(p, start, stop)
            if p.fixed is not None:
                rows = p.fixed[start:stop]
                fixed.update(rows if p.all_present else rows[p.present()[start:stop]])
            if p.var_data is not None:
                offsets = p.var_offsets
                var.update(p.var_data[offsets[start] : offsets[stop]])

    def digest(self) -> bytes:
        """The 32-byte rows digest of everything fed so far."""
        parts = [h.digest() for streams in self._streams for h in streams]
        return blake3(PREFIX + b"".join(parts)).digest()


def feed_columns(
    pieces: Sequence[EncodedColumn], runs: Sequence[tuple[int, int, ColumnsDigest]]
) -> None:
    """Feed each ``(start, stop, digest)`` run rows start..stop of the batch ``pieces`` encode."""
    for start, stop, digest in runs:
        digest.feed(pieces, start, stop)
