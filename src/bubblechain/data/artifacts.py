"""The two artifact formats of a commitment: the partition index and partition leaves.

A commitment cuts the rows, in id order, into partitions of ``2^k`` rows: the
nodes of the Merkle tree at height k, whose roots combine into the dataset
root. The *index* (canonical JSON) lists each partition's row count, root,
first and last id and the address of its *leaves* artifact (binary: the ids and
the leaf hash of each row). Verification compares partition roots and fetches
the leaves of a partition only when its root differs; both formats are checked
against the committed root before use, so a tampered artifact store is
reported, not believed. Formats are specified in docs/row-encoding.md.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from bubblechain.merkle import EMPTY_ROOT, root, root_from_buffer

from .errors import DataError

INDEX_FORMAT = "bubblechain-partitions/1"
LEAVES_MAGIC = b"BCL1"
_ID_INT, _ID_STRING = 0, 1

Getter = Callable[[str], bytes]


def canonical_json(obj: object) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces, UTF-8): equal content, equal address."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def encode_leaves(ids: pa.Array, leaves: bytes) -> bytes:
    """Leaves artifact: magic, id kind, count, ids, then one 32-byte leaf hash per row."""
    n = len(ids)
    if len(leaves) != 32 * n:
        raise ValueError("one 32-byte leaf hash per id expected")
    if pa.types.is_integer(ids.type):
        body = ids.cast(pa.int64()).to_numpy().astype("<i8").tobytes()
        kind = _ID_INT
    else:
        arr = ids.cast(pa.large_string())
        _, offs_buf, data_buf = arr.buffers()
        offs = np.frombuffer(offs_buf, "<i8", count=arr.offset + n + 1)[arr.offset :]
        data = b"" if data_buf is None else bytes(data_buf)[offs[0] : offs[-1]]
        body = (offs - offs[0]).astype("<u8").tobytes() + data
        kind = _ID_STRING
    return LEAVES_MAGIC + struct.pack("<BQ", kind, n) + body + bytes(leaves)


def decode_leaves(data: bytes) -> tuple[list, bytes]:
    """(ids as Python values, concatenated leaf hashes) of a leaves artifact."""
    if data[:4] != LEAVES_MAGIC or len(data) < 13:
        raise DataError("partition leaves artifact: bad magic or truncated")
    kind, n = struct.unpack_from("<BQ", data, 4)
    pos = 13
    if kind == _ID_INT:
        ids = np.frombuffer(data, "<i8", count=n, offset=pos).tolist()
        pos += 8 * n
    elif kind == _ID_STRING:
        offs = np.frombuffer(data, "<u8", count=n + 1, offset=pos).tolist()
        pos += 8 * (n + 1)
        text = data[pos : pos + offs[-1]]
        ids = [text[a:b].decode() for a, b in itertools.pairwise(offs)]
        pos += offs[-1]
    else:
        raise DataError(f"partition leaves artifact: unknown id kind {kind}")
    leaves = data[pos:]
    if len(leaves) != 32 * n:
        raise DataError("partition leaves artifact: wrong number of leaf hashes")
    return ids, leaves


@dataclass
class Partition:
    """One committed partition, as listed in the index."""

    rows: int
    root: bytes
    first: int | str
    last: int | str
    leaves: str

    def to_json(self) -> dict:
        return {
            "rows": self.rows,
            "root": self.root.hex(),
            "first": self.first,
            "last": self.last,
            "leaves": self.leaves,
        }


def encode_index(partition_rows: int, rows: int, root_hex: str, parts: list[Partition]) -> bytes:
    """Index artifact: canonical JSON of the partition table."""
    return canonical_json(
        {
            "format": INDEX_FORMAT,
            "partition_rows": partition_rows,
            "rows": rows,
            "root": root_hex,
            "partitions": [p.to_json() for p in parts],
        }
    )


def load_index(commitment: dict, get: Getter) -> list[Partition]:
    """Fetch the index of ``commitment`` and check it against the committed root and sizes."""
    address = commitment["partitions"]
    try:
        doc = json.loads(get(address))
        size = doc["partition_rows"]
        parts = [
            Partition(p["rows"], bytes.fromhex(p["root"]), p["first"], p["last"], p["leaves"])
            for p in doc["partitions"]
        ]
    except DataError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"partition index {address}: malformed: {exc}") from None
    where = f"partition index {address}"
    if doc.get("format") != INDEX_FORMAT or size != commitment["partition_rows"]:
        raise DataError(f"{where}: not a {INDEX_FORMAT} index for this commitment")
    if sum(p.rows for p in parts) != commitment["rows"]:
        raise DataError(f"{where}: partition rows do not add up to {commitment['rows']}")
    if any(p.rows != size for p in parts[:-1]) or (parts and not 0 < parts[-1].rows <= size):
        raise DataError(f"{where}: partitions are not consecutive runs of {size} rows")
    combined = root([p.root for p in parts]) if parts else EMPTY_ROOT
    if combined.hex() != commitment["root"]:
        raise DataError(f"{where}: partition roots do not combine to the committed root")
    return parts


def load_leaves(part: Partition, index: int, get: Getter) -> tuple[list, bytes]:
    """Fetch a partition's ids and leaf hashes and check them against its committed root."""
    ids, leaves = decode_leaves(get(part.leaves))
    if len(ids) != part.rows or root_from_buffer(leaves) != part.root:
        raise DataError(
            f"partition {index} leaves artifact {part.leaves} does not match the committed root"
        )
    if ids and (ids[0] != part.first or ids[-1] != part.last):
        raise DataError(f"partition {index} leaves artifact: first/last ids do not match the index")
    return ids, leaves
