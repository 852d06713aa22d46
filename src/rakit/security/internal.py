"""Node-to-node authentication with the cluster secret (``--cluster-secret``).

Every call a node makes to a peer's internal endpoints (``is_internal``)
carries four headers::

    x-rakit-node   the calling node's id
    x-rakit-ts     its wall clock, Unix seconds with milliseconds ("1718000000.123")
    x-rakit-nonce  16 random bytes, URL-safe base64 (fresh for every call)
    x-rakit-sig    hex HMAC-SHA256, keyed by the cluster secret, of

        rakit-hmac-sha256-v1 \\n METHOD \\n path[?query] \\n caller \\n callee
        \\n ts \\n nonce \\n hex SHA-256 of the request body

``x-rakit-body`` carries that body hash too, so the callee checks the
signature from the headers alone, *before* it reads a byte of the body, then
hashes the body as it reads it and refuses a mismatch: a caller without the
secret cannot make a node buffer anything.  (A call without that header, from
an older node, is read only up to ``PREAUTH_LIMIT`` bytes before its check.)
Bodies being read by signed calls share a budget (``MAX_INFLIGHT_BYTES``).

The callee is the node the call is meant for: the checking node puts its own
id there, so a call recorded on its way to one node cannot be replayed to
another.  WebSocket streams (``/raft/stream``, ``/cache/stream``) are
authenticated once, at the handshake (a GET with an empty body); HTTP POSTs
sign their body too (the middleware reads it, bounded, before the app).

A call is accepted only if the signature matches (``hmac.compare_digest``),
its timestamp is within ``window`` seconds of this node's clock (either way;
so node clocks must agree within that, e.g. NTP) and its nonce was not seen
before.  Accepted nonces are remembered until their timestamp leaves the
window, at most ``max_nonces`` of them: when the cache is full the oldest is
forgotten and every timestamp up to its own is refused from then on (a
"floor"), so a replay is never accepted even under a flood — the window
narrows instead.  Only signed calls enter the cache, so a caller without the
secret cannot fill it.

A WebSocket stream is authenticated both ways: the callee accepts the
handshake with ``x-rakit-proof``, a MAC keyed by the secret over the callee,
the caller and the caller's nonce, and the caller checks it (``check_proof``)
before it sends or reads a frame.  So a node never streams its log to, nor
takes answers from, an address that cannot prove the secret.

Refusals are ``401 {"error": "unauthorized", "detail": <the reason>}`` (a
WebSocket handshake is closed before it is accepted).  With no secret
configured nothing is signed, nothing is checked, and the middleware is not
even installed.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Protocol

INTERNAL_PREFIXES = (
    "/request_vote",
    "/append_entries",
    "/install_snapshot",
    "/raft/",
    "/cache/invalidate",
    "/cache/internal/",
    "/cache/stream",
    "/queue/internal/",
)

SCHEME = "rakit-hmac-sha256-v1"
NODE_HEADER = "x-rakit-node"
TS_HEADER = "x-rakit-ts"
NONCE_HEADER = "x-rakit-nonce"
SIG_HEADER = "x-rakit-sig"
BODY_HEADER = "x-rakit-body"  # hex SHA-256 of the body the signature covers
PROOF_HEADER = "x-rakit-proof"  # the callee's answer to a signed WebSocket handshake
#: The caller an operator's signed call names (``rakit member``, ``Client(cluster_secret=...)``);
#: a node joining with ``--join`` names itself instead.
OPERATOR_CALLER = "operator"

WINDOW = 30.0  # seconds a signed call stays valid, either side of the checker's clock
START_MARGIN = 1.0  # seconds before this process's start from which signed calls are still taken
MAX_NONCES = 200_000  # recent nonces remembered (~40 MB at most; 6k calls/s over a full window)

# Bodies the middleware reads (to check their hash) before the app sees them:
# at least what each internal endpoint itself accepts (its own limit answers 413).
RAFT_BODY_LIMIT = 256 * 1024 * 1024 + 1024 * 1024  # /append_entries, /install_snapshot, /request_vote
OTHER_BODY_LIMIT = 16 * 1024 * 1024 + 1024 * 1024  # /cache/internal/batch (16 MiB), JSON bodies (~1 MiB)

PREAUTH_LIMIT = 64 * 1024  # body bytes read before the signature is checked (calls without BODY_HEADER)
MAX_INFLIGHT_BYTES = 512 * 1024 * 1024  # body bytes all signed calls in progress may hold at once

_TS_RE = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_NODE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SIG_RE = re.compile(r"^[0-9a-f]{64}$")
_EMPTY_BODY_HASH = hashlib.sha256(b"").hexdigest()
LOG_EVERY = 10.0  # seconds between two warnings about refused calls

log = logging.getLogger(__name__)


def is_internal(path: str) -> bool:
    return path.startswith(INTERNAL_PREFIXES)


def is_operator(method: str, path: str) -> bool:
    """Does this call change who is in the cluster or who leads it (it must prove the secret)?"""
    if path == "/cluster/transfer-leader":
        return method == "POST"
    if path == "/cluster/members" or path == "/cluster/members/":
        return method == "POST"
    return path.startswith("/cluster/members/") and method in ("POST", "DELETE", "PUT", "PATCH")


def is_signed_listing(method: str, path: str, headers: Mapping[str, str]) -> bool:
    """A signed ``GET /cluster/members`` (a joining node reads the configuration without a token)."""
    return method == "GET" and path.rstrip("/") == "/cluster/members" and NODE_HEADER in headers


def body_limit(path: str) -> int:
    """The most body bytes the middleware reads for an internal ``path`` before checking it."""
    if path.startswith(("/append_entries", "/install_snapshot", "/request_vote")):
        return RAFT_BODY_LIMIT
    return OTHER_BODY_LIMIT


class InternalAuth:
    """Signs this node's internal calls (``headers``) and checks the ones it serves (``check``).

    ``node_id`` is this node's id: the caller named in what it signs, and the
    callee it expects in what it checks.
    """

    def __init__(
        self,
        secret: str | None,
        node_id: str | None = None,
        *,
        window: float = WINDOW,
        max_nonces: int = MAX_NONCES,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.secret = secret
        self.node_id = node_id or ""
        self.window = window
        self.max_nonces = max(1, max_nonces)
        self.clock: Callable[[], float] = clock or time.time  # wall clock, Unix seconds
        # A key derived from the secret (not the secret itself) keys every MAC.
        self._key = (
            hmac.new(secret.encode(), b"rakit internal auth v1", hashlib.sha256).digest() if secret is not None else b""
        )
        self._nonces: set[str] = set()
        self._expiry: list[tuple[float, str]] = []  # (ts, nonce), a heap: the oldest timestamp first
        # Every timestamp <= this is refused (its nonce may be forgotten).  It starts at this
        # process's start: the nonces seen before a restart are gone, so a call signed before it
        # is refused rather than replayable.
        # (START_MARGIN: a timestamp is written with milliseconds, and a peer's clock may lag a little.)
        self._floor = self.clock() - START_MARGIN
        self.refused = 0
        self._logged_at = float("-inf")
        self.inflight_bytes = 0  # body bytes signed calls are holding while they are read (``read_body``)

    @property
    def enabled(self) -> bool:
        return self.secret is not None

    # -- signing ---------------------------------------------------------------

    def _mac(self, method: str, path: str, caller: str, callee: str, ts: str, nonce: str, body_hash: str) -> str:
        text = "\n".join((SCHEME, method.upper(), path, caller, callee, ts, nonce, body_hash))
        return hmac.new(self._key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()

    def headers(self, method: str, path: str, body: bytes = b"", *, dst: str = "") -> dict[str, str]:
        """Headers proving the secret, for a call this node makes to peer ``dst``.

        ``path`` is the request target as sent (path, and ``?query`` if any);
        ``body`` the exact bytes sent (empty for a WebSocket handshake).
        """
        if self.secret is None:
            return {}
        ts = f"{self.clock():.3f}"
        nonce = secrets.token_urlsafe(16)
        body_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_BODY_HASH
        return {
            NODE_HEADER: self.node_id or "-",
            TS_HEADER: ts,
            NONCE_HEADER: nonce,
            BODY_HEADER: body_hash,
            SIG_HEADER: self._mac(method, path, self.node_id or "-", dst, ts, nonce, body_hash),
        }

    def proof_headers(self, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        """The callee's answer headers to a handshake ``headers`` it accepted (``check`` passed)."""
        if self.secret is None:
            return []
        proof = self._proof(self.node_id, headers.get(NODE_HEADER, ""), headers.get(NONCE_HEADER, ""))
        return [(PROOF_HEADER.encode(), proof.encode())]

    def check_proof(self, sent: Mapping[str, str], answer: Mapping[str, str] | None, callee: str) -> str | None:
        """None if ``callee`` answered the handshake ``sent`` with a valid proof, else the reason."""
        if self.secret is None:
            return None
        if answer is None:
            return "the handshake's answer headers cannot be read"
        got = answer.get(PROOF_HEADER, "")
        expected = self._proof(callee, sent.get(NODE_HEADER, ""), sent.get(NONCE_HEADER, ""))
        if not hmac.compare_digest(expected, got):
            self.refused += 1
            return (
                f"{callee} did not prove the cluster secret when accepting the stream "
                f"({'a wrong ' if got else 'no '}{PROOF_HEADER})"
            )
        return None

    def _proof(self, callee: str, caller: str, nonce: str) -> str:
        text = "\n".join((SCHEME, "proof", callee, caller, nonce))
        return hmac.new(self._key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()

    # -- checking --------------------------------------------------------------

    def precheck(self, headers: Mapping[str, str], now: float | None = None) -> str | None:
        """The reason to refuse before reading the body (headers missing, malformed, stale), else None.

        Changes nothing; ``check`` does it all again, signature and nonce included.
        """
        if self.secret is None:
            return None
        missing = [h for h in (NODE_HEADER, TS_HEADER, NONCE_HEADER, SIG_HEADER) if not headers.get(h)]
        if missing:
            return (
                f"internal endpoint: missing {', '.join(missing)} (node-to-node calls must be signed "
                f"with the cluster secret)"
            )
        if not _NODE_RE.fullmatch(headers[NODE_HEADER]):
            return f"malformed {NODE_HEADER}"
        ts_text = headers[TS_HEADER]
        if not _TS_RE.fullmatch(ts_text):
            return f"malformed {TS_HEADER}: expected Unix seconds"
        if not _NONCE_RE.fullmatch(headers[NONCE_HEADER]):
            return f"malformed {NONCE_HEADER}: expected 16-64 URL-safe characters"
        if not _SIG_RE.fullmatch(headers[SIG_HEADER]):
            return f"malformed {SIG_HEADER}: expected 64 lowercase hex digits"
        now = self.clock() if now is None else now
        skew = float(ts_text) - now
        if abs(skew) > self.window:
            return (
                f"stale {TS_HEADER}: {skew:+.1f} s from this node's clock, outside the "
                f"±{self.window:g} s window (are the nodes' clocks in sync?)"
            )
        return None

    def check(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"", now: float | None = None
    ) -> str | None:
        """None if the call proves the secret (its nonce is then used up), else the reason (answered 401).

        ``headers`` with lowercase names; ``path`` the target as received
        (path, and ``?query`` if any); ``body`` what the signature covers;
        ``now`` the arrival time (default: now).
        """
        if self.secret is None:
            return None
        body_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_BODY_HASH
        declared = headers.get(BODY_HEADER)
        if declared is not None and not hmac.compare_digest(declared, body_hash):
            reason = f"the body does not match its signed hash ({BODY_HEADER})"
            self._refuse(method, path, headers, reason)
            return reason
        return self.check_signature(method, path, headers, body_hash, now)

    def check_signature(
        self, method: str, path: str, headers: Mapping[str, str], body_hash: str, now: float | None = None
    ) -> str | None:
        """``check`` for a call whose body has the SHA-256 ``body_hash`` (hex), from the headers alone."""
        if self.secret is None:
            return None
        now = self.clock() if now is None else now
        reason = self.precheck(headers, now)
        if reason is None:
            caller, ts_text, nonce = headers[NODE_HEADER], headers[TS_HEADER], headers[NONCE_HEADER]
            expected = self._mac(method, path, caller, self.node_id, ts_text, nonce, body_hash)
            ts = float(ts_text)
            if not hmac.compare_digest(expected, headers[SIG_HEADER]):
                reason = (
                    "bad signature: wrong cluster secret, or the call was altered (method, path, "
                    "body) or meant for another node"
                )
            elif nonce in self._nonces or ts <= self._floor:
                reason = f"replayed call: {NONCE_HEADER} already used"
            else:
                self._remember(nonce, ts, now)
                return None
        self._refuse(method, path, headers, reason)
        return reason

    def _refuse(self, method: str, path: str, headers: Mapping[str, str], reason: str) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:  # a flood of bad calls must not flood the log
            self._logged_at = now
            caller = headers.get(NODE_HEADER, "?")[:64]
            log.warning(
                "refused an internal call %s %s (claims to be from %r): %s (%d refused so far)",
                method,
                path[:200],
                caller,
                reason,
                self.refused,
            )

    async def admit(
        self,
        scope: Mapping[str, Any],
        receive: Receive,
        headers: Mapping[str, str],
        limit: int | None = None,
        bind: Callable[[bytes], bytes] | None = None,
    ) -> tuple[Receive, tuple[int, str, str] | None]:
        """Check one signed call at the ASGI level (``rakit.http.security``).

        Answers ``(receive, None)`` when the call proves the secret — for an
        HTTP call ``receive`` then replays the body read here to the app — or
        ``(receive, (status, code, detail))`` to refuse it: 401 unauthorized,
        413 too_large, 503 unavailable (the body budget is spent); status 0
        when the client went away (nothing to answer).  With ``BODY_HEADER``
        the signature is checked before the body is read (bounded by
        ``limit``, default ``body_limit``); ``bind`` maps the body to what
        the signature covers (default: the body itself).
        """
        arrived = self.clock()
        path: str = scope["path"]
        method: str = scope.get("method", "GET")
        query: bytes = scope.get("query_string", b"")
        target = path + "?" + query.decode("latin-1") if query else path
        reason = self.precheck(headers, arrived)
        if reason is not None:
            self._refuse(method, path, headers, reason)
            return receive, (401, "unauthorized", reason)
        declared = headers.get(BODY_HEADER)
        limit = body_limit(path) if limit is None else limit
        if declared is not None:
            if not _SIG_RE.fullmatch(declared):
                return receive, (401, "unauthorized", f"malformed {BODY_HEADER}: expected 64 lowercase hex digits")
            reason = self.check_signature(method, target, headers, declared, now=arrived)
            if reason is not None:
                return receive, (401, "unauthorized", reason)
        else:
            limit = min(limit, PREAUTH_LIMIT)  # an unsigned hash: read little before the check
        body = b""
        if scope["type"] == "http":
            declared_length = headers.get("content-length")
            if declared_length is not None and declared_length.isdigit() and int(declared_length) > limit:
                return receive, (
                    413,
                    "too_large",
                    f"request body of {declared_length} bytes is over the {limit}-byte limit",
                )
            if self.inflight_bytes >= MAX_INFLIGHT_BYTES:
                return receive, (503, "unavailable", "too many request bodies are being read; retry")
            try:
                body = await read_body(receive, limit, declared_length, budget=self)
            except BodyTooLarge as exc:
                return receive, (413, "too_large", str(exc))
            except ClientGone:
                return receive, (0, "", "")
            receive = replaying(body, receive)
        covered = bind(body) if bind is not None else body
        if declared is not None:
            if not hmac.compare_digest(declared, hashlib.sha256(covered).hexdigest() if covered else _EMPTY_BODY_HASH):
                reason = f"the body does not match its signed hash ({BODY_HEADER})"
                self._refuse(method, path, headers, reason)
                return receive, (401, "unauthorized", reason)
            return receive, None
        reason = self.check(method, target, headers, covered, now=arrived)
        if reason is not None:
            return receive, (401, "unauthorized", reason)
        return receive, None

    def _remember(self, nonce: str, ts: float, now: float) -> None:
        expiry, nonces = self._expiry, self._nonces
        horizon = now - self.window
        while expiry and (expiry[0][0] < horizon or len(nonces) >= self.max_nonces):
            old_ts, old = heapq.heappop(expiry)
            nonces.discard(old)
            self._floor = max(self._floor, old_ts)
        heapq.heappush(expiry, (ts, nonce))
        nonces.add(nonce)

    @property
    def remembered(self) -> int:
        """How many nonces are remembered now (bounded by ``max_nonces``)."""
        return len(self._nonces)


class PeerNotProven(ConnectionError):
    """A peer accepted a stream without proving the cluster secret (``check_proof``)."""


def handshake_answer(ws: Any) -> Mapping[str, str] | None:
    """The answer headers of an open aiohttp WebSocket (None when this aiohttp hides them)."""
    response = getattr(ws, "_response", None)  # aiohttp keeps the handshake's response here
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def verify_stream(auth: InternalAuth | None, sent: Mapping[str, str] | None, ws: Any, callee: str) -> None:
    """Raise ``PeerNotProven`` unless ``callee`` proved the secret in the stream's handshake."""
    if auth is None or not auth.enabled or sent is None:
        return
    reason = auth.check_proof(sent, handshake_answer(ws), callee)
    if reason is not None:
        raise PeerNotProven(reason)


# -- the body of an internal HTTP call, read before the app (``rakit.http.security``) -------

Message = MutableMapping[str, Any]  # what Starlette's ``Receive`` yields
Receive = Callable[[], Awaitable[Message]]


class BodyTooLarge(Exception):
    """The body is over the limit for its endpoint (answered 413)."""


class ClientGone(Exception):
    """The client disconnected before its body was read (nothing to answer)."""


class Budget(Protocol):
    inflight_bytes: int


async def read_body(receive: Receive, limit: int, declared: str | None = None, budget: Budget | None = None) -> bytes:
    """Every ``http.request`` chunk of the body, at most ``limit`` bytes (``declared``: Content-Length).

    ``budget.inflight_bytes`` counts the bytes held while reading (and is given back after).
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if budget is not None:
                    budget.inflight_bytes += len(chunk)
                if size > limit:
                    raise BodyTooLarge(f"request body is over the {limit}-byte limit")
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
    finally:
        if budget is not None:
            budget.inflight_bytes -= size


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving the app ``body`` (already read) first, then the real one (disconnects)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def wrapped() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return wrapped
