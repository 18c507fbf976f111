"""How fast the Python client's ``record`` accepts events, against a direct synchronous
``POST /v1/events`` per event (what an application does without the library), in one run against
one server. Run by ``bench/sdk-python.sh``; arguments: URL PRODUCER_KEY WORK_DIR [EVENTS]."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid

import evident
from evident._http import Api


def event(source: str, n: int) -> dict:
    return {
        "id": f"{uuid.uuid4()}",
        "source": source,
        "time": "2026-12-03T10:00:00Z",
        "type": "customer.record.viewed",
        "action": "read",
        "actor": {"id": "user-7", "type": "user", "display": "Agent Seven"},
        "targets": [{"type": "customer", "id": str(n)}],
        "outcome": "success",
        "origin": {"ip": "203.0.113.9", "user_agent": "bench/1.0", "host": "app-1"},
        "subject": f"cust-{n % 1000}",
        "reason": "support ticket",
    }


def run_threads(threads: int, work) -> None:
    """Runs ``work(t)`` on ``threads`` threads; any failure fails the benchmark."""
    failures = []

    def guarded(t):
        try:
            work(t)
        except BaseException as err:  # noqa: BLE001
            failures.append(err)

    workers = [threading.Thread(target=guarded, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if failures:
        raise SystemExit(f"benchmark failed: {failures[0]!r}")


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f} events/s"


def record_run(url, key, spool, threads, total, source, many=1, fsync=True):
    """``threads`` application threads each recording total/threads events (``many`` a call:
    ``record`` for 1, ``record_many`` above); then the drain."""
    per = total // threads
    with evident.Client(url, key, spool, fsync=fsync) as client:
        start = time.perf_counter()

        def work(t):
            if many == 1:
                for n in range(per):
                    client.record(event(source, t * per + n))
                return
            for n in range(0, per, many):
                client.record_many([event(source, t * per + n + i) for i in range(min(many, per - n))])

        run_threads(threads, work)
        recorded = time.perf_counter() - start
        assert client.flush(600.0), "the spool did not drain"
        drained = time.perf_counter() - start
    return per * threads, recorded, drained


def direct_run(url, key, threads, total, source):
    """The peer: each application thread POSTs each event itself and waits for the receipt."""
    per = total // threads

    def work(t):
        api = Api(url, key)
        for n in range(per):
            api.request("POST", "/v1/events", json.dumps(event(source, t * per + n)).encode())
        api.close()

    start = time.perf_counter()
    run_threads(threads, work)
    return per * threads, time.perf_counter() - start


def main():
    url, key, work = sys.argv[1], sys.argv[2], sys.argv[3]
    total = int(sys.argv[4]) if len(sys.argv) > 4 else 4000
    print("| how the application records | app threads | events | accepted by the call | all acknowledged |")
    print("| --- | --- | --- | --- | --- |")

    def row(label, threads, n, accepted, acknowledged):
        print(f"| {label} | {threads} | {n} | {rate(n, accepted)} | {rate(n, acknowledged)} |")

    for threads in (1, 8):
        source = f"//bench/{uuid.uuid4().hex[:8]}"
        n, seconds = direct_run(url, key, threads, total, source)
        row("direct POST /v1/events per event (peer)", threads, n, seconds, seconds)
        for fsync in (True, False):
            spool = os.path.join(work, f"spool-{threads}-{fsync}")
            n, recorded, drained = record_run(url, key, spool, threads, total, f"{source}-{fsync}", fsync=fsync)
            row(f"Client.record, fsync={fsync}", threads, n, recorded, drained)
    n, recorded, drained = record_run(url, key, os.path.join(work, "spool-many"), 1, total, "//bench/many", 100)
    row("Client.record_many, 100 events a call, fsync=True", 1, n, recorded, drained)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
