"""Row encoding v1: the vectorised encoder against the spec's reference lines."""

from __future__ import annotations

import decimal
import hashlib
import itertools
import json
import re
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import with_value

from bubblechain.data import MemoryStore, commit
from bubblechain.data._hashing import hash_rows
from bubblechain.data.commit import commit_encoder
from bubblechain.data.encoding import describe_schema
from bubblechain.merkle import EMPTY_ROOT, leaf_hash, root

DOC = Path(__file__).resolve().parents[1] / "docs" / "row-encoding.md"
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def reference() -> dict:
    """Execute exactly the reference code block of docs/row-encoding.md."""
    text = DOC.read_text()
    block = re.search(r"<!-- reference-encoder -->\n```python\n(.*?)```", text, re.S)
    assert block, "the reference encoder block is missing from docs/row-encoding.md"
    namespace: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    return namespace


def python_values(table: pa.Table) -> list[dict]:
    """Rows as the reference takes them: temporal values as integers (ns, days)."""
    columns = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        t = col.type
        if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time(t):
            factor = 1_000_000_000 // _PER_SECOND[t.unit]
            raw = col.view(pa.int32() if pa.types.is_time32(t) else pa.int64()).to_pylist()
            columns[name] = [None if v is None else v * factor for v in raw]
        elif pa.types.is_date32(t):
            columns[name] = col.view(pa.int32()).to_pylist()
        elif pa.types.is_dictionary(t):
            columns[name] = col.dictionary_decode().to_pylist()
        else:
            columns[name] = col.to_pylist()
    return [{k: v[i] for k, v in columns.items()} for i in range(table.num_rows)]


def vectorised_leaves(table: pa.Table, id_column: str = "id") -> list[str]:
    schema = describe_schema(table.schema, id_column, "<test>")
    enc = commit_encoder(schema, "<test>")(pa.Table.combine_chunks(table).to_batches()[0])
    leaves = hash_rows(enc.buf.tobytes(), enc.offsets.tobytes(), 0)
    return [leaves[i : i + 32].hex() for i in range(0, len(leaves), 32)]


def all_kinds_table() -> pa.Table:
    nan_other = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000001))[0]
    d = decimal.Decimal
    return pa.table(
        {
            "id": pa.array([3, 1, 2, -7, 2**62], pa.int64()),
            "f": pa.array([0.0, -0.0, float("nan"), nan_other, None], pa.float64()),
            "f32": pa.array([1.5, None, float("inf"), -2.25, 0.1], pa.float32()),
            "i8": pa.array([-1, 0, None, 127, -128], pa.int8()),
            "u64": pa.array([0, 2**64 - 1, 2**63, None, 5], pa.uint64()),
            "b": pa.array([True, False, None, True, False]),
            "s": pa.array(["", "é", "e\u0301", None, "naïve ✓"]),
            "bin": pa.array([b"", b"\x00\xff", None, b"abc", b"x" * 70], pa.binary()),
            "dec": pa.array(
                [d("1.50"), d("-0.01"), None, d("123456789.99"), d("0")], pa.decimal128(12, 2)
            ),
            "ts_s": pa.array([0, -1, None, 253402300799, 1], pa.timestamp("s")),
            "ts_ns": pa.array([1, -1, 10**18, None, 0], pa.timestamp("ns", tz="UTC")),
            "day": pa.array([0, -1, 19000, None, 2932896], pa.date32()),
            "t": pa.array([0, 86_399_999_999, None, 1, 2], pa.time64("ns")),
            "dur": pa.array([-1, 0, 10**6, None, 3], pa.duration("us")),
            "cat": pa.array(["a", "b", "a", None, "b"]).dictionary_encode(),
            "nothing": pa.nulls(5),
        }
    )


def test_reference_lines_match_vectorised_encoder() -> None:
    ref = reference()
    table = all_kinds_table()
    schema = describe_schema(table.schema, "id", "<test>")
    expected = [ref["leaf_hash"](schema, row) for row in python_values(table)]
    assert vectorised_leaves(table) == expected


