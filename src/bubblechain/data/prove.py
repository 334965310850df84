"""RFC 9162 inclusion proofs of single rows against a committed root.

The proof is stitched from two stored pieces, both checked against the
commitment: the row's path inside its partition (from the partition's leaves
artifact) and the partition's path among the partition roots (from the index).
Partitions are aligned subtrees of ``2^k`` leaves, so the concatenation is
exactly the RFC path of the row's leaf in the whole tree. Only the row itself
is read from the file and re-hashed: a proof can be given for an unchanged row
even when other rows of the file were changed.
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from bisect import bisect_left, bisect_right
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bubblechain.merkle import inclusion_proof, verify_inclusion

from ._hashing import hash_rows
from .artifacts import load_index, load_leaves
from .conform import conforming_encoder, open_for_schema
from .encoding import EncodedRows, canonical_ids, id_kind
from .errors import DataError
from .sources import DEFAULT_BATCH_ROWS
from .verify import Getter

_INT_TEXT = re.compile(r"-?[0-9]+")


def canonical_row_id(row_id: Any, kind: str) -> int | str:
    """The id as committed: an int for integer ids (also from text), NFC text for string ids."""
    if kind == "int":
        # Written as the id is (`-12`), not as Python's int() also reads it (`1_000`,
        # full-width digits, spaces): one text names one row.
        if isinstance(row_id, numbers.Integral) and not isinstance(row_id, bool):
            return int(row_id)
        if isinstance(row_id, str) and _INT_TEXT.fullmatch(row_id):
            return int(row_id)
        raise DataError(
            f"row id {row_id!r} is not an integer, and the ids of this dataset are integers"
        )
    return unicodedata.normalize("NFC", str(row_id))


def prove(
    data: Any, row_id: Any, commitment: dict, store: Getter, *, batch_rows: int = DEFAULT_BATCH_ROWS
) -> dict:
    """Inclusion proof of the row ``row_id`` of ``data`` in the committed tree.

    Returns ``{"row", "index", "size", "leaf_hash", "proof": [hex], "root"}``,
    verifiable with any RFC 9162 verifier (``verify_inclusion(leaf_hash, index,
    size, proof, root)``). Raises DataError if the id was not committed, is not
    in the file, occurs twice, or if the row differs from the committed row.
    """
    schema = commitment["schema"]
    kind = id_kind(schema)
    rid = canonical_row_id(row_id, kind)
    parts = load_index(commitment, store.get)
    p = bisect_right([part.first for part in parts], rid) - 1
    if p < 0 or rid > parts[p].last:
        raise DataError(f"row {rid!r} is not in the committed {_which(commitment)}")
    ids, leaves = load_leaves(parts[p], p, store.get)
    j = bisect_left(ids, rid)
    if j == len(ids) or ids[j] != rid:
        raise DataError(f"row {rid!r} is not in the committed {_which(commitment)}")
    committed_leaf = leaves[j * 32 : (j + 1) * 32]

    source, _ = open_for_schema(data, schema, batch_rows)
    encoded = _find_row(source, schema, rid, kind)
    leaf = hash_rows(encoded.buf.tobytes(), encoded.offsets.tobytes(), 0)
    if leaf != committed_leaf:
        raise DataError(
            f"{source.label}: row {rid!r} differs from the committed row ({_which(commitment)})"
        )

    size = commitment["rows"]
    index = p * commitment["partition_rows"] + j
    within = [leaves[i : i + 32] for i in range(0, len(leaves), 32)]
    proof = inclusion_proof(within, j) + inclusion_proof([part.root for part in parts], p)
    root = bytes.fromhex(commitment["root"])
    verify_inclusion(leaf, index, size, proof, root)
    return {
        "row": rid,
        "index": index,
        "size": size,
        "leaf_hash": leaf.hex(),
        "proof": [h.hex() for h in proof],
        "root": root.hex(),
    }


def _find_row(source, schema: dict, rid: int | str, kind: str) -> EncodedRows:
    """Encode the one row of the source with id ``rid``."""
    id_column = schema["id_column"]
    encode = conforming_encoder(schema, source.label)
    found: list[EncodedRows] = []
    for batch in source.batches():
        ids = canonical_ids(batch.column(id_column), kind, source.label)
        hit = pc.equal(ids, pa.scalar(rid, ids.type))
        if pc.any(hit).as_py():
            found.append(encode(batch.filter(hit)))
    count = sum(len(f) for f in found)
    if count == 0:
        odd = sorted((source.unreadable or {}).items())
        hint = f"; file row {odd[0][0] + 1} has an id that is no int: {odd[0][1]!r}" if odd else ""
        raise DataError(f"{source.label}: no row with id {rid!r}{hint}")
    if count > 1:
        raise DataError(f"{source.label}: id {rid!r} occurs {count} times")
    return found[0]


def verify_proof(proof: dict) -> None:
    """Check a proof dict as ``prove`` returns it; raises ProofError if it does not hold."""
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        proof["index"],
        proof["size"],
        [bytes.fromhex(h) for h in proof["proof"]],
        bytes.fromhex(proof["root"]),
    )


def _which(commitment: dict) -> str:
    """The commitment in messages: dataset 'churn' (version 2 when the ledger numbered it)."""
    version = commitment.get("version")
    return f"dataset {commitment.get('name')!r}" + (f" version {version}" if version else "")
