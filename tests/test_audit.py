"""The audit's tamper matrix: each case changes what an attacker would change."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import rewrite_and_resign
from test_training import write_toy

from bubblechain.algorithms.registry import get as get_algorithm
from bubblechain.audit import AuditOptions, audit
from bubblechain.audit.core import _Auditor
from bubblechain.audit.jobs import collect_jobs
from bubblechain.crypto.keys import Identity
from bubblechain.data.ledger import commit_dataset
from bubblechain.home import Home
from bubblechain.ledger import Ledger, Message
from bubblechain.training import bubble as bubble_mod
from bubblechain.training.code import training_code_hash
from bubblechain.training.runtime import train

ROWS = 4000


def committed_toy(tmp_path: Path) -> tuple[Path, Path]:
    """A ledger home with the toy dataset committed as "toy": (home, data)."""
    data = tmp_path / "toy.parquet"
    write_toy(data, rows=ROWS)
    home = tmp_path / "home"
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="toy")
    return home, data


def make_home(tmp_path: Path, on_iteration=None) -> tuple[Path, Path, Path, str]:
    home, data = committed_toy(tmp_path)
    with Ledger.open(home) as led:
        res = train(
            led,
            data="toy",
            algorithm="logistic",
            target="label",
            partitions=4,
            engine="inline",
            out=tmp_path / "toy.model",
            on_iteration=on_iteration,
        )
    return home, data, Path(res.model_path), res.job


@pytest.fixture
def trained(tmp_path):
    return make_home(tmp_path)


def run(home, **kw):
    kw.setdefault("replay", "full")
    return audit(home, AuditOptions(**kw))


def kinds_where(report) -> set[tuple[str, str]]:
    return {(f.kind, f.where) for f in report.findings}


def test_clean_record_has_no_findings_and_writes_a_report(trained, cli, tmp_path):
    home, data, model, job = trained
    rep = run(home, data=[data], models=[model])
    assert rep.ok, [str(f) for f in rep.findings]
    assert rep.sampling["replayed"] == rep.sampling["tasks"] > 0
    code, out, _ = cli(
        "audit",
        "--home",
        home,
        "--replay",
        "full",
        "--data",
        data,
        "--model",
        model,
        "--report",
        tmp_path / "r.html",
        "--json",
    )
    assert code == 0 and json.loads(out)["ok"] is True
    page = (tmp_path / "r.html").read_text()
    assert "No findings" in page and "<polyline" in page and job in page
    assert f"<tr><td>{data}</td><td>matches toy v1 (trained on by {job})</td></tr>" in page

    # A sample: the page says how to draw it again, and each worker's odds of being caught.
    code, out, _ = cli("audit", "--home", home, "--replay", "sample", "--sample-rate", "0.5",
                       "--seed", "7", "--report", tmp_path / "s.html", "--json")  # fmt: skip
    assert code == 0
    workers = json.loads(out)["sampling"]["workers"]
    page = (tmp_path / "s.html").read_text()
    assert "(seed 7)." in page and "<h2>Workers</h2>" in page
    for name, w in workers.items():
        cells = "".join(f"<td>{p:.4g}</td>" for p in w["p_catch"].values())
        assert f"<tr><td>{name}</td><td>{w['tasks']}</td><td>{w['replayed']}</td>{cells}" in page


def test_data_row_changed_after_commitment(trained):
    home, data, _, _ = trained
    t = pq.read_table(data).to_pandas()
    t.loc[t["id"] == 1234, "x3"] = 42.0
    pq.write_table(__import__("pyarrow").Table.from_pandas(t, preserve_index=False), data)
    rep = run(home, data=[data])
    assert ("data", "dataset toy v1, row 1234") in kinds_where(rep)
    replayed = [f for f in rep.findings if f.where.startswith("dataset toy, partition")]
    assert replayed and "changed [1234]" in replayed[0].detail


def _set_x3(src: Path, dst: Path, changes: dict[int, float]) -> None:
    t = pq.read_table(src).to_pandas()
    for rid, value in changes.items():
        t.loc[t["id"] == rid, "x3"] = value
    pq.write_table(__import__("pyarrow").Table.from_pandas(t, preserve_index=False), dst)


def test_data_file_a_job_trained_on_is_that_version_after_a_newer_commit(trained, cli, tmp_path):
    # The job trained on v1; v2 (one row changed) is committed from another file later.
    # The v1 file is the job's data, not a changed file: no finding, and it says so.
    home, data, _, job = trained
    v2 = tmp_path / "v2" / "toy.parquet"
    v2.parent.mkdir()
    _set_x3(data, v2, {7: 99.0})
    with Ledger.open(home) as led:
        commit_dataset(led, v2, "id", name="toy")
    rep = run(home, data=[data, v2], replay="none")
    assert rep.ok, [str(f) for f in rep.findings]
    assert rep.data == [
        {"path": str(data), "name": "toy", "latest": 2, "version": 1, "matches": True,
         "jobs": [job]},
        {"path": str(v2), "name": "toy", "latest": 2, "version": 2, "matches": True,
         "jobs": []},
    ]  # fmt: skip
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--data", data)
    assert (code, err) == (0, "")
    assert f"data {data}: dataset toy v1 (latest is v2); trained on by {job}" in out.splitlines()

    # Matching neither the latest version nor the job's: the findings are against the latest.
    _set_x3(data, data, {1234: 42.0})
    rep = run(home, data=[data], replay="none")
    assert {(f.kind, f.where) for f in rep.findings if f.kind == "data"} == {
        ("data", "dataset toy v2, row 7"),
        ("data", "dataset toy v2, row 1234"),
    }
    assert rep.data[0] | {"path": None} == {
        "path": None, "name": "toy", "latest": 2, "version": 2, "matches": False, "jobs": [],
    }  # fmt: skip
    code, out, _ = cli("audit", "--home", home, "--replay", "none", "--data", data)
    assert code == 1
    assert (
        f"data {data}: matches neither dataset toy v2 (the latest) nor a version a job "
        "trained on: see the findings"
    ) in out.splitlines()


def test_jobs_on_other_columns_of_the_same_data_replay_clean(tmp_path):
    home, _ = committed_toy(tmp_path)
    with Ledger.open(home) as led:
        for algorithm, target, features in (
            ("naive-bayes", "label", ["x0", "x1"]),
            ("logistic", "label", ["x2", "x3"]),
            ("linear", "x4", ["x0", "x1", "x2"]),
        ):
            train(
                led,
                data="toy",
                algorithm=algorithm,
                target=target,
                features=features,
                partitions=4,
                engine="inline",
                out=tmp_path / f"{algorithm}-{target}-{len(features)}.model",
            )
    rep = run(home)
    assert [(f.kind, f.where, f.detail) for f in rep.findings] == []


def test_a_result_signed_on_unusable_rows_is_a_finding_and_other_jobs_still_replay(
    tmp_path, monkeypatch
):
    """A worker that computes on a null target (as before the check existed) is reported
    on its result; the rows match their commitment, so they are no data finding, and a
    clean job on the same rows is replayed (it used to be skipped as tampered)."""
    import pyarrow as pa

    from bubblechain.algorithms import _sums
    from bubblechain.training import partitions

    data = tmp_path / "toy.parquet"
    write_toy(data, rows=ROWS)
    t = pq.read_table(data)
    names = ["yes" if v else "no" for v in t["label"].to_pylist()]
    names[11] = None
    pq.write_table(t.append_column("name", pa.array(names)), data)
    home = tmp_path / "home"

    def lenient(table, features, target, label, id_column):
        y = np.array(table.column(target).to_pylist(), dtype=object) if target else None
        return partitions._matrix(table, features), y

    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="toy")
        with monkeypatch.context() as m:
            m.setattr(partitions, "usable", lenient)
            m.setattr(_sums, "missing_rows", lambda y: np.empty(0, dtype=np.intp))
            lax = train(led, data="toy", algorithm="naive-bayes", target="name",
                        features=["x0", "x1"], partitions=4, engine="inline")  # fmt: skip
        clean = train(led, data="toy", algorithm="logistic", target="label",
                      features=["x2", "x3"], partitions=4, engine="inline")  # fmt: skip
    rep = run(home)
    assert {f.kind for f in rep.findings} == {"replay"}
    assert all(lax.job in f.where and "partition 0," in f.where for f in rep.findings)
    assert all("target 'name' is missing or not finite at row ids [11]" in f.detail
               for f in rep.findings)  # fmt: skip
    assert not any(clean.job in f.where for f in rep.findings)
    assert rep.sampling["replayed"] == rep.sampling["tasks"] - len(rep.findings)


class _Lie:
    """A worker that returns a wrong partial once and signs it with its own key."""

    def __init__(self, monkeypatch, iteration: int, partition: int):
        algo = get_algorithm("logistic")
        real = type(algo).map
        self.calls = 0

        def map(self_, params, X, y, ctx):
            partial = real(self_, params, X, y, ctx)
            self.calls += 1
            if self.calls == 4 * iteration + partition + 1:  # inline: partitions in order
                key = next(k for k, v in partial.items() if v.dtype.kind == "f" and v.size > 1)
                partial[key] = partial[key] * 1.001
            return partial

        monkeypatch.setattr(type(algo), "map", map)


def test_a_lying_worker_is_caught_by_replay_and_by_sampling_at_the_stated_rate(
    tmp_path, monkeypatch
):
    _Lie(monkeypatch, iteration=3, partition=2)
    home, *_ = make_home(tmp_path)
    monkeypatch.undo()
    rep = run(home)
    (lie,) = [f for f in rep.findings if f.kind == "replay"]
    assert "partition 2, iteration 3" in lie.where and "re-executing the map gives" in lie.detail
    assert "the worker signed" in lie.detail
    # Sampling: over many seeds the lie is found at the stated rate.
    rate, seeds = 0.25, 160
    with Ledger.open(home, readonly=True) as led:
        (rec,) = collect_jobs(led.entries())[0]
        algo = get_algorithm("logistic")
        cache: dict = {}
        caught = 0
        for seed in range(seeds):
            opts = AuditOptions(replay="sample", sample_rate=rate, seed=seed)
            a = _Auditor(Home(home), led.genesis, opts)
            a._data_cache = cache
            a.replay_maps(led, rec, algo)
            caught += any(f.kind == "replay" for f in a.findings)
        stated = a.sampling()
    (w,) = stated["workers"].values()
    assert stated["rate"] == rate
    # one lie among the worker's tasks: P(caught) = rate; binomial(160, 0.25): mean 40, sd 5.5
    assert 40 - 4 * 5.5 <= caught <= 40 + 4 * 5.5
    assert w["p_catch"]["0.1"] == pytest.approx(1 - (1 - rate) ** np.ceil(0.1 * w["tasks"]))


def test_parameters_changed_between_iterations(tmp_path, monkeypatch):
    algo = get_algorithm("logistic")
    real = type(algo).update
    calls = {"n": 0}

    def update(self, params, reduced):
        upd = real(self, params, reduced)
        calls["n"] += 1
        if calls["n"] == 4:  # the coordinator nudges the new parameters once
            key = next(k for k, v in upd.params.items() if v.dtype.kind == "f" and v.size > 1)
            upd.params[key] = upd.params[key] + 1e-6
        return upd

    monkeypatch.setattr(type(algo), "update", update)
    home, _, _, _ = make_home(tmp_path)
    monkeypatch.undo()
    rep = run(home, replay="none")
    (f,) = rep.findings
    assert f.kind == "replay" and "state.update, iteration 3" in f.where
    assert "replaying reduce and update gives parameters" in f.detail


def test_model_file_changed_after_training(trained):
    home, _, model, _ = trained
    raw = bytearray(model.read_bytes())
    raw[-5] ^= 0x10
    model.write_bytes(bytes(raw))
    rep = run(home, replay="none", models=[model])
    (f,) = rep.findings
    assert (f.kind, f.where) == ("model", str(model)) and "matches no model.final" in f.detail


def test_training_code_changed(trained, monkeypatch):
    home, _, _, job = trained
    real = bubble_mod.inspect.getsource

    def patched(obj):
        src = real(obj)
        return src + "\n# patched\n" if obj.__name__.endswith("logistic") else src

    monkeypatch.setattr(bubble_mod.inspect, "getsource", patched)
    training_code_hash.cache_clear()
    try:
        rep = run(home, replay="none")
    finally:
        monkeypatch.undo()
        training_code_hash.cache_clear()
    (f,) = rep.findings
    assert (f.kind, f.where) == ("code", job) and "the code changed" in f.detail


def _db(home):
    return sqlite3.connect(home / "ledger.db", isolation_level=None)


def test_a_message_deleted(trained):
    home, *_ = trained
    con = _db(home)
    idx, blk = con.execute(
        "SELECT idx, block FROM messages WHERE kind='task.result' ORDER BY idx LIMIT 1 OFFSET 5"
    ).fetchone()
    con.execute("DELETE FROM messages WHERE idx=?", (idx,))
    rep = run(home, replay="none")
    assert ("message", f"message {idx} (block {blk})") in kinds_where(rep)
    assert ("replica", f"message {idx} (block {blk})") in kinds_where(rep)


def test_a_block_rewritten_and_resigned_with_the_sequencer_key(trained):
    home, *_ = trained
    con = _db(home)
    idx, payload, blk = con.execute(
        "SELECT idx, payload, block FROM messages WHERE kind='note' OR kind='node.register' "
        "ORDER BY idx DESC LIMIT 1"
    ).fetchone()
    old = Message.from_parts(payload, bytes(64))
    admin = Identity.load(home / "keys" / "admin.key")
    body = dict(old.body, role="auditor")
    forged = Message.create(admin, old.kind, body, seq=old.seq, time_us=old.fields["time"])
    rewrite_and_resign(home, idx, forged)
    rep = run(home, replay="none")
    kw = kinds_where(rep)
    assert ("replica", f"message {idx} (block {blk})") in kw
    assert ("cosignature", f"block {blk}") in kw
    assert any(f.kind == "witness" for f in rep.findings)


def test_local_ledger_replaced_by_a_consistent_but_different_one(tmp_path):
    home, _ = committed_toy(tmp_path)
    early = tmp_path / "early.db"
    shutil.copy(home / "ledger.db", early)  # a valid ledger, as it stood before training
    with Ledger.open(home) as led:
        train(led, data="toy", algorithm="logistic", target="label", engine="inline")
    shutil.copy(early, home / "ledger.db")
    rep = run(home, replay="none")
    witness = [f for f in rep.findings if f.kind == "witness"]
    assert {f.where for f in witness} == {"witness w1", "witness w2", "witness w3"}
    assert all("this ledger has only" in f.detail for f in witness)


def test_an_artifact_deleted_is_reported_missing_not_crashed(trained):
    home, *_ = trained
    with Ledger.open(home, readonly=True) as led:
        (rec,) = collect_jobs(led.entries())[0]
        victim = next(iter(rec.results.values()))
        digest = victim.fields["state"]
        path = led.artifacts.path(digest)
    path.unlink()
    rep = run(home)
    missing = [f for f in rep.findings if f.kind == "artifact"]
    assert missing and all(digest in f.detail and "missing" in f.detail for f in missing)
    assert any(f"message {victim.index} (task.result" in f.where for f in missing)


@pytest.mark.parametrize("replay", ["none", "full"])
def test_a_corrupted_artifact_is_one_finding_at_the_message_that_recorded_it(trained, replay):
    """The last parameters (read by no later step) edited by one byte: found without
    replay (it used to pass unless replayed), once, where it was recorded, not where read."""
    home, *_ = trained
    with Ledger.open(home, readonly=True) as led:
        (rec,) = collect_jobs(led.entries())[0]
        last = rec.updates[-1]
        (digest,) = last.fields["outputs"]
        path = led.artifacts.path(digest)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    rep = run(home, replay=replay)
    bad = [f for f in rep.findings if f.kind == "artifact"]
    where = f"message {last.index} (state.update, {rec.job})"
    assert [(f.where, f.detail) for f in bad] == [
        (where, f"artifact {digest} does not match its hash")
    ]


def test_audit_usage_errors(trained, cli, tmp_path):
    home, *_ = trained
    code, _, err = cli("audit", "--home", home, "--replay", "most")
    assert code == 2 and "--replay must be none, sample or full" in err
    code, _, err = cli("audit", "--home", home, "--genesis", tmp_path / "nope.json")
    assert code == 2 and "nope.json" in err
    for flag in ("--data", "--model"):
        code, out, err = cli("audit", "--home", home, flag, tmp_path / "typo.parquet")
        assert (code, out) == (2, "")
        assert (
            err.strip() == f"error: {flag} {tmp_path / 'typo.parquet'}: no such file or directory"
        )


def test_audit_report_never_overwrites_what_it_audits(trained, cli):
    """--report over the ledger, a committed dataset or a recorded model used to replace
    it with the page (exit 0), leaving a home that no command could open."""
    import hashlib

    home, data, model, job = trained
    files = [home / "ledger.db", home / "genesis.json", data, model]

    def digests():
        return [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]

    before = digests()
    for target, says in [
        (home / "ledger.db", "is inside the ledger home"),
        (home / "genesis.json", "is inside the ledger home"),
        (data, "the source of committed dataset 'toy'"),
        (model, f"holds the model of job {job}"),
    ]:
        code, _out, err = cli("audit", "--home", home, "--replay", "none", "--report", target)
        assert code == 2 and says in err, err
    assert digests() == before


def test_a_plan_that_does_not_cover_the_rows_once(tmp_path, monkeypatch):
    from bubblechain.training import runtime

    monkeypatch.setattr(
        runtime, "plan", lambda rows, p, align=1: [[0, 1000], [0, 1000], [1000, rows]]
    )
    home, *_ = make_home(tmp_path)
    monkeypatch.undo()
    rep = run(home, replay="none")
    (f,) = [f for f in rep.findings if f.kind == "plan"]
    assert "do not cover rows 0..4000 of toy exactly once" in f.detail


def test_a_plan_finding_names_the_row_spans_in_words(tmp_path, monkeypatch, cli):
    """The plan was printed as a Python list: "its partitions [[0, 1000], [0, 1000],
    [1000, 4000]] do not cover ..."."""
    from bubblechain.training import runtime

    monkeypatch.setattr(
        runtime, "plan", lambda rows, p, align=1: [[0, 1000], [0, 1000], [1000, rows]]
    )
    home, _, _, job = make_home(tmp_path)
    monkeypatch.undo()
    code, out, _ = cli("audit", "--home", home, "--replay", "none")
    assert code == 1
    assert (
        f"✗ plan {job}: its partitions (rows 0..1000, 0..1000, 1000..4000) do not cover "
        "rows 0..4000 of toy exactly once, in order"
    ) in out.splitlines()


