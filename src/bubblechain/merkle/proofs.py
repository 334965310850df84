"""RFC 9162 proof verification (§2.1.3.2 inclusion, §2.1.4.2 consistency).

The verifiers follow the RFC's bit-walking algorithms literally, after
checking the proof length against the one the sizes imply so that a failure
says what is wrong in one line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .hashing import HASH_SIZE, NODE_PREFIX, short_hex
from .tree import _path_coords, consistency_coords

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A Merkle proof did not verify; the message says which check failed."""


def _as_bytes(what: str, value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ProofError(f"{what} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _check_hash(what: str, value: bytes) -> bytes:
    value = _as_bytes(what, value)
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")
    return value


def _check_proof(proof: Sequence[bytes] | None) -> list[bytes]:
    return [_check_hash(f"proof hash {i}", p) for i, p in enumerate(proof or ())]


def _check_root(what: str, computed: bytes, expected: bytes) -> None:
    if computed != expected:
        raise ProofError(
            f"computed {what} {short_hex(computed)} does not match expected {what} "
            f"{short_hex(expected)}"
        )


def _hashes(n: int) -> str:
    return f"{n} hash" if n == 1 else f"{n} hashes"


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes] | None, root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    Raises ``ProofError`` on any failure; returns None on success. ``proof``
    may be None for the empty proof (a one-leaf tree).
    """
    leaf = _check_hash("leaf hash", leaf_hash)
    expected_root = _check_hash("root", root)
    path = _check_proof(proof)
    if size <= 0:
        raise ProofError(f"a tree of size {size} has no leaf at index {index}")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is out of range for a tree of size {size}")
    need = sum(1 for _ in _path_coords(index, size))
    if len(path) != need:
        raise ProofError(
            f"inclusion proof has {_hashes(len(path))}; a leaf at index {index} "
            f"of a tree of {size} needs {need}"
        )
    # RFC 9162 §2.1.3.2, steps 2-5.
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:  # unreachable after the length check; kept from the RFC
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = _sha256(NODE_PREFIX + p + r).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check; kept from the RFC
        raise ProofError("inclusion proof is shorter than the path to the root")
    _check_root("root", r, expected_root)


def verify_consistency(
    old_size: int,
    new_size: int,
    proof: Sequence[bytes] | None,
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of ``new_root``'s.

    Raises ``ProofError`` on any failure. The edge cases follow RFC 9162,
    which defines consistency only for ``0 < old_size <= new_size``:

    * ``old_size > new_size`` fails (a log never shrinks);
    * ``old_size == 0`` always fails, even against another empty tree: an
      empty tree commits to nothing, so "consistent with it" proves nothing,
      and a verifier should start from its first non-empty checkpoint instead;
    * ``old_size == new_size > 0`` passes exactly when the proof is empty and
      the two roots are equal bytes (a tree is consistent with itself only);
      nothing is hashed, so the roots are compared as given;
    * otherwise the proof must be non-empty and is checked by §2.1.4.2.

    This is the rule the transparency-dev/merkle "additional" vectors encode.
    ``proof`` may be None for the empty proof.
    """
    path = _check_proof(proof)
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size <= 0:
        raise ProofError(
            f"old size is {old_size}: RFC 9162 defines consistency only from a non-empty tree"
        )
    if old_size == new_size:
        if path:
            raise ProofError(
                f"sizes are equal ({old_size}) but the proof has {_hashes(len(path))}, not 0"
            )
        if _as_bytes("old root", old_root) != _as_bytes("new root", new_root):
            raise ProofError(
                f"sizes are equal ({old_size}) but old root {short_hex(old_root)} "
                f"differs from new root {short_hex(new_root)}"
            )
        return
    first_root = _check_hash("old root", old_root)
    second_root = _check_hash("new root", new_root)
    need = len(consistency_coords(old_size, new_size))
    if len(path) != need:
        raise ProofError(
            f"consistency proof has {_hashes(len(path))}; a tree of {old_size} "
            f"grown to {new_size} needs {need}"
        )
    # RFC 9162 §2.1.4.2, steps 2-7.
    if old_size & (old_size - 1) == 0:
        path = [first_root, *path]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # unreachable after the length check; kept from the RFC
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = _sha256(NODE_PREFIX + c + fr).digest()
            sr = _sha256(NODE_PREFIX + c + sr).digest()
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check; kept from the RFC
        raise ProofError("consistency proof is shorter than the path to the root")
    _check_root("old root", fr, first_root)
    _check_root("new root", sr, second_root)
