"""RFC 6962 / RFC 9162 Merkle trees over SHA-256: roots, proofs, verification.

Byte-compatible with any RFC 9162 implementation: leaf = H(0x00 ‖ data),
node = H(0x01 ‖ left ‖ right), split at the largest power of two below n,
empty tree = H(""). ``root`` and the proof builders work on a whole list of
leaf hashes in bulk; ``CompactTree`` grows a log one leaf at a time in
O(log n) state; ``verify_*`` check proofs and raise ``ProofError``.
"""

from .compact import CompactTree
from .hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from .proofs import ProofError, verify_consistency, verify_inclusion
from .tree import consistency_proof, inclusion_proof, root, root_from_buffer

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactTree",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_buffer",
    "verify_consistency",
    "verify_inclusion",
]
