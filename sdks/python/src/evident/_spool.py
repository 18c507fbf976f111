"""The durable spool: a SQLite file (WAL, ``synchronous=FULL``) holding every recorded event until
the server acknowledges it, bounded in bytes, with a dead-letter table for events the server will
never take.

Durability: :meth:`Spool.append` returns only after the transaction holding the event has
committed, and with ``synchronous=FULL`` in WAL mode that commit fsyncs the WAL. Concurrent
callers share commits (group commit): the first caller to find no commit under way becomes the
leader, takes everything queued so far and commits it in one transaction (one fsync); the others
wait for it. A crash before the commit loses only events whose ``append`` had not returned; a
crash after it loses nothing, and the sender sends the event again (same body, same ``id``) after
the restart.

With ``fsync=False`` (``synchronous=NORMAL``) a commit reaches the operating system but is not
fsynced: events survive the application's crash (SIGKILL included) but not the machine's (power
loss, kernel panic) until the next WAL checkpoint.

One process at a time: the spool directory is locked (``flock``) while a spool is open on it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["DeadLetter", "Spool", "SpoolFull", "SpoolInUse"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    spooled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    spooled_at REAL NOT NULL,
    failed_at REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL
);
"""


class SpoolFull(Exception):
    """The spool holds ``max_spool_bytes`` already: the event was not recorded. Nothing spooled
    before is ever dropped to make room; the caller decides (fail the operation, retry later)."""


class SpoolInUse(RuntimeError):
    """Another process (or another open client) holds this spool directory."""


@dataclass(frozen=True)
class DeadLetter:
    """An event the server answered ``rejected`` or ``conflict`` for: kept, never sent again."""

    seq: int
    body: bytes
    status: str
    reason: str
    spooled_at: float
    failed_at: float


class _Waiter:
    __slots__ = ("bodies", "done", "error", "size")

    def __init__(self, bodies: Sequence[bytes]):
        self.bodies = bodies
        self.size = sum(len(body) for body in bodies)
        self.done = False
        self.error: BaseException | None = None


