/**
 * Offline verification of what the service hands out, as `crates/evident-tlog` does it:
 * C2SP signed notes (c2sp.org/signed-note, Ed25519 type 0x01, witness `cosignature/v1` type 0x04)
 * with Go's vkey texts, C2SP tlog-checkpoint bodies, and `c2sp.org/tlog-proof@v1` receipts.
 *
 * Opening a note follows Go's `note.Open`: signatures by unknown keys are ignored, any bad
 * signature by a known key fails the whole note, and at least one known signature must be there.
 * Ed25519 comes from `node:crypto`; no other dependency.
 */

import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";

import { VerificationError } from "./errors.js";
import { type Hash, hashFromBase64, hashToBase64, leafHash, verifyInclusion } from "./tlog.js";

/** Signature type of Ed25519 note signatures. */
export const ALG_ED25519 = 0x01;
/** Signature type of Ed25519 `cosignature/v1` witness cosignatures. */
export const ALG_COSIGNATURE_V1 = 0x04;

const SIGNATURE_PREFIX = "\u2014 ";
const MAX_SIGNATURES = 100;
const TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1";

function malformed(what: string, reason: string): VerificationError {
  return new VerificationError("malformed", `${what}: ${reason}`);
}

/** Standard padded base64, refusing any spelling that does not round-trip. */
function strictBase64(text: string, what: string): Buffer {
  const bytes = Buffer.from(text, "base64");
  if (bytes.toString("base64") !== text) throw malformed(what, "not canonical base64");
  return bytes;
}

/** A key name: non-empty, no white space, no `+`. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name);
}

/** The 32-bit key id: the first four bytes of `SHA-256(name || "\n" || type || public key)`. */
export function keyId(name: string, alg: number, publicKey: Uint8Array): number {
  const digest = createHash("sha256").update(name).update("\n").update(Uint8Array.of(alg)).update(publicKey).digest();
  return digest.readUInt32BE(0);
}

/** A public key that checks note signatures: parsed from a vkey `<name>+<key id>+<base64(type || key)>`. */
export class Verifier {
  private constructor(
    readonly name: string,
    readonly keyId: number,
    readonly alg: number,
    readonly publicKey: Uint8Array,
    private readonly key: KeyObject,
  ) {}

  static parse(vkey: string): Verifier {
    const bad = (reason: string) => malformed("verifier key", `${JSON.stringify(vkey)}: ${reason}`);
    const first = vkey.indexOf("+");
    const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
    if (second < 0) throw bad("want <name>+<key id>+<key>");
    const [name, idHex, material] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
    if (!isValidKeyName(name)) throw bad("invalid key name");
    if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw bad("key id is not 8 hex digits");
    const bytes = strictBase64(material, "verifier key");
    const alg = bytes[0];
    if (alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1) {
      throw bad(alg === undefined ? "empty key material" : `unsupported signature type ${alg}`);
    }
    const publicKey = new Uint8Array(bytes.subarray(1));
    if (publicKey.length !== 32) throw bad("Ed25519 public key is not 32 bytes");
    const id = Number.parseInt(idHex, 16);
    if (keyId(name, alg, publicKey) !== id) throw bad("key id does not match the key");
    let key: KeyObject;
    try {
      const x = Buffer.from(publicKey).toString("base64url");
      key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
    } catch {
      throw bad("not an Ed25519 public key");
    }
    return new Verifier(name, id, alg, publicKey, key);
  }

  toVkey(): string {
    const material = Buffer.concat([Uint8Array.of(this.alg), this.publicKey]).toString("base64");
    return `${this.name}+${this.keyId.toString(16).padStart(8, "0")}+${material}`;
  }

  /** Checks `signature` (the bytes after the key id) over the note text. */
  verifies(text: string, signature: Uint8Array): boolean {
    let message: Buffer;
    let ed25519: Uint8Array;
    if (this.alg === ALG_COSIGNATURE_V1) {
      // c2sp.org/tlog-cosignature: u64 timestamp || signature over "cosignature/v1\ntime <t>\n" || text.
      if (signature.length !== 72) return false;
      const time = Buffer.from(signature.subarray(0, 8)).readBigUInt64BE(0);
      if (time > (1n << 63n) - 1n) return false;
      message = Buffer.from(`cosignature/v1\ntime ${time}\n${text}`);
      ed25519 = signature.subarray(8);
    } else {
      message = Buffer.from(text);
      ed25519 = signature;
    }
    if (ed25519.length !== 64) return false;
    try {
      return cryptoVerify(null, message, this.key, ed25519);
    } catch {
      return false;
    }
  }
}

