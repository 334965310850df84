"""Row inclusion proofs: RFC 9162 proofs against the committed root, from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import rfc9162_verify

from bubblechain.data import DataError, MemoryStore, commit, prove, verify_proof
from bubblechain.merkle import ProofError, verify_inclusion


@pytest.fixture
def committed(tmp_path: Path):
    n = 45
    t = pa.table({"id": np.arange(100, 100 + n), "v": np.arange(n) * 1.5, "s": ["x"] * n})
    path = tmp_path / "d.parquet"
    pq.write_table(t.take(np.random.default_rng(2).permutation(n)), path)
    store = MemoryStore()
    body = commit(path, id_column="id", store=store, partition_rows=8)
    return path, body, store, t


@pytest.mark.parametrize("row_id", [100, 107, 108, 131, 140, 144])
def test_every_proof_verifies_independently(committed, row_id: int) -> None:
    path, body, store, _ = committed
    p = prove(path, row_id, body, store)
    assert p["row"] == row_id
    assert p["index"] == row_id - 100
    assert p["size"] == 45 and p["root"] == body["root"]
    proof = [bytes.fromhex(h) for h in p["proof"]]
    leaf, root = bytes.fromhex(p["leaf_hash"]), bytes.fromhex(p["root"])
    assert rfc9162_verify(leaf, p["index"], p["size"], proof, root)
    verify_inclusion(leaf, p["index"], p["size"], proof, root)
    verify_proof(p)


def test_proof_from_text_id_and_tampered_proof(committed) -> None:
    path, body, store, _ = committed
    p = prove(path, "120", body, store)
    assert p["row"] == 120
    p["proof"][0] = "00" * 32
    with pytest.raises(ProofError):
        verify_proof(p)


def test_proof_of_untouched_row_in_tampered_file(committed) -> None:
    path, body, store, t = committed
    v = t.column("v").to_numpy().copy()
    v[3] = -1.0
    pq.write_table(t.set_column(1, "v", pa.array(v)), path)
    verify_proof(prove(path, 110, body, store))
    with pytest.raises(DataError, match="row 103 differs from the committed row"):
        prove(path, 103, body, store)


def test_proof_errors(committed) -> None:
    path, body, store, t = committed
    with pytest.raises(DataError, match="row 99 is not in the committed dataset"):
        prove(path, 99, body, store)
    with pytest.raises(DataError, match="not an integer"):
        prove(path, "abc", body, store)
    # Python's int() reads these as 120 as well; as ids they are other texts.
    for text in ("1_20", "１２０", " 120", "+120", "120.0"):
        with pytest.raises(DataError, match="not an integer"):
            prove(path, text, body, store)
    assert prove(path, np.int64(120), body, store)["row"] == 120
    pq.write_table(t.slice(1), path)
    with pytest.raises(DataError, match="no row with id 100"):
        prove(path, 100, body, store)


def test_string_id_proof(tmp_path: Path) -> None:
    t = pa.table({"k": ["b", "é", "a", "c"], "v": [1, 2, 3, 4]})
    store = MemoryStore()
    body = commit(t, id_column="k", store=store, partition_rows=2)
    p = prove(t, "e\u0301", body, store)  # NFD spelling of the committed NFC id
    assert p["row"] == "é" and p["index"] == 3
    verify_proof(p)
