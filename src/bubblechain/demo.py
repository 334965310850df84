"""The README's main job, end to end on the embedded default (no servers to start).

Makes a seeded customer-churn table of 1,000,000 rows, commits it as a Merkle
tree on a fresh ledger with three in-process witnesses, trains a logistic
regression with 4 map partitions on the local process pool (every task result
and parameter update a signed message), checks the model file against its
record, verifies everything, and shows what to look at next.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .algorithms.registry import get as get_algorithm
from .churn import TARGET, write_churn
from .data.ledger import commit_dataset, verify_dataset
from .ledger import Ledger
from .ledger.verify import verify_home
from .training.predict import check_model
from .training.runtime import train

console = Console(highlight=False, soft_wrap=True)


def run(root: Path, rows: int, iterations: int, partitions: int) -> int:
    if root.exists():
        shutil.rmtree(root)
    home, data = root / "home", root / "churn.parquet"
    console.rule("[bold]bubblechain demo: tamper-evident training of a churn model")
    t0 = time.perf_counter()
    write_churn(data, rows=rows)
    console.print(f"1. generated {rows:,} customers (seeded) -> {data}")
    led = Ledger.init(home, witnesses=3, quorum=2)
    g = led.genesis
    console.print(
        f"2. ledger {g.origin}: 3 in-process witnesses, quorum {g.quorum}; "
        f"genesis {g.hash.hex()[:16]}… (auditors pin {home / 'genesis.json'})"
    )
    t = time.perf_counter()
    c = commit_dataset(led, data, "customer_id", name="churn")
    console.print(
        f"3. committed dataset 'churn' v{c['version']}: {c['rows']:,} rows, Merkle root "
        f"{c['root'][:16]}… ({time.perf_counter() - t:.1f} s), final on the ledger"
    )
    show = sys.stdout.isatty()
    with Progress(
        TextColumn("   {task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    ) as progress:
        rounds = iterations + get_algorithm("logistic").setup_rounds  # they come on top
        task = progress.add_task("training", total=rounds, info="")

        def on_iteration(info: dict) -> None:
            progress.update(
                task,
                advance=1,
                info=f"round {int(info['iteration']) + 1} loss {info.get('loss', 0):.5f}",
            )

        t = time.perf_counter()
        res = train(
            led,
            data="churn",
            algorithm="logistic",
            target=TARGET,
            partitions=partitions,
            iterations=iterations,
            out=root / "churn.model",
            on_iteration=on_iteration,
        )
        progress.update(task, completed=rounds)
    kinds = Counter(e.kind for e in led.entries() if e.fields["job"] == res.job)
    console.print(
        f"4. trained logistic regression, job {res.job}: {res.rounds} MapReduce rounds "
        f"on {partitions} partitions in {time.perf_counter() - t:.1f} s; training "
        f"accuracy {res.value:.4f}"
    )
    console.print("   recorded: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    _, _, final = check_model(led, root / "churn.model")
    console.print(
        f"5. model {root / 'churn.model'}\n   sha256 {res.model_hash[:16]}… matches "
        f"model.final at log index {final.index}"
    )
    st = led.status()
    led.close()
    report = verify_home(home)
    with Ledger.open(home, readonly=True) as ro:
        dv = verify_dataset(ro, data, "churn")
    if not report.ok or not dv["ok"]:
        for f in report.findings:
            console.print(f"[red]✗[/] {f}")
        return 1
    console.print(
        f"6. verified: {st['size']:,} messages in {st['height'] + 1} blocks, every "
        "signature, link, root, cosignature and state chain, in the ledger and all 3 "
        "witness replicas; the data file still matches its commitment"
    )
    console.print(f"   total {time.perf_counter() - t0:.1f} s")
    console.rule("next (commands are in .venv/bin; `source .venv/bin/activate` puts them on PATH)")
    h = f"--home {home}"
    for cmd in (
        f"bubblechain jobs {h}",
        f"bubblechain job {res.job} {h}",
        f"bubblechain status {h}",
        f"bubblechain verify {h}",
        f"bubblechain data verify {data} --name churn {h}",
        f"bubblechain predict {data} --model {root / 'churn.model'} --out preds.parquet {h}",
        f"bubblechain checkpoint {h}      # check it with the vkeys of: bubblechain keys {h}",
    ):
        console.print(f"  {cmd}")
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the bubblechain end-to-end demo.")
    ap.add_argument("--dir", type=Path, default=Path("demo-output"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--partitions", type=int, default=4)
    a = ap.parse_args()
    raise SystemExit(run(a.dir.absolute(), a.rows, a.iterations, a.partitions))


if __name__ == "__main__":
    main()
