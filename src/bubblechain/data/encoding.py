"""Canonical row encoding v1, vectorised over Arrow record batches.

The format is specified in docs/row-encoding.md, with a plain-Python reference
encoder that the tests run against this module. Here whole batches are encoded
into one buffer with numpy (no Python per row), already prefixed with the RFC
6962 leaf byte 0x00, so that a worker only has to SHA-256 consecutive slices.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rfc8785

from .arrow_numpy import as_arrow, as_numpy
from .errors import DataError

VERSION = 1
ENCODING = "bubblechain-row/1"

TAG_NULL = 0x00
TAG_BOOL = 0x01
TAG_INT = 0x02
TAG_UINT = 0x03
TAG_FLOAT = 0x04
TAG_DECIMAL = 0x05
TAG_STRING = 0x06
TAG_BINARY = 0x07
TAG_TIMESTAMP = 0x08
TAG_DATE = 0x09
TAG_TIME = 0x0A
TAG_DURATION = 0x0B
TAG_ABSENT = 0xFF
"""Never in a committed row: verification puts it where a committed value cannot be
rebuilt (a dropped column, a value that does not convert back), so the row differs."""

CANONICAL_NAN = 0x7FF8000000000000
ID_KINDS = ("int", "string", "null")
"""``null`` only for a dataset with no rows at all (a header-only CSV has no types)."""

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_SECONDS_NANOS = np.dtype([("s", "<i8"), ("ns", "<u4")])
_DAY_MS = 86_400_000


def _is(t: pa.DataType, *names: str) -> bool:
    return any(getattr(pa.types, f"is_{n}", lambda _t: False)(t) for n in names)


NUMERIC_KINDS = frozenset({"int", "float", "bool"})
"""The column kinds a model can take as features."""


@functools.lru_cache(maxsize=256)
def column_kind(t: pa.DataType) -> str:
    """The encoding kind of an Arrow type: what the committed schema records.

    Types that encode identically share a kind (int8…uint64 are all ``int``,
    float16…float64 are ``float``, dictionary columns take their value kind),
    so the same data read from CSV or Parquet has the same schema and root.
    Cached: it is asked twice per column of every batch read.
    """
    if pa.types.is_dictionary(t):
        return column_kind(t.value_type)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return f"decimal[{t.scale}]"
    if _is(t, "string", "large_string", "string_view"):
        return "string"
    if _is(t, "binary", "large_binary", "fixed_size_binary", "binary_view"):
        return "binary"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz is None else f"timestamp[{t.tz}]"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_duration(t):
        return "duration"
    raise DataError(f"type {t} is not supported by {ENCODING}")


def arrow_type(kind: str) -> pa.DataType:
    """An Arrow type that encodes as ``kind``: the target when converting a changed column."""
    if kind.startswith("timestamp"):
        tz = kind[len("timestamp[") : -1] if kind != "timestamp" else None
        return pa.timestamp("ns", tz=tz)
    if kind.startswith("decimal["):
        return pa.decimal128(38, int(kind[len("decimal[") : -1]))
    simple = {
        "null": pa.null(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "float": pa.float64(),
        "string": pa.large_string(),
        "binary": pa.large_binary(),
        "date": pa.date32(),
        "time": pa.time64("ns"),
        "duration": pa.duration("ns"),
    }
    return simple[kind]


def describe_schema(schema: pa.Schema, id_column: str, label: str) -> dict:
    """The committed schema: id column and every column's name and kind, sorted by name.

    Sorting by name makes the row encoding independent of the file's column order.
    """
    names = list(schema.names)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{label}: column {name!r} appears twice")
        seen.add(name)
    if id_column not in seen:
        shown = ", ".join(repr(n) for n in names[:20]) + (", …" if len(names) > 20 else "")
        raise DataError(f"{label}: no id column {id_column!r} (columns: {shown or 'none'})")
    columns = []
    for name in sorted(names):
        try:
            kind = column_kind(schema.field(name).type)
        except DataError as exc:
            raise DataError(f"{label}: column {name!r}: {exc}") from None
        columns.append({"name": name, "type": kind})
    id_kind = next(c["type"] for c in columns if c["name"] == id_column)
    if id_kind not in ID_KINDS:
        raise DataError(
            f"{label}: id column {id_column!r} is {id_kind}; ids must be integers or strings"
        )
    return {"id_column": id_column, "columns": columns}


def schema_hash(schema: dict) -> str:
    """Hex SHA-256 of the schema description in RFC 8785 canonical JSON."""
    return hashlib.sha256(rfc8785.dumps(schema)).hexdigest()


def value_columns(schema: dict) -> list[tuple[str, str]]:
    """(name, kind) of the non-id columns in encoding order."""
    return [(c["name"], c["type"]) for c in schema["columns"] if c["name"] != schema["id_column"]]


def id_kind(schema: dict) -> str:
    """Kind of the id column of a schema description."""
    return next(c["type"] for c in schema["columns"] if c["name"] == schema["id_column"])


def canonical_ids(arr: pa.Array, kind: str, label: str) -> pa.Array:
    """Ids as they are encoded and ordered: int64, or NFC-normalised large strings."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if kind == "null" and pa.types.is_null(arr.type):
        return arr
    try:
        if kind == "int" or (kind == "null" and pa.types.is_integer(arr.type)):
            if pa.types.is_uint64(arr.type) and len(arr) and pc.max(arr).as_py() >= 2**63:
                raise DataError(
                    f"{label}: id {pc.max(arr).as_py()} does not fit in a signed 64-bit id"
                )
            return arr.cast(pa.int64())
        return pc.utf8_normalize(arr.cast(pa.large_string()), "NFC")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{label}: ids are not {kind} ids ({arr.type}): {reason}") from None


