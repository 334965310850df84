"""Training partitions: row ranges in id order, read and verified against the commitment.

A training partition is the row range [start, stop) of the dataset in id order.
The worker reads the committed partitions that cover it (selecting them by their
committed id ranges, so a tampered file cannot shift rows between partitions),
recomputes their leaves and roots, and refuses to compute if any root differs,
naming the changed, missing and added row ids.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data._hashing import hash_rows
from ..data.artifacts import encode_leaves, load_index
from ..data.conform import conforming_encoder, open_for_schema
from ..data.encoding import canonical_ids, id_kind
from ..data.engine import Run
from ..data.sources import open_source
from ..data.verify import _Diff
from ..merkle import root_from_buffer

_SHOW = 20


class PartitionTampered(ValueError):
    """A partition's rows do not match the dataset commitment."""

    def __init__(self, source: str, changed: list, missing: list, added: list):
        self.changed, self.missing, self.added = changed, missing, added
        parts = [
            f"{what} {_ids(ids)}"
            for what, ids in (("changed", changed), ("missing", missing), ("added", added))
            if ids
        ]
        super().__init__(f"{source} does not match its commitment: {'; '.join(parts)}")

    def summary(self) -> dict[str, Any]:
        return {"changed": self.changed, "missing": self.missing, "added": self.added}


def _ids(ids: list) -> str:
    shown = ", ".join(map(str, ids[:_SHOW]))
    return f"[{shown}{', …' if len(ids) > _SHOW else ''}] ({len(ids)} rows)"


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
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows [start, stop) of `source` in id order as (X float64, y), verified first."""
    schema = commitment["schema"]
    id_col = schema["id_column"]
    kind = id_kind(schema)
    parts = load_index(commitment, store.get)
    size = commitment["partition_rows"]
    k0, k1 = start // size, (stop - 1) // size
    lo, hi = parts[k0].first, parts[k1].last
    src, _ = open_for_schema(source, schema, 1 << 16)
    kept = []
    past = 0
    for batch in src.batches():
        ids = canonical_ids(batch.column(id_col), kind, src.label)
        mask = pc.and_(
            pc.greater_equal(ids, pa.scalar(lo, ids.type)),
            pc.less_equal(ids, pa.scalar(hi, ids.type)),
        )
        if pc.any(mask).as_py():
            kept.append(batch.filter(mask))
        # Reading stops in an id-sorted file (the usual case) after two sorted batches
        # wholly past the range: the rows trained on are still exactly the committed ones.
        past = past + 1 if len(ids) and pc.min(ids).as_py() > hi and _sorted(ids) else 0
        if past >= 2:
            break
    table = pa.Table.from_batches(kept, schema=src.schema) if kept else src.schema.empty_table()
    ids = canonical_ids(table.column(id_col).combine_chunks(), kind, src.label)
    order = pc.sort_indices(ids)
    table, ids = table.take(order), ids.take(order)
    _verify(src.label, table, ids, parts, range(k0, k1 + 1), schema, store)
    offset = k0 * size
    rows = table.slice(start - offset, stop - start)
    X = (
        np.column_stack(
            [rows.column(f).to_numpy(zero_copy_only=False).astype(np.float64) for f in features]
        )
        if features
        else np.empty((len(rows), 0))
    )
    y = rows.column(target).to_numpy(zero_copy_only=False) if target else None
    return X, y


def _sorted(ids: pa.Array) -> bool:
    return len(ids) < 2 or pc.all(pc.greater_equal(ids[1:], ids[:-1])).as_py()


def _verify(label, table: pa.Table, ids: pa.Array, parts, keys, schema, store) -> None:
    """Recompute each committed partition's leaves and check them against the commitment.

    The committed leaves artifact of a partition is content-addressed, and its address
    is in the index the ledger's data.commit names: one SHA-256 over the recomputed
    ids and leaves settles the whole partition. Only a partition that differs is
    compared row by row (with its committed root) to name the differing ids.
    """
    encode = conforming_encoder(schema, label)
    batch = table.combine_chunks().to_batches()
    enc = encode(batch[0]) if batch else None
    leaves = hash_rows(enc.buf.tobytes(), enc.offsets.tobytes(), enc.width) if enc else b""
    diff = _Diff(parts, store)
    for k in keys:
        p = parts[k]
        in_part = pc.and_(
            pc.greater_equal(ids, pa.scalar(p.first, ids.type)),
            pc.less_equal(ids, pa.scalar(p.last, ids.type)),
        )
        idx = np.flatnonzero(in_part.to_numpy(zero_copy_only=False))
        if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
            run_leaves = leaves[idx[0] * 32 : (idx[-1] + 1) * 32]
        else:
            run_leaves = b"".join(leaves[i * 32 : (i + 1) * 32] for i in idx)
        run_ids = ids.take(pa.array(idx, pa.int64()))
        if hashlib.sha256(encode_leaves(run_ids, run_leaves)).hexdigest() == p.leaves:
            continue
        diff.check(Run(k, run_ids, run_leaves, root_from_buffer(run_leaves)))
    if diff.changed or diff.missing or diff.added:
        raise PartitionTampered(
            label, sorted(diff.changed), sorted(diff.missing), sorted(diff.added)
        )


def read_rows(
    source: str, start: int, stop: int, features: Sequence[str], target: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows [start, stop) in file order, unverified: the untracked baseline's reader.

    Reads batch by batch and stops after the range, as `read_partition` does.
    """
    cols = [*features, *([target] if target else [])]
    src = open_source(source, batch_rows=1 << 16)
    kept, pos = [], 0
    for batch in src.batches(cols):
        n = batch.num_rows
        if pos + n > start and pos < stop:
            kept.append(batch.slice(max(start - pos, 0), min(stop, pos + n) - max(start, pos)))
        pos += n
        if pos >= stop:
            break
    t = pa.Table.from_batches(kept)
    X = np.column_stack([t.column(f).to_numpy().astype(np.float64) for f in features])
    return X, (t.column(target).to_numpy() if target else None)
