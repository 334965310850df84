"""Training on a Dask cluster started elsewhere, as a cluster user runs it: a shared
scheduler, workers with several threads, a scheduler that goes away, one with no workers.

Each test starts a real `LocalCluster` of worker processes and hands its address to
`train` (or to the CLI) as `--scheduler`, as for an external cluster.
"""

from __future__ import annotations

from pathlib import Path

from distributed import LocalCluster
from test_training import write_toy

from bubblechain.artifacts import ArtifactStore
from bubblechain.data.ledger import commit_dataset
from bubblechain.ledger import Ledger
from bubblechain.ledger.verify import verify_home
from bubblechain.training import tasks
from bubblechain.training.engines.dask import DaskEngine, plugin_name
from bubblechain.training.runtime import train

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
