"""Scale: commit and verify 10,000,000 rows from Parquet in bounded memory (slow)."""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bubblechain.data import DataError, commit, verify

ROWS = 10_000_000
CHUNK = 1_000_000
CHANGED = 7_654_321


class DirStore:
    """Artifacts on disk, so that the measured memory is the commit's, not the store's."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir()

    def put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        (self.root / key).write_bytes(data)
        return key

    def get(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            raise DataError(f"artifact {key} is not in the store") from None


def write(path: Path, change: bool) -> None:
    """10M rows in id order, written 1M at a time (the test never holds them all)."""
    schema = pa.schema(
        [("id", pa.int64()), ("a", pa.float64()), ("b", pa.int64()), ("c", pa.string())]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, ROWS, CHUNK):
            ids = np.arange(start, start + CHUNK, dtype=np.int64)
            a = (ids % 1000) / 7.0
            if change and start <= CHANGED < start + CHUNK:
                a[CHANGED - start] = -1.0
            labels = pa.array(np.char.add("r", (ids % 97).astype(str)))
            writer.write_table(pa.table([ids, a, ids * 3, labels], schema=schema))


def peak_mib() -> tuple[float, list[float]]:
    """Peak RSS of this process and of its hashing workers, MiB (VmHWM)."""

    def hwm(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    me = psutil.Process()
    return hwm(me.pid), [hwm(c.pid) for c in me.children()]


@pytest.mark.slow
def test_ten_million_rows_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    write(path, change=False)
    store = DirStore(tmp_path / "artifacts")
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM
    before = psutil.Process().memory_info().rss / 2**20

    start = time.perf_counter()
    body = commit(path, id_column="id", store=store)
    commit_s = time.perf_counter() - start
    assert body["rows"] == ROWS

    start = time.perf_counter()
    assert verify(path, body, store)["ok"]
    verify_s = time.perf_counter() - start
    main, workers = peak_mib()

    write(path, change=True)
    result = verify(path, body, store)
    assert result["changed"] == [CHANGED]
    assert result["missing"] == result["added"] == [] and not result["ok"]

    print(
        f"\n10M rows: commit {commit_s:.1f} s ({ROWS / commit_s:,.0f} rows/s), "
        f"verify {verify_s:.1f} s; peak RSS main {main:.0f} MiB (was {before:.0f} MiB), "
        f"workers {', '.join(f'{w:.0f}' for w in workers)} MiB"
    )
    # Bounded: the file's 10M rows decode to ~400 MB; memory must stay well below that
    # growth plus the 10M x 40 B of leaves (another 400 MB) a non-streaming commit needs.
    assert main - before < 600, f"commit/verify grew the process by {main - before:.0f} MiB"
