//! Issue 17, item 4: trusted time (RFC 3161). A tiny HTTP TSA here answers with `openssl ts
//! -reply` (a test CA and TSA certificate made by `openssl`); the server timestamps its checkpoints
//! in the background, serves the replies, `evident export` puts the bundle checkpoint's reply next
//! to it, `openssl ts -verify` accepts it against the checkpoint text, and `evident verify
//! --tsa-cert` accepts it and rejects a token for another checkpoint, a tampered one and one
//! checked against another certificate. The `openssl` CLI is required (`scripts/test` installs it).

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{EVIDENT, Serve, client, wait_for};
use serde_json::{Value, json};

/// Runs `openssl ARGS` in `dir`; it must succeed. Answers stdout.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI is needed for these tests (scripts/test installs it)");
    assert!(output.status.success(), "openssl {args:?}:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A test CA and a TSA certificate it issued (a P-256 key, or RSA 2048 with `rsa`;
/// extendedKeyUsage timeStamping), and the `openssl ts` configuration that answers with them.
fn make_tsa(dir: &Path, rsa: bool) -> PathBuf {
    openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"]);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=Test TSA CA",
            "-days",
            "2",
            "-out",
            "ca.crt",
        ],
    );
    if rsa {
        openssl(
            dir,
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "tsa.key"],
        );
    } else {
        openssl(dir, &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "tsa.key"]);
    }
    openssl(dir, &["req", "-new", "-key", "tsa.key", "-subj", "/CN=Test TSA", "-out", "tsa.csr"]);
    std::fs::write(dir.join("tsa.ext"), "extendedKeyUsage = critical, timeStamping\n").expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "tsa.ext",
            "-out",
            "tsa.crt",
        ],
    );
    std::fs::write(dir.join("serial"), "01\n").expect("serial");
    let config = format!(
        "[ tsa ]\ndefault_tsa = tsa1\n[ tsa1 ]\ndir = {}\nserial = $dir/serial\ncrypto_device = builtin\n\
         signer_cert = $dir/tsa.crt\ncerts = $dir/ca.crt\nsigner_key = $dir/tsa.key\nsigner_digest = sha256\n\
         default_policy = 1.2.3.4.1\ndigests = sha256\naccuracy = secs:1\nordering = yes\ntsa_name = yes\n\
         ess_cert_id_chain = no\ness_cert_id_alg = sha256\n",
        dir.display()
    );
    std::fs::write(dir.join("tsa.cnf"), config).expect("config");
    dir.join("tsa.cnf")
}

/// An HTTP TSA on loopback: each POSTed query answered by `openssl ts -reply`. Answers its URL
/// and the count of queries answered.
fn tsa_server(dir: &Path) -> (String, Arc<AtomicUsize>) {
    let socket = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/tsa", socket.local_addr().expect("address"));
    let answered = Arc::new(AtomicUsize::new(0));
    let (count, dir) = (Arc::clone(&answered), dir.to_owned());
    std::thread::spawn(move || {
        for (n, stream) in socket.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let Some(query) = read_body(&mut stream) else { continue };
            let (tsq, tsr) = (format!("q{n}.tsq"), format!("r{n}.tsr"));
            std::fs::write(dir.join(&tsq), query).expect("query");
            openssl(&dir, &["ts", "-reply", "-config", "tsa.cnf", "-queryfile", &tsq, "-out", &tsr]);
            let reply = std::fs::read(dir.join(&tsr)).expect("reply");
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/timestamp-reply\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                reply.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&reply));
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (url, answered)
}

/// The body of one HTTP request (by its content-length).
fn read_body(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = stream.read(&mut buffer).ok().filter(|n| *n > 0)?;
        request.extend_from_slice(&buffer[..n]);
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
        let length: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length:"))?.trim().parse().ok()?;
        if request.len() >= end + 4 + length {
            return Some(request[end + 4..end + 4 + length].to_vec());
        }
    }
}

fn post_event(serve: &Serve, producer: &str, id: &str) {
    let event = json!({
        "id": id, "source": "//crm.test", "type": "customer.record.viewed", "action": "read",
        "time": evident_wire::Micros::now().to_rfc3339(), "actor": {"id": "agent-1", "type": "user"},
        "subject": "cus-1", "targets": [{"type": "customer", "id": "cus-1"}], "outcome": "success",
        "origin": {"service": "crm"}
    });
    let (status, body) = serve.post(producer, "/v1/events", &event);
    assert_eq!(status, 200, "{body}");
}

