"""A tiny synchronous JSON HTTP client for tests (stdlib only, always bounded by a timeout)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def call(
    method: str,
    url: str,
    body: Any = None,
    timeout: float = 10.0,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    secret: str | None = None,
) -> tuple[int, Any]:
    """(status, decoded JSON or None); status 0 when the node could not be reached.

    ``secret``: sign the call with the cluster secret, as an operator does
    (membership changes, leader transfer); the node's id is asked first.
    """
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if secret is not None:
        parts = urllib.parse.urlsplit(url)
        status, health = get(f"{parts.scheme}://{parts.netloc}/health", timeout)
        if status != 200:
            return 0, None
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {**(headers or {}), **internal_headers(secret, health["node_id"], method, target, data or b"")}
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        payload, status = err.read(), err.code
    except (urllib.error.URLError, OSError, TimeoutError):
        return 0, None
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, payload.decode(errors="replace")


def post(url: str, body: Any, timeout: float = 10.0) -> tuple[int, Any]:
    return call("POST", url, body, timeout)


def get(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    return call("GET", url, None, timeout)


def retry_until_ok(
    method: str,
    url: str,
    body: Any = None,
    timeout: float = 15.0,
    ok: tuple[int, ...] = (200,),
    secret: str | None = None,
) -> tuple[int, Any]:
    """Repeat a request until its status is in ``ok`` or ``timeout`` passes (then return the last)."""
    deadline = time.monotonic() + timeout
    while True:
        status, payload = call(
            method, url, body, timeout=max(0.5, min(5.0, deadline - time.monotonic())), secret=secret
        )
        if status in ok or time.monotonic() >= deadline:
            return status, payload
        time.sleep(0.05)


def internal_headers(secret: str | None, dst: str, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    """Headers signing a call to node ``dst``'s internal ``path`` with the cluster ``secret`` ({} without one)."""
    from rakit.security.internal import InternalAuth

    return InternalAuth(secret, "tests").headers(method, path, body, dst=dst)
