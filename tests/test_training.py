"""Tracked MapReduce training on the local engine and on Dask, with faults and tampering."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from bubblechain.algorithms.registry import get as get_algorithm
from bubblechain.data.ledger import commit_dataset
from bubblechain.data.sources import DEFAULT_BATCH_ROWS
from bubblechain.errors import NotFinal
from bubblechain.ledger import Ledger
from bubblechain.ledger.verify import verify_home
from bubblechain.training import runtime
from bubblechain.training.model import read_model
from bubblechain.training.runtime import TrainingFailed, train

ROWS = 20_000


def write_toy(path: Path, rows: int = ROWS, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 5))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0, 1.5]) + rng.normal(size=rows) > 0).astype(np.int64)
    cols = {"id": np.arange(rows), **{f"x{i}": X[:, i] for i in range(5)}, "label": y}
    pq.write_table(pa.table(cols), path)


@pytest.fixture
def toy(tmp_path: Path):
    data = tmp_path / "toy.parquet"
    write_toy(data)
    home = tmp_path / "home"
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="toy")
    return home, data


def job_entries(home: Path, job: str):
    with Ledger.open(home, readonly=True) as led:
        return [e for e in led.entries() if e.fields["job"] == job]


def test_every_step_is_recorded_in_order_with_continuous_state_chains(toy):
    home, _ = toy
    with Ledger.open(home) as led:
        res = train(led, data="toy", algorithm="logistic", target="label", partitions=4)
    assert res.metric == "accuracy" and res.value > 0.85 and res.retries == 0
    es = job_entries(home, res.job)
    kinds = [e.kind for e in es]
    rounds = res.rounds
    expected = ["job.start"]
    for _ in range(rounds):
        expected += ["task.result"] * 4 + ["state.update"]
    expected += ["task.result"] * 4 + ["model.final", "job.end"]
    assert kinds == expected
    # the coordinator's chain: job.start -> state.update -> ... with no gap
    coord = [e for e in es if e.fields["bubble"] == f"{res.job}/coordinator"]
    state = None
    for e in coord:
        if e.kind in ("job.start", "state.update"):
            assert e.fields["last"] == state
            state = e.fields["state"]
    # each round's task results were computed on the state then current, one per partition
    current = es[0].fields["state"]
    for e in es[1:]:
        if e.kind == "task.result":
            assert e.fields["last"] == current and e.fields["sender"].startswith("worker-")
        if e.kind == "state.update":
            assert [r["partition"] for r in e.body["results"]] == [0, 1, 2, 3]
            assert e.fields["inputs"] == [r["message"] for r in e.body["results"]]
            current = e.fields["state"]
    start = es[0].body
    assert start["blas"]["threads_per_worker"] == 1 and start["engine"]["engine"] == "local"
    assert start["dataset"]["name"] == "toy" and len(start["plan"]) == 4
    assert verify_home(home).ok


def test_the_job_s_last_block_holds_only_its_end(toy):
    """The rounds are sealed while the workers evaluate, so the block the job waits
    for at its end is small: the evaluation results, model.final and job.end."""
    home, _ = toy
    with Ledger.open(home, block_delay=3600) as led:  # no block cut by age
        res = train(led, data="toy", algorithm="logistic", target="label", partitions=4)
    es = job_entries(home, res.job)
    last = max(e.block for e in es)
    assert [e.kind for e in es if e.block == last] == ["task.result"] * 4 + [
        "model.final",
        "job.end",
    ]
    # the last round's state.update, which the evaluation computed on, came before
    update = [e for e in es if e.kind == "state.update"][-1]
    assert update.block < last
    assert {e.fields["last"] for e in es if e.block == last and e.kind == "task.result"} == {
        update.fields["state"]
    }
    assert verify_home(home).ok


def test_a_worker_running_other_code_fails_the_job_on_the_record(toy, monkeypatch):
    home, _ = toy
    other = "0f" * 32
    monkeypatch.setattr(runtime.tasks_mod, "training_code_hash", lambda algorithm: other)
    with Ledger.open(home) as led, pytest.raises(TrainingFailed) as e:
        train(led, data="toy", algorithm="logistic", target="label", engine="inline")
    assert f"ran training code {other[:16]}…, not the job's " in str(e.value)
    with Ledger.open(home, readonly=True) as led:
        job = next(x.fields["job"] for x in led.entries(kind="job.start"))
    es = job_entries(home, job)
    assert [e.kind for e in es] == ["job.start", "task.result", "job.end"]
    assert es[1].fields["code"] == other and es[2].body["status"] == "failed"
    assert verify_home(home).ok


def test_cli_train_predict_jobs(toy, cli, tmp_path):
    home, data = toy
    code, out, err = cli(
        "train",
        "--data",
        "toy",
        "--target",
        "label",
        "--algorithm",
        "naive-bayes",
        "--partitions",
        "3",
        "--home",
        home,
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["metric"] == "accuracy" and 0.8 < res["value"] <= 1 and res["converged"] is True
    model = Path(res["model"])
    code, out, _ = cli(
        "predict", data, "--model", model, "--out", tmp_path / "p.csv", "--home", home
    )
    assert code == 0
    preds = pa.csv.read_csv(tmp_path / "p.csv")
    assert preds.num_rows == ROWS and preds.column_names[:2] == ["id", "prediction"]
    truth = pq.read_table(data).column("label").to_numpy()
    assert np.mean(preds.column("prediction").to_numpy() == truth) == pytest.approx(res["value"])
    code, out, _ = cli("jobs", "--home", home, "--json")
    (job,) = json.loads(out)
    assert job["job"] == res["job"] and job["status"] == "succeeded"
    code, out, _ = cli("job", res["job"], "--home", home, "--json")
    assert json.loads(out)[-1]["kind"] == "job.end"
    raw = bytearray(model.read_bytes())
    raw[-3] ^= 0x01  # one bit of one parameter
    model.write_bytes(bytes(raw))
    code, _, err = cli("predict", data, "--model", model, "--home", home)
    assert code == 1 and "matches no model.final on the ledger" in err


def test_cli_features_by_commas_and_a_job_stopped_before_converging(toy, cli):
    home, _ = toy
    args = ["train", "--data", "toy", "--target", "label", "--algorithm", "logistic",
            "--features", "x0, x1", "--features", "x2", "--iterations", "3",
            "--home", home]  # fmt: skip
    code, out, err = cli(*args, "--json")
    assert code == 0, err
    res = json.loads(out)
    # --iterations 3 is three steps; logistic regression's 2 setup rounds come on top
    assert res["converged"] is False and (res["iterations"], res["rounds"]) == (3, 5)
    with Ledger.open(home, readonly=True) as led:
        (start,) = list(led.entries(kind="job.start"))
        (final,) = list(led.entries(kind="model.final"))
    assert start.body["features"] == ["x0", "x1", "x2"] and final.body["converged"] is False
    assert (final.body["iterations"], final.body["rounds"]) == (3, 5)
    code, out, _ = cli(*args[:-2], "--out", toy[1].parent / "m2.model", "--home", home)
    assert code == 0 and "3 iterations after 2 setup rounds (stopped before converging)" in out
    code, out, _ = cli("jobs", "--json", "--home", home)
    assert [(j["iterations"], j["rounds"]) for j in json.loads(out)] == [(3, 5), (3, 5)]


@pytest.mark.parametrize(("algorithm", "max_iter"), [("logistic", 2), ("kmeans", 1)])
def test_a_job_stopped_by_the_algorithm_s_own_cap_is_not_converged(toy, algorithm, max_iter):
    home, _ = toy
    target = "label" if algorithm == "logistic" else None
    with Ledger.open(home) as led:
        res = train(
            led, data="toy", algorithm=algorithm, target=target, engine="inline",
            hyper={"max_iter": max_iter},
        )  # fmt: skip
        (final,) = list(led.entries(kind="model.final"))
    assert res.converged is False and final.body["converged"] is False


def test_tampered_partition_refuses_and_the_job_fails_with_the_row_ids(toy):
    home, data = toy
    t = pq.read_table(data).to_pandas()
    t.loc[t["id"] == 12_345, "x2"] += 1.0
    t.loc[t["id"] == 17, "label"] = 1 - t.loc[t["id"] == 17, "label"]
    pq.write_table(pa.Table.from_pandas(t, preserve_index=False), data)
    with Ledger.open(home) as led, pytest.raises(TrainingFailed) as exc:
        train(led, data="toy", algorithm="logistic", target="label", partitions=4)
    # Every task verifies the one committed partition of these 20,000 rows: all four
    # refuse, and the failure gives their common reason and the rows once.
    assert str(exc.value) == (
        "map tasks for partitions 0, 1, 2 and 3 refused to compute: "
        f"{data} does not match its commitment: changed [17, 12345] (2 rows)"
    )
    with Ledger.open(home, readonly=True) as led:
        refusals = list(led.entries(kind="task.refused"))
        (end,) = list(led.entries(kind="job.end"))
    assert sorted(e.body["partition"] for e in refusals) == [0, 1, 2, 3]
    assert all(e.body["changed"] == [17, 12_345] for e in refusals)
    assert end.body["status"] == "failed" and end.body["changed"] == [17, 12_345]
    assert end.body["missing"] == end.body["added"] == []
    assert not list(Ledger.open(home, readonly=True).entries(kind="model.final"))
    assert verify_home(home).ok


def test_a_csv_id_cell_edited_to_text_refuses_naming_the_row_and_the_missing_id(tmp_path):
    """The map task failed with "column 'id' is read as int here but holds '4x1'", a read
    error naming no row, instead of refusing on the record like any other tamper."""
    parquet, data = tmp_path / "toy.parquet", tmp_path / "toy.csv"
    write_toy(parquet, rows=5000)
    pq.read_table(parquet).to_pandas().to_csv(data, index=False)
    home = tmp_path / "home"
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="toy")
    lines = data.read_text().splitlines()
    lines[4002] = "4x1" + lines[4002][len("4001") :]  # the row of id 4001
    data.write_text("\n".join(lines) + "\n")
    with Ledger.open(home) as led, pytest.raises(TrainingFailed) as exc:
        train(led, data="toy", algorithm="logistic", target="label", partitions=2)
    assert str(exc.value).endswith(
        f"refused to compute: {data} does not match its commitment: missing [4001] (1 row); "
        "ids that are not ints at file rows [4002 ('4x1')] (1 row)"
    )
    with Ledger.open(home, readonly=True) as led:
        (end,) = list(led.entries(kind="job.end"))
    assert end.body["status"] == "failed" and end.body["missing"] == [4001]
    assert end.body["unreadable_ids"] == [{"row": 4002, "text": "4x1"}]
    assert verify_home(home).ok


@pytest.mark.parametrize(
    ("column", "values", "algorithm", "target", "message"),
    [
        ("x1", {5: float("nan"), 17: float("nan")}, "logistic", "label",
         "feature 'x1' is missing or not finite at row ids [5, 17] (2 rows)"),
        ("x1", {1999: None}, "kmeans", None,
         "feature 'x1' is missing or not finite at row ids [1999] (1 row)"),
        ("x2", {3: float("inf")}, "linear", "x4",
         "feature 'x2' is missing or not finite at row ids [3] (1 row)"),
        ("x4", {8: float("nan")}, "linear", "x4",
         "target 'x4' is missing or not finite at row ids [8] (1 row)"),
        ("name", {11: None}, "naive-bayes", "name",
         "target 'name' is missing or not finite at row ids [11] (1 row)"),
    ],
)  # fmt: skip
def test_missing_or_nonfinite_values_refuse_naming_the_row_ids(
    tmp_path, column, values, algorithm, target, message
):
    """Committed as they are, but unusable: the job fails on the record naming the rows
    (before, a null string target trained a class named "None", and a NaN feature failed
    in canonical JSON or LAPACK, far from its cause)."""
    data = tmp_path / "toy.parquet"
    write_toy(data, rows=2000)
    t = pq.read_table(data)
    t = t.append_column("name", pa.array(["yes" if v else "no" for v in t["label"].to_pylist()]))
    col = t[column].to_pylist()
    for i, v in values.items():
        col[i] = v
    t = t.set_column(t.schema.get_field_index(column), column, pa.array(col, t[column].type))
    pq.write_table(t, data)
    home = tmp_path / "home"
    features = ["x0", "x1", "x2", "x3"]
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="toy")
        with pytest.raises(TrainingFailed) as exc:
            train(
                led, data="toy", algorithm=algorithm, target=target, features=features,
                partitions=4, engine="inline",
            )  # fmt: skip
    assert "refused to compute" in str(exc.value) and message in str(exc.value)
    with Ledger.open(home, readonly=True) as led:
        (refusal,) = list(led.entries(kind="task.refused"))
        (end,) = list(led.entries(kind="job.end"))
        assert not list(led.entries(kind="model.final"))
    assert refusal.body["unusable"] == sorted(values)
    assert end.body["status"] == "failed" and end.body["unusable"] == sorted(values)
    assert verify_home(home).ok


@pytest.mark.parametrize("order", ["as launched", "last first"])
def test_a_job_fails_naming_the_refusals_of_every_partition_in_partition_order(
    tmp_path, monkeypatch, order
):
    """The first refusal to arrive used to fail the job: it named one partition's rows,
    and which one varied from run to run. Now the round's other tasks finish first."""
    from bubblechain.training.engines.inline import InlineEngine

    if order == "last first":  # replies arrive in another order: the same failure
        monkeypatch.setattr(InlineEngine, "as_completed", lambda self, hs: iter(list(hs)[::-1]))
    data = tmp_path / "toy.parquet"
    write_toy(data, rows=2000)
    t = pq.read_table(data)
    x1, x4 = t["x1"].to_numpy().copy(), t["x4"].to_numpy().copy()
    x1[600] = np.nan  # partition 1 (of 500 rows each)
    x4[[1700, 1800]] = np.nan  # partition 3, the target
    t = t.set_column(2, "x1", pa.array(x1)).set_column(5, "x4", pa.array(x4))
    pq.write_table(t, data)
    home = tmp_path / "home"
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="toy")
        with pytest.raises(TrainingFailed) as exc:
            train(
                led, data="toy", algorithm="linear", target="x4",
                features=["x0", "x1", "x2", "x3"], partitions=4, engine="inline",
            )  # fmt: skip
    assert str(exc.value) == (
        "map tasks for partitions 1 and 3 refused to compute: "
        f"partition 1: {data}: feature 'x1' is missing or not finite at row ids [600] (1 row); "
        f"partition 3: {data}: target 'x4' is missing or not finite at row ids [1700, 1800] "
        "(2 rows)"
    )
    with Ledger.open(home, readonly=True) as led:
        refusals = list(led.entries(kind="task.refused"))
        results = list(led.entries(kind="task.result"))
        (end,) = list(led.entries(kind="job.end"))
    assert sorted(e.body["partition"] for e in refusals) == [1, 3]
    assert sorted(e.body["partition"] for e in results) == [0, 2]  # the round's others ended
    assert end.body["status"] == "failed" and end.body["reason"] == str(exc.value)
    assert end.body["unusable"] == [600, 1700, 1800]
    assert verify_home(home).ok


