"""Data sources read as a stream of Arrow record batches, never whole.

One ``Source`` per dataset: a Parquet file, a directory of Parquet files, a CSV
file, an Arrow IPC (Feather v2) file or stream, or an in-memory pandas
DataFrame, numpy structured array, dict of arrays or Arrow table. A source can
be iterated several times (commit reads the id column first, then the rows),
optionally projected to some columns, which Parquet and IPC read cheaply.
"""

from __future__ import annotations

import decimal
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .errors import DataError

DEFAULT_BATCH_ROWS = 1 << 16
TSV_SUFFIXES = (".tsv", ".tsv.gz", ".tsv.bz2", ".tsv.zst")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", *TSV_SUFFIXES)
_ARROW_ERRORS = (pa.ArrowException, OSError)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass
class Source:
    """A dataset as a schema and a re-iterable stream of record batches."""

    label: str
    schema: pa.Schema
    _batches: Callable[[Sequence[str] | None], Iterator[pa.RecordBatch]]
    kind: str
    _rows: Callable[[], int] | None = None
    unreadable: dict[int, str] | None = None
    """Rows set aside because their id cannot be read as the committed kind (a CSV id
    cell edited to ``50a``): position in the file → the cell's text. Filled as the rows
    are read (`conform.open_for_schema`); None where no row can be set aside."""

    def rows(self) -> int | None:
        """How many rows the source holds, if its metadata says without reading them."""
        if self._rows is None:
            return None
        try:
            return self._rows()
        except _ARROW_ERRORS as exc:
            raise DataError(f"{self.label}: cannot read {self.kind}: {_reason(exc)}") from None

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Yield record batches (all columns, or only ``columns``), wrapping read errors."""
        try:
            yield from self._batches(list(columns) if columns is not None else None)
        except DataError:
            raise
        except _ARROW_ERRORS as exc:
            raise DataError(f"{self.label}: cannot read {self.kind}: {self._why(exc)}") from None

    def _why(self, exc: BaseException) -> str:
        """Arrow's reason, with a CSV column named rather than numbered."""
        reason = _reason(exc)
        m = _CSV_CONVERSION.match(reason)
        if m is None or int(m["index"]) >= len(self.schema.names):
            return reason
        name = self.schema.names[int(m["index"])]
        return (
            f"column {name!r} is {m['type']} in the file's first block (where CSV types are "
            f"inferred) but holds {m['value']!r}"
        )


_CSV_CONVERSION = re.compile(
    r"In CSV column #(?P<index>\d+): CSV conversion error to (?P<type>[^:]+): "
    r"invalid value '(?P<value>.*)'$"
)


def open_source(
    data: Any,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    csv_column_types: dict[str, pa.DataType] | None = None,
) -> Source:
    """Open a path or an in-memory dataset as a ``Source``.

    Paths are recognised by content (Parquet and Arrow magic bytes) and then by
    suffix (CSV). ``csv_column_types`` overrides CSV type inference for some
    columns (verification reads committed columns as strings this way).
    """
    if isinstance(data, Source):
        return data
    if isinstance(data, str | os.PathLike):
        return _open_path(Path(data), batch_rows, csv_column_types)
    return _open_memory(data, batch_rows)


def _open_path(path: Path, batch_rows: int, csv_types: dict | None) -> Source:
    label = str(path)
    if path.is_dir():
        return _open_parquet_dir(path, batch_rows)
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise DataError(f"{label}: no such file or directory") from None
    except OSError as exc:
        raise DataError(f"{label}: cannot open: {exc.strerror or _reason(exc)}") from None
    if not head:
        raise DataError(f"{label}: empty file (0 bytes): no header or schema to read")
    if head[:4] == b"PAR1":
        return _open_parquet(path, batch_rows)
    if head[:6] == b"ARROW1":
        return _open_ipc(path, batch_rows, stream=False)
    if head[:4] == b"\xff\xff\xff\xff":
        return _open_ipc(path, batch_rows, stream=True)
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return _open_csv(path, batch_rows, csv_types)
    if name.endswith((".parquet", ".pq", ".arrow", ".feather", ".ipc")):
        raise DataError(f"{label}: not a readable {path.suffix[1:]} file (bad magic bytes)")
    raise DataError(
        f"{label}: unrecognised format: expected Parquet, Arrow IPC/Feather, or a .csv file"
    )


