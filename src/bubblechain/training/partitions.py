"""Training partitions: row ranges in id order, read and verified against the commitment.

A training partition is the row range [start, stop) of the dataset in id order.
`plan` aligns ranges to the committed partitions, so a worker checks whole
committed partitions. In a file still in id order with the committed number of
rows (the usual case) it reads them where they are, at the same positions, and
checks them there. Otherwise, or if they do not match, it reads the rows whose
ids lie in the committed id range of those partitions (so a tampered file
cannot shift rows between partitions), puts each in the committed partition
whose id span holds it (as `data verify` does), and refuses to compute unless
every partition's rows are exactly the committed ones, naming the changed,
missing and added row ids.

The check costs one BLAKE3 pass over the partition's columns: the partition
index (format 4) records each partition's *rows digest*, a hash of its values
column by column in id order (formats 2 and 3 hashed its leaf inputs, which
must first be assembled into rows), which is as strong as comparing every leaf
(docs/row-encoding.md, "Rows digest"). Leaves are hashed one by one (~1 µs of
Python per row, ten times the cost of the digest) only where they are needed:
to name the differing ids of a partition that does not match, and for a format
1 index, which has no digests.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data._hashing import ROWS_DIGEST_FORMAT, hash_rows, rows_digest
from ..data.arrow_numpy import as_arrow, as_numpy
from ..data.artifacts import Partition, encode_leaves, load_index
from ..data.conform import conforming_encoder, open_for_schema
from ..data.digest import ColumnsDigest
from ..data.encoding import EncodedRows, canonical_ids, id_kind, value_columns
from ..data.engine import Run
from ..data.sources import open_source
from ..data.verify import _Diff, unreadable_ids
from ..merkle import root_from_buffer

_SHOW = 20
_BATCH_ROWS = 1 << 16


class PartitionTampered(ValueError):
    """A partition's rows do not match the dataset commitment."""

    def __init__(
        self,
        source: str,
        changed: list,
        missing: list,
        added: list,
        unreadable: list[dict[str, Any]] | None = None,
    ):
        self.changed, self.missing, self.added = changed, missing, added
        self.unreadable = unreadable or []
        parts = [
            f"{what} {_ids(ids)}"
            for what, ids in (("changed", changed), ("missing", missing), ("added", added))
            if ids
        ]
        if self.unreadable:
            shown = [f"{u['row']} ({u['text']!r})" for u in self.unreadable]
            parts.append(f"ids that are not ints at file rows {_ids(shown)}")
        super().__init__(f"{source} does not match its commitment: {'; '.join(parts)}")

    def summary(self) -> dict[str, Any]:
        out = {"changed": self.changed, "missing": self.missing, "added": self.added}
        if self.unreadable:
            out["unreadable_ids"] = self.unreadable[:1000]
        return out


class UnusableValues(ValueError):
    """Rows that match the commitment but that training cannot use: a missing (null or
    NaN) or infinite feature or target value."""

    def __init__(self, source: str, role: str, column: str, ids: list, *, positions: bool):
        self.ids = ids
        where = "positions" if positions else "row ids"
        super().__init__(
            f"{source}: {role} {column!r} is missing or not finite at {where} {_ids(ids)}"
        )

    def summary(self) -> dict[str, Any]:
        return {"unusable": self.ids[:1000]}


def _ids(ids: list) -> str:
    shown = ", ".join(map(str, ids[:_SHOW]))
    return f"[{shown}{', …' if len(ids) > _SHOW else ''}] ({len(ids)} row{'s' * (len(ids) != 1)})"


def nonfinite_rows(X: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, str] | None:
    """The first column of ``X`` holding a NaN or an infinity: the rows where it does, and
    its name; None if every value is finite.

    One sum settles the usual case: it is finite only if every value is.
    """
    if np.isfinite(X.sum()):
        return None
    bad = ~np.isfinite(X)
    columns = np.flatnonzero(bad.any(axis=0))
    if not len(columns):  # the sum overflowed
        return None
    j = int(columns[0])
    return np.flatnonzero(bad[:, j]), names[j]


