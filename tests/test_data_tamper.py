"""Tamper with real files after committing them; verify must name exactly the rows touched."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from conftest import with_value

from bubblechain.data import MemoryStore, commit, verify

N = 40
PARTITION = 8  # several partitions, so that localisation is exercised
OTHER_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF4000000000001))[0]


def base_table() -> pa.Table:
    rng = np.random.default_rng(7)
    x = rng.random(N).round(3)
    x[[5, 6]] = 0.0
    x[12] = np.nan
    return pa.table(
        {
            "id": np.arange(N, dtype=np.int64),
            "x": x,
            "n": rng.integers(0, 100, N),
            "s": [f"row-{i}" for i in range(N)],
        }
    )


@pytest.fixture
def committed(tmp_path: Path):
    path = tmp_path / "data.parquet"
    pq.write_table(base_table(), path, row_group_size=16)
    store = MemoryStore()
    body = commit(path, id_column="id", store=store, partition_rows=PARTITION)
    return path, body, store


def check(path: Path, table: pa.Table, body: dict, store: MemoryStore) -> dict:
    pq.write_table(table, path)
    return verify(path, body, store)


def expect(result: dict, changed=(), missing=(), added=(), duplicates=()) -> None:
    assert result["changed"] == list(changed)
    assert result["missing"] == list(missing)
    assert result["added"] == list(added)
    assert result["duplicates"] == list(duplicates)
    assert result["schema"] is None
    assert result["ok"] is (not (changed or missing or added))


def test_untouched_file_verifies(committed) -> None:
    path, body, store = committed
    expect(verify(path, body, store))


def test_change_one_value(committed) -> None:
    path, body, store = committed
    expect(check(path, with_value(base_table(), "x", 17, 0.5), body, store), changed=[17])


def test_change_one_string(committed) -> None:
    path, body, store = committed
    expect(check(path, with_value(base_table(), "s", 33, "row-33 "), body, store), changed=[33])


def test_swap_two_rows_values(committed) -> None:
    path, body, store = committed
    t = base_table()
    a, b = t.column("n")[3].as_py(), t.column("n")[30].as_py()
    assert a != b
    t = with_value(with_value(t, "n", 3, b), "n", 30, a)
    expect(check(path, t, body, store), changed=[3, 30])


def test_delete_a_row(committed) -> None:
    path, body, store = committed
    t = base_table().filter(pc.not_equal(base_table().column("id"), 21))
    expect(check(path, t, body, store), missing=[21])


def test_delete_a_whole_partition(committed) -> None:
    path, body, store = committed
    ids = base_table().column("id")
    t = base_table().filter(pc.or_(pc.less(ids, 8), pc.greater_equal(ids, 16)))
    expect(check(path, t, body, store), missing=list(range(8, 16)))


def test_add_a_row(committed) -> None:
    path, body, store = committed
    extra = pa.table({"id": [1000], "x": [0.1], "n": [1], "s": ["new"]}).cast(base_table().schema)
    t = pa.concat_tables([base_table(), extra])
    expect(check(path, t, body, store), added=[1000])


def test_add_a_row_between_ids(committed) -> None:
    path, body, store = committed
    t = base_table()
    ids = t.column("id").to_numpy() * 2  # commit ids 0, 2, 4, … in a new commitment
    t = t.set_column(0, "id", pa.array(ids))
    pq.write_table(t, path)
    body = commit(path, id_column="id", store=store, partition_rows=PARTITION)
    extra = pa.table({"id": [13], "x": [0.1], "n": [1], "s": ["new"]}).cast(t.schema)
    expect(check(path, pa.concat_tables([extra, t]), body, store), added=[13])


def test_duplicate_an_id(committed) -> None:
    path, body, store = committed
    t = with_value(base_table(), "id", 10, 9)  # row 10 now claims id 9
    expect(check(path, t, body, store), changed=[9], missing=[10], duplicates=[9])


def test_copy_a_row(committed) -> None:
    path, body, store = committed
    t = pa.concat_tables([base_table(), base_table().slice(25, 1)])
    expect(check(path, t, body, store), changed=[25], duplicates=[25])


def test_set_a_value_to_null(committed) -> None:
    path, body, store = committed
    expect(check(path, with_value(base_table(), "n", 2, None), body, store), changed=[2])


def test_negative_zero_is_a_change(committed) -> None:
    path, body, store = committed
    assert base_table().column("x")[5].as_py() == 0.0
    expect(check(path, with_value(base_table(), "x", 5, -0.0), body, store), changed=[5])


def test_another_nan_is_not_a_change(committed) -> None:
    path, body, store = committed
    t = with_value(base_table(), "x", 12, OTHER_NAN)
    pq.write_table(t, path)
    stored = pq.read_table(path).column("x").to_numpy()[12:13].view(np.uint64)[0]
    assert stored == 0x7FF4000000000001, "the file must really hold the other NaN"
    expect(verify(path, body, store))


def test_nan_to_number_and_zero_to_nan_are_changes(committed) -> None:
    path, body, store = committed
    t = with_value(with_value(base_table(), "x", 12, 0.0), "x", 6, float("nan"))
    expect(check(path, t, body, store), changed=[6, 12])


def test_reordering_rows_and_columns_keeps_the_root(committed, tmp_path: Path) -> None:
    _, body, store = committed
    t = base_table()
    t = t.take(np.random.default_rng(3).permutation(N)).select(["s", "n", "id", "x"])
    other = tmp_path / "shuffled.parquet"
    pq.write_table(t, other, row_group_size=7)
    again = commit(other, id_column="id", store=MemoryStore(), partition_rows=PARTITION)
    assert again["root"] == body["root"]
    assert again["schema_hash"] == body["schema_hash"]
    expect(verify(other, body, store))


def test_many_changes_at_once(committed) -> None:
    path, body, store = committed
    t = with_value(with_value(base_table(), "x", 0, 9.0), "s", 39, None)
    t = t.filter(pc.not_equal(t.column("id"), 20))
    extra = pa.table({"id": [-5], "x": [0.1], "n": [1], "s": ["new"]}).cast(t.schema)
    expect(check(path, pa.concat_tables([t, extra]), body, store), [0, 39], [20], [-5])


def test_schema_change_names_the_columns(committed) -> None:
    path, body, store = committed
    t = base_table().rename_columns(["id", "x", "count", "s"]).append_column("z", pa.array([1] * N))
    result = check(path, t, body, store)
    assert not result["ok"]
    assert result["schema"] == {
        "missing_columns": ["n"],
        "added_columns": ["count", "z"],
        "changed_types": [],
    }
    assert result["changed"] == list(range(N))  # every row lost its committed "n"


def test_column_type_change_is_reported(committed) -> None:
    path, body, store = committed
    t = base_table()
    t = t.set_column(2, "n", t.column("n").cast(pa.float64()))
    result = check(path, t, body, store)
    assert result["schema"]["changed_types"] == [
        {"column": "n", "committed": "int", "found": "float"}
    ]
    assert result["changed"] == [] and not result["ok"]  # values themselves are exact


# --- CSV: text files, where a cell can change type -------------------------------------


@pytest.fixture
def committed_csv(tmp_path: Path):
    path = tmp_path / "data.csv"
    base_table().to_pandas().to_csv(path, index=False)
    store = MemoryStore()
    body = commit(path, id_column="id", store=store, partition_rows=PARTITION)
    return path, body, store


def edit_cell(path: Path, row: int, column: str, text: str) -> None:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = text
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def test_csv_change_a_value_type(committed_csv) -> None:
    path, body, store = committed_csv
    edit_cell(path, 14, "n", "fourteen")
    result = verify(path, body, store)
    assert result["changed"] == [14]
    assert result["missing"] == result["added"] == []
    assert result["schema"]["changed_types"] == [
        {"column": "n", "committed": "int", "found": "string"}
    ]
    assert not result["ok"]


def test_csv_int_cell_becomes_float(committed_csv) -> None:
    path, body, store = committed_csv
    edit_cell(path, 8, "n", "3.5")
    result = verify(path, body, store)
    assert result["changed"] == [8]
    assert result["schema"]["changed_types"][0]["found"] == "float"


def test_csv_edit_value_and_delete_line(committed_csv) -> None:
    path, body, store = committed_csv
    edit_cell(path, 1, "s", "tampered")
    lines = path.read_text().splitlines()
    del lines[1 + 27]
    path.write_text("\n".join(lines) + "\n")
    expect(verify(path, body, store), changed=[1], missing=[27])


def test_csv_null_and_negative_zero(committed_csv) -> None:
    path, body, store = committed_csv
    edit_cell(path, 5, "x", "-0.0")
    edit_cell(path, 30, "n", "")
    expect(verify(path, body, store), changed=[5, 30])


def test_csv_and_parquet_of_same_data_commit_alike(committed_csv, tmp_path: Path) -> None:
    path, body, _ = committed_csv
    other = tmp_path / "same.parquet"
    pq.write_table(pd.read_csv(path).pipe(pa.Table.from_pandas, preserve_index=False), other)
    assert (
        commit(other, id_column="id", store=MemoryStore(), partition_rows=PARTITION)["root"]
        == body["root"]
    )


def test_csv_zero_padded_text_edits_are_changes(tmp_path: Path) -> None:
    path = tmp_path / "zips.csv"
    path.write_text('id,zip\n"A1","02134"\n"A2","10001"\n"A3","00501"\n')
    store = MemoryStore()
    body = commit(path, id_column="id", store=store)
    path.write_text('id,zip\n"A1","2134"\n"A2","10001"\n"A3","00501"\n')
    expect(verify(path, body, store), changed=["A1"])
    path.write_text('id,zip\n"A1","2134"\n"A2","10001"\n"A3","501"\n')  # now all numbers
    expect(verify(path, body, store), changed=["A1", "A3"])


def test_csv_int_cell_zero_padded_is_a_change(committed_csv) -> None:
    path, body, store = committed_csv
    n = pd.read_csv(path)["n"][21]
    edit_cell(path, 21, "n", f"00{n}")  # the same number, other text
    result = verify(path, body, store)
    assert result["changed"] == [21]
    assert result["missing"] == result["added"] == []
    assert result["schema"]["changed_types"] == [
        {"column": "n", "committed": "int", "found": "string"}
    ]
    edit_cell(path, 21, "n", str(n))
    edit_cell(path, 3, "id", "003")  # an id cell: the row can no longer be placed by its id
    result = verify(path, body, store)
    assert not result["ok"] and result["missing"] == [3]
    assert result["changed"] == result["added"] == []
    assert result["unreadable_ids"] == [{"row": 4, "text": "003"}]


@pytest.mark.parametrize("text", ["50a", "", "7.5", "+12"])
def test_csv_id_cell_that_is_no_int_is_named_by_its_row_anywhere_in_the_file(
    tmp_path: Path, text: str
) -> None:
    """The whole verify failed (exit 2): in the first block, the file was "not a readable CSV
    file"; past it, column 'id' "holds '50a'", naming no row. Now the row is named by its
    place in the file, the committed id it hid is missing, and every other row is checked."""
    path = tmp_path / "big.csv"
    rows = 60_000  # past the first 1 MiB block, where CSV types are inferred
    pd.DataFrame({"id": range(rows), "v": np.arange(rows) * 0.5}).to_csv(path, index=False)
    store = MemoryStore()
    body = commit(path, id_column="id", store=store)
    for at in (10, 55_000):  # the first block, and a later one
        edit_cell(path, at, "id", text)
    edit_cell(path, 30_000, "v", "1.25")  # and a value elsewhere
    result = verify(path, body, store, batch_rows=4096)
    assert not result["ok"]
    assert result["missing"] == [10, 55_000] and result["changed"] == [30_000]
    assert result["unreadable_ids"] == [
        {"row": 11, "text": text},
        {"row": 55_001, "text": text},
    ]


def test_feather_tamper(tmp_path: Path) -> None:
    path = tmp_path / "data.feather"
    feather.write_feather(base_table(), path)
    store = MemoryStore()
    body = commit(path, id_column="id", store=store, partition_rows=PARTITION)
    feather.write_feather(with_value(base_table(), "s", 0, "x"), path)
    expect(verify(path, body, store), changed=[0])


def test_hive_directory_swap_partition_folders(tmp_path: Path) -> None:
    # The partition value lives only in the folder name: moving files between folders
    # changes exactly the rows moved.
    import pyarrow.dataset as pds

    t = base_table().append_column("g", pa.array(np.arange(N) % 3, pa.int64()))
    folder = tmp_path / "hive"
    pds.write_dataset(t, folder, format="parquet", partitioning=["g"], partitioning_flavor="hive")
    store = MemoryStore()
    body = commit(folder, id_column="id", store=store, partition_rows=PARTITION)
    expect(verify(folder, body, store))
    a, b = folder / "g=0" / "part-0.parquet", folder / "g=1" / "part-0.parquet"
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    expect(verify(folder, body, store), changed=[i for i in range(N) if i % 3 < 2])


def test_tampered_artifact_store_is_reported(committed) -> None:
    path, body, store = committed
    import json

    index = json.loads(store.get(body["partitions"]))
    leaves_key = index["partitions"][1]["leaves"]
    data = bytearray(store.get(leaves_key))
    data[-1] ^= 1
    store.blobs[leaves_key] = bytes(data)
    pq.write_table(with_value(base_table(), "x", 9, 7.0), path)  # forces partition 1 to load
    with pytest.raises(ValueError, match="does not match the committed root"):
        verify(path, body, store)


@pytest.mark.parametrize("shuffled", [False, True])
def test_a_file_replaced_between_the_two_passes_of_a_commit_is_refused(tmp_path, shuffled):
    """The ids pass and the hashing pass read the file twice: a file swapped in between
    with a repeated id (in order) or other ids (out of order) was committed, pairing one
    file's ids with the other's rows."""
    import shutil

    from bubblechain.data import DataError
    from bubblechain.data.ledger import PHASE_ROWS, commit_dataset
    from bubblechain.ledger import Ledger

    ids = np.arange(1000)
    if shuffled:
        ids = np.random.default_rng(0).permutation(1000)
    first = tmp_path / "f.parquet"
    pq.write_table(pa.table({"id": ids, "v": np.arange(1000.0)}), first)
    swap = tmp_path / "swap.parquet"
    other = ids + 10_000 if shuffled else np.where(ids == 501, 500, ids)
    pq.write_table(pa.table({"id": other, "v": np.arange(1000.0)}), swap)

    def progress(phase, rows, total):
        if phase == PHASE_ROWS and rows == 0:
            shutil.copy(swap, first)

    with Ledger.init(tmp_path / "home") as led:
        with pytest.raises(DataError, match=r"f\.parquet: changed while being read"):
            commit_dataset(led, first, "id", name="race", progress=progress)
        assert not list(led.entries(kind="data.commit"))


def test_a_bool_column_rewritten_as_numbers_names_the_rows_that_are_no_bool(tmp_path):
    """Arrow casts any non-zero number to true: flag 1.0, -7.5, 0.0 against True, True,
    False verified as unchanged values."""
    from bubblechain.data import MemoryStore, commit, verify

    store = MemoryStore()
    body = commit(pa.table({"id": [1, 2, 3], "flag": [True, True, False]}), id_column="id",
                  store=store)  # fmt: skip
    for flags in ([1.0, -7.5, 0.0], [1, 2, 0]):
        result = verify(pa.table({"id": [1, 2, 3], "flag": flags}), body, store)
        assert result["changed"] == [2] and not result["ok"]
