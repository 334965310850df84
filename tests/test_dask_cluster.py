"""Training on a Dask cluster started elsewhere, as a cluster user runs it: a shared
scheduler, workers with several threads, a scheduler that goes away, one with no workers.

Each test starts a real `LocalCluster` of worker processes and hands its address to
`train` (or to the CLI) as `--scheduler`, as for an external cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from distributed import Client, LocalCluster
from test_training import write_toy

from bubblechain.artifacts import ArtifactStore
from bubblechain.data.ledger import commit_dataset
from bubblechain.errors import UsageError
from bubblechain.ledger import Ledger
from bubblechain.ledger.verify import verify_home
from bubblechain.training import runtime, tasks
from bubblechain.training.engines import dask as dask_engine
from bubblechain.training.engines.dask import DaskEngine, plugin_name
from bubblechain.training.runtime import TrainingFailed, train

ROWS = 4000


def _home(tmp_path: Path, name: str) -> Path:
    data = tmp_path / f"{name}.parquet"
    if not data.exists():
        write_toy(data, rows=ROWS)
    home = tmp_path / name
    with Ledger.init(home) as led:
        commit_dataset(led, data, "id", name="toy")
    return home


def _cluster(**kw) -> LocalCluster:
    kw = {"n_workers": 2, "threads_per_worker": 1, **kw}
    return LocalCluster(processes=True, dashboard_address=None, **kw)


def _roots(client) -> list[list[str]]:
    """The artifact stores each worker process holds an identity for."""
    return sorted(client.run(lambda: sorted(tasks._WORKERS)).values())


def _partials_stored(home: Path, job: str) -> bool:
    with Ledger.open(home, readonly=True) as led:
        store = ArtifactStore(led.artifacts.location)
        results = [e for e in led.entries(kind="task.result") if e.fields["job"] == job]
        return bool(results) and all(store.has(e.fields["state"]) for e in results)


def test_jobs_of_two_homes_run_side_by_side_on_one_cluster(tmp_path):
    """Another home's job registering its identities on the same workers mid-job took
    this job's over: its tasks then read parameters from, and stored their results in,
    the other home's artifact store (the job failed: 'artifact ... is missing')."""
    home = _home(tmp_path, "home")
    other_store = str(tmp_path / "other-artifacts")
    with _cluster() as cluster:
        other = DaskEngine(scheduler=cluster.scheduler_address)

        def other_job_starts(info: dict) -> None:
            if other.client is None:
                other.start(other_store)

        try:
            with Ledger.open(home) as led:
                res = train(
                    led, data="toy", algorithm="logistic", target="label", iterations=4,
                    engine="dask", scheduler=cluster.scheduler_address,
                    on_iteration=other_job_starts,
                )  # fmt: skip
            assert other.client is not None
            # The job that ended took its identities (and cached partitions) with it;
            # the other one's are still there, and a worker joining later gets only those.
            assert _roots(other.client) == [[other_store], [other_store]]
            plugins = other.client.run_on_scheduler(
                lambda dask_scheduler: sorted(dask_scheduler.worker_plugins)
            )
            assert [p for p in plugins if p.startswith("bubblechain")] == [plugin_name(other_store)]
        finally:
            other.close()
    assert res.retries == 0 and _partials_stored(home, res.job)
    assert verify_home(home).ok


