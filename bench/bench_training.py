"""Training overhead: tracked logistic regression vs the same job untracked, same engine.

Run: .venv/bin/python bench/bench_training.py [--rows 1000000] [--features 20]
     [--partitions 8] [--iterations 20] [--engine local] [--rounds 8] [--json]

Tracked = bubbles, per-worker keys, verified partitions, every task result and
update signed, sequenced and cosigned by 2 of 3 embedded witnesses, artifacts on
disk. Untracked = the same map/reduce/update rounds and the same final evaluation
round (the training metric) on the same engine, with all of that switched off.
After one warm-up job of each (not counted), ``--rounds`` pairs of runs follow,
the two of a pair back to back and which goes first alternating, because the
machine is noisy. Reported: best runs against best runs, median against median,
the median of each pair's own ratio (a slow spell of the machine hits both runs
of a pair), and the CPU seconds of all processes per job (the work tracking
adds, whatever else the machine is doing). Beside them, the floor: the CPU of
the signatures and the hashing every tracked job must do however it is built,
timed here, as a share of the untracked job's CPU. scikit-learn's and dask-ml's
LogisticRegression on the same data are reported beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from blake3 import blake3

from bubblechain.crypto.keys import Identity, verify_signature
from bubblechain.data.ledger import commit_dataset
from bubblechain.data.sources import open_source
from bubblechain.ledger import Ledger
from bubblechain.training.engines.local import LocalEngine
from bubblechain.training.runtime import train, train_untracked


def make_data(path: Path, rows: int, features: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    w = rng.normal(size=features)
    y = (X @ w * 0.5 + rng.logistic(size=rows) > 0).astype(np.int64)
    cols = {"id": np.arange(rows), **{f"f{i:02d}": X[:, i] for i in range(features)}, "y": y}
    pq.write_table(pa.table(cols), path)
    return X, y


def train_bench_job(
    led: Ledger, feats: list[str], partitions: int, iterations: int, engine: str = "local"
):
    """The benchmarked job: tracked logistic regression on the committed "bench" dataset."""
    return train(
        led,
        data="bench",
        algorithm="logistic",
        target="y",
        features=feats,
        partitions=partitions,
        iterations=iterations,
        engine=engine,
        hyper={"tol": 0.0},
    )


def job_arguments(ap: argparse.ArgumentParser) -> None:
    """The benchmarked job's size, shared with bench_audit.py."""
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_arguments(ap)
    ap.add_argument("--engine", default="local")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--skip-dask-ml", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    _count_workers_cpu()
    out: dict = {
        k: getattr(a, k) for k in ("rows", "features", "partitions", "iterations", "engine")
    }
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        data = d / "data.parquet"
        X, y = make_data(data, a.rows, a.features)
        feats = [f"f{i:02d}" for i in range(a.features)]
        led = Ledger.init(d / "home")
        t = time.perf_counter()
        commit_dataset(led, data, "id", name="bench")
        out["commit_seconds"] = time.perf_counter() - t
        tracked, untracked, steady_tracked, steady_untracked = [], [], [], []

        def untracked_job():
            return train_untracked(
                str(data),
                rows=a.rows,
                algorithm="logistic",
                features=feats,
                target="y",
                partitions=a.partitions,
                iterations=a.iterations,
                engine=a.engine,
                hyper={"tol": 0.0},
                align=1 << 16,
            )

        # Warm-up, not counted: the first job in a process, tracked or not, pays once
        # for the engine's process machinery (on Linux, starting its forkserver).
        untracked_job()
        train_bench_job(led, feats, a.partitions, a.iterations, a.engine)
        cpu_tracked, cpu_untracked = [], []
        for i in range(a.rounds):
            # Alternate which goes first, so that neither always follows the other.
            for kind in ("tracked", "untracked") if i % 2 == 0 else ("untracked", "tracked"):
                c, t = _cpu(), time.perf_counter()
                if kind == "tracked":
                    size = led.sequencer.state.size
                    res = train_bench_job(led, feats, a.partitions, a.iterations, a.engine)
                    messages = led.sequencer.state.size - size
                    admin = led.genesis.admin.name  # the ledger's own key: not re-checked
                    local = sum(e.fields["sender"] == admin for e in led.entries(start=size))
                    tracked.append(time.perf_counter() - t)
                    cpu_tracked.append(_cpu() - c)
                    steady = [h["seconds"] for h in res.history[2:]]
                    steady_tracked.append(sum(steady) / max(len(steady), 1))
                else:
                    _, rounds, times, (_, untracked_value) = untracked_job()
                    untracked.append(time.perf_counter() - t)
                    cpu_untracked.append(_cpu() - c)
                    steady_untracked.append(sum(times[2:]) / max(len(times) - 2, 1))
        witnesses = len(led.genesis.witnesses)
        led.close()
        # Every committed value is an 8-byte int or float: the id, the features, y.
        # Each worker reads the file once, the id column too (`ReadCursor`).
        passes = min(a.partitions, os.cpu_count() or 1)
        out.update(
            _required_work(messages, local, witnesses, a.rows * (a.features + 2) * 8, data, passes)
        )
        out["required_overhead"] = out["required_cpu_seconds"] / statistics.median(cpu_untracked)
        out.update(
            tracked_seconds=min(tracked),
            untracked_seconds=min(untracked),
            tracked_runs=tracked,
            untracked_runs=untracked,
            rounds=res.rounds,
            untracked_rounds=rounds,
            overhead=min(tracked) / min(untracked) - 1,
            overhead_median=statistics.median(tracked) / statistics.median(untracked) - 1,
            overhead_paired=_paired(tracked, untracked),
            tracked_cpu_seconds=statistics.median(cpu_tracked),
            untracked_cpu_seconds=statistics.median(cpu_untracked),
            cpu_overhead=statistics.median(cpu_tracked) / statistics.median(cpu_untracked) - 1,
            tracked_accuracy=res.value,
            untracked_accuracy=untracked_value,
            round_tracked_seconds=min(steady_tracked),
            round_untracked_seconds=min(steady_untracked),
            round_overhead=min(steady_tracked) / min(steady_untracked) - 1,
        )
        from sklearn.linear_model import LogisticRegression

        t = time.perf_counter()
        sk = LogisticRegression(max_iter=a.iterations).fit(X, y)
        out["sklearn_seconds"] = time.perf_counter() - t
        out["sklearn_accuracy"] = float(sk.score(X, y))
        if not a.skip_dask_ml:
            out.update(_dask_ml(X, y, a))
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"logistic regression, {a.rows:,} rows x {a.features} features, {a.partitions} "
        f"partitions, {a.iterations} rounds max, engine {a.engine} (dataset commit "
        f"{out['commit_seconds']:.2f} s, not included)"
    )
    print(
        f"  tracked    {out['tracked_seconds']:7.2f} s  ({out['rounds']} rounds) accuracy "
        f"{out['tracked_accuracy']:.4f}   runs {', '.join(f'{x:.2f}' for x in tracked)}"
    )
    print(
        f"  untracked  {out['untracked_seconds']:7.2f} s  ({out['untracked_rounds']} rounds) "
        f"accuracy {out['untracked_accuracy']:.4f}   runs "
        f"{', '.join(f'{x:.2f}' for x in untracked)}"
    )
    print(
        f"  overhead of tracking: {out['overhead']:+.1%} of the whole job, best runs "
        f"({out['overhead_median']:+.1%} median runs; target <= 10%)"
    )
    lo, med, hi = out["overhead_paired"]
    print(
        f"  each tracked run against the untracked run beside it: median {med:+.1%} "
        f"(middle half {lo:+.1%} to {hi:+.1%})"
    )
    print(
        f"  CPU of all processes per job: tracked {out['tracked_cpu_seconds']:.2f} s, untracked "
        f"{out['untracked_cpu_seconds']:.2f} s ({out['cpu_overhead']:+.1%})"
    )
    print(
        f"  work no implementation of the design avoids: {out['messages']} messages signed, "
        f"{out['signature_checks']} signature checks, {out['hashed_bytes'] / 1e6:.0f} MB "
        f"hashed, the id column decoded {out['id_column_passes']}x: "
        f"{out['required_cpu_seconds']:.3f} s CPU ({out['required_overhead']:+.1%} of "
        f"the untracked job's CPU)"
    )
    print(
        f"  per round after the first two: tracked {out['round_tracked_seconds'] * 1000:.1f} ms"
        f", untracked {out['round_untracked_seconds'] * 1000:.1f} ms "
        f"({out['round_overhead']:+.1%}); the rest is per job: checks, records, evaluation"
    )
    print(
        f"  scikit-learn lbfgs   {out['sklearn_seconds']:7.2f} s  accuracy "
        f"{out['sklearn_accuracy']:.4f}"
    )
    if "dask_ml_seconds" in out:
        print(
            f"  dask-ml              {out['dask_ml_seconds']:7.2f} s  accuracy "
            f"{out['dask_ml_accuracy']:.4f}"
        )
    elif "dask_ml_error" in out:
        print(f"  dask-ml: {out['dask_ml_error']}")