@dataclass
class EncodedColumn:
    """One column of a batch, encoded: a tag per row and the payload of present values.

    When every row has the same tag (a typed column without nulls, the usual
    case) only that tag is kept, as ``uniform``: digests hash the run without
    writing it out (`digest.ColumnsDigest`) and rows are assembled from the
    scalar; ``tags`` makes the array on first use.
    """

    rows: int
    uniform: int | None = None
    fixed: np.ndarray | None = None
    var_data: np.ndarray | None = None
    var_offsets: np.ndarray | None = None
    all_present: bool = True
    _tags: np.ndarray | None = None

    @classmethod
    def of_tags(cls, tags: np.ndarray, **kw: Any) -> EncodedColumn:
        """A column whose rows' tags may differ."""
        return cls(len(tags), None, _tags=tags, **kw)

    @property
    def tags(self) -> np.ndarray:
        """One tag per row."""
        if self._tags is None:
            self._tags = np.full(self.rows, self.uniform, np.uint8)
        return self._tags

    def set_tags(self, rows: np.ndarray, tag: int) -> None:
        """Give ``rows`` (a mask or indices) the tag ``tag``: the tags may no longer be uniform."""
        self.tags[rows] = tag
        self.uniform = None

    def present(self) -> np.ndarray:
        """Which rows have a payload (neither null nor absent)."""
        if self.uniform is not None:
            return np.full(self.rows, self.uniform not in (TAG_NULL, TAG_ABSENT))
        return (self.tags != TAG_NULL) & (self.tags != TAG_ABSENT)

    def lengths(self) -> np.ndarray:
        """Encoded length of each row's value: tag, then payload when present."""
        width = 0 if self.fixed is None else self.fixed.shape[1]
        lens = np.full(self.rows, 1 + width, dtype=np.int64)
        if self.var_offsets is not None:
            lens += np.diff(self.var_offsets)
        if not self.all_present:
            lens[~self.present()] = 1
        return lens


def _le_bytes(values: np.ndarray, dtype: str) -> np.ndarray:
    n = len(values)
    return np.ascontiguousarray(values.astype(dtype, copy=False)).view(np.uint8).reshape(n, -1)