def _tamper_params_between_rounds(monkeypatch):
    """Root on the coordinator: change its in-memory parameters after round 1 is recorded."""
    algo = get_algorithm("logistic")
    held = {}
    real_update = type(algo).update

    def update(self, params, reduced):
        upd = real_update(self, params, reduced)
        held["params"] = upd.params
        return upd

    monkeypatch.setattr(type(algo), "update", update)

    def on_iteration(info):
        if info["iteration"] == 1:
            key = next(k for k, v in held["params"].items() if v.dtype.kind == "f" and v.size > 1)
            held["params"][key].flat[0] += 0.5

    return on_iteration


def test_coordinator_with_tampered_parameters_is_rejected(toy, monkeypatch):
    home, _ = toy
    on_iteration = _tamper_params_between_rounds(monkeypatch)
    with Ledger.open(home) as led, pytest.raises(TrainingFailed) as exc:
        train(led, data="toy", algorithm="logistic", target="label", on_iteration=on_iteration)
    assert "not on job" in str(exc.value) and "current parameters" in str(exc.value)
    assert verify_home(home).ok


def test_witnesses_reject_tampered_parameters_a_compromised_sequencer_let_through(toy, monkeypatch):
    home, _ = toy
    on_iteration = _tamper_params_between_rounds(monkeypatch)
    led = Ledger.open(home)
    real_check = led.sequencer.state.check
    led.sequencer.state.check = lambda m, verify_sig=True: (
        None if m.kind in ("task.result", "state.update") else real_check(m, verify_sig=verify_sig)
    )
    with pytest.raises(NotFinal) as exc:
        train(led, data="toy", algorithm="logistic", target="label", on_iteration=on_iteration)
    assert "cannot reach quorum" in str(exc.value)
    assert "computed on state" in str(exc.value) and "current parameters" in str(exc.value)
    with pytest.raises(NotFinal):
        led.close()


