"""A producer killed with SIGKILL loses nothing it was told was recorded and duplicates nothing:
after a restart on the same spool, every event whose ``record`` returned is in the log exactly
once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import evident

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("returned_before_kill, fsync", [(150, "fsync"), (1200, "fsync"), (600, "no-fsync")])
def test_sigkill_then_restart_delivers_each_returned_event_once(
    server, producer_key, investigator_key, source, tmp_path, returned_before_kill, fsync
):
    spool = str(tmp_path / "spool")
    child = subprocess.Popen(
        [sys.executable, str(HERE / "recorder.py"), server.url, producer_key, spool, source, "4", fsync],
        stdout=subprocess.PIPE,
        text=True,
    )
    returned = []
    deadline = time.monotonic() + 60
    try:
        while len(returned) < returned_before_kill and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, f"the recorder stopped: exit {child.poll()}"
            returned.append(line.strip())
        while not server.events(investigator_key, source=source, limit="1", all_pages=False):  # the sender is at work
            assert time.monotonic() < deadline, "nothing was delivered before the kill"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    returned.extend(line.strip() for line in child.stdout.read().splitlines() if line.strip())
    assert len(returned) >= returned_before_kill

    in_log_at_kill = Counter(e["event"]["id"] for e in server.events(investigator_key, source=source))
    with evident.Client(server.url, producer_key, spool) as client:  # the restart
        assert client.flush(60.0)
        assert client.metrics().dead_letters == 0
    in_log = Counter(e["event"]["id"] for e in server.events(investigator_key, source=source))
    assert [i for i, n in in_log.items() if n > 1] == []
    missing = set(returned) - set(in_log)
    assert not missing, f"{len(missing)} recorded events lost, e.g. {sorted(missing)[:5]}"
    # The kill must have caught the sender mid-stream for the test to say something: some events
    # were delivered before it and some only after the restart.
    assert 0 < len(in_log_at_kill) < len(in_log)