/** One signature line of a note. */
export interface NoteSignature {
  name: string;
  keyId: number;
  /** The bytes after the key id. */
  signature: Uint8Array;
}

/** An opened note: its text, the signatures that verified and those by unknown keys. */
export interface Note {
  text: string;
  verified: NoteSignature[];
  unverified: NoteSignature[];
}

function toVerifiers(keys: ReadonlyArray<Verifier | string>): Verifier[] {
  return keys.map((key) => (typeof key === "string" ? Verifier.parse(key.trim()) : key));
}

function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIGNATURE_PREFIX)) {
    throw malformed("note", "signature line does not start with an em dash and a space");
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(" ");
  if (space < 0) throw malformed("note", "signature line has no signature");
  const name = rest.slice(0, space);
  const b64 = rest.slice(space + 1);
  const bytes = Buffer.from(b64, "base64");
  if (bytes.toString("base64") !== b64 || bytes.length < 5 || !isValidKeyName(name)) {
    throw malformed("note", `bad signature line for ${JSON.stringify(name)}`);
  }
  return { name, keyId: bytes.readUInt32BE(0), signature: new Uint8Array(bytes.subarray(4)) };
}

/**
 * Opens a signed note with the trusted keys. Throws {@link VerificationError}: `malformed`,
 * `bad_signature` (a known key's signature fails), `no_known_signature`.
 */
export function openNote(message: string, trusted: ReadonlyArray<Verifier | string>): Note {
  const verifiers = toVerifiers(trusted);
  if (/[\u0000-\u0009\u000b-\u001f]/.test(message)) throw malformed("note", "holds a control character");
  const split = message.lastIndexOf("\n\n");
  if (split < 0) throw malformed("note", "no blank line before the signatures");
  const text = message.slice(0, split + 1);
  const block = message.slice(split + 2);
  if (block.length === 0 || !block.endsWith("\n")) {
    throw malformed("note", "signature block is empty or does not end with a newline");
  }
  const note: Note = { text, verified: [], unverified: [] };
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw malformed("note", `more than ${MAX_SIGNATURES} signatures`);
  for (const line of lines) {
    const signature = parseSignatureLine(line);
    const known = verifiers.find((v) => v.name === signature.name && v.keyId === signature.keyId);
    const same = (s: NoteSignature) => s.name === signature.name && s.keyId === signature.keyId;
    if (known === undefined) {
      if (!note.unverified.some((s) => same(s) && Buffer.compare(s.signature, signature.signature) === 0)) {
        note.unverified.push(signature);
      }
      continue;
    }
    if (note.verified.some(same)) continue; // Go drops repeated signatures by one key after the first
    if (!known.verifies(text, signature.signature)) {
      throw new VerificationError(
        "bad_signature",
        `the signature of ${signature.name}+${signature.keyId.toString(16).padStart(8, "0")} does not verify`,
      );
    }
    note.verified.push(signature);
  }
  if (note.verified.length === 0) {
    throw new VerificationError("no_known_signature", "no signature by a trusted key");
  }
  return note;
}

/** A C2SP tlog-checkpoint body. */
export interface Checkpoint {
  origin: string;
  /** A bigint: tree sizes are unsigned 64-bit. */
  size: bigint;
  root: Hash;
  extensions: string[];
}

function canonicalU64(text: string, what: string, context: string): bigint {
  if (!/^(0|[1-9][0-9]*)$/.test(text) || BigInt(text) >= 1n << 64n) {
    throw malformed(context, `${what} ${JSON.stringify(text)} is not a canonical decimal u64`);
  }
  return BigInt(text);
}

/** Parses a checkpoint's note text strictly. */
export function parseCheckpoint(body: string): Checkpoint {
  if (!body.endsWith("\n")) throw malformed("checkpoint", "does not end with a newline");
  if (/[\u0000-\u0009\u000b-\u001f]/.test(body)) throw malformed("checkpoint", "control character");
  const [origin, sizeText, rootText, ...extensions] = body.slice(0, -1).split("\n");
  if (!origin) throw malformed("checkpoint", "empty origin line");
  if (sizeText === undefined) throw malformed("checkpoint", "no tree size line");
  if (rootText === undefined) throw malformed("checkpoint", "no root hash line");
  if (extensions.some((line) => line.length === 0)) throw malformed("checkpoint", "empty extension line");
  return {
    origin,
    size: canonicalU64(sizeText, "tree size", "checkpoint"),
    root: hashFromBase64(rootText, "checkpoint root hash"),
    extensions,
  };
}

