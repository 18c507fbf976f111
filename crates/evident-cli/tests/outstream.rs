//! Streams out end to end (issue 17, item 5): the real `evident serve` streams to a real rsyslog
//! from Debian (syslog over TCP and over TLS), a real HTTPS receiver (Splunk HEC-compatible and
//! plain JSON), and the real NATS JetStream on 127.0.0.1:4222. Each destination is SIGKILLed
//! mid-stream and restarted: every event arrives at least once (distinct ids counted). OCSF
//! output is validated against the OCSF 1.8.0 JSON Schema (`ocsf-json-schema` from PyPI).
//!
//! Needs rsyslogd with its gnutls driver, openssl and python3 with `ocsf-json-schema` and
//! `jsonschema` (`scripts/test` installs them); each test fails loudly when one is missing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Serve, client, wait_for};
use serde_json::{Value, json};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/streams");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port()
}

fn run(what: &str, command: &mut Command) {
    let output =
        command.output().unwrap_or_else(|err| panic!("{what}: cannot run ({err}); is it installed?"));
    assert!(output.status.success(), "{what} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A test CA and a server certificate for `localhost` and 127.0.0.1 it signed, made by openssl.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    let ext = path("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&str]| {
        let mut command = Command::new("openssl");
        command.args(args).current_dir(dir.path());
        run("openssl (apt-get install -y openssl)", &mut command);
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=evident stream test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "req.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    Certs { ca: path("ca.pem"), cert: path("cert.pem"), key: path("key.pem"), _dir: dir }
}

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real rsyslogd on a free port, writing each message it receives (`%rawmsg%`) as a line.
struct Rsyslog {
    _process: Running,
    _dir: tempfile::TempDir,
    out: PathBuf,
    port: u16,
}

fn rsyslogd() -> &'static str {
    let path = "/usr/sbin/rsyslogd";
    assert!(
        Path::new(path).exists(),
        "rsyslogd is missing: apt-get install -y rsyslog rsyslog-gnutls (scripts/test does)"
    );
    path
}

fn rsyslog(tls: Option<&Certs>) -> Rsyslog {
    let dir = tempfile::tempdir().expect("temp dir");
    let (port, out) = (free_port(), dir.path().join("received.log"));
    let (global_tls, driver) = match tls {
        Some(certs) => (
            format!(
                " DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
                 DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                certs.ca.display(),
                certs.cert.display(),
                certs.key.display()
            ),
            " StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\"",
        ),
        None => (String::new(), ""),
    };
    let conf = format!(
        "global(workDirectory=\"{dir}\"{global_tls})\n\
         module(load=\"imtcp\"{driver})\n\
         template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
         input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
         action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n",
        dir = dir.path().display(),
        out = out.display(),
    );
    let conf_path = dir.path().join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(rsyslogd())
        .args(["-n", "-f"])
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.path().join("rsyslogd.pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd starts");
    let process = Running(child);
    wait_for("rsyslogd to listen", || TcpStream::connect(("127.0.0.1", port)).ok());
    Rsyslog { _process: process, _dir: dir, out, port }
}

impl Rsyslog {
    /// The producer ids of the events received: each message's MSG (after the BOM) is JSON with the event.
    fn received(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter(|line| !line.is_empty())
            .map(|line| {
                let msg = line.split('\u{feff}').nth(1).unwrap_or_else(|| panic!("no BOM in {line:?}"));
                let event: Value = serde_json::from_str(msg).unwrap_or_else(|e| panic!("{e}: {msg}"));
                event["id"].as_str().expect("an id").to_owned()
            })
            .collect()
    }

    /// The complete lines rsyslog has written so far (a line it is still writing is left for the
    /// next look: reading it half-written once failed a run).
    fn lines(&self) -> Vec<String> {
        let bytes = std::fs::read(&self.out).unwrap_or_default();
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |end| end + 1);
        String::from_utf8_lossy(&bytes[..complete]).lines().map(str::to_owned).collect()
    }
}

/// The HTTPS receiver (`https_receiver.py`), its port and the bodies it accepted.
struct Receiver {
    _process: Running,
    _dir: tempfile::TempDir,
    out: PathBuf,
    port: u16,
}

