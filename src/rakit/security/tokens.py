"""Client API tokens and their grants (``--auth-tokens`` / ``AUTH_TOKENS``).

Off by default.  With a tokens file every client request (all but the open
paths below) must carry ``Authorization: Bearer <token>``:

- no token, a malformed header or an unknown token:
  ``401 {"error": "unauthorized", "detail"}`` with ``WWW-Authenticate: Bearer``;
- a valid token asking for something outside its grants:
  ``403 {"error": "forbidden", "detail"}``.

The tokens file (JSON)
----------------------
::

    {"tokens": [
      {"name": "orders-svc", "token": "<secret>",
       "grants": ["locks:orders.*", "queue:read:emails", "queue:write:emails", "cache:*", "status"]},
      {"name": "ops", "sha256": "<hex SHA-256 of the secret>", "grants": ["admin", "status"]}
    ]}

Optional limits per entry: ``rate`` (requests per second, counted at each
node a client reaches: ``429 rate_limited`` with ``Retry-After`` above it;
``burst``, default one second's worth, is how many may come at once) and
``max_locks`` (the most holds and waits the token may have at once: ``409
quota`` beyond; lock table rule 16).

Each entry has a unique ``name`` (1-64 of ``[A-Za-z0-9_.-]``: it appears in
logs and refusals and is the *owner* recorded on the locks it takes), either
``token`` (the secret itself, 16-4096 printable ASCII characters, no spaces)
or ``sha256`` (64 hex digits: the SHA-256 of the secret, so the file need not
hold it), and ``grants``, a list of strings.  Unknown keys, duplicate names
or secrets, an empty list: the node refuses to start (one line, exit 2).
Secrets are hashed at load; a presented token is hashed and compared with
every stored digest by ``hmac.compare_digest`` (constant time, no early exit).

Grants
------
::

    grant   = "*"                          everything (a superuser)
            | "status"                     GET /status
            | "admin"                      read only: /metrics, /debug/digest, /cluster/consistency,
                                           GET /cluster/members and the dashboard's data:
                                           /cluster/overview, /lock/table, /queue/topics
            | "members"                    membership changes and leader transfer, besides the
                                           cluster secret's signature (rakit.http.security)
            | family                       = family ":*:*"
            | family ":" pattern           every action of the family, on names matching pattern
            | family ":" action ":" pattern
            | family ":" action            = family ":" action ":*"
    family  = "locks" | "queue" | "cache" | "kv" | "sessions" | "semaphores" | "elections"
    action  = "read" | "write" | "*"
    pattern = 1-256 of [A-Za-z0-9_.:-*?]: a glob over the whole name, "*" any run of
              characters (also none), "?" one character; case-sensitive

The segment after the family is the action exactly when it is ``read``,
``write`` or ``*`` (alone, or followed by ``:``); anything else starts the
pattern.  Resource and cache keys may contain ``:``, so ``locks:read:x`` is
"read the lock x"; for every action on the keys ``read:*`` write
``locks:*:read:*``.  Topics never contain ``:``, so a queue pattern with one
is refused (``queue:emails:read`` is a typo for ``queue:read:emails``).

==========  ==========================================  ==========================================
family      read                                        write
==========  ==========================================  ==========================================
locks       /lock/status, /lock/watch                   /lock/acquire, /lock/release, /lock/renew
queue       /queue/pop, /queue/stats, /queue/dead        /queue/push, ack, nack, extend, redrive
cache       /cache/get, /cache/stats (no name: any      /cache/set, /cache/delete
            cache read grant)
kv          /kv/get                                     /kv/put, /kv/delete, /kv/incr
sessions    GET /session/{id} (no name)                 /session/grant, keepalive, revoke (no name)
semaphores  /semaphore/status                           /semaphore/acquire, release, renew
elections   /election/leader, /election/observe         /election/campaign, renew, proclaim, resign
==========  ==========================================  ==========================================

The name checked is the lock's ``resource``, the queue's ``topic``, the cache
or kv ``key``, the semaphore's or election's ``name``.  A consumer needs ``queue:read:T`` (pop) and ``queue:write:T``
(ack, nack, extend).

Open paths (no token): ``/health`` (load balancers), ``/docs``, ``/docs/...``,
``/openapi.json`` (the API's description, the same for every deployment) and
the dashboard's static files ``/ui``, ``/ui/...`` (no data: the page asks for
a token and polls the ``admin`` endpoints with it).  Internal paths are the
cluster secret's business (``rakit.security.internal``).  Any other path
needs a valid token (an unknown path then answers 404).  What each path asks
is declared with its endpoint (``rakit.http.endpoints``) and read from the
table built from those declarations (``rakit.security.permissions``).

Across nodes
------------
The node a client reaches authenticates it and puts its ``Identity`` on the
request (``request.state.identity``).  A request relayed to the leader
carries the identity's name in ``x-rakit-identity``, signed with the cluster
secret (the name and the body are bound into the signature); the leader
trusts that header only with a valid signature, looks the name up in its own
tokens file and checks the grants again.  So tokens require a cluster secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from rakit.config import ConfigError
from rakit.security.ratelimit import RateLimiter

if TYPE_CHECKING:
    from rakit.security.permissions import Permissions

FAMILIES = ("locks", "queue", "cache", "kv", "sessions", "semaphores", "elections")
PLAIN_GRANTS = ("*", "status", "admin", "members")
ACTIONS = ("read", "write", "*")

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TOKEN_RE = re.compile(r"^[\x21-\x7e]{16,4096}$")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
PATTERN_RE = re.compile(r"^[A-Za-z0-9_.:*?-]{1,256}$")
ENTRY_KEYS = frozenset({"name", "token", "sha256", "grants", "rate", "burst", "max_locks"})
MAX_RATE = 1_000_000.0

#: Header a node adds to a request it relays for an authenticated client (signed, see above).
IDENTITY_HEADER = "x-rakit-identity"
#: The identity a node acts under for its own calls to peers (the dashboard's overview).
#: Not a valid token name, so no token can claim it.
NODE_IDENTITY = "@node"


# -- grants ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grant:
    family: str  # one of PLAIN_GRANTS or of FAMILIES
    action: str = "*"
    pattern: str = "*"
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in self.pattern)
        object.__setattr__(self, "_regex", re.compile(regex, re.DOTALL))

    def allows(self, family: str, action: str, name: str | None) -> bool:
        if self.family == "*":
            return True
        if self.family != family or self.action not in ("*", action):
            return False
        return name is None or self._regex.fullmatch(name) is not None

    def __str__(self) -> str:
        if self.family in PLAIN_GRANTS:
            return self.family
        return f"{self.family}:{self.action}:{self.pattern}"


def parse_grant(text: Any) -> Grant:
    """One grant string -> ``Grant``; ``ValueError`` with the reason when malformed."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"a grant must be a non-empty string, got {text!r}")
    if text in PLAIN_GRANTS:
        return Grant(text)
    family, sep, rest = text.partition(":")
    if family not in FAMILIES:
        raise ValueError(
            f"unknown grant {text!r}: expected *, status, admin, members or "
            f"{'|'.join(FAMILIES)}[:read|write|*][:pattern]"
        )
    action, pattern = "*", "*"
    if sep:
        head, sep2, tail = rest.partition(":")
        if head in ACTIONS:
            action = head
            if sep2:
                pattern = tail
        else:
            pattern = rest
    if not PATTERN_RE.fullmatch(pattern):
        raise ValueError(
            f"grant {text!r}: the pattern {pattern!r} must be 1-256 of [A-Za-z0-9_.:-] and the wildcards * and ?"
        )
    if family == "queue" and ":" in pattern:
        raise ValueError(f"grant {text!r}: topics never contain ':' (did you mean queue:<read|write>:<topic pattern>?)")
    return Grant(family, action, pattern)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request: a token's name, what it may do, and its limits (None: none)."""

    name: str
    grants: tuple[Grant, ...]
    rate: float | None = None  # requests per second at each node (rakit.security.ratelimit)
    burst: float = 1.0
    max_locks: int | None = None  # holds and waits at once (lock table rule 16)

    def allows(self, family: str, action: str = "*", name: str | None = None) -> bool:
        """May this identity do ``action`` of ``family`` on ``name`` (None: on some name)?"""
        return any(g.allows(family, action, name) for g in self.grants)


