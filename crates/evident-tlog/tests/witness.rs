//! The witness protocol's texts and decisions (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature):
//! the spec's own examples, and a witness's checks driven by Go's known answers
//! (`../shared/vectors/tlog-vectors.json`: Go's signer key, roots and consistency proofs).

use evident_tlog::{
    AddCheckpoint, Checkpoint, Cosigner, Error, Hash, Refusal, Signer, TreeSize, Verifier,
    add_signature_lines, check_add_checkpoint, cosignature_lines, open_note, witness_policy,
};
use serde_json::Value;

/// The request body example of c2sp.org/tlog-witness, "add-checkpoint", verbatim.
const SPEC_REQUEST: &str = "old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
\u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
";

/// The response body example of c2sp.org/tlog-witness, "add-checkpoint", verbatim.
const SPEC_RESPONSE: &str = "\u{2014} witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==
\u{2014} witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==
\u{2014} witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==
";

/// The cosigned checkpoint example of c2sp.org/tlog-cosignature and its signed message's time.
const SPEC_COSIGNATURE: &str = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";
const SPEC_COSIGNATURE_TIME: u64 = 1679315147;

fn vectors() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/vectors/tlog-vectors.json");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("{path}: {err} (the shared vectors are required)"));
    serde_json::from_str(&text).unwrap()
}

fn hex_hash(text: &str) -> Hash {
    Hash::from_hex(text).unwrap()
}

#[test]
fn the_spec_request_example_parses_and_round_trips() {
    let request = AddCheckpoint::parse(SPEC_REQUEST).unwrap();
    assert_eq!(request.old_size, TreeSize(20852014));
    assert_eq!(request.proof.len(), 4);
    assert_eq!(request.proof[0].to_base64(), "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=");
    let checkpoint = evident_tlog::peek_checkpoint(&request.checkpoint).unwrap();
    assert_eq!(checkpoint.origin, "example.com/behind-the-sofa");
    assert_eq!(checkpoint.size, TreeSize(20852163));
    assert_eq!(request.to_text(), SPEC_REQUEST);
    // A witness that follows no such log answers 404; one that trusts another key for it, 403.
    let unknown = check_add_checkpoint(&request, |_| None, |_| None).unwrap_err();
    assert_eq!(unknown.status(), 404);
    let other_key = Signer::from_seed("example.com/behind-the-sofa", [1; 32]).unwrap().verifier();
    let forbidden = check_add_checkpoint(&request, |_| Some(vec![other_key]), |_| None).unwrap_err();
    assert_eq!(forbidden.status(), 403);
}

#[test]
fn malformed_requests_are_refused() {
    for (body, why) in [
        ("old 01\n\nx\n", "canonical"),
        ("old -1\n\nx\n", "canonical"),
        ("new 1\n\nx\n", "expected `old <size>`"),
        ("old 1\nnot-base64\n\nx\n", "proof line 1"),
        ("old 1\n", "no blank line"),
        ("old 1\n\n", "no checkpoint"),
    ] {
        let err = AddCheckpoint::parse(body).unwrap_err();
        assert!(err.to_string().contains(why), "{body:?}: {err}");
    }
    let too_long = format!("old 1\n{}\nx\n", "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n".repeat(64));
    assert!(AddCheckpoint::parse(&too_long).unwrap_err().to_string().contains("at most 63"));
}

#[test]
fn the_spec_cosignature_examples_parse() {
    // The cosignature example carries the time of its signed message example.
    let log = Signer::from_seed("example.com/behind-the-sofa", [2; 32]).unwrap();
    let body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let note =
        add_signature_lines(&evident_tlog::sign_note(body, &[&log]).unwrap(), SPEC_COSIGNATURE).unwrap();
    let opened = open_note(&note, &[log.verifier()]).unwrap();
    assert_eq!(opened.unverified.len(), 1);
    assert_eq!(opened.unverified[0].name, "witness.example.com/w1");
    assert_eq!(opened.unverified[0].key_id, 0x8d66cf3f);
    assert_eq!(opened.unverified[0].cosignature_time(), Some(SPEC_COSIGNATURE_TIME));
    // The response example: lines of other keys are ignored; none is by our witness key.
    let ours = Cosigner::from_seed("witness.example/w1", [3; 32]).unwrap().verifier();
    let signed = evident_tlog::sign_note(body, &[&log]).unwrap();
    assert_eq!(cosignature_lines(&signed, SPEC_RESPONSE, &ours), Err(Error::NoKnownSignature));
    // Our own cosignature over the same checkpoint is kept, another key's in the answer ignored.
    let answer = format!(
        "{SPEC_RESPONSE}{}",
        Cosigner::from_seed("witness.example/w1", [3; 32])
            .unwrap()
            .cosign(body, SPEC_COSIGNATURE_TIME)
            .unwrap()
    );
    let kept = cosignature_lines(&signed, &answer, &ours).unwrap();
    assert_eq!(kept.lines().count(), 1);
    assert!(cosignature_lines(&signed, "not a signature\n", &ours).is_err());
}

/// A witness's record, as the checks see it.
struct Witness {
    log: Verifier,
    latest: Option<(TreeSize, Hash)>,
}

impl Witness {
    fn add(&mut self, request: &AddCheckpoint) -> Result<Checkpoint, Refusal> {
        let log = self.log.clone();
        let origin = log.name().to_owned();
        let checked = check_add_checkpoint(request, |o| (o == origin).then(|| vec![log]), |_| self.latest)?;
        self.latest = Some((checked.size, checked.root));
        Ok(checked)
    }
}

