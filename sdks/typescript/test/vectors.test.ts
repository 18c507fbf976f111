/**
 * Offline verification against known answers from outside implementations (`../shared/vectors`):
 * Go's sumdb/tlog and sumdb/note, and transparency-dev/merkle's test data. Also what the parsers
 * refuse.
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import {
  leafHash,
  openCheckpoint,
  openNote,
  parseCheckpoint,
  parseTlogProof,
  verifyConsistency,
  verifyInclusion,
  verifyReceipt,
  VerificationError,
  Verifier,
} from "../src/index.js";
import { REPO_ROOT } from "./helpers/server.js";

const VECTORS = process.env.EVIDENT_VECTORS ?? path.resolve(REPO_ROOT, "../shared/vectors");
if (!fs.existsSync(path.join(VECTORS, "tlog-vectors.json"))) {
  throw new Error(
    `the shared vectors are missing at ${VECTORS}: check out ../shared next to the repository or set EVIDENT_VECTORS`,
  );
}
const vectors = JSON.parse(fs.readFileSync(path.join(VECTORS, "tlog-vectors.json"), "utf8"));

const hex = (text: string) => new Uint8Array(Buffer.from(text, "hex"));
const b64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

/** Runs `check`; the failure kind it throws, or "ok". */
function outcome(check: () => unknown): string {
  try {
    check();
    return "ok";
  } catch (err) {
    if (err instanceof VerificationError) return err.failure;
    throw err;
  }
}

describe("RFC 6962 known answers (Go sumdb/tlog)", () => {
  const rfc = vectors.rfc6962;
  const leaves: Uint8Array[] = rfc.leaves_hex.map(hex);

  it("hashes the eight test leaves", () => {
    leaves.forEach((leaf, at) => assert.equal(Buffer.from(leafHash(leaf)).toString("hex"), rfc.leaf_hashes[at]));
  });

  it("verifies every inclusion proof and refuses each with a flipped bit", () => {
    assert.equal(rfc.inclusion.length, 36);
    for (const { index, size, proof } of rfc.inclusion) {
      const hashes = proof.map(hex);
      verifyInclusion(leafHash(leaves[index]!), index, size, hashes, hex(rfc.roots[size]));
      if (hashes.length > 0) {
        const flipped = hashes.map((h: Uint8Array) => new Uint8Array(h));
        flipped[0][5] ^= 1;
        assert.equal(
          outcome(() => verifyInclusion(leafHash(leaves[index]!), index, size, flipped, hex(rfc.roots[size]))),
          "root_mismatch",
        );
      }
      assert.notEqual(
        outcome(() => verifyInclusion(leafHash(leaves[index]!), index + 1, size, hashes, hex(rfc.roots[size]))),
        "ok",
      );
    }
  });

  it("verifies every consistency proof", () => {
    assert.equal(rfc.consistency.length, 36);
    for (const { old_size, new_size, proof } of rfc.consistency) {
      verifyConsistency(old_size, new_size, hex(rfc.roots[old_size]), hex(rfc.roots[new_size]), proof.map(hex));
      if (old_size < new_size) {
        assert.notEqual(
          outcome(() =>
            verifyConsistency(
              old_size,
              new_size,
              hex(rfc.roots[old_size]),
              hex(rfc.roots[new_size]),
              proof.slice(1).map(hex),
            ),
          ),
          "ok",
        );
      }
    }
  });
});

