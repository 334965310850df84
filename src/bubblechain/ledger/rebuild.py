"""Rebuild an embedded witness's replica from the final blocks of the ledger.

A replica lost or corrupted (a disk failure, a bad restore) leaves its witness
unable to cosign, and with one more such witness no block can become final.
The rebuilt witness re-validates every message from the genesis, as it does
for any block, but accepts only blocks a quorum of witnesses has already made
final: having lost its memory of what it cosigned, it vouches for nothing new
until the sequencer offers it the later blocks in the usual way. A cosignature
of its own that the ledger kept for a block must verify over that block's
checkpoint; one that does not is evidence that the ledger's history changed
under it, and nothing is rebuilt. So is a block it cosigned in its old replica
(or one kept by an earlier rebuild), when that can still be read, that the
ledger lacks or holds differently: rebuilt, it could cosign a second root for
that size. The new replica is built beside the old one and swapped in only
once complete; the old one is kept, renamed, since it may hold evidence of
equivocation.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypto.note import NoteSignature, SignedNote, verify_cosignature
from ..errors import Rejected, StoreError, UsageError, WitnessRefusal
from ..fsutil import fsync_dir, fsync_paths
from ..home import Home, resolve_home
from ..witness.local import REPLICA_FILE, LocalWitness, load_witness_key
from .genesis import read_genesis
from .ledger import Ledger
from .lock import HomeLock, lock_wait_seconds
from .sequencer import load_block
from .store import Store, _connect


@dataclass
class Rebuilt:
    witness: str
    blocks: int  # replayed: the ledger's final blocks
    messages: int
    replaced: str | None  # where the old replica was kept, if there was one
    cosigned: int  # final blocks the witness had no cosignature of on the ledger

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def rebuild_witness(
    home: Any,
    name: str,
    on_block: Callable[[int, int], None] | None = None,
    on_lock_wait: Callable[[str, float], None] | None = None,
) -> Rebuilt:
    """Replace witness ``name``'s replica by one rebuilt from the ledger's final blocks.

    Holds the home's lock throughout, so nothing is appended meanwhile. Raises
    UsageError, with nothing changed, if the witness is unknown, its key is not
    the genesis one, or the ledger's history fails its checks.
    ``on_block(done, total)`` reports progress; ``on_lock_wait`` is called as by
    `Ledger.open` while another process holds the home.
    """
    h = Home(resolve_home(home))
    genesis = read_genesis(h)
    if genesis.witness(name) is None:
        known = ", ".join(w.name for w in genesis.witnesses)
        raise UsageError(f"witness {name!r} is not in the genesis (its witnesses: {known})")
    directory = h.witness(name)
    try:
        identity = load_witness_key(directory, genesis)
    except UsageError as e:  # a replica can be rebuilt, a private key cannot
        raise UsageError(f"witness {name} cannot be rebuilt: {e}") from None
    lock = HomeLock(h.lock, lock_wait_seconds(), on_lock_wait)
    try:
        with Ledger.open(h.root, readonly=True) as led:
            final = led.final_height()
            _check_own_cosignatures(led, name)
            _check_old_replicas(led, directory, name)
            fresh = directory / f"{REPLICA_FILE}.rebuild-{os.getpid()}"
            for stale in directory.glob(f"{REPLICA_FILE}.rebuild-*"):  # of a killed rebuild
                _unlink(stale)
            witness = LocalWitness(
                directory, identity, Store.create(fresh, genesis, "witness", name)
            )
            # Nothing of it counts until it is complete: synced once, before the swap.
            witness.store.con.execute("PRAGMA synchronous=OFF")
            mine, missing, messages = [], [], 0
            try:
                for height in range(final + 1):
                    try:
                        block = load_block(led.store, height)
                        sig = witness.add_block(block)
                    except (WitnessRefusal, Rejected, ValueError, KeyError) as e:
                        why = e.reason if isinstance(e, WitnessRefusal) else str(e)
                        raise UsageError(
                            f"witness {name}: block {height} of the ledger cannot be replayed "
                            f"({why}); nothing was replaced (`bubblechain verify` says more)"
                        ) from None
                    messages += len(block.messages)
                    kept = led.store.cosignatures(height).get(name)
                    if kept is not None:
                        mine.append((height, name, kept))  # the original attestation
                    else:
                        missing.append((height, name, sig.line()))
                    if on_block is not None:
                        on_block(height + 1, final + 1)
                witness.store.add_cosignatures(mine)
                witness.store.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                witness.close()
            fsync_paths([fresh])
        if missing:  # cosignatures the ledger never received: it collects them
            store = Store.open(h.store)
            try:
                store.add_cosignatures(missing)
            finally:
                store.close()
        replaced = _swap(directory / REPLICA_FILE, fresh)
    except BaseException:
        _remove(directory / f"{REPLICA_FILE}.rebuild-{os.getpid()}")
        raise
    finally:
        lock.release()
    return Rebuilt(name, final + 1, messages, replaced, len(missing))


def _check_own_cosignatures(led: Ledger, name: str) -> None:
    """Every cosignature the ledger kept from ``name`` must verify over its block."""
    pinned = led.genesis.witness(name)
    for row in led.store.blocks():
        line = led.store.cosignatures(row.height).get(name)
        if line is None:
            continue
        try:
            body = SignedNote.parse(row.checkpoint).body
            ok = verify_cosignature(body, NoteSignature.parse_line(line), pinned)
        except ValueError:
            ok = False
        if not ok:
            raise UsageError(
                f"witness {name}: its cosignature of block {row.height} kept on the ledger "
                "does not verify over that block: the ledger's history changed after the "
                "witness cosigned it; nothing was rebuilt (`bubblechain verify` says more)"
            )


def _check_old_replicas(led: Ledger, directory: Path, name: str) -> None:
    """What the witness cosigned in its replica, and in replicas kept by earlier
    rebuilds, must be the ledger's history: a block it cosigned that the ledger
    lacks (the ledger restored from an older copy) or holds differently (a fork
    shown to it) would let the rebuilt witness cosign a second root for a size,
    as soon as the sequencer offers one. A replica that cannot be read, or a row
    whose cosignature does not verify (corruption), proves nothing and is skipped.
    """
    pinned = led.genesis.witness(name)
    paths = [directory / REPLICA_FILE]
    paths += sorted(
        p
        for p in directory.glob(f"{REPLICA_FILE}.replaced-*")
        if not p.name.endswith(("-wal", "-shm"))
    )
    for path in paths:
        try:
            old = _read_only(path)
        except (StoreError, OSError, sqlite3.DatabaseError):
            continue
        try:
            if old.genesis.hash != led.genesis.hash:
                continue
            rows = list(old.blocks())
            cosigned = {h: old.cosignatures(h).get(name) for h in (r.height for r in rows)}
        except (sqlite3.DatabaseError, ValueError, KeyError, OSError):
            continue
        finally:
            old.close()
        for row in rows:
            line = cosigned.get(row.height)
            try:
                body = SignedNote.parse(row.checkpoint).body
                if line is None or not verify_cosignature(
                    body, NoteSignature.parse_line(line), pinned
                ):
                    continue
            except ValueError:
                continue
            ours = led.store.block(row.height)
            if ours is None:
                head = led.store.head()
                top = head.height if head is not None else -1
                how = f"which this ledger does not have (its head is block {top})"
            else:
                try:
                    same = SignedNote.parse(ours.checkpoint).body == body
                except ValueError:
                    same = False
                if same:
                    continue
                how = "over a different checkpoint than this ledger's block"
            raise UsageError(
                f"witness {name}: {path} holds its cosignature of block {row.height} "
                f"({body.decode().splitlines()[1]} entries), {how}: a rebuilt witness could cosign "
                "a second root for that size; nothing was rebuilt (`bubblechain verify` "
                "says more)"
            )


def _read_only(path: Path) -> Store:
    """A replica opened to read, leaving no file beside it that was not there."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:  # committed blocks may be in its WAL
        return Store.open(path, readonly=True)
    if not path.is_file():
        raise StoreError(f"{path} does not exist")
    return Store(path, _connect(path, readonly=True, immutable=True), True)


