"""Commit a dataset: the Merkle root over its rows in id order, and the partition artifacts.

``commit`` returns the body of a ``data.commit`` ledger message (plain JSON
data); the partition index and leaves go to an artifact store with
``put(bytes) -> hex`` (``ledger.artifacts``, or ``MemoryStore``), and the body
names the index by its address. A file read in id order also gets a rows
digest per partition in the index (BLAKE3 over the partition's columns, see
`digest`), so that training can check a partition in one pass instead of row
by row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from bubblechain.merkle import EMPTY_ROOT, root

from .artifacts import Partition, encode_index, encode_leaves
from .conform import ConformingEncoder
from .encoding import ENCODING, describe_schema, id_kind, schema_hash
from .engine import leaf_runs, scan_ids
from .errors import DataError
from .sources import DEFAULT_BATCH_ROWS, Source, open_source

DEFAULT_PARTITION_ROWS = 1 << 16
"""Rows per partition: each partition's leaves artifact is ~2.6 MB for integer ids."""


class Putter(Protocol):
    def put(self, data: bytes) -> str: ...


def _check_partition_rows(n: int) -> None:
    if n < 1 or n & (n - 1):
        raise ValueError(f"partition_rows must be a power of two, got {n}")


def commit_encoder(schema: dict, label: str) -> ConformingEncoder:
    """Encode batches of a source whose schema is ``schema`` (nothing to conform)."""
    return ConformingEncoder(schema, label)


def commit(
    data: Any,
    *,
    id_column: str,
    store: Putter,
    name: str | None = None,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    workers: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> dict:
    """Commit ``data`` (a path or an in-memory dataset) and return the commitment body.

    The body holds name, encoding, rows, root (hex), schema, schema_hash,
    partition_rows and ``partitions`` (the index artifact's address). Raises
    DataError naming the source for unreadable input, a missing id column, a
    null id or duplicate ids. ``workers`` hashes on that many processes (default:
    one per core for large inputs).
    """
    _check_partition_rows(partition_rows)
    source = open_source(data, batch_rows=batch_rows)
    schema = describe_schema(source.schema, id_column, source.label)
    kind = id_kind(schema)
    scan = scan_ids(source, id_column, kind)
    if scan.duplicates:
        shown = ", ".join(repr(d) for d in scan.duplicates[:10])
        more = f" and {len(scan.duplicates) - 10} more" if len(scan.duplicates) > 10 else ""
        raise DataError(f"{source.label}: duplicate id {shown}{more} in column {id_column!r}")

    def key_of(ids: pa.Array, start: int) -> np.ndarray:
        return (start + np.arange(len(ids), dtype=np.int64)) // partition_rows

    parts: list[Partition] = []
    encode = commit_encoder(schema, source.label)
    for run in leaf_runs(source, encode, scan, key_of, workers):
        ids = run.ids
        address = store.put(encode_leaves(ids, run.leaves))
        parts.append(
            Partition(len(ids), run.root, ids[0].as_py(), ids[-1].as_py(), address, run.digest)
        )
    rows = sum(p.rows for p in parts)
    if rows != scan.rows:  # the file changed between the two passes
        raise DataError(f"{source.label}: changed while being read ({scan.rows} then {rows} rows)")
    top = root([p.root for p in parts]) if parts else EMPTY_ROOT
    index = store.put(encode_index(partition_rows, rows, top.hex(), parts))
    return {
        "name": name or default_name(source),
        "encoding": ENCODING,
        "rows": rows,
        "root": top.hex(),
        "schema": schema,
        "schema_hash": schema_hash(schema),
        "partition_rows": partition_rows,
        "partitions": index,
    }


def default_name(source: Source) -> str:
    """A file's stem (``train`` for ``data/train.parquet``), else "dataset"."""
    if source.label.startswith("<"):
        return "dataset"
    name = Path(source.label).name
    for suffix in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(suffix)
    return Path(name).stem or name
