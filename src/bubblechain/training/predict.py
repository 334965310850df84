"""Predicting with a recorded model: the file must match its `model.final` record first."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..algorithms.registry import get as get_algorithm
from ..data.arrow_numpy import as_arrow, as_numpy
from ..data.encoding import NUMERIC_KINDS, column_kind
from ..data.sources import open_source
from ..errors import BubblechainError, UsageError
from ..ledger import Ledger
from ..ledger.ledger import Entry
from .model import model_file, parse_model
from .outputs import check_output
from .partitions import nonfinite_rows


class ModelMismatch(BubblechainError):
    """A model file is not the one any `model.final` on the ledger records."""


def check_model(ledger: Ledger, path: Path) -> tuple[dict, dict[str, Any], Entry]:
    """Find the `model.final` that records a model file's exact hash, then load it.

    Nothing in the file is parsed before its hash matches: a changed file is
    reported as such, whatever the change did to its structure.
    """
    data, digest = model_file(path)
    for e in ledger.entries(kind="model.final"):
        if e.body.get("model_hash") == digest:
            params, meta = parse_model(data, path)
            return params, meta, e
    raise ModelMismatch(
        f"model file {path} (sha256 {digest}) matches no model.final on the ledger: "
        "it was changed after training, or trained on another ledger"
    )


def predictions(
    ledger: Ledger, model: Path, data: Path
) -> tuple[dict[str, Any], Entry, Iterator[pa.Table]]:
    """(model meta, its model.final entry, batches of id + prediction [+ probabilities])."""
    params, meta, entry = check_model(ledger, model)
    algo = get_algorithm(meta["algorithm"])
    source = open_source(data)
    names = set(source.schema.names)
    # Each column once: the id column may also be a feature, and a model trained before
    # train refused a feature named twice may name one twice (a table read with a
    # column twice has no column by that name).
    columns = list(dict.fromkeys([meta["id_column"], *meta["features"]]))
    missing = [c for c in columns if c not in names]
    if missing:
        named = f"column{'s' * (len(missing) > 1)} {', '.join(missing)}"
        raise UsageError(f"{data} lacks the model's {named}")
    for f in meta["features"]:
        kind = column_kind(source.schema.field(f).type)
        if kind not in NUMERIC_KINDS:
            raise UsageError(f"{data}: feature column {f!r} holds {kind} values, not numbers")

    def batches() -> Iterator[pa.Table]:
        start = 0  # the position of the batch's first row in the input
        for batch in source.batches(columns):
            yield predict(batch, start)
            start += batch.num_rows
        if not start:  # no rows: one empty table, so that an output file still gets its columns
            yield predict(pa.schema([source.schema.field(c) for c in columns]).empty_table(), 0)

    def predict(batch: pa.RecordBatch | pa.Table, start: int) -> pa.Table:
        ids = batch.column(meta["id_column"])
        if ids.null_count:  # a prediction no one could match to its row
            at = (start + np.flatnonzero(as_numpy(ids.is_null()))).tolist()
            raise UsageError(
                f"{data}: id column {meta['id_column']!r} is null at row position {at[0]}"
                f" (counting from 0; {len(at)} such row{'s' * (len(at) != 1)} among the"
                f" {batch.num_rows:,} of this batch, positions {at[:5]}"
                f"{', …' if len(at) > 5 else ''})"
            )
        X = np.column_stack(
            [as_numpy(batch.column(f)).astype(np.float64) for f in meta["features"]]
        )
        bad = nonfinite_rows(X, meta["features"])
        if bad is not None:
            rows, f = bad
            ids = batch.column(meta["id_column"]).take(as_arrow(rows[:5])).to_pylist()
            raise UsageError(
                f"{data}: feature {f!r} is missing or not finite at row id {ids[0]!r}"
                f" ({len(rows)} such row{'s' * (len(rows) != 1)} among the {len(X):,} of"
                f" this batch, ids {ids}"
                f"{', …' if len(rows) > 5 else ''})"
            )
        cols = {
            meta["id_column"]: batch.column(meta["id_column"]),
            "prediction": as_arrow(algo.predict(params, X)),
        }
        if hasattr(algo, "predict_proba") and algo.task == "classification":
            proba = algo.predict_proba(params, X)
            classes = _classes(params)
            for j in range(proba.shape[1]):
                cols[f"p_{classes[j] if classes is not None else j}"] = as_arrow(proba[:, j])
        return pa.table(cols)

    return meta, entry, batches()


def _classes(params: dict) -> list | None:
    c = params.get("classes")
    return None if c is None else [str(x) for x in np.asarray(c).tolist()]


def check_predictions_out(ledger: Ledger, out: Path, inputs: tuple[Path, ...]) -> None:
    """Refuse an --out that could not or must not be written, before any prediction is made."""
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"--out {out}: use a .csv or .parquet file name")
    check_output(ledger, out, "--out", inputs)


SPOOL_BYTES = 64 << 20


def write_predictions(batches: Iterator[pa.Table], out: Path | None) -> int:
    """Write to CSV or Parquet by extension, or JSON lines to stdout; return the row count.

    The file appears whole or not at all (with its columns only, for no rows);
    check the path first with `check_predictions_out`. Stdout gets every line or
    none: they are spooled (in memory up to 64 MiB, then in a temporary file)
    until the last batch is predicted, so a bad value late in the input leaves
    no partial output behind for the next program in a pipe.
    """
    n = 0
    if out is None:
        # One encoder for every row: json.dumps(default=...) builds a new one per call.
        line = json.JSONEncoder(default=str).encode
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES, mode="w+", encoding="utf-8") as spool:
            for t in batches:
                spool.writelines([line(row) + "\n" for row in t.to_pylist()])
                n += t.num_rows
            spool.seek(0)
            shutil.copyfileobj(spool, sys.stdout)
        return n
    out = Path(out)
    suffix = out.suffix.lower()
    # A name of its own: two runs writing the same --out must not share a half-written file.
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
    writer = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for t in batches:
            if writer is None:
                writer = (
                    pacsv.CSVWriter(tmp, t.schema)
                    if suffix == ".csv"
                    else pq.ParquetWriter(tmp, t.schema)
                )
            writer.write_table(t)
            n += t.num_rows
        if writer is not None:
            writer.close()
            writer = None
            tmp.replace(out)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write: {e.strerror or e}") from None
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return n