def _cpu() -> float:
    """CPU seconds of this process (all its threads), of its reaped children, and of the
    local engine's workers (read as they close: a forkserver reaps them, not us)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + _WORKERS_CPU[0]


_WORKERS_CPU = [0.0]


def _count_workers_cpu() -> None:
    """Add each local engine's workers' CPU to `_cpu` as the engine closes."""
    close = LocalEngine.close

    def counting(engine: LocalEngine) -> None:
        _WORKERS_CPU[0] += sum(_process_cpu(pid) for pid in engine.pids())
        close(engine)

    LocalEngine.close = counting  # type: ignore[method-assign]


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (0 where there is none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _required_work(
    messages: int, local: int, witnesses: int, nbytes: int, data: Path, passes: int
) -> dict:
    """The CPU of what tracking must do however it is built, measured here.

    Each message is signed once and its signature checked by every witness and by
    the sequencer (but for the ``local`` ones it signed itself); each committed
    value is hashed once (BLAKE3, the rows digest); the id column, which the rows
    digests cover and the untracked job never reads, is decoded in each worker's
    pass over the file. Parsing, rules, storage and the rest come on top of this
    floor.
    """
    ident = Identity.generate("bench")
    payload = bytes(700)  # about a task.result
    sig = ident.sign(payload)
    sign = _seconds_per_call(lambda: ident.sign(payload))
    check = _seconds_per_call(lambda: verify_signature(ident.public_key, payload, sig))
    column = np.random.default_rng(0).bytes(8 << 20)
    hash_rate = len(column) / _seconds_per_call(lambda: blake3(column).digest(), 20)
    checks = messages * (witnesses + 1) - local
    ids = open_source(str(data), batch_rows=1 << 16)
    id_decode = _best_cpu(lambda: [None for _ in range(passes) for _ in ids.batches(["id"])])
    cpu = messages * sign + checks * check + nbytes / hash_rate + id_decode
    return {
        "messages": messages,
        "signature_checks": checks,
        "hashed_bytes": nbytes,
        "sign_seconds": sign,
        "verify_seconds": check,
        "blake3_bytes_per_second": hash_rate,
        "id_column_passes": passes,
        "id_decode_seconds": id_decode,
        "required_cpu_seconds": cpu,
    }


def _best_cpu(fn) -> float:
    """Best of 5: CPU seconds of all this process's threads (pyarrow decodes on its pool)."""
    best = float("inf")
    for _ in range(5):
        c = _cpu()
        fn()
        best = min(best, _cpu() - c)
    return best


