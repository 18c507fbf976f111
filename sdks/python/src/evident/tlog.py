"""Offline verification of what an Evident log hands out: RFC 6962 / RFC 9162 hashing, inclusion
and consistency proofs, C2SP signed notes (Ed25519), C2SP tlog-checkpoints and
``c2sp.org/tlog-proof@v1`` receipts.

Nothing here talks to a server: a receipt, the entry bytes it proves and the log's verifier key
(``vkey``) are enough. The rules mirror the server's own verifier (crate ``evident-tlog``):

* proofs are checked with the bit walks of RFC 9162 §2.1.3.2 and §2.1.4.2, so short, long and
  reordered proofs fail; a consistency proof from the empty tree is refused;
* a hash has one spelling: 32 bytes, canonical base64; decimals are canonical;
* a note opens only with at least one good signature by a known key and no bad one; signatures by
  unknown keys are ignored (Go's ``note.Open``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "Checkpoint",
    "TlogProof",
    "VerificationError",
    "Verifier",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "verify_consistency",
    "verify_inclusion",
    "verify_receipt",
]

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
_SIGNATURE_PREFIX = "\u2014 "
_MAX_SIGNATURES = 100
_TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


class VerificationError(Exception):
    """The input does not verify: a malformed text, a wrong proof, a bad or missing signature."""


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 §2.1: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def hash_from_base64(text: str, what: str = "hash") -> bytes:
    """A 32-byte hash in canonical standard base64, or :class:`VerificationError`."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise VerificationError(f"{what}: not base64 ({err})") from None
    if len(raw) != 32:
        raise VerificationError(f"{what}: {len(raw)} bytes, a SHA-256 hash has 32")
    if base64.b64encode(raw).decode() != text:
        raise VerificationError(f"{what}: non-canonical base64")
    return raw


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != 32:
        raise VerificationError(f"{what} is not a 32-byte hash")