def usable(
    table: pa.Table, features: Sequence[str], target: str | None, label: str, id_column: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(X float64, y) of ``table``, refusing any missing or non-finite value (UnusableValues).

    A null would otherwise become NaN in X (and fail far from its cause) or, in a
    string target, a class named "None". Rows are named by ``id_column`` (by
    position without one).
    """

    def refuse(role: str, column: str, rows: np.ndarray) -> UnusableValues:
        if id_column is None:
            ids = rows.tolist()
        else:
            ids = table.column(id_column).take(as_arrow(rows)).to_pylist()
        return UnusableValues(label, role, column, ids, positions=id_column is None)

    roles = [("feature", f) for f in features] + ([("target", target)] if target else [])
    for role, name in roles:
        col = table.column(name)
        if col.null_count:
            raise refuse(role, name, np.flatnonzero(as_numpy(col.is_null())))
    X = _matrix(table, features)
    bad = nonfinite_rows(X, features)
    if bad is not None:
        raise refuse("feature", bad[1], bad[0])
    # A copy, like X: a zero-copy view could be of a memory-mapped file that changes later.
    y = np.array(as_numpy(table.column(target))) if target else None
    if y is not None and y.dtype.kind == "f":
        bad = nonfinite_rows(y[:, None], [target])
        if bad is not None:
            raise refuse("target", target, bad[0])
    return X, y


def plan(rows: int, partitions: int, align: int = 1) -> list[tuple[int, int]]:
    """Split `rows` into `partitions` contiguous, near-equal row ranges.

    Boundaries fall on multiples of `align` (the commitment's partition size)
    when there are enough rows, so each worker verifies whole committed
    partitions and no two workers verify the same one.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    partitions = min(partitions, max(rows, 1))
    units = -(-rows // align) if align > 1 else 0
    if units >= partitions:
        cuts = [min(rows, (p * units // partitions) * align) for p in range(partitions + 1)]
        return list(itertools.pairwise(cuts))
    return [(p * rows // partitions, (p + 1) * rows // partitions) for p in range(partitions)]


def read_partition(
    source: str,
    commitment: dict,
    store: Any,
    start: int,
    stop: int,
    features: Sequence[str],
    target: str | None,
    cursor: ReadCursor | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows [start, stop) of `source` in id order as (X float64, y), verified first.

    Raises PartitionTampered unless the rows are exactly the committed ones
    (`verified_rows`), then UnusableValues for a missing or non-finite feature or
    target value.
    """
    if not 0 <= start <= stop <= commitment["rows"]:
        raise ValueError(f"rows [{start}, {stop}) are not within the {commitment['rows']} rows")
    if start == stop:
        return np.empty((0, len(features))), (np.empty(0) if target else None)
    part, label = verified_rows(source, commitment, store, start, stop, cursor)
    return usable(part, features, target, label, commitment["schema"]["id_column"])


def verified_rows(
    source: str,
    commitment: dict,
    store: Any,
    start: int,
    stop: int,
    cursor: ReadCursor | None = None,
) -> tuple[pa.Table, str]:
    """Rows [start, stop) (not empty) of `source` in id order, every committed column, and
    the source's label for messages.

    Raises PartitionTampered, naming every differing id of the committed
    partitions that cover the range, unless their rows are exactly the committed
    ones; DataError if the commitment's artifacts are inconsistent. A worker
    passes its `ReadCursor` of the source so that reading its partitions in
    increasing order costs one pass over the file.
    """
    schema = commitment["schema"]
    parts = load_index(commitment, store.get)
    size = commitment["partition_rows"]
    keys = range(start // size, (stop - 1) // size + 1)
    src, _ = open_for_schema(source, schema, _BATCH_ROWS)
    cursor = cursor or ReadCursor(src.batches, src.unreadable)
    table = None
    columnar = (parts[k].index_format == ROWS_DIGEST_FORMAT and parts[k].rows_digest for k in keys)
    if all(columnar) and src.rows() == commitment["rows"]:
        table = _read_in_place(cursor, parts, keys, size, schema, src.label)
    if table is None:
        span = _Span(parts, keys, schema["id_column"], id_kind(schema))
        rows = span.read(cursor, early=True, label=src.label)
        # A mismatch after stopping early may only mean rows stored further on (a file
        # in another order, which changes nothing): the whole file is read before refusing.
        if not _verify(rows, span, schema, store, final=rows.whole):
            cursor = ReadCursor(src.batches, src.unreadable)
            rows = span.read(cursor, early=False, label=src.label)
            _verify(rows, span, schema, store, final=True)
        table = pa.Table.from_batches([b for b, _ in rows.chunks], schema=src.schema)
    return table.slice(start - keys[0] * size, stop - start), src.label


def _read_in_place(
    cursor: ReadCursor, parts: list[Partition], keys: range, size: int, schema: dict, label: str
) -> pa.Table | None:
    """The rows of partitions ``keys`` where a file in id order holds them, if they match.

    Committed partition k is rows [k × size, k × size + rows) of the dataset in id
    order. In a file that holds the committed number of rows in that order, those
    are its rows at the same positions: they are read there, without looking at
    ids, and the rows digests (which cover the ids, in order) say whether they are
    exactly the committed rows. None if not: the caller then reads by id, which
    finds the rows wherever they are and names the ids that differ. A row added
    elsewhere changes the row count, and a row moved from another partition's
    positions makes that partition's check fail, so the job still refuses.
    """
    lo = keys[0] * size
    hi = lo + sum(parts[k].rows for k in keys)
    encode = conforming_encoder(schema, label)
    digests = {k: ColumnsDigest(len(value_columns(schema)) + 1) for k in keys}
    kept: list[pa.RecordBatch] = []
    offset = cursor.offset
    cursor.state = None  # positions, not an id span: a read by id after this starts over
    for pos, batch in cursor.batches(offset is not None and offset <= lo):
        a, b = max(lo, pos), min(hi, pos + batch.num_rows)
        if b > a:
            rows = batch.slice(a - pos, b - a)
            runs = [
                (max(k * size, a) - a, min(k * size + parts[k].rows, b) - a, digests[k])
                for k in keys
                if k * size < b and a < k * size + parts[k].rows
            ]
            encode.feed(rows, runs)
            kept.append(rows)
        if pos + batch.num_rows >= hi:
            break
    if sum(len(b) for b in kept) != hi - lo:
        return None
    if any(digests[k].digest() != parts[k].rows_digest for k in keys):
        return None
    return pa.Table.from_batches(kept, schema=kept[0].schema)


class ReadCursor:
    """Where a worker's last read of a source stopped, so that its next read resumes there.

    Parquet decodes a row group from its start, so reading a partition deep in
    a file of one large row group decodes everything before it. A worker reads
    its partitions in increasing order; resuming makes that one pass over the
    file in total instead of one per partition. The last batch handed out is
    handed out again on resuming (it may hold rows of the next partition), with
    ``state``, what its reader needs to pick up (None: start over).
    """

    def __init__(
        self,
        open_batches: Callable[[], Iterator[pa.RecordBatch]],
        unreadable: dict[int, str] | None = None,
    ):
        self.lock = threading.Lock()  # held by the read using it; others read without
        self._open = open_batches
        self.unreadable = unreadable  # its source's rows set aside (`Source.unreadable`)
        self._it: Iterator[pa.RecordBatch] | None = None
        self._held: tuple[int, pa.RecordBatch] | None = None
        self.state: Any = None

    def batches(self, resume: bool) -> Iterator[tuple[int, pa.RecordBatch]]:
        """(row offset in the file, batch) from the last batch handed out, or from the start."""
        if not resume or self._it is None:
            self._it, self._held, self.state = iter(self._open()), None, None
        if self._held is not None:
            yield self._held
        pos = self._held[0] + self._held[1].num_rows if self._held is not None else 0
        for batch in self._it:
            self._held = (pos, batch)
            yield self._held
            pos += batch.num_rows
        self._it = None  # exhausted: the next read starts over

    @property
    def offset(self) -> int | None:
        """Row offset of the batch a resumed read starts with (None: from the start)."""
        return self._held[0] if self._it is not None and self._held is not None else None


@dataclass
class _Rows:
    """The rows of a span as read: (batch, canonical ids) chunks in id order."""

    label: str
    chunks: list[tuple[pa.RecordBatch, pa.Array]]
    whole: bool
    """False if reading stopped before the end of the file (an id-sorted file past the span)."""
    unreadable: dict[int, str] | None = None
    """The source's rows set aside so far: their id is not of the committed kind."""


class _Span:
    """The id range of consecutive committed partitions, and how to read and split it."""

    def __init__(self, parts: list[Partition], keys: range, id_column: str, kind: str):
        self.parts, self.keys = parts, keys
        self.id_column, self.kind = id_column, kind
        self.lo, self.hi = parts[keys[0]].first, parts[keys[-1]].last
        # Partition k holds the ids from its first up to the next partition's first
        # (verify.id_positions): a row added between two partitions is in the earlier.
        self.cuts = [parts[k].first for k in keys[1:]]

    def read(self, cursor: ReadCursor, early: bool, label: str = "") -> _Rows:
        """The rows with ids in [lo, hi], in id order.

        In a file sorted by id (checked batch by batch, as it is read), rows are
        sliced, not copied, and with ``early`` reading stops at the first id
        beyond the span: any row of the span stored further on is out of order,
        and the caller reads again in full if the rows read do not match.
        Otherwise the rows in range are collected and sorted by id. A read that
        stopped early leaves ``cursor`` where the next span, further on, resumes:
        every batch before it holds only ids below this span's end.
        """
        kept: list[tuple[pa.RecordBatch, pa.Array]] = []
        in_order, last, whole = True, None, True
        state, cursor.state = cursor.state, None  # a read that fails leaves it to start over
        resume = state is not None and state[0] < self.lo
        if resume:
            last = state[1]
        for _, batch in cursor.batches(resume):
            before = last
            ids = canonical_ids(batch.column(self.id_column), self.kind, label)
            if not len(ids):
                continue
            if in_order and (ids.null_count or not _nondecreasing(ids, last)):
                in_order = False
            if in_order:
                a, b = _below(ids, self.lo), _below(ids, self.hi, inclusive=True)
                if b > a:
                    kept.append((batch.slice(a, b - a), ids.slice(a, b - a)))
                last = ids[len(ids) - 1].as_py()
                if early and last >= self.hi:
                    whole = False
                    cursor.state = (self.hi, before)
                    break
                continue
            mask = pc.and_(
                pc.greater_equal(ids, pa.scalar(self.lo, ids.type)),
                pc.less_equal(ids, pa.scalar(self.hi, ids.type)),
            )
            if pc.any(mask).as_py():  # null ids: a null mask, dropped (the row is missing)
                kept.append((batch.filter(mask), ids.filter(mask)))
        if not in_order and kept:
            table = pa.Table.from_batches([b for b, _ in kept], schema=kept[0][0].schema)
            ids = pa.concat_arrays([i for _, i in kept])
            order = pc.sort_indices(ids)
            table, ids = table.take(order).combine_chunks(), ids.take(order)
            kept = [(batch, ids.slice(o, len(batch))) for o, batch in _batches(table)]
        return _Rows(label, kept, whole, cursor.unreadable)

    def split(self, ids: pa.Array) -> Iterator[tuple[int, int, int]]:
        """(partition, start, stop) of each partition's rows among sorted ``ids`` of the span."""
        bounds = [0, *(_below(ids, c) for c in self.cuts), len(ids)]
        for k, a, b in zip(self.keys, bounds, bounds[1:], strict=False):
            if b > a:
                yield k, a, b


def _batches(table: pa.Table) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(offset, batch) of a single-chunk table cut into batches of _BATCH_ROWS rows."""
    for o in range(0, table.num_rows, _BATCH_ROWS):
        (batch,) = table.slice(o, _BATCH_ROWS).to_batches()
        yield o, batch


def _nondecreasing(ids: pa.Array, last: object) -> bool:
    """Whether ``ids`` (no nulls) are in order and none comes before ``last``."""
    if last is not None and ids[0].as_py() < last:
        return False
    if pa.types.is_integer(ids.type):
        v = as_numpy(ids)
        return bool((v[1:] >= v[:-1]).all())
    return (
        len(ids) < 2 or pc.all(pc.greater_equal(ids.slice(1), ids.slice(0, len(ids) - 1))).as_py()
    )


def _below(ids: pa.Array, value: object, inclusive: bool = False) -> int:
    """How many of the sorted ``ids`` are < ``value`` (<= with ``inclusive``)."""
    if pa.types.is_integer(ids.type):
        return int(np.searchsorted(as_numpy(ids), value, "right" if inclusive else "left"))
    test = pc.less_equal if inclusive else pc.less
    return int(pc.sum(test(ids, pa.scalar(value, ids.type))).as_py() or 0)


def _verify(rows: _Rows, span: _Span, schema: dict, store: Any, final: bool) -> bool:
    """Check the rows of each partition of the span against the commitment.

    One pass encodes the columns and feeds each partition's rows digest. A format 1
    partition (no digest) is checked as before format 2: its leaves hashed, and
    one SHA-256 over its ids and leaves compared with its committed leaves
    artifact's address. Returns False on a mismatch if not ``final``; when final,
    names the differing ids of each partition that does not match (leaves and
    committed root, through `_Diff`) and raises PartitionTampered.
    """
    encode = conforming_encoder(schema, rows.label)
    columns = len(value_columns(schema)) + 1
    digests = {  # (a format 1 partition's is taken but never compared)
        k: ColumnsDigest(columns)
        if span.parts[k].index_format == ROWS_DIGEST_FORMAT
        else rows_digest(max(span.parts[k].index_format, 2))
        for k in span.keys
    }
    counts = dict.fromkeys(span.keys, 0)
    legacy: dict[int, list[EncodedRows]] = {
        k: [] for k in span.keys if span.parts[k].rows_digest is None
    }
    for batch, ids in rows.chunks:
        runs = list(span.split(ids))
        if any(k in legacy for k, _, _ in runs):
            enc = encode(batch)
            for k, a, b in runs:
                digests[k].update(enc.buf[enc.offsets[a] : enc.offsets[b]])
                if k in legacy:
                    legacy[k].append(enc.slice(a, b))
        else:
            encode.feed(batch, [(a, b, digests[k]) for k, a, b in runs])
        for k, a, b in runs:
            counts[k] += b - a
    bad: list[int] = []
    for k in span.keys:
        p = span.parts[k]
        if k in legacy:
            if not _leaves_match(p, legacy[k]):
                bad.append(k)
        elif counts[k] != p.rows or digests[k].digest() != p.rows_digest:
            bad.append(k)
    if not bad:
        return True
    if not final:
        return False
    diff = _Diff(span.parts, store)
    ids_all = pa.concat_arrays([i for _, i in rows.chunks]) if rows.chunks else None
    starts = dict(zip(span.keys, itertools.accumulate([0, *counts.values()]), strict=False))
    for k in bad:
        if not counts[k]:
            diff.partition(k, None)
            continue
        a, n = starts[k], counts[k]
        run_ids = ids_all.slice(a, n)
        leaves = _leaves(_slice_rows(rows, a, n), encode)
        digest = digests[k].digest() if k not in legacy else None
        fmt = span.parts[k].index_format
        diff.check(Run(k, run_ids, leaves, root_from_buffer(leaves), digest, fmt))
    if diff.changed or diff.missing or diff.added:
        raise PartitionTampered(
            rows.label,
            sorted(diff.changed),
            sorted(diff.missing),
            sorted(diff.added),
            unreadable_ids(rows),
        )
    return True  # a format 1 partition whose leaves artifact differs but whose root matches


def _leaves_match(p: Partition, encoded: list[EncodedRows]) -> bool:
    """Format 1 check: SHA-256 of the ids and leaves is the committed leaves artifact's address."""
    if not encoded:
        return False
    enc = EncodedRows.concat(encoded)
    leaves = hash_rows(enc.buf.tobytes(), enc.offsets.tobytes(), enc.width)
    return hashlib.sha256(encode_leaves(enc.ids, leaves)).hexdigest() == p.leaves


def _slice_rows(rows: _Rows, start: int, n: int) -> Iterator[pa.RecordBatch]:
    """Rows [start, start + n) of the chunks, as batches."""
    pos = 0
    for batch, _ in rows.chunks:
        a, b = max(start - pos, 0), min(start + n - pos, len(batch))
        if b > a:
            yield batch.slice(a, b - a)
        pos += len(batch)


def _leaves(batches: Iterator[pa.RecordBatch], encode: Any) -> bytes:
    """Leaf hashes of the rows of ``batches``, in order."""
    out = []
    for batch in batches:
        enc = encode(batch)
        out.append(hash_rows(enc.buf.tobytes(), enc.offsets.tobytes(), enc.width))
    return b"".join(out)


def _matrix(table: pa.Table, features: Sequence[str]) -> np.ndarray:
    """The feature columns as one C-ordered float64 array, filled chunk by chunk.

    One copy per value (column_stack of converted columns makes two); the values,
    and so the bits of every result computed from them, are the same.
    """
    X = np.empty((table.num_rows, len(features)))
    for j, name in enumerate(features):
        pos = 0
        for chunk in table.column(name).chunks:
            n = len(chunk)
            X[pos : pos + n, j] = as_numpy(chunk).astype(np.float64)
            pos += n
    return X


def read_rows(
    source: str,
    start: int,
    stop: int,
    features: Sequence[str],
    target: str | None,
    cursor: ReadCursor | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows [start, stop) in file order, unverified: the untracked baseline's reader.

    Reads batch by batch and stops after the range, as `read_partition` does
    (resuming from ``cursor`` the same way), and builds X the same way, so the
    two differ only by what verification costs. ``cursor`` must have been made
    for the same columns: `plain_cursor`.
    """
    if cursor is None:
        cursor = plain_cursor(source, features, target)
    offset = cursor.offset
    kept = []
    for pos, batch in cursor.batches(offset is not None and offset <= start):
        n = batch.num_rows
        if pos + n > start and pos < stop:
            kept.append(batch.slice(max(start - pos, 0), min(stop, pos + n) - max(start, pos)))
        if pos + n >= stop:
            break
    return usable(pa.Table.from_batches(kept), features, target, source, None)


def partition_cursor(source: str, commitment: dict) -> ReadCursor:
    """A cursor over what `read_partition` reads of ``source`` for ``commitment``."""
    src, _ = open_for_schema(source, commitment["schema"], _BATCH_ROWS)
    return ReadCursor(src.batches, src.unreadable)


def plain_cursor(source: str, features: Sequence[str], target: str | None) -> ReadCursor:
    """A cursor over the columns `read_rows` reads."""
    cols = [*features, *([target] if target else [])]
    src = open_source(source, batch_rows=_BATCH_ROWS)
    return ReadCursor(lambda: src.batches(cols))
