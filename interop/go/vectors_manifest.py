#!/usr/bin/env python3
"""Build a Go-checker (tlogcheck) manifest from the shared test vectors.

Usage: vectors_manifest.py TLOG_VECTORS_JSON OUT_MANIFEST_JSON

The vectors (shared/vectors/tlog-vectors.json) were computed by Go's reference
packages, so every case taken from them as-is must verify. On top of them this
script makes negative cases (tampered notes, changed or missing proof hashes,
wrong leaf bytes, malformed receipts) and a few checkpoint-format cases whose
notes it signs itself with the vectors' fixed test signer key (pure-Python
Ed25519, RFC 8032; checked first to reproduce the vectors' own signature byte
for byte). It validates the checker, it does not test Evident's Rust code.

Standard library only, so CI can run it anywhere:

    interop/go/build.sh /tmp/tlogcheck
    python3 interop/go/vectors_manifest.py shared/vectors/tlog-vectors.json /tmp/m.json
    /tmp/tlogcheck /tmp/m.json
"""

import base64
import hashlib
import json
import struct
import sys

# --- Ed25519 signing (RFC 8032, section 6 reference code) -------------------

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_Q = 2**252 + 27742317777372353535851937790883648493
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _recover_x(y, sign):
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x & 1) != sign:
        x = _P - x
    return x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def _add(a, b):
    e1 = (a[1] - a[0]) * (b[1] - b[0]) % _P
    e2 = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c = 2 * a[3] * b[3] * _D % _P
    d = 2 * a[2] * b[2] % _P
    e, f, g, h = e2 - e1, d - c, d + c, e2 + e1
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s, pt):
    acc = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        s >>= 1
    return acc


def _compress(pt):
    zinv = pow(pt[2], _P - 2, _P)
    x, y = pt[0] * zinv % _P, pt[1] * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def _expand(seed):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a, h[32:]


def ed25519_public(seed):
    return _compress(_mul(_expand(seed)[0], _G))


def ed25519_sign(seed, msg):
    a, prefix = _expand(seed)
    pub = _compress(_mul(a, _G))
    r = int.from_bytes(hashlib.sha512(prefix + msg).digest(), "little") % _Q
    big_r = _compress(_mul(r, _G))
    k = int.from_bytes(hashlib.sha512(big_r + pub + msg).digest(), "little") % _Q
    return big_r + int.to_bytes((r + k * a) % _Q, 32, "little")


# --- signed notes (golang.org/x/mod/sumdb/note encoding) ---------------------


class Signer:
    """A note signer from Go's PRIVATE+KEY+name+hash+base64(0x01||seed)."""

    def __init__(self, skey):
        parts = skey.split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise ValueError("not a note signer key")
        self.name = parts[2]
        self.key_hash = int(parts[3], 16)
        key = base64.b64decode(parts[4], validate=True)
        if len(key) != 33 or key[0] != 1:
            raise ValueError("not an Ed25519 note signer key")
        self.seed = key[1:]
        pub = b"\x01" + ed25519_public(self.seed)
        # The key hash is SHA-256(name || "\n" || 0x01 || pubkey)[:4].
        want = struct.unpack(">I", hashlib.sha256(self.name.encode() + b"\n" + pub).digest()[:4])[0]
        if want != self.key_hash:
            raise ValueError("signer key hash mismatch")
        self.vkey = "%s+%08x+%s" % (self.name, self.key_hash, base64.b64encode(pub).decode())

    def sign(self, text):
        """Return the signed note for text (which must end in a newline)."""
        assert text.endswith("\n")
        sig = struct.pack(">I", self.key_hash) + ed25519_sign(self.seed, text.encode())
        return "%s\n\u2014 %s %s\n" % (text, self.name, base64.b64encode(sig).decode())


# --- helpers ----------------------------------------------------------------


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).hexdigest()


def flip_hex(h):
    """Flip the lowest bit of the first byte of a hex hash."""
    b = bytearray(bytes.fromhex(h))
    b[0] ^= 1
    return b.hex()