class KillOneWorker:
    """Wraps an engine: once round 2's first task is submitted, kill -9 the worker process
    running it (the task must be in flight, or its loss is no failure at all)."""

    def __init__(self, engine, after_submits: int):
        self.engine = engine
        self.after = after_submits
        self.submits = 0
        self.killed = None

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def submit(self, fn, spec, key, affinity=0):
        handle = self.engine.submit(fn, spec, key, affinity=affinity)
        self.submits += 1
        if self.submits == self.after and self.killed is None:
            self.killed = self._worker_running(handle, key, affinity)
            os.kill(self.killed, signal.SIGKILL)
        return handle

    def _worker_running(self, handle, key: str, affinity: int) -> int:
        pids = self.engine.pids()
        if isinstance(pids, list):  # local: the task is queued on its slot's process
            return pids[affinity % len(pids)]
        # Dask: the worker the scheduler gave the task to, as soon as it has (killing the
        # preferred worker before that only sends the task to the other one).
        client, deadline = self.engine.client, time.monotonic() + 10
        while time.monotonic() < deadline and not handle.done():
            for worker, keys in client.processing().items():
                if key in keys:
                    return pids[worker]
        return pids[sorted(pids)[affinity % len(pids)]]


def _train_with_a_kill(home: Path, engine: str, monkeypatch) -> runtime.TrainResult:
    """A job whose worker is killed with a task in flight.

    On Dask a map task lasts about a millisecond: the kill can land just after the
    task finished, and the scheduler then quietly recomputes its lost result (no
    failure, nothing to retry, and the record stays right). Such a miss is tried
    again, up to three jobs.
    """
    made = {}
    real = runtime.make_engine

    def make(name, **kw):
        made["e"] = KillOneWorker(real(name, workers=2), after_submits=9)
        return made["e"]

    monkeypatch.setattr(runtime, "make_engine", make)
    for _ in range(3):
        with Ledger.open(home) as led:
            res = train(led, data="toy", algorithm="logistic", target="label", engine=engine)
        assert made["e"].killed is not None
        if res.retries or engine == "local":
            break
    return res