/// `evident export --output DIR` as an auditor; the bundle header.
fn export(serve: &Serve, key: &str, dir: &Path) -> Value {
    let out = dir.display().to_string();
    let output = common::evident(&serve.base, key, &["export", "--output", &out, "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let bundle = std::fs::read_to_string(dir.join("bundle.ndjson")).expect("bundle");
    serde_json::from_str(bundle.lines().next().expect("a header")).expect("JSON header")
}

/// `evident verify DIR --vkey VKEY --tsa-cert CERT`: success and stdout, or failure and stderr.
fn verify(dir: &Path, vkey: &str, cert: &Path) -> (bool, String) {
    let output = Command::new(EVIDENT)
        .arg("verify")
        .arg(dir)
        .args(["--vkey", vkey, "--tsa-cert"])
        .arg(cert)
        .output()
        .expect("evident runs");
    let text = if output.status.success() { &output.stdout } else { &output.stderr };
    (output.status.success(), String::from_utf8_lossy(text).into_owned())
}

#[test]
fn checkpoints_are_timestamped_exported_and_verified_by_openssl_and_evident() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tsa_dir = dir.path().join("tsa");
    std::fs::create_dir(&tsa_dir).expect("tsa dir");
    make_tsa(&tsa_dir, false);
    let (url, answered) = tsa_server(&tsa_dir);
    let serve = Serve::fresh_with(&[("EVIDENT_TSA_URL", url.as_str()), ("EVIDENT_TSA_INTERVAL_SECS", "1")]);
    let producer = serve.key("producer");
    let auditor = serve.key("auditor");
    post_event(&serve, &producer, "ts-1");

    // The background task timestamps the head; the export's checkpoint gets its reply.
    wait_for("a timestamp from the TSA", || (answered.load(Ordering::SeqCst) >= 1).then_some(()));
    let first = dir.path().join("first");
    let header = export(&serve, &auditor, &first);
    let size = header["tree_size"].as_u64().expect("a size");
    let reply = first.join("checkpoint.tsr");
    assert!(reply.exists(), "the export keeps the TSA's reply next to the bundle");
    let served = client()
        .get(serve.url(&format!("/v1/logs/default/timestamps/{size}")))
        .bearer_auth(&auditor)
        .send()
        .expect("GET");
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/timestamp-reply");
    assert_eq!(
        served.bytes().expect("body").to_vec(),
        std::fs::read(&reply).expect("reply"),
        "the stored reply"
    );
    let missing = client().get(serve.url("/v1/logs/default/timestamps/999999")).bearer_auth(&auditor).send();
    assert_eq!(missing.expect("GET").status(), 404, "no checkpoint of that size");

    // The outside checker: openssl ts -verify of the reply against the checkpoint text.
    let checkpoint = first.join("checkpoint.txt");
    std::fs::write(&checkpoint, header["checkpoint"].as_str().expect("a checkpoint")).expect("write");
    let (ca, tsa_cert) = (tsa_dir.join("ca.crt"), tsa_dir.join("tsa.crt"));
    let verified = openssl(
        dir.path(),
        &[
            "ts",
            "-verify",
            "-data",
            checkpoint.to_str().expect("utf-8"),
            "-in",
            reply.to_str().expect("utf-8"),
            "-CAfile",
            ca.to_str().expect("utf-8"),
            "-untrusted",
            tsa_cert.to_str().expect("utf-8"),
        ],
    );
    assert!(verified.contains("Verification: OK"), "{verified}");

    // evident verify accepts it with the TSA's certificate.
    let vkey = String::from_utf8(serve.get_bytes(&auditor, "/v1/logs/default/vkeys")).expect("utf-8");
    let vkey = vkey.lines().next().expect("a vkey").to_owned();
    let (ok, text) = verify(&first, &vkey, &tsa_cert);
    assert!(ok, "{text}");
    let stamped: Value = serde_json::from_str(text.lines().last().expect("a line")).expect("JSON");
    assert_eq!(
        (stamped["kind"].as_str(), stamped["verified"].as_bool()),
        (Some("timestamp"), Some(true)),
        "{text}"
    );
    assert_eq!(stamped["tree_size"].as_u64(), Some(size), "{text}");
    let today = chrono::Utc::now().format("%Y-%m-%dT").to_string();
    assert!(stamped["time"].as_str().is_some_and(|t| t.starts_with(&today) && t.ends_with('Z')), "{text}");

    rejections(&serve, &producer, &auditor, dir.path(), &first, &vkey, &tsa_dir);
    serve.terminate();
}

/// A token for another checkpoint, a tampered token, and another certificate are refused.
fn rejections(
    serve: &Serve,
    producer: &str,
    auditor: &str,
    dir: &Path,
    first: &Path,
    vkey: &str,
    tsa: &Path,
) {
    let tsa_cert = tsa.join("tsa.crt");
    post_event(serve, producer, "ts-2");
    let second = dir.join("second");
    let header = export(serve, auditor, &second);
    assert!(header["tree_size"].as_u64() > Some(1), "{header}");
    let (ok, text) = verify(&second, vkey, &tsa_cert);
    assert!(ok, "the second bundle has its own timestamp: {text}");
    let own = std::fs::read(second.join("checkpoint.tsr")).expect("reply");
    std::fs::copy(first.join("checkpoint.tsr"), second.join("checkpoint.tsr")).expect("copy");
    let (ok, text) = verify(&second, vkey, &tsa_cert);
    assert!(!ok && text.contains("timestamp does NOT verify: the token is for other data"), "{text}");

    // A tampered token: one digit of the TSA's time (genTime, the only 4-digit year in it)
    // changed inside the signed TSTInfo.
    let mut reply = std::fs::read(first.join("checkpoint.tsr")).expect("reply");
    let today = chrono::Utc::now().format("%Y%m%d").to_string();
    let at = reply.windows(8).position(|w| w == today.as_bytes()).expect("the genTime in the token");
    reply[at + 9] ^= 0x01;
    std::fs::write(first.join("checkpoint.tsr"), &reply).expect("tamper");
    let (ok, text) = verify(first, vkey, &tsa_cert);
    assert!(!ok && text.contains("timestamp does NOT verify: the token was altered"), "{text}");

    // A genuine token checked against another certificate (the CA's) is refused.
    std::fs::write(second.join("checkpoint.tsr"), own).expect("restore");
    let (ok, text) = verify(&second, vkey, &tsa.join("ca.crt"));
    assert!(!ok && text.contains("signed by another certificate than the TSA certificate given"), "{text}");
}

#[test]
fn the_timestamp_endpoint_refuses_what_it_cannot_answer() {
    let serve = Serve::fresh();
    let reader = serve.key("reader");
    let get = |path: &str| client().get(serve.url(path)).bearer_auth(&reader).send().expect("GET");
    let response = get("/v1/logs/default/timestamps/ten");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().expect("a problem");
    assert_eq!(problem["invalid-params"][0]["name"], "size", "{problem}");
    let response = get("/v1/logs/default/timestamps/1");
    assert_eq!(response.status(), 404, "no TSA configured");
    let problem: Value = response.json().expect("a problem");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("no TSA is configured")), "{problem}");
    serve.terminate();
}

