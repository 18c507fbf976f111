"""The child of the SIGKILL test: records events from several threads as fast as it can and
prints each id once its ``record`` has returned, until it is killed."""

import sys
import threading

import evident

url, key, spool, source, threads, fsync = sys.argv[1:5] + [int(sys.argv[5]), sys.argv[6] == "fsync"]
client = evident.Client(url, key, spool, batch_size=50, fsync=fsync)
printing = threading.Lock()


def produce(thread: int) -> None:
    n = 0
    while True:
        event_id = f"t{thread}-{n}"
        client.record(
            {
                "id": event_id,
                "source": source,
                "type": "customer.record.viewed",
                "action": "read",
                "actor": {"id": "user-7", "type": "user"},
                "targets": [{"type": "customer", "id": str(n)}],
                "outcome": "success",
                "origin": {"host": "app-1"},
            }
        )
        with printing:
            sys.stdout.write(f"{event_id}\n")
            sys.stdout.flush()
        n += 1


for t in range(threads):
    threading.Thread(target=produce, args=(t,), daemon=True).start()
threading.Event().wait()