def _canonical_u64(text: str, what: str) -> int:
    ok = text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))
    if not ok or int(text) >= 1 << 64:
        raise VerificationError(f"{what} {text!r} is not a canonical decimal u64")
    return int(text)


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Steps 2 to 5 of RFC 9162 §2.1.3.2: the root that an inclusion proof implies."""
    _check_hash(leaf, "the leaf hash")
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is not below tree size {size}")
    f_n, s_n = index, size - 1
    r = leaf
    for p in proof:
        _check_hash(p, "a proof hash")
        if s_n == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep")
        if f_n & 1 or f_n == s_n:
            r = node_hash(p, r)
            if not f_n & 1:
                while not f_n & 1 and f_n != 0:
                    f_n >>= 1
                    s_n >>= 1
        else:
            r = node_hash(r, p)
        f_n >>= 1
        s_n >>= 1
    if s_n != 0:
        raise VerificationError("inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raises :class:`VerificationError` unless ``leaf`` (a leaf hash) is at
    ``index`` of the tree of ``size`` whose root is ``root``."""
    _check_hash(root, "the root hash")
    if root_from_inclusion_proof(leaf, index, size, proof) != root:
        raise VerificationError("inclusion proof does not lead to the root hash")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raises :class:`VerificationError` unless the tree of ``new_size`` extends
    the tree of ``old_size``. Equal sizes need an empty proof and equal roots; a proof from the
    empty tree is refused, since that tree commits to nothing."""
    _check_hash(old_root, "the old root hash")
    _check_hash(new_root, "the new root hash")
    for p in proof:
        _check_hash(p, "a proof hash")
    if old_size > new_size:
        raise VerificationError(f"old tree size {old_size} is above new tree size {new_size}")
    if old_size <= 0:
        raise VerificationError("a consistency proof from the empty tree proves nothing")
    if old_size == new_size:
        if proof:
            raise VerificationError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise VerificationError("equal sizes with different root hashes")
        return
    if not proof:
        raise VerificationError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    f_n, s_n = old_size - 1, new_size - 1
    while f_n & 1:
        f_n >>= 1
        s_n >>= 1
    f_r = s_r = path[0]
    for c in path[1:]:
        if s_n == 0:
            raise VerificationError("consistency proof is longer than needed")
        if f_n & 1 or f_n == s_n:
            f_r = node_hash(c, f_r)
            s_r = node_hash(c, s_r)
            if not f_n & 1:
                while not f_n & 1 and f_n != 0:
                    f_n >>= 1
                    s_n >>= 1
        else:
            s_r = node_hash(s_r, c)
        f_n >>= 1
        s_n >>= 1
    if s_n != 0:
        raise VerificationError("consistency proof is shorter than needed")
    if f_r != old_root or s_r != new_root:
        raise VerificationError("consistency proof does not lead to the root hashes")


def _is_valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _key_id(name: str, alg: int, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Verifier:
    """A note verifier key (``vkey``): ``<name>+<key id hex>+<base64(type || public key)>``, of
    type 0x01 (Ed25519 note signatures) or 0x04 (``cosignature/v1`` witness cosignatures)."""

    name: str
    key_id: int
    alg: int
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        def bad(reason: str) -> VerificationError:
            return VerificationError(f"verifier key {vkey!r}: {reason}")

        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise bad("expected <name>+<key id>+<key>")
        name, id_hex, key_b64 = parts
        if not _is_valid_key_name(name):
            raise bad("invalid key name")
        if len(id_hex) != 8 or any(c not in "0123456789abcdefABCDEF" for c in id_hex):
            raise bad("key id is not 8 hex digits")
        try:
            material = base64.b64decode(key_b64, validate=True)
        except (binascii.Error, ValueError):
            raise bad("key material is not base64") from None
        if not material:
            raise bad("empty key material")
        alg, public = material[0], material[1:]
        if alg not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise bad(f"unsupported signature type {alg:#04x}")
        if len(public) != 32:
            raise bad("Ed25519 public key is not 32 bytes")
        if _key_id(name, alg, public) != int(id_hex, 16):
            raise bad("key id does not match the key")
        return cls(name=name, key_id=int(id_hex, 16), alg=alg, public_key=public)

    def verify(self, text: str, signature: bytes) -> bool:
        """Checks ``signature`` (without its key id) over a note's text."""
        message = text.encode()
        if self.alg == ALG_COSIGNATURE_V1:
            # c2sp.org/tlog-cosignature: u64 time || Ed25519 over
            # "cosignature/v1\ntime <time>\n" || the note text.
            if len(signature) != 72:
                return False
            (time,) = struct.unpack(">Q", signature[:8])
            if time > (1 << 63) - 1:
                return False
            message = f"cosignature/v1\ntime {time}\n".encode() + message
            signature = signature[8:]
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    signature: bytes


@dataclass
class Note:
    """An opened signed note: its text and which signatures verified."""

    text: str
    verified: list[NoteSignature] = field(default_factory=list)
    unverified: list[NoteSignature] = field(default_factory=list)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise VerificationError("note: signature line does not start with an em dash and a space")
    name, sep, b64 = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not sep:
        raise VerificationError("note: signature line has no signature")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) < 5 or not _is_valid_key_name(name):
        raise VerificationError(f"note: bad signature line for {name!r}")
    return NoteSignature(name=name, key_id=int.from_bytes(raw[:4], "big"), signature=raw[4:])


