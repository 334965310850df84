"""The content-addressed artifact store: local directory and fsspec URLs."""

from __future__ import annotations

import hashlib

import pytest
from test_training import write_toy

from bubblechain.artifacts import ArtifactCorrupt, ArtifactMissing, ArtifactStore
from bubblechain.audit import AuditOptions, audit
from bubblechain.data.ledger import commit_dataset
from bubblechain.ledger import Ledger
from bubblechain.training.runtime import train


@pytest.mark.parametrize("kind", ["dir", "fsspec"])
def test_put_get_has_and_every_read_is_checked(tmp_path, kind):
    loc = tmp_path / "a" if kind == "dir" else f"local://{tmp_path / 'a'}"
    store = ArtifactStore(loc)
    digest = store.put(b"partial result")
    assert digest == hashlib.sha256(b"partial result").hexdigest()
    assert store.put(b"partial result") == digest  # idempotent
    assert store.has(digest) and store.get(digest) == b"partial result"
    blob = tmp_path / "a" / digest[:2] / digest[2:]
    blob.chmod(0o644)
    blob.write_bytes(b"partial resulT")
    with pytest.raises(ArtifactCorrupt, match=f"artifact {digest} .* does not match its hash"):
        store.get(digest)
    blob.unlink()
    assert not store.has(digest)
    with pytest.raises(ArtifactMissing, match=f"artifact {digest} is missing"):
        store.get(digest)


def test_training_with_artifacts_at_an_fsspec_url(tmp_path):
    """Worker processes and the coordinator share artifacts only through the URL."""
    data = tmp_path / "toy.parquet"
    write_toy(data, rows=4000)
    url = f"local://{tmp_path / 'shared-artifacts'}"
    home = tmp_path / "home"
    with Ledger.init(home, artifacts=url) as led:
        assert led.artifacts.location == url
        commit_dataset(led, data, "id", name="toy")
        res = train(
            led, data="toy", algorithm="naive-bayes", target="label", partitions=2, workers=2
        )
    assert res.metric == "accuracy" and res.value > 0.8
    assert not (home / "artifacts").exists()
    assert any((tmp_path / "shared-artifacts").rglob("*"))
    rep = audit(home, AuditOptions(replay="full"))
    assert rep.ok, [str(f) for f in rep.findings]


def test_a_block_commits_only_after_the_artifacts_it_names_are_synced(home, monkeypatch):
    # Workers write artifacts without waiting for the disk; the ledger must fsync the
    # ones a block names before the block itself is committed (a group commit).
    import os

    import bubblechain.fsutil as fsutil
    from bubblechain.ledger.store import Store

    events: list[str] = []
    real_fsync, real_write_block = os.fsync, Store.write_block

    def fsync(fd):
        events.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def write_block(self, block, *a, **kw):
        if self.path.name != "replica.db":  # the sequencer's own store, not a witness replica
            events.append(f"block {block.height}")
        return real_write_block(self, block, *a, **kw)

    with Ledger.open(home) as led:
        digest = led.artifacts.put(b"a partial result", sync=False)
        blob = str(led.artifacts.path(digest))
        monkeypatch.setattr(fsutil.os, "fsync", fsync)
        monkeypatch.setattr(Store, "write_block", write_block)
        led.append("note", {"text": "names an artifact"}, outputs=[digest])
        led.flush()
    assert blob in events, "the artifact was never synced"
    block = next(e for e in events if e.startswith("block"))
    assert events.index(blob) < events.index(block)
