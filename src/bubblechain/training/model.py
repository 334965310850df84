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


def model_file(path: Path) -> tuple[bytes, str]:
    """A model file's bytes and SHA-256 (hex): checked against `model.final` before
    anything in the file is trusted, or even parsed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"model file {path} is unreadable: {e.strerror}") from None
    return data, hashlib.sha256(data).hexdigest()


def parse_model(data: bytes, path: Path) -> tuple[Params, dict[str, Any]]:
    """(params, meta) of a model file's bytes, with a clear error if they are not one."""
    try:
        arrays = decode_arrays(data)
        meta = json.loads(str(arrays.pop(_META)))
        if not isinstance(meta, dict):
            raise ValueError("its metadata is not an object")
    except Exception as e:  # any malformed input: the decoder's error names what broke
        raise UsageError(
            f"{path} is not a bubblechain model file: {type(e).__name__}: {e}"
        ) from None
    return arrays, meta


def read_model(path: Path) -> tuple[Params, dict[str, Any], str]:
    """(params, meta, sha256 hex) of a model file, with a clear error if it is not one."""
    data, digest = model_file(path)
    return (*parse_model(data, path), digest)
