//! Witnesses end to end (c2sp.org/tlog-witness): a real `evident serve` sends its checkpoints to
//! two real `evident witness` processes, one down at first; cosignatures reach the checkpoint
//! path, receipts and bundles, survive restarts of both sides, and `evident verify --witness
//! --witness-threshold` judges them. The witness answers the protocol's status codes over HTTP;
//! `verify --watch --witness-url` exits 2 when a witness cosigned a fork.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use base64::Engine as _;
use common::{EVIDENT, Serve, TIMEOUT, client, lines, wait_for};
use evident_tlog::{AddCheckpoint, Checkpoint, Hash, MemoryTree, Signer, TreeSize, Verifier, open_note};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "evident.localhost/default";

/// A running `evident witness`.
struct Witness {
    child: Child,
    base: String,
    vkey: String,
    _stderr: mpsc::Receiver<String>,
}

impl Witness {
    /// Starts a witness on `dir` at `listen` (`127.0.0.1:0` for any port) and waits until it listens.
    fn start(dir: &Path, name: &str, listen: &str) -> Witness {
        let mut child = Command::new(EVIDENT)
            .args(["witness", "--name", name, "--listen", listen, "--data-dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("evident witness starts");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        let line = stdout.recv_timeout(TIMEOUT).expect("the vkey line");
        let vkey = line.strip_prefix("witness vkey: ").unwrap_or_else(|| panic!("{line:?}")).to_owned();
        let deadline = Instant::now() + TIMEOUT;
        let base = loop {
            let line = stderr.recv_timeout(deadline - Instant::now()).expect("evident witness listens");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        Witness { child, base, vkey, _stderr: stderr }
    }

    fn post(&self, body: &str) -> (u16, String, String) {
        let response =
            client().post(format!("{}/add-checkpoint", self.base)).body(body.to_owned()).send().unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.text().unwrap())
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "evident witness exited with {status}");
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn evident(args: &[&str]) -> Output {
    Command::new(EVIDENT).args(args).env_remove("EVIDENT_API_KEY").stdin(Stdio::null()).output().unwrap()
}

fn ok(output: &Output, what: &str) -> String {
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what}: {:?}\n{out}\n{err}", output.status.code());
    out.into_owned()
}

fn add_log(dir: &Path, vkey: &str) {
    ok(&evident(&["witness", "add-log", "--data-dir", dir.to_str().unwrap(), vkey]), "add-log");
}

/// A port nobody listens on yet (for a witness that starts later at a known address).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn append(serve: &Serve, producer: &str, first: usize, count: usize) -> Vec<Value> {
    let events: Vec<Value> = (first..first + count)
        .map(|i| {
            json!({"id": format!("w-{i}"), "source": "//crm.example.com", "type": "customer.record.viewed",
                   "action": "read", "time": "2026-03-01T10:00:00Z", "actor": {"id": "agent-1", "type": "user"},
                   "subject": "cust-1", "outcome": "success",
                   "targets": [{"type": "customer", "id": "cust-1"}], "origin": {"service": "crm"}})
        })
        .collect();
    let (status, body) = serve.post(producer, "/v1/events", &Value::Array(events));
    assert_eq!(status, 200, "{body}");
    body["receipts"].as_array().unwrap().clone()
}

fn text_get(serve: &Serve, path: &str) -> String {
    String::from_utf8(serve.get_bytes(&serve.admin, path)).unwrap()
}

fn checkpoint_size(note: &str) -> u64 {
    note.split('\n').nth(1).unwrap().parse().unwrap()
}

/// Waits until the served checkpoint (the log's latest) carries a cosignature by each of `names`.
fn cosigned_checkpoint(serve: &Serve, names: &[&str]) -> String {
    wait_for(&format!("the latest checkpoint cosigned by {names:?}"), || {
        let note = text_get(serve, "/v1/logs/default/checkpoint");
        names.iter().all(|name| note.contains(&format!("\u{2014} {name} "))).then_some(note)
    })
}

fn receipt_files(serve: &Serve, dir: &Path, event_id: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (proof, entry) = (dir.join(format!("{event_id}.tlog-proof")), dir.join(format!("{event_id}.entry")));
    std::fs::write(&entry, serve.get_bytes(&serve.admin, &format!("/v1/events/{event_id}/entry"))).unwrap();
    std::fs::write(&proof, serve.get_bytes(&serve.admin, &format!("/v1/events/{event_id}/proof"))).unwrap();
    (proof, entry)
}

/// `evident verify` (JSON lines when piped) said the policy holds, with `count` ("1 of 2") cosigners.
fn assert_policy_met(stdout: &str, count: &str) {
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["witness_policy"], "met", "{stdout}");
    assert!(
        last["detail"].as_str().unwrap().starts_with(&format!("cosigned by {count} witnesses")),
        "{stdout}"
    );
}

