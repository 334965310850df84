"""Datasets on the ledger: commitments recorded as ``data.commit`` messages, by name and version.

``bubblechain.data`` computes commitments against any artifact store; this
module binds them to a ledger, so that the command line and the training
runtime agree on what "the dataset ``train``" means: the latest ``data.commit``
message with that name. Committing a name again appends a new version; the old
messages stay on the ledger, as everything does.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..errors import UsageError
from .commit import commit, default_name
from .prove import prove
from .sources import Source, open_source
from .verify import verify

if TYPE_CHECKING:
    from ..ledger import Ledger
    from ..ledger.ledger import Entry

KIND = "data.commit"

Progress = Callable[[str, int, "int | None"], None]
"""``progress(phase, rows_read, total_or_None)``, called as batches are read."""

PHASE_IDS = "reading ids"
PHASE_ROWS = "hashing rows"
PHASE_RECORD = "recording on the ledger"


def source_path(data: Any) -> str | None:
    """The absolute path of a file or directory dataset; None for in-memory data.

    Recorded as the commitment's ``source`` because the training runtime reads
    the partitions back from it.
    """
    if isinstance(data, str | os.PathLike):
        return os.path.abspath(os.fspath(data))
    return None


def default_dataset_name(data: Any) -> str:
    """The name ``commit`` gives ``data`` when none is given (a file's stem)."""
    return default_name(open_source(data))


def _with_progress(source: Source, id_column: str, progress: Progress) -> Source:
    """The same source, reporting rows read: the id pass first, then the hashing pass.

    The hashing pass's total is the row count of the last id pass, so a bar
    can be drawn for every format, including CSV, whose length is unknown ahead.
    """
    counted: dict[str, int | None] = {"rows": None}

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        ids_only = columns is not None and list(columns) == [id_column]
        phase = PHASE_IDS if ids_only else PHASE_ROWS
        total = None if ids_only else counted["rows"]
        seen = 0
        progress(phase, 0, total)
        for batch in source.batches(columns):
            yield batch
            seen += batch.num_rows
            progress(phase, seen, total)
        if ids_only:
            counted["rows"] = seen

    return Source(source.label, source.schema, batches, source.kind, source._rows)


MAX_NAME = 200
NAME_RULE = (
    "a dataset name holds no control character, line break, '/' or '\\', has no space at "
    "either end, and does not start with '-' or '.'"
)
_BREAKS = {"Cc", "Zl", "Zp"}  # control characters, line and paragraph separators


def dataset_name(data: Any, name: str | None) -> str:
    """The name ``data`` is committed under: ``name``, else the file's stem; in NFC, and
    refused (UsageError) if messages, tables, commands and later ``--name``/``--data``
    lookups would garble or misread it: empty, over 200 characters, or against
    `NAME_RULE` (one with '/' reads as a path, one starting with '-' as an option).
    Spaces inside a name are taken ("churn v2"), as in any script: names already on
    ledgers hold them, and commands quote them."""
    given = name if name is not None else default_dataset_name(data)
    problem = None
    if not given:
        problem = "is empty"
    elif len(given) > MAX_NAME:
        problem = f"is {len(given)} characters long (at most {MAX_NAME})"
    elif any(unicodedata.category(c) in _BREAKS for c in given):
        problem = f"holds a control character or line break ({NAME_RULE})"
    elif given != given.strip():
        problem = f"starts or ends with a space ({NAME_RULE})"
    elif "/" in given:
        problem = f"holds a '/' ({NAME_RULE})"
    elif "\\" in given:
        problem = f"holds a '\\' ({NAME_RULE})"
    elif given[0] in "-.":
        problem = f"starts with '{given[0]}' ({NAME_RULE})"
    if problem is None:
        return _nfc(given)
    shown = repr(given[:60]) + ("…" if len(given) > 60 else "")
    if name is None:
        raise UsageError(f"dataset name {shown} (the file's name) {problem}: give a --name")
    raise UsageError(f"dataset name {shown} {problem}")


def commit_dataset(
    ledger: Ledger,
    data: Any,
    id_column: str,
    name: str | None = None,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Commit ``data`` and record it on the ledger as the next version of its name.

    The partition artifacts go to ``ledger.artifacts``; the ``data.commit`` body
    is the commitment plus ``source`` (absolute path, for file datasets) and
    ``version`` (1 for a new name, else the latest version + 1). Waits until
    the message is final. Returns the body with the message ``id`` and
    ``index``. ``options`` go to ``bubblechain.data.commit`` (``workers``, …).
    """
    source = open_source(data)
    name = dataset_name(source, name)
    if progress is not None:
        source = _with_progress(source, id_column, progress)
    body = commit(source, id_column=id_column, store=ledger.artifacts, name=name, **options)
    path = source_path(data)
    if path is not None:
        body["source"] = path
    # Versions count final commits: one left awaiting cosignatures by an earlier process
    # is final (or refused) first, so that no two commits get the same version.
    ledger.flush()
    body["version"] = _latest_version(ledger, body["name"]) + 1
    if progress is not None:
        progress(PHASE_RECORD, body["rows"], None)
    appended = ledger.append(KIND, body, outputs=[body["partitions"]])
    ledger.flush()
    return {**body, "id": appended.id, "index": appended.index}


def _version(entry: Entry, ordinal: int) -> int:
    """An entry's version: the recorded one, or its position among its name's commits."""
    v = entry.body.get("version")
    return v if isinstance(v, int) and not isinstance(v, bool) else ordinal


def _versioned(ledger: Ledger) -> Iterator[tuple[Entry, int]]:
    """Every final ``data.commit`` entry, oldest first, with its version.

    Only final ones: a commit that no witness quorum vouches for (its block was
    never cosigned, as when its process was killed, or a rogue process kept it
    from the witnesses) is no version of anything. `commit_dataset` returns once
    its commit is final.
    """
    seen: dict[str, int] = {}
    final = ledger.final_height()
    for e in ledger.entries(kind=KIND):
        if e.block > final:
            break
        name = e.body.get("name")
        seen[name] = seen.get(name, 0) + 1
        yield e, _version(e, seen[name])


def _latest_version(ledger: Ledger, name: str) -> int:
    wanted = _nfc(name)
    return max((v for e, v in _versioned(ledger) if _nfc(e.body.get("name")) == wanted), default=0)


def find_commitment(
    ledger: Ledger, name: str, version: int | None = None
) -> tuple[Entry, dict[str, Any]]:
    """The ``data.commit`` of ``name`` at ``version`` (default: the latest): (entry, body,
    with ``version`` filled in).

    Raises UsageError naming the committed datasets, or the name's versions, when
    there is no such commit.
    """
    found: tuple[Entry, int] | None = None
    names: set[str] = set()
    versions: list[int] = []
    wanted = _nfc(name)  # as committed since names are checked
    for e, v in _versioned(ledger):
        names.add(str(e.body.get("name")))
        if _nfc(e.body.get("name")) == wanted:
            versions.append(v)
            if version is None or v == version:
                found = (e, v)
    if not versions:
        committed = ", ".join(sorted(names)) or "none"
        raise UsageError(f"no dataset {name!r} is committed; committed: {committed}")
    if found is None:
        raise UsageError(
            f"dataset {name!r} has no version {version}; its versions: "
            + ", ".join(map(str, versions))
        )
    entry, v = found
    return entry, {**entry.body, "version": v}


def _nfc(name: Any) -> Any:
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


def datasets(ledger: Ledger) -> list[dict[str, Any]]:
    """Every committed dataset version, oldest first (name, version, rows, root, …)."""
    out = []
    for e, v in _versioned(ledger):
        b = e.body
        out.append(
            {
                "name": b.get("name"),
                "version": v,
                "rows": b.get("rows"),
                "root": b.get("root"),
                "schema_hash": b.get("schema_hash"),
                "source": b.get("source"),
                "time": e.fields["time"],
                "id": e.id,
                "index": e.index,
                "block": e.block,
            }
        )
    return out


def _resolve(
    ledger: Ledger, data: Any, name: str | None, version: int | None
) -> tuple[Entry, dict[str, Any]]:
    return find_commitment(ledger, name or default_dataset_name(data), version)


def _about(entry: Entry, body: dict[str, Any]) -> dict[str, Any]:
    return {"name": body["name"], "version": body["version"], "root": body["root"], "id": entry.id}


def verify_dataset(
    ledger: Ledger, data: Any, name: str | None = None, version: int | None = None
) -> dict[str, Any]:
    """``bubblechain.data.verify`` against ``version`` (default: the latest) of ``name``
    (default: the file's stem): the file a job trained on can be checked after newer
    versions were committed.

    The result also names the commitment checked: name, version, root and message id.
    """
    entry, body = _resolve(ledger, data, name, version)
    result = verify(data, body, ledger.artifacts)
    return {**result, **_about(entry, body)}


def prove_row(
    ledger: Ledger, data: Any, row: Any, name: str | None = None, version: int | None = None
) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of row ``row`` in ``version`` (default: the latest) of
    ``name``, naming the commitment it is for (name, version, root, message id).

    The row id is taken as an integer when the committed ids are integers.
    """
    entry, body = _resolve(ledger, data, name, version)
    return {**prove(data, row, body, ledger.artifacts), **_about(entry, body)}


__all__ = [
    "KIND",
    "PHASE_IDS",
    "PHASE_RECORD",
    "PHASE_ROWS",
    "Progress",
    "commit_dataset",
    "dataset_name",
    "datasets",
    "default_dataset_name",
    "find_commitment",
    "prove_row",
    "source_path",
    "verify_dataset",
]
