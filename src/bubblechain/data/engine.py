"""The shared engine of commit and verify: rows in id order, hashed, grouped into runs.

Two passes over the source. The first reads only the id column: it rejects
null ids, finds duplicates and tells whether the file is already in id order
(the common case). The second encodes and hashes the rows:

* in order: batches stream through, split into runs (partitions) on the fly,
  and memory stays at a few batches whatever the file size;
* out of order: rows are hashed as they come and each leaf hash is written to
  its place in id order (the permutation comes from the first pass), so only
  32 bytes per row and the ids are held, never the rows. The root does not
  depend on the order of the file because a leaf depends only on its row.

Runs are consecutive rows with the same key (commit: the fixed-size partition
of a position; verify: the committed partition whose id range holds the id),
and each comes back with its leaf hashes and their RFC 9162 root, and (in
order only) its rows digest, which training later checks a partition with
instead of hashing every row (docs/row-encoding.md): a format 4 digest is
taken here from the encoded columns, a format 2 or 3 one (checking an older
index) by the hashing worker from the rows it hashes. Out of order, a run's
rows never sit together in id order, so it has no rows digest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import parallel
from ._hashing import ROWS_DIGEST_FORMAT, run_roots
from .arrow_numpy import as_arrow, as_numpy
from .conform import ConformingEncoder
from .digest import ColumnsDigest
from .encoding import EncodedRows, assemble_rows, canonical_ids
from .errors import DataError
from .sources import Source

TASK_ROWS = 1 << 15
"""Rows per hashing task: big enough to amortise the transfer, small enough to balance."""

KeyFn = Callable[[pa.Array, int], np.ndarray]


@dataclass
class IdScan:
    """What the first pass learnt about the ids."""

    rows: int
    in_order: bool
    duplicates: list
    order: np.ndarray | None = None
    sorted_ids: pa.Array | None = None


@dataclass
class Run:
    """Consecutive rows in id order that share a key, with their leaf hashes and root."""

    key: int
    ids: pa.Array
    leaves: bytes
    root: bytes
    digest: bytes | None = None
    """Rows digest of the run (None where the rows were not hashed in id order)."""
    digest_format: int | None = ROWS_DIGEST_FORMAT
    """The index format whose rows digest ``digest`` is (see `leaf_runs`)."""


def python_ids(ids: pa.Array) -> list:
    """Ids as Python ints or strs, for reports and JSON."""
    return ids.to_pylist()


def scan_ids(source: Source, id_column: str, kind: str) -> IdScan:
    """First pass: reject null ids, find duplicates, and sort the ids if the file is not in order.

    Ids are only kept in memory when the file turns out not to be in strictly
    increasing order (then the ids are read a second time).
    """
    rows, increasing, _ = _scan(source, id_column, kind, None)
    if increasing:
        return IdScan(rows, True, [])
    chunks: list[pa.Array] = []
    rows, _, nondecreasing = _scan(source, id_column, kind, chunks)
    ids = pa.concat_arrays(chunks) if chunks else pa.array([], pa.int64())
    order = None
    if nondecreasing:
        sorted_ids = ids
    else:
        order = as_numpy(pc.sort_indices(ids))
        sorted_ids = ids.take(as_arrow(order))
    same = pc.equal(sorted_ids.slice(1), sorted_ids.slice(0, len(sorted_ids) - 1))
    dup_at = np.flatnonzero(as_numpy(same))
    duplicates = pc.unique(sorted_ids.take(as_arrow(dup_at))).to_pylist() if len(dup_at) else []
    return IdScan(rows, nondecreasing, duplicates, order, sorted_ids)


def _scan(source: Source, id_column: str, kind: str, keep: list | None) -> tuple[int, bool, bool]:
    """(rows, strictly increasing, non-decreasing) of the ids; appends them to ``keep``."""
    seen = 0
    increasing = nondecreasing = True
    last = None
    for batch in source.batches([id_column]):
        arr = canonical_ids(batch.column(0), kind, source.label)
        if arr.null_count:
            first = seen + int(np.flatnonzero(~as_numpy(arr.is_valid()))[0])
            raise DataError(
                f"{source.label}: row {first} (0-based, in file order) has a null id "
                f"in column {id_column!r}"
            )
        if len(arr) and nondecreasing:
            head, tail = arr.slice(0, len(arr) - 1), arr.slice(1)
            first_id = arr[0].as_py()
            if pc.any(pc.less(tail, head)).as_py() or (last is not None and first_id < last):
                increasing = nondecreasing = False
                if keep is None:
                    return seen, False, False
            elif increasing and (
                pc.any(pc.equal(tail, head)).as_py() or (last is not None and first_id == last)
            ):
                increasing = False
                if keep is None:
                    return seen, False, True
        if len(arr):
            last = arr[len(arr) - 1].as_py()
        if keep is not None:
            keep.append(arr)
        seen += len(arr)
    return seen, increasing, nondecreasing


def leaf_runs(
    source: Source,
    encode: ConformingEncoder,
    scan: IdScan,
    key_of: KeyFn,
    workers: int | None = None,
    digest_format: int | None = ROWS_DIGEST_FORMAT,
) -> Iterator[Run]:
    """Second pass: yield every run of rows in id order with its leaf hashes and root, and
    (in order) its rows digest as index format ``digest_format`` takes it (None: none)."""
    pipe = parallel.Pipeline(workers, scan.rows)
    if scan.in_order:
        strict = not scan.duplicates  # then a repeated id in this pass is a change too
        yield from _runs_in_order(source, encode, key_of, pipe, digest_format, strict)
    else:
        yield from _runs_out_of_order(source, encode, scan, key_of, pipe)


def _split(ids: pa.Array, keys: np.ndarray) -> list[tuple[int, int, int]]:
    """(key, start, stop) of each stretch of equal keys."""
    if not len(keys):
        return []
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = [0, *cuts.tolist()]
    stops = [*cuts.tolist(), len(keys)]
    return [(int(keys[a]), a, b) for a, b in zip(starts, stops, strict=True)]


def _check_order(ids: pa.Array, last: object, label: str, strict: bool) -> object:
    """Fail if the ids of the second pass are out of order (``strict``: or repeated, which
    the first pass did not find): the file changed under us."""
    if not len(ids):
        return last
    head, tail = ids.slice(0, len(ids) - 1), ids.slice(1)
    before = pc.less_equal if strict else pc.less
    first = ids[0].as_py()
    if pc.any(before(tail, head)).as_py() or (
        last is not None and (first <= last if strict else first < last)
    ):
        raise DataError(f"{label}: changed while being read (ids no longer in order)")
    return ids[len(ids) - 1].as_py()


def _runs_in_order(source, encode, key_of, pipe: parallel.Pipeline, fmt: int | None, strict: bool):
    columnar = fmt == ROWS_DIGEST_FORMAT  # taken here, from the columns; older ones by workers
    digests: dict[int, ColumnsDigest] = {}

    def tasks():
        group: list[tuple[int, EncodedRows]] = []  # finished runs waiting for a task
        group_rows = 0
        current: list[EncodedRows] = []
        current_key = None
        position = 0

        def task(runs):
            rows = EncodedRows.concat([r for _, r in runs])
            meta = [(k, r.ids, digests.pop(k).digest() if columnar else None) for k, r in runs]
            counts = [len(r) for _, r in runs]
            fn, args = pipe.hash_rows(
                rows.buf, rows.offsets, rows.width, counts, None if columnar else fmt
            )
            return meta, fn, args

        last = None
        for batch in source.batches():
            ids, pieces = encode.pieces(batch)
            enc = assemble_rows(ids, pieces)
            last = _check_order(enc.ids, last, source.label, strict)
            keys = key_of(enc.ids, position)
            position += len(enc)
            for key, a, b in _split(enc.ids, keys):
                if columnar:
                    digests.setdefault(key, ColumnsDigest(len(pieces))).feed(pieces, a, b)
                if current_key is not None and key != current_key:
                    run = EncodedRows.concat(current)
                    group.append((current_key, run))
                    group_rows += len(run)
                    current = []
                current.append(enc.slice(a, b))
                current_key = key
            if group_rows >= TASK_ROWS:
                yield task(group)
                group, group_rows = [], 0
        if current:
            group.append((current_key, EncodedRows.concat(current)))
        if group:
            yield task(group)

    for meta, (leaves, roots, hashed) in pipe.results(tasks()):
        pos = 0
        for i, ((key, ids, digest), root) in enumerate(zip(meta, roots, strict=True)):
            n = len(ids)
            if hashed is not None:
                digest = hashed[i]
            yield Run(key, ids, leaves[pos * 32 : (pos + n) * 32], root, digest, fmt)
            pos += n


def _runs_out_of_order(source, encode, scan, key_of, pipe: parallel.Pipeline) -> Iterator[Run]:
    rows = scan.rows
    leaves = np.empty((rows, 32), np.uint8)
    if scan.order is None:
        place = None
    else:
        place = np.empty(rows, np.int64)
        place[scan.order] = np.arange(rows, dtype=np.int64)

    def hash_tasks():
        position = 0
        for batch in source.batches():
            enc = encode(batch)
            # The ids the first pass found at these rows: the rows hashed now must carry
            # them, or the index would pair one file's ids with another's leaves.
            if place is None:
                expected = scan.sorted_ids.slice(position, len(enc))
            else:
                expected = scan.sorted_ids.take(as_arrow(place[position : position + len(enc)]))
            if len(expected) != len(enc) or not pc.all(pc.equal(enc.ids, expected)).as_py():
                raise DataError(f"{source.label}: changed while being read (other ids)")
            yield (position, len(enc)), *pipe.hash_rows(enc.buf, enc.offsets, enc.width, [])
            position += len(enc)

    for (start, n), (hashed, _, _) in pipe.results(hash_tasks()):
        if start + n > rows:
            raise DataError(f"{source.label}: changed while being read (more rows than before)")
        got = np.frombuffer(hashed, np.uint8).reshape(n, 32)
        if place is None:
            leaves[start : start + n] = got
        else:
            leaves[place[start : start + n]] = got

    ids = scan.sorted_ids
    keys = key_of(ids, 0)
    spans = _split(ids, keys)

    def root_tasks():
        i = 0
        while i < len(spans):
            group = [spans[i]]
            total = spans[i][2] - spans[i][1]
            i += 1
            while i < len(spans) and total < TASK_ROWS:
                group.append(spans[i])
                total += spans[i][2] - spans[i][1]
                i += 1
            a, b = group[0][1], group[-1][2]
            counts = [stop - start for _, start, stop in group]
            yield group, run_roots, (leaves[a:b].tobytes(), counts)

    for group, roots in pipe.results(root_tasks()):
        for (key, a, b), root in zip(group, roots, strict=True):
            yield Run(key, ids.slice(a, b - a), leaves[a:b].tobytes(), root)
