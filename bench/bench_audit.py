"""Audit cost as a ratio of the training time of the same job.

Run: .venv/bin/python bench/bench_audit.py [--rows 1000000] [--features 20]
     [--partitions 8] [--iterations 20] [--json]

Trains a tracked logistic regression (local engine), then audits the home three
ways in the same run: without map replay (ledger, artifacts, data flow, every
reduce/update replayed), with a 10% sample of map tasks, and with every map task
re-executed on verified data. Each audit time is divided by the training time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench_training import job_arguments, make_data, train_bench_job

from bubblechain.audit import AuditOptions, audit
from bubblechain.data.ledger import commit_dataset
from bubblechain.ledger import Ledger


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    job_arguments(ap)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        make_data(d / "data.parquet", a.rows, a.features)
        feats = [f"f{i:02d}" for i in range(a.features)]
        with Ledger.init(d / "home") as led:
            commit_dataset(led, d / "data.parquet", "id", name="bench")
            t = time.perf_counter()
            res = train_bench_job(led, feats, a.partitions, a.iterations)
            training = time.perf_counter() - t
        out = {
            "rows": a.rows,
            "features": a.features,
            "partitions": a.partitions,
            "rounds": res.rounds,
            "training_seconds": training,
        }
        for mode, rate in (("none", 0.1), ("sample", 0.1), ("full", 1.0)):
            t = time.perf_counter()
            rep = audit(d / "home", AuditOptions(replay=mode, sample_rate=rate))
            secs = time.perf_counter() - t
            assert rep.ok, [str(f) for f in rep.findings]
            out[f"audit_{mode}_seconds"] = secs
            out[f"audit_{mode}_ratio"] = secs / training
            out[f"audit_{mode}_replayed"] = rep.sampling["replayed"]
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"logistic regression, {a.rows:,} x {a.features}, {a.partitions} partitions, "
        f"{out['rounds']} rounds: training {training:.2f} s (tracked, local engine)"
    )
    for mode in ("none", "sample", "full"):
        print(
            f"  audit, map replay {mode:<6} {out[f'audit_{mode}_seconds']:6.2f} s = "
            f"{out[f'audit_{mode}_ratio']:.2f} x training  "
            f"({out[f'audit_{mode}_replayed']} map tasks re-executed)"
        )


if __name__ == "__main__":
    main()