fn https_receiver(certs: &Certs, token: &str, fail_first: u32) -> Receiver {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("bodies");
    let mut child = Command::new("python3")
        .arg(Path::new(DATA).join("https_receiver.py"))
        .args([&certs.cert, &certs.key, &out])
        .args([token, &fail_first.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| panic!("the receiver did not start: {line:?}"));
    Receiver { _process: Running(child), _dir: dir, out, port }
}

impl Receiver {
    /// Every JSON value of every accepted body (HEC bodies are objects one after another). The
    /// receiver may be writing a body while it is read: a value cut short at the end is left
    /// for the next look; any other unreadable value fails the test.
    fn values(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let mut values = Vec::new();
        for value in serde_json::Deserializer::from_str(&text).into_iter::<Value>() {
            match value {
                Ok(value) => values.push(value),
                Err(err) if err.is_eof() => break,
                Err(err) => panic!("JSON: {err}"),
            }
        }
        values
    }
}

/// Settings every stream test runs the server with.
const STREAM_ENV: [(&str, &str); 4] = [
    ("EVIDENT_ALLOW_PRIVATE_DESTINATIONS", "true"),
    ("EVIDENT_STREAM_POLL_MS", "50"),
    ("EVIDENT_STREAM_BACKOFF_MS", "100"),
    ("EVIDENT_STREAM_BATCH", "7"),
];

fn event(n: usize) -> Value {
    json!({
        "id": format!("ev-{n}"), "source": "//crm.test", "type": "customer.record.viewed", "action": "read",
        "time": evident_wire::Micros::now().to_rfc3339(),
        "actor": {"id": "agent-7", "type": "user", "display": "Ann Agent"}, "subject": format!("cust-{n}"),
        "targets": [{"type": "customer", "id": format!("cust-{n}"), "display": "Carl Customer"}],
        "outcome": "success", "reason": "ticket 42",
        "origin": {"ip": "198.51.100.9", "service": "crm"},
    })
}

fn send_events(serve: &Serve, producer: &str, range: std::ops::Range<usize>) {
    let ids: Vec<usize> = range.collect();
    for chunk in ids.chunks(50) {
        let batch: Vec<Value> = chunk.iter().map(|n| event(*n)).collect();
        let (status, body) = serve.post(producer, "/v1/events", &Value::Array(batch));
        assert_eq!(status, 200, "{body}");
    }
}

fn streams(serve: &Serve, key: &str) -> Vec<Value> {
    serve.get(key, "/v1/streams")["streams"].as_array().cloned().expect("streams")
}

/// Creates a stream of `//crm.test` events; answers its id.
fn create_stream(serve: &Serve, format: &str, destination: &str, token: Option<&str>) -> String {
    let mut request =
        json!({"format": format, "destination": destination, "filter": {"source": "//crm.test"}});
    if let Some(token) = token {
        request["token"] = json!(token);
    }
    let (status, body) = serve.post(&serve.admin, "/v1/streams", &request);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["format"], format);
    assert_eq!(body["filter"], json!({"source": "//crm.test"}));
    body["id"].as_str().expect("an id").to_owned()
}

