"""The local engine's worker processes, as a map task sees them."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import pytest

from bubblechain.training.engines.local import LocalEngine


def _temporaries(_spec: dict) -> float:
    """Page faults per task of a task that allocates and frees 8 MiB of temporaries."""

    def task() -> float:
        arrays = [np.ones(1 << 17) for _ in range(8)]
        return float(sum(a[0] for a in arrays))

    task()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        task()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc heap thresholds")
def test_local_workers_reuse_freed_memory_instead_of_faulting_it_in_each_task(tmp_path):
    # With glibc's defaults each such task faults its 8 MiB in again (~2,000 faults):
    # 3 ms of a 10 ms logistic map task on a VM.
    eng = LocalEngine(workers=1)
    eng.start(str(tmp_path))
    try:
        faults = eng.submit(_temporaries, {}, "probe").result(timeout=60)
    finally:
        eng.close()
    assert faults < 50


def _pid(_spec: dict) -> int:
    return os.getpid()


def test_close_waits_until_every_worker_process_has_exited(tmp_path):
    eng = LocalEngine(workers=2)
    eng.start(str(tmp_path))
    pids = {eng.submit(_pid, {}, f"pid-{i}", affinity=i).result(timeout=60) for i in range(2)}
    assert len(pids) == 2
    eng.close()  # the slots shut down side by side, and close returns after both
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _plus_one(spec: dict) -> int:
    return spec["n"] + 1


def test_dask_submit_with_no_worker_yet_waits_for_one(tmp_path):
    """A task submitted while the cluster has no worker (one just died, none has joined
    yet) runs on the next worker to join; preferring a worker there raised ValueError."""
    from distributed import LocalCluster

    from bubblechain.training.engines.dask import DaskEngine

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        engine = DaskEngine(scheduler=cluster.scheduler_address)
        engine.start(str(tmp_path))  # a job starts only on a cluster with a worker
        try:
            cluster.scale(0)
            deadline = time.monotonic() + 60
            while engine.client.scheduler_info()["workers"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            future = engine.submit(_plus_one, {"n": 41}, "plus-one", affinity=3)
            cluster.scale(1)
            assert future.result(timeout=60) == 42
        finally:
            engine.close()


class _MarksTeardown:
    """Writes its file when the interpreter tears the worker's modules down."""

    def __init__(self, path: str):
        self.path = path

    def __del__(self, _open=os.open, _close=os.close, _flags=os.O_CREAT | os.O_WRONLY):
        _close(_open(self.path, _flags))  # bound early: teardown may have cleared os


_HELD: list = []


def _hold_until_teardown(spec: dict) -> int:
    _HELD.append(_MarksTeardown(spec["path"]))
    return os.getpid()


def test_close_does_not_wait_for_the_workers_interpreter_teardown(tmp_path):
    # Tearing numpy, pyarrow and a worker's cached partitions down module by module
    # took about 0.1 s per worker, and every job waited for it in close().
    marker = tmp_path / "torn-down"
    eng = LocalEngine(workers=1)
    eng.start(str(tmp_path))
    pid = eng.submit(_hold_until_teardown, {"path": str(marker)}, "hold").result(timeout=60)
    eng.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not marker.exists()


_WARM_WORKERS = """
import os, sys, time
from bubblechain.training.engines.local import LocalEngine

def cpu_so_far(_spec):
    return time.process_time(), os.getppid()

if __name__ == "__main__":
    for _ in range(2):  # the second engine's workers too
        eng = LocalEngine(workers=1)
        eng.start(sys.argv[1])
        try:
            cpu, parent = eng.submit(cpu_so_far, {}, "cpu").result(timeout=60)
        finally:
            eng.close()
        print(cpu, parent != os.getpid())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forkserver workers on Linux")
def test_workers_start_without_importing_numpy_and_pyarrow_again(tmp_path):
    # A spawned worker spent ~0.5 s of CPU importing numpy, pyarrow and bubblechain
    # before its first task, in every job; forked from the forkserver, which imported
    # them once, it finds them loaded. Run as a script of its own, as the CLI is:
    # each worker re-runs the parent's __main__ (here pytest, which is not preloaded).
    script = tmp_path / "warm.py"
    script.write_text(_WARM_WORKERS)
    out = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout  # one worker per engine
    for line in lines:
        cpu, forked = line.split()
        assert forked == "True"  # by the forkserver, not by the coordinator
        assert float(cpu) < 0.1, f"a worker used {cpu} s of CPU before its first task"


def test_abort_stops_a_running_task_at_once(tmp_path):
    """Workers leave Ctrl-C to the coordinator: its interrupted job used to wait, in
    close, for every task still running (a first-round task may take seconds)."""
    import time

    eng = LocalEngine(workers=1)
    eng.start(str(tmp_path))
    running = eng.submit(time.sleep, 60, "sleep")
    deadline = time.monotonic() + 60
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    (pid,) = eng.pids()
    t0 = time.monotonic()
    eng.abort()
    assert time.monotonic() - t0 < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
