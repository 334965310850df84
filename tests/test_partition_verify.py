"""A worker's partition check (`read_partition`): the tamper matrix, rows digests, old indexes.

Training checks each committed partition with one pass over its columns (the
rows digest in a format 4 index; formats 2 and 3 hash its encoded rows) and
hashes leaves only to name the ids of a partition that differs, or for a format
1 index. These tests tamper a real
file and call `read_partition` directly: every kind of change must make it
refuse with the exact ids, and nothing else (a NaN payload, the file's order)
may.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from blake3 import blake3
from conftest import with_value

from bubblechain.data import MemoryStore, commit, verify
from bubblechain.data.artifacts import (
    INDEX_FORMAT,
    INDEX_FORMAT_V1,
    INDEX_FORMAT_V2,
    INDEX_FORMAT_V3,
    canonical_json,
)
from bubblechain.data.commit import commit_encoder
from bubblechain.data.errors import DataError
from bubblechain.training import partitions
from bubblechain.training.partitions import (
    PartitionTampered,
    UnusableValues,
    partition_cursor,
    plain_cursor,
    plan,
    read_partition,
    read_rows,
    verified_rows,
)

N = 64
SIZE = 8  # rows per committed partition: several, so localisation is exercised
START, STOP = 16, 32  # the range a worker trains on: committed partitions 2 and 3
FEATURES = ["x", "n"]
OTHER_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF4000000000001))[0]
DOC = Path(__file__).resolve().parents[1] / "docs" / "row-encoding.md"


def base_table() -> pa.Table:
    """Even ids (so rows can be added between them), a 0.0 and a NaN inside the range."""
    rng = np.random.default_rng(11)
    x = rng.random(N).round(3)
    x[18] = 0.0
    x[20] = np.nan
    return pa.table(
        {
            "id": np.arange(N, dtype=np.int64) * 2,
            "x": x,
            "n": rng.integers(0, 100, N),
            "s": [f"row-{i}" for i in range(N)],
            "y": rng.integers(0, 2, N),
        }
    )


def row_id(i: int) -> int:
    return 2 * i


@pytest.fixture
def committed(tmp_path: Path):
    path = tmp_path / "data.parquet"
    pq.write_table(base_table(), path, row_group_size=16)
    store = MemoryStore()
    body = commit(path, id_column="id", store=store, partition_rows=SIZE)
    return path, body, store


def extra_row(id_: int, table: pa.Table | None = None) -> pa.Table:
    schema = (table or base_table()).schema
    return pa.table({"id": [id_], "x": [0.5], "n": [1], "s": ["new"], "y": [0]}).cast(schema)


def read(path: Path, body: dict, store, start: int = START, stop: int = STOP, cursor=None):
    """(X, y) of the rows as verified: the checks of training's values (a NaN in x) come after."""
    rows, _ = verified_rows(str(path), body, store, start, stop, cursor)
    return partitions._matrix(rows, FEATURES), rows.column("y").to_numpy()


def refused(path: Path, table: pa.Table, body: dict, store, **kw) -> PartitionTampered:
    pq.write_table(table, path, row_group_size=16)
    with pytest.raises(PartitionTampered) as exc:
        read(path, body, store, **kw)
    return exc.value


def expect(err: PartitionTampered, changed=(), missing=(), added=()) -> None:
    assert (err.changed, err.missing, err.added) == (list(changed), list(missing), list(added))
    for ids in (changed, missing, added):
        for i in ids:
            assert str(i) in str(err)


def expected_rows(start: int = START, stop: int = STOP) -> tuple[np.ndarray, np.ndarray]:
    t = base_table().slice(start, stop - start)
    X = np.column_stack([t.column(f).to_numpy().astype(np.float64) for f in FEATURES])
    return X, t.column("y").to_numpy()


def leaf_inputs(body: dict, k: int) -> bytes:
    """The leaf inputs (0x00 ‖ encoded row) of committed partition k, in id order."""
    enc = commit_encoder(body["schema"], "t")(base_table().slice(k * SIZE, SIZE).to_batches()[0])
    rows = [enc.buf[a:b].tobytes() for a, b in itertools.pairwise(enc.offsets)]
    assert all(li[:1] == b"\x00" for li in rows)
    return b"".join(rows)


