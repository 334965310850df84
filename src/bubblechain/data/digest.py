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

from collections.abc import Sequence

from blake3 import blake3

from .encoding import EncodedColumn

PREFIX = b"bubblechain-rows/3\x00"
"""Never the start of a leaf input (0x00), a node (0x01) or a format 2/3 digest's input."""


class ColumnsDigest:
    """A running format 4 rows digest of one partition: feed it its rows' columns in id order."""

    def __init__(self, columns: int):
        self._streams = [(blake3(), blake3(), blake3()) for _ in range(columns)]

    def feed(self, pieces: Sequence[EncodedColumn], start: int, stop: int) -> None:
        """Add rows ``start:stop`` of a batch encoded column by column (`encode_pieces`)."""
        if len(pieces) != len(self._streams):
            raise ValueError(f"{len(pieces)} columns fed to a digest of {len(self._streams)}")
        for (tags, fixed, var), p in zip(self._streams, pieces, strict=True):
            tags.update(p.tags[start:stop])
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
