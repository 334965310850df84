"""Ledger throughput: finalised appends/s with 2-of-3 embedded witnesses, durable commits.

Run: .venv/bin/python bench/bench_ledger.py [--messages N] [--json]

The baseline, measured in the same run on the same machine, is Ed25519 signature
verifications per second (PyNaCl/libsodium), one thread and two threads: every
finalised message costs one signature and three verifications (one per witness),
so verification bounds what any honest design can reach here. `verify` of the
result (the ledger and 3 replicas, each replayed from genesis) is reported as
ledger messages per second against the same baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time

import nacl.signing

from bubblechain.crypto.keys import verify_signature
from bubblechain.ledger import Ledger
from bubblechain.ledger.verify import verify_home


def verifications_per_second(seconds: float = 1.5, threads: int = 1) -> float:
    sk = nacl.signing.SigningKey.generate()
    pk = bytes(sk.verify_key)
    msg = os.urandom(330)  # about the size of a note message payload
    sig = sk.sign(msg).signature
    counts = [0] * threads

    def run(i: int) -> None:
        end = time.perf_counter() + seconds
        n = 0
        while time.perf_counter() < end:
            for _ in range(200):
                verify_signature(pk, msg, sig)
            n += 200
        counts[i] = n

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def finalised_per_second(n: int, block_size: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        Ledger.init(f"{d}/home").close()
        with Ledger.open(f"{d}/home", block_size=block_size) as led:
            start = time.perf_counter()
            for i in range(n):
                led.append("note", {"text": f"benchmark message {i}"})
            appended = time.perf_counter()
            led.flush()
            final = time.perf_counter()
            st = led.status()
        verifying = time.perf_counter()
        report = verify_home(f"{d}/home")  # the ledger and the 3 replicas, each replayed
        checked = time.perf_counter()
    assert st["final_size"] == n + 1 and report.ok
    return {
        "appended_per_s": n / (appended - start),
        "finalised_per_s": n / (final - start),
        "verified_per_s": n / (checked - verifying),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=30_000)
    ap.add_argument("--block-size", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rows = []
    for _ in range(a.rounds):  # interleave baseline and ledger runs: the machine is noisy
        v1 = verifications_per_second(threads=1)
        v2 = verifications_per_second(threads=2)
        led = finalised_per_second(a.messages, a.block_size)
        rows.append({"verify_1t_per_s": v1, "verify_2t_per_s": v2, **led})
    best = max(rows, key=lambda r: r["finalised_per_s"])
    out = {
        "messages": a.messages,
        "block_size": a.block_size,
        "witnesses": "2-of-3 embedded",
        "rounds": rows,
        "best_finalised_per_s": best["finalised_per_s"],
        "ratio_finalised_to_verify_1t": best["finalised_per_s"] / best["verify_1t_per_s"],
        "ratio_finalised_to_verify_2t": best["finalised_per_s"] / best["verify_2t_per_s"],
        "target_finalised_per_s": 3000,
        "best_verified_per_s": max(r["verified_per_s"] for r in rows),
    }
    if a.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"ledger: {a.messages} note messages, blocks of {a.block_size}, 2-of-3 embedded "
        "witnesses, WAL + synchronous=FULL"
    )
    print(
        f"{'round':>5} {'verify/s 1 thr':>15} {'verify/s 2 thr':>15} {'appended/s':>11} "
        f"{'finalised/s':>12} {'final/verify1':>14} {'verify cmd msg/s':>17}"
    )
    for i, r in enumerate(rows):
        print(
            f"{i:>5} {r['verify_1t_per_s']:>15,.0f} {r['verify_2t_per_s']:>15,.0f} "
            f"{r['appended_per_s']:>11,.0f} {r['finalised_per_s']:>12,.0f} "
            f"{r['finalised_per_s'] / r['verify_1t_per_s']:>14.3f} {r['verified_per_s']:>17,.0f}"
        )
    print(
        f"best: {out['best_finalised_per_s']:,.0f} finalised messages/s "
        f"(target 3,000) = {out['ratio_finalised_to_verify_1t']:.3f} x single-thread "
        f"Ed25519 verifications/s, {out['ratio_finalised_to_verify_2t']:.3f} x two-thread"
    )
    v = max(rows, key=lambda r: r["verified_per_s"])
    print(
        f"verify (4 copies): {v['verified_per_s']:,.0f} ledger messages/s = "
        f"{v['verified_per_s'] / v['verify_1t_per_s']:.3f} x single-thread verifications/s"
    )


if __name__ == "__main__":
    main()