def flip_b64(s):
    b = bytearray(base64.b64decode(s, validate=True))
    b[0] ^= 1
    return base64.b64encode(bytes(b)).decode()


def b64(data):
    return base64.b64encode(data).decode()


class Receipt:
    """A c2sp.org/tlog-proof@v1 receipt split into its parts, to mutate."""

    def __init__(self, text):
        head, self.note = text.split("\n\n", 1)
        lines = head.split("\n")
        assert lines[0] == "c2sp.org/tlog-proof@v1", lines[0]
        assert lines[1].startswith("index "), lines[1]
        self.header = lines[0]
        self.extra = None
        self.index = lines[1][len("index "):]
        self.proof = lines[2:]

    def text(self):
        lines = [self.header]
        if self.extra is not None:
            lines.append("extra " + self.extra)
        lines.append("index " + self.index)
        lines += self.proof
        return "\n".join(lines) + "\n\n" + self.note

    def copy(self):
        r = Receipt.__new__(Receipt)
        r.__dict__.update(self.__dict__)
        r.proof = list(self.proof)
        return r


# --- the manifest -------------------------------------------------------------


def build(v):
    cp = v["checkpoint"]
    origin = cp["origin"]
    vkey = cp["verifier_key"]
    cases = []

    def case(name, kind, expect_ok, **fields):
        cases.append(dict(name=name, kind=kind, expect_ok=expect_ok, **fields))

    # Checkpoints from the vectors.
    case("checkpoint/note", "checkpoint", True, note=cp["note"])
    case("checkpoint/note_two_signatures", "checkpoint", True, note=cp["note_two_signatures"])
    case("checkpoint/note_tampered", "checkpoint", False, note=cp["note_tampered"])
    only_unknown = "".join(
        line for line in cp["note_two_signatures"].splitlines(keepends=True)
        if not line.startswith("\u2014 %s " % origin)
    )
    assert only_unknown != cp["note_two_signatures"]
    case("checkpoint/only_unknown_signature", "checkpoint", False, note=only_unknown)

    # Checkpoints signed here with the test key. First prove the signer
    # reproduces the vector's note exactly (Ed25519 is deterministic).
    signer = Signer(cp["signer_key"])
    if signer.vkey != vkey:
        raise SystemExit("vectors: signer_key does not match verifier_key")
    if signer.sign(cp["body"]) != cp["note"]:
        raise SystemExit("self-check failed: re-signing checkpoint.body does not give checkpoint.note")
    size_line, root_line = cp["body"].split("\n")[1:3]

    def body(*lines):
        return "".join(line + "\n" for line in lines)

    case("checkpoint/wrong_origin", "checkpoint", False,
         note=signer.sign(body("example.com/other-log", size_line, root_line)))
    case("checkpoint/extension_line", "checkpoint", True,
         note=signer.sign(body(origin, size_line, root_line, "ext: opaque extension")))
    case("checkpoint/empty_extension_line", "checkpoint", False,
         note=signer.sign(body(origin, size_line, root_line, "", "ext")))
    case("checkpoint/size_zero", "checkpoint", True,
         note=signer.sign(body(origin, "0", b64(hashlib.sha256(b"").digest()))))
    case("checkpoint/size_leading_zero", "checkpoint", False,
         note=signer.sign(body(origin, "0" + size_line, root_line)))
    case("checkpoint/size_plus_sign", "checkpoint", False,
         note=signer.sign(body(origin, "+" + size_line, root_line)))
    case("checkpoint/size_empty", "checkpoint", False,
         note=signer.sign(body(origin, "", root_line)))
    case("checkpoint/root_31_bytes", "checkpoint", False,
         note=signer.sign(body(origin, size_line, b64(base64.b64decode(root_line)[:31]))))
    assert root_line.endswith("g="), root_line  # last char carries 2 zero pad bits
    case("checkpoint/root_noncanonical_base64", "checkpoint", False,
         note=signer.sign(body(origin, size_line, root_line[:-2] + "h=")))
    case("checkpoint/two_lines", "checkpoint", False,
         note=signer.sign(body(origin, size_line)))

    # RFC 6962 inclusion and consistency: every case, positive.
    r = v["rfc6962"]
    roots, leaves = r["roots"], r["leaf_hashes"]
    for c in r["inclusion"]:
        case("rfc6962/inclusion/%d/%d" % (c["size"], c["index"]), "inclusion", True,
             size=c["size"], index=c["index"], leaf_hash=leaves[c["index"]],
             root=roots[str(c["size"])], proof=c["proof"])
    for c in r["consistency"]:
        case("rfc6962/consistency/%d/%d" % (c["old_size"], c["new_size"]), "consistency", True,
             old_size=c["old_size"], new_size=c["new_size"], old_root=roots[str(c["old_size"])],
             new_root=roots[str(c["new_size"])], proof=c["proof"])

    # The entries tree (leaf i is "entry-<i>"): samples whose sizes have roots.
    e = v["entries"]
    eroots, pattern = e["roots"], e["leaf_pattern"]
    n_entries = 0
    for c in e["inclusion"]:
        if str(c["size"]) not in eroots:
            continue
        n_entries += 1
        case("entries/inclusion/%d/%d" % (c["size"], c["index"]), "inclusion", True,
             size=c["size"], index=c["index"],
             leaf_hash=leaf_hash((pattern % c["index"]).encode()),
             root=eroots[str(c["size"])], proof=c["proof"])
    for c in e["consistency"]:
        if str(c["old_size"]) not in eroots or str(c["new_size"]) not in eroots:
            continue
        n_entries += 1
        case("entries/consistency/%d/%d" % (c["old_size"], c["new_size"]), "consistency", True,
             old_size=c["old_size"], new_size=c["new_size"], old_root=eroots[str(c["old_size"])],
             new_root=eroots[str(c["new_size"])], proof=c["proof"])
    if n_entries == 0:
        raise SystemExit("vectors: no entries sample has its roots")

    # Negative inclusion and consistency cases.
    def find(items, **want):
        return next(c for c in items if all(c[k] == x for k, x in want.items()))

    inc = find(r["inclusion"], size=8, index=3)
    base = dict(size=8, index=3, leaf_hash=leaves[3], root=roots["8"])
    for i in range(len(inc["proof"])):
        proof = list(inc["proof"])
        proof[i] = flip_hex(proof[i])
        case("negative/inclusion/8/3/hash_%d_changed" % i, "inclusion", False, proof=proof, **base)
    case("negative/inclusion/8/3/hash_dropped", "inclusion", False, proof=inc["proof"][:-1], **base)
    case("negative/inclusion/8/3/hash_added", "inclusion", False,
         proof=inc["proof"] + [inc["proof"][0]], **base)
    case("negative/inclusion/8/3/short_hash", "inclusion", False,
         proof=[inc["proof"][0][:-2]] + inc["proof"][1:], **base)
    case("negative/inclusion/8/3/wrong_index", "inclusion", False,
         proof=inc["proof"], **dict(base, index=2))
    case("negative/inclusion/8/3/wrong_leaf", "inclusion", False,
         proof=inc["proof"], **dict(base, leaf_hash=leaves[4]))
    case("negative/inclusion/8/3/wrong_size", "inclusion", False,
         proof=inc["proof"], **dict(base, size=7, root=roots["7"]))
    case("negative/inclusion/8/8/index_not_below_size", "inclusion", False,
         proof=inc["proof"], **dict(base, index=8))
    einc = find(e["inclusion"], size=65537, index=12345)
    proof = list(einc["proof"])
    proof[5] = flip_hex(proof[5])
    case("negative/inclusion/entries/65537/12345/hash_changed", "inclusion", False,
         size=65537, index=12345, leaf_hash=leaf_hash(b"entry-12345"),
         root=eroots["65537"], proof=proof)

    con = find(r["consistency"], old_size=3, new_size=8)
    cbase = dict(old_size=3, new_size=8, old_root=roots["3"], new_root=roots["8"])
    for i in range(len(con["proof"])):
        case("negative/consistency/3/8/hash_%d_dropped" % i, "consistency", False,
             proof=con["proof"][:i] + con["proof"][i + 1:], **cbase)
    case("negative/consistency/3/8/hash_changed", "consistency", False,
         proof=[flip_hex(con["proof"][0])] + con["proof"][1:], **cbase)
    case("negative/consistency/3/8/wrong_old_root", "consistency", False,
         proof=con["proof"], **dict(cbase, old_root=roots["4"]))
    case("negative/consistency/3/8/wrong_new_root", "consistency", False,
         proof=con["proof"], **dict(cbase, new_root=roots["7"]))
    case("negative/consistency/8/8/nonempty_proof", "consistency", False,
         old_size=8, new_size=8, old_root=roots["8"], new_root=roots["8"], proof=[roots["8"]])
    econ = find(e["consistency"], old_size=69, new_size=70000)
    case("negative/consistency/entries/69/70000/hash_dropped", "consistency", False,
         old_size=69, new_size=70000, old_root=eroots["69"], new_root=eroots["70000"],
         proof=econ["proof"][:-1])

    # Receipts (c2sp.org/tlog-proof@v1) for entry 12345.
    leaf = b64(b"entry-12345")
    rc = Receipt(cp["tlog_proof"])
    assert rc.index == "12345" and rc.note == cp["note"]
    case("tlog_proof/vector", "tlog_proof", True, receipt=cp["tlog_proof"], leaf_b64=leaf)

    def receipt_case(name, ok, mutate, leaf_b64=leaf):
        m = rc.copy()
        mutate(m)
        case(name, "tlog_proof", ok, receipt=m.text(), leaf_b64=leaf_b64)

    receipt_case("tlog_proof/with_extra", True, lambda m: setattr(m, "extra", b64(b"opaque extra data")))
    receipt_case("tlog_proof/cosigned_checkpoint", True,
                 lambda m: setattr(m, "note", cp["note_two_signatures"]))
    for i in (0, len(rc.proof) // 2, len(rc.proof) - 1):
        def flip(m, i=i):
            m.proof[i] = flip_b64(m.proof[i])
        receipt_case("negative/tlog_proof/proof_line_%d_flipped" % i, False, flip)
    case("negative/tlog_proof/wrong_leaf", "tlog_proof", False,
         receipt=cp["tlog_proof"], leaf_b64=b64(b"entry-12346"))
    case("negative/tlog_proof/empty_leaf", "tlog_proof", False,
         receipt=cp["tlog_proof"], leaf_b64="")
    receipt_case("negative/tlog_proof/proof_line_dropped", False, lambda m: m.proof.pop())
    receipt_case("negative/tlog_proof/wrong_index", False, lambda m: setattr(m, "index", "12344"))
    receipt_case("negative/tlog_proof/index_leading_zero", False, lambda m: setattr(m, "index", "012345"))
    receipt_case("negative/tlog_proof/index_not_below_size", False, lambda m: setattr(m, "index", "70000"))
    receipt_case("negative/tlog_proof/bad_header", False,
                 lambda m: setattr(m, "header", "c2sp.org/tlog-proof@v2"))
    receipt_case("negative/tlog_proof/extra_not_base64", False, lambda m: setattr(m, "extra", "not base64!"))
    receipt_case("negative/tlog_proof/tampered_checkpoint", False,
                 lambda m: setattr(m, "note", cp["note_tampered"]))
    receipt_case("negative/tlog_proof/checkpoint_wrong_origin", False,
                 lambda m: setattr(m, "note", signer.sign(body("example.com/other-log", size_line, root_line))))
    receipt_case("negative/tlog_proof/proof_line_not_base64", False,
                 lambda m: m.proof.__setitem__(0, m.proof[0].rstrip("=")))

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return {"vkey": vkey, "origin": origin, "cases": cases}


def main(argv):
    if len(argv) != 3:
        print("usage: %s TLOG_VECTORS_JSON OUT_MANIFEST_JSON" % argv[0], file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        vectors = json.load(f)
    manifest = build(vectors)
    with open(argv[2], "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    n_neg = sum(1 for c in manifest["cases"] if not c["expect_ok"])
    print("%s: %d cases (%d negative)" % (argv[2], len(manifest["cases"]), n_neg))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
