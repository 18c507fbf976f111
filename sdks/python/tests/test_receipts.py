"""Receipts from a real server verify offline: the ``c2sp.org/tlog-proof@v1`` of an event, its
entry bytes and the log's verifier key; tampering with any of them fails. Checkpoints of the same
log are consistent."""

from __future__ import annotations

import pytest

import evident
from evident import tlog

from .conftest import make_event


@pytest.fixture
def recorded(server, producer_key, investigator_key, source, tmp_path):
    with evident.Client(server.url, producer_key, str(tmp_path / "spool")) as client:
        for n in range(5):
            client.record(make_event(source, n))
        assert client.flush(30.0)
    views = server.events(investigator_key, source=source)
    assert len(views) == 5
    return evident.Api(server.url, investigator_key), views


def test_receipts_of_a_real_server_verify(recorded):
    api, views = recorded
    vkeys = api.vkeys("default")
    for view in views:
        receipt, entry = api.proof(view["event_id"]), api.entry(view["event_id"])
        checkpoint = evident.verify_receipt(receipt, entry, vkeys)
        assert checkpoint.origin.endswith("/default")
        assert tlog.TlogProof.parse(receipt).index == view["index"] < checkpoint.size


def test_tampered_receipts_fail(recorded, own_server):
    api, views = recorded
    vkeys = api.vkeys("default")
    first, second = views[0]["event_id"], views[1]["event_id"]
    receipt, entry = api.proof(first), api.entry(first)
    tampered = entry.replace(b'"outcome":"success"', b'"outcome":"failure"')
    assert tampered != entry
    for wrong_entry in (tampered, api.entry(second), entry + b" "):
        with pytest.raises(evident.VerificationError, match="inclusion proof"):
            evident.verify_receipt(receipt, wrong_entry, vkeys)
    other = own_server()  # another log, another key
    other_vkeys = evident.Api(other.url, other.key("investigator")).vkeys("default")
    with pytest.raises(evident.VerificationError, match="no signature by a known key"):
        evident.verify_receipt(receipt, entry, other_vkeys)
    with pytest.raises(evident.VerificationError, match="expected 'example.com/default'"):
        evident.verify_receipt(receipt, entry, vkeys, origin="example.com/default")
    index = tlog.TlogProof.parse(receipt).index
    forged = receipt.replace(f"index {index}\n", f"index {index + 1}\n")
    assert forged != receipt
    with pytest.raises(evident.VerificationError):
        evident.verify_receipt(forged, entry, vkeys)


def test_checkpoints_of_the_log_are_consistent(recorded, server, producer_key, source, tmp_path):
    api, _views = recorded
    vkeys = [tlog.Verifier.parse(v) for v in api.vkeys("default")]
    origin = vkeys[0].name
    old = tlog.open_checkpoint(api.checkpoint("default"), vkeys, origin)
    with evident.Client(server.url, producer_key, str(tmp_path / "later")) as client:
        client.record(make_event(source, 99))
        assert client.flush(30.0)
    new = tlog.open_checkpoint(api.checkpoint("default"), vkeys, origin)
    assert new.size > old.size
    proof = api.consistency("default", old.size, new.size)
    tlog.verify_consistency(old.size, new.size, old.root, new.root, proof)
    with pytest.raises(evident.VerificationError):
        tlog.verify_consistency(old.size, new.size, new.root, new.root, proof)


def test_receipts_checked_on_arrival(server, producer_key, investigator_key, own_server, source, tmp_path):
    vkeys = evident.Api(server.url, investigator_key).vkeys("default")
    with evident.Client(server.url, producer_key, str(tmp_path / "good"), verify_receipts=vkeys) as client:
        client.record(make_event(source, 1))
        assert client.flush(30.0)
    other = own_server()
    other_vkeys = evident.Api(other.url, other.key("investigator")).vkeys("default")
    spool = str(tmp_path / "bad")
    with evident.Client(server.url, producer_key, spool, verify_receipts=other_vkeys, max_backoff=0.1) as client:
        client.record(make_event(source, 2))
        assert not client.flush(1.0)  # the server stored it, but its receipt is not signed by the key we trust
        metrics = client.metrics()
        assert metrics.depth == 1 and "does not verify" in metrics.last_error
        client.close(timeout=0)
    with evident.Client(server.url, producer_key, spool, verify_receipts=vkeys) as client:
        assert client.flush(30.0) and client.metrics().acknowledged == 1  # as a duplicate
    with pytest.raises(evident.VerificationError, match="verifier key"):
        evident.Client(server.url, producer_key, str(tmp_path / "x"), verify_receipts=["not a vkey"])
