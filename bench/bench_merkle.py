"""Benchmark bubblechain.merkle against the cost of hashing the leaves alone.

Run: .venv/bin/python bench/bench_merkle.py [--leaves N] [--json]

Times, best of 3 in one run: (a) a plain-Python loop computing only
sha256(0x00 ‖ x) per leaf, the floor any Python Merkle code pays per leaf;
(b) merkle.root over the precomputed leaf hashes; (c) CompactTree.extend
with the same hashes, and (d) CompactTree.append one at a time. Ratios are
against (a): about 1 means the tree costs no more than hashing the leaves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable

from bubblechain import merkle


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000, help="number of leaves")
    parser.add_argument("--runs", type=int, default=3, help="repetitions; the best is kept")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    n = args.leaves

    entries = [os.urandom(32) for _ in range(n)]
    hashes = [merkle.leaf_hash(x) for x in entries]
    sha256 = hashlib.sha256

    def leaf_loop() -> None:
        for x in entries:
            sha256(b"\x00" + x).digest()

    def bulk_root() -> bytes:
        return merkle.root(hashes)

    def compact_extend() -> bytes:
        tree = merkle.CompactTree()
        tree.extend(hashes)
        return tree.root()

    def compact_append() -> bytes:
        tree = merkle.CompactTree()
        for h in hashes:
            tree.append(h)
        return tree.root()

    assert bulk_root() == compact_extend() == compact_append()
    cases = {
        "leaf_hash_loop": leaf_loop,
        "root": bulk_root,
        "compact_extend": compact_extend,
        "compact_append": compact_append,
    }
    seconds = {name: best_of(args.runs, fn) for name, fn in cases.items()}
    base = seconds["leaf_hash_loop"]
    figures = {
        "leaves": n,
        "runs": args.runs,
        "python": sys.version.split()[0],
        "results": {
            name: {
                "seconds": round(s, 4),
                "leaves_per_second": round(n / s) if s else None,
                "ratio_to_leaf_loop": round(s / base, 3) if base else None,
            }
            for name, s in seconds.items()
        },
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{n:,} leaves, best of {args.runs} (Python {figures['python']})")
    print(f"{'case':<16} {'seconds':>9} {'leaves/s':>13} {'vs (a)':>7}")
    for name, row in figures["results"].items():
        print(
            f"{name:<16} {row['seconds']:>9.3f} {row['leaves_per_second']:>13,} "
            f"{row['ratio_to_leaf_loop']:>6.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
