"""The two artifact formats of a commitment: the partition index and partition leaves.

A commitment cuts the rows, in id order, into partitions of ``2^k`` rows: the
nodes of the Merkle tree at height k, whose roots combine into the dataset
root. The *index* (canonical JSON) lists each partition's row count, root,
first and last id, the address of its *leaves* artifact (binary: the ids and
the leaf hash of each row) and, from format 2 on, its *rows digest*: one
hash over the partition's encoded rows (SHA-256 in format 2, BLAKE3 in format
3) or, from format 4, over its encoded columns (`digest`), with which training
checks a partition without hashing every row.
Verification compares partition roots and fetches the leaves of a partition
only when its root differs; index and leaves are checked against the committed
root before use, so a tampered artifact store is
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

from ..errors import UsageError
from ._hashing import ROWS_DIGEST_FORMAT
from .arrow_numpy import as_numpy
from .errors import DataError

INDEX_FORMAT = f"bubblechain-partitions/{ROWS_DIGEST_FORMAT}"
INDEX_FORMAT_V3 = "bubblechain-partitions/3"
"""Format 3's rows digests are BLAKE3 of the leaf inputs; still read and checked with them."""
INDEX_FORMAT_V2 = "bubblechain-partitions/2"
"""Format 2's rows digests are SHA-256; it is still read and checked with them."""
INDEX_FORMAT_V1 = "bubblechain-partitions/1"
"""Format 1 has no rows digests; it is still read (its partitions are checked leaf by leaf)
and still written when no partition has a digest, so such an index keeps its address."""
_FORMATS = {INDEX_FORMAT: ROWS_DIGEST_FORMAT, INDEX_FORMAT_V3: 3, INDEX_FORMAT_V2: 2}
_FORMATS |= {INDEX_FORMAT_V1: 1}
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
    if ids.null_count:
        raise ValueError("ids of committed rows cannot be null")
    if pa.types.is_integer(ids.type):
        body = as_numpy(ids.cast(pa.int64())).astype("<i8").tobytes()
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
    rows_digest: bytes | None = None
    """Hash of the partition's leaf inputs in id order (None: format 1, or a file
    committed out of id order, where the rows are never together in id order)."""
    index_format: int = ROWS_DIGEST_FORMAT
    """The format of the index it is listed in, which says how its rows digest is hashed."""

    def to_json(self) -> dict:
        out = {
            "rows": self.rows,
            "root": self.root.hex(),
            "first": self.first,
            "last": self.last,
            "leaves": self.leaves,
        }
        if self.rows_digest is not None:
            out["rows_digest"] = self.rows_digest.hex()
        return out


def encode_index(partition_rows: int, rows: int, root_hex: str, parts: list[Partition]) -> bytes:
    """Index artifact: canonical JSON of the partition table (format 1 if it has no digests)."""
    digests = any(p.rows_digest is not None for p in parts)
    return canonical_json(
        {
            "format": INDEX_FORMAT if digests else INDEX_FORMAT_V1,
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
        raw = get(address)
    except UsageError as exc:  # missing from the store, or changed there: not malformed
        raise DataError(f"partition index {address}: {exc}") from None
    try:
        doc = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8
        raise DataError(f"partition index {address}: malformed: not JSON") from None
    try:
        size = doc["partition_rows"]
        parts = [
            Partition(
                p["rows"],
                bytes.fromhex(p["root"]),
                p["first"],
                p["last"],
                p["leaves"],
                _digest(p.get("rows_digest")),
            )
            for p in doc["partitions"]
        ]
    except DataError:
        raise
    except KeyError as exc:  # its text is the bare key: 'leaves'
        raise DataError(f"partition index {address}: malformed: no field {exc.args[0]!r}") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"partition index {address}: malformed: {exc}") from None
    where = f"partition index {address}"
    fmt = doc.get("format")
    if fmt not in _FORMATS or size != commitment["partition_rows"]:
        raise DataError(f"{where}: not a {INDEX_FORMAT} index for this commitment")
    if fmt == INDEX_FORMAT_V1 and any(p.rows_digest is not None for p in parts):
        raise DataError(f"{where}: a {INDEX_FORMAT_V1} index has no rows digests")
    for p in parts:
        p.index_format = _FORMATS[fmt]
    if sum(p.rows for p in parts) != commitment["rows"]:
        raise DataError(f"{where}: partition rows do not add up to {commitment['rows']}")
    if any(p.rows != size for p in parts[:-1]) or (parts and not 0 < parts[-1].rows <= size):
        raise DataError(f"{where}: partitions are not consecutive runs of {size} rows")
    combined = root([p.root for p in parts]) if parts else EMPTY_ROOT
    if combined.hex() != commitment["root"]:
        raise DataError(f"{where}: partition roots do not combine to the committed root")
    return parts


def _digest(value: object) -> bytes | None:
    """A rows digest from the index: absent, or 32 bytes in hex."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"rows_digest is a {type(value).__name__}, expected hex")
    raw = bytes.fromhex(value)
    if len(raw) != 32:
        raise ValueError(f"rows_digest of {len(raw)} bytes, expected 32")
    return raw


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