fn verify_policy(file: &Path, log_vkey: &str, witnesses: &[&str], threshold: &str, extra: &[&str]) -> Output {
    let mut args = vec!["verify", file.to_str().unwrap(), "--vkey", log_vkey];
    for vkey in witnesses {
        args.extend(["--witness", vkey]);
    }
    args.extend(["--witness-threshold", threshold]);
    args.extend(extra);
    evident(&args)
}

/// One scenario, longer than a screen on purpose: each step depends on the processes and state
/// the previous one left (a witness down, then up; the log killed; both witnesses restarted).
#[test]
fn our_log_is_cosigned_by_our_witnesses_one_down_then_up_across_restarts() {
    let temp = tempfile::tempdir().unwrap();
    let (w1_dir, w2_dir, data) = (temp.path().join("w1"), temp.path().join("w2"), temp.path().join("data"));
    // Witness 2's key exists (and is configured) while it is down.
    let w2_vkey = ok(
        &evident(&["witness", "vkey", "--name", "w2.test", "--data-dir", w2_dir.to_str().unwrap()]),
        "vkey",
    );
    let w2_vkey = w2_vkey.trim().to_owned();
    let w1 = Witness::start(&w1_dir, "w1.test", "127.0.0.1:0");
    let w1_vkey = w1.vkey.clone();
    let (w1_listen, w2_listen) =
        (w1.base.trim_start_matches("http://").to_owned(), format!("127.0.0.1:{}", free_port()));
    let witnesses = format!("{w1_vkey} http://{w1_listen}, {w2_vkey} http://{w2_listen}");
    let env = [("EVIDENT_WITNESSES", witnesses.as_str()), ("EVIDENT_WITNESS_INTERVAL_MS", "100")];
    let serve = Serve::first_start_with(&data, &env);
    let log_vkey = text_get(&serve, "/v1/logs/default/vkeys").lines().next().unwrap().to_owned();
    add_log(&w1_dir, &log_vkey);
    add_log(&w2_dir, &log_vkey);
    let producer = serve.key("producer");
    let receipts = append(&serve, &producer, 0, 5);

    // Witness 1 cosigns; witness 2 is down, so a policy of both fails naming who did not sign.
    let note = cosigned_checkpoint(&serve, &["w1.test"]);
    let file = temp.path().join("checkpoint");
    std::fs::write(&file, &note).unwrap();
    let both = [w1_vkey.as_str(), w2_vkey.as_str()];
    let failed = verify_policy(&file, &log_vkey, &both, "2", &[]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("witness policy NOT met: cosigned by 1 of 2 witnesses (threshold 2)"),
        "{stderr}"
    );
    assert!(stderr.contains(": [w1.test+") && stderr.contains("not cosigned by: [w2.test+"), "{stderr}");
    let met = ok(&verify_policy(&file, &log_vkey, &both, "1", &[]), "1 of 2");
    assert_policy_met(&met, "1 of 2");

    // Witness 2 comes up: the client's retries reach it, and the checkpoint carries both.
    let w2 = Witness::start(&w2_dir, "w2.test", &w2_listen);
    assert_eq!(w2.vkey, w2_vkey);
    let note = cosigned_checkpoint(&serve, &["w1.test", "w2.test"]);
    std::fs::write(&file, &note).unwrap();
    ok(&verify_policy(&file, &log_vkey, &both, "2", &[]), "2 of 2");

    // The log is killed and restarts while both witnesses are down: its new checkpoint (the
    // restart is recorded) has no cosignature yet, but nothing collected before is lost, so a
    // receipt of an earlier event is proved against the checkpoint both cosigned.
    let admin = serve.admin.clone();
    serve.kill();
    w1.stop();
    w2.stop();
    let mut serve = Serve::start_with(&data, &env);
    serve.admin = admin;
    assert!(!text_get(&serve, "/v1/logs/default/checkpoint").contains("w1.test"));
    let event_id = receipts[1]["event_id"].as_str().unwrap();
    let (proof, entry) = receipt_files(&serve, temp.path(), event_id);
    assert!(std::fs::read_to_string(&proof).unwrap().ends_with(&note));
    let receipt =
        ok(&verify_policy(&proof, &log_vkey, &both, "2", &["--event", entry.to_str().unwrap()]), "receipt");
    assert_policy_met(&receipt, "2 of 2");

    // Both witnesses return (their records survived their restarts): the client, which starts
    // from `old 0`, resends from the size each one's 409 names, and both cosign the new head.
    let w1 = Witness::start(&w1_dir, "w1.test", &w1_listen);
    let w2 = Witness::start(&w2_dir, "w2.test", &w2_listen);
    append(&serve, &producer, 5, 3);
    let note = cosigned_checkpoint(&serve, &["w1.test", "w2.test"]);
    assert_eq!(note.matches('\u{2014}').count(), 3, "one log signature, two cosignatures: {note}");

    // A bundle carries the cosignatures and verifies with the policy, and with Go's checker
    // (Go's reference note package ignores signatures by keys it was not given).
    let bundle = temp.path().join("bundle");
    let export =
        ["export", "--url", &serve.base, "--key", &serve.admin, "--output", bundle.to_str().unwrap()];
    ok(&evident(&export), "export");
    let header = std::fs::read_to_string(bundle.join("bundle.ndjson")).unwrap();
    let header: Value = serde_json::from_str(header.lines().next().unwrap()).unwrap();
    assert_eq!(header["checkpoint"], note.as_str());
    let verified = ok(&verify_policy(&bundle, &log_vkey, &both, "2", &[]), "bundle");
    assert_policy_met(&verified, "2 of 2");
    let go = Command::new(common::go_checker())
        .arg("-bundle")
        .arg(&bundle)
        .args(["-vkey", &log_vkey, "-origin", ORIGIN])
        .output()
        .unwrap();
    ok(&go, "Go checker on a cosigned bundle");

    // Each witness serves what it cosigned (the protocol's monitoring checkpoint).
    let origin_hash = hex::encode(Sha256::digest(ORIGIN.as_bytes()));
    let witnessed =
        client().get(format!("{}/{origin_hash}/checkpoint", w1.base)).send().unwrap().text().unwrap();
    let keys = [Verifier::parse(&log_vkey).unwrap(), Verifier::parse(&w1_vkey).unwrap()];
    assert_eq!(open_note(&witnessed, &keys).unwrap().verified.len(), 2);
    assert!(checkpoint_size(&witnessed) >= checkpoint_size(&note), "{witnessed}");
    let unknown = client().get(format!("{}/{}/checkpoint", w1.base, "00".repeat(32))).send().unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    // A watch with the policy and both witnesses' views: consistent.
    let log_url = format!("{}/v1/logs/default", serve.base);
    let state = temp.path().join("watch.json");
    let mut watch = vec![
        "verify",
        "--watch",
        &log_url,
        "--key",
        &serve.admin,
        "--once",
        "--state",
        state.to_str().unwrap(),
    ];
    watch.extend(["--witness", &w1_vkey, "--witness", &w2_vkey, "--witness-threshold", "2"]);
    watch.extend(["--witness-url", &w1.base, "--witness-url", &w2.base]);
    ok(&evident(&watch), "watch with witnesses");
}