def open_note(message: str, verifiers: Iterable[Verifier]) -> Note:
    """Opens a C2SP signed note (c2sp.org/signed-note): fails when malformed, when any signature by
    a known key does not verify, and when no known key signed."""
    known = list(verifiers)
    if any(c < " " and c != "\n" for c in message):
        raise VerificationError("note: holds a control character")
    split = message.rfind("\n\n")
    if split < 0:
        raise VerificationError("note: no blank line before the signatures")
    text, signatures = message[: split + 1], message[split + 2 :]
    if not signatures or not signatures.endswith("\n"):
        raise VerificationError("note: signature block is empty or does not end with a newline")
    note = Note(text=text)
    for n, line in enumerate(signatures[:-1].split("\n")):
        if n >= _MAX_SIGNATURES:
            raise VerificationError("note: more than 100 signatures")
        sig = _parse_signature_line(line)
        verifier = next((v for v in known if v.name == sig.name and v.key_id == sig.key_id), None)
        if verifier is None:
            if sig not in note.unverified:
                note.unverified.append(sig)
            continue
        if any(s.name == sig.name and s.key_id == sig.key_id for s in note.verified):
            continue  # Go drops repeated signatures by one key after the first
        if not verifier.verify(text, sig.signature):
            raise VerificationError(f"bad signature by {sig.name}+{sig.key_id:08x}")
        note.verified.append(sig)
    if not note.verified:
        raise VerificationError("note: no signature by a known key")
    return note


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        if not body.endswith("\n"):
            raise VerificationError("checkpoint: does not end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3 or not lines[0]:
            raise VerificationError("checkpoint: needs an origin, a tree size and a root hash line")
        if any(not line for line in lines[3:]):
            raise VerificationError("checkpoint: empty extension line")
        if any(c < " " and c != "\n" for c in body):
            raise VerificationError("checkpoint: control character")
        size = _canonical_u64(lines[1], "checkpoint: tree size")
        root = hash_from_base64(lines[2], "checkpoint: root hash")
        return cls(origin=lines[0], size=size, root=root, extensions=tuple(lines[3:]))


def open_checkpoint(signed: str, verifiers: Iterable[Verifier], origin: str) -> Checkpoint:
    """Opens a signed checkpoint: the note must verify and name ``origin``."""
    note = open_note(signed, verifiers)
    checkpoint = Checkpoint.parse(note.text)
    if checkpoint.origin != origin:
        raise VerificationError(f"checkpoint is of log {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


@dataclass(frozen=True)
class TlogProof:
    """A ``c2sp.org/tlog-proof@v1`` receipt: a leaf index, its inclusion proof and the signed
    checkpoint (verbatim) it leads to."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        head, sep, checkpoint = text.partition("\n\n")
        if not sep:
            raise VerificationError("tlog-proof: no blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != _TLOG_PROOF_HEADER:
            raise VerificationError(f"tlog-proof: first line is not {_TLOG_PROOF_HEADER}")
        rest = lines[1:]
        extra = None
        if rest and rest[0].startswith("extra "):
            try:
                extra = base64.b64decode(rest[0][len("extra ") :], validate=True)
            except (binascii.Error, ValueError):
                raise VerificationError("tlog-proof: extra data is not base64") from None
            rest = rest[1:]
        if not rest or not rest[0].startswith("index "):
            raise VerificationError("tlog-proof: expected an index line")
        index = _canonical_u64(rest[0][len("index ") :], "tlog-proof: index")
        proof = tuple(hash_from_base64(line, f"tlog-proof: proof line {i + 1}") for i, line in enumerate(rest[1:]))
        if len(proof) > 63:
            raise VerificationError(f"tlog-proof: {len(proof)} proof lines, a tree has at most 63 levels")
        return cls(index=index, proof=proof, checkpoint=checkpoint, extra=extra)

    def verify(self, entry: bytes, verifiers: Iterable[Verifier], origin: str) -> Checkpoint:
        """Checks that ``entry`` is the leaf at ``index`` of the log ``origin`` as of a checkpoint
        signed by one of ``verifiers``; answers that checkpoint."""
        checkpoint = open_checkpoint(self.checkpoint, verifiers, origin)
        verify_inclusion(leaf_hash(entry), self.index, checkpoint.size, self.proof, checkpoint.root)
        return checkpoint


def verify_receipt(receipt: str, entry: bytes, vkeys: Iterable[str], origin: str | None = None) -> Checkpoint:
    """Verifies a ``c2sp.org/tlog-proof@v1`` receipt for ``entry`` (the exact entry bytes, as
    ``GET /v1/events/{event_id}/entry`` answers them) against the log's verifier keys.

    ``origin`` defaults to the name of the first key, which is the log's origin for Evident's logs.
    Raises :class:`VerificationError` on any failure; answers the checkpoint proved against.
    """
    verifiers = [Verifier.parse(v.strip()) for v in vkeys if v.strip()]
    if not verifiers:
        raise VerificationError("no verifier key given")
    return TlogProof.parse(receipt).verify(entry, verifiers, origin or verifiers[0].name)
