"""What the tests share: a real ``evident serve`` on a free port with a temporary data directory,
keys made through ``POST /v1/keys``, and the shared known-answer vectors. A missing server binary
or vector directory fails the run loudly; nothing is skipped."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[1]
REPO = SDK.parents[1]
TIMEOUT = 60.0


def shared_vectors() -> Path:
    """``$EVIDENT_SHARED_DIR/vectors``, else ``../shared/vectors`` beside the checkout."""
    base = Path(os.environ.get("EVIDENT_SHARED_DIR") or REPO.parent / "shared")
    vectors = base / "vectors"
    if not (vectors / "tlog-vectors.json").is_file():
        raise RuntimeError(f"the shared vectors are missing: {vectors} (set EVIDENT_SHARED_DIR)")
    return vectors


def evident_bin() -> str:
    path = os.environ.get("EVIDENT_BIN") or str(REPO / "target" / "debug" / "evident")
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            f"the evident binary is missing at {path}: run `cargo build -p evident-cli` or set EVIDENT_BIN"
        )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pump(pipe, sink: queue.Queue[str], seen: list) -> None:
    for line in iter(pipe.readline, ""):
        seen.append(line.rstrip("\n"))
        sink.put(line.rstrip("\n"))


class Server:
    """A running ``evident serve`` on a fixed port, restartable on the same port and data dir."""

    def __init__(self, data_dir: Path, port: int | None = None, env: dict | None = None):
        self.data_dir = data_dir
        self.extra_env = env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = ""
        self.proc: subprocess.Popen | None = None
        self.log: list = []
        self.start()

    def start(self) -> None:
        first = not self.data_dir.exists()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENT_")}
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [evident_bin(), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        out: queue.Queue[str] = queue.Queue()
        err: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, out, self.log), daemon=True).start()
        threading.Thread(target=_pump, args=(self.proc.stderr, err, self.log), daemon=True).start()
        if first:
            line = out.get(timeout=TIMEOUT)
            assert line.startswith("admin key: "), line
            self.admin = line[len("admin key: ") :]
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = err.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("evident serve did not start:\n" + "\n".join(self.log)) from None
            if "listening on" in line:
                return

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def request(self, method: str, path: str, key: str, body=None, raw: bool = False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=TIMEOUT) as answer:
            payload = answer.read()
        return payload if raw else json.loads(payload)

    def key(self, role: str, tenant: str = "default") -> str:
        return self.request("POST", "/v1/keys", self.admin, {"tenant": tenant, "role": role})["key"]

    def events(self, key: str, purpose: str | None = None, all_pages: bool = True, **filters) -> list:
        """Every event matching the filters, oldest first (all pages, or the first)."""
        params = {"order": "oldest", "limit": "1000", **filters}
        if purpose:
            params["purpose"] = purpose
        found, cursor = [], None
        while True:
            query = dict(params, **({"cursor": cursor} if cursor else {}))
            page = self.request("GET", "/v1/events?" + urllib.parse.urlencode(query), key)
            found.extend(page["events"])
            cursor = page.get("next_cursor")
            if not cursor or not all_pages:
                return found


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("evident") / "data")
    yield srv
    srv.kill()


@pytest.fixture
def own_server(tmp_path):
    """A server of the test's own, which the test may stop and start again."""
    servers = []

    def start(**env) -> Server:
        srv = Server(tmp_path / f"data{len(servers)}", env={k: str(v) for k, v in env.items()})
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.kill()


@pytest.fixture(scope="session")
def producer_key(server) -> str:
    return server.key("producer")


@pytest.fixture(scope="session")
def investigator_key(server) -> str:
    return server.key("investigator")


@pytest.fixture
def source() -> str:
    """A source of its own per test, so searches see only that test's events."""
    return f"//tests.example/{uuid.uuid4().hex[:12]}"


def make_event(source: str, n: int = 0, **extra) -> dict:
    event = {
        "id": f"ev-{n}-{uuid.uuid4().hex[:8]}",
        "source": source,
        "type": "customer.record.viewed",
        "action": "read",
        "actor": {"id": "user-7", "type": "user"},
        "targets": [{"type": "customer", "id": str(n)}],
        "outcome": "success",
        "origin": {"host": "app-1"},
        "subject": f"cust-{n}",
    }
    event.update(extra)
    return event