/// A log of our own making (a test signer over `MemoryTree`s): checkpoints and proofs to send.
struct TestLog {
    signer: Signer,
    tree: MemoryTree,
}

impl TestLog {
    fn new(seed: u8) -> TestLog {
        TestLog {
            signer: Signer::from_seed("example.com/test-log", [seed; 32]).unwrap(),
            tree: MemoryTree::new(),
        }
    }

    fn grow(&mut self, to: u64) {
        while self.tree.size().0 < to {
            let n = self.tree.size().0;
            self.tree.append(format!("leaf-{n}").as_bytes());
        }
    }

    fn signed(&self) -> String {
        Checkpoint::new(self.signer.name(), self.tree.size(), self.tree.root()).sign(&[&self.signer]).unwrap()
    }

    fn request(&self, old: u64) -> String {
        let proof = if old == 0 || old == self.tree.size().0 {
            Vec::new()
        } else {
            self.tree.consistency_proof(TreeSize(old), self.tree.size()).unwrap()
        };
        AddCheckpoint { old_size: TreeSize(old), proof, checkpoint: self.signed() }.to_text()
    }
}

#[test]
fn the_witness_answers_the_protocols_status_codes_and_keeps_its_record() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("w");
    let mut log = TestLog::new(7);
    add_log(&dir, &log.signer.verifier().to_vkey());
    let witness = Witness::start(&dir, "w.test", "127.0.0.1:0");
    let cosigner = Verifier::parse(&witness.vkey).unwrap();

    log.grow(3);
    let (status, _, line) = witness.post(&log.request(0));
    assert_eq!(status, 200, "{line}");
    let cosigned = evident_tlog::add_signature_lines(&log.signed(), &line).unwrap();
    let opened = open_note(&cosigned, std::slice::from_ref(&cosigner)).unwrap();
    let time = opened.verified[0].cosignature_time().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(time > 0 && time.abs_diff(now) < 600, "cosignature time {time}");

    // Rollback: a client that thinks the witness saw nothing gets 409 and the size it holds.
    assert_eq!(witness.post(&log.request(0)), (409, "text/x.tlog.size".into(), "3\n".into()));
    // An inconsistent proof: 422.
    log.grow(7);
    let mut request = AddCheckpoint::parse(&log.request(3)).unwrap();
    request.proof[0] = Hash([9; 32]);
    assert_eq!(witness.post(&request.to_text()).0, 422);
    // A forged signature (the body changed under the log's signature line): 403.
    let forged = log.request(3).replacen("\n7\n", "\n8\n", 1);
    assert_eq!(witness.post(&forged).0, 403);
    // An unknown log: 404; malformed bodies and an old size above the checkpoint's: 400.
    assert_eq!(witness.post(&TestLog::new(8).request(0).replace("test-log", "other-log")).0, 404);
    assert_eq!(witness.post("old 3\nnot a hash\n\nx\n").0, 400);
    assert_eq!(witness.post("hello").0, 400);
    assert_eq!(witness.post(&log.request(3).replacen("old 3", "old 9", 1)).0, 400);
    // The right proof: cosigned; the record survives a restart.
    assert_eq!(witness.post(&log.request(3)).0, 200);
    witness.stop();
    let witness = Witness::start(&dir, "w.test", "127.0.0.1:0");
    assert_eq!(witness.vkey, cosigner.to_vkey(), "the key is kept");
    assert_eq!(witness.post(&log.request(0)), (409, "text/x.tlog.size".into(), "7\n".into()));
    // The same size again with the same root is cosigned again; another root at that size is a fork.
    assert_eq!(witness.post(&log.request(7)).0, 200);
    let mut fork = TestLog::new(7);
    fork.tree.append(b"something else");
    fork.grow(7);
    assert_eq!(witness.post(&fork.request(7)).0, 422);
}