class ExternalCluster:
    """`dask scheduler` and `dask worker` as a cluster user starts them: processes of
    their own (their own session, so that a test can kill them with -9)."""

    def __init__(self, tmp_path: Path, nworkers: int = 2, nthreads: int = 1):
        self.tmp_path, self.nworkers, self.nthreads = tmp_path, nworkers, nthreads
        self.scheduler: subprocess.Popen | None = None
        self.workers: subprocess.Popen | None = None

    def _spawn(self, module: str, *args: str, log: str, env=None) -> subprocess.Popen:
        with open(self.tmp_path / log, "wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", f"distributed.cli.{module}", *args],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.tmp_path, env={**os.environ, **(env or {})},
            )  # fmt: skip

    def __enter__(self) -> ExternalCluster:
        info = self.tmp_path / "scheduler.json"
        self.scheduler = self._spawn(
            "dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(info), log="scheduler.log",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline, (self.tmp_path / "scheduler.log").read_text()
            time.sleep(0.1)
        self.address = json.loads(info.read_text())["address"]
        return self

    def start_workers(self, *args: str, env: dict | None = None) -> None:
        self.workers = self._spawn(
            "dask_worker", self.address, "--nworkers", str(self.nworkers),
            "--nthreads", str(self.nthreads), "--no-dashboard", *args, log="workers.log",
            env=env,
        )  # fmt: skip
        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(self.nworkers, timeout=60)

    @staticmethod
    def kill(proc: subprocess.Popen | None) -> None:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the nanny and its worker processes
            proc.wait(timeout=30)

    def __exit__(self, *exc) -> None:
        self.kill(self.workers)
        self.kill(self.scheduler)


# The CLI, with the scheduler killed -9 as round 3's tasks are submitted.
KILL_THE_SCHEDULER_IN_ROUND_3 = """
import os, signal, sys
from bubblechain.cli.main import main
from bubblechain.training import runtime

real = runtime.Coordinator.map_round

def map_round(self, iteration, *args, **kw):
    if iteration == 3:
        os.killpg(int(os.environ["SCHEDULER_PID"]), signal.SIGKILL)
    return real(self, iteration, *args, **kw)

runtime.Coordinator.map_round = map_round
sys.argv[0] = "bubblechain"
main()
"""


def test_a_scheduler_killed_mid_job_ends_it_on_the_record_in_one_line(tmp_path):
    """Dask cancels every task when it loses the scheduler: each was recorded as a lost
    attempt (task.retry), the next submit failed with "KeyError: 'workers'", and Dask's
    client logged a traceback on stderr as well."""
    home = _home(tmp_path, "home")
    with ExternalCluster(tmp_path) as cluster:
        cluster.start_workers()
        proc = subprocess.run(
            [sys.executable, "-c", KILL_THE_SCHEDULER_IN_ROUND_3, "train", "--data", "toy",
             "--algorithm", "logistic", "--target", "label", "--engine", "dask",
             "--scheduler", cluster.address, "--home", str(home)],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "SCHEDULER_PID": str(cluster.scheduler.pid)},
        )  # fmt: skip
        out, err = proc.stdout, proc.stderr
    (job,) = [e.fields["job"] for e in _entries(home, "job.start")]
    reason = (
        f"SchedulerLost: lost the Dask scheduler {cluster.address} (it stopped, or the "
        "network to it failed)"
    )
    assert proc.returncode == 1 and out == ""
    assert err.splitlines() == [f"error: training failed (job {job}): {reason}"]
    assert _entries(home, "task.retry") == []  # no worker was lost
    (end,) = _entries(home, "job.end")
    assert (end.body["status"], end.body["reason"]) == ("failed", reason)
    assert verify_home(home).ok


def _entries(home: Path, kind: str) -> list:
    with Ledger.open(home, readonly=True) as led:
        return list(led.entries(kind=kind))