SYSTEM = Identity(NODE_IDENTITY, (Grant("*"),))


# -- the tokens file ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenEntry:
    digest: bytes  # SHA-256 of the secret
    identity: Identity


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def load_tokens(path: Path) -> list[TokenEntry]:
    """Read and check a tokens file; every problem is a one-line ``ConfigError``."""
    where = f"--auth-tokens {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tokens"), list):
        raise ConfigError(f'{where}: expected a JSON object {{"tokens": [{{"name", "token", "grants"}}, ...]}}')
    unknown = sorted(set(doc) - {"tokens"})
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {", ".join(map(repr, unknown))} (only "tokens")')
    if not doc["tokens"]:
        raise ConfigError(f"{where}: lists no token (with no tokens, leave --auth-tokens out)")
    entries: list[TokenEntry] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for i, raw in enumerate(doc["tokens"]):
        at = f"{where}: tokens[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{at}: expected an object with name, token (or sha256) and grants")
        name = raw.get("name")
        if isinstance(name, str):
            at += f" ({name!r})"
        extra = sorted(set(raw) - ENTRY_KEYS)
        if extra:
            raise ConfigError(
                f"{at}: unknown key(s) {', '.join(map(repr, extra))} (expected name, token or sha256, grants)"
            )
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ConfigError(f"{at}: name must be 1-64 of [A-Za-z0-9_.-]")
        if name in names:
            raise ConfigError(f"{at}: the name {name!r} is used twice")
        if ("token" in raw) == ("sha256" in raw):
            raise ConfigError(f"{at}: give exactly one of token and sha256")
        if "token" in raw:
            token = raw["token"]
            if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
                raise ConfigError(f"{at}: token must be 16-4096 printable ASCII characters without spaces")
            digest = _digest(token)
        else:
            hexdigest = raw["sha256"]
            if not isinstance(hexdigest, str) or not SHA256_RE.fullmatch(hexdigest):
                raise ConfigError(f"{at}: sha256 must be 64 hex digits (the SHA-256 of the token)")
            digest = bytes.fromhex(hexdigest)
        if digest in digests:
            raise ConfigError(f"{at}: the same token is listed twice")
        grants_raw = raw.get("grants")
        if not isinstance(grants_raw, list):
            raise ConfigError(f'{at}: grants must be a list of strings, e.g. ["locks:orders.*", "status"]')
        try:
            grants = tuple(parse_grant(g) for g in grants_raw)
        except ValueError as exc:
            raise ConfigError(f"{at}: {exc}") from None
        rate, burst, max_locks = _limits(at, raw)
        names.add(name)
        digests.add(digest)
        entries.append(TokenEntry(digest, Identity(name, grants, rate, burst, max_locks)))
    return entries


