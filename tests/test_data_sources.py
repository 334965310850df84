"""Every source gives the same commitment for the same rows; bad input fails in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from bubblechain.data import DataError, MemoryStore, commit, verify

N = 30


def table() -> pa.Table:
    return pa.table(
        {
            "id": np.arange(N, dtype=np.int64),
            "score": np.linspace(-1, 1, N),
            "label": [f"l{i % 4}" for i in range(N)],
        }
    )


@pytest.fixture(scope="module")
def expected_root() -> str:
    return commit(table(), id_column="id", store=MemoryStore(), partition_rows=4)["root"]


def root_of(data, **kw) -> str:
    return commit(data, id_column="id", store=MemoryStore(), partition_rows=4, **kw)["root"]


def test_parquet_in_small_batches(tmp_path: Path, expected_root: str) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(table(), path, row_group_size=7)
    assert root_of(path, batch_rows=5) == expected_root


def test_parquet_directory_is_one_dataset(tmp_path: Path, expected_root: str) -> None:
    folder = tmp_path / "ds"
    folder.mkdir()
    t = table()
    pq.write_table(t.slice(20), folder / "b.parquet")  # out of id order across files
    pq.write_table(t.slice(0, 20), folder / "a.parquet")
    (folder / "_SUCCESS").write_text("")
    assert root_of(folder) == expected_root


def test_hive_partitioned_directory_keeps_its_partition_column(tmp_path: Path) -> None:
    import pyarrow.dataset as pds

    t = table().append_column("grp", pa.array(np.arange(N) % 3, pa.int64()))
    pds.write_dataset(
        t, tmp_path / "hive", format="parquet", partitioning=["grp"], partitioning_flavor="hive"
    )
    assert sorted(p.name for p in (tmp_path / "hive").iterdir()) == ["grp=0", "grp=1", "grp=2"]
    store = MemoryStore()
    body = commit(tmp_path / "hive", id_column="id", store=store, partition_rows=4)
    assert {"name": "grp", "type": "int"} in body["schema"]["columns"]
    assert body["root"] == root_of(t)  # the partition values, as in the single file
    single = tmp_path / "t.parquet"
    pq.write_table(t, single)
    assert verify(tmp_path / "hive", commit(single, id_column="id", store=store), store)["ok"]


def test_hive_partition_values_keep_their_text(tmp_path: Path) -> None:
    # Folder names are text: only canonical integers make an int column ("007" is not 7).
    t = table()
    for folder, rows in (("code=007", t.slice(0, 10)), ("code=7", t.slice(10, 10))):
        (tmp_path / "ds" / folder).mkdir(parents=True)
        pq.write_table(rows, tmp_path / "ds" / folder / "part.parquet")
    (tmp_path / "ds" / "code=__HIVE_DEFAULT_PARTITION__").mkdir()
    pq.write_table(t.slice(20), tmp_path / "ds" / "code=__HIVE_DEFAULT_PARTITION__" / "p.parquet")
    codes = ["007"] * 10 + ["7"] * 10 + [None] * (N - 20)
    body = commit(tmp_path / "ds", id_column="id", store=MemoryStore(), partition_rows=4)
    assert {"name": "code", "type": "string"} in body["schema"]["columns"]
    assert body["root"] == root_of(t.append_column("code", pa.array(codes, pa.string())))


def test_csv(tmp_path: Path, expected_root: str) -> None:
    path = tmp_path / "t.csv"
    table().to_pandas().to_csv(path, index=False)
    assert root_of(path) == expected_root


def test_csv_zero_padded_numbers_stay_text(tmp_path: Path) -> None:
    # "02134" read as 2134 lost data: zero-padded numbers are codes, their text the value.
    path = tmp_path / "zips.csv"
    path.write_text('id,zip,plain\n"A1","02134",0012\n"A2","10001",7\n"A3","00501",-3\n')
    body = commit(path, id_column="id", store=MemoryStore())
    kinds = {c["name"]: c["type"] for c in body["schema"]["columns"]}
    assert kinds == {"id": "string", "plain": "string", "zip": "string"}
    same = pa.table(
        {"id": ["A1", "A2", "A3"], "zip": ["02134", "10001", "00501"], "plain": ["0012", "7", "-3"]}
    )
    assert body["root"] == commit(same, id_column="id", store=MemoryStore())["root"]
    ids = tmp_path / "ids.csv"
    ids.write_text('id,v\n"007",a\n"7",b\n')  # two ids, not a duplicate 7
    assert commit(ids, id_column="id", store=MemoryStore())["rows"] == 2
    unquoted = tmp_path / "unquoted.csv"
    unquoted.write_text("id,v\n007,a\n7,b\n")
    assert commit(unquoted, id_column="id", store=MemoryStore())["schema"]["columns"][0] == {
        "name": "id",
        "type": "string",
    }


def test_csv_export_of_string_ids_commits_like_the_parquet(tmp_path: Path) -> None:
    import pyarrow.csv as pacsv

    t = pa.table({"id": [f"{1000 + i}" for i in range(N)], "x": np.linspace(0, 1, N)})
    t = t.append_column("zip", pa.array([f"{i:05d}" for i in range(N)]))
    store = MemoryStore()
    body = commit(t, id_column="id", store=store, partition_rows=4)
    arrow_csv = tmp_path / "arrow.csv"
    pacsv.write_csv(t, arrow_csv)  # quotes text: "1000" is a string
    assert (
        commit(arrow_csv, id_column="id", store=MemoryStore(), partition_rows=4)["root"]
        == body["root"]
    )
    result = verify(arrow_csv, body, store)
    assert result["ok"] and result["schema"] is None
    pandas_csv = tmp_path / "pandas.csv"  # quotes nothing: ids 1000… read as numbers,
    t.to_pandas().to_csv(pandas_csv, index=False)  # the zero-padded zip stays text
    result = verify(pandas_csv, body, store)  # committed kinds are no schema difference
    assert result["ok"] and result["schema"] is None


@pytest.mark.parametrize(
    ("value", "late", "kind"),
    [
        (lambda i: str(i + 1), "0042", "int"),  # a zero-padded number is text
        # a text column: Arrow's own message said only 'In CSV column #1'
        (lambda i: "true" if i % 2 else "false", "maybe", "bool"),
    ],
)
def test_csv_type_drift_after_the_first_block_names_the_column(
    tmp_path: Path, value, late: str, kind: str
) -> None:
    path = tmp_path / "late.csv"
    rows = [f"{i},{value(i)}" for i in range(200_000)] + [f"200000,{late}"]
    path.write_text("id,v\n" + "\n".join(rows) + "\n")
    message = (
        f"^{path}: cannot read CSV file: column 'v' is {kind} in the file's first block "
        rf"\(where CSV types are inferred\) but holds '{late}'$"
    )
    with pytest.raises(DataError, match=message):
        commit(path, id_column="id", store=MemoryStore(), batch_rows=1000)


def test_csv_integers_a_float_cannot_keep_are_refused_unless_quoted(tmp_path: Path) -> None:
    """Arrow reads integers beyond int64 as floats, keeping 16 digits: two files that
    differ in the last digits committed to the same root and verified as each other."""
    path = tmp_path / "acct.csv"
    path.write_text("id,acct\n1,5\n2,12345678901234567891\n")
    message = f"^{path}: cannot read CSV file: column 'acct' holds the integer 12345678901234567891"
    with pytest.raises(DataError, match=message):
        commit(path, id_column="id", store=MemoryStore())
    huge = tmp_path / "huge.csv"  # beyond any float (inf): no traceback
    huge.write_text("id,acct\n1,1.5\n2,1" + "0" * 400 + "\n")
    with pytest.raises(DataError, match="column 'acct' holds the integer 1000000000"):
        commit(huge, id_column="id", store=MemoryStore())
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('id,acct\n1,"5"\n2,"12345678901234567891"\n')
    other = tmp_path / "other.csv"
    other.write_text('id,acct\n1,"5"\n2,"12345678901234567890"\n')
    assert root_of(quoted) != root_of(other)


def test_a_parquet_directory_whose_files_differ_in_columns_is_refused(tmp_path: Path) -> None:
    """Arrow takes a directory's schema from one file: a column only in another was left
    out of the commitment, and a change to it verified as exact."""
    d = tmp_path / "dd"
    d.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "x": [1.0, 2.0]}), d / "part-0.parquet")
    pq.write_table(pa.table({"id": [3, 4], "x": [3.0, 4.0], "label": [0, 1]}), d / "part-1.parquet")
    message = f"^{d}: its files do not share one schema: {d / 'part-1.parquet'} has columns 'label'"
    with pytest.raises(DataError, match=message):
        commit(d, id_column="id", store=MemoryStore())


def test_arrow_ipc_file_and_stream(tmp_path: Path, expected_root: str) -> None:
    path = tmp_path / "t.feather"
    feather.write_feather(table(), path, chunksize=9)
    assert root_of(path, batch_rows=4) == expected_root
    stream = tmp_path / "t.arrows"
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, table().schema) as w:
        w.write_table(table(), max_chunksize=11)
    assert root_of(stream) == expected_root


def test_pandas_numpy_and_dict(expected_root: str) -> None:
    df = table().to_pandas()
    assert root_of(df) == expected_root
    assert root_of(df.set_index("id")) == expected_root  # a named index is a column
    rec = np.zeros(N, dtype=[("id", "<i8"), ("score", "<f8"), ("label", "U2")])
    rec["id"], rec["score"], rec["label"] = np.arange(N), np.linspace(-1, 1, N), df["label"]
    assert root_of(rec) == expected_root
    assert root_of({k: df[k].to_numpy() for k in df.columns}) == expected_root


def test_unsorted_input_uses_both_workers(expected_root: str) -> None:
    shuffled = table().take(np.random.default_rng(0).permutation(N))
    assert root_of(shuffled, workers=2) == expected_root
    assert root_of(table(), workers=2) == expected_root


def test_string_ids_order_by_nfc_utf8_bytes() -> None:
    ids = ["b", "a", "é", "e\u0301x", "Z", "aa"]
    t = pa.table({"k": ids, "v": range(len(ids))})
    body = commit(t, id_column="k", store=MemoryStore(), partition_rows=2)
    reordered = commit(
        t.take([5, 4, 3, 2, 1, 0]), id_column="k", store=MemoryStore(), partition_rows=2
    )
    assert body["root"] == reordered["root"]
    with pytest.raises(DataError, match="duplicate id 'é'"):
        commit(pa.table({"k": ["é", "e\u0301"], "v": [1, 2]}), id_column="k", store=MemoryStore())


# --- bad input ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    with pytest.raises(DataError, match=f"^{path}: no such file or directory$"):
        commit(path, id_column="id", store=MemoryStore())


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1" + b"\x00garbage" * 10)
    with pytest.raises(DataError, match=f"^{path}: not a readable Parquet file: ") as info:
        commit(path, id_column="id", store=MemoryStore())
    assert "\n" not in str(info.value)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(DataError, match="unrecognised format"):
        commit(other, id_column="id", store=MemoryStore())


def test_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(table(), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match=str(path)):
        commit(path, id_column="id", store=MemoryStore())


def test_missing_id_column(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(table(), path)
    with pytest.raises(DataError, match=rf"^{path}: no id column 'row_id' \(columns: 'id', "):
        commit(path, id_column="row_id", store=MemoryStore())


def test_null_and_duplicate_ids_are_named(tmp_path: Path) -> None:
    t = table()
    ids = t.column("id").to_pylist()
    ids[17] = None
    path = tmp_path / "t.parquet"
    pq.write_table(t.set_column(0, "id", pa.array(ids)), path)
    with pytest.raises(DataError, match=r"row 17 \(0-based, in file order\) has a null id"):
        commit(path, id_column="id", store=MemoryStore())
    ids[17] = 3
    pq.write_table(t.set_column(0, "id", pa.array(ids)), path)
    with pytest.raises(DataError, match=f"^{path}: duplicate id 3 in column 'id'$"):
        commit(path, id_column="id", store=MemoryStore())


def test_float_ids_are_refused() -> None:
    with pytest.raises(DataError, match="ids must be integers or strings"):
        commit(pa.table({"id": [1.0, 2.0]}), id_column="id", store=MemoryStore())
    with pytest.raises(DataError, match=r"row 0 .* has a null id"):
        commit(pa.table({"id": pa.nulls(2)}), id_column="id", store=MemoryStore())


def test_empty_files_are_valid_empty_commitments(tmp_path: Path) -> None:
    empty = table().slice(0, 0)
    pq_path = tmp_path / "empty.parquet"
    pq.write_table(empty, pq_path)
    csv_path = tmp_path / "empty.csv"
    csv_path.write_text("id,score,label\n")
    for path in (pq_path, csv_path):
        store = MemoryStore()
        body = commit(path, id_column="id", store=store)
        assert body["rows"] == 0
        assert body["root"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        assert verify(path, body, store)["ok"]
    store = MemoryStore()
    body = commit(pq_path, id_column="id", store=store)
    pq.write_table(table().slice(0, 2), pq_path)
    assert verify(pq_path, body, store)["added"] == [0, 1]
    store = MemoryStore()
    body = commit(csv_path, id_column="id", store=store)
    table().slice(0, 2).to_pandas().to_csv(csv_path, index=False)
    result = verify(csv_path, body, store)
    assert result["added"] == [0, 1] and not result["ok"]


def test_proof_of_a_text_id_among_int_ids_says_why_in_full() -> None:
    from bubblechain.data import prove

    store = MemoryStore()
    body = commit(table(), id_column="id", store=store, partition_rows=4)
    message = "row id 'abc' is not an integer, and the ids of this dataset are integers"
    with pytest.raises(DataError, match=f"^{message}$"):
        prove(table(), "abc", body, store)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty file \\(0 bytes\\)"):
        commit(path, id_column="id", store=MemoryStore())


def test_directory_without_parquet(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no Parquet files"):
        commit(tmp_path, id_column="id", store=MemoryStore())


def test_plain_numpy_array_needs_names() -> None:
    with pytest.raises(DataError, match="no column names"):
        commit(np.zeros((3, 2)), id_column="id", store=MemoryStore())


def test_csv_type_drift_after_first_block_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "drift.csv"
    rows = [f"{i},{i}" for i in range(200_000)] + ["200000,oops"]
    path.write_text("id,v\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=f"^{path}: cannot read CSV file: .*"):
        commit(path, id_column="id", store=MemoryStore(), batch_rows=1000)


def test_dataframe_with_mixed_objects_is_refused() -> None:
    df = pd.DataFrame({"id": [1, 2], "v": [1, "a"]})
    with pytest.raises(DataError, match=r"^<DataFrame>: cannot convert to Arrow"):
        commit(df, id_column="id", store=MemoryStore())


def test_id_column_of_another_kind_is_a_clear_error(tmp_path: Path) -> None:
    store = MemoryStore()
    body = commit(table(), id_column="id", store=store, partition_rows=4)
    t = table().set_column(0, "id", pa.array([f"x{i}" for i in range(N)]))
    with pytest.raises(DataError, match=r"^<arrow table>: ids are not int ids"):
        verify(t, body, store)


def test_with_the_ledger_artifact_store(tmp_path: Path, expected_root: str) -> None:
    from bubblechain.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "artifacts")
    path = tmp_path / "t.parquet"
    pq.write_table(table(), path)
    body = commit(path, id_column="id", store=store, partition_rows=4)
    assert body["root"] == expected_root and body["name"] == "t"
    assert verify(path, body, store)["ok"]
    pq.write_table(table().slice(1), path)
    assert verify(path, body, store)["missing"] == [0]


def test_row_counts_come_from_metadata_where_a_format_has_it(tmp_path: Path) -> None:
    # Training reads a partition in place only when the file holds the committed rows.
    from bubblechain.data.sources import open_source

    pq.write_table(table(), tmp_path / "t.parquet", row_group_size=7)
    folder = tmp_path / "ds"
    folder.mkdir()
    pq.write_table(table().slice(0, 20), folder / "a.parquet")
    pq.write_table(table().slice(20), folder / "b.parquet")
    feather.write_feather(table(), tmp_path / "t.feather", chunksize=9)
    table().to_pandas().to_csv(tmp_path / "t.csv", index=False)
    stream = tmp_path / "t.arrows"
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, table().schema) as w:
        w.write_table(table())
    for name in ("t.parquet", "ds", "t.feather"):
        assert open_source(tmp_path / name).rows() == N, name
    assert open_source(table()).rows() == N
    for name in ("t.csv", "t.arrows"):  # no count without reading every row
        assert open_source(tmp_path / name).rows() is None, name


def test_csv_timestamps_beyond_the_nanosecond_years_verify_as_committed(tmp_path: Path) -> None:
    """Read back for verification through nanoseconds (1677-2262), rows of the year 3000
    or 1500 were reported changed in an unchanged file."""
    path = tmp_path / "ts.csv"
    path.write_text("id,v\n1,3000-01-01 12:00:00\n2,1500-01-01 00:00:00\n3,2000-01-01 00:00:00\n")
    store = MemoryStore()
    body = commit(path, id_column="id", store=store)
    result = verify(path, body, store)
    assert result["ok"] and result["changed"] == []


def test_tsv_is_read_tab_separated(tmp_path: Path) -> None:
    """A .tsv was accepted by its name and then parsed with commas: one column 'id\\tv'."""
    tsv = tmp_path / "t.tsv"
    tsv.write_text('id\tv\tname\n1\t2.5\t"Smith, John"\n2\t3.5\tDoe\n')
    csv = tmp_path / "t.csv"
    csv.write_text('id,v,name\n1,2.5,"Smith, John"\n2,3.5,Doe\n')
    assert root_of(tsv) == root_of(csv)
    named = tmp_path / "my.tsvlike.csv"  # only the suffix counts
    named.write_text(csv.read_text())
    assert root_of(named) == root_of(csv)