def _open_parquet(path: Path, batch_rows: int) -> Source:
    label = str(path)
    try:
        schema = pq.ParquetFile(path).schema_arrow
    except _ARROW_ERRORS as exc:
        raise DataError(f"{label}: not a readable Parquet file: {_reason(exc)}") from None

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        # Memory-mapped, like Arrow IPC files: column chunks are decoded from the page
        # cache instead of being copied into freshly allocated buffers first, which
        # for a file of one large row group meant the whole file per read.
        with pq.ParquetFile(path, memory_map=True) as pf:
            yield from pf.iter_batches(batch_size=batch_rows, columns=columns)

    def rows() -> int:
        with pq.ParquetFile(path, memory_map=True) as pf:
            return pf.metadata.num_rows

    return Source(label, schema, batches, "Parquet file", rows)


def _open_parquet_dir(path: Path, batch_rows: int) -> Source:
    import pyarrow.dataset as pds  # here, not above: importing it imports pandas (~0.2 s)

    label = str(path)
    try:
        dataset = _hive_dataset(pds, path)
    except _ARROW_ERRORS as exc:
        raise DataError(f"{label}: not a readable Parquet dataset: {_reason(exc)}") from None
    if not dataset.files:
        raise DataError(f"{label}: directory holds no Parquet files")
    _same_schema(dataset, label)

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        yield from dataset.to_batches(columns=columns, batch_size=batch_rows)

    return Source(label, dataset.schema, batches, "Parquet dataset", dataset.count_rows)


def _hive_dataset(pds: Any, path: Path) -> Any:
    """The Parquet files under ``path`` as one dataset, in path order, with their hive
    partition columns (``key=value`` folders).

    A partition value is text in a folder name: a key is an int column when every
    value is an integer written canonically (``str(int(v)) == v``: ``7``, ``-3``, not
    ``007`` or ``+7``), else a string column, so that no text is lost (pyarrow's own
    inference reads ``y=007`` as 7). ``__HIVE_DEFAULT_PARTITION__`` is null.
    """
    found = pds.dataset(path, format="parquet", partitioning="hive")
    # The partition keys are the columns the folder names add (a discovered partitioning
    # without any reports the files' whole schema as its own).
    in_files = set(pds.dataset(path, format="parquet").schema.names)
    keys = [n for n in found.schema.names if n not in in_files]
    if keys:
        as_text = pds.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive")
        found = pds.dataset(path, format="parquet", partitioning=as_text)
        values: dict[str, set] = {k: set() for k in keys}
        for fragment in found.get_fragments():
            for k, v in pds.get_partition_keys(fragment.partition_expression).items():
                values[k].add(v)
        typed = [(k, pa.int64() if _all_int_text(values[k]) else pa.string()) for k in keys]
        partitioning = pds.partitioning(pa.schema(typed), flavor="hive")
        found = pds.dataset(path, format="parquet", partitioning=partitioning)
    # Fragments (each with its partition values) in path order, whatever the listing's.
    fragments = sorted(found.get_fragments(), key=lambda f: f.path)
    return pds.FileSystemDataset(fragments, found.schema, found.format, found.filesystem)


def _same_schema(dataset: Any, label: str) -> None:
    """Refuse files whose columns differ from the dataset's, which Arrow takes from one
    file: a column only in another file would be left out of the commitment, unseen."""
    want = {f.name: f.type for f in dataset.schema}
    for fragment in dataset.get_fragments():
        try:
            have = {f.name: f.type for f in fragment.physical_schema}
        except _ARROW_ERRORS as exc:
            why = _reason(exc)
            raise DataError(f"{fragment.path}: not a readable Parquet file: {why}") from None
        have.update((k, want[k]) for k in want if k not in have and _is_key(fragment, k))
        if have == want:
            continue
        extra = sorted(set(have) - set(want))
        missing = sorted(set(want) - set(have))
        retyped = sorted(k for k in set(have) & set(want) if have[k] != want[k])
        what = "; ".join(
            f"{name} {', '.join(map(repr, cols))}"
            for name, cols in (("has columns", extra), ("lacks", missing), ("retypes", retyped))
            if cols
        )
        raise DataError(
            f"{label}: its files do not share one schema: {fragment.path} {what} "
            "(commit them as separate datasets, or rewrite them with one schema)"
        )


def _is_key(fragment: Any, name: str) -> bool:
    """Whether ``name`` is a hive partition column, given by the fragment's folders."""
    import pyarrow.dataset as pds

    return name in pds.get_partition_keys(fragment.partition_expression)


