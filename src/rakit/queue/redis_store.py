"""The queue's state in Redis: every step is one atomic Lua script.

``RedisQueueStore`` keeps the contract of ``rakit.queue.store`` (the
``QueueStore`` protocol, rules 1-9 there); ``rakit.queue.memory_store`` is
its twin.  How Redis keeps each rule (numbers as in ``rakit.queue.store``):

1. **One script per step.**  push (with dedup), pop (move to processing +
   deadline + delivery count), ack, nack, extend, requeue-expired (with
   dead-lettering), redrive, and the reads stats / dead_letters each run as
   ONE Lua script, registered once per client (``register_script``; a
   ``NOSCRIPT`` after a Redis restart is handled by redis-py's Script
   object, which loads the script again).  A script runs alone in Redis, so
   no crash between two Redis calls can lose or duplicate a message.
   Scripts check everything they need *before* their first write, because
   Redis does not roll back a script that fails half-way.
2. **Time comes from the caller.**  The store reads ``clock()`` (default
   ``time.time``) and passes instants into the scripts as arguments; no
   script calls ``TIME``, so scripts are deterministic and replicate as-is.
3. **One topic, one hash slot.**  Every key of topic ``T`` carries the Redis
   Cluster hash tag ``{T}``, and each script touches only keys of one topic,
   all passed in ``KEYS``, so the store runs unchanged on a Redis Cluster.
   Topic and consumer names (``rakit.queue.store`` rule 3) contain no
   ``{``, ``}`` or ``:``, so two different (topic, consumer) pairs can never
   produce the same key name, and the hash tag is always the whole topic.
4. **Order.**  ``queue:{T}`` is a sorted set scored by the push sequence
   (``seq:{T}``; each message's number is kept in ``order:{T}``), so the
   head (lowest score, ``ZPOPMIN``) is the earliest-pushed ready message,
   and a message coming back is added with its own number again.
6. **Dedup.**  The window is a sorted set (id -> first push time) trimmed on
   every push, so it holds at most one window's worth of ids; the live rule
   is ``HEXISTS msg:{T}``.  ``dedup_window=0`` keeps no ``dedup:{T}`` key.
7. **In flight.**  A popped message is in ``processing:{T}:{C}`` (a list,
   as in the original design), its deadline in ``timestamps:{T}:{C}`` (a
   hash id -> deadline) and in the topic's deadline index ``deadlines:{T}``
   (a sorted set of ``"C:id"`` -> deadline; ``C`` contains no ``:`` so the
   member splits unambiguously).  A monitor finds expired messages with one
   ``ZRANGEBYSCORE`` on the index, never scanning consumers; the requeue
   script re-checks each candidate's deadline (one acked, extended or
   requeued meanwhile is skipped).  The pop script checks the
   ``max_in_flight`` bound (``HLEN timestamps:{T}:{C}``) before its first
   write, so two concurrent pops can never pass it together.
8. **Discovery across topics** (``topics_with_inflight``).  A set of all
   topics with in-flight messages would live in one slot, and no script may
   touch two slots, so it could only be kept up to date *beside* the
   scripts, where a crash or a race loses entries.  Instead the registry is
   split by hash slot: ``inflight-topics:{<tag of slot s>}`` is the set of
   topics of slot ``s`` with at least one in-flight message, where the tag
   is a fixed short string hashing to ``s`` (so the key lives in the same
   slot as those topics).  pop adds the topic and ack/nack/requeue remove it
   when its deadline index empties, inside the same scripts: exact, atomic.
   The slots that ever had such a set are listed in ``inflight-slots`` (no
   tag, any node); that set only grows (at most 16384 small integers) and is
   written *before* the first pop of each slot, so a crash or a concurrent
   monitor can never hide a topic.  Discovery = ``SMEMBERS inflight-slots``
   then one pipelined ``SMEMBERS`` per slot.  ``known_topics`` is one
   ``SCAN`` pass for ``queue|dead|deadlines|seq:{T}`` keys, bounded.
9. **Errors.**  Every Redis failure is ``rakit.errors.Unavailable`` (503),
   raised within ``op_timeout`` seconds (default 4) however the client is
   configured, its detail saying what Redis said: unreachable, timing out,
   a cluster without a serving primary for the slot, or refusing the node
   (protected mode, password, loading, replica, cannot persist...; see
   ``rakit.queue.redis_errors``).  Each outcome is reported to
   ``self.redis_state`` (``rakit.queue.redis_state``: what ``/health`` and
   ``/status`` show).

Key layout for topic ``T`` (``{T}`` is literal: braces included)::

    queue:{T}                 ZSET  message id -> push sequence   (ready; head = lowest)
    processing:{T}:{C}        LIST  message ids in flight for consumer C
    timestamps:{T}:{C}        HASH  message id -> deadline (epoch seconds)
    deadlines:{T}             ZSET  "C:message id" -> deadline     (expiry index)
    dead:{T}                  LIST  dead message ids, oldest first
    msg:{T}                   HASH  message id -> body bytes       (live messages)
    deliveries:{T}            HASH  message id -> delivery count
    order:{T}                 HASH  message id -> push sequence
    seq:{T}                   STRING  the topic's push sequence counter
    dedup:{T}                 ZSET  message id -> first push time  (dedup window)
    inflight-topics:{<slot>}  SET   topics of that slot with messages in flight
    inflight-slots            SET   slots that ever had an inflight-topics set

Recommended client settings (what ``connect`` does): ``socket_timeout=1``
and ``socket_connect_timeout=1`` (a dead Redis is noticed within a second),
``retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1)`` retrying only
``ConnectionError`` (one transparent reconnect after a Redis restart, but
no blind retry of a command that may have run: ``retry_on_timeout=False``),
``health_check_interval=30``, ``decode_responses=False`` (bodies are bytes;
required).  redis-py's own defaults (5 s timeouts, 10 retries with backoff)
could keep a caller waiting far longer than the 5 s the API allows.
"""