def test_a_cluster_without_workers_is_refused_and_one_that_loses_them_ends_the_job(
    tmp_path, monkeypatch
):
    """Tasks wait for a worker forever: a scheduler with none hung `train` before the
    job started, and one whose workers all died hung it mid-job, silently."""
    monkeypatch.setattr(dask_engine, "NO_WORKERS_SECONDS", 3)
    home = _home(tmp_path, "home")
    args = {"data": "toy", "algorithm": "logistic", "target": "label"}
    with ExternalCluster(tmp_path) as cluster:
        with Ledger.open(home) as led, pytest.raises(UsageError) as e:
            train(led, **args, engine="dask", scheduler=cluster.address)
        assert str(e.value) == (
            f"Dask scheduler {cluster.address} has no workers (waited 3 s for one): "
            f"start some with `dask worker {cluster.address}`"
        )
        assert _entries(home, "job.start") == []
        cluster.start_workers()

        def kill_the_workers(info: dict) -> None:
            if info["iteration"] == 3:
                cluster.kill(cluster.workers)

        with Ledger.open(home) as led, pytest.raises(TrainingFailed) as e:
            train(led, **args, engine="dask", scheduler=cluster.address,
                  on_iteration=kill_the_workers)  # fmt: skip
        reason = f"SchedulerLost: Dask scheduler {cluster.address} has had no workers for 3 s"
        assert str(e.value) == reason
    (end,) = _entries(home, "job.end")
    assert (end.body["status"], end.body["reason"]) == ("failed", reason)
    assert verify_home(home).ok


def test_an_empty_scheduler_address_is_refused(tmp_path, cli):
    """`--scheduler ""` (an unset variable in a script) trained on a local cluster."""
    home = _home(tmp_path, "home")
    code, out, err = cli(
        "train", "--data", "toy", "--target", "label", "--algorithm", "logistic",
        "--engine", "dask", "--scheduler", "", "--home", home,
    )  # fmt: skip
    assert code == 2 and out == ""
    assert err.strip() == "error: --scheduler is empty: give the address as tcp://HOST:PORT"
    assert _entries(home, "job.start") == []


