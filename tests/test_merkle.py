"""bubblechain.merkle against a naive RFC 6962 / RFC 9162 definition written out here.

The reference functions below are the RFC's recursive MTH, PATH and
PROOF/SUBPROOF, transcribed literally (memoised so that hundreds of sizes stay
fast); the library's level-by-level builder must agree with them byte for byte.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import numpy as np
import pytest
from conftest import CT_LEAVES
from hypothesis import given, settings
from hypothesis import strategies as st

from bubblechain import merkle
from bubblechain.merkle import CompactTree, ProofError

# --- naive reference (RFC 6962 §2.1, RFC 9162 §2.1) --------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """Largest power of two strictly less than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


class Naive:
    """The RFC's recursive definitions over the entries ``data``."""

    def __init__(self, data: list[bytes]) -> None:
        self.data = data
        self.mth: Callable[[int, int], bytes] = functools.lru_cache(maxsize=None)(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return _sha(b"")
        if n == 1:
            return _sha(b"\x00" + self.data[lo])
        k = _split(n)
        return _sha(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n <= 1:
            return []
        k = _split(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def root(self, n: int | None = None) -> bytes:
        return self.mth(0, len(self.data) if n is None else n)

    def inclusion(self, m: int, n: int | None = None) -> list[bytes]:
        return self.path(m, 0, len(self.data) if n is None else n)

    def consistency(self, m: int, n: int | None = None) -> list[bytes]:
        return self.subproof(m, 0, len(self.data) if n is None else n, True)


def inclusion_shape(m: int, n: int) -> tuple[str, ...]:
    """Side (L/R) of each PATH element: all that the RFC verifier's arithmetic depends on."""
    if n <= 1:
        return ()
    k = _split(n)
    if m < k:
        return (*inclusion_shape(m, k), "R")
    return (*inclusion_shape(m - k, n - k), "L")


def consistency_shape(m: int, n: int, b: bool = True) -> tuple[bool, tuple[str, ...]]:
    """(old root is the seed, sides of the later elements), from SUBPROOF."""
    if m == n:
        return b, ()
    k = _split(n)
    if m <= k:
        seed, sides = consistency_shape(m, k, b)
        return seed, (*sides, "R")
    seed, sides = consistency_shape(m - k, n - k, False)
    return seed, (*sides, "L")


def entries(n: int, salt: bytes = b"") -> list[bytes]:
    return [salt + i.to_bytes(4, "big") for i in range(n)]


def leaves(data: list[bytes]) -> list[bytes]:
    return [merkle.leaf_hash(d) for d in data]


@functools.lru_cache(maxsize=64)
def fixture(n: int) -> tuple[Naive, list[bytes]]:
    data = entries(n, b"bubblechain")
    return Naive(data), leaves(data)


def flip(h: bytes, bit: int) -> bytes:
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def rejected(verify: Callable[..., None], *args: object) -> bool:
    """True when ``verify(*args)`` raises ProofError."""
    try:
        verify(*args)
    except ProofError:
        return True
    return False


SIZES = st.one_of(st.integers(1, 300), st.integers(301, 5000))
slow_ok = settings(deadline=None, max_examples=150)

# --- hashing primitives --------------------------------------------------------------------


def test_primitives_match_rfc_definitions() -> None:
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.leaf_hash(b"") == _sha(b"\x00")
    assert merkle.leaf_hash(b"abc") == _sha(b"\x00abc")
    a, b = _sha(b"a"), _sha(b"b")
    assert merkle.node_hash(a, b) == _sha(b"\x01" + a + b)
    assert merkle.HASH_SIZE == 32
    assert issubclass(ProofError, ValueError)


# Roots of the RFC 6962 / Certificate Transparency test tree, sizes 1..8.
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(1, 9))
def test_certificate_transparency_roots(n: int) -> None:
    assert merkle.root(leaves(CT_LEAVES[:n])).hex() == CT_ROOTS[n - 1]


# --- bulk root -----------------------------------------------------------------------------


def test_root_matches_naive_for_every_size_up_to_300() -> None:
    naive, hashes = fixture(300)
    tree = CompactTree()
    for n in range(301):
        assert merkle.root(hashes[:n]) == naive.root(n), n
        if n:
            tree.append(hashes[n - 1])
        assert tree.root() == naive.root(n), n


@pytest.mark.parametrize("n", [511, 512, 513, 1000, 4095, 4096, 4097, 65537])
def test_root_matches_naive_at_larger_sizes(n: int) -> None:
    data = entries(n)
    assert merkle.root(leaves(data)) == Naive(data).root()


def test_root_accepts_arrays_and_buffers() -> None:
    hashes = fixture(37)[1]
    expected = merkle.root(hashes)
    flat = b"".join(hashes)
    assert merkle.root_from_buffer(flat) == expected
    assert merkle.root_from_buffer(memoryview(flat)) == expected
    assert merkle.root_from_buffer(bytearray(flat)) == expected
    assert merkle.root(np.frombuffer(flat, dtype=np.uint8).reshape(-1, 32)) == expected
    assert merkle.root(tuple(hashes)) == expected
    assert merkle.root_from_buffer(b"") == merkle.root([]) == merkle.EMPTY_ROOT
    for n in range(1, 9):
        assert merkle.root_from_buffer(b"".join(hashes[:n])) == merkle.root(hashes[:n])


def test_root_rejects_malformed_input() -> None:
    with pytest.raises(ValueError, match="leaf hash 1 is 3 bytes, not 32"):
        merkle.root([merkle.leaf_hash(b"a"), b"abc"])
    with pytest.raises(ValueError, match="multiple of 32"):
        merkle.root_from_buffer(b"\x00" * 33)
    with pytest.raises(TypeError, match="root_from_buffer"):
        merkle.root(b"\x00" * 64)
    with pytest.raises(ValueError, match="shape"):
        merkle.root(np.zeros((4, 16), dtype=np.uint8))


# --- proof generation against the naive definitions ---------------------------------------


def test_inclusion_proofs_for_every_index_up_to_64() -> None:
    for n in range(1, 65):
        naive, hashes = fixture(n)
        for m in range(n):
            assert merkle.inclusion_proof(hashes, m) == naive.inclusion(m), (m, n)


def test_consistency_proofs_for_every_pair_up_to_40() -> None:
    for n in range(1, 41):
        naive, hashes = fixture(n)
        for m in range(1, n + 1):
            assert merkle.consistency_proof(hashes, m) == naive.consistency(m), (m, n)


@slow_ok
@given(data=st.data(), n=SIZES)
def test_inclusion_proof_matches_naive(data: st.DataObject, n: int) -> None:
    naive, hashes = fixture(n)
    m = data.draw(st.integers(0, n - 1), label="index")
    proof = merkle.inclusion_proof(hashes, m)
    assert proof == naive.inclusion(m)
    merkle.verify_inclusion(hashes[m], m, n, proof, naive.root())


@slow_ok
@given(data=st.data(), n=SIZES)
def test_consistency_proof_matches_naive(data: st.DataObject, n: int) -> None:
    naive, hashes = fixture(n)
    m = data.draw(st.integers(1, n), label="old_size")
    proof = merkle.consistency_proof(hashes, m)
    assert proof == naive.consistency(m)
    merkle.verify_consistency(m, n, proof, naive.root(m), naive.root())


def test_proof_builders_reject_out_of_range() -> None:
    hashes = fixture(5)[1]
    for index in (-1, 5, 6):
        with pytest.raises(ValueError, match=f"leaf index {index} is out of range"):
            merkle.inclusion_proof(hashes, index)
    with pytest.raises(ValueError, match="out of range"):
        merkle.inclusion_proof([], 0)
    for old in (-1, 0, 6):
        with pytest.raises(ValueError, match=f"old size {old} is out of range"):
            merkle.consistency_proof(hashes, old)
    assert merkle.consistency_proof(hashes, 5) == []
    assert merkle.inclusion_proof(hashes[:1], 0) == []


def test_proof_builders_accept_arrays() -> None:
    hashes = fixture(21)[1]
    arr = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, 32)
    assert merkle.inclusion_proof(arr, 7) == merkle.inclusion_proof(hashes, 7)
    assert merkle.consistency_proof(arr, 13) == merkle.consistency_proof(hashes, 13)


# --- verification: accepts honest proofs, rejects every tampering --------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 13])
def test_inclusion_rejects_every_single_bit_flip(n: int) -> None:
    naive, hashes = fixture(n)
    r = naive.root()
    for m in range(n):
        proof = naive.inclusion(m)
        merkle.verify_inclusion(hashes[m], m, n, proof, r)
        for bit in range(256):
            assert rejected(merkle.verify_inclusion, flip(hashes[m], bit), m, n, proof, r)
            assert rejected(merkle.verify_inclusion, hashes[m], m, n, proof, flip(r, bit))
            for j in range(len(proof)):
                bad = [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]]
                assert rejected(merkle.verify_inclusion, hashes[m], m, n, bad, r)


