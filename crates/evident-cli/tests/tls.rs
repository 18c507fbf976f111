//! Issue 12, finding 8: TLS everywhere. HTTPS from certificate files (reloaded on SIGHUP), the
//! client commands over HTTPS, the loud warning of plain HTTP off loopback, webhooks over https
//! with verification, and PostgreSQL over TLS (`sslmode=require`, `verify-full` with
//! `sslrootcert`) against a throwaway cluster started here with `ssl=on` and a test CA.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{EVIDENT, Serve, client, evident, wait_for};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;
use tokio_rustls::rustls;

/// A test certificate authority.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its key, as PEM and in files.
struct Leaf {
    der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("a CA certificate");
        Ca { issuer: Issuer::new(params, key), pem: cert.pem() }
    }

    /// Writes `<dir>/<stem>.pem` (this CA) and nothing else; answers its path.
    fn write(&self, dir: &Path, stem: &str) -> PathBuf {
        let path = dir.join(format!("{stem}.pem"));
        std::fs::write(&path, &self.pem).expect("write the CA");
        path
    }

    /// A server certificate for `names` (DNS names or IP addresses), in `<dir>/<stem>.crt|.key`.
    fn leaf(&self, dir: &Path, stem: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("a key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, stem);
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        let (cert_path, key_path) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
        std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write the key");
        Leaf {
            der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert_path,
            key: key_path,
        }
    }
}

/// A client trusting `ca` only (and the web roots), reporting the peer's certificate, on a new
/// connection each time it is built.
fn https_client(ca: &Ca) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("the CA"))
        .tls_info(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The DER of the certificate `url` serves on a new connection.
fn served_certificate(ca: &Ca, url: &str) -> Vec<u8> {
    let response = https_client(ca).get(url).send().expect("HTTPS GET");
    assert_eq!(response.status(), 200, "GET {url}");
    let info = response.extensions().get::<reqwest::tls::TlsInfo>().expect("TLS info");
    info.peer_certificate().expect("a peer certificate").to_vec()
}

/// An error and its causes, as one string.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn tls_env(leaf: &Leaf) -> [(&'static str, String); 2] {
    [
        ("EVIDENT_TLS_CERT", leaf.cert.display().to_string()),
        ("EVIDENT_TLS_KEY", leaf.key.display().to_string()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn serves_https_from_certificate_files_and_the_cli_trusts_a_ca_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("Evident test CA");
    let ca_file = ca.write(dir.path(), "ca");
    let leaf = ca.leaf(dir.path(), "server", &["localhost", "127.0.0.1"]);
    let env = tls_env(&leaf);
    let serve = Serve::fresh_with(&env_refs(&env));
    assert!(serve.base.starts_with("https://127.0.0.1:"), "announced as https: {}", serve.base);
    assert_eq!(served_certificate(&ca, &serve.url("/healthz")), leaf.der, "the configured certificate");

    // A client that does not trust the test CA refuses the server; plain HTTP gets no answer.
    let err = client().get(serve.url("/healthz")).send().expect_err("untrusted");
    assert!(chain(&err).contains("UnknownIssuer"), "{}", chain(&err));
    let plain = serve.url("/healthz").replacen("https://", "http://", 1);
    assert!(client().get(&plain).send().is_err(), "no plain HTTP on the TLS port");

    // A console session over HTTPS gets a cookie the browser sends over HTTPS only.
    let signed_in = https_client(&ca)
        .post(serve.url("/console/session"))
        .json(&json!({"key": serve.admin}))
        .send()
        .expect("console sign-in");
    assert_eq!(signed_in.status(), 200);
    let cookie =
        signed_in.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");

    // The client commands: --ca-file (or EVIDENT_CA_FILE) trusts the test CA.
    let ca_arg = ca_file.display().to_string();
    let listed = evident(&serve.base, &serve.admin, &["keys", "list", "--json", "--ca-file", &ca_arg]);
    let keys = common::json_lines(&listed);
    assert_eq!(keys.len(), 1, "the bootstrap admin key: {keys:?}");
    assert_eq!(keys[0]["role"], "admin", "{keys:?}");
    let refused = evident(&serve.base, &serve.admin, &["keys", "list", "--json"]);
    assert!(!refused.status.success(), "without the CA the server is not trusted");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("cannot reach") && stderr.contains("UnknownIssuer"), "{stderr}");
    let bad =
        evident(&serve.base, &serve.admin, &["keys", "list", "--ca-file", &leaf.key.display().to_string()]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("--ca-file"), "{stderr}");
    serve.terminate();
}

#[test]
fn sighup_reloads_the_certificate_and_a_broken_pair_keeps_the_old_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("Evident test CA");
    let first = ca.leaf(dir.path(), "first", &["127.0.0.1"]);
    let env = tls_env(&first);
    let mut serve = Serve::fresh_with(&env_refs(&env));
    let url = serve.url("/healthz");
    assert_eq!(served_certificate(&ca, &url), first.der);

    // New files in place of the old ones, then SIGHUP: new connections get the new certificate.
    let second = ca.leaf(dir.path(), "second", &["127.0.0.1"]);
    std::fs::write(&first.cert, &second.cert_pem).expect("replace the certificate");
    std::fs::write(&first.key, &second.key_pem).expect("replace the key");
    serve.signal("HUP");
    serve.stderr_line_with("TLS certificate reloaded");
    assert_eq!(served_certificate(&ca, &url), second.der, "the new certificate after SIGHUP");

    // A broken pair (a key that is not the certificate's): the previous one stays, and why is logged.
    let third = ca.leaf(dir.path(), "third", &["127.0.0.1"]);
    std::fs::write(&first.cert, &third.cert_pem).expect("replace the certificate");
    serve.signal("HUP");
    let line = serve.stderr_line_with("evident: TLS reload failed");
    assert!(line.contains("does not fit certificate"), "{line}");
    assert_eq!(served_certificate(&ca, &url), second.der, "the previous certificate stays in use");
    std::fs::write(&first.key, "not a key").expect("break the key");
    serve.signal("HUP");
    let line = serve.stderr_line_with("evident: TLS reload failed");
    assert!(line.contains("not a readable PEM private key"), "{line}");
    assert_eq!(served_certificate(&ca, &url), second.der, "still the previous certificate");
    serve.terminate();
}