#[test]
fn watch_exits_2_when_a_witness_cosigned_a_fork() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let serve = Serve::first_start(&data);
    append(&serve, &serve.key("producer"), 0, 4);
    let log_vkey = text_get(&serve, "/v1/logs/default/vkeys").lines().next().unwrap().to_owned();
    // Whoever holds the log's key signs another tree of the same size and shows it to a witness.
    let seed = base64::engine::general_purpose::STANDARD
        .decode(std::fs::read_to_string(data.join("signing.key")).unwrap().trim())
        .unwrap();
    let signer = Signer::from_seed(ORIGIN, seed.try_into().unwrap()).unwrap();
    assert_eq!(signer.verifier().to_vkey(), log_vkey);
    let size = checkpoint_size(&text_get(&serve, "/v1/logs/default/checkpoint"));
    let mut tree = MemoryTree::new();
    for n in 0..size {
        tree.append(format!("forged-{n}").as_bytes());
    }
    let forked = Checkpoint::new(ORIGIN, tree.size(), tree.root()).sign(&[&signer]).unwrap();
    let dir = temp.path().join("w");
    add_log(&dir, &log_vkey);
    let witness = Witness::start(&dir, "w.test", "127.0.0.1:0");
    let body = AddCheckpoint { old_size: TreeSize(0), proof: vec![], checkpoint: forked }.to_text();
    assert_eq!(witness.post(&body).0, 200);

    let log_url = format!("{}/v1/logs/default", serve.base);
    let state = temp.path().join("watch.json");
    let args =
        ["verify", "--watch", &log_url, "--key", &serve.admin, "--once", "--state", state.to_str().unwrap()];
    let watched = evident(&[&args[..], &["--witness-url", &witness.base]].concat());
    let stderr = String::from_utf8_lossy(&watched.stderr);
    assert_eq!(watched.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("FORK: the witness at") && stderr.contains("at the same size"), "{stderr}");
    // A policy the log's checkpoint does not meet (nobody cosigned it) fails with 1, not 2.
    let policy = evident(&[&args[..], &["--witness", &witness.vkey]].concat());
    let stderr = String::from_utf8_lossy(&policy.stderr);
    assert_eq!(policy.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("witness policy NOT met: cosigned by 0 of 1"), "{stderr}");
}