#[test]
fn a_witness_follows_gos_log_and_refuses_with_the_protocols_codes() {
    let vectors = vectors();
    let signer = Signer::parse(vectors["checkpoint"]["signer_key"].as_str().unwrap()).unwrap();
    let origin = vectors["checkpoint"]["origin"].as_str().unwrap();
    let roots = &vectors["entries"]["roots"];
    let case = vectors["entries"]["consistency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["old_size"].as_u64() > Some(1)
                && !c["proof"].as_array().unwrap().is_empty()
                && roots.get(c["old_size"].to_string()).is_some()
                && roots.get(c["new_size"].to_string()).is_some()
        })
        .expect("a consistency case with both roots");
    let (old, new) = (case["old_size"].as_u64().unwrap(), case["new_size"].as_u64().unwrap());
    let root_at = |size: u64| hex_hash(roots[size.to_string()].as_str().unwrap());
    let signed =
        |size: u64, root: Hash| Checkpoint::new(origin, TreeSize(size), root).sign(&[&signer]).unwrap();
    let proof: Vec<Hash> =
        case["proof"].as_array().unwrap().iter().map(|h| hex_hash(h.as_str().unwrap())).collect();
    let mut witness = Witness { log: signer.verifier(), latest: None };
    let request = |old_size: u64, proof: Vec<Hash>, checkpoint: String| AddCheckpoint {
        old_size: TreeSize(old_size),
        proof,
        checkpoint,
    };

    // First sight: old size 0, no proof.
    assert_eq!(witness.add(&request(0, vec![], signed(old, root_at(old)))).unwrap().size, TreeSize(old));
    // A forged signature by the trusted key's name and id: 403.
    let forged = signed(new, root_at(new)).replacen(&root_at(new).to_base64(), &root_at(old).to_base64(), 1);
    assert_eq!(witness.add(&request(old, proof.clone(), forged)).unwrap_err().status(), 403);
    // A proof that does not lead from the old root to the new one: 422.
    let mut bad_proof = proof.clone();
    bad_proof[0] = root_at(old);
    assert_eq!(witness.add(&request(old, bad_proof, signed(new, root_at(new)))).unwrap_err().status(), 422);
    // Old size 0 with a proof: 422; old size above the checkpoint's: 400.
    assert_eq!(witness.add(&request(old, vec![], signed(old, root_at(new)))).unwrap_err().status(), 422);
    assert_eq!(witness.add(&request(new + 1, vec![], signed(new, root_at(new)))).unwrap_err().status(), 400);
    // Go's consistency proof: cosigned.
    assert_eq!(
        witness.add(&request(old, proof.clone(), signed(new, root_at(new)))).unwrap().size,
        TreeSize(new)
    );
    // A rollback (a client that still thinks the witness is at `old`): 409 with the latest size.
    let conflict = witness.add(&request(old, proof, signed(new, root_at(new)))).unwrap_err();
    assert_eq!(conflict, Refusal::Conflict(TreeSize(new)));
    assert_eq!((conflict.status(), conflict.body()), (409, format!("{new}\n")));
    assert_eq!(witness.add(&request(0, vec![], signed(old, root_at(old)))).unwrap_err().status(), 409);
    // The same size again: cosigned again with the same root, refused with another (a fork).
    assert!(witness.add(&request(new, vec![], signed(new, root_at(new)))).is_ok());
    assert_eq!(witness.add(&request(new, vec![], signed(new, root_at(old)))).unwrap_err().status(), 422);
    // Size zero must carry the empty tree's root.
    let mut fresh = Witness { log: signer.verifier(), latest: None };
    assert_eq!(fresh.add(&request(0, vec![], signed(0, root_at(old)))).unwrap_err().status(), 422);
    assert!(fresh.add(&request(0, vec![], signed(0, evident_tlog::empty_root()))).is_ok());
}

#[test]
fn policies_count_valid_cosignatures_only() {
    let log = Signer::from_seed("example.com/log", [4; 32]).unwrap();
    let w1 = Cosigner::from_seed("w1.example", [5; 32]).unwrap();
    let w2 = Cosigner::from_seed("w2.example", [6; 32]).unwrap();
    let w3 = Cosigner::from_seed("w3.example", [7; 32]).unwrap();
    let body = "example.com/log\n3\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let note = evident_tlog::sign_note(body, &[&log]).unwrap();
    let cosigned = add_signature_lines(&note, &w1.cosign(body, 100).unwrap()).unwrap();
    let other_body = body.replace("\n3\n", "\n4\n");
    let cosigned = add_signature_lines(&cosigned, &w2.cosign(&other_body, 101).unwrap()).unwrap();
    let report = witness_policy(&cosigned, &[w1.verifier(), w2.verifier(), w3.verifier()]);
    assert_eq!(report.signed, vec![(format!("w1.example+{:08x}", w1.verifier().key_id()), 100)]);
    assert_eq!(report.bad, vec![format!("w2.example+{:08x}", w2.verifier().key_id())]);
    assert_eq!(report.missing, vec![format!("w3.example+{:08x}", w3.verifier().key_id())]);
    assert!(report.met(1) && !report.met(2));
    // Key texts round-trip; a log key is not a cosigner key.
    assert_eq!(Cosigner::parse(&w1.to_text()).unwrap().verifier(), w1.verifier());
    assert!(Cosigner::parse(&log.to_text()).is_err());
}