def _all_int_text(values: set) -> bool:
    """Whether every text is an int64 written canonically (and there is at least one)."""
    for v in values:
        try:
            n = int(v)
        except (TypeError, ValueError):
            return False
        if str(n) != v or not -(2**63) <= n < 2**63:
            return False
    return bool(values)


def _open_ipc(path: Path, batch_rows: int, stream: bool) -> Source:
    label = str(path)
    kind = "Arrow IPC stream" if stream else "Arrow IPC file"
    try:
        if stream:
            with pa.OSFile(str(path)) as fh:
                schema = pa.ipc.open_stream(fh).schema
        else:
            schema = pa.ipc.open_file(pa.memory_map(str(path))).schema
    except _ARROW_ERRORS as exc:
        raise DataError(f"{label}: not a readable {kind}: {_reason(exc)}") from None

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        if stream:
            reader = pa.ipc.open_stream(pa.OSFile(str(path)))
            parts = iter(reader)
        else:
            reader = pa.ipc.open_file(pa.memory_map(str(path)))
            parts = (reader.get_batch(i) for i in range(reader.num_record_batches))
        for batch in parts:
            if columns is not None:
                batch = batch.select(columns)
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)

    def rows() -> int:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))

    return Source(label, schema, batches, kind, None if stream else rows)


def csv_options(column_types: dict | None, batch_rows: int) -> tuple:
    """CSV read and convert options: only an empty field is null.

    Arrow's default also reads "NA", "null", "NaN", … as null, which would let
    an edit between two of them go unnoticed; here they stay values.
    """
    read = pcsv.ReadOptions(block_size=max(1 << 20, batch_rows * 64))
    convert = pcsv.ConvertOptions(
        null_values=[""], strings_can_be_null=False, column_types=column_types or {}
    )
    return read, convert


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def number_text_ok(text: pa.Array, t: pa.DataType) -> np.ndarray:
    """Where each text is a number of type ``t`` as written, so that reading it loses no text.

    An integer must be canonical (``str(int(v)) == v``: ``7``, ``-3``, ``0``; not
    ``007``, ``+7``, ``-0`` or ``0x7``), a float must not have a zero-padded integer part
    (``0.5``, ``-0.0``, ``1e3`` are fine, ``007.5`` is not): zero-padded numbers are codes
    (zip codes, ids), whose text is the value. True for nulls and empty texts. Only the
    first bytes of each value are looked at: whether the rest parses is the cast's
    business.
    """
    return _number_text(text, t)[0]


def _number_text(text: pa.Array, t: pa.DataType) -> tuple[np.ndarray, np.ndarray]:
    """(`number_text_ok`, which texts are empty)."""
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = text.cast(pa.large_string())
    n = len(text)
    buffers = text.buffers()
    offsets = np.frombuffer(buffers[1], np.int32 if pa.types.is_string(text.type) else np.int64)
    offsets = offsets[text.offset : text.offset + n + 1]
    start, length = offsets[:-1], np.diff(offsets)
    empty = length == 0
    if buffers[2] is None or buffers[2].size == 0:
        return np.ones(n, bool), empty
    data = np.frombuffer(buffers[2], np.uint8)
    last = len(data) - 1
    b0 = data[np.minimum(start, last)]
    b1 = data[np.minimum(start + 1, last)]
    if pa.types.is_integer(t):
        ok = (b0 >= ord("1")) & (b0 <= ord("9"))  # then digits only, or the cast fails
        ok |= (length == 1) & (b0 == ord("0"))
        minus = np.flatnonzero(b0 == ord("-"))
        if len(minus):
            ok[minus] = (length[minus] >= 2) & (b1[minus] >= ord("1")) & (b1[minus] <= ord("9"))
    else:
        bad = (b0 == ord("0")) & (b1 >= ord("0")) & (b1 <= ord("9")) & (length >= 2)
        signed = np.flatnonzero((b0 == ord("-")) | (b0 == ord("+")))
        if len(signed):
            b2 = data[np.minimum(start[signed] + 2, last)]
            bad[signed] = (b1[signed] == ord("0")) & (b2 >= ord("0")) & (b2 <= ord("9"))
            bad[signed] &= length[signed] >= 3
        ok = ~bad
    ok |= empty
    if text.null_count:
        ok |= ~np.asarray(text.is_valid().to_numpy(zero_copy_only=False), bool)
    return ok, empty