def _swap(replica: Path, fresh: Path) -> str | None:
    """Put ``fresh`` in place of ``replica``, keeping the old one (and its WAL) under a
    new name.

    Killed at any point, the replica in place is the old one, whole, or the new one
    (only an old one unusable anyway may be gone): the old replica's WAL is folded
    into its file first, so the file stands alone while the new one is renamed over
    it, and a WAL of the old one never pairs with the new file.
    """
    names = [replica.with_name(replica.name + s) for s in ("", "-wal", "-shm")]
    kept = None
    if any(p.exists() for p in names):
        settled = _settle(replica)
        if settled is None:
            raise UsageError(
                f"witness replica {replica} is being read by another process (verify?): "
                "its WAL cannot be folded into it; nothing was replaced, try again"
            )
        stamp = time.strftime("%Y%m%dT%H%M%S")
        kept = replica.with_name(f"{replica.name}.replaced-{stamp}")
        n = 1
        while any(kept.with_name(kept.name + s).exists() for s in ("", "-wal", "-shm")):
            n += 1  # two rebuilds in one second keep both old replicas
            kept = replica.with_name(f"{replica.name}.replaced-{stamp}-{n}")
        for old, suffix in zip(names, ("", "-wal", "-shm"), strict=True):
            if old.exists():  # the WAL keeps its name's pairing
                os.link(old, kept.with_name(kept.name + suffix))
        fsync_dir(replica.parent)
        if not settled:  # its WAL could not be folded in: the file alone is no replica
            _unlink(names[0])
        _unlink(names[1])
        _unlink(names[2])
    for suffix in ("-wal", "-shm"):
        _unlink(fresh.with_name(fresh.name + suffix))  # closed: checkpointed into the file
    os.replace(fresh, replica)
    fsync_dir(replica.parent)
    return str(kept) if kept else None


def _settle(replica: Path) -> bool | None:
    """Fold the old replica's WAL into its file: True once its file alone is the
    replica, False if it is unusable (its WAL cannot be read into it), None if a
    reader's snapshot keeps the WAL."""
    wal = replica.with_name(replica.name + "-wal")
    if not wal.exists() or not wal.stat().st_size:
        return True
    if not replica.is_file():
        return False
    try:
        con = sqlite3.connect(replica, isolation_level=None)
        try:
            con.execute("PRAGMA busy_timeout=10000")
            busy = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False
    if busy:
        return None
    return not wal.exists() or not wal.stat().st_size


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        _unlink(path.with_name(path.name + suffix))