@pytest.mark.parametrize("n", [2, 3, 7, 8, 13])
def test_consistency_rejects_every_single_bit_flip(n: int) -> None:
    naive, _ = fixture(n)
    new = naive.root()
    for m in range(1, n):
        old, proof = naive.root(m), naive.consistency(m)
        merkle.verify_consistency(m, n, proof, old, new)
        for bit in range(256):
            assert rejected(merkle.verify_consistency, m, n, proof, flip(old, bit), new)
            assert rejected(merkle.verify_consistency, m, n, proof, old, flip(new, bit))
            for j in range(len(proof)):
                bad = [*proof[:j], flip(proof[j], bit), *proof[j + 1 :]]
                assert rejected(merkle.verify_consistency, m, n, bad, old, new)


@slow_ok
@given(data=st.data(), n=SIZES)
def test_inclusion_rejects_random_bit_flip(data: st.DataObject, n: int) -> None:
    naive, hashes = fixture(n)
    m = data.draw(st.integers(0, n - 1), label="index")
    proof = naive.inclusion(m)
    fields = [hashes[m], *proof, naive.root()]
    which = data.draw(st.integers(0, len(fields) - 1), label="field")
    fields[which] = flip(fields[which], data.draw(st.integers(0, 255), label="bit"))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(fields[0], m, n, fields[1:-1], fields[-1])