def test_the_local_cluster_says_nothing_when_port_8787_is_taken(tmp_path):
    """Dask's scheduler serves HTTP on 8787 even without a dashboard, and warned on
    stderr ("Port 8787 is already in use") when another cluster had it."""
    with socket.socket() as taken:
        with contextlib.suppress(OSError):  # already taken: the same case
            taken.bind(("", 8787))
            taken.listen()
        engine = DaskEngine(workers=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                engine.start(str(tmp_path))
            finally:
                engine.close()


# Loaded by each worker process (dask worker --preload): in round 2 partition 0's task
# signs its result, then waits for partition 2's (sent to the same worker, signed after
# it on another thread) to reach the coordinator, then its worker process is killed -9.
# Once only: the nanny's new worker process runs tasks as they are.
SIGN_THEN_DIE = """
import os, signal, time
from pathlib import Path
from bubblechain.training import runtime, tasks

MARKS = Path(os.environ["MARKS"])
real_partition, real_reply = getattr(tasks, "real", (tasks._partition, tasks._reply))
tasks.real = real_partition, real_reply  # Dask may load this file twice

def _partition(w, spec):
    if (spec["iteration"], spec["partition"]) == (2, 2) and not (MARKS / "killed").exists():
        while not (MARKS / "signed").exists():  # partition 0 signs first
            time.sleep(0.01)
    return real_partition(w, spec)

def _reply(signer, msg, **extra):
    b = msg.body
    if (b["iteration"], b["partition"]) == (2, 0) and not (MARKS / "killed").exists():
        (MARKS / "signed").touch()
        time.sleep(3)  # partition 2's result, signed after this one, is taken meanwhile
        (MARKS / "killed").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_reply(signer, msg, **extra)

tasks._partition, tasks._reply = _partition, _reply
"""


def test_a_worker_killed_with_a_later_result_of_it_taken_retries_that_result(tmp_path):
    """A worker running tasks on two threads signed results 1 and 2 (partitions 0 and 2);
    2 reached the coordinator, 1 died with the worker. Result 2 waited for ever for its worker's
    message 1, and state.update named it anyway: 'the ledger rejected the
    coordinator's state.update: input ... is neither a message nor an artifact'."""
    home = _home(tmp_path, "home")
    marks = tmp_path / "marks"
    marks.mkdir()
    preload = tmp_path / "sign_then_die.py"
    preload.write_text(SIGN_THEN_DIE)
    with ExternalCluster(tmp_path, nworkers=2, nthreads=2) as cluster:
        cluster.start_workers("--preload", str(preload), env={"MARKS": str(marks)})
        with Ledger.open(home) as led:
            res = train(led, data="toy", algorithm="logistic", target="label", partitions=4,
                        engine="dask", scheduler=cluster.address)  # fmt: skip
    assert (marks / "killed").exists()
    (retry,) = _entries(home, "task.retry")
    assert (retry.body["iteration"], retry.body["partition"], retry.body["attempt"]) == (2, 2, 0)
    assert "whose message" in retry.body["reason"] and "never came" in retry.body["reason"]
    assert res.retries == 1
    for e in _entries(home, "state.update"):  # one recorded result per partition
        assert [r["partition"] for r in e.body["results"]] == [0, 1, 2, 3]
    assert verify_home(home).ok


def test_a_lone_worker_killed_mid_task_is_retried_once_its_nanny_restarts_it(tmp_path, monkeypatch):
    """A task sent to the only worker, which dies: Dask keeps it for a worker that
    never comes (not even the worker its nanny restarts), and the job hung for ever."""
    from test_training import KillOneWorker

    home = _home(tmp_path, "home")
    made = {}
    real = runtime.make_engine

    def make(name, **kw):
        made["e"] = KillOneWorker(real(name, **kw), after_submits=9)  # round 2's first task
        return made["e"]

    monkeypatch.setattr(runtime, "make_engine", make)
    with ExternalCluster(tmp_path, nworkers=1, nthreads=1) as cluster:
        cluster.start_workers()
        with Ledger.open(home) as led:
            res = train(led, data="toy", algorithm="logistic", target="label",
                        engine="dask", scheduler=cluster.address)  # fmt: skip
    assert made["e"].killed is not None
    retries = _entries(home, "task.retry")
    assert res.retries == len(retries) >= 1
    assert all(e.body["iteration"] == 2 for e in retries)
    assert "has gone" in retries[0].body["reason"]
    for e in _entries(home, "state.update"):  # one recorded result per partition
        assert [r["partition"] for r in e.body["results"]] == [0, 1, 2, 3]
    assert verify_home(home).ok


# -- an address where no scheduler answers: one line, at once, saying what it found --------


@contextlib.contextmanager
def _listening(answer: bytes | None):
    """A TCP server on a free port that accepts connections and, on each, sends
    ``answer`` (an HTTP reply, as a dashboard or proxy would) or stays silent."""
    import threading

    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                held.append(conn)
                if answer is not None:
                    conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        srv.close()
        for conn in held:
            conn.close()


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def _start_fails(address: str, tmp_path: Path) -> tuple[str, float]:
    t = time.monotonic()
    with pytest.raises(UsageError) as e:
        DaskEngine(scheduler=address).start(str(tmp_path / "artifacts"))
    return str(e.value), time.monotonic() - t


@pytest.mark.timeout(60)
def test_no_scheduler_at_the_address_is_said_at_once_in_words(tmp_path, monkeypatch):
    """A refused port used to wait out the 10 s connect timeout and say "Timed out"; a
    port that answers in HTTP (a dashboard's, 8787) failed on a 3 EiB allocation; one that
    accepts and stays silent hung the job for ever."""
    monkeypatch.setattr(dask_engine, "CONNECT_SECONDS", 2)
    http = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    hint = "(another service's port? a scheduler's is usually 8786)"
    silent = "it accepts connections but gives no Dask handshake within 2 s"
    cases = [
        (
            contextlib.nullcontext(f"tcp://127.0.0.1:{_closed_port()}"),
            "connection refused (is a scheduler listening at that host and port?)",
            2,
        ),
        (_listening(http), f"it does not answer as a Dask scheduler {hint}", 2),
        (_listening(None), f"{silent} {hint}", 9),
    ]
    for server, why, limit in cases:
        with server as address:
            msg, took = _start_fails(address, tmp_path)
        assert msg == f"cannot reach Dask scheduler {address}: {why}"
        assert took < limit
