"""Arrow to numpy without pyarrow's pandas shim: same values, and no pandas in a worker."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from bubblechain.data.arrow_numpy import as_arrow, as_numpy

TYPES = [
    pa.int8(),
    pa.int16(),
    pa.int32(),
    pa.int64(),
    pa.uint8(),
    pa.uint32(),
    pa.uint64(),
    pa.float16(),
    pa.float32(),
    pa.float64(),
    pa.bool_(),
]


def _values(t: pa.DataType, n: int) -> pa.Array:
    rng = np.random.default_rng(3)
    if pa.types.is_boolean(t):
        return pa.array(rng.random(n) < 0.5)
    if pa.types.is_floating(t):
        return pa.array(rng.normal(size=n).astype(t.to_pandas_dtype()))
    return pa.array(rng.integers(0, 100, n), type=t)


@pytest.mark.parametrize("t", TYPES, ids=str)
@pytest.mark.parametrize("offset,length", [(0, 37), (5, 20), (13, 0), (0, 0)])
def test_same_values_and_dtype_as_to_numpy(t, offset, length):
    arr = _values(t, 37).slice(offset, length)
    got, want = as_numpy(arr), arr.to_numpy(zero_copy_only=False)
    assert got.dtype == want.dtype
    assert np.array_equal(got, want)
    assert got.flags.writeable == want.flags.writeable  # a view of Arrow's memory is read-only


@pytest.mark.parametrize("t", TYPES, ids=str)
def test_fill_reads_nulls_as_fill_null_does(t):
    arr = _values(t, 37)
    mask = pa.array(np.arange(37) % 5 == 1)
    with_nulls = pc.if_else(mask, pa.nulls(37, t), arr).slice(3, 30)
    fill = False if pa.types.is_boolean(t) else 0
    got = as_numpy(with_nulls, fill)
    want = with_nulls.fill_null(fill).to_numpy(zero_copy_only=False)
    assert got.dtype == want.dtype
    assert np.array_equal(got, want)


@pytest.mark.parametrize("dtype", ["i1", "i4", "i8", "u2", "u8", "f2", "f4", "f8", "?"])
def test_as_arrow_gives_what_pa_array_gives(dtype):
    v = (np.arange(37) % 7 == 3) if dtype == "?" else np.arange(37).astype(dtype)
    for part in (v, v[5:20], v[::3], v[:0]):  # strided and empty too
        assert as_arrow(part).equals(pa.array(part))
    assert as_arrow(np.array(["a", "b"])).to_pylist() == ["a", "b"]


def test_chunked_nulls_and_other_types_go_through_arrow():
    chunked = pa.chunked_array([[1.5, 2.5], [3.5]])
    assert as_numpy(chunked).tolist() == [1.5, 2.5, 3.5]
    with_null = pa.array([1, None, 3])
    assert np.array_equal(
        as_numpy(with_null), with_null.to_numpy(zero_copy_only=False), equal_nan=True
    )
    assert as_numpy(pa.array(["a", "b"])).tolist() == ["a", "b"]


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas is not installed")
def test_commit_check_train_and_predict_do_not_import_pandas(tmp_path):
    # pyarrow's to_numpy and pa.array import pandas where it is installed: ~250 ms in each
    # worker process and each command.
    n = 5000
    path = tmp_path / "d.parquet"
    table = {"id": np.arange(n), "x": np.linspace(0, 1, n), "b": np.arange(n) % 2 == 0}
    z = pa.array(np.arange(n) * 0.5, mask=np.arange(n) % 7 == 0)  # nulls: filled when encoded
    pq.write_table(pa.table({**table, "z": z, "y": np.arange(n) % 3}), path)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        n = {n}
        from bubblechain.data import MemoryStore, commit
        from bubblechain.training.partitions import read_partition
        store = MemoryStore()
        body = commit("{path}", id_column="id", store=store, partition_rows=1024)
        X, y = read_partition("{path}", body, store, 1024, 3072, ["x", "b"], "y")
        assert X.shape == (2048, 2) and y.tolist() == (np.arange(1024, 3072) % 3).tolist()
        from bubblechain.ledger import Ledger
        from bubblechain.data.ledger import commit_dataset
        from bubblechain.training.runtime import train
        from bubblechain.training.predict import predictions, write_predictions
        with Ledger.init("{tmp_path}/home") as led:
            commit_dataset(led, "{path}", "id", name="d")
            r = train(led, data="d", algorithm="logistic", target="y", features=["x", "b"],
                      partitions=2, iterations=3, engine="inline")
            _, _, batches = predictions(led, r.model_path, "{path}")
            assert write_predictions(batches, "{tmp_path}/p.parquet") == n
        print("pandas" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