from __future__ import annotations

import asyncio
import binascii
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from rakit.queue.redis_errors import classify, log_unexpected, timed_out
from rakit.queue.redis_state import RedisState
from rakit.queue.store import (
    MAX_IN_FLIGHT,
    MESSAGE_ID,
    NAME,
    DeadLetter,
    Delivery,
    PushResult,
    RequeueResult,
    check_body,
    check_consumer,
    check_count,
    check_dedup_window,
    check_instant,
    check_message_id,
    check_offset,
    check_seconds,
    check_topic,
    too_many_in_flight,
)

__all__ = [
    "INFLIGHT_SLOTS_KEY",
    "MAX_IN_FLIGHT",
    "DeadLetter",
    "Delivery",
    "PushResult",
    "RedisQueueStore",
    "RequeueResult",
    "TopicKeys",
    "check_consumer",
    "check_message_id",
    "check_topic",
    "connect",
    "slot_of",
    "slot_tag",
]

# ---------------------------------------------------------------------------
# names and keys
# ---------------------------------------------------------------------------

HASH_SLOTS: Final = 16384
# The per-topic key families a topic leaves in Redis (``known_topics``): "<family>:{<topic>}".
_TOPIC_KEY_MATCH: Final = "*:{*}"
_TOPIC_KEY = re.compile(r"(?:queue|dead|deadlines|seq):\{([A-Za-z0-9_.\-]{1,128})\}", re.ASCII)
INFLIGHT_SLOTS_KEY: Final = "inflight-slots"


def slot_of(topic: str) -> int:
    """The Redis Cluster hash slot of every key of ``topic`` (CRC16 of the tag)."""
    return binascii.crc_hqx(topic.encode("ascii"), 0) % HASH_SLOTS


_SLOT_TAGS: list[str] = []


def _slot_tags() -> list[str]:
    """For each slot, the first decimal string ("0", "1", ...) that hashes to it.

    Built once per process (about 110,000 CRC16s, ~0.2 s); a fixed function,
    so every process names the same registry key for a slot.
    """
    if not _SLOT_TAGS:
        table: list[str | None] = [None] * HASH_SLOTS
        missing = HASH_SLOTS
        i = 0
        while missing:
            tag = str(i)
            slot = binascii.crc_hqx(tag.encode("ascii"), 0) % HASH_SLOTS
            if table[slot] is None:
                table[slot] = tag
                missing -= 1
            i += 1
        _SLOT_TAGS.extend(t for t in table if t is not None)
    return _SLOT_TAGS