@slow_ok
@given(data=st.data(), n=st.integers(2, 5000))
def test_consistency_rejects_random_bit_flip(data: st.DataObject, n: int) -> None:
    naive, _ = fixture(n)
    m = data.draw(st.integers(1, n - 1), label="old_size")
    fields = [naive.root(m), *naive.consistency(m), naive.root()]
    which = data.draw(st.integers(0, len(fields) - 1), label="field")
    fields[which] = flip(fields[which], data.draw(st.integers(0, 255), label="bit"))
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, fields[1:-1], fields[0], fields[-1])


@slow_ok
@given(data=st.data(), n=SIZES)
def test_inclusion_wrong_index_or_size(data: st.DataObject, n: int) -> None:
    """A wrong (index, size) verifies exactly when the RFC path has the same shape.

    The verifier only sees left/right turns, so e.g. leaf 0 of 5 and leaf 0 of
    6 share a proof; the size is authenticated by the signed checkpoint.
    """
    naive, hashes = fixture(n)
    m = data.draw(st.integers(0, n - 1), label="index")
    m2 = data.draw(st.integers(-2, 2 * n + 2), label="claimed index")
    n2 = data.draw(st.sampled_from([n, n - 1, n + 1, 2 * n, n // 2, m2 + 1]), label="claimed size")
    if (m2, n2) == (m, n):
        return
    proof, r = naive.inclusion(m), naive.root()
    should_pass = 0 <= m2 < n2 and inclusion_shape(m2, n2) == inclusion_shape(m, n)
    if should_pass:
        merkle.verify_inclusion(hashes[m], m2, n2, proof, r)
    else:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(hashes[m], m2, n2, proof, r)


def test_inclusion_wrong_index_always_fails_in_the_same_tree() -> None:
    for n in range(1, 40):
        naive, hashes = fixture(n)
        for m in range(n):
            proof = naive.inclusion(m)
            for m2 in range(-1, n + 1):
                if m2 != m:
                    assert rejected(merkle.verify_inclusion, hashes[m], m2, n, proof, naive.root())


@slow_ok
@given(data=st.data(), n=st.integers(2, 2000))
def test_consistency_wrong_sizes(data: st.DataObject, n: int) -> None:
    """Wrong sizes verify exactly when SUBPROOF has the same shape (see inclusion)."""
    naive, _ = fixture(n)
    m = data.draw(st.integers(1, n - 1), label="old_size")
    m2 = data.draw(st.sampled_from([m, m - 1, m + 1, 2 * m, m // 2, 0]), label="claimed old")
    n2 = data.draw(st.sampled_from([n, n - 1, n + 1, 2 * n, n // 2, m2]), label="claimed new")
    if (m2, n2) == (m, n):
        return
    proof, old, new = naive.consistency(m), naive.root(m), naive.root()
    should_pass = 0 < m2 < n2 and consistency_shape(m2, n2) == consistency_shape(m, n)
    if should_pass:
        merkle.verify_consistency(m2, n2, proof, old, new)
    else:
        with pytest.raises(ProofError):
            merkle.verify_consistency(m2, n2, proof, old, new)


def test_consistency_swapped_or_truncated() -> None:
    naive, _ = fixture(11)
    for m in range(1, 11):
        old, new, proof = naive.root(m), naive.root(), naive.consistency(m)
        assert rejected(merkle.verify_consistency, m, 11, proof, new, old)
        assert rejected(merkle.verify_consistency, m, 11, proof[:-1], old, new)
        assert rejected(merkle.verify_consistency, m, 11, [*proof, proof[-1]], old, new)


def test_consistency_edge_cases() -> None:
    """0 < old <= new; equal sizes need an empty proof and equal roots; old 0 always fails."""
    naive, _ = fixture(4)
    r1, r4 = naive.root(1), naive.root(4)
    merkle.verify_consistency(4, 4, [], r4, r4)
    merkle.verify_consistency(4, 4, None, r4, r4)
    merkle.verify_consistency(1, 1, [], r1, r1)
    cases = [
        (4, 4, [], r4, r1, "sizes are equal \\(4\\) but old root"),
        (4, 4, [r1], r4, r4, "proof has 1 hash, not 0"),
        (0, 0, [], merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, "old size is 0"),
        (0, 4, [], merkle.EMPTY_ROOT, r4, "old size is 0"),
        (0, 4, naive.consistency(1, 4), merkle.EMPTY_ROOT, r4, "old size is 0"),
        (4, 1, [], r4, r1, "old size 4 is larger than new size 1"),
        (1, 4, [], r1, r4, "consistency proof has 0 hashes; a tree of 1 grown to 4 needs 2"),
    ]
    for old_size, new_size, proof, old, new, message in cases:
        with pytest.raises(ProofError, match=message):
            merkle.verify_consistency(old_size, new_size, proof, old, new)


def test_error_messages_say_what_failed() -> None:
    naive, hashes = fixture(8)
    proof, r = naive.inclusion(5), naive.root()
    with pytest.raises(ProofError) as err:
        merkle.verify_inclusion(hashes[5], 5, 8, proof[:2], r)
    assert (
        str(err.value) == "inclusion proof has 2 hashes; a leaf at index 5 of a tree of 8 needs 3"
    )
    with pytest.raises(
        ProofError, match=r"^computed root [0-9a-f]{12}… does not match expected root "
    ):
        merkle.verify_inclusion(hashes[4], 5, 8, proof, r)
    with pytest.raises(ProofError, match="proof hash 1 is 31 bytes, not 32"):
        merkle.verify_inclusion(hashes[5], 5, 8, [proof[0], proof[1][:31], proof[2]], r)
    with pytest.raises(ProofError, match="leaf hash must be bytes, got str"):
        merkle.verify_inclusion("00" * 32, 5, 8, proof, r)  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="a tree of size 0 has no leaf"):
        merkle.verify_inclusion(hashes[0], 0, 0, [], merkle.EMPTY_ROOT)
    with pytest.raises(ProofError, match=r"computed old root .* does not match expected old root"):
        merkle.verify_consistency(6, 8, naive.consistency(6), naive.root(5), r)
    for exc in (err.value,):
        assert "\n" not in str(exc)


# --- CompactTree ---------------------------------------------------------------------------


def test_compact_tree_basics() -> None:
    tree = CompactTree()
    assert tree.size == 0
    assert tree.root() == merkle.EMPTY_ROOT
    assert tree.to_bytes() == bytes(8)
    assert CompactTree.from_bytes(bytes(8)) == tree
    hashes = fixture(6)[1]
    tree.extend(hashes)
    assert tree.size == 6
    assert len(tree.to_bytes()) == 8 + 2 * 32  # 6 = 4 + 2: two perfect subtrees
    snapshot = tree.copy()
    tree.append(hashes[0])
    assert snapshot.size == 6 and snapshot.root() == merkle.root(hashes)
    assert tree.root() == merkle.root([*hashes, hashes[0]])
    assert "size=7" in repr(tree)
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(ValueError, match="not 32"):
        tree.extend([hashes[0], b"short"])


def test_compact_tree_serialisation_round_trips_at_every_size() -> None:
    naive, hashes = fixture(200)
    tree = CompactTree()
    for n in range(201):
        if n:
            tree.append(hashes[n - 1])
        blob = tree.to_bytes()
        assert int.from_bytes(blob[:8], "big") == n
        assert len(blob) == 8 + 32 * n.bit_count()
        reopened = CompactTree.from_bytes(blob)
        assert reopened == tree and reopened.size == n and reopened.root() == naive.root(n)
        if n < 200:
            reopened.append(hashes[n])  # reopened trees keep growing correctly
            assert reopened.root() == naive.root(n + 1)


def test_compact_tree_from_bytes_rejects_bad_lengths() -> None:
    tree = CompactTree()
    tree.extend(fixture(5)[1])
    blob = tree.to_bytes()
    for bad in (b"", blob[:7], blob[:-1], blob + b"\x00", blob + bytes(32), blob[:8]):
        with pytest.raises(ValueError, match="compact tree"):
            CompactTree.from_bytes(bad)


@settings(deadline=None, max_examples=100)
@given(chunks=st.lists(st.integers(0, 700), max_size=8), start=st.integers(0, 70))
def test_compact_tree_extend_in_chunks_matches_bulk(chunks: list[int], start: int) -> None:
    total = start + sum(chunks)
    naive, hashes = fixture(total)
    tree = CompactTree()
    for h in hashes[:start]:
        tree.append(h)
    pos = start
    for size in chunks:
        tree.extend(iter(hashes[pos : pos + size]))
        pos += size
        assert tree.size == pos
        assert tree.root() == merkle.root(hashes[:pos])
    assert tree.root() == naive.root()
    one_by_one = CompactTree()
    for h in hashes:
        one_by_one.append(h)
    assert tree == one_by_one


def test_compact_tree_extend_across_bulk_chunks() -> None:
    hashes = leaves(entries(70_003, b"big"))
    tree = CompactTree()
    tree.extend(hashes[:3])
    tree.extend(hashes[3:])
    assert tree.root() == merkle.root(hashes)
    arr = np.frombuffer(b"".join(hashes[:1000]), dtype=np.uint8).reshape(-1, 32)
    other = CompactTree()
    other.extend(arr)
    assert other.root() == merkle.root(hashes[:1000])
