// Proof checking in the page: RFC 6962 / RFC 9162 Merkle proofs with WebCrypto SHA-256, C2SP
// signed notes (checkpoints) with WebCrypto Ed25519. Nothing here trusts the server: it gets
// bytes and proofs and decides itself.

const enc = new TextEncoder();

export function b64decode(text) {
  const raw = atob(text.trim());
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

export function b64encode(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

export const leafHash = (entry) => sha256(concat(new Uint8Array([0]), entry));
const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

/** RFC 9162 2.1.3.2: the root that an inclusion proof leads to from a leaf hash. */
export async function rootFromInclusion(leaf, index, size, proof) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn > sn) throw new Error(`index ${index} is beyond the tree of size ${size}`);
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error('the proof is longer than the tree is deep');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('the proof is shorter than the tree is deep');
  return r;
}

/** RFC 9162 2.1.4.2: whether `proof` shows the tree (size1, root1) is a prefix of (size2, root2). */
export async function verifyConsistency(size1, root1, size2, root2, proof) {
  let [n1, n2] = [BigInt(size1), BigInt(size2)];
  if (n1 > n2) return false;
  if (n1 === n2) return proof.length === 0 && equal(root1, root2);
  if (n1 === 0n) return proof.length === 0;
  const path = (n1 & (n1 - 1n)) === 0n ? [root1, ...proof] : [...proof];
  if (path.length === 0) return false;
  let fn = n1 - 1n;
  let sn = n2 - 1n;
  while ((fn & 1n) === 1n) { fn >>= 1n; sn >>= 1n; }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n; sn >>= 1n;
  }
  return sn === 0n && equal(fr, root1) && equal(sr, root2);
}

/** A vkey `name+hash+base64(type || ed25519 public key)`: type 0x01 signs notes, 0x04 cosigns (witnesses). */
export async function parseVkey(text, type = 1) {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+(\S+)$/.exec(text.trim());
  if (!m) throw new Error('a verifier key is name+hash+base64 (the hash 8 hex digits)');
  const [, name, hash, b64] = m;
  const material = b64decode(b64);
  if (material.length !== 33 || material[0] !== type) {
    throw new Error(type === 4 ? 'not an Ed25519 witness (cosignature/v1) key' : 'not an Ed25519 verifier key');
  }
  const key = material.slice(1);
  const id = (await sha256(concat(enc.encode(`${name}\n`), material))).slice(0, 4);
  const hex = [...id].map((b) => b.toString(16).padStart(2, '0')).join('');
  if (hex !== hash) throw new Error(`the key hash ${hash} does not match the key (${hex})`);
  return { name, id, key, text: text.trim() };
}

/** Splits a signed note into its text (which signatures cover) and signature lines. */
export function parseNote(note) {
  const cut = note.indexOf('\n\n');
  if (cut < 0) throw new Error('the checkpoint has no blank line before its signatures');
  const text = note.slice(0, cut + 1);
  const signatures = note.slice(cut + 2).split('\n').filter(Boolean).map((line) => {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new Error(`malformed signature line: ${line}`);
    const bytes = b64decode(m[2]);
    return { name: m[1], id: bytes.slice(0, 4), signature: bytes.slice(4) };
  });
  return { text, signatures };
}

/** The checkpoint's origin, size and root (C2SP tlog-checkpoint). */
export function parseCheckpoint(text) {
  const lines = text.split('\n');
  if (lines.length < 4 || !/^\d+$/.test(lines[1])) throw new Error('malformed checkpoint body');
  return { origin: lines[0], size: BigInt(lines[1]), root: b64decode(lines[2]) };
}

/** Whether one of the note's signatures is a valid Ed25519 signature by `vkey`. */
export async function verifyNote(note, vkey) {
  if (!crypto.subtle) throw new Error('this page is not a secure context (serve the console over HTTPS)');
  const { text, signatures } = parseNote(note);
  const mine = signatures.filter((sig) => sig.name === vkey.name && equal(sig.id, vkey.id));
  if (mine.length === 0) throw new Error(`the checkpoint carries no signature by ${vkey.name}`);
  const key = await crypto.subtle.importKey('raw', vkey.key, { name: 'Ed25519' }, false, ['verify']);
  for (const sig of mine) {
    if (await crypto.subtle.verify({ name: 'Ed25519' }, key, sig.signature, enc.encode(text))) return parseCheckpoint(text);
  }
  throw new Error('the checkpoint signature does not verify with the log key');
}

/** A `c2sp.org/tlog-proof@v1` receipt: index, proof hashes, the checkpoint note. */
export function parseReceipt(text) {
  const cut = text.indexOf('\n\n');
  if (cut < 0) throw new Error('the receipt has no blank line before its checkpoint');
  const lines = text.slice(0, cut).split('\n');
  if (lines.shift() !== 'c2sp.org/tlog-proof@v1') throw new Error('not a c2sp.org/tlog-proof@v1 receipt');
  if (lines[0]?.startsWith('extra ')) lines.shift();
  const index = /^index (\d+)$/.exec(lines.shift() || '');
  if (!index) throw new Error('the receipt has no index line');
  return { index: BigInt(index[1]), proof: lines.map(b64decode), checkpoint: text.slice(cut + 2) };
}