def _seconds_nanos(v: np.ndarray, per_second: int) -> np.ndarray:
    sec = np.floor_divide(v, per_second)
    out = np.empty(len(v), dtype=_SECONDS_NANOS)
    out["s"] = sec
    out["ns"] = (v - sec * per_second) * (1_000_000_000 // per_second)
    return out.view(np.uint8).reshape(len(v), 12)


def _var_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(data, offsets) of a large_string/large_binary array with no nulls, offsets rebased."""
    n = len(arr)
    _, offs_buf, data_buf = arr.buffers()
    offs = np.frombuffer(offs_buf, dtype="<i8", count=arr.offset + n + 1)[arr.offset :]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    )
    return data[offs[0] : offs[-1]], offs - offs[0]


def _filled(arr: pa.Array, value: object, has_nulls: bool) -> pa.Array:
    """``arr`` with nulls replaced by ``value``; fill_null copies even when there are none."""
    return arr.fill_null(value) if has_nulls else arr


def _encode_array(arr: pa.Array, kind: str, copy: bool = True) -> EncodedColumn:
    """Encode one column chunk; nulls get tag 0x00 and no payload.

    ``copy=False`` leaves a float column without NaN in the memory Arrow decoded it
    to, which saves a fresh worker ~20 ms of page faults per 500,000 rows × 20
    columns when it only hashes the columns; assembling rows (commit) measured
    faster from a copy.
    """
    n = len(arr)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    has_nulls = arr.null_count > 0
    if kind == "null" or arr.null_count == n:
        return EncodedColumn(n, TAG_NULL, all_present=n == 0)
    valid = as_numpy(arr.is_valid()) if has_nulls else None
    t = arr.type
    tag = TAG_NULL
    fixed: np.ndarray | None = None
    var_data = var_offsets = None
    tags: np.ndarray | None = None
    if kind == "bool":
        tag = TAG_BOOL
        fixed = as_numpy(arr, fill=False).astype(np.uint8).reshape(n, 1)
    elif kind == "int":
        if pa.types.is_uint64(t):
            v = as_numpy(arr, fill=0).astype("<u8", copy=False)
            tags = np.where(v >= 2**63, TAG_UINT, TAG_INT).astype(np.uint8)
            fixed = _le_bytes(v, "<u8")
        else:
            tag = TAG_INT
            arr = arr if pa.types.is_int64(t) else arr.cast(pa.int64())
            fixed = _le_bytes(as_numpy(arr, fill=0), "<i8")
    elif kind == "float":
        tag = TAG_FLOAT
        # A cast to the type an array already has still costs ~13 µs a call.
        v = as_numpy(arr if pa.types.is_float64(t) else arr.cast(pa.float64()), fill=0.0)
        nan = np.isnan(v)
        bits = v.view(np.uint64)
        if copy or nan.any():
            bits = bits.copy()
            bits[nan] = CANONICAL_NAN
        fixed = _le_bytes(bits, "<u8")
    elif kind.startswith("decimal"):
        tag = TAG_DECIMAL
        if t.byte_width < 16:
            arr = arr.cast(pa.decimal128(t.precision, t.scale))
            t = arr.type
        width = t.byte_width
        raw = np.frombuffer(arr.buffers()[1], dtype=np.uint8, count=(arr.offset + n) * width)
        raw = raw[arr.offset * width :].reshape(n, width)
        sign = np.where(raw[:, width - 1] >= 0x80, 0xFF, 0x00).astype(np.uint8)
        fixed = np.empty((n, 36), np.uint8)
        fixed[:, :4] = np.frombuffer(int(t.scale).to_bytes(4, "little", signed=True), np.uint8)
        fixed[:, 4 : 4 + width] = raw
        fixed[:, 4 + width :] = sign[:, None]
    elif kind in ("string", "binary"):
        tag = TAG_STRING if kind == "string" else TAG_BINARY
        if kind == "string":
            arr = pc.utf8_normalize(arr.cast(pa.large_string()), "NFC")
        else:
            arr = arr.cast(pa.large_binary())
        var_data, var_offsets = _var_buffers(
            _filled(arr, b"" if kind == "binary" else "", has_nulls)
        )
        fixed = _le_bytes(np.diff(var_offsets), "<u8")
    elif kind.startswith("timestamp") or kind == "duration":
        tag = TAG_TIMESTAMP if kind != "duration" else TAG_DURATION
        v = as_numpy(arr.view(pa.int64()), fill=0)
        fixed = _seconds_nanos(v, _PER_SECOND[t.unit])
    elif kind == "date":
        tag = TAG_DATE
        if pa.types.is_date32(t):
            v = as_numpy(arr.view(pa.int32()), fill=0).astype(np.int64)
        else:
            v = as_numpy(arr.view(pa.int64()), fill=0)
            if (v % _DAY_MS).any():
                raise DataError("a date64 value is not a whole number of days")
            v = v // _DAY_MS
        fixed = _le_bytes(v, "<i8")
    elif kind == "time":
        tag = TAG_TIME
        view = pa.int32() if pa.types.is_time32(t) else pa.int64()
        v = as_numpy(arr.view(view), fill=0).astype(np.int64)
        fixed = _le_bytes(v * (1_000_000_000 // _PER_SECOND[t.unit]), "<i8")
    else:  # pragma: no cover - column_kind rejects everything else first
        raise DataError(f"kind {kind} is not supported")
    col = (
        EncodedColumn(n, tag, fixed, var_data, var_offsets)
        if tags is None
        else EncodedColumn.of_tags(tags, fixed=fixed, var_data=var_data, var_offsets=var_offsets)
    )
    if valid is not None:
        col.set_tags(~valid, TAG_NULL)
        col.all_present = False
    return col


@dataclass
class EncodedRows:
    """Rows of one batch as leaf inputs: ``buf[offsets[i]:offsets[i+1]]`` is 0x00 ‖ row i.

    ``width`` is the common row length when every row has the same length (the
    usual case for numeric data without nulls), else 0; ``ids`` are canonical.
    """

    ids: pa.Array
    buf: np.ndarray
    offsets: np.ndarray
    width: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def slice(self, start: int, stop: int) -> EncodedRows:
        """Rows ``start:stop`` as their own EncodedRows (views, no copy of the buffer)."""
        offs = self.offsets[start : stop + 1]
        return EncodedRows(
            self.ids.slice(start, stop - start),
            self.buf[offs[0] : offs[-1]],
            offs - offs[0],
            self.width,
        )

    @staticmethod
    def concat(parts: Sequence[EncodedRows]) -> EncodedRows:
        """Concatenate batches of rows in order."""
        if len(parts) == 1:
            return parts[0]
        widths = {p.width for p in parts}
        sizes = np.cumsum([0] + [len(p.buf) for p in parts])
        offsets = np.concatenate(
            [parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, sizes, strict=False)]
        )
        ids = pa.concat_arrays([p.ids for p in parts])
        return EncodedRows(
            ids,
            np.concatenate([p.buf for p in parts]),
            offsets,
            widths.pop() if len(widths) == 1 else 0,
        )


def encode_rows(
    ids: pa.Array,
    kind_of_id: str,
    values: Sequence[tuple[pa.Array | None, str]],
    poison: Sequence[np.ndarray | None] | None = None,
) -> EncodedRows:
    """Encode rows: canonical ``ids`` then ``values`` (array or None if absent, kind) in order.

    ``poison`` marks, per value column, rows whose value must be encoded as
    TAG_ABSENT (verification uses it for values that do not convert back to the
    committed type). The id array must already be canonical (see canonical_ids).
    """
    return assemble_rows(ids, encode_pieces(ids, kind_of_id, values, poison))


def assemble_rows(ids: pa.Array, pieces: list[EncodedColumn]) -> EncodedRows:
    """The leaf inputs of rows whose columns `encode_pieces` encoded."""
    return _assemble(ids, pieces, len(ids))


def encode_pieces(
    ids: pa.Array,
    kind_of_id: str,
    values: Sequence[tuple[pa.Array | None, str]],
    poison: Sequence[np.ndarray | None] | None = None,
    copy: bool = True,
) -> list[EncodedColumn]:
    """Each column of the rows encoded on its own (see `encode_rows`), not yet assembled.

    ``copy=False``: only to be read (hashed), so values may stay where Arrow has them.
    """
    n = len(ids)
    pieces = [_encode_array(ids, kind_of_id, copy)]
    for j, (arr, kind) in enumerate(values):
        if arr is None:
            pieces.append(EncodedColumn(n, TAG_ABSENT, all_present=n == 0))
            continue
        bad = poison[j] if poison is not None else None
        if bad is not None and bad.any():
            arr = pc.if_else(as_arrow(bad), pa.nulls(n, arr.type), arr)
            piece = _encode_array(arr, kind, copy)
            piece.set_tags(bad, TAG_ABSENT)
            piece.all_present = False
        else:
            piece = _encode_array(arr, kind, copy)
        pieces.append(piece)
    return pieces


def feed_rows(
    ids: pa.Array, pieces: list[EncodedColumn], runs: Sequence[tuple[int, int, Any]]
) -> None:
    """Feed each ``(start, stop, hasher)`` run the leaf inputs of rows start..stop, in order.

    Fixed-width rows are assembled a cache-sized block at a time into one reused
    buffer and hashed at once, so the batch's whole encoding is never written
    out to memory and read back: a training worker checks a partition at about
    the speed of SHA-256 itself. The bytes fed are exactly `encode_rows`'s.
    """
    n = len(ids)
    if not _is_fixed(pieces):
        enc = _assemble(ids, pieces, n)
        for a, b, h in runs:
            h.update(enc.buf[enc.offsets[a] : enc.offsets[b]])
        return
    block, targets = _fixed_layout(pieces, n, min(n, _BLOCK_ROWS))
    varying = [(t, v) for t, v in targets if not isinstance(v, int)]
    for t, v in targets:
        if isinstance(v, int):
            t[:] = v
    raw = block.view(np.uint8)
    width = block.dtype.itemsize
    for a, b, h in runs:
        for s in range(a, b, _BLOCK_ROWS):
            m = min(b - s, _BLOCK_ROWS)
            for t, v in varying:
                t[:m] = v[s : s + m]
            h.update(raw[: m * width])


_BLOCK_ROWS = 4096
"""Rows written at a time in the fixed-width path, so the output block stays in cache."""


def _payload_field(w: int) -> str:
    return {1: "u1", 8: "<u8"}.get(w, f"V{w}")


def _is_fixed(pieces: list[EncodedColumn]) -> bool:
    return all(p.all_present and p.var_data is None for p in pieces)


def _fixed_layout(
    pieces: list[EncodedColumn], n: int, rows: int
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray | int]]]:
    """A packed record array of ``rows`` rows, and (field, source) pairs that fill it.

    A source is a column of ``n`` values, or an int for a tag that every row shares.
    """
    fields: list[tuple[str, str]] = [("h", "V2")]
    sources: list[tuple[str, np.ndarray | int]] = []
    for j, p in enumerate(pieces):
        fields.append((f"t{j}", "u1"))
        sources.append((f"t{j}", p.uniform if p.uniform is not None else p.tags))
        if p.fixed is not None:
            w = p.fixed.shape[1]
            kind = _payload_field(w)
            fields.append((f"v{j}", kind))
            sources.append((f"v{j}", np.ascontiguousarray(p.fixed).view(kind).reshape(n)))
    out = np.empty(rows, np.dtype(fields))
    out["h"] = np.frombuffer(bytes([0x00, VERSION]), "V2")[0]
    return out, [(out[name], values) for name, values in sources]


def _assemble_fixed(ids: pa.Array, pieces: list[EncodedColumn], n: int) -> EncodedRows:
    """Every row has the same length: fill a packed record array, block by block."""
    out, targets = _fixed_layout(pieces, n, n)
    for a in range(0, n, _BLOCK_ROWS):
        b = a + _BLOCK_ROWS
        for target, values in targets:
            target[a:b] = values if isinstance(values, int) else values[a:b]
    width = out.dtype.itemsize
    buf = out.view(np.uint8).reshape(-1)
    return EncodedRows(ids, buf, np.arange(n + 1, dtype=np.int64) * width, width)


def _assemble(ids: pa.Array, pieces: list[EncodedColumn], n: int) -> EncodedRows:
    if _is_fixed(pieces):
        return _assemble_fixed(ids, pieces, n)

    lengths = [p.lengths() for p in pieces]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(2 + np.sum(lengths, axis=0), out=offsets[1:])
    buf = np.empty(int(offsets[-1]), np.uint8)
    starts = offsets[:-1]
    buf[starts] = 0x00
    buf[starts + 1] = VERSION
    pos = starts + 2
    for p, lens in zip(pieces, lengths, strict=True):
        buf[pos] = p.uniform if p.uniform is not None else p.tags
        if p.fixed is not None:
            present = None if p.all_present else p.present()
            at = pos + 1 if present is None else pos[present] + 1
            fixed = p.fixed if present is None else p.fixed[present]
            for k in range(fixed.shape[1]):
                buf[at + k] = fixed[:, k]
        if p.var_data is not None and len(p.var_data):
            w = p.fixed.shape[1]
            sizes = np.diff(p.var_offsets)
            shift = np.repeat(pos + 1 + w - p.var_offsets[:-1], sizes)
            buf[shift + np.arange(len(p.var_data))] = p.var_data
        pos = pos + lens
    return EncodedRows(ids, buf, offsets, 0)
