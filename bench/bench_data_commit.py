"""Benchmark a dataset commitment against bare hashing and against pymerkle.

Run: .venv/bin/python bench/bench_data_commit.py [--rows N] [--cols K] [--json]

Writes a Parquet file of N rows (int64 id + K float64 columns, snappy, pyarrow
defaults) to a temporary directory, then times in the same run:

* commit: the whole ``bubblechain.data.commit`` from the file (read, encode,
  hash leaves, partition and dataset tree, partition artifacts into an
  in-memory store), first call (includes forking the hashing workers) and
  best of --runs; verify of the unchanged file likewise;
* (a) a plain single-core loop that only computes SHA-256 of 2·N inputs as
  long as one leaf input (0x00 ‖ encoded row): the bare hashing work of a tree
  of N leaves (N leaf hashes + N-1 node hashes), without reading or encoding;
* (b) pymerkle (InmemoryTree, RFC 9162 mode) building the tree of the same
  encoded rows; its root is checked against the commitment's root. With
  --pymerkle-rows M < N it builds M rows and its time is scaled by N/M
  (pymerkle's cost is linear in the rows).

Targets (issue 3, 2-core machine): commit no slower than (a), i.e. about
1,000,000 rows/s or more, and at least 10x faster than (b). Peak RSS is read
from /proc (VmHWM, reset before the commit) for this process and the workers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from bubblechain.data import MemoryStore, commit, verify
from bubblechain.data.commit import commit_encoder
from bubblechain.data.encoding import describe_schema


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def peak_rss_mib(pid: int) -> float:
    """Peak resident set (VmHWM) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def write_dataset(path: Path, rows: int, cols: int) -> None:
    rng = np.random.default_rng(42)
    columns = {"id": np.arange(rows, dtype=np.int64)}
    for j in range(cols):
        columns[f"c{j:02d}"] = rng.random(rows)
    pq.write_table(pa.table(columns), path)


def encoded_rows(path: Path, limit: int) -> list[bytes]:
    """The canonical encodings (without the leaf prefix) of the first ``limit`` rows."""
    pf = pq.ParquetFile(path)
    encode = commit_encoder(describe_schema(pf.schema_arrow, "id", str(path)), str(path))
    out: list[bytes] = []
    for batch in pf.iter_batches(batch_size=1 << 16):
        enc = encode(batch)
        buf, offs = enc.buf.tobytes(), enc.offsets.tolist()
        out.extend(buf[a + 1 : b] for a, b in itertools.pairwise(offs))
        if len(out) >= limit:
            break
    return out[:limit]


def hash_loop(size: int, count: int) -> float:
    """Seconds for one core to SHA-256 ``count`` distinct inputs of ``size`` bytes."""
    chunk = 1 << 16
    data = os.urandom(size * chunk)
    inputs = [data[i : i + size] for i in range(0, len(data), size)]
    sha = hashlib.sha256
    start = time.perf_counter()
    done = 0
    while done < count:
        part = inputs[: min(chunk, count - done)]
        for x in part:
            sha(x).digest()
        done += len(part)
    return time.perf_counter() - start


