"""Evident's Python client: record audit events through a durable local spool, verify receipts
offline, and capture SQLAlchemy model changes (``evident.sqlalchemy``).

    with evident.Client("http://127.0.0.1:7411", api_key, spool_dir="/var/lib/app/evident") as client:
        client.record({...})          # returns once the event is fsynced in the spool
        client.flush(timeout=5.0)     # true when the server acknowledged everything spooled
"""

from ._client import MAX_EVENT_BYTES, REQUIRED_FIELDS, Client, SpoolMetrics
from ._http import Api, ApiError, Unavailable
from ._spool import DeadLetter, SpoolFull, SpoolInUse
from .tlog import VerificationError, verify_receipt

__all__ = [
    "MAX_EVENT_BYTES",
    "REQUIRED_FIELDS",
    "Api",
    "ApiError",
    "Client",
    "DeadLetter",
    "SpoolFull",
    "SpoolInUse",
    "SpoolMetrics",
    "Unavailable",
    "VerificationError",
    "verify_receipt",
]
__version__ = "0.1.0"