def test_reference_matches_string_ids_and_nulls_everywhere() -> None:
    ref = reference()
    table = pa.table(
        {
            "key": ["b", "a\u0301", "á", "zz"],  # NFD and NFC spellings
            "x": pa.array([None, None, 1.0, None]),
            "y": pa.array([None, "", None, "q"]),
        }
    )
    schema = describe_schema(table.schema, "key", "<test>")
    expected = [ref["leaf_hash"](schema, row) for row in python_values(table)]
    assert vectorised_leaves(table, "key") == expected


def test_leaf_is_rfc6962_leaf_of_the_documented_bytes() -> None:
    table = pa.table({"id": [5], "x": [1.0]})
    data = b"\x01" + b"\x02" + (5).to_bytes(8, "little") + b"\x04" + struct.pack("<d", 1.0)
    assert vectorised_leaves(table) == [leaf_hash(data).hex()]
    assert leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()


def test_value_distinctions() -> None:
    """Null ≠ 0 ≠ -0.0, all NaNs equal and ≠ numbers, NFC forms equal, units irrelevant."""
    f = [
        0.0,
        -0.0,
        None,
        float("nan"),
        struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000123))[0],
    ]
    leaves = vectorised_leaves(pa.table({"id": [1] * 5, "x": f}))
    assert len({leaves[0], leaves[1], leaves[2], leaves[3]}) == 4
    assert leaves[3] == leaves[4]
    s = vectorised_leaves(pa.table({"id": [1, 1, 1], "x": ["é", "e\u0301", None]}))
    assert s[0] == s[1] != s[2]
    empty = vectorised_leaves(pa.table({"id": [1, 1], "x": ["", None]}))
    assert empty[0] != empty[1]
    sec = vectorised_leaves(pa.table({"id": [1], "t": pa.array([7], pa.timestamp("s"))}))
    ns = vectorised_leaves(pa.table({"id": [1], "t": pa.array([7 * 10**9], pa.timestamp("ns"))}))
    assert sec == ns
    i8 = vectorised_leaves(pa.table({"id": [1], "v": pa.array([9], pa.int8())}))
    u64 = vectorised_leaves(pa.table({"id": [1], "v": pa.array([9], pa.uint64())}))
    assert i8 == u64


def test_root_is_rfc_root_of_reference_leaves_in_id_order() -> None:
    ref = reference()
    table = all_kinds_table()
    schema = describe_schema(table.schema, "id", "<test>")
    rows = sorted(python_values(table), key=lambda r: r["id"])
    leaves = [bytes.fromhex(ref["leaf_hash"](schema, r)) for r in rows]
    body = commit(table, id_column="id", store=MemoryStore(), partition_rows=2)
    assert body["root"] == root(leaves).hex()
    assert body["rows"] == 5


@pytest.mark.parametrize("partition_rows", [1, 2, 4, 8, 1 << 16])
def test_root_does_not_depend_on_partitioning_or_order(partition_rows: int) -> None:
    rng = np.random.default_rng(1)
    n = 37
    table = pa.table({"id": np.arange(n), "x": rng.random(n), "s": [str(i) for i in range(n)]})
    plain = root([bytes.fromhex(h) for h in vectorised_leaves(table)]).hex()
    shuffled = table.take(rng.permutation(n)).select(["s", "id", "x"])
    body = commit(shuffled, id_column="id", store=MemoryStore(), partition_rows=partition_rows)
    assert body["root"] == plain


def test_empty_dataset_root() -> None:
    table = pa.table({"id": pa.array([], pa.int64()), "x": pa.array([], pa.float64())})
    body = commit(table, id_column="id", store=MemoryStore())
    assert body["root"] == EMPTY_ROOT.hex() and body["rows"] == 0


def test_unsupported_type_names_the_column() -> None:
    table = pa.table({"id": [1], "tags": pa.array([[1, 2]])})
    with pytest.raises(ValueError, match=r"'tags'.*not supported"):
        commit(table, id_column="id", store=MemoryStore())