def _number_column(
    text: pa.Array, t: pa.DataType, name: str, label: str, inferred: bool
) -> pa.Array:
    """A CSV column read as text, converted to the number type ``t``, refusing lost text."""
    ok, empty = _number_text(text, t)
    if empty.any():
        text = pc.if_else(pa.array(empty), pa.scalar(None, text.type), text)  # empty is null
    try:
        out = pc.cast(text, t, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        out, ok = None, np.zeros(0, bool)
    if out is not None and ok.all():
        lost = _inexact_integer(text, out) if inferred and pa.types.is_floating(t) else None
        if lost is None:
            return out
        raise DataError(
            f"{label}: cannot read CSV file: column {name!r} holds the integer {lost}, "
            "which a float cannot keep exactly (a change to it could go unseen): quote the "
            "column's values to read them as text"
        )
    value = text[int(np.argmin(ok))].as_py() if len(ok) else _first_unreadable(text, t)
    kind = "int" if pa.types.is_integer(t) else "float"
    if inferred:
        why = f"is {kind} in the file's first block (where CSV types are inferred) but holds"
    else:
        why = f"is read as {kind} here but holds"
    raise DataError(f"{label}: cannot read CSV file: column {name!r} {why} {value!r}")


def _inexact_integer(text: pa.Array, floats: pa.Array) -> str | None:
    """The first integer written in ``text`` that its float in ``floats`` does not equal
    (Arrow reads an integer beyond int64 as a float, keeping 16 digits of it)."""
    long = pc.match_substring_regex(text, r"^[+-]?[0-9]{16,}$")
    for i in np.flatnonzero(long.to_numpy(zero_copy_only=False)):
        written, value = text[int(i)].as_py(), floats[int(i)].as_py()
        if len(written) > 400 or not math.isfinite(value):  # beyond any float: lost
            return written[:40] + ("…" if len(written) > 40 else "")
        if decimal.Decimal(written) != decimal.Decimal(value):
            return written
    return None


def _first_unreadable(text: pa.Array, t: pa.DataType) -> Any:
    """The first text that does not cast to ``t`` (the cast of the whole failed)."""
    while len(text) > 1:
        half = len(text) // 2
        try:
            pc.cast(text.slice(0, half), t, safe=True)
            text = text.slice(half)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = text.slice(0, half)
    return text[0].as_py()


def _quoted_columns(
    path: Path, block_size: int, names: list[str], delimiter: str = ","
) -> set[str]:
    """The columns with a quoted field in the file's first block (the header aside).

    Writers that quote text and not numbers (Arrow, R's ``write.csv``) mean a quoted
    ``"1001"`` as text. Arrow's reader does not tell, so the first block's bytes are
    scanned here: a quote opening a field (at the start of a line or after a comma
    outside quotes) counts for that field's column. As Arrow reads by default, a line
    ends every row (no newlines inside values) and a doubled quote is a quote.
    """
    with pa.input_stream(str(path), compression="detect") as fh:
        raw = fh.read(block_size)
    data = np.frombuffer(raw, np.uint8)
    sep = ord(delimiter)
    # Only quotes, delimiters and line ends matter: work on their positions.
    pos = np.flatnonzero(
        (data == ord('"')) | (data == sep) | (data == ord("\n")) | (data == ord("\r"))
    )
    ch = data[pos]
    newline = (ch == ord("\n")) | (ch == ord("\r"))
    if len(raw) == block_size:  # a whole block: its last line may be cut
        keep = int(np.flatnonzero(newline)[-1]) + 1 if newline.any() else 0
        pos, ch, newline = pos[:keep], ch[:keep], newline[:keep]
    quote = ch == ord('"')
    if not quote.any():
        return set()
    before = np.cumsum(quote, dtype=np.int64) - quote  # quotes before each position
    inside = (before - np.maximum.accumulate(np.where(newline, before, 0))) % 2 == 1
    comma = (ch == sep) & ~inside
    commas = np.cumsum(comma, dtype=np.int64) - comma
    column = commas - np.maximum.accumulate(np.where(newline, commas, 0))
    line = np.cumsum(newline, dtype=np.int64) - newline
    previous = data[np.maximum(pos - 1, 0)]
    at_start = (pos == 0) | (previous == sep) | (previous == ord("\n")) | (previous == ord("\r"))
    opening = quote & ~inside & at_start & (line > 0)
    return {names[i] for i in np.unique(column[opening]) if i < len(names)}


def _open_csv(path: Path, batch_rows: int, column_types: dict | None) -> Source:
    """A CSV file, its column types inferred from the first block, without losing text.

    Arrow infers the types; every column it reads as numbers is read as text and
    converted here instead, checking that no value loses text (`number_text_ok`): a
    column whose first block holds ``02134`` or ``007`` is a string column, and a later
    block whose text would change when read as a number is an error naming it. Types in
    ``column_types`` are taken as given (numbers checked the same way).
    """
    label = str(path)
    given = dict(column_types or {})
    read, convert = csv_options(given, batch_rows)
    delimiter = "\t" if path.name.lower().endswith(TSV_SUFFIXES) else ","
    parse = pcsv.ParseOptions(delimiter=delimiter)
    try:
        with pcsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        ) as reader:
            schema = reader.schema
        quoted = _quoted_columns(path, read.block_size, schema.names, delimiter) - set(given)
        for name in quoted:  # a quoted field makes a string column (Arrow and R quote text)
            if not pa.types.is_string(schema.field(name).type):
                given[name] = pa.string()
                schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
        numbers = {f.name: f.type for f in schema if _is_number(f.type)}
        types = {**given, **{name: pa.string() for name in numbers}}  # all read as text
        inferred = {name for name in numbers if name not in given}
        if inferred:
            _, convert = csv_options(types, batch_rows)
            with pcsv.open_csv(
                path, read_options=read, parse_options=parse, convert_options=convert
            ) as reader:
                first = next(iter(reader), None)
            for name in sorted(inferred):
                if (
                    first is not None
                    and not number_text_ok(first.column(name), numbers[name]).all()
                ):
                    del numbers[name]
                    inferred.discard(name)
                    schema = schema.set(schema.get_field_index(name), pa.field(name, pa.string()))
    except _ARROW_ERRORS as exc:
        raise DataError(f"{label}: not a readable CSV file: {_reason(exc)}") from None

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        opts = pcsv.ConvertOptions(
            null_values=[""],
            strings_can_be_null=False,
            column_types=types,
            include_columns=columns or [],
        )
        with pcsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=opts
        ) as reader:
            for batch in reader:
                for name, t in numbers.items():
                    i = batch.schema.get_field_index(name)
                    if i >= 0:
                        column = _number_column(batch.column(i), t, name, label, name in inferred)
                        batch = batch.set_column(i, name, column)
                for start in range(0, batch.num_rows, batch_rows):
                    yield batch.slice(start, batch_rows)

    return Source(label, schema, batches, "CSV file")


