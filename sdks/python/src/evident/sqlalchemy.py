"""ORM history without history tables: SQLAlchemy flushes of marked models become Evident events.

    @audited(record_type="customer", subject="external_ref", exclude=("password_hash",))
    class Customer(Base): ...

    tracker = track(SessionLocal, client, source="//crm.example.com/api")
    with audit_context(actor={"id": "agent-5", "type": "user"}, origin={"ip": ip}, reason="ticket 42"):
        session.commit()

Each inserted, updated or deleted row of a marked model becomes one event: type
``<record_type>.created|updated|deleted``, action ``create|update|delete``, the row as the target
(``id`` = its primary key), ``subject`` from the named model attribute, and ``changes`` with one
``{field, before, after}`` per column (``field`` a JSON pointer, ``/name``). Actor, origin, reason
and correlation come from the :data:`current` context variable, set per request with
:func:`audit_context`; without one, the tracker's defaults apply.

When: events are collected after each flush and spooled after the transaction commits
(``after_commit``); a rollback (or a rolled-back savepoint) discards its events, so no event
describes a change that did not happen. The window this leaves: a process killed between the
database's commit and the spool's fsync (milliseconds) loses those events. Where that is not
acceptable, capture in the database itself (``evident capture postgres``), whose outbox commits
with the change.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import dataclasses
import datetime
import decimal
import enum
import math
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from ._client import Client, _now_rfc3339

__all__ = ["AuditContext", "Tracker", "audit_context", "audited", "current", "track"]

_PENDING = "evident.pending"
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ModelAudit:
    record_type: str
    subject: str | None
    exclude: frozenset[str]


def audited(
    record_type: str | None = None, subject: str | None = None, exclude: Sequence[str] = ()
) -> Callable[[type[T]], type[T]]:
    """Marks a mapped class: its inserts, updates and deletes become events.

    ``record_type`` names the target type (default: the table name); ``subject`` names the
    attribute holding the data subject's pseudonymous id; ``exclude`` lists columns never sent
    (secrets, large blobs).
    """

    def mark(cls: type[T]) -> type[T]:
        name = record_type or getattr(cls, "__tablename__", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"@audited on {cls.__name__}: give record_type (the class has no __tablename__)")
        cls.__evident__ = ModelAudit(name, subject, frozenset(exclude))  # type: ignore[attr-defined]
        return cls

    return mark


@dataclasses.dataclass(frozen=True)
class AuditContext:
    """Who acts, from where and why: what every event of the current request carries."""

    actor: dict[str, Any]
    origin: dict[str, Any] | None = None
    reason: str | None = None
    correlation: dict[str, Any] | None = None


#: The audit context of the running request (a ``contextvars`` variable, so each thread and each
#: asyncio task has its own).
current: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar("evident_audit_context", default=None)


@contextlib.contextmanager
def audit_context(
    actor: dict[str, Any],
    origin: dict[str, Any] | None = None,
    reason: str | None = None,
    correlation: dict[str, Any] | None = None,
) -> Iterator[AuditContext]:
    """Sets :data:`current` for the block (a web framework's middleware wraps each request)."""
    if not isinstance(actor, dict) or not actor.get("id"):
        raise ValueError("actor: a dict with at least an `id` (and a `type`)")
    context = AuditContext(actor, origin, reason, correlation)
    token = current.set(context)
    try:
        yield context
    finally:
        current.reset(token)


def _json_value(value: Any) -> Any:
    """A column value as JSON: dates in ISO 8601, decimals as strings, bytes in base64."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, enum.Enum):
        return _json_value(value.value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _pointer(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _changes(state: Any, audit: ModelAudit, action: str) -> list[dict[str, Any]]:
    """One ``{field, before, after}`` per column that the operation changed (no SQL is emitted:
    only loaded values and attribute history are read)."""
    changes = []
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in audit.exclude:
            continue
        if action == "update":
            history = state.attrs[key].history
            if not history.added and not history.deleted:
                continue
            before = history.deleted[0] if history.deleted else None
            after = history.added[0] if history.added else None
            if before == after:
                continue
        elif action == "create":
            if state.dict.get(key) is None:
                continue
            before, after = None, state.dict[key]
        else:
            if state.dict.get(key) is None:
                continue
            before, after = state.dict[key], None
        change: dict[str, Any] = {"field": _pointer(key)}
        if before is not None:
            change["before"] = _json_value(before)
        if after is not None:
            change["after"] = _json_value(after)
        changes.append(change)
    return changes


_VERBS = {"create": "created", "update": "updated", "delete": "deleted"}


class Tracker:
    """Turns flushes into events for one session class, sessionmaker or session; see :func:`track`."""

    def __init__(
        self,
        target: Any,
        client: Client,
        source: str,
        default_actor: dict[str, Any] | None = None,
        default_origin: dict[str, Any] | None = None,
    ):
        self.target = target
        self.client = client
        self.source = source
        self.default_actor = default_actor or {"id": "system", "type": "system"}
        self.default_origin = default_origin or {"host": socket.gethostname()}
        self._listeners: list[tuple[str, Callable[..., None]]] = [
            ("after_flush", self._after_flush),
            ("after_commit", self._after_commit),
            ("after_soft_rollback", self._after_soft_rollback),
        ]
        for name, listener in self._listeners:
            sa_event.listen(target, name, listener)

    def remove(self) -> None:
        """Stops tracking."""
        for name, listener in self._listeners:
            sa_event.remove(self.target, name, listener)

    def event_for(self, obj: Any, action: str, reason: str | None = None) -> dict[str, Any] | None:
        """The event of ``action`` on a marked instance (None for unmarked classes, or an update
        that changed nothing)."""
        audit: ModelAudit | None = getattr(type(obj), "__evident__", None)
        if audit is None:
            return None
        state = sa_inspect(obj)
        changes = _changes(state, audit, action) if action in _VERBS else []
        if action == "update" and not changes:
            return None
        context = current.get()
        identity = state.mapper.primary_key_from_instance(obj)
        event: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "source": self.source,
            "type": f"{audit.record_type}.{_VERBS.get(action, 'viewed')}",
            "action": action,
            "time": _now_rfc3339(),
            "actor": context.actor if context else self.default_actor,
            "targets": [{"type": audit.record_type, "id": "/".join(str(v) for v in identity)}],
            "outcome": "success",
            "origin": (context.origin if context and context.origin else self.default_origin),
        }
        if changes:
            event["changes"] = changes
        if audit.subject is not None:
            subject = state.dict.get(audit.subject)
            if subject is not None:
                event["subject"] = str(subject)
        why = reason or (context.reason if context else None)
        if why:
            event["reason"] = why
        if context and context.correlation:
            event["correlation"] = context.correlation
        return event

    def record_read(self, obj: Any, reason: str | None = None) -> None:
        """Records that the current actor read a marked instance (``<record_type>.viewed``)."""
        event = self.event_for(obj, "read", reason)
        if event is None:
            raise TypeError(f"{type(obj).__name__} is not marked with @audited")
        self.client.record(event)

    # -- session events -----------------------------------------------------------------------

    def _after_flush(self, session: Session, flush_context: Any) -> None:
        transaction = session.get_nested_transaction() or session.get_transaction()
        pending: list[tuple[Any, dict[str, Any]]] = session.info.setdefault(_PENDING, [])
        for objects, action in ((session.new, "create"), (session.dirty, "update"), (session.deleted, "delete")):
            for obj in objects:
                event = self.event_for(obj, action)
                if event is not None:
                    pending.append((transaction, event))

    def _after_commit(self, session: Session) -> None:
        pending = session.info.pop(_PENDING, [])
        self.client.record_many([event for _, event in pending])

    def _after_soft_rollback(self, session: Session, previous_transaction: Any) -> None:
        # Fires for every rolled-back transaction; ``after_rollback`` would not do, since it also
        # fires for a savepoint's rollback without saying which.
        if not previous_transaction.nested:
            session.info.pop(_PENDING, None)
            return
        doomed = {id(previous_transaction)}
        pending = session.info.get(_PENDING, [])
        session.info[_PENDING] = [(t, e) for t, e in pending if not _within(t, doomed)]


def _within(transaction: Any, doomed: set[int]) -> bool:
    while transaction is not None:
        if id(transaction) in doomed:
            return True
        transaction = transaction.parent
    return False


def track(
    target: Any,
    client: Client,
    source: str,
    default_actor: dict[str, Any] | None = None,
    default_origin: dict[str, Any] | None = None,
) -> Tracker:
    """Records the changes of ``@audited`` models made through ``target`` (a ``Session`` class, a
    ``sessionmaker`` or one session) with ``client``, as events of ``source``."""
    if not source:
        raise ValueError("source: the producing system, e.g. //crm.example.com/api")
    return Tracker(target, client, source, default_actor, default_origin)