describe("the entry-<i> tree up to 70000 (Go sumdb/tlog)", () => {
  const entries = vectors.entries;
  it("verifies the sampled inclusion and consistency proofs", () => {
    assert.ok(entries.inclusion.length >= 10 && entries.consistency.length >= 10);
    for (const { index, size, proof } of entries.inclusion) {
      assert.ok(entries.roots[size], `a root for size ${size}`);
      verifyInclusion(leafHash(`entry-${index}`), index, size, proof.map(hex), hex(entries.roots[size]));
      assert.equal(
        outcome(() =>
          verifyInclusion(leafHash(`entry-${index}x`), index, size, proof.map(hex), hex(entries.roots[size])),
        ),
        "root_mismatch",
      );
    }
    for (const { old_size, new_size, proof } of entries.consistency) {
      verifyConsistency(old_size, new_size, hex(entries.roots[old_size]), hex(entries.roots[new_size]), proof.map(hex));
      assert.equal(
        outcome(() =>
          verifyConsistency(
            old_size,
            new_size,
            hex(entries.roots[new_size]),
            hex(entries.roots[new_size]),
            proof.map(hex),
          ),
        ),
        old_size === new_size ? "ok" : "root_mismatch",
      );
    }
  });
});

describe("transparency-dev/merkle test data", () => {
  const root = path.join(VECTORS, "transparency-dev-merkle");
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (fs.statSync(full).isDirectory()) walk(full);
      else if (name.endsWith(".json")) files.push(path.relative(root, full));
    }
  };
  walk(root);
  // Our one deliberate difference: equal sizes with placeholder "roots" that are not 32-byte hashes.
  // transparency-dev compares the strings and accepts; a root hash is 32 bytes of SHA-256, so we refuse.
  const POLICY_CASE = path.join("consistency", "additional", "sizes-are-equal-one-and-proof-is-empty.json");

  it("agrees with every case (196 files)", () => {
    assert.equal(files.length, 196, "the transparency-dev data set changed size");
    for (const file of files) {
      const data = JSON.parse(fs.readFileSync(path.join(root, file), "utf8"));
      const proof = (data.proof ?? []).map(b64);
      const result = file.startsWith("inclusion")
        ? outcome(() => verifyInclusion(b64(data.leafHash), data.leafIdx, data.treeSize, proof, b64(data.root)))
        : outcome(() => verifyConsistency(data.size1, data.size2, b64(data.root1), b64(data.root2), proof));
      const wantErr = file === POLICY_CASE ? true : data.wantErr;
      assert.equal(result !== "ok", wantErr, `${file}: ${data.desc}: got ${result}`);
    }
  });

  it("refuses the policy case because its roots are not hashes", () => {
    const data = JSON.parse(fs.readFileSync(path.join(root, POLICY_CASE), "utf8"));
    assert.equal(data.wantErr, false, "transparency-dev accepts it");
    assert.equal(
      outcome(() => verifyConsistency(1, 1, b64(data.root1), b64(data.root2), [])),
      "malformed",
    );
  });
});