def test_a_state_update_reducing_a_partition_twice_is_said_in_words(trained, cli):
    """The coordinator's insider reduces partition 0's result twice and partition 1's not
    at all, and re-signs every block: the flow finding listed "[0, 0, 2, 3]"."""
    home, _, _, job = trained
    con = _db(home)
    idx, payload = con.execute(
        "SELECT idx, payload FROM messages WHERE kind='state.update' ORDER BY idx LIMIT 1"
    ).fetchone()
    con.close()
    old = Message.from_parts(payload, bytes(64))
    results = sorted(old.body["results"], key=lambda r: r["partition"])
    results[1] = results[0]
    f = old.fields
    forged = Message.create(
        Identity.load(home / "keys" / "coordinator.key"),
        old.kind,
        dict(old.body, results=results),
        seq=old.seq,
        time_us=f["time"],
        **{k: f[k] for k in ("bubble", "last", "state", "outputs", "code", "job")},
        inputs=[r["message"] for r in results],
    )
    rewrite_and_resign(home, idx, forged)
    code, out, _ = cli("audit", "--home", home, "--replay", "none")
    assert code == 1
    assert (
        f"✗ flow message {idx} (state.update, {job}): reduces the results of partitions "
        "0, 0, 2, 3, not one of each of the 4 partitions"
    ) in out.splitlines()


