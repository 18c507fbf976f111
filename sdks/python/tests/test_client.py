"""The client and its spool against a real ``evident serve``: delivery, acknowledgements, dead
letters, retries with the same ids, the full-spool policy, ``Retry-After``, batch splitting."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

import evident
from evident._http import parse_retry_after

from .conftest import free_port, make_event


def ids_in_log(server, key, source) -> Counter:
    return Counter(e["event"]["id"] for e in server.events(key, source=source))


def test_record_then_flush_delivers_every_event_once(server, producer_key, investigator_key, source, tmp_path):
    events = [make_event(source, n) for n in range(40)]
    with evident.Client(server.url, producer_key, str(tmp_path / "spool")) as client:
        for event in events:
            assert client.record(event) is None
        assert client.flush(30.0)
        metrics = client.metrics()
    assert (metrics.depth, metrics.bytes, metrics.oldest_age_seconds) == (0, 0, 0.0)
    assert metrics.acknowledged == 40 and metrics.dead_letters == 0 and metrics.last_error is None
    assert ids_in_log(server, investigator_key, source) == Counter(e["id"] for e in events)


def test_id_time_and_source_are_filled_in(server, producer_key, investigator_key, source, tmp_path):
    event = make_event(source)
    del event["id"], event["source"]
    with evident.Client(server.url, producer_key, str(tmp_path / "spool"), source=source) as client:
        client.record(event)
        assert client.flush(30.0)
    (stored,) = server.events(investigator_key, source=source)
    assert len(stored["event"]["id"]) == 36 and stored["event"]["time"].endswith("Z")
    assert "id" not in event  # the caller's dict is left alone


@pytest.mark.parametrize(
    "change, error, why",
    [
        (lambda e: "not a dict", TypeError, "must be a dict"),
        (
            lambda e: {"type": "x"},
            ValueError,
            "missing required field.*source.*action.*actor.*targets.*outcome.*origin",
        ),
        (lambda e: dict(e, targets=[]), ValueError, "targets"),
        (lambda e: dict(e, metadata={"when": object()}), TypeError, "not JSON"),
        (lambda e: dict(e, metadata={"x": float("nan")}), TypeError, "not JSON"),
        (lambda e: dict(e, reason="x" * (256 * 1024)), ValueError, "at most 262144"),
    ],
)
def test_events_that_cannot_be_sent_are_refused_at_record(change, error, why, tmp_path, source):
    with evident.Client("http://127.0.0.1:9", "k", str(tmp_path / "spool")) as client:
        with pytest.raises(error, match=why):
            client.record(change(make_event(source)))
        assert client.metrics().depth == 0


def test_bad_construction_is_refused(tmp_path):
    with pytest.raises(ValueError, match="url"):
        evident.Client("127.0.0.1:7411", "k", str(tmp_path))
    with pytest.raises(ValueError, match="api_key"):
        evident.Client("http://127.0.0.1:7411", "", str(tmp_path))
    with pytest.raises(ValueError, match="max_spool_bytes"):
        evident.Client("http://127.0.0.1:7411", "k", str(tmp_path), max_spool_bytes=0)


def test_rejected_and_conflicting_events_become_dead_letters(server, producer_key, investigator_key, source, tmp_path):
    good = make_event(source, 1)
    bad = make_event(source, 2, action="explode")
    twin = dict(good, outcome="failure", reason="other content, same id")
    seen = []
    with evident.Client(server.url, producer_key, str(tmp_path / "spool"), on_dead_letter=seen.append) as client:
        client.record(good)
        client.record(bad)
        assert client.flush(30.0)
        client.record(twin)
        assert client.flush(30.0)
        letters = client.dead_letters()
        assert client.metrics().dead_letters == 2 and client.metrics().depth == 0
    assert [(l.status, json.loads(l.body)["id"]) for l in letters] == [
        ("rejected", bad["id"]),
        ("conflict", good["id"]),
    ]
    assert "action" in letters[0].reason and "enum" in letters[0].reason
    assert "other content" in letters[1].reason
    assert [l.seq for l in seen] == [l.seq for l in letters]
    assert ids_in_log(server, investigator_key, source) == Counter([good["id"]])


def test_an_event_the_server_already_has_is_acknowledged_as_duplicate(
    server, producer_key, investigator_key, source, tmp_path
):
    event = make_event(source, time="2026-12-03T10:00:00Z")
    server.request("POST", "/v1/events", producer_key, [event])  # as if the first answer was lost
    with evident.Client(server.url, producer_key, str(tmp_path / "spool")) as client:
        client.record(event)
        assert client.flush(30.0)
        assert client.metrics().acknowledged == 1 and client.metrics().dead_letters == 0
    assert ids_in_log(server, investigator_key, source) == Counter([event["id"]])


def test_server_down_then_up_delivers_the_same_ids_once(own_server, source, tmp_path):
    srv = own_server()
    producer, investigator = srv.key("producer"), srv.key("investigator")
    srv.kill()
    events = [make_event(source, n) for n in range(25)]
    client = evident.Client(srv.url, producer, str(tmp_path / "spool"), max_backoff=0.5)
    try:
        for event in events:
            client.record(event)
        assert not client.flush(1.0)
        metrics = client.metrics()
        assert metrics.depth == 25 and metrics.bytes > 0 and metrics.oldest_age_seconds >= 1.0
        assert "ConnectionRefusedError" in metrics.last_error
        srv.start()
        assert client.flush(30.0)
    finally:
        client.close()
    assert ids_in_log(srv, investigator, source) == Counter(e["id"] for e in events)


def test_full_spool_refuses_new_events_and_keeps_the_old(own_server, source, tmp_path):
    """The policy: a full spool raises SpoolFull (after `full_wait`); nothing spooled is dropped."""
    srv = own_server()
    producer, investigator = srv.key("producer"), srv.key("investigator")
    srv.kill()
    spool = str(tmp_path / "spool")
    accepted = []
    with evident.Client(srv.url, producer, spool, max_spool_bytes=4000, full_wait=0.0) as client:
        with pytest.raises(evident.SpoolFull, match="max_spool_bytes"):
            for n in range(100):
                event = make_event(source, n)
                client.record(event)
                accepted.append(event["id"])
        assert 5 <= len(accepted) < 20
        assert client.metrics().depth == len(accepted) and client.metrics().bytes <= 4000
        started = time.monotonic()
        client._full_wait = 0.3
        with pytest.raises(evident.SpoolFull):
            client.record(make_event(source, 999))
        assert time.monotonic() - started >= 0.3
        client.close(timeout=0.1)
    srv.start()  # a new client on the same spool sends what the old one left
    with evident.Client(srv.url, producer, spool) as client:
        assert client.flush(30.0)
    assert ids_in_log(srv, investigator, source) == Counter(accepted)


def test_full_wait_lets_the_sender_make_room(server, producer_key, source, tmp_path):
    with evident.Client(
        server.url, producer_key, str(tmp_path / "spool"), max_spool_bytes=3000, full_wait=10.0
    ) as client:
        for n in range(60):  # far more than fits at once
            client.record(make_event(source, n))
        assert client.flush(30.0)
        assert client.metrics().acknowledged == 60


def test_one_client_per_spool_directory(tmp_path):
    with evident.Client("http://127.0.0.1:9", "k", str(tmp_path)), pytest.raises(evident.SpoolInUse, match="in use"):
        evident.Client("http://127.0.0.1:9", "k", str(tmp_path))
    evident.Client("http://127.0.0.1:9", "k", str(tmp_path)).close()  # free again


def test_a_refused_key_keeps_every_event(server, producer_key, investigator_key, source, tmp_path):
    spool = str(tmp_path / "spool")
    event = make_event(source)
    with evident.Client(server.url, investigator_key, spool, max_backoff=0.2) as client:  # may not append
        client.record(event)
        assert not client.flush(1.0)
        assert client.metrics().depth == 1 and client.metrics().dead_letters == 0
        assert "HTTP 403" in client.metrics().last_error
        client.close(timeout=0.1)
    with evident.Client(server.url, producer_key, spool) as client:
        assert client.flush(30.0)
    assert ids_in_log(server, investigator_key, source) == Counter([event["id"]])


def test_batches_too_large_for_the_server_are_split(own_server, source, tmp_path):
    srv = own_server(EVIDENT_MAX_BATCH_EVENTS=4)
    producer, investigator = srv.key("producer"), srv.key("investigator")
    events = [make_event(source, n) for n in range(30)]
    with evident.Client(srv.url, producer, str(tmp_path / "spool"), batch_size=500) as client:
        for event in events:
            client.record(event)
        assert client.flush(30.0)
        assert client.metrics().dead_letters == 0
    assert ids_in_log(srv, investigator, source) == Counter(e["id"] for e in events)


class FaultProxy:
    """Forwards to a real server, answering the first `failures` posts with `status` and
    `Retry-After` instead; notes when each post arrived."""

    def __init__(self, target: str, failures: int, status: int, retry_after: str):
        self.arrivals = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.arrivals.append(time.monotonic())
                if len(proxy.arrivals) <= failures:
                    self.send_response(status)
                    self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req = urllib.request.Request(target + self.path, data=body, method="POST")
                for name in ("Authorization", "Content-Type"):
                    req.add_header(name, self.headers[name])
                with urllib.request.urlopen(req) as answer:
                    data = answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.mark.parametrize("status", [503, 429])
def test_retry_after_is_honoured(server, producer_key, investigator_key, source, tmp_path, status):
    proxy = FaultProxy(server.url, failures=2, status=status, retry_after="1")
    event = make_event(source)
    try:
        with evident.Client(proxy.url, producer_key, str(tmp_path / "spool"), max_backoff=0.05) as client:
            client.record(event)
            assert client.flush(30.0)
    finally:
        proxy.close()
    assert len(proxy.arrivals) == 3
    gaps = [b - a for a, b in zip(proxy.arrivals, proxy.arrivals[1:])]
    assert all(gap >= 0.95 for gap in gaps), gaps  # max_backoff alone would retry within 0.05 s
    assert ids_in_log(server, investigator_key, source) == Counter([event["id"]])


def test_retry_after_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_connection_closed_by_a_server_restart_is_replaced_at_once(own_server, source, tmp_path, caplog):
    srv = own_server()
    producer, investigator = srv.key("producer"), srv.key("investigator")
    events = [make_event(source, n) for n in range(2)]
    with evident.Client(srv.url, producer, str(tmp_path / "spool")) as client:
        client.record(events[0])
        assert client.flush(30.0)
        srv.kill()  # the client's kept-alive connection dies with it
        srv.start()
        caplog.set_level("WARNING", logger="evident")
        client.record(events[1])
        assert client.flush(30.0)
    assert [r.getMessage() for r in caplog.records if "delivery failed" in r.getMessage()] == []
    assert ids_in_log(srv, investigator, source) == Counter(e["id"] for e in events)


def test_record_many_is_all_or_none(server, producer_key, investigator_key, source, tmp_path):
    events = [make_event(source, n) for n in range(3)]
    with evident.Client(server.url, producer_key, str(tmp_path / "spool"), max_spool_bytes=2000) as client:
        with pytest.raises(ValueError, match="origin"):
            client.record_many([*events, dict(events[0], origin={})])
        with pytest.raises(evident.SpoolFull, match="4 event"):
            client.record_many([*events, make_event(source, 4, reason="x" * 1500)])
        assert client.metrics().depth == 0
        client.record_many(events)
        assert client.flush(30.0)
    assert ids_in_log(server, investigator_key, source) == Counter(e["id"] for e in events)


def test_a_client_left_open_flushes_at_exit(server, producer_key, investigator_key, source, tmp_path):
    script = (
        "import sys, evident, tests.conftest as c\n"
        "client = evident.Client(sys.argv[1], sys.argv[2], sys.argv[3])\n"
        "for n in range(5): client.record(c.make_event(sys.argv[4], n))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, server.url, producer_key, str(tmp_path / "spool"), source],
        cwd=str(Path(__file__).resolve().parents[1]),
        timeout=60,
        check=True,
    )
    assert sum(ids_in_log(server, investigator_key, source).values()) == 5


@pytest.mark.parametrize("fsync, synchronous", [(True, 2), (False, 1)])  # FULL, NORMAL
def test_the_spool_fsyncs_each_commit_unless_told_not_to(tmp_path, fsync, synchronous):
    with evident.Client("http://127.0.0.1:9", "k", str(tmp_path), fsync=fsync) as client:
        spool = client._spool
        for conn in (spool._writer, spool._sender, spool._reader):
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous


def test_metrics_in_the_prometheus_text_format(tmp_path, source):
    with evident.Client("http://127.0.0.1:9", "k", str(tmp_path), max_backoff=0.05) as client:
        client.record(make_event(source))
        client.record(make_event(source))
        assert not client.flush(0.3)
        text = client.metrics().prometheus()
        client.close(timeout=0)
    values = dict(line.split(" ") for line in text.splitlines() if not line.startswith("#"))
    assert values["evident_client_spool_depth"] == "2" and int(values["evident_client_spool_bytes"]) > 100
    assert float(values["evident_client_spool_oldest_age_seconds"]) >= 0.3
    assert values["evident_client_delivery_failing"] == "1" and values["evident_client_acknowledged_total"] == "0"
    assert "# TYPE evident_client_spool_depth gauge" in text
