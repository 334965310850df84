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


def as_numpy(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of ``arr``, as `to_numpy(zero_copy_only=False)` gives them.

    Read-only where it is a view of Arrow's memory, as a zero-copy `to_numpy` is.
    """
    if isinstance(arr, pa.ChunkedArray):
        if arr.num_chunks == 1:
            return as_numpy(arr.chunk(0))
        if arr.num_chunks and arr.null_count == 0:
            return np.concatenate([as_numpy(c) for c in arr.chunks])
        return arr.to_numpy()
    n, t = len(arr), arr.type
    if arr.null_count:
        return arr.to_numpy(zero_copy_only=False)
    dtype = _dtype(t)
    if dtype is not None:
        if n == 0:
            return np.empty(0, dtype)
        data = np.frombuffer(arr.buffers()[1], dtype=dtype, count=arr.offset + n)
        return data[arr.offset :]
    if pa.types.is_boolean(t):
        if n == 0:
            return np.empty(0, bool)
        bits = np.frombuffer(arr.buffers()[1], dtype=np.uint8)
        return np.unpackbits(bits, count=arr.offset + n, bitorder="little")[arr.offset :].view(bool)
    return arr.to_numpy(zero_copy_only=False)


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
