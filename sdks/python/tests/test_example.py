"""The Flask example (``examples/python-flask``) against a real server: a customer's creation, read
and change arrive as events, and Evident rebuilds the record's history from them."""

from __future__ import annotations

import importlib.util
import sys

from .conftest import REPO


def load_example():
    spec = importlib.util.spec_from_file_location("example_app", REPO / "examples" / "python-flask" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # SQLAlchemy resolves the annotations through it
    spec.loader.exec_module(module)
    return module


def test_the_example_records_reads_and_changes(server, producer_key, investigator_key, tmp_path):
    example = load_example()
    app = example.create_app(server.url, producer_key, f"sqlite:///{tmp_path / 'c.db'}", str(tmp_path / "spool"))
    web = app.test_client()
    assert web.get("/customers/1").status_code == 401  # no X-User: no anonymous access
    who = {"X-User": "agent-5", "X-Request-Id": "req-77"}
    customer = web.post("/customers", json={"name": "Ada", "email": "ada@example.com"}, headers=who).get_json()
    assert web.get(f"/customers/{customer['id']}", headers={**who, "X-Purpose": "invoice question"}).status_code == 200
    assert web.patch(f"/customers/{customer['id']}", json={"email": "ada@example.org"}, headers=who).status_code == 200
    assert web.get("/customers/999", headers=who).status_code == 404
    client = app.extensions["evident"]
    assert client.flush(30.0)
    client.close()

    events = [
        v["event"] for v in server.events(investigator_key, source=example.SOURCE, subject=customer["customer_ref"])
    ]
    assert [(e["type"], e.get("reason")) for e in events] == [
        ("customer.created", None),
        ("customer.viewed", "invoice question"),
        ("customer.updated", None),
    ]
    assert all(e["actor"]["id"] == "agent-5" and e["correlation"]["request_id"] == "req-77" for e in events)
    history = server.request("GET", f"/v1/records/customer/{customer['id']}/history?purpose=test", investigator_key)
    assert history["versions"][-1]["state"]["email"] == "ada@example.org"
    assert all("password_hash" not in v["state"] for v in history["versions"])