/** Opens a signed checkpoint: the note must verify with `trusted` and name `origin`. */
export function openCheckpoint(signed: string, trusted: ReadonlyArray<Verifier | string>, origin: string): Checkpoint {
  const note = openNote(signed, trusted);
  const checkpoint = parseCheckpoint(note.text);
  if (checkpoint.origin !== origin) {
    throw new VerificationError(
      "wrong_origin",
      `the checkpoint is of log ${JSON.stringify(checkpoint.origin)}, not ${JSON.stringify(origin)}`,
    );
  }
  return checkpoint;
}

/** A parsed `c2sp.org/tlog-proof@v1`. */
export interface TlogProof {
  /** Opaque, unauthenticated application data. */
  extra?: Uint8Array;
  index: bigint;
  /** From the leaf's sibling up to the root's child. */
  proof: Hash[];
  /** The signed checkpoint note, verbatim. */
  checkpoint: string;
}

/** Parses the text form of a tlog-proof strictly (the checkpoint is checked by verification). */
export function parseTlogProof(text: string): TlogProof {
  const split = text.indexOf("\n\n");
  if (split < 0) throw malformed("tlog-proof", "no blank line before the checkpoint");
  const lines = text.slice(0, split).split("\n");
  const checkpoint = text.slice(split + 2);
  if (lines.shift() !== TLOG_PROOF_HEADER) throw malformed("tlog-proof", `first line is not ${TLOG_PROOF_HEADER}`);
  let line = lines.shift();
  let extra: Uint8Array | undefined;
  if (line?.startsWith("extra ")) {
    extra = new Uint8Array(strictBase64(line.slice("extra ".length), "tlog-proof extra data"));
    line = lines.shift();
  }
  if (line === undefined || !line.startsWith("index ")) {
    throw malformed("tlog-proof", `expected an index line, got ${JSON.stringify(line ?? "")}`);
  }
  const index = canonicalU64(line.slice("index ".length), "index", "tlog-proof");
  const proof = lines.map((hash, at) => hashFromBase64(hash, `tlog-proof line ${at + 1}`));
  if (proof.length > 63) throw malformed("tlog-proof", `${proof.length} proof lines, a tree has at most 63 levels`);
  const parsed: TlogProof = { index, proof, checkpoint };
  if (extra !== undefined) parsed.extra = extra;
  return parsed;
}

/** What a verified receipt proves. */
export interface VerifiedReceipt {
  origin: string;
  index: bigint;
  treeSize: bigint;
  /** The root hash in base64, as the checkpoint spells it. */
  root: string;
  /** The `event_id` of the entry, when the entry is an Evident event. */
  eventId?: string;
}

export interface VerifyReceiptInput {
  /** The `c2sp.org/tlog-proof@v1` text (`GET /v1/events/{event_id}/proof`). */
  proof: string;
  /** The exact entry bytes (`GET /v1/events/{event_id}/entry`). */
  entry: Uint8Array | string;
  /** The log's verifier keys you trust (`GET /v1/logs/{tenant}/vkeys`, fetched once and pinned). */
  vkeys: ReadonlyArray<Verifier | string>;
  /** The log the receipt must come from; by default the origin its checkpoint names. */
  origin?: string;
}

/**
 * Verifies offline that `entry` is the leaf at the receipt's index of the log, as of a checkpoint
 * signed by a trusted key. Throws {@link VerificationError} when it does not.
 */
export function verifyReceipt(input: VerifyReceiptInput): VerifiedReceipt {
  if (input.vkeys.length === 0) {
    throw new VerificationError(
      "no_known_signature",
      "no verifier key given: pass the log's vkeys (GET /v1/logs/<tenant>/vkeys, fetched once and kept)",
    );
  }
  const receipt = parseTlogProof(input.proof);
  const origin = input.origin ?? receipt.checkpoint.split("\n", 1)[0]!;
  const checkpoint = openCheckpoint(receipt.checkpoint, input.vkeys, origin);
  const entry = typeof input.entry === "string" ? new TextEncoder().encode(input.entry) : input.entry;
  verifyInclusion(leafHash(entry), receipt.index, checkpoint.size, receipt.proof, checkpoint.root);
  const verified: VerifiedReceipt = {
    origin: checkpoint.origin,
    index: receipt.index,
    treeSize: checkpoint.size,
    root: hashToBase64(checkpoint.root),
  };
  const eventId = eventIdOf(entry);
  if (eventId !== undefined) verified.eventId = eventId;
  return verified;
}

function eventIdOf(entry: Uint8Array): string | undefined {
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(entry));
    const id = (parsed as { event_id?: unknown }).event_id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}
