"""``evident.Client``: ``record`` spools an event durably and returns; a background sender thread
posts spooled events in batches to ``POST /v1/events`` and removes only what the server
acknowledged.

Delivery: each event carries its producer ``id`` from the moment it is spooled, and the sender
posts the same bytes on every retry, so the server's idempotency key (``source``, ``id``) makes a
retry after a lost answer a ``duplicate``, never a second entry. ``stored`` and ``duplicate`` are
acknowledgements (the item leaves the spool); ``rejected`` and ``conflict`` are final (the item
moves to the dead letters with the server's reason). Connection failures, 5xx and 429 keep the
items and back off, honouring ``Retry-After``.

Full spool: when the spool holds ``max_spool_bytes``, ``record`` waits up to ``full_wait``
seconds (default 0) for the sender to make room, then raises :class:`SpoolFull`. Nothing already
spooled is dropped to make room: an audit trail that silently forgets is worse than an operation
that fails.
"""

from __future__ import annotations

import atexit
import datetime
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._http import Api, ApiError, Unavailable
from ._spool import DeadLetter, Spool
from .tlog import VerificationError, Verifier, open_checkpoint

__all__ = ["MAX_EVENT_BYTES", "REQUIRED_FIELDS", "Client", "SpoolMetrics"]

log = logging.getLogger("evident")

#: The fields every event must carry (EVENT-SCHEMA §1); ``id`` and ``time`` are filled in when
#: missing, ``source`` from the client's ``source``.
REQUIRED_FIELDS = ("id", "source", "type", "action", "time", "actor", "targets", "outcome", "origin")
#: The server's limit on one event's JSON.
MAX_EVENT_BYTES = 256 * 1024


@dataclass(frozen=True)
class SpoolMetrics:
    """What the spool holds and how delivery goes."""

    depth: int
    """Events waiting to be acknowledged."""
    bytes: int
    """Their size in bytes (bounded by ``max_spool_bytes``)."""
    oldest_age_seconds: float
    """How long the oldest waiting event has waited (0 when none)."""
    dead_letters: int
    """Events the server answered ``rejected`` or ``conflict`` for."""
    acknowledged: int
    """Events acknowledged since this client started."""
    last_error: str | None
    """Why the last attempt failed, until one succeeds."""

    def prometheus(self, prefix: str = "evident_client") -> str:
        """The metrics in the Prometheus text format, for an application's own ``/metrics``."""
        rows = [
            ("spool_depth", "gauge", "Events waiting to be acknowledged.", self.depth),
            ("spool_bytes", "gauge", "Bytes of the events waiting.", self.bytes),
            ("spool_oldest_age_seconds", "gauge", "Age of the oldest waiting event.", self.oldest_age_seconds),
            ("dead_letters", "gauge", "Events the server refused for good.", self.dead_letters),
            ("acknowledged_total", "counter", "Events acknowledged since the client started.", self.acknowledged),
            (
                "delivery_failing",
                "gauge",
                "1 while the last delivery attempt failed.",
                int(self.last_error is not None),
            ),
        ]
        lines = []
        for name, kind, help_text, value in rows:
            lines += [
                f"# HELP {prefix}_{name} {help_text}",
                f"# TYPE {prefix}_{name} {kind}",
                f"{prefix}_{name} {value}",
            ]
        return "\n".join(lines) + "\n"


def default_spool_dir() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "evident", "spool")