/// `evident serve ARGS` run to its exit (it must not start): the exit status and stderr.
fn serve_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(EVIDENT)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("EVIDENT_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("evident runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "serve must refuse to start:\n{stderr}");
    stderr
}

#[test]
fn tls_settings_that_cannot_work_stop_the_start_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("Evident test CA");
    let leaf = ca.leaf(dir.path(), "server", &["127.0.0.1"]);
    let cert = leaf.cert.display().to_string();
    let stderr = serve_fails(&["--tls-cert", &cert], &[]);
    assert!(stderr.contains("--tls-cert and --tls-key go together"), "{stderr}");
    let stderr = serve_fails(&["--tls-cert", &cert, "--tls-key", &cert], &[]);
    assert!(stderr.contains("not a readable PEM private key"), "{stderr}");
    let stderr = serve_fails(&[], &[("EVIDENT_OUTBOUND_CA_FILE", leaf.key.to_str().expect("utf-8"))]);
    assert!(stderr.contains("EVIDENT_OUTBOUND_CA_FILE"), "{stderr}");
}

#[test]
fn plain_http_off_loopback_warns_loudly_and_loopback_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(EVIDENT)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("EVIDENT_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evident serve starts");
    let lines = common::lines(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.starts_with("evident: listening on")) {
        seen.push(lines.recv_timeout(common::TIMEOUT).expect("a stderr line"));
    }
    let _ = child.kill();
    let _ = child.wait();
    let warning =
        seen.iter().find(|l| l.starts_with("evident: WARNING: listening on 0.0.0.0:")).expect("a warning");
    assert!(
        warning.contains("without TLS") && warning.contains("--tls-cert FILE --tls-key FILE"),
        "{warning}"
    );
    assert!(
        seen.iter().any(|l| l.contains("WARN") && l.contains("without TLS")),
        "a WARN log line: {seen:?}"
    );

    let serve = Serve::fresh();
    assert!(serve.stderr_seen().iter().all(|l| !l.contains("without TLS")), "{:?}", serve.stderr_seen());
    serve.terminate();
}