def slot_tag(slot: int) -> str:
    """A short fixed string whose hash slot is ``slot``."""
    return _slot_tags()[slot]


@dataclass(frozen=True, slots=True)
class TopicKeys:
    """The Redis key names of one topic (see the module docstring)."""

    topic: str

    def __post_init__(self) -> None:
        check_topic(self.topic)

    @property
    def tag(self) -> str:
        return "{" + self.topic + "}"

    @property
    def queue(self) -> str:
        return f"queue:{self.tag}"

    @property
    def dead(self) -> str:
        return f"dead:{self.tag}"

    @property
    def bodies(self) -> str:
        return f"msg:{self.tag}"

    @property
    def deliveries(self) -> str:
        return f"deliveries:{self.tag}"

    @property
    def order(self) -> str:
        return f"order:{self.tag}"

    @property
    def seq(self) -> str:
        return f"seq:{self.tag}"

    @property
    def dedup(self) -> str:
        return f"dedup:{self.tag}"

    @property
    def deadlines(self) -> str:
        return f"deadlines:{self.tag}"

    @property
    def slot(self) -> int:
        return slot_of(self.topic)

    @property
    def inflight_topics(self) -> str:
        return inflight_topics_key(self.slot)

    def processing(self, consumer_id: str) -> str:
        return f"processing:{self.tag}:{check_consumer(consumer_id)}"

    def timestamps(self, consumer_id: str) -> str:
        return f"timestamps:{self.tag}:{check_consumer(consumer_id)}"

    def all_keys(self, consumer_ids: Iterable[str] = ()) -> list[str]:
        """Every key name of the topic (per-consumer ones for ``consumer_ids``)."""
        keys = [self.queue, self.dead, self.bodies, self.deliveries, self.order, self.seq, self.dedup, self.deadlines]
        for c in consumer_ids:
            keys += [self.processing(c), self.timestamps(c)]
        return keys


def inflight_topics_key(slot: int) -> str:
    return "inflight-topics:{" + slot_tag(slot) + "}"


# ---------------------------------------------------------------------------
# scripts
# ---------------------------------------------------------------------------

# KEYS: queue, msg, order, seq, dedup
# ARGV: message_id, body, now, window cutoff ("" = no window)
# -> 1 enqueued, 0 duplicate
PUSH = """
local id = ARGV[1]
if ARGV[4] ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[4])
  if redis.call('ZSCORE', KEYS[5], id) then return 0 end
end
if redis.call('HEXISTS', KEYS[2], id) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[2], id, ARGV[2])
redis.call('HSET', KEYS[3], id, seq)
redis.call('ZADD', KEYS[1], seq, id)
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[5], ARGV[3], id) end
return 1
"""

# KEYS: queue, processing:C, timestamps:C, deadlines, msg, deliveries, inflight-topics
# ARGV: consumer_id, deadline, topic, max in flight for C
# -> {id, body, delivery_count}, nil when nothing is ready, or -1 when C already
#    has the maximum in flight (nothing changed)
POP = """
if redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[4]) then return -1 end
while true do
  local head = redis.call('ZPOPMIN', KEYS[1])
  if #head == 0 then return false end
  local id = head[1]
  local body = redis.call('HGET', KEYS[5], id)
  if body then
    redis.call('RPUSH', KEYS[2], id)
    redis.call('HSET', KEYS[3], id, ARGV[2])
    redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1] .. ':' .. id)
    local count = redis.call('HINCRBY', KEYS[6], id, 1)
    redis.call('SADD', KEYS[7], ARGV[3])
    return {id, body, count}
  end
  redis.log(redis.LOG_WARNING, 'rakit: dropped a ready entry without a body: ' .. id)
end
"""