class Spool:
    """The spool in ``directory``: ``spool.sqlite3`` and its lock file."""

    def __init__(self, directory: str, max_bytes: int, fsync: bool = True):
        if max_bytes <= 0:
            raise ValueError("max_spool_bytes must be positive")
        self._synchronous = "FULL" if fsync else "NORMAL"
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock_file = open(os.path.join(directory, "spool.lock"), "a+")  # noqa: SIM115 - held while open
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise SpoolInUse(
                f"spool directory {directory} is in use by another client; give each its own spool_dir"
            ) from None
        path = os.path.join(directory, "spool.sqlite3")
        self._writer = self._connect(path)
        self._writer.executescript(_SCHEMA)
        self._sender = self._connect(path)  # the sender thread's
        self._reader = self._connect(path)  # metrics and dead letters, under the lock
        count, size = self._writer.execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM items").fetchone()
        self._count, self._bytes = int(count), int(size)
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._queue: list[_Waiter] = []
        self._committing = False
        self._closed = False

    def _connect(self, path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    # -- the application's side ---------------------------------------------------------------

    def append(self, bodies: Sequence[bytes], wait: float = 0.0) -> None:
        """Stores ``bodies`` durably, all or none; returns once they are committed. Raises
        :class:`SpoolFull` when there is no room for them within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        waiter = _Waiter(bodies)
        with self._lock:
            if self._closed:
                raise RuntimeError("the spool is closed")
            while self._bytes + waiter.size > self.max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SpoolFull(
                        f"the spool holds {self._bytes} bytes of {self.max_bytes} (max_spool_bytes); "
                        f"{len(bodies)} event(s) of {waiter.size} bytes not recorded"
                    )
                self._room.wait(left)
            self._bytes += waiter.size  # reserved now, given back if the commit fails
            self._queue.append(waiter)
            while not waiter.done:
                if self._committing:
                    self._room.wait()
                    continue
                self._commit_queue()
        if waiter.error is not None:
            raise waiter.error

    def _commit_queue(self) -> None:
        """Called with the lock held by the leader: commits every queued body in one transaction
        (the lock is released while SQLite writes and fsyncs)."""
        batch, self._queue = self._queue, []
        self._committing = True
        self._lock.release()
        error: BaseException | None = None
        try:
            now = time.time()
            with _transaction(self._writer):
                self._writer.executemany(
                    "INSERT INTO items (body, spooled_at) VALUES (?, ?)", [(b, now) for w in batch for b in w.bodies]
                )
        except BaseException as err:  # noqa: BLE001 - handed to every waiter of this commit
            error = err
        finally:
            self._lock.acquire()
            self._committing = False
            for w in batch:
                w.done, w.error = True, error
                if error is None:
                    self._count += len(w.bodies)
                else:
                    self._bytes -= w.size
            self._room.notify_all()

    # -- the sender's side --------------------------------------------------------------------

    def peek(self, max_items: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """The oldest items, at most ``max_items`` and about ``max_bytes`` (at least one)."""
        rows = self._sender.execute("SELECT seq, body FROM items ORDER BY seq LIMIT ?", (max_items,)).fetchall()
        batch: list[tuple[int, bytes]] = []
        size = 0
        for seq, body in rows:
            if batch and size + len(body) > max_bytes:
                break
            batch.append((int(seq), bytes(body)))
            size += len(body)
        return batch

    def settle(self, acknowledged: Sequence[int], dead: Iterable[tuple[int, str, str]]) -> None:
        """Removes acknowledged items and moves dead ones (seq, status, reason) to the dead
        letters, in one transaction."""
        dead = list(dead)
        seqs = list(acknowledged) + [seq for seq, _, _ in dead]
        if not seqs:
            return
        now = time.time()
        conn = self._sender
        with _transaction(conn):
            for seq, status, reason in dead:
                conn.execute(
                    "INSERT OR REPLACE INTO dead_letters (seq, body, spooled_at, failed_at, status, reason) "
                    "SELECT seq, body, spooled_at, ?, ?, ? FROM items WHERE seq = ?",
                    (now, status, reason, seq),
                )
            freed = 0
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                (size,) = conn.execute(
                    f"SELECT coalesce(sum(length(body)), 0) FROM items WHERE seq IN ({marks})", chunk
                ).fetchone()
                freed += int(size)
                conn.execute(f"DELETE FROM items WHERE seq IN ({marks})", chunk)
        with self._lock:
            self._count -= len(seqs)
            self._bytes -= freed
            self._room.notify_all()

    # -- what anyone may ask ------------------------------------------------------------------

    def depth(self) -> tuple[int, int]:
        """Items and bytes waiting."""
        with self._lock:
            return self._count, self._bytes

    def oldest_age(self) -> float:
        """Seconds the oldest waiting item has waited (0 when none)."""
        with self._lock:
            row = self._reader.execute("SELECT spooled_at FROM items ORDER BY seq LIMIT 1").fetchone()
        return max(0.0, time.time() - row[0]) if row else 0.0

    def dead_letters(self, limit: int = 1000, seqs: Sequence[int] | None = None) -> list[DeadLetter]:
        """The oldest dead letters, or those of ``seqs``."""
        query = "SELECT seq, body, status, reason, spooled_at, failed_at FROM dead_letters"
        with self._lock:
            if seqs is None:
                rows = self._reader.execute(f"{query} ORDER BY seq LIMIT ?", (limit,)).fetchall()
            else:
                marks = ",".join("?" * len(seqs))
                rows = self._reader.execute(f"{query} WHERE seq IN ({marks}) ORDER BY seq", list(seqs)).fetchall()
        return [DeadLetter(int(s), bytes(b), st, r, sa, fa) for s, b, st, r, sa, fa in rows]

    def dead_letter_count(self) -> int:
        with self._lock:
            return int(self._reader.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            while self._committing:
                self._room.wait()
            for conn in (self._writer, self._sender, self._reader):
                conn.close()
        fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
        self._lock_file.close()


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on an exception)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