def _final_params(home: Path, job: str) -> str:
    (final,) = [e for e in job_entries(home, job) if e.kind == "model.final"]
    return final.body["params"]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_worker_killed_mid_job_is_retried_on_the_record_and_nothing_double_counted(
    toy, engine, monkeypatch
):
    home, _ = toy
    with Ledger.open(home) as led:
        clean = train(led, data="toy", algorithm="logistic", target="label", engine=engine)
    res = _train_with_a_kill(home, engine, monkeypatch)
    assert res.retries >= 1
    es = job_entries(home, res.job)
    retries = [e for e in es if e.kind == "task.retry"]
    assert len(retries) == res.retries and all(e.body["iteration"] == 2 for e in retries)
    for e in es:
        if e.kind == "state.update":  # exactly one result per partition was reduced
            assert [r["partition"] for r in e.body["results"]] == [0, 1, 2, 3]
    # the same parameters as the run without a failure, bit for bit
    assert _final_params(home, res.job) == _final_params(home, clean.job)
    assert res.iterations == clean.iterations
    assert verify_home(home).ok


def test_dask_with_a_given_scheduler_address(toy, cli):
    """`--engine dask --scheduler tcp://...`: a cluster started elsewhere."""
    from distributed import LocalCluster

    home, _ = toy
    with LocalCluster(n_workers=2, threads_per_worker=2, dashboard_address=None) as cluster:
        code, out, err = cli(
            "train",
            "--data",
            "toy",
            "--target",
            "label",
            "--algorithm",
            "logistic",
            "--engine",
            "dask",
            "--scheduler",
            cluster.scheduler_address,
            "--home",
            home,
            "--json",
        )
    assert code == 0, err
    res = json.loads(out)
    (start,) = [e for e in job_entries(home, res["job"]) if e.kind == "job.start"]
    assert start.body["engine"]["scheduler"] == cluster.scheduler_address
    assert start.body["engine"]["workers"] == 2
    assert start.body["engine"]["threads"] == 4  # recorded: tasks ran 2 at a time per worker
    assert verify_home(home).ok


