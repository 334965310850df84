"""Canonical JSON (RFC 8785, JCS) for every signed record.

`rfc8785` is the reference encoder; it is pure Python and ~4x slower than the
C `json` encoder. For records with ASCII keys, safe integers and floats that both
write in plain decimal notation with the same shortest digits (non-integral, 1e-4
<= |x| < 1e16: Python's repr and ECMAScript's Number-to-string agree there) the
two produce identical bytes, so the fast path is used there and JCS otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

MAX_SAFE = 2**53 - 1
"""The largest integer a JSON number (an IEEE double) holds exactly."""
_fast = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _fast_path_ok(obj: Any) -> bool:
    """True when `json` with sorted keys gives the JCS bytes for `obj`."""
    stack = [obj]
    while stack:
        o = stack.pop()
        t = type(o)
        if t is str or o is None or t is bool:
            continue
        if t is int:
            if -MAX_SAFE <= o <= MAX_SAFE:
                continue
            return False
        if t is float:
            if 1e-4 <= abs(o) < 1e16 and not o.is_integer():
                continue
            return False
        if t is dict:
            for k, v in o.items():
                if type(k) is not str or not k.isascii():
                    return False
                stack.append(v)
            continue
        if t is list or t is tuple:
            stack.extend(o)
            continue
        return False  # anything else: let rfc8785 decide
    return True


def dumps(obj: Any) -> bytes:
    """Encode `obj` as RFC 8785 canonical JSON bytes."""
    if _fast_path_ok(obj):
        try:
            return _fast(obj).encode()
        except UnicodeEncodeError:
            raise ValueError(
                "not representable as canonical JSON: a string holds a lone UTF-16 surrogate"
            ) from None
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as e:
        raise ValueError(f"not representable as canonical JSON: {e}") from e


def _parse_int(text: str) -> int | float:
    # JCS writes integral floats beyond 2**53 without a fraction; they are still numbers.
    n = int(text)
    return n if -MAX_SAFE <= n <= MAX_SAFE else float(n)


# One decoder for every call: `json.loads` with a hook builds a new one each time.
_decode = json.JSONDecoder(parse_int=_parse_int).decode


def decode(data: bytes) -> Any:
    """Decode JSON whose bytes are known to be canonical (checked by `loads` before):
    the same value `loads` gives, without encoding it again to compare."""
    return _decode(str(data, "utf-8"))  # canonical JSON is UTF-8, nothing else


def loads(data: bytes) -> Any:
    """Decode canonical JSON, refusing any other encoding of the same value."""
    try:
        obj = decode(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not valid JSON: {e}") from e
    except RecursionError:
        raise ValueError("JSON is nested too deeply") from None
    try:
        again = dumps(obj)
    except RecursionError:
        raise ValueError("JSON is nested too deeply") from None
    if again != bytes(data):
        raise ValueError("JSON is not in canonical (RFC 8785) form")
    return obj