def _open_memory(data: Any, batch_rows: int) -> Source:
    label, table = _as_table(data)

    def batches(columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
        t = table.select(columns) if columns is not None else table
        yield from t.to_batches(max_chunksize=batch_rows)

    return Source(label, table.schema, batches, "table", lambda: table.num_rows)


def _as_table(data: Any) -> tuple[str, pa.Table]:
    if isinstance(data, pa.Table):
        return "<arrow table>", data
    if isinstance(data, pa.RecordBatch):
        return "<arrow batch>", pa.Table.from_batches([data])
    if isinstance(data, np.ndarray):
        if data.dtype.names is None:
            raise DataError(
                "<numpy>: a plain array has no column names; pass a structured array "
                "or a dict of column name -> 1-D array"
            )
        data = {name: data[name] for name in data.dtype.names}
        label = "<numpy>"
    elif isinstance(data, dict):
        label = "<dict of arrays>"
    elif type(data).__name__ == "DataFrame" and hasattr(data, "to_numpy"):
        return "<DataFrame>", _from_pandas(data)
    else:
        raise DataError(f"cannot read a {type(data).__name__} as a dataset")
    try:
        return label, pa.table(
            {
                k: np.asarray(v) if not isinstance(v, pa.Array | pa.ChunkedArray) else v
                for k, v in data.items()
            }
        )
    except (*_ARROW_ERRORS, TypeError, ValueError) as exc:
        raise DataError(f"{label}: cannot convert to Arrow: {_reason(exc)}") from None


def _from_pandas(df: Any) -> pa.Table:
    """A DataFrame as a table; a named index becomes a column (it is often the id)."""
    if any(name is not None for name in df.index.names):
        df = df.reset_index()
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (*_ARROW_ERRORS, TypeError, ValueError) as exc:
        raise DataError(f"<DataFrame>: cannot convert to Arrow: {_reason(exc)}") from None
