//! Interop with Go's reference packages: artefacts made by our code (signed checkpoints, inclusion
//! and consistency proofs, tlog-proof receipts, witness cosignatures) and tampered copies of them are handed to the Go
//! checker in `interop/go`, which must accept the first and reject the second. Our own verifier
//! must reach the same verdict on every case.
//!
//! Needs `go` and Debian's `golang-golang-x-mod-dev` (`.ci/run` installs them); without them this
//! test fails, it does not skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use evident_tlog::*;
use serde_json::{Value, json};

const ORIGIN: &str = "evident.test/acme";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build_checker() -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tlogcheck");
    let status = Command::new("bash")
        .arg(repo_root().join("interop/go/build.sh"))
        .arg(&out)
        .status()
        .expect("run interop/go/build.sh");
    assert!(
        status.success(),
        "building the Go checker failed: install golang-go and golang-golang-x-mod-dev (apt), as .ci/run does"
    );
    out
}

fn run_checker(checker: &Path, manifest: &Value, name: &str) -> String {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(manifest).unwrap()).unwrap();
    let output = Command::new(checker).arg(&path).output().expect("run the Go checker");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "Go checker disagrees ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A small deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(Hash::to_hex).collect()
}

fn flip_bit(hash: &Hash, bit: u64) -> Hash {
    let mut out = *hash;
    out.0[(bit / 8 % 32) as usize] ^= 1 << (bit % 8);
    out
}

/// Builds the cases; each case's expectation is also checked against our own verifier here.
struct Cases {
    cases: Vec<Value>,
    verifier: Verifier,
}

impl Cases {
    fn push(&mut self, case: Value) {
        self.cases.push(case);
    }

    fn inclusion(
        &mut self,
        name: String,
        leaf: Hash,
        (index, size): (u64, u64),
        root: Hash,
        proof: &[Hash],
        ok: bool,
    ) {
        let ours = verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), proof, &root);
        assert_eq!(ours.is_ok(), ok, "our verifier on {name}: {ours:?}");
        self.push(json!({"name": name, "kind": "inclusion", "size": size, "index": index,
            "leaf_hash": leaf.to_hex(), "root": root.to_hex(), "proof": hexes(proof), "expect_ok": ok}));
    }

    fn consistency(&mut self, name: String, old: (u64, Hash), new: (u64, Hash), proof: &[Hash], ok: bool) {
        let ours = verify_consistency(TreeSize(old.0), TreeSize(new.0), &old.1, &new.1, proof);
        assert_eq!(ours.is_ok(), ok, "our verifier on {name}: {ours:?}");
        self.push(json!({"name": name, "kind": "consistency", "old_size": old.0, "new_size": new.0,
            "old_root": old.1.to_hex(), "new_root": new.1.to_hex(), "proof": hexes(proof), "expect_ok": ok}));
    }

    fn checkpoint(&mut self, name: String, note: &str, ok: bool) {
        let ours = Checkpoint::open(note, std::slice::from_ref(&self.verifier), ORIGIN);
        assert_eq!(ours.is_ok(), ok, "our verifier on {name}: {ours:?}");
        self.push(json!({"name": name, "kind": "checkpoint", "note": note, "expect_ok": ok}));
    }

    /// A checkpoint the log signed and `witness` must have validly cosigned.
    fn cosigned(&mut self, name: String, note: &str, witness: &Verifier, ok: bool) {
        let ours = Checkpoint::open(note, &[self.verifier.clone(), witness.clone()], ORIGIN)
            .ok()
            .filter(|(_, opened)| opened.verified.len() == 2);
        assert_eq!(ours.is_some(), ok, "our verifier on {name}: {ours:?}");
        self.push(json!({"name": name, "kind": "cosigned_checkpoint", "note": note,
            "witness_vkey": witness.to_vkey(), "expect_ok": ok}));
    }

    fn receipt(&mut self, name: String, receipt: &str, leaf: &[u8], ok: bool) {
        let ours = TlogProof::parse(receipt)
            .and_then(|proof| proof.verify(leaf, std::slice::from_ref(&self.verifier), ORIGIN));
        assert_eq!(ours.is_ok(), ok, "our verifier on {name}: {ours:?}");
        self.push(json!({"name": name, "kind": "tlog_proof", "receipt": receipt,
            "leaf_b64": BASE64.encode(leaf), "expect_ok": ok}));
    }
}

fn entry(i: u64) -> Vec<u8> {
    // Realistic leaves: canonical JSON skeletons of a few hundred bytes.
    format!(
        r#"{{"action":"read","actor":{{"id":"agent-{}","type":"user"}},"event_id":"0190f1c2-{i:012x}","outcome":"success","source":"//crm.example.com/support-api","targets":[{{"id":"cust-{}","type":"customer"}}],"tenant":"acme","type":"customer.record.viewed"}}"#,
        i % 17,
        i * 7919 % 100_003
    )
    .into_bytes()
}