def test_initial_parameters_other_than_declared(tmp_path, monkeypatch):
    algo = get_algorithm("logistic")
    real = type(algo).initial_params
    monkeypatch.setattr(
        type(algo),
        "initial_params",
        lambda self, n, hyper, seed: real(self, n, {**hyper, "C": 1e-6}, seed),
    )
    home, *_ = make_home(tmp_path)
    monkeypatch.undo()
    rep = run(home, replay="none")
    (f,) = [f for f in rep.findings if f.kind == "params"]
    assert "(job.start," in f.where and "not those of the declared algorithm" in f.detail


def test_an_inflated_training_metric(tmp_path, monkeypatch):
    from bubblechain.training import tasks

    real = tasks.metric_from_partials
    monkeypatch.setattr(
        tasks, "metric_from_partials", lambda algo, parts: (real(algo, parts)[0], 0.999)
    )
    home, *_ = make_home(tmp_path)
    monkeypatch.undo()
    rep = run(home, replay="none")
    (f,) = [f for f in rep.findings if f.kind == "model"]
    assert "records accuracy 0.999, but its evaluation results give accuracy" in f.detail


ROGUE = """
import os, sys, time
from bubblechain.data.ledger import commit_dataset
from bubblechain.ledger import Ledger
from bubblechain.witness import local

def unreachable(self, block):
    raise ConnectionError("kept from the witnesses")

local.LocalWitness.add_block = unreachable
Ledger.flush = lambda self, timeout=None: 0  # returns without waiting for the witnesses
led = Ledger.open(sys.argv[1])
commit_dataset(led, sys.argv[2], "id", name="toy")
seq = led.sequencer
seq.seal()
while seq.committed_height < seq.height:  # stored, then gone before it is final
    time.sleep(0.01)
os._exit(0)
"""


