"""The SQLAlchemy integration against real databases (a SQLite file and the PostgreSQL at
127.0.0.1:5432, database ``test``, through psycopg) and a real server: flushes of marked models
become events with changes, actor and context; rollbacks and unmarked models leave none."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import os
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

import evident
from evident.sqlalchemy import audit_context, audited, current, track

PURPOSE = "sdk test of captured changes"
POSTGRES_URL = os.environ.get("EVIDENT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def models(suffix: str):
    class Base(DeclarativeBase):
        pass

    @audited(record_type=f"customer_{suffix}", subject="external_ref", exclude=("password_hash",))
    class Customer(Base):
        __tablename__ = f"sdk_customers_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        external_ref: Mapped[str] = mapped_column(sa.String(40))
        name: Mapped[str] = mapped_column(sa.String(100))
        email: Mapped[str] = mapped_column(sa.String(100))
        balance: Mapped[decimal.Decimal] = mapped_column(sa.Numeric(10, 2), default=decimal.Decimal(0))
        birthday: Mapped[datetime.date | None] = mapped_column(sa.Date, nullable=True)
        password_hash: Mapped[str] = mapped_column(sa.String(100), default="")

    class Note(Base):  # not marked: never an event
        __tablename__ = f"sdk_notes_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str] = mapped_column(sa.String(100))

    return Base, Customer, Note


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    suffix = uuid.uuid4().hex[:10]
    base, customer, note = models(suffix)
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    else:
        engine = sa.create_engine(POSTGRES_URL)
        try:
            engine.connect().close()
        except sa.exc.OperationalError as err:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} does not answer (start it; see scripts/test): {err}")
    base.metadata.create_all(engine)
    yield engine, customer, note
    base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def client(server, producer_key, tmp_path):
    with evident.Client(server.url, producer_key, str(tmp_path / "spool")) as client:
        yield client


def captured(server, investigator_key, source):
    return [view["event"] for view in server.events(investigator_key, purpose=PURPOSE, source=source)]


def create_change_roll_back_delete(factory, Customer, Note) -> int:
    """Creates a customer, changes it, rolls a change back, deletes it; answers its id."""
    with factory() as session:
        ada = Customer(
            external_ref="cust-ada",
            name="Ada",
            email="ada@example.com",
            balance=decimal.Decimal("10.50"),
            birthday=datetime.date(1990, 12, 10),
            password_hash="secret-hash",
        )
        session.add_all([ada, Note(text="not audited")])
        session.commit()
        ada_id = ada.id
        ada.email = "ada@example.org"
        ada.balance = decimal.Decimal("12.00")
        ada.name = "Ada"  # same value: not a change
        session.commit()
        ada.name = "Never"
        session.flush()
        session.rollback()  # flushed, then rolled back: no event
        with session.begin():
            session.delete(session.get(Customer, ada_id))
    return ada_id


def test_flushes_become_events_with_changes_actor_and_subject(database, client, server, investigator_key, source):
    engine, Customer, Note = database
    factory = sessionmaker(engine)
    tracker = track(factory, client, source=source)
    agent = {"id": "agent-5", "type": "user"}
    context = audit_context(
        actor=agent, origin={"ip": "203.0.113.9"}, reason="ticket 42", correlation={"request_id": "req-1"}
    )
    with context:
        ada_id = create_change_roll_back_delete(factory, Customer, Note)
    assert current.get() is None
    tracker.remove()
    assert client.flush(30.0)
    events = captured(server, investigator_key, source)
    record_type = Customer.__evident__.record_type
    assert [(e["type"], e["action"]) for e in events] == [
        (f"{record_type}.created", "create"),
        (f"{record_type}.updated", "update"),
        (f"{record_type}.deleted", "delete"),
    ]
    for e in events:
        assert e["actor"] == agent and e["subject"] == "cust-ada" and e["reason"] == "ticket 42"
        assert e["targets"] == [{"type": record_type, "id": str(ada_id)}]
        assert e["origin"]["ip"] == "203.0.113.9" and e["correlation"]["request_id"] == "req-1"
        assert all(c["field"] != "/password_hash" for c in e["changes"])
    created, updated, deleted = (sorted(e["changes"], key=lambda c: c["field"]) for e in events)
    assert created == [
        {"field": "/balance", "after": "10.50"},
        {"field": "/birthday", "after": "1990-12-10"},
        {"field": "/email", "after": "ada@example.com"},
        {"field": "/external_ref", "after": "cust-ada"},
        {"field": "/id", "after": ada_id},
        {"field": "/name", "after": "Ada"},
    ]
    assert updated == [
        {"field": "/balance", "before": "10.50", "after": "12.00"},
        {"field": "/email", "before": "ada@example.com", "after": "ada@example.org"},
    ]
    assert {c["field"]: c.get("before") for c in deleted}["/email"] == "ada@example.org"
    assert all("after" not in c for c in deleted)

    history = server.request("GET", f"/v1/records/{record_type}/{ada_id}/history?purpose=audit", investigator_key)
    assert [v["action"] for v in history["versions"]] == ["create", "update", "delete"]


def test_no_context_uses_the_defaults_and_savepoint_rollbacks_drop_their_events(
    database, client, server, investigator_key, source
):
    engine, Customer, _ = database
    tracker = track(Session, client, source=source, default_actor={"id": "batch-job", "type": "service"})
    try:
        with Session(engine) as session:
            session.add(Customer(external_ref="cust-kept", name="Kept", email="k@example.com"))
            try:
                with session.begin_nested():
                    session.add(Customer(external_ref="cust-dropped", name="Dropped", email="d@example.com"))
                    session.flush()
                    raise RuntimeError("undo the savepoint")
            except RuntimeError:
                pass
            session.commit()
    finally:
        tracker.remove()
    assert client.flush(30.0)
    events = captured(server, investigator_key, source)
    assert [e["subject"] for e in events] == ["cust-kept"]
    assert events[0]["actor"] == {"id": "batch-job", "type": "service"}
    assert events[0]["origin"]["host"]


def test_reads_are_recorded_on_request(database, client, server, investigator_key, source):
    engine, Customer, Note = database
    tracker = track(Session, client, source=source)
    try:
        with Session(engine) as session:
            session.add(Customer(external_ref="cust-read", name="Read", email="r@example.com"))
            session.commit()
            customer = session.scalars(sa.select(Customer)).one()
            with audit_context(actor={"id": "agent-9", "type": "user"}):
                tracker.record_read(customer, reason="customer called")
            with pytest.raises(TypeError, match="not marked"):
                tracker.record_read(Note(text="x"))
    finally:
        tracker.remove()
    assert client.flush(30.0)
    read = captured(server, investigator_key, source)[-1]
    assert (read["action"], read["type"]) == ("read", f"{Customer.__evident__.record_type}.viewed")
    assert read["reason"] == "customer called" and read["actor"]["id"] == "agent-9" and "changes" not in read


def test_bad_use_is_refused(client):
    with pytest.raises(ValueError, match="source"):
        track(Session, client, source="")
    with pytest.raises(ValueError, match="actor"), audit_context(actor={"type": "user"}):
        pass
    with pytest.raises(TypeError, match="record_type"):
        audited()(type("Plain", (), {}))


def test_async_sessions_carry_the_context_too(client, server, investigator_key, source):
    """AsyncSession runs a Session underneath (in a greenlet); the context variable reaches it."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    Base, Customer, _ = models(uuid.uuid4().hex[:10])

    async def scenario() -> int:
        engine = create_async_engine(POSTGRES_URL)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        try:
            maker = async_sessionmaker(engine, expire_on_commit=False)
            with audit_context(actor={"id": "agent-async", "type": "user"}, reason="async"):
                async with maker() as session:
                    customer = Customer(external_ref="cust-async", name="A", email="a@example.com")
                    session.add(customer)
                    await session.commit()
                    customer.name = "B"
                    await session.commit()
            return customer.id
        finally:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.drop_all)
            await engine.dispose()

    tracker = track(Session, client, source=source)
    try:
        customer_id = asyncio.run(scenario())
    finally:
        tracker.remove()
    assert client.flush(30.0)
    events = captured(server, investigator_key, source)
    assert [(e["action"], e["actor"]["id"], e["reason"]) for e in events] == [
        ("create", "agent-async", "async"),
        ("update", "agent-async", "async"),
    ]
    assert events[1]["changes"] == [{"field": "/name", "before": "A", "after": "B"}]
    assert events[1]["targets"][0]["id"] == str(customer_id)
