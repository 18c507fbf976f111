//! What the integration tests share: a real `evident serve` on a port the system picks, and small
//! HTTP helpers against it.
#![allow(dead_code)] // not every test file uses every helper

use std::io::{BufRead as _, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const EVIDENT: &str = env!("CARGO_BIN_EXE_evident");
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Sends each line of `pipe` to the answered channel.
pub fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A running `evident serve`, killed if a test fails before stopping it.
pub struct Serve {
    child: Child,
    stdout: mpsc::Receiver<String>,
    /// Read by a thread all along, so the server never blocks on a full pipe.
    stderr: mpsc::Receiver<String>,
    /// Everything read from stderr so far, for failure messages.
    stderr_seen: Vec<String>,
    pub base: String,
    /// The admin key a first start printed (read by `first_start` and `fresh`; empty otherwise).
    pub admin: String,
    /// The temporary data directory of `fresh`, removed after the process is killed.
    _dir: Option<tempfile::TempDir>,
}

impl Serve {
    /// Starts `evident serve` on a port the system picks, and waits until it listens.
    pub fn start(data_dir: &Path) -> Serve {
        Serve::start_with(data_dir, &[])
    }

    /// The same, with extra environment variables (limits).
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Serve {
        let mut child = Command::new(EVIDENT)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("EVIDENT_CONFIG")
            .env_remove("EVIDENT_LISTEN")
            .env_remove("EVIDENT_DATA_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("evident serve starts");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        let mut serve = Serve {
            child,
            stdout,
            stderr,
            stderr_seen: Vec::new(),
            base: String::new(),
            admin: String::new(),
            _dir: None,
        };
        let deadline = Instant::now() + TIMEOUT;
        while serve.base.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match serve.stderr.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        serve.base = rest.split_whitespace().next().expect("an address").to_owned();
                    }
                    serve.stderr_seen.push(line);
                }
                Err(_) => panic!("evident serve did not start listening:\n{}", serve.stderr_seen.join("\n")),
            }
        }
        let https = serve.base.starts_with("https://127.0.0.1:");
        assert!(serve.base.starts_with("http://127.0.0.1:") || https, "{}", serve.base);
        serve
    }

    /// The first start on `data_dir`, with the admin key it prints in `admin`.
    pub fn first_start(data_dir: &Path) -> Serve {
        Serve::first_start_with(data_dir, &[])
    }

    pub fn first_start_with(data_dir: &Path, env: &[(&str, &str)]) -> Serve {
        let mut serve = Serve::start_with(data_dir, env);
        let line = serve.stdout.recv_timeout(TIMEOUT).expect("the admin key line");
        let admin = line.strip_prefix("admin key: ").unwrap_or_else(|| panic!("not the key line: {line:?}"));
        serve.admin = admin.to_owned();
        serve
    }

    /// A first start on a new temporary data directory, removed when the `Serve` is dropped.
    pub fn fresh() -> Serve {
        Serve::fresh_with(&[])
    }

    /// The same, with extra environment variables (limits).
    pub fn fresh_with(env: &[(&str, &str)]) -> Serve {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut serve = Serve::first_start_with(&dir.path().join("data"), env);
        serve._dir = Some(dir);
        serve
    }

    /// Sends a signal (`KILL`, `STOP`, `CONT`, ...) to the server process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// Waits for a line on stderr holding `needle` (after those already read) and answers it.
    pub fn stderr_line_with(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line with {needle:?}:\n{}", self.stderr_seen.join("\n")),
            }
        }
    }

    /// The stderr lines read so far.
    pub fn stderr_seen(&self) -> &[String] {
        &self.stderr_seen
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next stdout line (the first start prints the admin key before it listens).
    pub fn stdout_line(&self) -> String {
        self.stdout.recv_timeout(TIMEOUT).expect("a line on stdout")
    }

    /// SIGTERM, then waits for the exit; answers the exit status and the rest of stdout.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "evident serve did not stop within {TIMEOUT:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        self.stderr_seen.extend(self.stderr.try_iter());
        let stdout: Vec<String> = self.stdout.iter().collect();
        assert!(status.success(), "evident serve exited with {status}:\n{}", self.stderr_seen.join("\n"));
        (status, stdout)
    }

    /// A new key of `role` in the default tenant.
    pub fn key(&self, role: &str) -> String {
        let (status, body) = self.post(&self.admin, "/v1/keys", &json!({ "role": role }));
        assert_eq!(status, 201, "POST /v1/keys: {body}");
        body["key"].as_str().expect("a key").to_owned()
    }

    /// GET `path` with `key`: must answer 200 and JSON.
    pub fn get(&self, key: &str, path: &str) -> Value {
        let response = client().get(self.url(path)).bearer_auth(key).send().expect("GET");
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().expect("JSON")
    }

    /// GET `path` with `key`: the status only.
    pub fn get_status(&self, key: &str, path: &str) -> u16 {
        client().get(self.url(path)).bearer_auth(key).send().expect("GET").status().as_u16()
    }

    /// GET `path` with `key`: must answer 200; the body.
    pub fn get_bytes(&self, key: &str, path: &str) -> Vec<u8> {
        let response = client().get(self.url(path)).bearer_auth(key).send().expect("GET");
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.bytes().expect("body").to_vec()
    }

    /// POST `body` to `path` with `key`; the status and the JSON answer.
    pub fn post(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let response = client().post(self.url(path)).bearer_auth(key).json(body).send().expect("POST");
        let status = response.status().as_u16();
        (status, response.json().expect("JSON"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(TIMEOUT).build().expect("client")
}

/// The PostgreSQL server of the tests: `EVIDENT_TEST_DATABASE_URL`, by default the local one.
pub fn database_url() -> String {
    std::env::var("EVIDENT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A PostgreSQL schema of its own for one test, dropped at the end.
pub struct Schema(pub String);

impl Schema {
    pub fn new() -> Schema {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("evident_test_{}_{nanos}", std::process::id());
        Schema(name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .env("PGOPTIONS", "--client-min-messages=warning")
            .args([&database_url(), "-q", "-c", &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0)])
            .status();
    }
}

/// Runs a client command `evident ARGS --url BASE --key KEY`.
pub fn evident(base: &str, key: &str, args: &[&str]) -> std::process::Output {
    Command::new(EVIDENT)
        .args(args)
        .args(["--url", base, "--key", key])
        .env_remove("EVIDENT_API_KEY")
        .output()
        .expect("evident runs")
}

/// The JSON lines a successful command printed.
pub fn json_lines(output: &std::process::Output) -> Vec<Value> {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// The Go checker (`interop/go`), built once per test binary (Go is required: the test fails
/// loudly without it).
pub fn go_checker() -> &'static Path {
    static CHECKER: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    CHECKER.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tlogcheck-{}", std::process::id()));
        let build = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/go/build.sh"))
            .arg(&out)
            .status()
            .expect("run interop/go/build.sh");
        assert!(
            build.success(),
            "the Go checker must build (apt-get install -y golang-go golang-golang-x-mod-dev)"
        );
        out
    })
}

/// Polls `probe` until it answers, for at most 30 s.
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last noon UTC before now, as RFC 3339: inside the default `off-hours` rule's working hours
/// (06:00-22:00 at UTC+01:00) whatever the time of day a test runs, so that an event at that time
/// raises no `off-hours` finding beside the ones the test expects.
pub fn last_working_noon() -> String {
    let now = chrono::Utc::now();
    let noon = now.date_naive().and_hms_opt(12, 0, 0).expect("noon").and_utc();
    let noon = if noon > now { noon - chrono::Duration::days(1) } else { noon };
    noon.to_rfc3339()
}
