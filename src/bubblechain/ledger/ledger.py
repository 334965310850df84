"""The `Ledger` API: one home directory holding a sequencer and its embedded witnesses.

`Ledger.init` creates keys, the genesis, the sequencer store and one replica per
witness, and finalises the genesis block; `Ledger.open` resumes (re-sending any
block a crash left without its quorum). The CLI is a thin layer over this class.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import merkle
from ..artifacts import ArtifactStore
from ..crypto.keys import SIG_COSIGNATURE_V1, SIG_ED25519, Identity, validate_key_name
from ..crypto.note import NoteSignature, SignedNote, verify_cosignature
from ..errors import KeyFileForbidden, NotFinal, Rejected, StoreError, UsageError
from ..fsutil import fsync_dir, write_atomic
from ..home import Home, resolve_home
from ..witness.local import (
    REPLICA_FILE,
    LocalWitness,
    UnusableWitness,
    load_witness_key,
    open_witnesses,
    reads_only,
)
from .block import Block, parse_header
from .genesis import Genesis, read_genesis
from .lock import HomeLock, is_appending, lock_wait_seconds
from .message import Message, now_us
from .sequencer import Sequencer
from .store import BlockRow, MessageRow, Store
from .verify import Finding, verify_home


@dataclass(frozen=True)
class Appended:
    """Where an appended message landed: its id (hex) and its log index."""

    id: str
    index: int


@dataclass(frozen=True)
class Entry:
    """A message as read back from the ledger."""

    index: int
    block: int
    message: Message

    @property
    def id(self) -> str:
        return self.message.id_hex

    @property
    def kind(self) -> str:
        return self.message.kind

    @property
    def body(self) -> dict[str, Any]:
        return self.message.body

    @property
    def fields(self) -> dict[str, Any]:
        return self.message.fields


def artifacts_location(home: Home) -> str:
    """The home's artifact store: `artifacts` in home.json (set at init), else HOME/artifacts."""
    try:
        cfg = json.loads(home.config.read_text())
    except FileNotFoundError:
        return str(home.artifacts)
    except (OSError, ValueError) as e:
        raise UsageError(f"home config {home.config} is unreadable: {e}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("artifacts", ""), str):
        raise UsageError(f"home config {home.config} is not an object naming the artifact store")
    return cfg.get("artifacts") or str(home.artifacts)


def _artifacts_for_init(location: str) -> str:
    """``init --artifacts``, checked before anything is built: a URL fsspec can open, or
    a directory where files can be created (made if missing), kept as an absolute path
    so that every later command finds it from wherever it runs."""
    if "://" in location and not location.startswith("file://"):
        ArtifactStore(location)
        return location
    path = Path(location.removeprefix("file://")).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--artifacts {location} is not a directory")
    try:  # permission bits do not tell (root, read-only mounts, /proc): really try
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".bubblechain-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = e.strerror or e
        raise UsageError(f"--artifacts {location}: cannot create files there ({why})") from None
    return str(path)


def open_store(home: Home, genesis: Genesis, *, readonly: bool) -> Store:
    store = Store.open(home.store, readonly=readonly)
    try:
        if store.genesis.hash != genesis.hash:
            raise StoreError(f"ledger store {home.store} belongs to a different genesis")
    except BaseException:
        store.close()
        raise
    return store


class Ledger:
    """A home's ledger: append messages, wait for finality, read, verify."""

    def __init__(self, home: Home, genesis: Genesis, store: Store, *, readonly: bool):
        self.home = home
        self.genesis = genesis
        self.store = store
        self.readonly = readonly
        self.artifacts = ArtifactStore(artifacts_location(home))
        self._sequencer: Sequencer | None = None
        self._witnesses: list[LocalWitness] = []
        self.skip_corrupt = False
        self._lock: HomeLock | None = None
        self._admin: Identity | None = None

    # -- creating and opening --------------------------------------------------------
    @classmethod
    def init(
        cls,
        home: str | os.PathLike | None = None,
        witnesses: int = 3,
        quorum: int = 2,
        origin: str | None = None,
        artifacts: str | None = None,
        **options: Any,
    ) -> Ledger:
        """Create keys, genesis, stores and replicas, finalise the genesis block, open it.

        `artifacts` is where blobs go: a directory or an fsspec URL (`s3://bucket/x`)
        that every worker can reach; default HOME/artifacts.
        """
        root = resolve_home(home)
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} is a file, not a directory; refusing to overwrite it")
        if root.exists() and any(root.iterdir()):
            raise UsageError(f"{root} already exists and is not empty; refusing to overwrite it")
        options.setdefault("lock_timeout", lock_wait_seconds())  # a bad value: nothing built
        if witnesses < 1:
            raise UsageError(f"--witnesses must be at least 1, got {witnesses}")
        if not witnesses // 2 < quorum <= witnesses:
            raise UsageError(
                f"--quorum must be a majority of the {witnesses} witnesses "
                f"({witnesses // 2 + 1} to {witnesses}), got {quorum}"
            )
        origin = origin or f"bubblechain.local/ledger-{secrets.token_hex(4)}"
        try:
            validate_key_name(origin)
        except ValueError as e:
            raise UsageError(f"--origin: {e}") from None
        if artifacts:
            artifacts = _artifacts_for_init(artifacts)
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f".{root.name}.init-{secrets.token_hex(4)}"
        try:
            cls._build(Home(tmp), witnesses, quorum, origin)
            if artifacts:
                write_atomic(Home(tmp).config, json.dumps({"artifacts": artifacts}).encode())
            if root.exists():
                root.rmdir()
            os.rename(tmp, root)
            fsync_dir(root.parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls.open(root, **options)

    @staticmethod
    def _build(home: Home, n_witnesses: int, quorum: int, origin: str) -> None:
        home.keys.mkdir(parents=True, mode=0o700)
        admin = Identity.generate("admin")
        sequencer = Identity.generate(origin)
        witness_ids = [Identity.generate(f"w{i + 1}") for i in range(n_witnesses)]
        genesis = Genesis(
            origin=origin,
            sequencer=sequencer.public,
            witnesses=tuple(w.public for w in witness_ids),
            quorum=quorum,
            admin=admin.public,
            created=now_us(),
        )
        admin.save(home.key("admin"))
        sequencer.save(home.key("sequencer"))
        write_atomic(home.genesis, genesis.to_bytes())
        store = Store.create(home.store, genesis, "sequencer", origin)
        witnesses = [LocalWitness.create(home.witness(w.name), w, genesis) for w in witness_ids]
        seq = Sequencer(store, Store.open(home.store, readonly=True), sequencer, witnesses)
        try:
            seq.submit(Message.create(admin, "genesis", genesis.doc(), seq=1))
            seq.flush(timeout=60)
        finally:
            seq.close()
            seq.reader.close()
            store.close()
            for w in witnesses:
                w.close()

    @classmethod
    def open(
        cls,
        home: str | os.PathLike | None = None,
        *,
        readonly: bool = False,
        block_size: int = 1000,
        block_delay: float = 0.25,
        lock_timeout: float | None = None,
        on_lock_wait: Callable[[str, float], None] | None = None,
    ) -> Ledger:
        """Open a home; unless read-only, lock it and start sequencing.

        Another process sequencing the home is waited for up to ``lock_timeout``
        seconds (default `lock_wait_seconds`); after a second, ``on_lock_wait`` is
        called once with who holds it and the wait.
        """
        h = Home(resolve_home(home))
        genesis = read_genesis(h)
        store = open_store(h, genesis, readonly=readonly)
        led = cls(h, genesis, store, readonly=readonly)
        if readonly:
            return led
        reader = None
        try:
            wait = lock_wait_seconds() if lock_timeout is None else lock_timeout
            led._lock = HomeLock(h.lock, wait, on_lock_wait)
            led._admin = Identity.load(h.key("admin"))
            seq_id = Identity.load(h.key("sequencer"))
            if seq_id.public != genesis.sequencer:
                raise UsageError(f"key file {h.key('sequencer')} is not the genesis sequencer key")
            usable, unusable = open_witnesses(h.witnesses, genesis)
            led._witnesses = usable
            if len(usable) < genesis.quorum:
                raise NotFinal(
                    f"cannot reach quorum {genesis.quorum} of {len(genesis.witnesses)}: "
                    f"only {len(usable)} witness(es) can be opened; "
                    + "; ".join(f"{n}: {why}" for n, why in unusable.items())
                )
            by_name = {w.name: w for w in usable}
            witnesses = [
                by_name.get(w.name) or UnusableWitness(w.name, unusable[w.name])
                for w in genesis.witnesses
            ]
            reader = Store.open(h.store, readonly=True)
            led._sequencer = Sequencer(
                store,
                reader,
                seq_id,
                witnesses,
                block_size=block_size,
                block_delay=block_delay,
                before_commit=led._sync_artifacts,
            )
        except BaseException:
            if reader is not None and led._sequencer is None:  # the sequencer never took it
                reader.close()
            led._release()
            raise
        return led

    def someone_appends(self) -> bool:
        """Whether a process (this one included) appends to this home now; True when the
        lock cannot be read here, so that nothing is claimed of an open job.

        One process appends at a time and a training job holds the home until its
        `job.end`, so a job still open while none does was left by a coordinator
        that was killed.
        """
        return self._lock is not None or is_appending(self.home.lock, unknown=True)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------
    @property
    def sequencer(self) -> Sequencer:
        if self._sequencer is None:
            raise UsageError(f"ledger {self.home.root} is open read-only")
        return self._sequencer

    @property
    def admin(self) -> Identity:
        if self._admin is None:
            self._admin = Identity.load(self.home.key("admin"))
        return self._admin

    def append(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        signer: Identity | None = None,
        bubble: str | None = None,
        last: str | None = None,
        state: str | None = None,
        inputs: Iterable[str] = (),
        outputs: Iterable[str] = (),
        code: str | None = None,
        job: str | None = None,
    ) -> Appended:
        """Sign `body` as `signer` (the admin by default), validate and sequence it.

        Returns at once with the message id and log index; `flush()` waits until
        it is final.
        """
        seq = self.sequencer
        signer = signer or self.admin
        with seq._lock:
            registered = seq.state.nodes.get(signer.name)
            if registered is None or registered[0] != signer.public_key:
                raise Rejected(f"signer {signer.name!r} is not registered with this key")
            msg = Message.create(
                signer,
                kind,
                body,
                seq=seq.next_seq(signer.name),
                bubble=bubble,
                last=last,
                state=state,
                inputs=inputs,
                outputs=outputs,
                code=code,
                job=job,
            )
            # The signature was just made with the registered key: no need to re-verify it.
            index = seq.submit(msg, verify_sig=False)
        return Appended(msg.id_hex, index)

    def submit(self, message: Message) -> Appended:
        """Sequence a message another node signed (its signature is checked)."""
        return Appended(message.id_hex, self.sequencer.submit(message))

    def flush(self, timeout: float | None = None) -> int:
        """Wait until everything appended so far is final; return the final height."""
        return self.sequencer.flush(timeout)

    def seal(self) -> int:
        """Cut a block of what is pending now, without waiting for it to be final."""
        return self.sequencer.seal()

    def register_node(self, name: str, public_key: bytes, role: str) -> Appended:
        """Admit a node's key to the ledger (an admin-signed `node.register`)."""
        import base64

        body = {"name": name, "key": base64.b64encode(public_key).decode(), "role": role}
        return self.append("node.register", body)

    def _sync_artifacts(self, block: Block) -> None:
        """Before a block commits, make the artifacts its messages name durable.

        Workers and the coordinator write artifacts without waiting for the disk
        (atomically, so never half); this group commit keeps a durable message
        from naming an artifact that a power cut could still lose.
        """
        self.artifacts.sync(h for m in block.messages for h in m.fields["outputs"])

    def close(self, timeout: float | None = 120) -> None:
        """Finalise what is pending, then stop; the home stays consistent either way."""
        try:
            if self._sequencer is not None:
                self._sequencer.flush(timeout)
        finally:
            self._release()

    def _release(self) -> None:
        if self._sequencer is not None:
            self._sequencer.close()
            self._sequencer.reader.close()
            self._sequencer = None
        for w in self._witnesses:
            w.close()
        self._witnesses = []
        self.store.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- reading -----------------------------------------------------------------------------
    def verify(self) -> list[Finding]:
        """Check everything in this home; return the findings (empty when all holds)."""
        return verify_home(self.home.root).findings

    def entries(self, kind: str | None = None, start: int = 0) -> Iterator[Entry]:
        """The stored messages in log order. One that does not decode is an error naming
        it, or, once `skip_corrupt` is set (audit: verify reports it), skipped."""
        for r in self.store.messages(kind=kind, start=start):
            try:
                yield _entry(r)
            except Rejected as e:
                if not self.skip_corrupt:
                    raise StoreError(
                        f"message {r.idx} (block {r.block}) in {self.store.path} is corrupt: "
                        f"{e}; `bubblechain verify` reports what else is"
                    ) from None

    def entry(self, message_id: str) -> Entry | None:
        r = self.store.message_by_id(bytes.fromhex(message_id))
        return None if r is None else _entry(r)

    def final_height(self) -> int:
        """The last block with a quorum of valid cosignatures (every one before it too).

        Read-only, the stored cosignatures are counted, and those of the block that
        count makes final are checked against the genesis keys (a stored row is no
        cosignature), stepping back while that block falls short.
        """
        if self._sequencer is not None:
            return self._sequencer.final_height
        h = self.store.final_height(self.genesis.quorum)
        while h >= 0 and len(self._valid_cosignatures(h)) < self.genesis.quorum:
            h -= 1
        return h

    def _valid_cosignatures(self, height: int) -> list[NoteSignature]:
        """Block ``height``'s stored cosignatures that verify under the genesis keys."""
        row = self.store.block(height)
        try:
            note = SignedNote.parse(row.checkpoint) if row else None
        except ValueError:
            note = None
        if note is None:
            return []
        valid = []
        for name, line in sorted(self.store.cosignatures(height).items()):
            w = self.genesis.witness(name)
            try:
                sig = NoteSignature.parse_line(line)
            except ValueError:
                continue
            if w is not None and verify_cosignature(note.body, sig, w):
                valid.append(sig)
        return valid

    def checkpoint(self, height: int | None = None) -> str:
        """The latest final checkpoint as a C2SP signed note with its valid cosignatures."""
        h = self.final_height() if height is None else height
        row = self.store.block(h)
        if row is None:
            raise UsageError(f"block {h} is not in the ledger at {self.home.root}")
        try:
            note = SignedNote.parse(row.checkpoint)
        except ValueError as e:
            raise StoreError(
                f"block {h}'s checkpoint in {self.store.path} is corrupt ({e}); "
                "`bubblechain verify` says what else is"
            ) from None
        for sig in self._valid_cosignatures(h):  # only valid ones are shown
            note = note.with_signature(sig)
        return note.text()

    def inclusion_proof(self, index: int, size: int | None = None) -> dict[str, Any]:
        """An RFC 9162 inclusion proof of entry `index` in the log of `size` entries.

        Defaults to the latest final checkpoint, so the proof checks against
        `checkpoint()` with any RFC 9162 verifier.
        """
        size = self._final_size() if size is None else size
        if not 0 <= index < size:
            raise UsageError(f"index {index} is not in a log of {size} entries")
        leaves = self.store.leaves(stop=size)
        return {
            "index": index,
            "size": size,
            "leaf_hash": leaves[index].hex(),
            "proof": [p.hex() for p in merkle.inclusion_proof(leaves, index)],
            "root": merkle.root(leaves).hex(),
        }

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """An RFC 9162 consistency proof between two log sizes (default: latest final)."""
        new_size = self._final_size() if new_size is None else new_size
        if not 0 < old_size <= new_size:
            raise UsageError(f"need 0 < old size ({old_size}) <= new size ({new_size})")
        leaves = self.store.leaves(stop=new_size)
        if len(leaves) < new_size:
            raise UsageError(f"the log has only {len(leaves)} entries, not {new_size}")
        return {
            "old_size": old_size,
            "new_size": new_size,
            "old_root": merkle.root(leaves[:old_size]).hex(),
            "new_root": merkle.root(leaves).hex(),
            "proof": [p.hex() for p in merkle.consistency_proof(leaves, old_size)],
        }

    def _final_size(self) -> int:
        return self._size_of(self.store.block(self.final_height()))

    def _size_of(self, row: BlockRow | None) -> int:
        """The log size a block's header states, 0 before the first block."""
        if row is None:
            return 0
        try:
            return int(parse_header(row.header)["size"])
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(
                f"block {row.height}'s header in {self.store.path} is corrupt ({e}); "
                "`bubblechain verify` says what else is"
            ) from None

    def vkeys(self) -> list[str]:
        """The sequencer's verifier key, then each witness's (C2SP vkey form)."""
        g = self.genesis
        return [g.sequencer.vkey(SIG_ED25519)] + [w.vkey(SIG_COSIGNATURE_V1) for w in g.witnesses]

    def status(self) -> dict[str, Any]:
        head = self.store.head()
        final = self.final_height()
        final_row = self.store.block(final) if final >= 0 else None
        links = {}
        if self._sequencer is not None:
            links = {link.witness.name: link for link in self._sequencer.links}
        witnesses = []
        for w in self.genesis.witnesses:
            info: dict[str, Any] = {"name": w.name, "height": None, "size": None, "usable": True}
            try:
                load_witness_key(self.home.witness(w.name), self.genesis)
            except (ValueError, OSError) as e:
                if isinstance(e, KeyFileForbidden) and reads_only(self.home.store):
                    info["unchecked"] = f"key not checked: {e}"  # read access only
                else:
                    info["usable"], info["error"] = False, f"unusable: {e}"
            try:
                rs = Store.open(self.home.witness(w.name) / REPLICA_FILE, readonly=True)
                try:
                    if rs.genesis.hash != self.genesis.hash:
                        raise StoreError(f"replica {rs.path} belongs to a different genesis")
                    wh = rs.head()
                    if wh is not None:
                        info["height"] = wh.height
                        info["size"] = parse_header(wh.header)["size"]
                        line = rs.cosignatures(wh.height).get(w.name)
                        info["cosigned_at"] = (
                            NoteSignature.parse_line(line).timestamp if line else None
                        )
                finally:
                    rs.close()
            except (StoreError, sqlite3.DatabaseError) as e:
                if info["usable"]:
                    info["usable"] = False
                    info["error"] = f"unusable: {e} (`bubblechain witness rebuild {w.name}`)"
            except (ValueError, KeyError) as e:  # a head it cannot have written
                info["usable"] = False
                info["error"] = f"corrupt head ({e}); `bubblechain verify` says where"
            link = links.get(w.name)
            if link is not None and (link.refusal or link.error):
                info["error"] = link.refusal or link.error
                info["usable"] = info["usable"] and not (link.refusal or "").startswith("unusable")
            elif "error" not in info and not links:
                held = -1 if info["height"] is None else info["height"]
                top = head.height if head is not None else -1
                if held > top:  # never in a crash: the ledger is stored before any witness
                    info["error"] = (
                        f"ahead: it holds block {held}, beyond this ledger's head {top}: the "
                        "ledger lost blocks the witnesses cosigned (restored from an older "
                        "copy?); `bubblechain verify` names them"
                    )
                elif held < top and not self.someone_appends():
                    # With no process appending, a witness behind refused or failed.
                    info["error"] = (
                        f"behind: it does not hold block {held + 1} of {top}; the next "
                        "append retries it, and `bubblechain verify` checks it"
                    )
            witnesses.append(info)
        return {
            "home": str(self.home.root),
            "origin": self.genesis.origin,
            "genesis": self.genesis.hash.hex(),
            "height": head.height if head else -1,
            "size": self._size_of(head),
            "final_height": final,
            "final_size": self._size_of(final_row),
            "quorum": self.genesis.quorum,
            "witnesses": witnesses,
        }


def _entry(r: MessageRow) -> Entry:
    return Entry(r.idx, r.block, Message.from_parts(r.payload, r.sig))