def test_a_data_commit_no_witness_cosigned_is_no_version(trained, tmp_path, cli):
    """A data.commit kept from the witnesses (its block never final) is a finding, and a
    file matching it is not "the latest version" (it used to be, with no finding)."""
    import subprocess
    import sys

    home, data, _, _ = trained
    evil = tmp_path / "evil" / "toy.parquet"
    evil.parent.mkdir()
    _set_x3(data, evil, {5: 1e6})
    script = tmp_path / "rogue.py"
    script.write_text(ROGUE)
    env = {"BUBBLECHAIN_LOCK_WAIT": "0"}
    r = subprocess.run(
        [sys.executable, script, home, evil], capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, **env},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with Ledger.open(home, readonly=True) as led:
        (pending,) = [e for e in led.entries(kind="data.commit") if e.block > led.final_height()]
    rep = run(home, data=[evil], data_names=["toy"], replay="none")
    assert ("pending", f"message {pending.index} (data.commit)") in kinds_where(rep)
    assert rep.data[0]["latest"] == 1 and not rep.data[0]["matches"]
    assert ("data", "dataset toy v1, row 5") in kinds_where(rep)
    rep = run(home, data=[data], replay="none")
    assert rep.data[0]["matches"] and rep.data[0]["version"] == 1
    code, out, _ = cli("data", "list", "--home", home, "--json")
    assert code == 0 and [d["version"] for d in json.loads(out)] == [1]