def _now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Client:
    """A producer of audit events with a durable local spool.

    ``Client(url, api_key, spool_dir=None)``; use as a context manager or call :meth:`close`.
    ``spool_dir`` defaults to ``$XDG_STATE_HOME/evident/spool`` (``~/.local/state/evident/spool``);
    a spool directory belongs to one open client at a time. A client still open when the
    interpreter exits flushes for up to ``flush_at_exit`` seconds. ``fsync=False`` trades the
    machine-crash guarantee for speed: see ``evident._spool``. Events left in the spool when
    the process stops are sent by the next client opened on the same directory.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        spool_dir: str | None = None,
        *,
        source: str | None = None,
        max_spool_bytes: int = 64 << 20,
        full_wait: float = 0.0,
        batch_size: int = 500,
        batch_bytes: int = 4 << 20,
        max_backoff: float = 30.0,
        linger: float = 0.005,
        timeout: float = 30.0,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        verify_receipts: Sequence[str] | None = None,
        flush_at_exit: float = 2.0,
        fsync: bool = True,
    ):
        if batch_size < 1 or batch_bytes < 1:
            raise ValueError("batch_size and batch_bytes must be positive")
        self._verifiers = [Verifier.parse(v) for v in verify_receipts or ()]
        self._api = Api(url, api_key, timeout)  # used by the sender thread only
        self._spool = Spool(spool_dir or default_spool_dir(), max_spool_bytes, fsync)
        self._source = source
        self._full_wait = full_wait
        self._batch_size = batch_size
        self._batch_limit = batch_size
        self._batch_bytes = batch_bytes
        self._max_backoff = max_backoff
        self._linger = linger
        self._on_dead_letter = on_dead_letter
        self._acknowledged = 0
        self._last_error: str | None = None
        self._failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="evident-sender", daemon=True)
        self._thread.start()
        self._flush_at_exit = flush_at_exit
        atexit.register(self._at_exit)

    # -- the application's side ---------------------------------------------------------------

    def record(self, event: Mapping[str, Any]) -> None:
        """Spools ``event`` and returns once it is durable on local disk (fsynced); the sender
        delivers it later. Fills in ``id`` (a UUID) and ``time`` (now) when missing, and ``source``
        from the client's ``source``.

        Raises ``TypeError``/``ValueError`` for an event that cannot be sent (not a mapping, not
        JSON, a required field missing, too large) and :class:`SpoolFull` when there is no room.
        """
        self.record_many([event])

    def record_many(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Spools ``events`` in one commit (one fsync), all or none; otherwise as :meth:`record`."""
        if self._closed:
            raise RuntimeError("the client is closed")
        bodies = [self._encode(event) for event in events]
        if bodies:
            self._spool.append(bodies, self._full_wait)
            self._wake.set()

    def _encode(self, event: Mapping[str, Any]) -> bytes:
        if not isinstance(event, Mapping):
            raise TypeError(f"event must be a dict, not {type(event).__name__}")
        event = dict(event)
        if event.get("id") is None:
            event["id"] = str(uuid.uuid4())
        if event.get("time") is None:
            event["time"] = _now_rfc3339()
        if event.get("source") is None and self._source is not None:
            event["source"] = self._source
        missing = [name for name in REQUIRED_FIELDS if event.get(name) in (None, "", [], {})]
        if missing:
            raise ValueError(f"event: missing required field(s) {', '.join(missing)}")
        try:
            body = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as err:
            raise TypeError(f"event is not JSON: {err}") from None
        if len(body) > MAX_EVENT_BYTES:
            raise ValueError(f"event is {len(body)} bytes of JSON; the server takes at most {MAX_EVENT_BYTES}")
        return body

    def flush(self, timeout: float) -> bool:
        """Waits until nothing spooled is waiting (each event acknowledged or dead-lettered);
        true if so within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._progress:
            while self._spool.depth()[0] > 0:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._progress.wait(min(left, 0.5))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flushes for up to ``timeout`` seconds, then stops the sender; what is left stays spooled
        for the next client on this spool directory."""
        if self._closed:
            return
        atexit.unregister(self._at_exit)
        self.flush(timeout)
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self._api.close()
        self._spool.close()

    def _at_exit(self) -> None:
        """A client left open when the interpreter exits gets ``flush_at_exit`` seconds."""
        self.close(self._flush_at_exit)

    def __enter__(self) -> Client:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metrics(self) -> SpoolMetrics:
        count, size = self._spool.depth()
        return SpoolMetrics(
            depth=count,
            bytes=size,
            oldest_age_seconds=self._spool.oldest_age(),
            dead_letters=self._spool.dead_letter_count(),
            acknowledged=self._acknowledged,
            last_error=self._last_error,
        )

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        """Events the server will never take, with its reason (they hold personal values: act on
        them and clear the spool directory's ``dead_letters`` table as your retention says)."""
        return self._spool.dead_letters(limit)

    # -- the sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the peek: a record after it sets it again
            try:
                batch = self._spool.peek(self._batch_limit, self._batch_bytes)
                if not batch:
                    self._wake.wait(1.0)
                    if self._linger and not self._stop.is_set():
                        self._stop.wait(self._linger)  # let a burst gather into one batch
                    continue
                delay = self._send(batch)
            except Exception as err:  # the sender must outlive any one failure
                log.exception("evident: sender failed")
                delay = self._fail(f"{type(err).__name__}: {err}", None)
            with self._progress:
                self._progress.notify_all()
            if delay:
                self._stop.wait(delay)

    def _send(self, batch: list[tuple[int, bytes]]) -> float:
        """Posts one batch; answers how long to wait before the next attempt."""
        body = b"[" + b",".join(item for _, item in batch) + b"]"
        try:
            results = self._api.post_events(body)
        except Unavailable as err:
            return self._fail(str(err), err.retry_after)
        except ApiError as err:
            return self._refused(batch, err)
        if len(results) != len(batch):
            return self._fail(f"the server answered {len(results)} results for {len(batch)} events", None)
        acknowledged, dead = [], []
        for (seq, _), result in zip(batch, results):
            status = result.get("status") if isinstance(result, dict) else None
            if status in ("stored", "duplicate"):
                acknowledged.append(seq)
            elif status in ("rejected", "conflict"):
                dead.append((seq, status, json.dumps(result.get("errors", []))))
            else:
                return self._fail(f"unknown item status {status!r}", None)
        problem = self._check_receipts(results)
        if problem is not None:
            return self._fail(problem, None)
        self._settle(acknowledged, dead)
        self._batch_limit = min(self._batch_size, self._batch_limit * 2)
        return 0.0

    def _check_receipts(self, results: list[dict[str, Any]]) -> str | None:
        """With ``verify_receipts``: each acknowledgement's checkpoint must be signed by the log's
        key and cover the event's index; answers what is wrong (the items then stay spooled)."""
        if not self._verifiers:
            return None
        opened: dict[str, int] = {}
        for result in results:
            if result.get("status") not in ("stored", "duplicate"):
                continue
            note, index = result.get("checkpoint"), result.get("index")
            if not isinstance(note, str) or not isinstance(index, int):
                return "a receipt without checkpoint or index"
            if note not in opened:
                try:
                    opened[note] = open_checkpoint(note, self._verifiers, self._verifiers[0].name).size
                except VerificationError as err:
                    return f"a receipt's checkpoint does not verify: {err}"
            if index >= opened[note]:
                return f"a receipt's checkpoint (size {opened[note]}) does not cover index {index}"
        return None

    def _refused(self, batch: list[tuple[int, bytes]], err: ApiError) -> float:
        """A 4xx for the whole request: halve a batch that is too large or unreadable; an item that
        alone is refused so is dead; any other refusal (a bad key) keeps everything and waits."""
        if err.status in (400, 413):
            if len(batch) > 1:
                self._batch_limit = max(1, len(batch) // 2)
                return 0.0
            self._settle([], [(batch[0][0], "rejected", json.dumps({"status": err.status, "problem": err.problem}))])
            return 0.0
        return self._fail(str(err), None)

    def _settle(self, acknowledged: list[int], dead: list[tuple[int, str, str]]) -> None:
        self._spool.settle(acknowledged, dead)
        self._acknowledged += len(acknowledged)
        self._failures = 0
        self._last_error = None
        if dead:
            log.warning("evident: %d event(s) refused by the server, kept as dead letters", len(dead))
            if self._on_dead_letter is not None:
                for letter in self._spool.dead_letters(seqs=[seq for seq, _, _ in dead]):
                    self._callback(letter)

    def _callback(self, letter: DeadLetter) -> None:
        try:
            self._on_dead_letter(letter)  # type: ignore[misc]
        except Exception:
            log.exception("evident: on_dead_letter raised")

    def _fail(self, reason: str, retry_after: float | None) -> float:
        self._failures += 1
        self._last_error = reason
        if retry_after is not None:
            delay = min(retry_after, max(self._max_backoff, 300.0))
        else:
            delay = min(self._max_backoff, 0.1 * 2 ** min(self._failures, 20)) * random.uniform(0.5, 1.0)
        log.warning("evident: delivery failed (%s); retrying in %.1fs", reason, delay)
        return delay