#[test]
fn policy_flags_are_checked_before_anything_is_trusted() {
    let temp = tempfile::tempdir().unwrap();
    let log = TestLog::new(3);
    let file = temp.path().join("checkpoint");
    std::fs::write(&file, log.signed()).unwrap();
    let log_vkey = log.signer.verifier().to_vkey();
    let witness = evident_tlog::Cosigner::from_seed("w.test", [4; 32]).unwrap().verifier().to_vkey();
    let verify = |extra: &[&str]| {
        evident(&[&["verify", file.to_str().unwrap(), "--vkey", &log_vkey][..], extra].concat())
    };
    for (extra, code, why) in [
        (vec!["--witness", log_vkey.as_str()], 1, "is not a witness's cosignature/v1 key"),
        (vec!["--witness", "nonsense"], 1, "is not a verifier key"),
        (
            vec!["--witness", witness.as_str(), "--witness-threshold", "2"],
            1,
            "between 1 and the 1 --witness keys",
        ),
        (
            vec!["--witness", witness.as_str(), "--witness-threshold", "0"],
            1,
            "between 1 and the 1 --witness keys",
        ),
        (vec!["--witness-threshold", "1"], 2, "--witness <VKEY>"),
        (vec!["--witness-url", "http://127.0.0.1:9"], 1, "--witness-url goes with --watch"),
        (
            vec!["--witness", witness.as_str()],
            1,
            "witness policy NOT met: cosigned by 0 of 1 witnesses (threshold 1)",
        ),
    ] {
        let output = verify(&extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{extra:?}: {stderr}");
        assert!(stderr.contains(why), "{extra:?}: {stderr}");
    }
}