def column_streams(t: pa.Table) -> list[bytes]:
    """The format 4 streams of ``t``, built here from the spec's words with numpy and Python."""
    ids = t.column("id").to_numpy()
    x = t.column("x").to_numpy().copy()
    x[np.isnan(x)] = np.frombuffer(struct.pack("<Q", 0x7FF8000000000000), "<f8")[0]
    strings = [s.encode() for s in t.column("s").to_pylist()]
    n = len(t)
    streams = [
        (b"\x02" * n, ids.astype("<i8").tobytes(), b""),  # id
        (b"\x02" * n, t.column("n").to_numpy().astype("<i8").tobytes(), b""),
        (b"\x06" * n, b"".join(struct.pack("<Q", len(s)) for s in strings), b"".join(strings)),
        (b"\x04" * n, x.astype("<f8").tobytes(), b""),
        (b"\x02" * n, t.column("y").to_numpy().astype("<i8").tobytes(), b""),
    ]  # the id, then n, s, x, y: sorted by name
    return [blake3(s).digest() for column in streams for s in column]


def test_the_index_has_a_rows_digest_per_partition_as_specified(committed) -> None:
    _, body, store = committed
    index = json.loads(store.get(body["partitions"]))
    assert index["format"] == INDEX_FORMAT == "bubblechain-partitions/4"
    for k, part in enumerate(index["partitions"]):
        rows = base_table().slice(k * SIZE, SIZE)
        want = blake3(b"bubblechain-rows/3\x00" + b"".join(column_streams(rows))).hexdigest()
        assert part["rows_digest"] == want


def test_the_spec_s_own_lines_give_the_rows_digest(committed) -> None:
    """docs/row-encoding.md: the reference encoder and the rows digest lines, run as written."""
    _, body, store = committed
    text = DOC.read_text()
    namespace: dict = {}
    for marker in ("reference-encoder", "rows-digest"):
        block = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.S)
        assert block, f"the {marker} block is missing from {DOC.name}"
        exec(compile(block.group(1), str(DOC), "exec"), namespace)
    index = json.loads(store.get(body["partitions"]))
    rows = base_table().to_pylist()
    for k, part in enumerate(index["partitions"]):
        chunk = rows[k * SIZE : (k + 1) * SIZE]
        assert namespace["rows_digest"](body["schema"], chunk) == part["rows_digest"]


def test_untouched_partition_reads_exactly_the_rows(committed) -> None:
    path, body, store = committed
    X, y = read(path, body, store)
    X0, y0 = expected_rows()
    np.testing.assert_array_equal(X, X0)  # NaN in the same place
    np.testing.assert_array_equal(y, y0)
    assert X.dtype == np.float64 and X.flags.c_contiguous


def test_a_file_in_id_order_is_checked_where_its_rows_are(committed, monkeypatch) -> None:
    # Its rows are read at their positions, without looking ids up, and the rows
    # digests (which cover the ids) say they are the committed ones.
    path, body, store = committed

    def by_id(*args, **kwargs):
        raise AssertionError("read by id")

    monkeypatch.setattr(partitions._Span, "read", by_id)
    for a, b in [(START, STOP), (10, 27), *plan(N, 3, SIZE)]:
        np.testing.assert_array_equal(read(path, body, store, a, b)[0], expected_rows(a, b)[0])
    pq.write_table(with_value(base_table(), "x", 3, 9.0), path, row_group_size=16)
    np.testing.assert_array_equal(read(path, body, store)[0], expected_rows()[0])
    with pytest.raises(AssertionError, match="read by id"):  # partition 0 no longer matches
        read(path, body, store, 0, SIZE)
    pq.write_table(pa.concat_tables([base_table(), extra_row(row_id(N))]), path)
    with pytest.raises(AssertionError, match="read by id"):  # a row more: another one's?
        read(path, body, store)


def test_every_planned_range_reads_and_they_cover_the_rows(committed) -> None:
    path, body, store = committed
    got = [read(path, body, store, a, b) for a, b in plan(N, 3, SIZE)]
    np.testing.assert_array_equal(np.concatenate([X for X, _ in got]), expected_rows(0, N)[0])


def test_a_range_not_aligned_to_partitions(committed) -> None:
    path, body, store = committed
    X, _ = read(path, body, store, 10, 27)
    np.testing.assert_array_equal(X, expected_rows(10, 27)[0])
    t = with_value(base_table(), "n", 9, 1000)  # outside [10, 27) but in its partition 1
    expect(refused(path, t, body, store, start=10, stop=27), changed=[row_id(9)])