/// Waits until `received` holds every one of `ev-0 .. ev-{n-1}`; answers how many arrived in all.
fn wait_for_all(n: usize, received: &dyn Fn() -> Vec<String>) -> usize {
    let wanted: BTreeSet<String> = (0..n).map(|i| format!("ev-{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = received();
        let distinct: BTreeSet<String> = got.iter().cloned().collect();
        if wanted.is_subset(&distinct) {
            assert_eq!(distinct.len(), n, "only the filtered events arrive");
            return got.len();
        }
        let missing = wanted.difference(&distinct).count();
        assert!(Instant::now() < deadline, "{missing} of {n} events never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The crash scenario every destination runs: 200 events, SIGKILL of `evident serve` as soon as
/// the first arrived, a restart on the same data, 100 more; every one arrives at least once, the
/// cursor reaches the log's end and the stream shows no lag. Answers the restarted server.
fn survives_a_crash(
    extra_env: &[(&str, &str)],
    format: &str,
    destination: &str,
    token: Option<&str>,
    received: &dyn Fn() -> Vec<String>,
) -> (Serve, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let env: Vec<(&str, &str)> = STREAM_ENV.iter().chain(extra_env).copied().collect();
    let serve = Serve::first_start_with(&data, &env);
    let admin = serve.admin.clone();
    let producer = serve.key("producer");
    let stream = create_stream(&serve, format, destination, token);
    send_events(&serve, &producer, 0..200);
    wait_for("the first delivery", || (!received().is_empty()).then_some(()));
    serve.kill();
    let before_restart: BTreeSet<String> = received().into_iter().collect();
    eprintln!("{format} to {destination}: {} of 200 delivered when killed", before_restart.len());

    let mut serve = Serve::start_with(&data, &env);
    serve.admin = admin;
    send_events(&serve, &producer, 200..300);
    let arrived = wait_for_all(300, received);
    eprintln!("{format} to {destination}: 300 distinct events, {arrived} deliveries in all");
    let admin = serve.admin.clone();
    let settled = wait_for("the stream to catch up", || {
        let found = streams(&serve, &admin).into_iter().find(|s| s["id"] == stream.as_str())?;
        (found["lag"] == 0 && found["cursor"] == found["tree_size"]).then_some(found)
    });
    assert!(settled["delivered"].as_u64().unwrap() >= 100, "{settled}");
    (serve, dir, stream)
}

#[test]
fn syslog_over_tcp_reaches_rsyslog_through_a_crash() {
    let rsyslog = rsyslog(None);
    let destination = format!("syslog+tcp://127.0.0.1:{}", rsyslog.port);
    let (_serve, _dir, _) = survives_a_crash(&[], "rfc5424", &destination, None, &|| rsyslog.received());
    // rsyslog took each octet-counted frame as one RFC 5424 message with our SD element.
    let line = rsyslog.lines().into_iter().find(|l| l.contains("\"ev-0\"")).expect("ev-0");
    assert!(line.starts_with("<110>1 "), "{line}");
    assert!(line.contains("[evident@32473 index=\""), "{line}");
    assert!(line.contains(" type=\"customer.record.viewed\" action=\"read\" outcome=\"success\""), "{line}");
    // No personal value leaves: the display names and the IP stay sealed in the store.
    let all = rsyslog.lines().join("\n");
    for personal in ["Ann Agent", "Carl Customer", "198.51.100.9"] {
        assert!(!all.contains(personal), "{personal} was streamed");
    }
}

#[test]
fn syslog_over_tls_reaches_rsyslog_through_a_crash() {
    let certs = certs();
    let rsyslog = rsyslog(Some(&certs));
    let destination = format!("syslog+tls://localhost:{}", rsyslog.port);
    let ca = certs.ca.display().to_string();
    let env = [("EVIDENT_OUTBOUND_CA_FILE", ca.as_str())];
    survives_a_crash(&env, "json", &destination, None, &|| rsyslog.received());
}

#[test]
fn syslog_over_tls_refuses_an_untrusted_receiver_and_says_so() {
    let certs = certs();
    let rsyslog = rsyslog(Some(&certs));
    // Without the test CA the receiver's certificate is not trusted: nothing is delivered, the
    // error is in the stream's status and the cursor stays.
    let serve = Serve::fresh_with(&STREAM_ENV);
    let producer = serve.key("producer");
    let stream = create_stream(&serve, "cef", &format!("syslog+tls://localhost:{}", rsyslog.port), None);
    send_events(&serve, &producer, 0..3);
    let failing = wait_for("the failure to show", || {
        let found = streams(&serve, &serve.admin).into_iter().find(|s| s["id"] == stream.as_str())?;
        (found["failures"].as_u64()? >= 2).then_some(found)
    });
    let error = failing["last_error"].as_str().unwrap();
    assert!(error.starts_with("TLS with localhost:") && error.contains("certificate"), "{error}");
    // The cursor waits before the first event to deliver.
    assert!(failing["lag"].as_u64().unwrap() >= 3, "{failing}");
    std::thread::sleep(Duration::from_millis(300));
    let later = streams(&serve, &serve.admin).into_iter().find(|s| s["id"] == stream.as_str()).unwrap();
    assert_eq!(later["cursor"], failing["cursor"]);
    assert!(rsyslog.received().is_empty());
}

#[test]
fn https_hec_batches_arrive_through_a_crash_and_retries() {
    let certs = certs();
    // The receiver answers 503 to its first three requests: retried, and visible meanwhile.
    let receiver = https_receiver(&certs, "hec-token-1", 3);
    let destination = format!("https://localhost:{}/services/collector/event", receiver.port);
    let ca = certs.ca.display().to_string();
    let env = [("EVIDENT_OUTBOUND_CA_FILE", ca.as_str()), ("EVIDENT_METRICS_TOKEN", "metrics-secret")];
    let hec_ids = || -> Vec<String> {
        receiver
            .values()
            .iter()
            .map(|hec| {
                assert_eq!(hec["sourcetype"], "evident:cef", "{hec}");
                let cef = hec["event"].as_str().expect("a CEF line");
                let id = cef.split(" duser=cust-").nth(1).expect("duser").split(' ').next().unwrap();
                format!("ev-{id}")
            })
            .collect()
    };
    let (serve, _dir, stream) = survives_a_crash(&env, "cef", &destination, Some("hec-token-1"), &hec_ids);
    let first = &receiver.values()[0];
    assert_eq!(first["source"], "evident");
    assert!(first["event"].as_str().unwrap().starts_with("CEF:0|Evident|Evident|1|customer.record.viewed|"));
    let shown = streams(&serve, &serve.admin).into_iter().find(|s| s["id"] == stream.as_str()).unwrap();
    assert_eq!(shown["token_set"], true);
    assert!(!shown.to_string().contains("hec-token-1"), "the token is never shown");
    assert_eq!(shown["last_error"], "the receiver answered 503 Service Unavailable", "{shown}");
    assert_eq!(shown["destination"], destination);

    // Lag metrics: the total for everyone, per stream only with the metrics token.
    let metrics = |token: Option<&str>| {
        let mut request = client().get(serve.url("/metrics"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().unwrap().text().unwrap()
    };
    let public = metrics(None);
    assert!(public.contains("evident_stream_events_delivered_total "), "{public}");
    assert!(public.contains("evident_stream_lag_entries_max 0"), "{public}");
    assert!(!public.contains(&stream));
    let labelled = metrics(Some("metrics-secret"));
    assert!(
        labelled.contains(&format!("evident_stream_lag_entries{{tenant=\"default\",stream=\"{stream}\"}} 0"))
    );

    // Restart from a position: everything from index 0 again.
    let before = hec_ids().len();
    let (status, body) =
        serve.post(&serve.admin, &format!("/v1/streams/{stream}/position"), &json!({"position": 0}));
    assert_eq!((status, body["cursor"].clone()), (200, json!(0)), "{body}");
    wait_for("the replay", || (hec_ids().len() >= before + 300).then_some(()));
}

#[test]
fn ocsf_over_https_json_validates_against_the_ocsf_schema() {
    let certs = certs();
    let receiver = https_receiver(&certs, "bearer-1", 0);
    let ca = certs.ca.display().to_string();
    let env: Vec<(&str, &str)> =
        STREAM_ENV.iter().copied().chain([("EVIDENT_OUTBOUND_CA_FILE", ca.as_str())]).collect();
    let serve = Serve::fresh_with(&env);
    let producer = serve.key("producer");
    let destination = format!("https://localhost:{}/ingest", receiver.port);
    let (status, body) = serve.post(
        &serve.admin,
        "/v1/streams",
        &json!({"format": "ocsf", "destination": destination, "token": "bearer-1", "filter": {"source": "//idp.test"}}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = serve.post(&producer, "/v1/events", &Value::Array(ocsf_samples()));
    assert_eq!(status, 200, "{body}");
    let ocsf = wait_for("the OCSF events", || {
        let values = receiver.values();
        let events: Vec<Value> =
            values.iter().flat_map(|v| v.as_array().cloned().unwrap_or_default()).collect();
        (events.len() >= OCSF_KINDS.len()).then_some(events)
    });
    let type_uids: BTreeMap<String, u64> = ocsf
        .iter()
        .map(|e| (e["metadata"]["event_code"].as_str().unwrap().to_owned(), e["type_uid"].as_u64().unwrap()))
        .collect();
    let expected: BTreeMap<String, u64> =
        OCSF_KINDS.iter().map(|(_, kind, _, type_uid)| (kind.to_string(), *type_uid)).collect();
    assert_eq!(type_uids, expected);
    let validated = Command::new("python3")
        .arg(Path::new(DATA).join("ocsf_validate.py"))
        .arg(&receiver.out)
        .output()
        .expect("python3 runs");
    let report = String::from_utf8_lossy(&validated.stdout);
    let errors = String::from_utf8_lossy(&validated.stderr);
    assert!(validated.status.success(), "OCSF schema validation failed:\n{errors}{report}");
    assert_eq!(report, "3001 4\n3002 2\n6003 4\n");
}

/// One event of each class and activity the OCSF mapping knows: (action, type, target type,
/// the expected `type_uid`).
const OCSF_KINDS: [(&str, &str, &str, u64); 10] = [
    ("read", "customer.record.viewed", "customer", 600302),
    ("update", "customer.record.updated", "customer", 600303),
    ("export", "customer.records.exported", "customer", 600302),
    ("login", "auth.login.succeeded", "session", 300201),
    ("logout", "auth.logout", "session", 300202),
    ("grant", "user.role.granted", "role", 300107),
    ("revoke", "user.role.revoked", "role", 300108),
    ("create", "user.created", "user", 300101),
    ("delete", "user.deleted", "user", 300106),
    ("configure", "settings.changed", "setting", 600399),
];

fn ocsf_samples() -> Vec<Value> {
    let sample = |n: usize, (action, kind, target, _): &(&str, &str, &str, u64)| {
        let mut event = event(n);
        event["source"] = json!("//idp.test");
        event["action"] = json!(action);
        event["type"] = json!(kind);
        event["targets"] = json!([{"type": target, "id": format!("t-{n}")}]);
        event["actor"]["auth"] = json!({"method": "oidc", "mfa": true});
        event["origin"]["host"] = json!("idp-1.example.com");
        event["severity"] = json!(["info", "low", "medium", "high", "critical"][n % 5]);
        if matches!(*action, "create" | "update" | "delete") {
            event["changes"] = json!([{"field": "/status", "before": "a", "after": "b"}]);
        }
        event
    };
    OCSF_KINDS.iter().enumerate().map(|(n, kind)| sample(n, kind)).collect()
}

/// A JetStream stream of its own on the local NATS for one test, deleted at the end.
struct JetStream {
    runtime: tokio::runtime::Runtime,
    context: async_nats::jetstream::Context,
    name: String,
    subject: String,
}

impl JetStream {
    fn new() -> JetStream {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let suffix = format!("{}_{}", std::process::id(), free_port());
        let (name, subject) = (format!("EVIDENT_TEST_{suffix}"), format!("evident.test.{suffix}"));
        let context = runtime.block_on(async {
            let client = async_nats::connect("127.0.0.1:4222")
                .await
                .expect("NATS with JetStream must run on 127.0.0.1:4222 (scripts/test checks)");
            let context = async_nats::jetstream::new(client);
            let config = async_nats::jetstream::stream::Config {
                name: name.clone(),
                subjects: vec![subject.clone()],
                duplicate_window: Duration::from_secs(600),
                ..Default::default()
            };
            context.create_stream(config).await.expect("a JetStream stream");
            context
        });
        JetStream { runtime, context, name, subject }
    }

    /// Every message in the stream: its `Nats-Msg-Id` and payload.
    fn messages(&self) -> Vec<(String, Value)> {
        self.runtime.block_on(async {
            let mut stream = self.context.get_stream(&self.name).await.expect("the stream");
            let last = stream.info().await.expect("info").state.last_sequence;
            let mut messages = Vec::new();
            for sequence in 1..=last {
                let Ok(message) = stream.get_raw_message(sequence).await else { continue };
                let id = message.headers.get("Nats-Msg-Id").map(|v| v.to_string()).unwrap_or_default();
                messages.push((id, serde_json::from_slice(&message.payload).expect("JSON")));
            }
            messages
        })
    }
}

impl Drop for JetStream {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(self.context.delete_stream(&self.name));
    }
}

#[test]
fn nats_jetstream_gets_each_event_once_through_a_crash() {
    let jetstream = JetStream::new();
    let destination = format!("nats://127.0.0.1:4222/{}", jetstream.subject);
    let ids = || -> Vec<String> {
        jetstream
            .messages()
            .iter()
            .map(|(_, event)| event["data"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_serve, _dir, _) = survives_a_crash(&[], "cloudevents", &destination, None, &ids);
    // A redelivered batch carries the same Nats-Msg-Id (the event id), which JetStream drops:
    // exactly one message per event.
    let messages = jetstream.messages();
    assert_eq!(messages.len(), 300);
    for (msg_id, event) in &messages {
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"].as_str(), Some(msg_id.as_str()));
        assert_eq!(event["data"]["event_id"].as_str(), Some(msg_id.as_str()));
        assert_eq!(event["sequence"].as_str().map(str::len), Some(20));
    }
}

#[test]
fn stream_requests_are_checked() {
    let serve = Serve::fresh();
    let reader = serve.key("reader");
    let post = |key: &str, body: Value| serve.post(key, "/v1/streams", &body);
    let refused = |body: Value, param: &str| {
        let (status, problem) = post(&serve.admin, body);
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["invalid-params"][0]["name"], param, "{problem}");
        problem["invalid-params"][0]["reason"].as_str().unwrap().to_owned()
    };
    let ok = json!({"format": "json", "destination": "nats://192.0.2.1:4222/x"});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body
    };
    refused(with("format", json!("xml")), "format");
    let reason = refused(with("destination", json!("ftp://example.com/x")), "destination");
    assert!(reason.contains("unknown scheme \"ftp\""), "{reason}");
    refused(with("destination", json!("syslog+tcp://example.com")), "destination");
    refused(with("destination", json!("nats://example.com/")), "destination");
    refused(with("destination", json!("https://user:pw@example.com/")), "destination");
    refused(with("destination", json!("http://93.184.215.14/")), "destination");
    // Private and loopback destinations are refused unless the operator allows them.
    for private in [
        "syslog+tcp://127.0.0.1:514",
        "nats://10.1.2.3:4222/s",
        "https://169.254.169.254/x",
        "syslog+tls://localhost:6514",
    ] {
        let reason = refused(with("destination", json!(private)), "destination");
        assert!(reason.contains("EVIDENT_ALLOW_PRIVATE_DESTINATIONS=true"), "{private}: {reason}");
    }
    refused(with("filter", json!({"colour": "red"})), "filter.colour");
    refused(with("filter", json!({"outcome": "maybe"})), "filter.outcome");
    refused(with("filter", json!({"findings_only": "yes"})), "filter.findings_only");
    refused(with("filter", json!([])), "filter");
    refused(with("start", json!(1_000_000)), "start");
    refused(with("token", json!("")), "token");
    let (status, _) = post(&serve.admin, json!({"format": "json"}));
    assert_eq!(status, 400);
    // Wrong role.
    let (status, _) = post(&reader, ok.clone());
    assert_eq!(status, 403);
    assert_eq!(serve.get_status(&reader, "/v1/streams"), 403);
}

/// The status of the API error a call must have failed with.
fn api_status<T: std::fmt::Debug>(result: Result<T, evident_client::Error>) -> u16 {
    match result {
        Err(evident_client::Error::Api { status, .. }) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Through the typed client: create, list, reposition, delete; each change on the record.
#[test]
fn streams_are_listed_repositioned_and_deleted_on_the_record() {
    use evident_wire::streams::{CreateStream, Position};
    let serve = Serve::fresh();
    let admin = evident_client::Client::new(&serve.base, Some(serve.admin.clone()));
    let reader = evident_client::Client::new(&serve.base, Some(serve.key("reader")));
    // A public destination (TEST-NET-1) is taken.
    let filter = json!({"findings_only": true, "type": "evident.finding.opened"});
    let request = CreateStream {
        format: "json".into(),
        destination: "nats://192.0.2.1:4222/x".into(),
        filter: Some(filter.clone()),
        token: None,
        start: None,
    };
    let created = admin.create_stream(&request).unwrap();
    assert_eq!(
        (created.filter.clone(), created.destination.as_str(), created.token_set),
        (filter, "nats://192.0.2.1:4222/x", false)
    );
    assert_eq!((created.cursor, created.lag), (0, created.tree_size));
    let listed = admin.streams().unwrap().streams;
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![created.id.as_str()]);

    // Unknown ids: 404 for delete and position; a position past the log's end: 400; a reader: 403.
    assert_eq!(api_status(admin.delete_stream("str_nope")), 404);
    assert_eq!(api_status(admin.position_stream("str_nope", &Position { position: 0 })), 404);
    assert_eq!(api_status(admin.position_stream(&created.id, &Position { position: 99_999 })), 400);
    assert_eq!(api_status(reader.position_stream(&created.id, &Position { position: 0 })), 403);
    assert_eq!(api_status(reader.streams()), 403);
    assert_eq!(admin.position_stream(&created.id, &Position { position: 1 }).unwrap().cursor, 1);

    // Every change is in the tenant's log.
    assert_eq!(admin.delete_stream(&created.id).unwrap().deleted, created.id);
    assert_eq!(api_status(admin.delete_stream(&created.id)), 404);
    assert!(admin.streams().unwrap().streams.is_empty());
    let auditor = serve.key("auditor");
    for kind in ["evident.stream.created", "evident.stream.positioned", "evident.stream.deleted"] {
        let found = serve.get(&auditor, &format!("/v1/events?type={kind}"));
        assert_eq!(found["events"].as_array().map(Vec::len), Some(1), "{kind}: {found}");
    }
}

/// `/healthz` names the tenants a node leads only to the metrics token.
const METRICS_TOKEN: &str = "stream-metrics";

/// Whether a node says it leads tenant `default` (`/healthz`).
fn leads_default(serve: &Serve) -> bool {
    let health = client().get(serve.url("/healthz")).bearer_auth(METRICS_TOKEN).send().unwrap();
    let health: Value = health.json().unwrap();
    health["leads"].as_array().is_some_and(|t| t.iter().any(|t| t == "default"))
}

fn delivered_here(serve: &Serve) -> u64 {
    let metrics = client().get(serve.url("/metrics")).send().unwrap().text().unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("evident_stream_events_delivered_total "))
        .expect("the counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn on_postgresql_only_the_leader_delivers_and_a_successor_goes_on() {
    let schema = common::Schema::new();
    let rsyslog = rsyslog(None);
    let dirs = tempfile::tempdir().unwrap();
    let dir = |node: usize| dirs.path().join(format!("node-{node}"));
    let env = |node: usize| -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            STREAM_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        env.extend([
            ("EVIDENT_DATABASE_URL".into(), common::database_url()),
            ("EVIDENT_DATABASE_SCHEMA".into(), schema.0.clone()),
            ("EVIDENT_LEASE_TTL_MS".into(), "1000".into()),
            ("EVIDENT_NODE_ID".into(), format!("node-{node}")),
            ("EVIDENT_METRICS_TOKEN".into(), METRICS_TOKEN.into()),
        ]);
        env
    };
    let start = |node: usize, first: bool| {
        let env = env(node);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if first { Serve::first_start_with(&dir(node), &env) } else { Serve::start_with(&dir(node), &env) }
    };
    let leader = start(0, true);
    let (admin, producer) = (leader.admin.clone(), leader.key("producer"));
    std::fs::create_dir_all(dir(1)).unwrap();
    for file in ["signing.key", "master.key"] {
        std::fs::copy(dir(0).join(file), dir(1).join(file)).unwrap();
    }
    let mut follower = start(1, false);
    follower.admin = admin;
    assert!(leads_default(&leader) && !leads_default(&follower));
    create_stream(&follower, "rfc5424", &format!("syslog+tcp://127.0.0.1:{}", rsyslog.port), None);
    send_events(&follower, &producer, 0..100);
    wait_for("the first delivery", || (!rsyslog.received().is_empty()).then_some(()));
    assert_eq!(delivered_here(&follower), 0, "a follower never delivers");
    leader.kill();
    wait_for("the follower to take the lease", || leads_default(&follower).then_some(()));
    send_events(&follower, &producer, 100..150);
    wait_for_all(150, &|| rsyslog.received());
    assert!(delivered_here(&follower) > 0);
}