describe("C2SP signed checkpoint and tlog-proof (Go sumdb/note)", () => {
  const cp = vectors.checkpoint;

  it("opens the signed checkpoint with the verifier key", () => {
    const checkpoint = openCheckpoint(cp.note, [cp.verifier_key], cp.origin);
    assert.equal(checkpoint.size, 70000n);
    assert.equal(Buffer.from(checkpoint.root).toString("hex"), vectors.entries.roots["70000"]);
    assert.equal(Verifier.parse(cp.verifier_key).toVkey(), cp.verifier_key);
  });

  it("ignores a signature by an unknown key and checks it when known", () => {
    const note = openNote(cp.note_two_signatures, [cp.verifier_key]);
    assert.equal(note.verified.length, 1);
    assert.equal(note.unverified.length, 1);
    assert.equal(note.unverified[0]!.name, "witness.example");
    const both = openNote(cp.note_two_signatures, [cp.verifier_key, cp.other_verifier_key]);
    assert.equal(both.verified.length, 2);
  });

  it("refuses a tampered note, an unknown signer and another origin", () => {
    assert.equal(
      outcome(() => openCheckpoint(cp.note_tampered, [cp.verifier_key], cp.origin)),
      "bad_signature",
    );
    assert.equal(
      outcome(() => openCheckpoint(cp.note, [cp.other_verifier_key], cp.origin)),
      "no_known_signature",
    );
    assert.equal(
      outcome(() => openCheckpoint(cp.note, [cp.verifier_key], "example.com/other")),
      "wrong_origin",
    );
  });

  it("verifies the tlog-proof of entry 12345 and nothing else", () => {
    const verified = verifyReceipt({ proof: cp.tlog_proof, entry: "entry-12345", vkeys: [cp.verifier_key] });
    assert.deepEqual([verified.index, verified.treeSize, verified.origin], [12345n, 70000n, cp.origin]);
    assert.equal(
      outcome(() => verifyReceipt({ proof: cp.tlog_proof, entry: "entry-12346", vkeys: [cp.verifier_key] })),
      "root_mismatch",
    );
    const moved = cp.tlog_proof.replace("index 12345", "index 12344");
    assert.equal(
      outcome(() => verifyReceipt({ proof: moved, entry: "entry-12344", vkeys: [cp.verifier_key] })),
      "root_mismatch",
    );
    assert.equal(
      outcome(() => verifyReceipt({ proof: cp.tlog_proof, entry: "entry-12345", vkeys: [cp.other_verifier_key] })),
      "no_known_signature",
    );
    assert.equal(
      outcome(() => verifyReceipt({ proof: cp.tlog_proof, entry: "entry-12345", vkeys: [] })),
      "no_known_signature",
    );
    assert.equal(
      outcome(() =>
        verifyReceipt({ proof: cp.tlog_proof, entry: "entry-12345", vkeys: [cp.verifier_key], origin: "x" }),
      ),
      "wrong_origin",
    );
  });

  it("refuses malformed receipts, checkpoints, notes and keys", () => {
    const proof: string = cp.tlog_proof;
    const lines = proof.split("\n");
    const cases: [string, () => unknown][] = [
      ["no header", () => parseTlogProof(proof.replace("c2sp.org/tlog-proof@v1\n", ""))],
      ["index with a leading zero", () => parseTlogProof(proof.replace("index 12345", "index 012345"))],
      ["negative index", () => parseTlogProof(proof.replace("index 12345", "index -1"))],
      ["index past u64", () => parseTlogProof(proof.replace("index 12345", "index 18446744073709551616"))],
      ["proof line not base64", () => parseTlogProof(proof.replace(lines[2]!, "not base64!"))],
      ["proof line of 31 bytes", () => parseTlogProof(proof.replace(lines[2]!, Buffer.alloc(31).toString("base64")))],
      ["non-canonical base64", () => parseTlogProof(proof.replace(lines[2]!, lines[2]!.replace(/=$/, "")))],
      ["no checkpoint", () => parseTlogProof(lines.slice(0, 5).join("\n"))],
      [
        "64 proof lines",
        () => parseTlogProof([lines[0], lines[1], ...Array(64).fill(lines[2]), "", cp.note].join("\n")),
      ],
      ["checkpoint without newline", () => parseCheckpoint(cp.body.slice(0, -1))],
      ["checkpoint size not decimal", () => parseCheckpoint(cp.body.replace("70000", "7e4"))],
      ["checkpoint empty extension", () => parseCheckpoint(`${cp.body}\n`)],
      ["note without signatures", () => openNote(cp.body, [cp.verifier_key])],
      ["note signature without em dash", () => openNote(cp.note.replace("\u2014 ", "- "), [cp.verifier_key])],
      ["note with a control character", () => openNote(cp.note.replace("70000", "70\u00010"), [cp.verifier_key])],
      ["vkey with a wrong key id", () => Verifier.parse(cp.verifier_key.replace("+9dd0ebfe+", "+9dd0ebff+"))],
      ["vkey without material", () => Verifier.parse("example.com+9dd0ebfe")],
      [
        "vkey of another type",
        () => Verifier.parse(`a+00000000+${Buffer.concat([Buffer.of(2), Buffer.alloc(32)]).toString("base64")}`),
      ],
      ["signer key as vkey", () => Verifier.parse(cp.signer_key)],
    ];
    for (const [name, check] of cases) assert.equal(outcome(check), "malformed", name);
  });
});