def _limits(at: str, raw: dict[str, Any]) -> tuple[float | None, float, int | None]:
    """An entry's ``rate`` (requests/s per node), ``burst`` and ``max_locks``, checked."""

    def number(key: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_RATE:
            raise ConfigError(f"{at}: {key} must be a number above 0 and at most {MAX_RATE:g}")
        return float(value)

    rate, burst = number("rate"), number("burst")
    if burst is not None and rate is None:
        raise ConfigError(f"{at}: burst needs a rate")
    if burst is not None and burst < 1:
        raise ConfigError(f"{at}: burst must be at least 1 (one request)")
    max_locks = raw.get("max_locks")
    if max_locks is not None and (isinstance(max_locks, bool) or not isinstance(max_locks, int) or max_locks < 1):
        raise ConfigError(f"{at}: max_locks must be a whole number of at least 1")
    return rate, burst if burst is not None else max(1.0, rate or 1.0), max_locks


# -- what a request asks for ------------------------------------------------------------


class Need(NamedTuple):
    """What a path asks of a token: ``family``/``action`` on ``name`` (None: checked later, or none)."""

    family: str
    action: str = "*"
    name: str | None = None


OPEN = None  # a path anyone may call
AUTHENTICATED = Need("")  # any valid token (unknown paths: they answer 404 then)


class Refusal(NamedTuple):
    status: int  # 401, 403 or 429
    code: str
    detail: str
    retry_after: float | None = None  # 429: seconds until a request would be served


def _describe(n: Need) -> str:
    if n.family in PLAIN_GRANTS:
        return f"the {n.family!r} grant"
    return f"{n.family}:{n.action}" + (f" on {n.name!r}" if n.name is not None else "")


# -- the checker ----------------------------------------------------------------------------


class ClientAuth:
    """The tokens of ``tokens_file`` (None: client authentication is off)."""

    def __init__(self, tokens_file: Path | None, permissions: Permissions | None = None) -> None:
        """``permissions``: what each path asks (``rakit.security.permissions``), needed when tokens are on."""
        if tokens_file is not None and permissions is None:
            raise ValueError("client tokens need the permission table of the node's endpoints")
        self.tokens_file = tokens_file
        self.permissions = permissions
        self.entries: list[TokenEntry] = load_tokens(tokens_file) if tokens_file is not None else []
        self._by_name = {e.identity.name: e.identity for e in self.entries}
        self.refused = 0
        self.limiter = RateLimiter()  # per-token request rates at this node (rakit.security.ratelimit)

    def need(self, path: str) -> Need | None:
        """What ``path`` asks of a token (``OPEN``: nothing); names in a body are checked by the route."""
        return self.permissions.need(path) if self.permissions is not None else AUTHENTICATED

    @property
    def enabled(self) -> bool:
        return self.tokens_file is not None

    def authenticate(self, headers: Mapping[str, str]) -> Identity | Refusal:
        """The identity of the bearer token in ``headers`` (lowercase names), or a 401."""
        value = headers.get("authorization")
        if value is None:
            return Refusal(401, "unauthorized", "this node requires an API token: send 'Authorization: Bearer <token>'")
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Refusal(401, "unauthorized", "malformed Authorization header: expected 'Bearer <token>'")
        presented = _digest(token)
        found: Identity | None = None
        for entry in self.entries:  # every digest compared: the time does not depend on which matched
            if hmac.compare_digest(entry.digest, presented):
                found = entry.identity
        if found is None:
            return Refusal(401, "unauthorized", "unknown API token")
        return found

    def authorize(self, identity: Identity, path: str) -> Refusal | None:
        """None if ``identity`` may call ``path`` (names in a body: the route checks them), else a 403."""
        n = self.need(path)
        if n is None or n is AUTHENTICATED or identity.allows(n.family, n.action, n.name):
            return None
        return Refusal(403, "forbidden", f"token {identity.name!r} is not granted {_describe(n)}")

    def check(self, method: str, path: str, headers: Mapping[str, str]) -> Identity | Refusal | None:
        """A client request: its identity, a refusal (401/403), or None for an open path."""
        if self.need(path) is OPEN:
            return None
        identity = self.authenticate(headers)
        if isinstance(identity, Refusal):
            return identity
        return self.authorize(identity, path) or identity

    def operator(self, headers: Mapping[str, str]) -> Identity | Refusal:
        """An operator call (already signed with the secret): its token must have the ``members`` grant."""
        identity = self.authenticate(headers)
        if isinstance(identity, Refusal):
            return identity._replace(
                detail=f"{identity.detail} (with client tokens on, membership changes and leader transfer "
                "need a token with the 'members' grant besides the cluster secret)"
            )
        if not identity.allows("members"):
            return Refusal(403, "forbidden", f"token {identity.name!r} is not granted the 'members' grant")
        return identity

    def on_behalf_of(self, name: str, path: str) -> Identity | Refusal | None:
        """A request a peer relayed for ``name`` (its signature already checked): as ``check``."""
        if self.need(path) is OPEN:
            return None
        identity = SYSTEM if name == NODE_IDENTITY else self._by_name.get(name)
        if identity is None:
            return Refusal(
                401,
                "unauthorized",
                f"relayed for {name!r}, which this node's tokens file "
                f"does not list (do all nodes share one tokens file?)",
            )
        return self.authorize(identity, path) or identity


def identity_binding(name: str, body: bytes) -> bytes:
    """What a relayed request's signature covers besides method and path: the identity and the body."""
    return b"rakit-identity\n" + name.encode() + b"\n" + body