/// An https webhook receiver with `leaf`'s certificate: counts the requests it answered 200.
fn https_receiver(leaf: &Leaf) -> (u16, Arc<AtomicUsize>) {
    let socket = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = socket.local_addr().expect("address").port();
    let chain = vec![rustls::pki_types::CertificateDer::from(leaf.der.clone())];
    let key: rustls::pki_types::PrivateKeyDer =
        rustls::pki_types::pem::PemObject::from_pem_slice(leaf.key_pem.as_bytes()).expect("a key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("config");
    let config = Arc::new(config);
    let delivered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&delivered);
    std::thread::spawn(move || {
        for stream in socket.incoming() {
            let Ok(stream) = stream else { continue };
            let (config, count) = (Arc::clone(&config), Arc::clone(&count));
            // Each connection in its own thread: one that stalls holds up no other.
            std::thread::spawn(move || answer_once(stream, config, &count));
        }
    });
    (port, delivered)
}

/// Reads one request on a TLS connection, answers 200 and counts it.
fn answer_once(stream: std::net::TcpStream, config: Arc<rustls::ServerConfig>, count: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let connection = rustls::ServerConnection::new(config).expect("connection");
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    // The head, then as much body as content-length says.
    while let Ok(n @ 1..) = tls.read(&mut buffer) {
        request.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&request).to_lowercase();
        let Some(end) = text.find("\r\n\r\n") else { continue };
        let length = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if request.len() >= end + 4 + length {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return;
        }
    }
}

#[test]
fn webhooks_reach_https_receivers_trusted_through_the_outbound_ca_file_and_refuse_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = Ca::new("On-premises CA");
    let ca_file = ca.write(dir.path(), "ca");
    let leaf = ca.leaf(dir.path(), "hooks", &["localhost"]);
    let (port, delivered) = https_receiver(&leaf);
    let url = format!("https://localhost:{port}/hook");
    let ca_arg = ca_file.display().to_string();
    let trusted = [
        ("EVIDENT_ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("EVIDENT_WEBHOOK_BACKOFF_MS", "50"),
        ("EVIDENT_OUTBOUND_CA_FILE", ca_arg.as_str()),
    ];
    let serve = Serve::fresh_with(&trusted);
    // Creating a webhook is itself a finding: its delivery goes over https, verified.
    let (status, body) = serve.post(&serve.admin, "/v1/webhooks", &json!({ "url": url }));
    assert_eq!(status, 201, "{body}");
    wait_for("an https delivery", || (delivered.load(Ordering::SeqCst) >= 1).then_some(()));
    serve.terminate();

    // Without the on-premises CA the receiver is not trusted: a dead letter names the TLS reason.
    let before = delivered.load(Ordering::SeqCst);
    let untrusted = [
        ("EVIDENT_ALLOW_PRIVATE_DESTINATIONS", "true"),
        ("EVIDENT_WEBHOOK_BACKOFF_MS", "50"),
        ("EVIDENT_WEBHOOK_ATTEMPTS", "2"),
    ];
    let serve = Serve::fresh_with(&untrusted);
    let (status, body) = serve.post(&serve.admin, "/v1/webhooks", &json!({ "url": url }));
    assert_eq!(status, 201, "{body}");
    let letter = wait_for("a dead letter", || {
        let letters =
            serve.get(&serve.admin, "/v1/webhooks/dead-letters")["dead_letters"].as_array().cloned()?;
        letters.first().cloned()
    });
    let error = letter["last_error"].as_str().expect("an error");
    assert_eq!(
        error, "cannot reach the receiver: TLS handshake failed: invalid peer certificate: UnknownIssuer",
        "{letter}"
    );
    assert_eq!(delivered.load(Ordering::SeqCst), before, "nothing was delivered to an untrusted receiver");
    serve.terminate();
}