#[test]
fn go_reference_packages_accept_ours_and_reject_tampering() {
    let checker = build_checker();

    // The checker itself must reject what it should: run it on the outside vectors first.
    let vectors_manifest = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vectors-manifest.json");
    let status = Command::new("python3")
        .arg(repo_root().join("interop/go/vectors_manifest.py"))
        .arg(common::shared_dir().join("vectors/tlog-vectors.json"))
        .arg(&vectors_manifest)
        .status()
        .expect("run python3");
    assert!(status.success(), "vectors_manifest.py failed");
    let output = Command::new(&checker).arg(&vectors_manifest).output().unwrap();
    assert!(
        output.status.success(),
        "Go checker on the vectors: {}",
        String::from_utf8_lossy(&output.stdout)
    );

    let signer = Signer::from_seed(ORIGIN, [7u8; 32]).unwrap();
    let mut cases = Cases { cases: Vec::new(), verifier: signer.verifier() };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut tree = MemoryTree::new();
    let final_size = 3_000u64;
    for i in 0..final_size {
        tree.append(&entry(i));
    }
    let sizes = [1u64, 2, 3, 7, 8, 255, 256, 257, 1000, 1024, 2047, 2999, 3000];
    let root = |size: u64| tree.root_at(TreeSize(size)).unwrap();

    for (n, &size) in sizes.iter().enumerate() {
        let checkpoint = Checkpoint::new(ORIGIN, TreeSize(size), root(size));
        let note = checkpoint.sign(&[&signer]).unwrap();
        cases.checkpoint(format!("checkpoint/{size}"), &note, true);

        // Inclusion: a random leaf, its proof, and mutations of it.
        let index = rng.below(size);
        let leaf = leaf_hash(&entry(index));
        let proof = tree.inclusion_proof(LeafIndex(index), TreeSize(size)).unwrap();
        cases.inclusion(
            format!("inclusion/{index}-in-{size}"),
            leaf,
            (index, size),
            root(size),
            &proof,
            true,
        );
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let at = rng.below(bad.len() as u64) as usize;
            bad[at] = flip_bit(&bad[at], rng.next());
            cases.inclusion(
                format!("inclusion/{index}-in-{size}/flipped-proof"),
                leaf,
                (index, size),
                root(size),
                &bad,
                false,
            );
            let short = &proof[..proof.len() - 1];
            cases.inclusion(
                format!("inclusion/{index}-in-{size}/short"),
                leaf,
                (index, size),
                root(size),
                short,
                false,
            );
            if proof.len() > 1 {
                let mut swapped = proof.clone();
                swapped.swap(0, 1);
                if swapped != proof {
                    cases.inclusion(
                        format!("inclusion/{index}-in-{size}/reordered"),
                        leaf,
                        (index, size),
                        root(size),
                        &swapped,
                        false,
                    );
                }
            }
        }
        let mut long = proof.clone();
        long.push(leaf);
        cases.inclusion(
            format!("inclusion/{index}-in-{size}/long"),
            leaf,
            (index, size),
            root(size),
            &long,
            false,
        );
        cases.inclusion(
            format!("inclusion/{index}-in-{size}/index-beyond"),
            leaf,
            (size, size),
            root(size),
            &proof,
            false,
        );
        if index ^ 1 < size {
            // Flipping the lowest bit swaps the order of the first hashing step.
            cases.inclusion(
                format!("inclusion/{index}-in-{size}/wrong-index"),
                leaf,
                (index ^ 1, size),
                root(size),
                &proof,
                false,
            );
        }
        // A tree more than twice the size is deeper, so the proof is short for it. (Not every
        // other size is caught: index 1 of size 3 and of size 4 walk the same path, and the
        // proof's hashes are opaque; the signed checkpoint is what binds a root to its size.)
        cases.inclusion(
            format!("inclusion/{index}-in-{size}/wrong-size"),
            leaf,
            (index, 2 * size + 1),
            root(size),
            &proof,
            false,
        );
        cases.inclusion(
            format!("inclusion/{index}-in-{size}/wrong-root"),
            leaf,
            (index, size),
            flip_bit(&root(size), 3),
            &proof,
            false,
        );

        // Receipts, with and without extra data.
        let receipt = TlogProof {
            extra: (n % 2 == 1).then(|| b"evident event 42".to_vec()),
            index: LeafIndex(index),
            proof: proof.clone(),
            checkpoint: note.clone(),
        };
        let text = receipt.to_text();
        cases.receipt(format!("receipt/{index}-in-{size}"), &text, &entry(index), true);
        let mut wrong_leaf = entry(index);
        wrong_leaf[10] ^= 1;
        cases.receipt(format!("receipt/{index}-in-{size}/changed-entry"), &text, &wrong_leaf, false);
        if !proof.is_empty() {
            let mut bad = receipt.clone();
            bad.proof[0] = flip_bit(&bad.proof[0], 77);
            cases.receipt(
                format!("receipt/{index}-in-{size}/flipped-proof"),
                &bad.to_text(),
                &entry(index),
                false,
            );
        }

        // Consistency from every earlier listed size.
        for &old in &sizes[..n] {
            let proof = tree.consistency_proof(TreeSize(old), TreeSize(size)).unwrap();
            let name = format!("consistency/{old}-{size}");
            cases.consistency(name.clone(), (old, root(old)), (size, root(size)), &proof, true);
            if !proof.is_empty() {
                let mut bad = proof.clone();
                let at = rng.below(bad.len() as u64) as usize;
                bad[at] = flip_bit(&bad[at], rng.next());
                cases.consistency(
                    format!("{name}/flipped"),
                    (old, root(old)),
                    (size, root(size)),
                    &bad,
                    false,
                );
                cases.consistency(
                    format!("{name}/dropped"),
                    (old, root(old)),
                    (size, root(size)),
                    &proof[1..],
                    false,
                );
            }
            let mut long = proof.clone();
            long.push(root(old));
            cases.consistency(format!("{name}/long"), (old, root(old)), (size, root(size)), &long, false);
            cases.consistency(
                format!("{name}/wrong-new-root"),
                (old, root(old)),
                (size, root(size - 1)),
                &proof,
                false,
            );
            cases.consistency(
                format!("{name}/forked-old-root"),
                (old, flip_bit(&root(old), 1)),
                (size, root(size)),
                &proof,
                false,
            );
        }
    }

    // Tampered checkpoints.
    let note = Checkpoint::new(ORIGIN, TreeSize(3000), root(3000)).sign(&[&signer]).unwrap();
    cases.checkpoint("checkpoint/size-changed".into(), &note.replacen("\n3000\n", "\n3001\n", 1), false);
    cases.checkpoint(
        "checkpoint/root-changed".into(),
        &note.replacen(&root(3000).to_base64(), &root(2999).to_base64(), 1),
        false,
    );
    let sig_start = note.rfind(' ').unwrap() + 1;
    let mut sig = BASE64.decode(note[sig_start..].trim_end()).unwrap();
    sig[20] ^= 0x40;
    let forged = format!("{}{}\n", &note[..sig_start], BASE64.encode(&sig));
    cases.checkpoint("checkpoint/signature-flipped".into(), &forged, false);
    let stranger = Signer::from_seed(ORIGIN, [8u8; 32]).unwrap();
    let by_stranger = Checkpoint::new(ORIGIN, TreeSize(3000), root(3000)).sign(&[&stranger]).unwrap();
    cases.checkpoint("checkpoint/unknown-key-only".into(), &by_stranger, false);
    let other_origin_signer = Signer::from_seed("evident.test/other", [7u8; 32]).unwrap();
    let other = Checkpoint::new("evident.test/other", TreeSize(3000), root(3000))
        .sign(&[&other_origin_signer])
        .unwrap();
    cases.checkpoint("checkpoint/other-log".into(), &other, false);

    // A witness cosignature does not disturb either verifier.
    let witness = Cosigner::from_seed("witness.test", [9u8; 32]).unwrap();
    let body = Checkpoint::new(ORIGIN, TreeSize(3000), root(3000)).body();
    let cosigned = add_signature_lines(&note, &witness.cosign(&body, 1_700_000_000).unwrap()).unwrap();
    cases.checkpoint("checkpoint/cosigned".into(), &cosigned, true);
    cosignature_cases(&mut cases, &note, &body, &witness);

    let count = cases.cases.len();
    let manifest = json!({"vkey": signer.verifier().to_vkey(), "origin": ORIGIN, "cases": cases.cases});
    let stdout = run_checker(&checker, &manifest, "ours-manifest");
    let summary = format!("tlogcheck: {count} cases, 0 mismatches");
    assert!(stdout.contains(&summary), "expected {summary:?} in:\n{stdout}");
    assert!(count > 250, "only {count} cases");
}

