"""The README's main job, end to end on the embedded default (no servers to start).

Creates a fresh ledger with three in-process witnesses, records messages, waits
for their finality, verifies every copy, and shows what a user looks at next.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from rich.console import Console

from .ledger import Ledger
from .ledger.verify import verify_home

console = Console(highlight=False, soft_wrap=True)


def run(home: Path, messages: int = 2000) -> int:
    if home.exists():
        shutil.rmtree(home)
    console.rule("[bold]bubblechain demo")
    led = Ledger.init(home, witnesses=3, quorum=2)
    g = led.genesis
    console.print(f"1. initialised ledger [bold]{g.origin}[/] at {home}")
    console.print(f"   genesis {g.hash.hex()[:16]}…, witnesses w1 w2 w3, quorum {g.quorum} of 3")
    led.append("note", {"text": "demo: ledger opened for the churn-model programme"})
    t = time.perf_counter()
    for i in range(messages):
        led.append("note", {"text": f"demo event {i}"})
    led.flush()
    dt = time.perf_counter() - t
    st = led.status()
    console.print(
        f"2. recorded {messages + 1} admin-signed notes; all final "
        f"({messages / dt:,.0f} finalised messages/s with 2-of-3 witnesses)"
    )
    console.print(
        f"   height {st['height']}, log size {st['size']}, final height "
        f"{st['final_height']}; witnesses at "
        + ", ".join(f"{w['name']}={w['height']}" for w in st["witnesses"])
    )
    last = max(led.entries(kind="note"), key=lambda e: e.index)
    proof = led.inclusion_proof(last.index)
    console.print(
        f"3. message {last.index} has an RFC 9162 inclusion proof of "
        f"{len(proof['proof'])} hashes against the final checkpoint:"
    )
    console.print(led.checkpoint(), markup=False)
    led.close()
    report = verify_home(home)
    if not report.ok:
        for f in report.findings:
            console.print(f"[red]✗[/] {f}")
        return 1
    console.print(
        "4. verify: every hash, link, signature, cosignature, root and state chain "
        "holds in the ledger and in all 3 witness replicas"
    )
    console.rule("next (commands are in .venv/bin; `source .venv/bin/activate` puts them on PATH)")
    console.print(f"  bubblechain status --home {home}")
    console.print(f"  bubblechain log --home {home} --kind note")
    console.print(f"  bubblechain checkpoint --home {home}   # verify with: bubblechain keys")
    console.print(f"  bubblechain verify --home {home} --json")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the bubblechain end-to-end demo.")
    ap.add_argument("--home", type=Path, default=Path(".bubblechain-demo"))
    ap.add_argument("--messages", type=int, default=2000)
    a = ap.parse_args()
    raise SystemExit(run(a.home.absolute(), a.messages))


if __name__ == "__main__":
    main()
