"""Model files: the trained params plus what predicting needs, hashed for `model.final`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..algorithms.base import Params, decode_arrays, encode_arrays
from ..errors import UsageError
from ..fsutil import write_atomic

_META = "__bubblechain_model__"


def model_bytes(params: Params, meta: dict[str, Any]) -> bytes:
    return encode_arrays({**params, _META: np.array(json.dumps(meta, sort_keys=True))})


def write_model(path: Path, params: Params, meta: dict[str, Any]) -> str:
    """Write the model file atomically; return its SHA-256 (hex)."""
    data = model_bytes(params, meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def read_model(path: Path) -> tuple[Params, dict[str, Any], str]:
    """(params, meta, sha256 hex) of a model file, with a clear error if it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"model file {path} is unreadable: {e.strerror}") from None
    try:
        arrays = decode_arrays(data)
        meta = json.loads(str(arrays.pop(_META)))
    except (ValueError, KeyError) as e:
        raise UsageError(f"{path} is not a bubblechain model file: {e}") from None
    return arrays, meta, hashlib.sha256(data).hexdigest()
