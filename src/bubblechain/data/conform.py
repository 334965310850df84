"""Read a source against a committed schema, for verification and proofs.

A file that is checked against a commitment may have drifted: a column gone,
added, or of another type (one tampered CSV cell turns a whole column into
strings). Rows are still encoded with the committed columns and kinds, so that
every untouched row keeps its committed leaf hash: a value of another type is
converted back when that is exact (Arrow's safe cast), and a value that cannot
be converted, or a column that is missing, is encoded with TAG_ABSENT, which
no committed row contains. Only the rows that really differ then differ.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_numpy import as_arrow, as_numpy
from .digest import ColumnsDigest, feed_columns
from .encoding import (
    ID_KINDS,
    EncodedColumn,
    EncodedRows,
    arrow_type,
    assemble_rows,
    canonical_ids,
    column_kind,
    describe_schema,
    encode_pieces,
    feed_rows,
    id_kind,
    value_columns,
)
from .errors import DataError
from .sources import Source, number_text_ok, open_source

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)


def open_for_schema(data: Any, schema: dict, batch_rows: int) -> tuple[Source, dict]:
    """(source to read, the file's own schema description) for checking against ``schema``.

    CSV has no types of its own: committed columns are read as text and
    converted here, so that one bad cell does not make the whole read fail.
    """
    source = open_source(data, batch_rows=batch_rows)
    seen = source.schema
    if source.kind == "CSV file":  # ids edited to "7.5" make a float column: text here
        i = seen.get_field_index(schema["id_column"])
        if i >= 0 and column_kind(seen.field(i).type) not in ID_KINDS:
            seen = seen.set(i, pa.field(schema["id_column"], pa.string()))
    found = describe_schema(seen, schema["id_column"], source.label)
    if source.kind == "CSV file":
        # A CSV column's kind is a guess from its first block; where the committed kind
        # reads every such value too (any text is a string, an int is a float, an empty
        # column is anything), the column is of the committed kind, its cells compared
        # one by one, and a guess that differs is no schema difference.
        committed = {c["name"]: c["type"] for c in schema["columns"]}
        for column in found["columns"]:
            was = committed.get(column["name"])
            if was is not None and (
                was == "string"
                or column["type"] == "null"
                or (was, column["type"]) == ("float", "int")
            ):
                column["type"] = was
        names = set(source.schema.names)
        types = {n: pa.large_string() for n, _ in value_columns(schema) if n in names}
        id_column, kind = schema["id_column"], id_kind(schema)
        if kind == "int":  # as text: a cell edited to "50a" is a row, not an unreadable file
            types[id_column] = pa.large_string()
        elif kind != "null":
            types[id_column] = arrow_type(kind)
        source = open_source(data, batch_rows=batch_rows, csv_column_types=types)
        if kind == "int" and id_column in names:
            source = _int_ids_set_aside(source, id_column)
    return source, found


def _int_ids_set_aside(source: Source, id_column: str) -> Source:
    """``source`` with its id column (read as text) converted to int ids, each row whose id
    is not an int as written (``50a``, ``007``, empty) set aside in ``unreadable``.

    The row is then missing from its id's place, so its committed id is reported
    missing, and the row itself is named by its position and text, instead of the
    whole file failing to read at the first such cell.
    """
    unreadable: dict[int, str] = {}
    schema = source.schema.set(
        source.schema.get_field_index(id_column), pa.field(id_column, pa.int64())
    )

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        pos = 0
        for batch in source.batches(columns):
            n, i = batch.num_rows, batch.schema.get_field_index(id_column)
            if i < 0:
                yield batch
                pos += n
                continue
            text = batch.column(i)
            ids, bad = convert(text, "int")
            bad |= as_numpy(ids.is_null())
            if bad.any():
                for at in np.flatnonzero(bad).tolist():
                    unreadable[pos + at] = text[at].as_py()
                keep = as_arrow(~bad)
                batch, ids = batch.filter(keep), ids.filter(keep)
            yield batch.set_column(i, id_column, ids)
            pos += n

    return Source(source.label, schema, batches, source.kind, source._rows, unreadable=unreadable)


def schema_diff(committed: dict, found: dict) -> dict | None:
    """Columns missing, added or of another kind than committed; None if the schemas match."""
    old = {c["name"]: c["type"] for c in committed["columns"]}
    new = {c["name"]: c["type"] for c in found["columns"]}
    diff = {
        "missing_columns": sorted(set(old) - set(new)),
        "added_columns": sorted(set(new) - set(old)),
        "changed_types": [
            {"column": n, "committed": old[n], "found": new[n]}
            for n in sorted(set(old) & set(new))
            if old[n] != new[n]
        ],
    }
    return diff if any(diff.values()) else None


def describe_schema_diff(diff: dict) -> str:
    """A `schema_diff` in words, for people: 'column id is string, committed int'."""
    parts = []
    if diff["missing_columns"]:
        parts.append("missing columns " + ", ".join(diff["missing_columns"]))
    if diff["added_columns"]:
        parts.append("added columns " + ", ".join(diff["added_columns"]))
    for c in diff["changed_types"]:
        parts.append(f"column {c['column']} is {c['found']}, committed {c['committed']}")
    return "; ".join(parts)


def convert(arr: pa.Array, kind: str) -> tuple[pa.Array, np.ndarray]:
    """``arr`` cast to ``kind`` where exact, and a mask of the values that could not be."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if column_kind(arr.type) in ("string",) and kind not in ("string", "binary"):
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)  # CSV: empty is null
        if kind in ("int", "float"):  # text that a number would lose ("007" is not 7)
            out, bad = _cast(arr, arrow_type(kind))
            return out, bad | ~number_text_ok(arr, arrow_type(kind))
    out, bad = _cast(arr, arrow_type(kind))
    if kind == "bool" and (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        # Arrow casts any non-zero number to true: only 0 and 1 are a bool as written.
        exact = pc.or_(pc.equal(arr, 0), pc.equal(arr, 1))
        bad |= ~as_numpy(pc.fill_null(exact, True))
    if bad.any() and kind.startswith("timestamp"):
        # Nanoseconds reach only the years 1677-2262; the encoding itself has no such
        # limit, and microseconds reach far beyond (an instant encodes alike in any unit).
        wide, wide_bad = _cast(arr, pa.timestamp("us", tz=out.type.tz))
        if wide_bad.sum() < bad.sum():
            return wide, wide_bad
    return out, bad


def _cast(arr: pa.Array, target: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Safe cast; on failure, bisect so that only the values that fail are marked."""
    n = len(arr)
    try:
        return pc.cast(arr, target, safe=True), np.zeros(n, bool)
    except pa.ArrowNotImplementedError:
        return pa.nulls(n, target), as_numpy(arr.is_valid())
    except _CAST_ERRORS:
        if n == 1:
            return pa.nulls(1, target), np.ones(1, bool)
    half = n // 2
    left, bad_left = _cast(arr.slice(0, half), target)
    right, bad_right = _cast(arr.slice(half), target)
    return pa.concat_arrays([left, right]), np.concatenate([bad_left, bad_right])


class ConformingEncoder:
    """Encode batches of a (possibly drifted) source with the committed columns and kinds."""

    def __init__(self, schema: dict, label: str):
        self.id_column, self.kind = schema["id_column"], id_kind(schema)
        self.columns = value_columns(schema)
        self.label = label

    def __call__(self, batch: pa.RecordBatch) -> EncodedRows:
        return assemble_rows(*self.pieces(batch))

    def pieces(
        self, batch: pa.RecordBatch, copy: bool = True
    ) -> tuple[pa.Array, list[EncodedColumn]]:
        """(canonical ids, each column encoded on its own): what rows and digests are made of.

        ``copy=False`` when the columns are only hashed (see `encode_pieces`).
        """
        ids, kind, values, poison = self._conform(batch)
        try:
            return ids, encode_pieces(ids, kind, values, poison, copy)
        except DataError as exc:
            raise DataError(f"{self.label}: {exc}") from None

    def feed(self, batch: pa.RecordBatch, runs: Sequence[tuple[int, int, Any]]) -> None:
        """Feed each ``(start, stop, digest)`` run its rows: a `ColumnsDigest` column by
        column, any other hasher (format 2 and 3 digests) their leaf inputs (`feed_rows`)."""
        columnar = [r for r in runs if isinstance(r[2], ColumnsDigest)]
        ids, pieces = self.pieces(batch, copy=len(columnar) < len(runs))
        feed_columns(pieces, columnar)
        if len(columnar) < len(runs):
            feed_rows(ids, pieces, [r for r in runs if not isinstance(r[2], ColumnsDigest)])

    def _conform(self, batch: pa.RecordBatch) -> tuple:
        names = set(batch.schema.names)
        try:
            ids = canonical_ids(batch.column(self.id_column), self.kind, self.label)
        except _CAST_ERRORS as exc:
            raise DataError(
                f"{self.label}: id column {self.id_column!r} no longer holds {self.kind} ids: {exc}"
            ) from None
        values: list[tuple[pa.Array | None, str]] = []
        poison: list[np.ndarray | None] = []
        for name, k in self.columns:
            if name not in names:
                values.append((None, k))
                poison.append(None)
                continue
            arr = batch.column(name)
            if column_kind(arr.type) == k:
                values.append((arr, k))
                poison.append(None)
            else:
                converted, bad = convert(arr, k)
                values.append((converted, k))
                poison.append(bad)
        return ids, self.kind, values, poison


def conforming_encoder(schema: dict, label: str) -> ConformingEncoder:
    """Encode batches of a (possibly drifted) source with the committed columns and kinds."""
    return ConformingEncoder(schema, label)
