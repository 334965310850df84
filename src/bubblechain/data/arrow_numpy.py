"""Arrow arrays as numpy arrays without waking pyarrow's pandas integration.

pyarrow's `to_numpy` (and `np.asarray` of an array) initialise its pandas shim,
which imports pandas wherever pandas is installed: about 250 ms of CPU in every
fresh process, which for a training worker is more than verifying all its
partitions costs. Numbers and booleans without nulls are read straight from
the Arrow buffers instead (numbers without a copy); anything else still goes
through `to_numpy`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _dtype(t: pa.DataType) -> np.dtype | None:
    """The numpy dtype laid out like a fixed-width number type, or None."""
    if pa.types.is_floating(t):
        return np.dtype(f"f{t.bit_width // 8}")
    if pa.types.is_integer(t):
        return np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")
    return None


def as_numpy(arr: pa.Array | pa.ChunkedArray, fill: object = None) -> np.ndarray:
    """The values of ``arr``, as `to_numpy(zero_copy_only=False)` gives them.

    With ``fill``, nulls read as ``fill``, as after Arrow's `fill_null` (which, given a
    Python value, wakes the shim too). Read-only where it is a view of Arrow's
    memory, as a zero-copy `to_numpy` is.
    """
    if isinstance(arr, pa.ChunkedArray):
        if arr.num_chunks == 1:
            return as_numpy(arr.chunk(0), fill)
        if arr.num_chunks and (arr.null_count == 0 or fill is not None):
            return np.concatenate([as_numpy(c, fill) for c in arr.chunks])
        return (arr.fill_null(fill) if fill is not None else arr).to_numpy()
    n, t = len(arr), arr.type
    dtype = _dtype(t)
    boolean = pa.types.is_boolean(t)
    if (dtype is None and not boolean) or (arr.null_count and fill is None):
        return (arr.fill_null(fill) if fill is not None else arr).to_numpy(zero_copy_only=False)
    if n == 0:
        values = np.empty(0, bool if boolean else dtype)
    elif boolean:
        values = _bits(arr.buffers()[1], arr.offset, n)
    else:
        values = np.frombuffer(arr.buffers()[1], dtype=dtype, count=arr.offset + n)[arr.offset :]
    if arr.null_count:
        valid = _bits(arr.buffers()[0], arr.offset, n)
        return np.where(valid, values, values.dtype.type(fill))
    if not boolean:
        values.flags.writeable = False
    return values


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """Bits offset..offset+n of an Arrow bitmap (least significant bit first), as booleans."""
    packed = np.frombuffer(buf, dtype=np.uint8)
    return np.unpackbits(packed, count=offset + n, bitorder="little")[offset:].view(bool)


def as_arrow(values: np.ndarray) -> pa.Array:
    """A 1-d numpy array of numbers or booleans as an Arrow array, without `pa.array`'s shim.

    Numbers share the numpy array's memory; anything else goes through `pa.array`.
    """
    v = np.asarray(values)
    if v.ndim != 1 or not v.dtype.isnative:
        return pa.array(v)
    if v.dtype.kind in "iuf":
        v = np.ascontiguousarray(v)
        return pa.Array.from_buffers(pa.from_numpy_dtype(v.dtype), len(v), [None, pa.py_buffer(v)])
    if v.dtype.kind == "b":
        bits = np.packbits(v, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(v), [None, pa.py_buffer(bits)])
    return pa.array(v)
