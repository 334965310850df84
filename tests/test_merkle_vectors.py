"""transparency-dev/merkle RFC 6962 test vectors: every file, happy and adversarial.

The vectors live in ``shared/vectors/rfc6962`` beside the repository (they
are not copied in); each JSON file is its own test id.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CT_LEAVES

from bubblechain import merkle

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "rfc6962"
MISSING = f"RFC 6962 vectors not found at {VECTORS}: they live in ../shared beside the repo"

# The leaves behind the numbered happy-path vectors (the CT / RFC 6962 test tree).
RFC6962_LEAVES = CT_LEAVES
LEAF_HASHES = [merkle.leaf_hash(d) for d in RFC6962_LEAVES]


def _params(kind: str) -> list[Any]:
    if not VECTORS.is_dir():
        return [pytest.param(None, id="vectors-missing")]
    base = VECTORS / kind
    return [
        pytest.param(p, id=p.relative_to(base).as_posix()) for p in sorted(base.rglob("*.json"))
    ]


def _load(path: Path | None) -> dict[str, Any]:
    if path is None:
        pytest.skip(MISSING)
    return json.loads(path.read_text())


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(value: list[str] | None) -> list[bytes] | None:
    return None if value is None else [_b64(p) for p in value]


def _is_numbered_happy_path(path: Path) -> bool:
    return path.name == "happy-path.json" and path.parent.name.isdigit()


def test_vector_suite_is_complete() -> None:
    if not VECTORS.is_dir():
        pytest.skip(MISSING)
    assert len(list((VECTORS / "inclusion").rglob("*.json"))) >= 90
    assert len(list((VECTORS / "consistency").rglob("*.json"))) >= 50


@pytest.mark.parametrize("path", _params("inclusion"))
def test_inclusion_vector(path: Path | None) -> None:
    v = _load(path)
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v["proof"]), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _params("consistency"))
def test_consistency_vector(path: Path | None) -> None:
    v = _load(path)
    args = (v["size1"], v["size2"], _proof(v["proof"]), _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in _params("inclusion")
        if p.values[0] is None or _is_numbered_happy_path(p.values[0])
    ],
)
def test_inclusion_proof_generation_matches_vector(path: Path | None) -> None:
    """Our generator emits the same bytes as the independent implementation."""
    v = _load(path)
    leaves = LEAF_HASHES[: v["treeSize"]]
    assert _b64(v["leafHash"]) == leaves[v["leafIdx"]]
    assert merkle.root(leaves) == _b64(v["root"])
    assert merkle.inclusion_proof(leaves, v["leafIdx"]) == (_proof(v["proof"]) or [])


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in _params("consistency")
        if p.values[0] is None or _is_numbered_happy_path(p.values[0])
    ],
)
def test_consistency_proof_generation_matches_vector(path: Path | None) -> None:
    v = _load(path)
    leaves = LEAF_HASHES[: v["size2"]]
    assert merkle.root(leaves[: v["size1"]]) == _b64(v["root1"])
    assert merkle.root(leaves) == _b64(v["root2"])
    assert merkle.consistency_proof(leaves, v["size1"]) == (_proof(v["proof"]) or [])
    tree = merkle.CompactTree()
    tree.extend(leaves)
    assert tree.root() == _b64(v["root2"])
