"""A minimal customer-records service that keeps its audit trail in Evident.

Changes to customers are captured from SQLAlchemy flushes (``evident.sqlalchemy``); reads are
recorded explicitly with ``tracker.record_read``. Who acts comes from the ``X-User`` header (a
real service takes it from its session or token), why from ``X-Purpose``.

Settings (environment): EVIDENT_URL, EVIDENT_API_KEY (a producer key), DATABASE_URL (default a
SQLite file beside this script), SPOOL_DIR (default ./spool beside this script).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, abort, g, jsonify, request
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

import evident
from evident.sqlalchemy import AuditContext, Tracker, audited, current, track

HERE = Path(__file__).resolve().parent
SOURCE = "//crm.example.com/customer-api"


class Base(DeclarativeBase):
    pass


@audited(record_type="customer", subject="customer_ref", exclude=("password_hash",))
class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_ref: Mapped[str] = mapped_column(sa.String(40), unique=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    email: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(100), default="")

    def view(self) -> dict:
        return {"id": self.id, "customer_ref": self.customer_ref, "name": self.name, "email": self.email}


FIELDS = ("name", "email")


def create_app(evident_url: str, api_key: str, database_url: str, spool_dir: str) -> Flask:
    app = Flask(__name__)
    engine = sa.create_engine(database_url)
    Base.metadata.create_all(engine)
    Session = sessionmaker(engine, expire_on_commit=False)
    client = evident.Client(evident_url, api_key, spool_dir, source=SOURCE)
    tracker = track(Session, client, source=SOURCE)
    app.extensions["evident"] = client
    audit_context_per_request(app)
    customer_routes(app, Session, tracker)

    @app.get("/audit/spool")
    def spool_metrics():
        return jsonify(vars(client.metrics()))

    return app


def audit_context_per_request(app: Flask) -> None:
    """Who acts, from where and why, for every event a request causes."""

    @app.before_request
    def audit_context_from_request():
        user = request.headers.get("X-User")
        if not user:
            abort(401, "send X-User: <your user id>")
        g.audit_token = current.set(
            AuditContext(
                actor={"id": user, "type": "user"},
                origin={"ip": request.remote_addr or "unknown", "user_agent": request.user_agent.string or "unknown"},
                reason=request.headers.get("X-Purpose"),
                correlation={"request_id": request.headers.get("X-Request-Id") or str(uuid.uuid4())},
            )
        )

    @app.teardown_request
    def end_audit_context(_error):
        token = g.pop("audit_token", None)
        if token is not None:
            current.reset(token)


def customer_routes(app: Flask, Session: sessionmaker, tracker: Tracker) -> None:
    """Create, read, update, delete: changes are captured from the flushes, reads recorded."""

    @app.post("/customers")
    def create_customer():
        body = request.get_json(force=True)
        with Session.begin() as session:
            customer = Customer(customer_ref=f"cust-{uuid.uuid4().hex[:8]}", **{k: body[k] for k in FIELDS})
            session.add(customer)
        return jsonify(customer.view()), 201

    @app.get("/customers/<int:customer_id>")
    def read_customer(customer_id: int):
        with Session() as session:
            customer = session.get(Customer, customer_id) or abort(404)
            tracker.record_read(customer)
            return jsonify(customer.view())

    @app.patch("/customers/<int:customer_id>")
    def update_customer(customer_id: int):
        body = request.get_json(force=True)
        with Session.begin() as session:
            customer = session.get(Customer, customer_id) or abort(404)
            for key in FIELDS:
                if key in body:
                    setattr(customer, key, body[key])
        return jsonify(customer.view())

    @app.delete("/customers/<int:customer_id>")
    def delete_customer(customer_id: int):
        with Session.begin() as session:
            session.delete(session.get(Customer, customer_id) or abort(404))
        return "", 204


if __name__ == "__main__":
    app = create_app(
        os.environ.get("EVIDENT_URL", "http://127.0.0.1:7411"),
        os.environ["EVIDENT_API_KEY"],
        os.environ.get("DATABASE_URL", f"sqlite:///{HERE / 'customers.db'}"),
        os.environ.get("SPOOL_DIR", str(HERE / "spool")),
    )
    try:
        app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
    finally:
        app.extensions["evident"].close()