/// Most TSAs sign with RSA: an RSA TSA's token verifies too, and a tampered one does not.
#[test]
fn tokens_of_an_rsa_tsa_verify_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tsa_dir = dir.path().join("tsa");
    std::fs::create_dir(&tsa_dir).expect("tsa dir");
    make_tsa(&tsa_dir, true);
    let (url, _) = tsa_server(&tsa_dir);
    let serve = Serve::fresh_with(&[("EVIDENT_TSA_URL", url.as_str())]);
    let auditor = serve.key("auditor");
    let bundle = dir.path().join("bundle");
    export(&serve, &auditor, &bundle);
    let vkey = String::from_utf8(serve.get_bytes(&auditor, "/v1/logs/default/vkeys")).expect("utf-8");
    let vkey = vkey.lines().next().expect("a vkey").to_owned();
    let (ok, text) = verify(&bundle, &vkey, &tsa_dir.join("tsa.crt"));
    assert!(ok && text.contains("\"kind\":\"timestamp\""), "{text}");
    let mut reply = std::fs::read(bundle.join("checkpoint.tsr")).expect("reply");
    let last = reply.len() - 1; // inside the RSA signature
    reply[last] ^= 0x01;
    std::fs::write(bundle.join("checkpoint.tsr"), &reply).expect("tamper");
    let (ok, text) = verify(&bundle, &vkey, &tsa_dir.join("tsa.crt"));
    assert!(!ok && text.contains("signature does not verify with the TSA certificate"), "{text}");
    serve.terminate();
}
