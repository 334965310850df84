"""Keys, vkeys and C2SP notes, byte-exact against the specifications' own examples."""

import base64
import os
import stat

import pytest

from bubblechain.crypto.keys import (
    SIG_COSIGNATURE_V1,
    SIG_ED25519,
    Identity,
    PublicIdentity,
    key_id,
    parse_vkey,
)
from bubblechain.crypto.note import (
    Checkpoint,
    NoteSignature,
    SignedNote,
    cosign,
    cosigned_message,
    sign_note,
    verify_cosignature,
    verify_note_signature,
)
from bubblechain.errors import KeyFileError

# The example of golang.org/x/mod/sumdb/note, the reference implementation of signed notes.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_NOTE = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
    "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_reference_note_verifies():
    name, sig_type, key = parse_vkey(GO_VKEY)
    assert (name, sig_type) == ("PeterNeumann", SIG_ED25519)
    note = SignedNote.parse(GO_NOTE)
    assert note.text() == GO_NOTE
    assert verify_note_signature(note.body, note.signatures[0], PublicIdentity(name, key))
    tampered = note.body.replace(b"answer", b"Answer")
    assert not verify_note_signature(tampered, note.signatures[0], PublicIdentity(name, key))


def test_vkey_round_trip_and_key_id():
    ident = Identity.generate("example.com/log")
    for t in (SIG_ED25519, SIG_COSIGNATURE_V1):
        v = ident.vkey(t)
        assert parse_vkey(v) == ("example.com/log", t, ident.public_key)
        assert v.split("+")[1] == key_id("example.com/log", t, ident.public_key).hex()
    with pytest.raises(ValueError, match="key ID"):
        name, _, key = ident.vkey(SIG_ED25519).split("+", 2)
        parse_vkey(f"{name}+00000000+{key}")


def test_checkpoint_format_is_c2sp():
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, b"\x0a" * 32)
    assert cp.body() == (
        b"example.com/behind-the-sofa\n20852163\n" + base64.b64encode(b"\x0a" * 32) + b"\n"
    )
    assert Checkpoint.parse(cp.body()) == cp
    with pytest.raises(ValueError):
        Checkpoint.parse(b"origin\n007\n" + base64.b64encode(b"\0" * 32) + b"\n")


def test_cosignature_v1_signs_the_spec_message():
    w = Identity.generate("witness.example.com/w1")
    body = Checkpoint("example.com/log", 5, b"\1" * 32).body()
    sig = cosign(body, w, 1679315147)
    assert sig.timestamp == 1679315147
    assert sig.key_id == key_id(w.name, SIG_COSIGNATURE_V1, w.public_key)
    msg = cosigned_message(body, 1679315147)
    assert msg.startswith(b"cosignature/v1\ntime 1679315147\nexample.com/log\n5\n")
    assert w.public.verify(msg, sig.signature[8:])
    assert verify_cosignature(body, sig, w.public)
    assert not verify_cosignature(body.replace(b"\n5\n", b"\n6\n"), sig, w.public)
    # the line round-trips through the signed-note text
    note = SignedNote(body, (sign_note(body, Identity.generate("example.com/log")), sig))
    assert SignedNote.parse(note.text()).signatures[1] == NoteSignature.parse_line(sig.line())


def test_key_file_is_0600_and_round_trips(tmp_path):
    ident = Identity.generate("worker-1")
    path = tmp_path / "worker.key"
    ident.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Identity.load(path).public == ident.public


def test_key_file_errors_are_clear(tmp_path):
    path = tmp_path / "k.key"
    with pytest.raises(KeyFileError, match=f"key file {path} is missing"):
        Identity.load(path)
    Identity.generate("n").save(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="permissions 0644"):
        Identity.load(path)
    os.chmod(path, 0o600)
    path.write_text("{not json")
    with pytest.raises(KeyFileError, match="malformed"):
        Identity.load(path)