def test_audit_while_another_process_appends_covers_the_final_record(trained):
    """A process appending (a job running): what is not final yet is in flight, counted,
    not a finding (audits during training used to exit 1 three times in five)."""

    from test_ledger import start_appending

    home, *_ = trained
    stop = home.parent / "stop"
    writer = start_appending(home, stop)
    reports = []
    try:
        while len(reports) < 3 or not any(r.stats.get("in_flight") for r in reports[1:]):
            reports.append(run(home, replay="none"))
            assert writer.poll() is None and len(reports) < 20
    finally:
        stop.touch()
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert [str(f) for r in reports for f in r.findings] == []
    assert any(r.stats.get("in_flight", 0) > 0 for r in reports)
    after = run(home, replay="none")
    assert after.ok and "in_flight" not in after.stats


def test_a_corrupted_partition_index_is_one_finding_at_its_commit_not_the_data_file(trained):
    """It used to be blamed on the intact data file, once per partition, in a garbled
    sentence ('... does not match its hash does not match its commitment: ')."""
    home, *_ = trained
    with Ledger.open(home, readonly=True) as led:
        (commit,) = led.entries(kind="data.commit")
        path = led.artifacts.path(commit.body["partitions"])
    raw = bytearray(path.read_bytes())
    raw[5] ^= 1
    path.write_bytes(bytes(raw))
    rep = run(home)
    assert [(f.kind, f.where) for f in rep.findings] == [
        ("artifact", f"message {commit.index} (data.commit toy v1)")
    ]
    assert rep.sampling["replayed"] == 0


