"""Dataset commitments: Merkle roots over canonical rows, proofs and tamper localisation.

``commit`` reads a dataset (Parquet, a Parquet directory, CSV, Arrow IPC, or a
DataFrame / numpy / Arrow table) and returns the body of a ``data.commit``
message, storing the partition artifacts through ``store.put``; ``verify``
names every row that differs from a commitment; ``prove`` gives an RFC 9162
inclusion proof of one row. The row encoding is specified in
docs/row-encoding.md.
"""

from .commit import DEFAULT_PARTITION_ROWS, commit
from .encoding import ENCODING, VERSION
from .errors import DataError
from .prove import prove, verify_proof
from .store import MemoryStore
from .verify import verify

__all__ = [
    "DEFAULT_PARTITION_ROWS",
    "ENCODING",
    "VERSION",
    "DataError",
    "MemoryStore",
    "commit",
    "prove",
    "verify",
    "verify_proof",
]