def test_change_one_value(committed) -> None:
    path, body, store = committed
    expect(refused(path, with_value(base_table(), "x", 17, 0.25), body, store), [row_id(17)])


def test_change_a_column_not_trained_on(committed) -> None:
    path, body, store = committed
    t = with_value(base_table(), "s", 30, "row-30 ")
    expect(refused(path, t, body, store), changed=[row_id(30)])


def test_change_a_value_s_type(committed) -> None:
    path, body, store = committed
    t = base_table()
    n = t.column("n").to_numpy().astype(np.float64)
    n[25] += 0.5  # the column is now float; only row 25 does not convert back to an int
    t = t.set_column(2, "n", pa.array(n))
    expect(refused(path, t, body, store), changed=[row_id(25)])


def test_delete_a_row(committed) -> None:
    path, body, store = committed
    t = base_table().filter(pc.not_equal(base_table().column("id"), row_id(21)))
    expect(refused(path, t, body, store), missing=[row_id(21)])


def test_delete_the_last_row_of_the_range(committed) -> None:
    path, body, store = committed
    t = base_table().filter(pc.not_equal(base_table().column("id"), row_id(STOP - 1)))
    expect(refused(path, t, body, store), missing=[row_id(STOP - 1)])


def test_add_a_row_inside_a_partition(committed) -> None:
    path, body, store = committed
    t = pa.concat_tables([base_table(), extra_row(row_id(20) + 1)])
    expect(refused(path, t, body, store), added=[row_id(20) + 1])


def test_add_a_row_between_two_partitions_of_the_range(committed) -> None:
    path, body, store = committed
    between = row_id(23) + 1  # after partition 2's last id, before partition 3's first
    t = base_table()
    t = pa.concat_tables([t.slice(0, 24), extra_row(between), t.slice(24)])  # still sorted
    expect(refused(path, t, body, store), added=[between])


def test_duplicate_an_id(committed) -> None:
    path, body, store = committed
    t = with_value(base_table(), "id", 22, row_id(21))  # row 22 now claims row 21's id
    expect(refused(path, t, body, store), changed=[row_id(21)], missing=[row_id(22)])


def test_copy_a_row_next_to_itself(committed) -> None:
    path, body, store = committed
    t = base_table()
    t = pa.concat_tables([t.slice(0, 26), t.slice(25)])  # row 25 twice, file still sorted
    expect(refused(path, t, body, store), changed=[row_id(25)])


def test_set_a_value_to_null(committed) -> None:
    path, body, store = committed
    expect(refused(path, with_value(base_table(), "n", 19, None), body, store), [row_id(19)])


def test_negative_zero_is_a_change(committed) -> None:
    path, body, store = committed
    assert base_table().column("x")[18].as_py() == 0.0
    expect(refused(path, with_value(base_table(), "x", 18, -0.0), body, store), [row_id(18)])


def test_another_nan_is_not_a_change(committed) -> None:
    path, body, store = committed
    pq.write_table(with_value(base_table(), "x", 20, OTHER_NAN), path)
    stored = pq.read_table(path).column("x").to_numpy()[20:21].view(np.uint64)[0]
    assert stored == 0x7FF4000000000001, "the file must really hold the other NaN"
    X, _ = read(path, body, store)
    assert np.isnan(X[20 - START, 0])


def test_nan_to_number_and_number_to_nan_are_changes(committed) -> None:
    path, body, store = committed
    t = with_value(with_value(base_table(), "x", 20, 0.0), "x", 27, float("nan"))
    expect(refused(path, t, body, store), changed=[row_id(20), row_id(27)])


def test_a_null_id_is_a_missing_row(committed) -> None:
    path, body, store = committed
    expect(refused(path, with_value(base_table(), "id", 29, None), body, store), [], [row_id(29)])


def test_changes_outside_the_range_are_not_this_worker_s(committed) -> None:
    path, body, store = committed
    t = with_value(with_value(base_table(), "x", 3, 9.0), "x", 40, 9.0)
    pq.write_table(t, path)
    np.testing.assert_array_equal(read(path, body, store)[0], expected_rows()[0])


def test_rows_in_another_order_are_not_a_change(committed) -> None:
    path, body, store = committed
    shuffled = base_table().take(np.random.default_rng(5).permutation(N))
    pq.write_table(shuffled.select(["y", "s", "x", "id", "n"]), path, row_group_size=10)
    X, y = read(path, body, store)
    np.testing.assert_array_equal(X, expected_rows()[0])
    np.testing.assert_array_equal(y, expected_rows()[1])