def test_a_corrupted_stored_message_is_verify_s_finding_and_the_audit_goes_on(trained, cli):
    """A byte of model.final's payload flipped: audit used to stop with exit 2 and a line
    naming no message; other commands now name it."""
    home, *_ = trained
    con = sqlite3.connect(home / "ledger.db", isolation_level=None)
    idx, payload = con.execute(
        "SELECT idx, payload FROM messages WHERE kind='model.final'"
    ).fetchone()
    bad = bytearray(payload)
    bad[bad.index(b'"metric"') + 2] ^= 0xFF
    con.execute("UPDATE messages SET payload=? WHERE idx=?", (bytes(bad), idx))
    con.close()
    code, out, err = cli("audit", "--home", home, "--replay", "none", "--json")
    assert code == 1, err
    wheres = [f["where"] for f in json.loads(out)["findings"]]
    assert any(w.startswith(f"message {idx} (block ") for w in wheres), wheres
    code, _out, err = cli("jobs", "--home", home)
    assert code == 2 and err.startswith(f"error: message {idx} (block ")
    assert "is corrupt: payload is not canonical JSON" in err


def test_a_job_start_made_non_canonical_is_a_finding_not_a_crash(trained, cli):
    """One space added to job.start's payload: verify and audit crashed with a KeyError
    (the job.end that closes a job the replay never opened)."""
    home, *_ = trained
    con = sqlite3.connect(home / "ledger.db", isolation_level=None)
    idx, payload = con.execute(
        "SELECT idx, payload FROM messages WHERE kind='job.start'"
    ).fetchone()
    con.execute(
        "UPDATE messages SET payload=? WHERE idx=?", (payload.replace(b'":{', b'": {', 1), idx)
    )
    con.close()
    for cmd in ("verify", "audit"):
        code, out, err = cli(cmd, "--home", home, "--json")
        assert code == 1, err
        found = json.loads(out)["findings"]
        assert any(f["where"].startswith(f"message {idx} (block ") and "malformed" in f["detail"]
                   for f in found), found  # fmt: skip