def pymerkle_tree(rows: list[bytes]) -> tuple[float, bytes]:
    from pymerkle import InmemoryTree

    tree = InmemoryTree(algorithm="sha256")
    start = time.perf_counter()
    for row in rows:
        tree.append_entry(row)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        root = tree.get_state()
    return time.perf_counter() - start, root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=10, help="float64 columns besides the id")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the best is kept")
    parser.add_argument("--workers", type=int, default=None, help="hashing processes")
    parser.add_argument("--pymerkle-rows", type=int, default=None, help="rows for pymerkle")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    n = args.rows
    me = psutil.Process()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.parquet"
        # written by another process, so that this one starts the commit small
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as writer:
            writer.submit(write_dataset, path, n, args.cols).result()
        file_mib = path.stat().st_size / 2**20

        reset_peak_rss()
        base_rss = me.memory_info().rss / 2**20
        cold, body = timed(
            lambda: commit(path, id_column="id", store=MemoryStore(), workers=args.workers)
        )
        warm = []
        store = MemoryStore()
        for _ in range(args.runs):
            t, body = timed(
                lambda s=store: commit(path, id_column="id", store=s, workers=args.workers)
            )
            warm.append(t)
        verify_times = []
        for _ in range(args.runs):
            t, result = timed(lambda: verify(path, body, store, workers=args.workers))
            assert result["ok"], result
            verify_times.append(t)
        rss_main = peak_rss_mib(me.pid)
        workers = [c for c in me.children() if "resource_tracker" not in " ".join(c.cmdline())]
        rss_workers = [peak_rss_mib(c.pid) for c in workers]
        uss_workers = [c.memory_full_info().uss / 2**20 for c in workers]

        width = len(encoded_rows(path, 1)[0]) + 1
        loop_a = hash_loop(width, 2 * n)

        m = min(args.pymerkle_rows or n, n)
        rows = encoded_rows(path, m)
        pm_time, pm_root = pymerkle_tree(rows)
        del rows
        if m == n:
            assert pm_root.hex() == body["root"], "pymerkle and bubblechain roots differ"
        pm_scaled = pm_time * n / m

    best = min(warm)
    figures = {
        "rows": n,
        "columns": args.cols + 1,
        "parquet_mib": round(file_mib, 1),
        "leaf_input_bytes": width,
        "workers": args.workers or len(os.sched_getaffinity(0)),
        "commit_first_s": round(cold, 3),
        "commit_best_s": round(best, 3),
        "commit_rows_per_s": round(n / best),
        "verify_best_s": round(min(verify_times), 3),
        "loop_a_s": round(loop_a, 3),
        "loop_a_inputs": 2 * n,
        "pymerkle_rows": m,
        "pymerkle_s": round(pm_time, 3),
        "pymerkle_scaled_s": round(pm_scaled, 3),
        "pymerkle_root_matches": m == n,
        "commit_vs_loop_a": round(best / loop_a, 3),
        "pymerkle_vs_commit": round(pm_scaled / best, 1),
        "rss_before_commit_mib": round(base_rss, 1),
        "peak_rss_main_mib": round(rss_main, 1),
        "peak_rss_workers_mib": [round(r, 1) for r in rss_workers],
        "uss_workers_mib": [round(r, 1) for r in uss_workers],
    }
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"dataset: {n:,} rows x {args.cols + 1} columns, Parquet {file_mib:.1f} MiB, "
        f"leaf input {width} bytes, {figures['workers']} hashing workers"
    )
    print(f"commit   first {cold:7.3f} s   best {best:7.3f} s   {n / best:12,.0f} rows/s")
    print(
        f"verify                   best {min(verify_times):7.3f} s   "
        f"{n / min(verify_times):12,.0f} rows/s"
    )
    print(
        f"(a) loop {2 * n:,} x sha256({width} B), one core: {loop_a:7.3f} s   "
        f"commit/(a) = {best / loop_a:.2f}  (target <= 1)"
    )
    scaled = "" if m == n else f" on {m:,} rows, scaled x{n / m:.1f}"
    check = "root matches" if m == n else "root not compared (fewer rows)"
    print(
        f"(b) pymerkle{scaled}: {pm_scaled:7.3f} s ({check})   "
        f"pymerkle/commit = {pm_scaled / best:.1f}x  (target >= 10)"
    )
    print(
        f"peak RSS: main {rss_main:.0f} MiB (was {base_rss:.0f} before the commit), "
        f"workers {', '.join(f'{r:.0f}' for r in rss_workers)} MiB "
        f"(forked: mostly pages shared with main; own pages now "
        f"{', '.join(f'{r:.0f}' for r in uss_workers)} MiB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