/// Go's note.Open with a cosignature/v1 verifier written from the spec (`interop/go`,
/// `cosignature.go`) judges our witness cosignatures: genuine ones pass, and a flipped bit, a
/// changed time, a cosignature of another checkpoint or none at all fail.
fn cosignature_cases(cases: &mut Cases, note: &str, body: &str, witness: &Cosigner) {
    let verifier = witness.verifier();
    let line = witness.cosign(body, 1_700_000_000).unwrap();
    cases.cosigned("cosigned/genuine".into(), &add_signature_lines(note, &line).unwrap(), &verifier, true);
    let (prefix, b64) = line.trim_end().rsplit_once(' ').unwrap();
    let mut bytes = BASE64.decode(b64).unwrap();
    let mut tamper = |at: usize, name: &str| {
        bytes[at] ^= 0x01;
        let forged = format!("{prefix} {}\n", BASE64.encode(&bytes));
        bytes[at] ^= 0x01;
        cases.cosigned(name.into(), &add_signature_lines(note, &forged).unwrap(), &verifier, false);
    };
    tamper(11, "cosigned/time-changed");
    tamper(40, "cosigned/signature-flipped");
    let other_body = body.replacen("\n3000\n", "\n2999\n", 1);
    let other = witness.cosign(&other_body, 1_700_000_000).unwrap();
    cases.cosigned(
        "cosigned/other-checkpoint".into(),
        &add_signature_lines(note, &other).unwrap(),
        &verifier,
        false,
    );
    cases.cosigned("cosigned/none".into(), note, &verifier, false);
}