/// A throwaway PostgreSQL cluster with `ssl=on` (the certificate of a test CA), accepting TCP
/// connections over TLS only (`hostssl`), run as the `postgres` user (PostgreSQL refuses root).
struct TlsPostgres {
    dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl TlsPostgres {
    fn start(leaf: &Leaf) -> TlsPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql)")
            .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("pgdata");
        let port =
            TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
        let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
        assert!(chown.expect("chown runs").success(), "chown the cluster directory");
        as_postgres(
            &bin.join("initdb"),
            &["-D", data.to_str().expect("utf-8"), "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        std::fs::copy(&leaf.cert, data.join("server.crt")).expect("the server certificate");
        std::fs::copy(&leaf.key, data.join("server.key")).expect("the server key");
        let settings = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nssl = on\n\
             ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\n",
            dir.path().display()
        );
        append(&data.join("postgresql.conf"), &settings);
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
            .expect("pg_hba.conf");
        let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status();
        assert!(chown.expect("chown runs").success());
        std::fs::set_permissions(
            data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("key mode");
        let log = dir.path().join("log");
        as_postgres(
            &bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        TlsPostgres { dir, data, bin, port }
    }

    fn url(&self, query: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres{query}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().expect("utf-8"), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
        let _ = &self.dir;
    }
}

fn as_postgres(program: &Path, args: &[&str]) {
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .current_dir("/")
        .output()
        .expect("runuser runs");
    assert!(
        output.status.success(),
        "{} {args:?}:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open");
    file.write_all(text.as_bytes()).expect("append");
}

/// Starts `serve` on `url` (in its own `schema`), records one event through it and stops it.
fn serve_on(url: &str, schema: &str) {
    let serve = Serve::fresh_with(&[("EVIDENT_DATABASE_URL", url), ("EVIDENT_DATABASE_SCHEMA", schema)]);
    let producer = serve.key("producer");
    let event = json!({
        "id": "tls-1", "source": "//crm.test", "type": "customer.record.viewed", "action": "read",
        "time": evident_wire::Micros::now().to_rfc3339(), "actor": {"id": "agent-1", "type": "user"},
        "subject": "cus-1", "targets": [{"type": "customer", "id": "cus-1"}], "outcome": "success",
        "origin": {"service": "crm"}
    });
    let (status, body) = serve.post(&producer, "/v1/events", &event);
    assert_eq!(status, 200, "{body}");
    serve.terminate();
}

#[test]
fn postgres_over_tls_verify_full_require_and_a_wrong_root_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("mode");
    let ca = Ca::new("Database CA");
    let ca_file = ca.write(dir.path(), "ca");
    let leaf = ca.leaf(dir.path(), "db", &["127.0.0.1"]);
    let postgres = TlsPostgres::start(&leaf);
    let root = ca_file.display().to_string();

    // verify-full: the chain against sslrootcert and the host (127.0.0.1) against the certificate.
    serve_on(&postgres.url(&format!("?sslmode=verify-full&sslrootcert={root}")), "full");
    // require: encrypted (the cluster takes TCP connections over TLS only).
    serve_on(&postgres.url("?sslmode=require"), "required");

    // Without TLS the cluster refuses the connection (so the two above were encrypted).
    let stderr = serve_fails(&["--database-url", &postgres.url("")], &[]);
    assert!(stderr.contains("no encryption"), "{stderr}");
    // A root certificate that did not issue the server's: refused, saying so.
    let other = Ca::new("Another CA").write(dir.path(), "other");
    let url = postgres.url(&format!("?sslmode=verify-full&sslrootcert={}", other.display()));
    let stderr = serve_fails(&["--database-url", &url], &[]);
    assert!(stderr.contains("invalid peer certificate: UnknownIssuer"), "{stderr}");
    assert!(stderr.contains("sslrootcert"), "says what to check: {stderr}");
    // verify-full checks the name: a certificate for another host is refused; verify-ca takes it.
    let named = ca.leaf(dir.path(), "elsewhere", &["db.example"]);
    drop(postgres);
    let postgres = TlsPostgres::start(&named);
    let url = postgres.url(&format!("?sslmode=verify-full&sslrootcert={root}"));
    let stderr = serve_fails(&["--database-url", &url], &[]);
    assert!(
        stderr.contains("invalid peer certificate: certificate not valid for name \"127.0.0.1\""),
        "{stderr}"
    );
    serve_on(&postgres.url(&format!("?sslmode=verify-ca&sslrootcert={root}")), "ca");
}