def test_a_row_of_the_range_moved_past_where_a_sorted_read_stops(committed) -> None:
    """Reading stops once an id-sorted file is past the range; a mismatch reads it all."""
    path, body, store = committed
    t = base_table()
    moved = pa.concat_tables([t.slice(0, 20), t.slice(21), t.slice(20, 1)])
    pq.write_table(moved, path, row_group_size=16)
    np.testing.assert_array_equal(read(path, body, store)[0], expected_rows()[0])
    t = pa.concat_tables([t.slice(0, 20), t.slice(21), with_value(t, "x", 20, 1.5).slice(20, 1)])
    expect(refused(path, t, body, store), changed=[row_id(20)])


def test_many_changes_name_every_id(committed) -> None:
    path, body, store = committed
    t = with_value(with_value(base_table(), "x", 16, 9.0), "s", 31, None)
    t = t.filter(pc.not_equal(t.column("id"), row_id(24)))
    t = pa.concat_tables([t, extra_row(row_id(17) + 1)])
    expect(refused(path, t, body, store), [row_id(16), row_id(31)], [row_id(24)], [35])


# -- a worker's read cursor: its partitions in increasing order cost one pass ----------------


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 5 rows, so that batches straddle the 8-row partitions."""
    monkeypatch.setattr(partitions, "_BATCH_ROWS", 5)


def counted(cursor):
    """The cursor, and a list that grows by one for each batch decoded from the file."""
    decoded, opened = [], cursor._open

    def batches():
        for b in opened():
            decoded.append(b.num_rows)
            yield b

    cursor._open = batches
    return cursor, decoded


def test_a_cursor_reads_a_worker_s_partitions_in_one_pass(committed, small_batches) -> None:
    path, body, store = committed
    cursor, decoded = counted(partition_cursor(str(path), body))
    mine = plan(N, 8, SIZE)[1::2]  # a worker's share: every other partition
    for a, b in mine:
        X, y = read(path, body, store, a, b, cursor)
        np.testing.assert_array_equal(X, expected_rows(a, b)[0])
        np.testing.assert_array_equal(y, expected_rows(a, b)[1])
    assert sum(decoded) == N  # every row decoded once, not once per partition before it


def test_a_cursor_starts_over_for_an_earlier_partition(committed, small_batches) -> None:
    path, body, store = committed
    cursor, decoded = counted(partition_cursor(str(path), body))
    for a, b in [(40, 48), (8, 16), (16, 24)]:
        X, _ = read(path, body, store, a, b, cursor)
        np.testing.assert_array_equal(X, expected_rows(a, b)[0])
    assert sum(decoded) == 50 + 20 + 5  # to row 50, again from the start, then one more batch


def test_a_tampered_partition_read_through_a_cursor_names_its_ids(committed, small_batches) -> None:
    path, body, store = committed
    pq.write_table(with_value(base_table(), "x", 27, 0.125), path, row_group_size=16)
    cursor = partition_cursor(str(path), body)
    for a, b in plan(N, 8, SIZE):
        if a <= 27 < b:
            with pytest.raises(PartitionTampered) as exc:
                read(path, body, store, a, b, cursor)
            expect(exc.value, changed=[row_id(27)])
        else:  # the partitions after it still resume and read exactly
            X, _ = read(path, body, store, a, b, cursor)
            np.testing.assert_array_equal(X, expected_rows(a, b)[0])


def test_a_cursor_over_a_file_out_of_id_order(committed, small_batches) -> None:
    path, body, store = committed
    shuffled = base_table().take(np.random.default_rng(7).permutation(N))
    pq.write_table(shuffled, path, row_group_size=16)
    cursor = partition_cursor(str(path), body)
    for a, b in plan(N, 4, SIZE):
        X, y = read(path, body, store, a, b, cursor)
        np.testing.assert_array_equal(X, expected_rows(a, b)[0])
        np.testing.assert_array_equal(y, expected_rows(a, b)[1])


def test_the_untracked_reader_resumes_the_same_way(committed, small_batches) -> None:
    path, _, _ = committed
    cursor, decoded = counted(plain_cursor(str(path), ["n"], "y"))  # x holds a NaN: unusable
    for a, b in [*plan(N, 8, SIZE)[::2], (0, 8)]:
        X, y = read_rows(str(path), a, b, ["n"], "y", cursor)
        np.testing.assert_array_equal(X, expected_rows(a, b)[0][:, 1:])
        np.testing.assert_array_equal(y, expected_rows(a, b)[1])
    assert sum(decoded) == 60 + 10  # one pass to row 60, then the start again


def test_training_refuses_the_nan_it_verified(committed) -> None:
    path, body, store = committed
    read(path, body, store)  # the rows are the committed ones, NaN and all
    with pytest.raises(
        UnusableValues, match=r"feature 'x' is missing or not finite at row ids \[40\] \(1 row\)"
    ):
        read_partition(str(path), body, store, START, STOP, FEATURES, "y")
    X, _ = read_partition(str(path), body, store, START, STOP, ["n"], "y")
    np.testing.assert_array_equal(X, expected_rows()[0][:, 1:])
    with pytest.raises(UnusableValues, match=r"at positions \[4\] \(1 row\)"):
        read_rows(str(path), START, STOP, FEATURES, "y")


def test_unusable_values_are_named_column_by_column() -> None:
    t = pa.table({"id": [1, 2, 3], "a": [1.0, float("nan"), 2.0], "b": [float("inf"), 1.0, 2.0]})
    with pytest.raises(UnusableValues, match=r"t: feature 'a' .* at row ids \[2\] \(1 row\)$") as e:
        partitions.usable(t, ["a", "b"], None, "t", "id")
    assert e.value.ids == [2]
    with pytest.raises(UnusableValues, match=r"feature 'b' .* at row ids \[1\] \(1 row\)$"):
        partitions.usable(t, ["b", "a"], None, "t", "id")


def test_string_ids(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    t = base_table()
    t = t.set_column(0, "id", pa.array([f"k{i:03d}" for i in range(N)]))
    pq.write_table(t, path, row_group_size=16)
    store = MemoryStore()
    body = commit(path, id_column="id", store=store, partition_rows=SIZE)
    np.testing.assert_array_equal(read(path, body, store)[0], expected_rows()[0])
    extra = pa.table({"id": ["k023x"], "x": [0.5], "n": [1], "s": ["new"], "y": [0]})
    tampered = pa.concat_tables([with_value(t, "x", 17, 0.75), extra.cast(t.schema)])
    expect(refused(path, tampered, body, store), changed=["k017"], added=["k023x"])


# -- format 1 indexes (no rows digests) and inconsistent commitments ------------------------------


def rewrite_index(body: dict, store: MemoryStore, edit) -> dict:
    """A copy of the commitment whose partition index is ``edit(index)``."""
    index = json.loads(store.get(body["partitions"]))
    edit(index)
    return {**body, "partitions": store.put(canonical_json(index))}


def as_format_1(index: dict) -> None:
    index["format"] = INDEX_FORMAT_V1
    for p in index["partitions"]:
        del p["rows_digest"]


def test_a_format_1_index_is_checked_leaf_by_leaf(committed) -> None:
    path, body, store = committed
    old = rewrite_index(body, store, as_format_1)
    np.testing.assert_array_equal(read(path, old, store)[0], expected_rows()[0])
    assert verify(path, old, store)["ok"]
    t = with_value(base_table(), "x", 18, -0.0).filter(
        pc.not_equal(base_table().column("id"), row_id(29))
    )
    expect(refused(path, t, old, store), changed=[row_id(18)], missing=[row_id(29)])


def as_format(body: dict, fmt: str):
    """The index as format 2 or 3 wrote it: rows digests of the leaf inputs."""
    hasher, prefix = {
        INDEX_FORMAT_V2: (hashlib.sha256, b"bubblechain-rows/1\x00"),
        INDEX_FORMAT_V3: (blake3, b"bubblechain-rows/2\x00"),
    }[fmt]

    def edit(index: dict) -> None:
        index["format"] = fmt
        for k, p in enumerate(index["partitions"]):
            p["rows_digest"] = hasher(prefix + leaf_inputs(body, k)).hexdigest()

    return edit


@pytest.mark.parametrize("fmt", [INDEX_FORMAT_V2, INDEX_FORMAT_V3])
def test_an_older_index_is_checked_with_its_own_digests(committed, fmt: str) -> None:
    path, body, store = committed
    old = rewrite_index(body, store, as_format(body, fmt))
    np.testing.assert_array_equal(read(path, old, store)[0], expected_rows()[0])
    assert verify(path, old, store)["ok"]

    def wrong_digest(index: dict) -> None:
        as_format(body, fmt)(index)
        index["partitions"][3]["rows_digest"] = "00" * 32

    bad = rewrite_index(body, store, wrong_digest)
    with pytest.raises(DataError, match="inconsistent"):
        read(path, bad, store)
    with pytest.raises(DataError, match="inconsistent"):
        verify(path, bad, store)
    t = with_value(base_table(), "x", 18, -0.0).filter(
        pc.not_equal(base_table().column("id"), row_id(29))
    )
    expect(refused(path, t, old, store), changed=[row_id(18)], missing=[row_id(29)])


def test_a_format_1_index_cannot_carry_digests(committed) -> None:
    _, body, store = committed

    def v1_with_digests(index: dict) -> None:
        index["format"] = INDEX_FORMAT_V1

    bad = rewrite_index(body, store, v1_with_digests)
    with pytest.raises(DataError, match="no rows digests"):
        verify(committed[0], bad, store)


def test_a_file_committed_out_of_order_has_a_format_1_index(tmp_path: Path) -> None:
    path = tmp_path / "shuffled.parquet"
    pq.write_table(base_table().take(np.random.default_rng(2).permutation(N)), path)
    store = MemoryStore()
    body = commit(path, id_column="id", store=store, partition_rows=SIZE)
    assert json.loads(store.get(body["partitions"]))["format"] == INDEX_FORMAT_V1
    np.testing.assert_array_equal(read(path, body, store)[0], expected_rows()[0])
    t = with_value(base_table(), "n", 20, None)
    expect(refused(path, t, body, store), changed=[row_id(20)])


def test_a_digest_that_disagrees_with_the_root_is_an_inconsistent_commitment(committed) -> None:
    path, body, store = committed

    def wrong_digest(index: dict) -> None:
        index["partitions"][3]["rows_digest"] = "00" * 32

    bad = rewrite_index(body, store, wrong_digest)
    with pytest.raises(DataError, match="inconsistent"):
        read(path, bad, store)  # the rows match the root: not believed, not refused either
    with pytest.raises(DataError, match="inconsistent"):
        verify(path, bad, store)


def test_verify_catches_a_digest_of_other_rows_than_the_root(committed, tmp_path: Path) -> None:
    """A committer who records the digest of other rows than the root's is found out.

    Training trusts the digest as it trusts the leaves address: both are in the
    committed index. `data verify` of the committed rows then reports the index as
    inconsistent, and `data verify` of the rows trained on reports every changed id.
    """
    path, body, store = committed
    other = tmp_path / "other.parquet"
    pq.write_table(with_value(base_table(), "x", 17, 0.25), other)
    elsewhere = MemoryStore()
    lie = commit(other, id_column="id", store=elsewhere, partition_rows=SIZE)
    wrong = json.loads(elsewhere.get(lie["partitions"]))["partitions"][2]["rows_digest"]

    def digest_of_other_rows(index: dict) -> None:
        index["partitions"][2]["rows_digest"] = wrong

    bad = rewrite_index(body, store, digest_of_other_rows)
    assert read(other, bad, store)[0][17 - START, 0] == 0.25  # what the lie was made for
    with pytest.raises(DataError, match="inconsistent"):
        verify(path, bad, store)
    result = verify(other, bad, store)
    assert not result["ok"] and result["changed"] == [row_id(17)]


def test_a_malformed_rows_digest_is_refused(committed) -> None:
    _, body, store = committed

    def short(index: dict) -> None:
        index["partitions"][0]["rows_digest"] = "abcd"

    with pytest.raises(DataError, match="malformed"):
        read(committed[0], rewrite_index(body, store, short), store)


def test_a_partition_index_missing_from_the_store_is_named_missing_not_malformed(tmp_path):
    """Seen on a Dask worker that could not see the artifact store: the job failed with
    'partition index …: malformed: artifact … is missing from …'."""
    from bubblechain.artifacts import ArtifactStore

    path = tmp_path / "data.parquet"
    pq.write_table(base_table(), path, row_group_size=16)
    store = ArtifactStore(tmp_path / "artifacts")
    body = commit(path, id_column="id", store=store, partition_rows=SIZE)
    store.path(body["partitions"]).unlink()
    with pytest.raises(DataError) as e:
        read(path, body, store)
    assert str(e.value) == (
        f"partition index {body['partitions']}: artifact {body['partitions']} is missing "
        f"from {tmp_path / 'artifacts'}"
    )
