"""The request bodies (and the handful of answer Structs built by hand) of the node's JSON endpoints.

One place for the msgspec Structs that decode and validate a request, so
that the endpoint declarations (``rakit.http.endpoints``), the OpenAPI
document and the handlers (``rakit.http.routes.*``) share them without
importing each other.  Bounds here are the contract's (docs/api.md); a body
that breaks one is a 422 naming the field, and nothing happens.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from rakit.http.json import Key, Name
from rakit.raft.messages import MAX_WIRE_INT

# -- locks ----------------------------------------------------------------------------------------

Timeout = Annotated[float, msgspec.Meta(ge=0, le=300)]
Ttl = Annotated[float, msgspec.Meta(ge=1, le=3600)]
LockDelay = Annotated[float, msgspec.Meta(ge=0, le=60)]
# A holder secret (lock table rule 15): made up by the client, e.g. secrets.token_urlsafe(24).
Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$(?!\n)")]
# A fencing token is a Raft log index: bounded like one (a bigger int would not fit the command's msgpack).
Token = Annotated[int, msgspec.Meta(ge=0, le=MAX_WIRE_INT)]


class AcquireBody(msgspec.Struct):
    resource: Key
    client_id: Name
    mode: Literal["exclusive", "shared"] = "exclusive"
    timeout: Timeout = 0.0
    ttl: Ttl = 30.0
    lock_delay: LockDelay | None = None
    secret: Secret | None = None
    session_id: Key | None = None  # the hold lives as long as the session (its ttl is ignored)


class ReleaseBody(msgspec.Struct):
    resource: Key
    client_id: Name
    fencing_token: Token | None = None
    secret: Secret | None = None


class RenewBody(msgspec.Struct):
    resource: Key
    client_id: Name
    ttl: Ttl | None = None
    secret: Secret | None = None


# -- cluster membership -----------------------------------------------------------------------------

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=512, pattern=r"^https?://[^\s/]+(:[0-9]{1,5})?/?$(?!\n)")]


class TransferBody(msgspec.Struct):
    to: Name | None = None


class PromoteBody(msgspec.Struct):
    """Nothing yet; an empty body (or ``{}``) is fine."""


class AddMemberBody(msgspec.Struct):
    id: Name
    url: Url


# -- cache ----------------------------------------------------------------------------------------

MAX_CACHE_TTL = 2_592_000
CacheTtl = Annotated[float, msgspec.Meta(gt=0, le=MAX_CACHE_TTL)]


class SetBody(msgspec.Struct):
    key: Key
    value: msgspec.Raw
    ttl: CacheTtl | None = None


class CacheKeyBody(msgspec.Struct):
    key: Key


class InvalidateBody(msgspec.Struct):
    src: Name
    key: Key
    version: str


class GetAnswer(msgspec.Struct):
    key: str
    value: msgspec.Raw
    version: str
    node: str
    source: str


# -- queue ----------------------------------------------------------------------------------------

VisibilityTimeout = Annotated[float, msgspec.Meta(ge=0.1, le=43200)]
Wait = Annotated[float, msgspec.Meta(ge=0, le=20)]
DEFAULT_VISIBILITY = 30.0
MAX_DEAD_LIMIT = 1000
MAX_REDRIVE_LIMIT = 10_000


class PushBody(msgspec.Struct):
    topic: Name
    message: msgspec.Raw
    message_id: Key | None = None


class InternalPushBody(msgspec.Struct):
    topic: Name
    message: msgspec.Raw
    message_id: Key


class PopBody(msgspec.Struct):
    topic: Name
    consumer_id: Name
    visibility_timeout: VisibilityTimeout = DEFAULT_VISIBILITY
    wait: Wait = 0.0


class MessageBody(msgspec.Struct):
    topic: Name
    consumer_id: Name
    message_id: Key


class ExtendBody(msgspec.Struct):
    topic: Name
    consumer_id: Name
    message_id: Key
    visibility_timeout: VisibilityTimeout


class RedriveBody(msgspec.Struct):
    topic: Name
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_REDRIVE_LIMIT)] = 100


# -- sessions, semaphores, elections (docs/api.md v2) -----------------------------------------------

SessionTtl = Annotated[float, msgspec.Meta(ge=1, le=3600)]
Permits = Annotated[int, msgspec.Meta(ge=1, le=100_000)]
MAX_ELECTION_VALUE = 64 * 1024


class SessionGrantBody(msgspec.Struct):
    client_id: Name
    ttl: SessionTtl = 10.0
    lock_delay: LockDelay = 0.0


class SessionBody(msgspec.Struct):
    session_id: Key


class SemaphoreAcquireBody(msgspec.Struct):
    name: Key
    client_id: Name
    limit: Permits
    permits: Permits = 1
    timeout: Timeout = 0.0
    ttl: Ttl = 30.0
    session_id: Key | None = None
    secret: Secret | None = None


class SemaphoreReleaseBody(msgspec.Struct):
    name: Key
    client_id: Name
    secret: Secret | None = None


class SemaphoreRenewBody(msgspec.Struct):
    name: Key
    client_id: Name
    ttl: Ttl | None = None
    secret: Secret | None = None


class CampaignBody(msgspec.Struct):
    name: Key
    candidate_id: Key
    value: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    ttl: SessionTtl = 10.0
    timeout: Timeout = 0.0
    session_id: Key | None = None
    secret: Secret | None = None


class ElectionRenewBody(msgspec.Struct):
    name: Key
    candidate_id: Key
    ttl: SessionTtl | None = None
    secret: Secret | None = None


class ProclaimBody(msgspec.Struct):
    name: Key
    candidate_id: Key
    term: Token
    value: msgspec.Raw
    secret: Secret | None = None


class ResignBody(msgspec.Struct):
    name: Key
    candidate_id: Key
    secret: Secret | None = None