NO_WITNESS_JOB = """
import os, sys, time
from bubblechain.ledger import Ledger, sequencer
from bubblechain.training.runtime import train
from bubblechain.witness import local

def unreachable(self, block):
    raise ConnectionError("kept from the witnesses")

local.LocalWitness.add_block = unreachable
sequencer.Sequencer.wait_final = lambda self, height, timeout=None: None
led = Ledger.open(sys.argv[1])
res = train(led, data="toy", algorithm="logistic", target="label", partitions=2,
            iterations=3, engine="inline", out=sys.argv[2])
seq = led.sequencer
seq.seal()
while seq.committed_height < seq.height:  # stored, never cosigned
    time.sleep(0.01)
os._exit(0)
"""


def test_a_model_whose_model_final_is_not_final_is_a_finding_even_while_the_home_is_held(
    tmp_path,
):
    """A whole job kept from the witnesses: its model must not pass, also when a process
    holds the home's lock (the audit then took the job for one in flight: no finding)."""
    import fcntl
    import subprocess
    import sys

    home, _ = committed_toy(tmp_path)
    model = tmp_path / "kept.model"
    script = tmp_path / "kept.py"
    script.write_text(NO_WITNESS_JOB)
    r = subprocess.run([sys.executable, script, home, model], capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0 and model.exists(), r.stderr
    with Ledger.open(home, readonly=True) as led:
        (final,) = led.entries(kind="model.final")
        assert final.block > led.final_height()
    detail = f"its model.final (message {final.index}, block {final.block}) is not final"
    for held in (False, True):
        fd = os.open(home / "ledger.lock", os.O_RDWR)
        if held:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            rep = run(home, models=[model], replay="none")
        finally:
            os.close(fd)
        found = [f for f in rep.findings if f.kind == "model"]
        assert [(f.where, f.detail.split(":")[0]) for f in found] == [(str(model), detail)]


def test_a_malformed_block_header_does_not_hide_the_jobs_from_the_audit(trained):
    """With verify's replay stopped by a bad header, the audit used to see no job at all
    and lost the finding on a tampered artifact in the final blocks."""
    home, *_ = trained
    with Ledger.open(home, readonly=True) as led:
        (rec,) = collect_jobs(led.entries())[0]
        victim = next(iter(rec.results.values()))
        path = led.artifacts.path(victim.fields["state"])
        head = led.store.head().height
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    con = sqlite3.connect(home / "ledger.db", isolation_level=None)
    con.execute("UPDATE blocks SET header='garbage' WHERE height=?", (head,))
    con.close()
    rep = run(home, replay="none")
    assert rep.stats["jobs"] == 1
    assert any(f.kind == "artifact" and f"message {victim.index} (task.result" in f.where
               for f in rep.findings)  # fmt: skip


def test_a_commit_left_awaiting_cosignatures_is_final_before_the_next_gets_its_version(
    trained, tmp_path, monkeypatch
):
    """The next writer finalises an earlier process's commit while it runs: counting only
    final commits, a new commit took the same version as that one."""
    import subprocess
    import sys

    from bubblechain.data.ledger import datasets
    from bubblechain.witness import local

    home, data, _, _ = trained
    script = tmp_path / "rogue.py"
    script.write_text(ROGUE)
    r = subprocess.run([sys.executable, script, home, data], capture_output=True, text=True,
                       timeout=60)  # fmt: skip
    assert r.returncode == 0, r.stderr
    real = local.LocalWitness.add_block

    def far(self, block):  # a remote witness's round trip
        time.sleep(0.3)
        return real(self, block)

    monkeypatch.setattr(local.LocalWitness, "add_block", far)
    with Ledger.open(home) as led:
        assert commit_dataset(led, data, "id", name="toy")["version"] == 3
    with Ledger.open(home, readonly=True) as led:
        assert [d["version"] for d in datasets(led)] == [1, 2, 3]


def test_an_artifact_two_identical_jobs_recorded_is_a_finding_in_each(trained, tmp_path):
    """A rerun records the very same partials; a corrupted one was reported for the first
    job only, and the second's replay skipped it without a word."""
    home, *_ = trained
    with Ledger.open(home) as led:
        train(led, data="toy", algorithm="logistic", target="label", partitions=4,
              engine="inline", out=tmp_path / "again.model")  # fmt: skip
    with Ledger.open(home, readonly=True) as led:
        recs = collect_jobs(led.entries())[0]
        first = next(iter(recs[0].results.values()))
        digest = first.fields["state"]
        path = led.artifacts.path(digest)
    recorders = [e for r in recs for e in r.results.values() if e.fields["state"] == digest]
    assert len({e.fields["job"] for e in recorders}) == 2
    raw = bytearray(path.read_bytes())
    raw[0] ^= 1
    path.write_bytes(bytes(raw))
    rep = run(home, replay="full")
    bad = {f.where.split(",")[0] for f in rep.findings if f.kind == "artifact"}
    assert bad == {f"message {e.index} (task.result" for e in recorders}