def _jobs_on(home: Path) -> list[dict]:
    with Ledger.open(home, readonly=True) as led:
        return [e.body | {"job": e.fields["job"]} for e in led.entries(kind="job.start")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--partitions", "0"], "--partitions must be at least 1, got 0"),
        (["--iterations", "0"], "--iterations must be at least 1, got 0"),
        (["--workers", "-1"], "--workers must be at least 1, got -1"),
        (["--seed", "-1"], "--seed must be from 0 to 2**53 - 1, got -1"),
        (["--seed", str(2**53)], f"--seed must be from 0 to 2**53 - 1, got {2**53}"),
        (["--engine", "bogus"], "unknown engine 'bogus': choose 'local' or 'dask'"),
        (["--algorithm", "svm"], "--algorithm 'svm': choose one of logistic, linear, kmeans"),
        (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler is for the dask engine"),
        (["--features", "name"], "feature column 'name' of dataset 'toy' holds string values"),
        (["--features", "label"], "target column 'label' cannot also be a feature"),
        (["--param", "tol=Infinity"], "--param: not representable as canonical JSON"),
        (["--features", ""], "--features names no column"),
        (["--features", " , "], "--features names no column"),
        (
            ["--features", "x0,x1", "--features", "x0"],
            "--features names column 'x0' more than once",
        ),
        (
            ["--algorithm", "linear", "--target", "name"],
            "target column 'name' of dataset 'toy' holds string values: linear regression needs",
        ),
        (["--out", "{data}/m.model"], "is not a directory"),
        (["--out", "{tmp}"], "is a directory, not a file name"),
    ],
)
def test_bad_training_input_is_one_line_exit_2_and_no_job(tmp_path, cli, args, message):
    data = tmp_path / "toy.parquet"
    write_toy(data, rows=2000)
    t = pq.read_table(data)
    pq.write_table(t.append_column("name", pa.array([f"n{i}" for i in range(2000)])), data)
    home = tmp_path / "home"
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="toy")
    args = [a.format(data=data, tmp=tmp_path) for a in args]
    code, out, err = cli(
        "train", "--data", "toy", "--target", "label", "--algorithm", "logistic", *args,
        "--home", home,
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert _jobs_on(home) == [] and verify_home(home).ok


@pytest.mark.parametrize(
    ("params", "says"),
    [
        (["lr=0.1"], "unknown hyperparameter lr for logistic; valid: C, max_iter, tol"),
        (["a=1", "b=2"], "unknown hyperparameters a, b for logistic; valid: C, max_iter, tol"),
        (["max_iter=abc"], 'hyperparameter max_iter of logistic must be an integer, got "abc"'),
        (["max_iter=2.5"], "hyperparameter max_iter of logistic must be an integer, got 2.5"),
        (["tol=null"], "hyperparameter tol of logistic must be a number, got null"),
        (["C=[1]"], "hyperparameter C of logistic must be a number, got [1]"),
        (["max_iter=true"], "hyperparameter max_iter of logistic must be an integer, got true"),
        (["C=-1"], "C must be positive"),  # the algorithm not named twice
    ],
)
def test_a_bad_hyperparameter_is_said_in_words(toy, cli, params, says):
    """It printed Python lists and type names: "unknown hyperparameter(s) ['lr'] for
    'logistic'; valid: ['C', 'max_iter', 'tol']", "... 'max_iter' of 'logistic' must be
    int", without the value given."""
    home, _ = toy
    flags = [a for p in params for a in ("--param", p)]
    code, out, err = cli(
        "train", "--data", "toy", "--target", "label", "--algorithm", "logistic", *flags,
        "--home", home,
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == f"error: hyperparameters for logistic: {says}\n"
    assert _jobs_on(home) == []


def test_a_dataset_a_job_could_only_fail_on_is_refused_before_it_starts(toy, cli, tmp_path):
    home, data = toy
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(data).slice(0, 0), empty)
    with Ledger.open(home) as led:
        commit_dataset(led, empty, "id", name="empty")
    data.rename(tmp_path / "moved.parquet")
    for name, message in [
        ("toy", f"dataset 'toy' was committed from {data}, which is no longer there"),
        ("empty", "dataset 'empty' has no rows to train on"),
    ]:
        code, out, err = cli(
            "train", "--data", name, "--target", "label", "--algorithm", "logistic",
            "--home", home,
        )  # fmt: skip
        assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
    assert _jobs_on(home) == []


def test_kmeans_takes_no_target(toy, cli):
    home, _ = toy
    code, _, err = cli(
        "train", "--data", "toy", "--target", "label", "--algorithm", "kmeans", "--home", home
    )
    assert code == 2 and "kmeans is unsupervised: it takes no --target" in err


def test_a_failure_after_job_start_ends_the_job_on_the_record(toy, cli):
    """An error the algorithm raises mid-job, a task that raises, a continuous target:
    each is one line, exit 1, and the job is recorded as failed (never left running)."""
    home, data = toy
    code, _, err = cli(
        "train", "--data", "toy", "--algorithm", "kmeans", "--param", f"k={ROWS + 1}",
        "--home", home,
    )  # fmt: skip
    assert code == 1 and len(err.strip().splitlines()) == 1
    (job,) = [j["job"] for j in _jobs_on(home)]
    reason = f"kmeans: k={ROWS + 1} clusters but only {ROWS} rows"
    assert f"training failed (job {job}): {reason}" in err
    # --json says which job failed, and why, on stdout (it printed nothing)
    code, out, _ = cli("train", "--data", "toy", "--algorithm", "kmeans", "--param",
                       f"k={ROWS + 1}", "--home", home, "--json")  # fmt: skip
    res = json.loads(out)
    assert code == 1 and (res["status"], res["reason"]) == ("failed", reason)
    assert res["job"] in [j["job"] for j in _jobs_on(home)] and res["job"] != job
    # A map task that raises is not retried: it would raise again.
    t = pq.read_table(data)
    pq.write_table(t.set_column(6, "label", pa.array(np.linspace(0, 1, ROWS))), data)
    with Ledger.open(home) as led:
        commit_dataset(led, data, "id", name="cont")
    code, _, err = cli(
        "train", "--data", "cont", "--target", "label", "--algorithm", "logistic", "--home", home
    )
    assert code == 1 and "y (the target) holds non-integer values such as" in err
    assert "use linear regression" in err
    data.unlink()
    code, _, err = cli(
        "train", "--data", "toy", "--target", "label", "--algorithm", "logistic", "--home", home
    )
    assert code == 2 and "which is no longer there" in err  # refused before any job starts
    code, out, _ = cli("jobs", "--home", home, "--json")
    jobs = json.loads(out)
    assert [j["status"] for j in jobs] == ["failed"] * 3
    assert "clusters but only" in jobs[1]["reason"] and "non-integer" in jobs[2]["reason"]
    code, out, _ = cli("jobs", "--home", home)  # piped: a table with whole job ids
    assert code == 0 and all(j["job"] in out for j in jobs)
    assert "clusters but only" in out  # and, for a failed job, why it failed
    with Ledger.open(home, readonly=True) as led:
        assert not list(led.entries(kind="task.retry"))
    assert verify_home(home).ok


def test_unreachable_scheduler_is_one_line(toy, cli, monkeypatch):
    from bubblechain.training.engines import dask as dask_engine

    monkeypatch.setattr(dask_engine, "CONNECT_SECONDS", 1)
    home, _ = toy
    code, _, err = cli(
        "train", "--data", "toy", "--target", "label", "--algorithm", "logistic",
        "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9", "--home", home,
    )  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot reach Dask scheduler tcp://127.0.0.1:9" in err
    assert _jobs_on(home) == []


def test_outputs_never_overwrite_what_the_ledger_vouches_for(toy, cli, tmp_path, monkeypatch):
    """--out onto a committed source, a recorded model or the input is refused up front
    (it used to overwrite them: the dataset could no longer be verified)."""
    home, data = toy
    committed = data.read_bytes()
    train_args = ["train", "--data", "toy", "--target", "label", "--algorithm", "logistic",
                  "--iterations", "3", "--home", home]  # fmt: skip
    code, out, err = cli(*train_args, "--out", data)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"--out {data} is the source of committed dataset 'toy'" in err
    assert data.read_bytes() == committed and _jobs_on(home) == []
    model = tmp_path / "m.model"
    assert cli(*train_args, "--out", model)[0] == 0
    (job,) = [j["job"] for j in _jobs_on(home)]
    recorded = model.read_bytes()
    code, _, err = cli(*train_args, "--out", model)
    assert code == 2 and f"--out {model} holds the model of job {job}" in err
    assert model.read_bytes() == recorded and len(_jobs_on(home)) == 1
    copy = tmp_path / "copy.parquet"
    shutil.copy(data, copy)
    for out_file, message in [
        (copy, f"--out {copy} is also the input"),
        (data, f"--out {data} is the source of committed dataset 'toy'"),
    ]:
        code, out, err = cli("predict", copy, "--model", model, "--out", out_file, "--home", home)
        assert code == 2 and out == "" and message in err
    assert copy.read_bytes() == data.read_bytes() == committed
    # A directory that does not exist yet is made, as for train's --out.
    fresh = tmp_path / "new" / "dir" / "p.csv"
    assert cli("predict", copy, "--model", model, "--out", fresh, "--home", home)[0] == 0
    assert fresh.read_text().count("\n") == ROWS + 1
    # The recorded model by another name (a relative path, a copy), the ledger's own files,
    # a file inside a committed directory dataset, a dangling symlink's directory.
    moved = tmp_path / "elsewhere" / "copied.model"
    moved.parent.mkdir()
    shutil.copy(model, moved)
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(pq.read_table(data), parts / "part-0.parquet")
    with Ledger.open(home) as led:
        commit_dataset(led, parts, "id", name="parts")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    monkeypatch.chdir(tmp_path)
    for out_file, message in [
        ("m.model", f"--out {model} holds the model of job {job}"),
        (moved, f"--out {moved} holds the model of job {job}"),
        (home / "ledger.db", f"--out {home / 'ledger.db'} is inside the ledger home"),
        (home / "keys" / "x.model", "is inside the ledger home"),
        (parts / "m.model", "is in the source of committed dataset 'parts'"),
        ("dangling/m.model", f"m.model: {tmp_path / 'dangling'} is not a directory"),
    ]:
        code, out, err = cli(*train_args, "--out", out_file)
        assert code == 2 and out == "" and message in err, err
    assert len(_jobs_on(home)) == 1 and verify_home(home).ok
    code, _, err = cli(
        "predict", copy, "--model", model, "--out", parts / "p.parquet", "--home", home
    )
    assert code == 2 and "is in the source of committed dataset 'parts'" in err
    assert sorted(p.name for p in parts.iterdir()) == ["part-0.parquet"]


def test_predict_on_no_rows_writes_a_file_of_no_rows(toy, cli, tmp_path):
    """It used to write nothing, leaving an earlier run's predictions in place."""
    home, data = toy
    model = tmp_path / "m.model"
    assert cli("train", "--data", "toy", "--target", "label", "--algorithm", "naive-bayes",
               "--out", model, "--home", home)[0] == 0  # fmt: skip
    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(data).slice(0, 0), empty)
    for name in ("p.csv", "p.parquet"):
        out_file = tmp_path / name
        assert cli("predict", data, "--model", model, "--out", out_file, "--home", home)[0] == 0
        code, out, err = cli("predict", empty, "--model", model, "--out", out_file, "--home", home)
        assert code == 0, err
        assert "0 predictions" in out
        t = pa.csv.read_csv(out_file) if name.endswith(".csv") else pq.read_table(out_file)
        assert t.num_rows == 0 and t.column_names[:2] == ["id", "prediction"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_output_where_no_file_can_be_created_is_refused_before_any_work(toy, cli):
    """Permission bits do not tell (root may write anywhere, but not in /proc)."""
    home, data = toy
    code, out, err = cli(
        "train", "--data", "toy", "--target", "label", "--algorithm", "logistic",
        "--out", "/proc/m.model", "--home", home,
    )  # fmt: skip
    assert code == 2 and out == "" and "--out /proc/m.model: cannot create files in /proc" in err
    assert _jobs_on(home) == []
    code, out, err = cli("predict", data, "--model", data, "--out", "/proc/p.csv", "--home", home)
    assert code == 2 and out == "" and "--out /proc/p.csv: cannot create files in /proc" in err


def test_predict_checks_the_hash_before_parsing_and_refuses_bad_input(toy, cli, tmp_path):
    home, data = toy
    with Ledger.open(home) as led:
        res = train(led, data="toy", algorithm="logistic", target="label", partitions=2)
    model = Path(res.model_path)
    code, out, err = cli(
        "predict", data, "--model", model, "--out", tmp_path / "p.parquet", "--json",
        "--home", home,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["predictions"] == ROWS and summary["job"] == res.job
    assert summary["model_hash"] == res.model_hash
    assert pq.read_table(tmp_path / "p.parquet").num_rows == ROWS
    # Every single-bit flip in the file's first kilobyte (its structure and metadata)
    # is reported as a changed model, never as a parse error of the changed bytes.
    good = model.read_bytes()
    bad = tmp_path / "bad.model"
    for i in range(0, min(len(good), 1024), 7):
        raw = bytearray(good)
        raw[i] ^= 0x80 if i % 2 else 0x01
        bad.write_bytes(bytes(raw))
        code, out, err = cli("predict", data, "--model", bad, "--home", home)
        assert code == 1 and out == "" and "matches no model.final on the ledger" in err, i
    # Bad data or a bad --out: one line, exit 2, nothing written.
    t = pq.read_table(data)
    strings = tmp_path / "strings.parquet"
    pq.write_table(t.set_column(1, "x0", pa.array([str(v) for v in range(ROWS)])), strings)
    nulls = tmp_path / "nulls.parquet"
    x1 = t.column("x1").to_numpy().copy()
    x1[[12, 345]] = np.nan
    pq.write_table(t.set_column(2, "x1", pa.array(x1)), nulls)
    for path, out_file, message in [
        (strings, "s.csv", "feature column 'x0' holds string values, not numbers"),
        (nulls, "n.csv", "feature 'x1' is missing or not finite at row id 12 (2 such rows among"),
        (data, "p.model", "use a .csv or .parquet file name"),
    ]:
        code, out, err = cli(
            "predict", path, "--model", model, "--out", tmp_path / out_file, "--home", home
        )
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / out_file).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_predict_to_stdout_writes_nothing_when_a_late_row_is_bad(toy, cli, tmp_path):
    """JSON lines to stdout are all or nothing, like a file: a bad value in the second
    batch of rows used to stop the output after the first 65,536 lines."""
    home, data = toy
    with Ledger.open(home) as led:
        res = train(led, data="toy", algorithm="logistic", target="label", partitions=2)
    t = pq.read_table(data)
    copies = -(-(DEFAULT_BATCH_ROWS + 10) // ROWS)
    big = pa.concat_tables([t] * copies)
    big = big.set_column(0, "id", pa.array(np.arange(big.num_rows)))
    x1 = big.column("x1").to_numpy().copy()
    x1[-1] = np.inf
    path = tmp_path / "late.parquet"
    pq.write_table(big.set_column(2, "x1", pa.array(x1)), path)
    code, out, err = cli("predict", path, "--model", res.model_path, "--home", home)
    assert code == 2 and out == ""
    assert f"feature 'x1' is missing or not finite at row id {big.num_rows - 1}" in err
    x1[-1] = 0.5
    pq.write_table(big.set_column(2, "x1", pa.array(x1)), path)
    code, out, err = cli("predict", path, "--model", res.model_path, "--home", home)
    lines = out.splitlines()
    assert code == 0 and len(lines) == big.num_rows
    assert json.loads(lines[-1])["id"] == big.num_rows - 1


def test_predict_refuses_a_null_id_naming_its_row_position(toy, cli, tmp_path):
    """Its prediction used to be written as "id": null, matched to no row."""
    home, data = toy
    with Ledger.open(home) as led:
        res = train(led, data="toy", algorithm="naive-bayes", target="label", engine="inline")
    t = pq.read_table(data)
    big = pa.concat_tables([t] * -(-(DEFAULT_BATCH_ROWS + 10) // ROWS))  # two batches
    late = DEFAULT_BATCH_ROWS + 3  # in the second batch: counted from the file's start
    path = tmp_path / "null_id.parquet"
    for table, nulls, count in [
        (t, [7], "1 such row among the 20,000 of this batch"),
        (big, [late, late + 2], "2 such rows among the"),
    ]:
        ids = pa.array(np.arange(table.num_rows), mask=np.isin(np.arange(table.num_rows), nulls))
        pq.write_table(table.set_column(0, "id", ids), path)
        for out_file in (None, tmp_path / "p.csv"):
            where = ["--out", out_file] if out_file else []
            code, out, err = cli("predict", path, "--model", res.model_path, *where,
                                 "--home", home)  # fmt: skip
            assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
            assert err.startswith(
                f"error: {path}: id column 'id' is null at row position {nulls[0]} "
                f"(counting from 0; {count}"
            ), err
            assert err.rstrip().endswith(f"positions {nulls})")
            assert out_file is None or not out_file.exists()


def test_predict_reads_the_id_column_once_when_it_is_also_a_feature(
    toy, cli, tmp_path, monkeypatch
):
    """Train accepts the id column as a feature; predict used to read it twice and end
    with a traceback, KeyError: 'Field "id" exists 2 times in schema'. A model that
    names a feature twice (train accepted that before refusing it) predicts too."""
    home, data = toy
    t = pq.read_table(data)
    X = np.column_stack([t.column(c).to_numpy().astype(float) for c in ("id", "x0")])
    truth = pq.read_table(data).column("label").to_numpy()
    with Ledger.open(home) as led:
        res = train(led, data="toy", algorithm="naive-bayes", target="label",
                    features=["id", "x0"], engine="inline")  # fmt: skip
    monkeypatch.setattr(runtime, "choose_columns", lambda *a: (["x0", "x0"], "label"))
    with Ledger.open(home) as led:
        twice = train(led, data="toy", algorithm="naive-bayes", target="label",
                      engine="inline")  # fmt: skip
    algo = get_algorithm("naive-bayes")
    csv = tmp_path / "toy.csv"  # a CSV read gives a column asked for twice twice
    pa.csv.write_csv(t, csv)
    for model, cols, path in [
        (res.model_path, X, csv),
        (res.model_path, X, data),
        (twice.model_path, X[:, [1, 1]], csv),
    ]:
        code, out, err = cli("predict", path, "--model", model, "--home", home)
        assert code == 0, err
        rows = [json.loads(line) for line in out.splitlines()]
        assert [r["id"] for r in rows] == list(range(ROWS))
        params, _, _ = read_model(Path(model))
        expected = algo.predict(params, cols)
        assert [r["prediction"] for r in rows] == expected.tolist()
        assert np.mean(expected == truth) > 0.5


def test_predict_into_a_pipe_closed_early_ends_quietly_with_141(toy):
    """`bubblechain predict ... | head -1` used to print 'error: Broken pipe' and exit 2."""
    import subprocess
    import sys

    home, data = toy
    with Ledger.open(home) as led:
        res = train(led, data="toy", algorithm="naive-bayes", target="label", engine="inline")
    env = {k: v for k, v in os.environ.items() if k != "BUBBLECHAIN_HOME"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bubblechain", "predict", str(data), "--model", res.model_path,
         "--home", str(home)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    first = proc.stdout.readline()  # ~1.5 MB of lines: far more than a pipe holds
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE
    assert json.loads(first)["id"] == 0
    assert err == b""  # no 'error: Broken pipe', no 'Exception ignored ... BrokenPipeError'


def test_features_by_commas_still_reach_a_column_named_with_one():
    cols = [{"name": n, "type": "float"} for n in ("id", "a,b", "c", "d")]
    commitment = {"name": "t", "schema": {"id_column": "id", "columns": cols}}
    assert runtime.choose_columns(commitment, None, ["a,b", " c , d"]) == (["a,b", "c", "d"], None)


def test_more_partitions_than_rows_says_how_many_ran(tmp_path, cli):
    """--partitions beyond the row count runs one row per partition, and says so."""
    data = tmp_path / "tiny.parquet"
    write_toy(data, rows=6)
    home = tmp_path / "home"
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="tiny")
    args = ["train", "--data", "tiny", "--target", "label", "--algorithm", "naive-bayes",
            "--engine", "inline", "--home", home]  # fmt: skip
    code, out, err = cli(*args, "--partitions", "50", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["partitions"] == 6
    (start,) = job_entries(home, res["job"])[:1]
    assert start.body["partitions"] == 6 and len(start.body["plan"]) == 6
    code, out, err = cli(*args, "--partitions", "50", "--out", tmp_path / "m.model")
    assert code == 0, err
    assert "on 6 partitions (fewer than --partitions 50: one row each)" in out
    code, out, err = cli(*args, "--partitions", "2", "--out", tmp_path / "m2.model")
    assert code == 0 and "on 2 partitions," in out and "fewer than" not in out
    code, out, err = cli(*args, "--partitions", "1", "--out", tmp_path / "m3.model")
    assert code == 0 and "on 1 partition," in out
    assert [(a, b) for a, b in start.body["plan"]] == [(i, i + 1) for i in range(6)]  # a row each


def test_the_recorded_r2_is_right_for_a_target_far_from_zero(tmp_path):
    """R² on the record matches scikit-learn's when the target's mean dwarfs its spread
    (from sums of y and y², cancellation used to give 0.995 where the truth is 0.50)."""
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(3)
    a = rng.normal(size=20_000)
    y = 1e9 + a + rng.normal(size=20_000)
    data = tmp_path / "off.parquet"
    pq.write_table(pa.table({"id": np.arange(20_000), "a": a, "y": y}), data)
    with Ledger.init(tmp_path / "home") as led:
        commit_dataset(led, data, "id", name="off")
        res = train(led, data="off", algorithm="linear", target="y", partitions=4, engine="inline")
    coef = np.polyfit(a, y, 1)
    truth = r2_score(y, np.polyval(coef, a))
    assert abs(truth - 0.5) < 0.02
    assert res.metric == "r2"
    assert res.value == pytest.approx(truth, abs=1e-9)
    (final,) = [e for e in job_entries(tmp_path / "home", res.job) if e.kind == "model.final"]
    assert final.body["value"] == res.value


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` now (Linux /proc)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.update(kids)
        todo.extend(kids)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_long_job(home: Path, data_dir: Path):
    """`bubblechain train` in its own process, once its workers run a job that would go on
    for a while: (process, its descendants)."""
    import subprocess
    import sys

    args = ["train", "--data", "toy", "--algorithm", "kmeans", "--param", "k=20", "--param",
            "tol=0", "--iterations", "100000", "--home", str(home), "--json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "BUBBLECHAIN_HOME"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bubblechain", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=data_dir,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = _descendants(proc.pid)
        with Ledger.open(home, readonly=True) as led:
            started = any(True for _ in led.entries(kind="task.result"))
        if started and len(kids) >= 3:  # the forkserver and two workers at least
            return proc, kids
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the job never started")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="walks /proc (Linux)")
def test_workers_end_with_a_killed_coordinator_and_the_job_shows_abandoned(toy, cli):
    """kill -9 of `train`: its workers and forkserver end within seconds (they used to live
    on, holding the job's memory and the caller's pipes); `jobs` says the job was
    abandoned, the ledger verifies and the next job runs."""
    home, data = toy
    proc, kids = _start_long_job(home, data.parent)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)]
    code, out, err = cli("jobs", "--home", home, "--json")
    assert code == 0, err
    (j,) = json.loads(out)
    assert j["status"] == "abandoned"
    assert j["reason"].startswith("no job.end: its coordinator stopped")
    code, out, err = cli("job", j["job"], "--home", home)
    assert code == 0 and f"job {j['job']} abandoned: no job.end" in " ".join(out.split())
    assert verify_home(home).ok
    with Ledger.open(home) as led:
        # While a process appends, an open job may be running: it is not called abandoned.
        code, out, err = cli("jobs", "--home", home, "--json")
        assert json.loads(out)[0]["status"] == "running"
        res = train(led, data="toy", algorithm="logistic", target="label", engine="inline")
    assert [j["status"] for j in json.loads(cli("jobs", "--home", home, "--json")[1])] == [
        "abandoned",
        "succeeded",
    ]
    assert res.metric == "accuracy"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="walks /proc (Linux)")
def test_sigterm_ends_the_job_on_the_record_and_its_workers(toy, cli):
    """SIGTERM (a scheduler stopping the job) ends it as Ctrl-C does: job.end failed
    "terminated", exit 143, no worker left."""
    home, data = toy
    proc, kids = _start_long_job(home, data.parent)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines() == ["error: terminated"]
    deadline = time.monotonic() + 15
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)]
    (j,) = json.loads(cli("jobs", "--home", home, "--json")[1])
    assert (j["status"], j["reason"]) == ("failed", "terminated")
    assert verify_home(home).ok


def test_two_predictions_into_the_same_out_file_each_write_whole(tmp_path):
    """Two runs writing one --out shared a fixed temporary name: one reported success
    over a file mixing both, the other failed."""
    from bubblechain.training.predict import write_predictions

    out = tmp_path / "p.csv"
    a = [pa.table({"id": np.arange(i, i + 5), "p": np.ones(5)}) for i in range(0, 20, 5)]
    b = [pa.table({"id": np.arange(100, 103), "p": np.zeros(3)})]

    def batches_of_a():
        for i, t in enumerate(a):
            if i == 2:  # the other run starts and ends while this one is half-way
                assert write_predictions(iter(b), out) == 3
            yield t

    assert write_predictions(batches_of_a(), out) == 20
    assert pa.csv.read_csv(out).column("id").to_pylist() == list(range(20))
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


def test_kmeans_n_init_auto_on_the_command_line_as_in_the_estimator(toy, cli):
    """``KMeans(n_init="auto")`` was accepted, ``--param n_init=auto`` refused ("must be
    an integer"); another word is refused naming the one it takes."""
    home, _ = toy
    args = ["train", "--data", "toy", "--algorithm", "kmeans", "--param", "k=3",
            "--home", home]  # fmt: skip
    code, out, err = cli(*args, "--param", "n_init=auto", "--json")
    assert code == 0, err
    (start,) = _jobs_on(home)
    assert start["hyper"]["n_init"] == "auto"  # as given; the algorithm runs it once
    code, out, err = cli(*args, "--param", "n_init=many")
    assert (code, out) == (2, "")
    assert err == (
        "error: hyperparameters for kmeans: hyperparameter n_init of kmeans must be an "
        'integer or "auto", got "many"\n'
    )


def test_missing_columns_are_named_in_words(toy, cli, tmp_path):
    """They were Python lists: "feature columns ['nosuch'] are not in dataset 'toy'",
    "... lacks the model's columns ['x2']"."""
    home, data = toy
    base = ["train", "--data", "toy", "--target", "label", "--algorithm", "logistic",
            "--home", home]  # fmt: skip
    code, _, err = cli(*base, "--features", "x0,nosuch,other")
    assert (code, err) == (2, "error: feature columns nosuch, other are not in dataset 'toy'\n")
    code, _, err = cli(*base, "--features", "x0,nosuch")
    assert (code, err) == (2, "error: feature column nosuch is not in dataset 'toy'\n")
    code, out, err = cli(*base, "--features", "x0,x2,x3", "--json")
    assert code == 0, err
    model = json.loads(out)["model"]
    lacking = tmp_path / "lacking.parquet"
    pq.write_table(pq.read_table(data).drop_columns(["x2", "x3"]), lacking)
    code, _, err = cli("predict", lacking, "--model", model, "--home", home)
    assert (code, err) == (2, f"error: {lacking} lacks the model's columns x2, x3\n")