@pytest.mark.parametrize("with_text", [False, True], ids=["fixed-width", "variable-width"])
def test_feed_rows_feeds_exactly_the_encoded_rows(with_text):
    # Training checks partitions by streaming rows into digests block by block; the
    # bytes must be encode_rows' bytes, also across block boundaries and with NaN.
    from bubblechain.data.conform import conforming_encoder

    n = 10_000
    rng = np.random.default_rng(3)
    x = rng.normal(size=n)
    x[[5, 4097, 9999]] = np.nan
    cols = {"id": np.arange(n), "x": x, "k": rng.integers(-5, 5, n), "b": x > 0}
    if with_text:
        cols["s"] = [f"row {i}" * (i % 3) for i in range(n)]
    batch = pa.RecordBatch.from_pydict(cols)
    schema = describe_schema(batch.schema, "id", "test")
    encode = conforming_encoder(schema, "test")
    enc = encode(batch)
    runs = [(0, 3), (3, 4100), (4100, 4100), (4100, n)]
    fed = [(a, b, hashlib.sha256()) for a, b in runs]
    encode.feed(batch, fed)
    for a, b, h in fed:
        want = hashlib.sha256(enc.buf[enc.offsets[a] : enc.offsets[b]].tobytes()).digest()
        assert h.digest() == want, (a, b)


def reference_digest() -> dict:
    """The reference encoder and the rows digest lines of docs/row-encoding.md, as written."""
    namespace = reference()
    block = re.search(r"<!-- rows-digest -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert block, "the rows-digest block is missing from docs/row-encoding.md"
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("id_column", ["id", "key"])
def test_rows_digests_match_the_reference_for_every_kind_and_null(id_column: str) -> None:
    if id_column == "id":
        table = all_kinds_table().sort_by("id")
    else:
        table = pa.table(
            {
                "key": ["a\u0301", "b", "zz", "é"],  # NFD spelling first: sorts as NFC "á"
                "x": pa.array([None, None, 1.0, None]),
                "y": pa.array([None, "", None, "q"]),
            }
        )
        table = table.take(pc.sort_indices(pc.utf8_normalize(table.column("key"), "NFC")))
    ref = reference_digest()
    store = MemoryStore()
    body = commit(table, id_column=id_column, store=store, partition_rows=2)
    index = json.loads(store.get(body["partitions"]))
    rows = python_values(table)
    assert len(index["partitions"]) == -(-len(rows) // 2)
    for k, part in enumerate(index["partitions"]):
        assert part["rows_digest"] == ref["rows_digest"](body["schema"], rows[2 * k : 2 * k + 2])


def test_a_columns_digest_does_not_depend_on_how_the_rows_are_cut() -> None:
    # Training feeds a partition batch by batch, in runs cut wherever batches end.
    from bubblechain.data.conform import conforming_encoder
    from bubblechain.data.digest import ColumnsDigest

    n = 1000
    rng = np.random.default_rng(5)
    x = rng.normal(size=n)
    x[[3, 500]] = np.nan
    s = pa.array([None if i % 7 == 0 else f"r{i}" * (i % 4) for i in range(n)])
    # z has one null: some cuts see a run of one tag (counted, not hashed), others not.
    z = pa.array([None if i == 900 else float(i) for i in range(n)])
    table = pa.table(
        {"id": np.arange(n), "x": x, "s": s, "k": pa.array(rng.integers(0, 9, n)), "z": z}
    )
    schema = describe_schema(table.schema, "id", "test")
    encode = conforming_encoder(schema, "test")
    digests = []
    for cuts in ([0, n], [0, 1, 333, 334, 999, n], [0, 500, n], [0, 900, 901, n]):
        d = ColumnsDigest(5)
        for a, b in itertools.pairwise(cuts):
            encode.feed(table.slice(a, b - a).to_batches()[0], [(0, b - a, d)])
        digests.append(d.digest())
    assert digests[0] == digests[1] == digests[2] == digests[3]
    edited = ColumnsDigest(5)
    encode.feed(with_value(table, "s", 10, "r1").to_batches()[0], [(0, n, edited)])
    assert edited.digest() != digests[0]
