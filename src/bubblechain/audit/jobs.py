"""A training job as the ledger records it, grouped for checking and replay."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..ledger.ledger import Entry


@dataclass
class JobRecord:
    job: str
    start: Entry
    commit: Entry | None = None
    results: dict[str, Entry] = field(default_factory=dict)  # message id -> task.result
    updates: list[Entry] = field(default_factory=list)
    retries: list[Entry] = field(default_factory=list)
    refusals: list[Entry] = field(default_factory=list)
    final: Entry | None = None
    end: Entry | None = None
    messages: list[Entry] = field(default_factory=list)

    @property
    def spec(self) -> dict[str, Any]:
        return self.start.body

    def loss_curve(self) -> list[tuple[int, float]]:
        return [
            (u.body["iteration"], u.body["metrics"]["loss"])
            for u in self.updates
            if "loss" in u.body.get("metrics", {})
        ]


def job_label(job: str) -> str:
    """How a finding or a report names a job: its id, which reads ``job-…`` already.

    An id that does not start with ``job-`` (not made by this tool) is prefixed
    with ``job``, so that it still says what it is.
    """
    return job if job.startswith("job-") else f"job {job}"


def collect_jobs(entries: Iterable[Entry]) -> tuple[list[JobRecord], dict[str, Entry]]:
    """Group messages by job; also return every data.commit by message id."""
    jobs: dict[str, JobRecord] = {}
    commits: dict[str, Entry] = {}
    for e in entries:
        if e.kind == "data.commit":
            commits[e.id] = e
        job = e.fields["job"]
        if job is None:
            continue
        if e.kind == "job.start":
            ds = e.body.get("dataset")
            commit = commits.get(ds.get("commit")) if isinstance(ds, dict) else None
            jobs[job] = JobRecord(job, e, commit=commit)
        rec = jobs.get(job)
        if rec is None:
            continue
        rec.messages.append(e)
        if e.kind == "task.result":
            rec.results[e.id] = e
        elif e.kind == "state.update":
            rec.updates.append(e)
        elif e.kind == "task.retry":
            rec.retries.append(e)
        elif e.kind == "task.refused":
            rec.refusals.append(e)
        elif e.kind == "model.final":
            rec.final = e
        elif e.kind == "job.end":
            rec.end = e
    return list(jobs.values()), commits