# KEYS: processing:C, timestamps:C, deadlines, msg, deliveries, order, inflight-topics
# ARGV: message_id, "C:message_id", topic
# -> 1 acked, 0 not in flight for C
ACK = """
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[2], id) == 0 then return 0 end
redis.call('LREM', KEYS[1], 1, id)
redis.call('HDEL', KEYS[2], id)
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], id)
redis.call('HDEL', KEYS[5], id)
redis.call('HDEL', KEYS[6], id)
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('SREM', KEYS[7], ARGV[3]) end
return 1
"""

# KEYS: processing:C, timestamps:C, deadlines, queue, dead, deliveries, order, inflight-topics
# ARGV: message_id, "C:message_id", topic, max_deliveries
# -> 1 back in the queue, 2 moved to dead letters, 0 not in flight for C
NACK = """
local id = ARGV[1]
if redis.call('HEXISTS', KEYS[2], id) == 0 then return 0 end
redis.call('LREM', KEYS[1], 1, id)
redis.call('HDEL', KEYS[2], id)
redis.call('ZREM', KEYS[3], ARGV[2])
local result = 1
local count = tonumber(redis.call('HGET', KEYS[6], id) or '0')
if count >= tonumber(ARGV[4]) then
  redis.call('RPUSH', KEYS[5], id)
  result = 2
else
  redis.call('ZADD', KEYS[4], redis.call('HGET', KEYS[7], id) or '0', id)
end
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('SREM', KEYS[8], ARGV[3]) end
return result
"""

