"""Keep a worker process's freed heap for its next task instead of handing it back.

A map task allocates its temporaries (several MB per 100,000 rows) and frees them
when it returns. glibc gives the top of the heap back to the kernel after such a
free and maps blocks over its (adaptive) threshold afresh, so every task faults
the same memory in again: about 1,250 page faults, 3 ms of a 10 ms logistic task
on a VM. With both thresholds raised, the freed memory is reused. Only for the
local engine's own processes: Dask's nanny deliberately sets the trim threshold
low so that its memory monitor sees memory returned.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_BYTES = 256 << 20
MMAP_BYTES = 32 << 20  # glibc's largest allowed mmap threshold on 64-bit


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds in this process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mapped = mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)
    trimmed = mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)  # set even if the first was refused
    return bool(mapped and trimmed)
