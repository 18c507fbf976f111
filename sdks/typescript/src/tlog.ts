/**
 * RFC 6962 / RFC 9162 §2.1 Merkle tree hashing and proof verification, the same algorithms as
 * `crates/evident-tlog/src/proof.rs`: leaf and node hashes, inclusion proofs (§2.1.3.2) and
 * consistency proofs (§2.1.4.2). Pure functions over byte arrays; SHA-256 from `node:crypto`.
 *
 * Verification never trusts a proof's length or order: the bit walks reject short, long and
 * reordered proofs, and a consistency proof from the empty tree is refused (it commits to nothing).
 */

import { createHash } from "node:crypto";

import { VerificationError } from "./errors.js";

/** A SHA-256 hash: 32 bytes. */
export type Hash = Uint8Array;

function sha256(...parts: Uint8Array[]): Hash {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** `SHA-256(0x00 || entry)`. */
export function leafHash(entry: Uint8Array | string): Hash {
  const bytes = typeof entry === "string" ? new TextEncoder().encode(entry) : entry;
  return sha256(LEAF_PREFIX, bytes);
}

/** `SHA-256(0x01 || left || right)`. */
export function nodeHash(left: Hash, right: Hash): Hash {
  return sha256(NODE_PREFIX, left, right);
}

/** The root of the empty tree: `SHA-256("")`. */
export function emptyRoot(): Hash {
  return sha256();
}

export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Parses standard padded base64 of exactly 32 bytes, as checkpoints and proof lines carry it.
 * Non-canonical spellings are refused, so that one hash has one spelling.
 */
export function hashFromBase64(text: string, what = "hash"): Hash {
  const bytes = Buffer.from(text, "base64");
  if (bytes.length !== 32) {
    throw new VerificationError("malformed", `${what}: ${bytes.length} bytes of base64, want 32`);
  }
  if (bytes.toString("base64") !== text) {
    throw new VerificationError("malformed", `${what}: not canonical base64`);
  }
  return new Uint8Array(bytes);
}

export function hashToBase64(hash: Hash): string {
  return Buffer.from(hash).toString("base64");
}

/** A tree size or leaf index: a non-negative safe integer or a bigint. */
export type Position = number | bigint;

function position(value: Position, what: string): bigint {
  const big = typeof value === "bigint" ? value : Number.isSafeInteger(value) ? BigInt(value) : -1n;
  if (big < 0n || big >= 1n << 64n) {
    throw new VerificationError("invalid_position", `${what} ${String(value)} is not an unsigned 64-bit integer`);
  }
  return big;
}

/** The walks' inner loop (RFC 9162 §2.1.3.2 step 5, §2.1.4.2 step 6): until LSB(fn) is set or fn is 0, shift both right. */
function shiftOutZeros(fn: bigint, sn: bigint): [bigint, bigint] {
  while ((fn & 1n) === 0n && fn !== 0n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  return [fn, sn];
}

/**
 * Steps 2 to 5 of RFC 9162 §2.1.3.2 without the final comparison: the root an inclusion proof
 * implies for `leaf` at `index` in a tree of `size` leaves.
 */
export function rootFromInclusionProof(leaf: Hash, index: Position, size: Position, proof: Hash[]): Hash {
  const leafIndex = position(index, "leaf index");
  const treeSize = position(size, "tree size");
  if (leafIndex >= treeSize) {
    throw new VerificationError("invalid_position", `leaf index ${leafIndex} is not below tree size ${treeSize}`);
  }
  let fn = leafIndex;
  let sn = treeSize - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) {
      throw new VerificationError("proof_mismatch", "inclusion proof is longer than the tree is deep");
    }
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      [fn, sn] = shiftOutZeros(fn, sn);
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) {
    throw new VerificationError("proof_mismatch", "inclusion proof is shorter than the path to the root");
  }
  return r;
}

/** Checks an inclusion proof exactly as RFC 9162 §2.1.3.2 says; throws {@link VerificationError}. */
export function verifyInclusion(leaf: Hash, index: Position, size: Position, proof: Hash[], root: Hash): void {
  checkHashes([leaf, root, ...proof]);
  const computed = rootFromInclusionProof(leaf, index, size, proof);
  if (!hashesEqual(computed, root)) {
    throw new VerificationError("root_mismatch", "the inclusion proof leads to another root hash");
  }
}

function checkHashes(hashes: Hash[]): void {
  for (const hash of hashes) {
    if (hash.length !== 32) {
      throw new VerificationError("malformed", `a hash of ${hash.length} bytes, want 32`);
    }
  }
}

/**
 * Checks a consistency proof exactly as RFC 9162 §2.1.4.2 says, with the cases the algorithm
 * leaves to its preconditions: equal sizes need an empty proof and equal roots, and a proof from
 * the empty tree is refused (the policy of transparency-dev/merkle).
 */
export function verifyConsistency(
  oldSize: Position,
  newSize: Position,
  oldRoot: Hash,
  newRoot: Hash,
  proof: Hash[],
): void {
  const m = position(oldSize, "old tree size");
  const n = position(newSize, "new tree size");
  checkHashes([oldRoot, newRoot, ...proof]);
  if (m > n) {
    throw new VerificationError("invalid_position", `old tree size ${m} is above new tree size ${n}`);
  }
  if (m === 0n) {
    throw new VerificationError("invalid_position", "a consistency proof from the empty tree proves nothing");
  }
  if (m === n) {
    if (proof.length !== 0) {
      throw new VerificationError("proof_mismatch", "consistency proof between equal sizes must be empty");
    }
    if (!hashesEqual(oldRoot, newRoot)) throw new VerificationError("root_mismatch", "equal sizes, different roots");
    return;
  }
  if (proof.length === 0) throw new VerificationError("proof_mismatch", "consistency proof is empty");
  // Step 2: when the old tree is a complete subtree, its root is the first node of the path.
  const path = (m & (m - 1n)) === 0n ? [oldRoot, ...proof] : [...proof];
  // Steps 3 and 4.
  let fn = m - 1n;
  let sn = n - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  // Step 5.
  let fr = path[0]!;
  let sr = path[0]!;
  // Step 6.
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new VerificationError("proof_mismatch", "consistency proof is longer than needed");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      [fn, sn] = shiftOutZeros(fn, sn);
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // Step 7.
  if (sn !== 0n) throw new VerificationError("proof_mismatch", "consistency proof is shorter than needed");
  if (!hashesEqual(fr, oldRoot) || !hashesEqual(sr, newRoot)) {
    throw new VerificationError("root_mismatch", "the consistency proof does not lead to both roots");
  }
}