def _seconds_per_call(fn, n: int = 2000) -> float:
    """Best of 5 timings of n calls: the cost without the machine's noise."""
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - t)
    return best / n


def _paired(tracked: list[float], untracked: list[float]) -> tuple[float, float, float]:
    """Quartiles of each pair's overhead: a slow spell of the machine hits both of a pair."""
    ratios = [t / u - 1 for t, u in zip(tracked, untracked, strict=True)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    lo, med, hi = statistics.quantiles(ratios, n=4, method="inclusive")
    return lo, med, hi


def _dask_ml(X: np.ndarray, y: np.ndarray, a) -> dict:
    try:
        import dask.array as da
        from dask_ml.linear_model import LogisticRegression as DaskLR
        from distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
            Client(cluster),
        ):
            chunks = (len(X) // a.partitions + 1, X.shape[1])
            dX, dy = da.from_array(X, chunks=chunks), da.from_array(y, chunks=chunks[0])
            t = time.perf_counter()
            m = DaskLR(solver="lbfgs", max_iter=a.iterations).fit(dX, dy)
            secs = time.perf_counter() - t
            acc = float((m.predict(dX).compute() == y).mean())
        return {"dask_ml_seconds": secs, "dask_ml_accuracy": acc}
    except Exception as e:  # report, don't hide: dask-ml lags new dask releases
        return {"dask_ml_error": f"{type(e).__name__}: {e}"[:300]}


if __name__ == "__main__":
    main()
