"""The HTTP side: one keep-alive connection to an Evident server and the few calls the library
makes (``POST /v1/events``, receipts, entries, verifier keys, key creation). Standard library only.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

__all__ = ["Answer", "Api", "ApiError", "Unavailable"]


class ApiError(Exception):
    """The server refused a request (a 4xx): ``status`` and the RFC 9457 problem ``problem``."""

    def __init__(self, status: int, problem: dict[str, Any]):
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or ""
        params = "; ".join(
            f"{p.get('name')}: {p.get('reason')}" for p in problem.get("invalid-params", []) if isinstance(p, dict)
        )
        super().__init__(f"HTTP {status}: {detail}" + (f" ({params})" if params else ""))


class Unavailable(Exception):
    """The server could not be reached or answered 5xx / 429; try again after ``retry_after``
    seconds when the server said so."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Api:
    """A small blocking client of the Evident HTTP API. Not thread-safe: one per thread."""

    def __init__(self, url: str, api_key: str, timeout: float = 30.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"url {url!r}: expected http://HOST[:PORT] or https://HOST[:PORT]")
        if not api_key or not isinstance(api_key, str):
            raise ValueError("api_key: give the key `evident serve` or POST /v1/keys made")
        self.url = url.rstrip("/")
        self._parsed = parsed
        self._prefix = parsed.path.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
            host = self._parsed.hostname or ""
            self._conn = cls(host, self._parsed.port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        idempotent: bool | None = None,
    ) -> Answer:
        """Sends one request; answers any 2xx. Raises :class:`ApiError` on 4xx (except 429) and
        :class:`Unavailable` on 5xx, 429 and connection failures. An idempotent request (GET by
        default) that fails on a kept-alive connection is sent once more on a new one."""
        if idempotent is None:
            idempotent = method == "GET"
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            reused = self._conn is not None
            try:
                conn = self._connection()
                conn.request(method, self._prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as err:
                self.close()
                # Most likely a kept-alive connection the server has since closed.
                if not (idempotent and reused and attempt == 1):
                    raise Unavailable(f"{method} {path}: {type(err).__name__}: {err}") from None
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        if response.status >= 500 or response.status == 429:
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
            raise Unavailable(f"{method} {path}: HTTP {response.status}", retry_after)
        if response.status >= 400:
            try:
                problem = json.loads(data)
            except ValueError:
                problem = {"detail": data[:200].decode(errors="replace")}
            raise ApiError(response.status, problem if isinstance(problem, dict) else {})
        return answer

    def post_events(self, body: bytes) -> list[dict[str, Any]]:
        """``POST /v1/events`` with a JSON array already encoded; answers the per-item results."""
        answer = self.request("POST", "/v1/events", body, idempotent=True)  # by event id
        receipts = answer.json().get("receipts")
        if not isinstance(receipts, list):
            raise Unavailable("POST /v1/events: the answer holds no receipts list")
        return receipts

    def proof(self, event_id: str) -> str:
        """The ``c2sp.org/tlog-proof@v1`` receipt of an event (a reading key)."""
        return self.request("GET", f"/v1/events/{_seg(event_id)}/proof").body.decode()

    def entry(self, event_id: str) -> bytes:
        """The exact entry bytes the log committed to for an event (a reading key)."""
        return self.request("GET", f"/v1/events/{_seg(event_id)}/entry").body

    def vkeys(self, tenant: str) -> list[str]:
        """The verifier keys of a tenant's log."""
        text = self.request("GET", f"/v1/logs/{_seg(tenant)}/vkeys").body.decode()
        return [line for line in text.splitlines() if line.strip()]

    def checkpoint(self, tenant: str) -> str:
        """The latest signed checkpoint of a tenant's log (a C2SP signed note)."""
        return self.request("GET", f"/v1/logs/{_seg(tenant)}/checkpoint").body.decode()

    def consistency(self, tenant: str, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof between two sizes of a tenant's log, as 32-byte hashes."""
        from .tlog import hash_from_base64

        answer = self.get_json(f"/v1/logs/{_seg(tenant)}/consistency?from={int(old_size)}&to={int(new_size)}")
        return [hash_from_base64(h, "consistency proof") for h in answer["proof"]]

    def get_json(self, path: str) -> Any:
        return self.request("GET", path).json()

    def post_json(self, path: str, value: Any) -> Any:
        return self.request("POST", path, json.dumps(value).encode()).json()


def _seg(text: str) -> str:
    return urllib.parse.quote(text, safe="")