# KEYS: timestamps:C, deadlines
# ARGV: message_id, "C:message_id", new deadline
# -> 1 extended, 0 not in flight for C
EXTEND = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return 1
"""

# KEYS: queue, deadlines, dead, deliveries, order, inflight-topics,
#       then processing:C, timestamps:C for each consumer named below
# ARGV: now, max_deliveries, topic, then triples
#       ("C:message_id", message_id, index in KEYS of processing:C)
# -> {requeued ids, dead ids}; a candidate acked, extended or requeued since
#    the caller read the index is skipped (its deadline is re-checked here).
REQUEUE = """
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local requeued, dead = {}, {}
for i = 4, #ARGV, 3 do
  local member, id, k = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local deadline = redis.call('ZSCORE', KEYS[2], member)
  if deadline and tonumber(deadline) <= now then
    redis.call('ZREM', KEYS[2], member)
    redis.call('LREM', KEYS[k], 1, id)
    redis.call('HDEL', KEYS[k + 1], id)
    local count = tonumber(redis.call('HGET', KEYS[4], id) or '0')
    if count >= max then
      redis.call('RPUSH', KEYS[3], id)
      dead[#dead + 1] = id
    else
      redis.call('ZADD', KEYS[1], redis.call('HGET', KEYS[5], id) or '0', id)
      requeued[#requeued + 1] = id
    end
  end
end
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[6], ARGV[3]) end
return {requeued, dead}
"""

# KEYS: dead, queue, deliveries, order, seq
# ARGV: limit
# -> how many dead letters went back to the tail of the queue
REDRIVE = """
local n = 0
local limit = tonumber(ARGV[1])
while n < limit do
  local id = redis.call('LPOP', KEYS[1])
  if not id then break end
  local seq = redis.call('INCR', KEYS[5])
  redis.call('HSET', KEYS[4], id, seq)
  redis.call('HDEL', KEYS[3], id)
  redis.call('ZADD', KEYS[2], seq, id)
  n = n + 1
end
return n
"""

# KEYS: queue, deadlines, dead -> {ready, in_flight, dead}
STATS = """
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('LLEN', KEYS[3])}
"""

# KEYS: dead, msg, deliveries
# ARGV: start, stop (LRANGE indexes)
# -> flat {id, body, count, id, body, count, ...}
DEAD_LETTERS = """
local ids = redis.call('LRANGE', KEYS[1], ARGV[1], ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
end
return out
"""

SCRIPTS: Final = {
    "push": PUSH,
    "pop": POP,
    "ack": ACK,
    "nack": NACK,
    "extend": EXTEND,
    "requeue": REQUEUE,
    "redrive": REDRIVE,
    "stats": STATS,
    "dead_letters": DEAD_LETTERS,
}

# ---------------------------------------------------------------------------
# errors and the client
# ---------------------------------------------------------------------------

#: Failures of a Redis call, all answered as Unavailable (``rakit.queue.redis_errors`` says
#: which reason): connection refused or reset, timeouts, refusals (DENIED, NOAUTH, LOADING,
#: READONLY, MISCONF...), cluster errors, and any other error reply.
REDIS_ERRORS: Final = (rex.RedisError, rex.RedisClusterException, OSError)
#: For each script that may write: whether its reply proves it did (Redis accepted a write, so a
#: write refusal is over: ``redis_state`` rule 2).  An ack of a message not in flight writes nothing,
#: and neither a replica nor a full Redis refuses it.
_WROTE: Final[dict[str, Callable[[Any], bool]]] = {
    "push": lambda r: r == 1,
    "pop": lambda r: r != -1,  # ZPOPMIN ran (nothing ready or a delivery)
    "ack": bool,
    "nack": bool,
    "extend": bool,
    "requeue": lambda r: bool(r[0] or r[1]),
    "redrive": lambda r: int(r) > 0,
}


def connect(
    url: str,
    *,
    cluster: bool = False,
    socket_timeout: float = 1.0,
    socket_connect_timeout: float = 1.0,
    retries: int = 1,
    max_connections: int | None = None,
    **kwargs: Any,
) -> Any:
    """A ``redis.asyncio.Redis`` (or, with ``cluster=True``, a ``RedisCluster``)
    configured for the queue: bounded timeouts, one reconnect, bytes replies.

    Worst case before a call gives up: ``(retries + 1) * socket_timeout`` plus
    a few ms of backoff (2 s with the defaults); the store's ``op_timeout``
    caps it anyway.  ``max_connections``: None keeps redis-py's unbounded pool
    for a single Redis; for a cluster it defaults to 1024 per node (redis-py's
    cluster pool raises ``MaxConnectionsError`` at once when full, which the
    store reports as Unavailable).
    """
    retry = Retry(ExponentialBackoff(cap=0.1, base=0.01), retries, supported_errors=(rex.ConnectionError,))
    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "retry": retry,
        "decode_responses": False,
        "health_check_interval": 30,
        **kwargs,
    }
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        # The cluster client's per-node pool (default 100) fails at once when
        # full instead of waiting: size it for the node's concurrency.
        options["max_connections"] = max_connections if max_connections is not None else 1024
        return RedisCluster.from_url(url, **options)
    options["retry_on_timeout"] = False
    if max_connections is not None:
        options["max_connections"] = max_connections
    return aioredis.Redis.from_url(url, **options)


def _decodes_responses(client: Any) -> bool:
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        return bool(pool.connection_kwargs.get("decode_responses", False))
    encoder = client.get_encoder() if hasattr(client, "get_encoder") else None
    return bool(getattr(encoder, "decode_responses", False))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _instant(value: float, what: str) -> str:
    return repr(check_instant(value, what))


# ---------------------------------------------------------------------------
# the store
# ---------------------------------------------------------------------------


class RedisQueueStore:
    """Topic queues in one Redis (or Redis Cluster), one atomic script per step.

    ``redis`` is a ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``
    built with ``decode_responses=False`` (see ``connect``); the caller owns
    and closes it.
    """

    def __init__(
        self,
        redis: Any,
        *,
        max_deliveries: int = 5,
        dedup_window: float = 300.0,
        clock: Callable[[], float] = time.time,
        op_timeout: float | None = 4.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        redis_state: RedisState | None = None,
    ) -> None:
        if _decodes_responses(redis):
            raise ValueError("the Redis client must be built with decode_responses=False")
        self.max_deliveries = check_count(max_deliveries, "max_deliveries")
        self.max_in_flight = check_count(max_in_flight, "max_in_flight")
        self.dedup_window = check_dedup_window(dedup_window)
        self.clock = clock
        self.op_timeout = op_timeout
        self._redis = redis
        #: What the latest calls found: does Redis serve this node (``/health``, ``/status``).
        self.redis_state = redis_state if redis_state is not None else RedisState()
        self._scripts = {name: redis.register_script(text) for name, text in SCRIPTS.items()}
        self._registered_slots: set[int] = set()
        self._slot_locks: dict[int, asyncio.Lock] = {}
        _slot_tags()  # build the slot table now, not inside the first pop

    @property
    def redis(self) -> Any:
        return self._redis

    async def _call(
        self, what: str, op: Callable[[], Any], timeout: float | None = None, wrote: Callable[[Any], bool] | None = None
    ) -> Any:
        """Run ``op()`` (a coroutine factory) within ``timeout`` (default ``op_timeout``), mapping
        every Redis failure to ``Unavailable`` (rule 9) and reporting the outcome to ``redis_state``
        (``wrote(result)``: the call proved that Redis accepts writes)."""
        limit = self.op_timeout if timeout is None else timeout
        try:
            if limit is None:
                result = await op()
            else:
                async with asyncio.timeout(limit):
                    result = await op()
        except TimeoutError as exc:  # builtin: our bound
            failure = timed_out(what, limit)
            self.redis_state.failed(failure)
            raise failure.error() from exc
        except REDIS_ERRORS as exc:
            failure = classify(what, exc)
            if failure.kind == "unexpected":
                log_unexpected(failure)
            self.redis_state.failed(failure)
            raise failure.error() from exc
        self.redis_state.served(write=wrote is not None and wrote(result))
        return result

    async def ping(self, timeout: float = 2.0) -> None:
        """PING Redis, bounded by ``timeout`` (and ``op_timeout``); ``Unavailable`` when it does not serve."""
        limit = timeout if self.op_timeout is None else min(timeout, self.op_timeout)
        await self._call("ping", lambda: self._redis.ping(), timeout=limit)

    async def _register_slot(self, slot: int) -> None:
        """``SADD inflight-slots slot`` once per process, before the slot's first pop (rule 8).

        Concurrent first pops of one slot wait for one ``SADD`` instead of each
        sending their own (a burst would otherwise pile onto the one node that
        holds ``inflight-slots``).
        """
        lock = self._slot_locks.setdefault(slot, asyncio.Lock())
        async with lock:
            if slot in self._registered_slots:
                return
            await self._call("pop", lambda: self._redis.sadd(INFLIGHT_SLOTS_KEY, slot), wrote=lambda _: True)
            self._registered_slots.add(slot)
            self._slot_locks.pop(slot, None)

    async def _script(self, name: str, what: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts[name]
        return await self._call(what, lambda: script(keys=keys, args=args), wrote=_WROTE.get(name))

    # -- writes ------------------------------------------------------------

    async def push(self, topic: str, message_id: str, body: bytes) -> PushResult:
        """Enqueue ``body`` at the tail of ``topic`` unless ``message_id`` is a duplicate (rule 6)."""
        k = TopicKeys(topic)
        check_message_id(message_id)
        check_body(body)
        now = self.clock()
        cutoff = _instant(now - self.dedup_window, "now") if self.dedup_window > 0 else ""
        added = await self._script(
            "push",
            "push",
            [k.queue, k.bodies, k.order, k.seq, k.dedup],
            [message_id, body, _instant(now, "now"), cutoff],
        )
        return PushResult(message_id, duplicate=not added)

    async def pop(self, topic: str, consumer_id: str, visibility_timeout: float) -> Delivery | None:
        """Move the head of ``topic`` to ``consumer_id``'s processing list; None if nothing is ready.

        ``TooManyInFlight`` (nothing changed) when the consumer already holds
        ``max_in_flight`` messages of the topic."""
        k = TopicKeys(topic)
        check_consumer(consumer_id)
        vt = check_seconds(visibility_timeout, "visibility_timeout")
        if k.slot not in self._registered_slots:
            await self._register_slot(k.slot)
        deadline = self.clock() + vt
        reply = await self._script(
            "pop",
            "pop",
            [
                k.queue,
                k.processing(consumer_id),
                k.timestamps(consumer_id),
                k.deadlines,
                k.bodies,
                k.deliveries,
                k.inflight_topics,
            ],
            [consumer_id, _instant(deadline, "deadline"), topic, self.max_in_flight],
        )
        if reply is None:
            return None
        if reply == -1:
            raise too_many_in_flight(consumer_id, topic, self.max_in_flight)
        message_id, body, count = reply
        return Delivery(_text(message_id), bytes(body), int(count), deadline)

    async def ack(self, topic: str, consumer_id: str, message_id: str) -> bool:
        """Forget a delivered message; False if it is not in flight for ``consumer_id``."""
        k = TopicKeys(topic)
        check_consumer(consumer_id)
        check_message_id(message_id)
        done = await self._script(
            "ack",
            "ack",
            [
                k.processing(consumer_id),
                k.timestamps(consumer_id),
                k.deadlines,
                k.bodies,
                k.deliveries,
                k.order,
                k.inflight_topics,
            ],
            [message_id, f"{consumer_id}:{message_id}", topic],
        )
        return bool(done)

    async def nack(self, topic: str, consumer_id: str, message_id: str) -> bool:
        """Give a message back at once: to its place at the head of the queue, or to
        the dead letters when its delivery count reached ``max_deliveries``.
        False if it is not in flight for ``consumer_id``."""
        k = TopicKeys(topic)
        check_consumer(consumer_id)
        check_message_id(message_id)
        done = await self._script(
            "nack",
            "nack",
            [
                k.processing(consumer_id),
                k.timestamps(consumer_id),
                k.deadlines,
                k.queue,
                k.dead,
                k.deliveries,
                k.order,
                k.inflight_topics,
            ],
            [message_id, f"{consumer_id}:{message_id}", topic, self.max_deliveries],
        )
        return bool(done)

    async def extend(self, topic: str, consumer_id: str, message_id: str, visibility_timeout: float) -> bool:
        """Set an in-flight message's deadline to now + ``visibility_timeout``; False if not in flight."""
        k = TopicKeys(topic)
        check_consumer(consumer_id)
        check_message_id(message_id)
        deadline = self.clock() + check_seconds(visibility_timeout, "visibility_timeout")
        done = await self._script(
            "extend",
            "extend",
            [k.timestamps(consumer_id), k.deadlines],
            [message_id, f"{consumer_id}:{message_id}", _instant(deadline, "deadline")],
        )
        return bool(done)

    async def requeue_expired(self, topic: str, now: float | None = None, limit: int = 100) -> RequeueResult:
        """Return up to ``limit`` messages whose deadline is ``<= now`` to the queue
        (their push-order place at the head), or to the dead letters once their
        delivery count reached ``max_deliveries``."""
        k = TopicKeys(topic)
        check_count(limit, "limit")
        at = _instant(self.clock() if now is None else now, "now")
        members = await self._call(
            "requeue", lambda: self._redis.zrangebyscore(k.deadlines, "-inf", at, start=0, num=limit)
        )
        if not members:
            return RequeueResult([], [])
        keys = [k.queue, k.deadlines, k.dead, k.deliveries, k.order, k.inflight_topics]
        consumer_index: dict[str, int] = {}
        args: list[Any] = [at, self.max_deliveries, topic]
        for raw in members:
            member = _text(raw)
            consumer_id, sep, message_id = member.partition(":")
            if not sep or NAME.fullmatch(consumer_id) is None or MESSAGE_ID.fullmatch(message_id) is None:
                raise RuntimeError(f"corrupt entry {member!r} in {k.deadlines}")
            if consumer_id not in consumer_index:
                consumer_index[consumer_id] = len(keys) + 1  # Lua indexes from 1
                keys += [k.processing(consumer_id), k.timestamps(consumer_id)]
            args += [member, message_id, consumer_index[consumer_id]]
        requeued, dead = await self._script("requeue", "requeue", keys, args)
        return RequeueResult([_text(i) for i in requeued], [_text(i) for i in dead])

    async def redrive(self, topic: str, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters (oldest first) to the tail of the queue,
        their delivery count reset; returns how many moved."""
        k = TopicKeys(topic)
        check_count(limit, "limit")
        moved = await self._script("redrive", "redrive", [k.dead, k.queue, k.deliveries, k.order, k.seq], [limit])
        return int(moved)

    # -- reads -------------------------------------------------------------

    async def stats(self, topic: str) -> dict[str, int]:
        """``{"ready", "in_flight", "dead"}`` counts of ``topic``, read atomically."""
        k = TopicKeys(topic)
        ready, in_flight, dead = await self._script("stats", "stats", [k.queue, k.deadlines, k.dead], [])
        return {"ready": int(ready), "in_flight": int(in_flight), "dead": int(dead)}

    async def dead_letters(self, topic: str, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters of ``topic``, oldest first, from ``offset``, at most ``limit``."""
        k = TopicKeys(topic)
        check_count(limit, "limit")
        check_offset(offset)
        flat = await self._script(
            "dead_letters", "dead_letters", [k.dead, k.bodies, k.deliveries], [offset, offset + limit - 1]
        )
        return [DeadLetter(_text(flat[i]), bytes(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]

    async def topics_with_inflight(self) -> set[str]:
        """Every topic with at least one message in flight (rule 8)."""
        slots = await self._call("discovery", lambda: self._redis.smembers(INFLIGHT_SLOTS_KEY))
        if not slots:
            return set()
        ordered = sorted(int(s) for s in slots)

        async def read_all() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for slot in ordered:
                pipe.smembers(inflight_topics_key(slot))
            return list(await pipe.execute())

        topics: set[str] = set()
        for members in await self._call("discovery", read_all):
            topics.update(_text(t) for t in members)
        return topics

    async def known_topics(self, limit: int, max_scans: int = 100, scan_count: int = 1000) -> tuple[list[str], bool]:
        """Topics that have keys in Redis (ready, in flight, dead, or ever pushed: ``seq:{T}``),
        sorted, at most ``limit``; and whether the list may be incomplete.

        One ``SCAN`` pass (``MATCH *:{*}``, ``COUNT scan_count``) over at most
        ``max_scans`` calls per Redis node: a huge keyspace gives a partial
        answer (flagged), never a long stall.  Read-only, for dashboards.
        """
        check_count(limit, "limit")

        async def scan() -> tuple[set[str], bool]:
            found: set[str] = set()
            if hasattr(self._redis, "get_primaries"):  # a RedisCluster: one cursor per primary
                seen = 0
                async for key in self._redis.scan_iter(match=_TOPIC_KEY_MATCH, count=scan_count):
                    seen += 1
                    if (m := _TOPIC_KEY.fullmatch(_text(key))) is not None:
                        found.add(m.group(1))
                    if len(found) > limit or seen >= max_scans * scan_count:
                        return found, True
                return found, False
            cursor, calls = 0, 0
            while True:
                cursor, keys = await self._redis.scan(cursor=cursor, match=_TOPIC_KEY_MATCH, count=scan_count)
                calls += 1
                for key in keys:
                    if (m := _TOPIC_KEY.fullmatch(_text(key))) is not None:
                        found.add(m.group(1))
                if int(cursor) == 0:
                    return found, False
                if len(found) > limit or calls >= max_scans:
                    return found, True

        found, partial = await self._call("topics", scan)
        topics = sorted(found)
        return topics[:limit], partial or len(topics) > limit

    async def stats_many(self, topics: list[str]) -> dict[str, dict[str, int]]:
        """``stats`` of several topics in one pipelined round trip (each topic's counts
        are read together, not atomically across topics)."""
        keys = [TopicKeys(t) for t in topics]
        if not keys:
            return {}

        async def read_all() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for k in keys:
                pipe.zcard(k.queue)
                pipe.zcard(k.deadlines)
                pipe.llen(k.dead)
            return list(await pipe.execute())

        flat = await self._call("stats", read_all)
        return {
            k.topic: {"ready": int(flat[3 * i]), "in_flight": int(flat[3 * i + 1]), "dead": int(flat[3 * i + 2])}
            for i, k in enumerate(keys)
        }

    async def next_deadline(self, topic: str) -> float | None:
        """The earliest visibility deadline in flight for ``topic`` (None if none)."""
        k = TopicKeys(topic)
        first = await self._call("next_deadline", lambda: self._redis.zrange(k.deadlines, 0, 0, withscores=True))
        return float(first[0][1]) if first else None
