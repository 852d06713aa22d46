"""A Redis that refuses the node is a 503 naming what Redis said, never a 500.

The replies are parsed by redis-py's own parser (``BaseParser.parse_error``),
so the exceptions are exactly those a real Redis produces; the store runs
over a fake client that raises them.  The real servers are in
``tests/integration/test_redis_refusals_cluster.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
from redis import exceptions as rex
from redis._parsers.base import BaseParser
from starlette.applications import Starlette
from starlette.testclient import TestClient

from rakit.errors import Unavailable
from rakit.http.endpoints import routes
from rakit.http.errors import HANDLERS
from rakit.metrics import NodeMetrics
from rakit.queue.redis_errors import MAX_SAID, classify, redis_said, reply_code
from rakit.queue.redis_state import RedisState
from rakit.queue.redis_store import SCRIPTS, RedisQueueStore
from rakit.queue.ring import ConsistentHashRing
from rakit.queue.service import QueueService

DENIED = (
    "DENIED Redis is running in protected mode because protected mode is enabled and no password is set "
    "for the default user. In this mode connections are only accepted from the loopback interface. "
    + "If you want to connect from external computers to Redis you may adopt one of the following. "
    * 8
)
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
READONLY = "READONLY You can't write against a read only replica."
WRITE_SCRIPTS = {"push", "pop", "ack", "nack", "extend", "requeue", "redrive"}


def reply(raw: str) -> rex.RedisError:
    """The exception redis-py raises for the error reply ``-<raw>``."""
    exc = BaseParser.parse_error(raw)
    assert isinstance(exc, rex.RedisError)
    return exc


# -- classification ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, code, cls",
    [
        (DENIED, "DENIED", rex.ResponseError),
        (NOAUTH, "NOAUTH", rex.AuthenticationError),
        (WRONGPASS, "WRONGPASS", rex.AuthenticationError),
        ("NOPERM User default has no permissions to run the 'evalsha' command", "NOPERM", rex.NoPermissionError),
        ("LOADING Redis is loading the dataset in memory", "LOADING", rex.BusyLoadingError),
        (READONLY, "READONLY", rex.ReadOnlyError),
        (
            "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
            "MISCONF",
            rex.ResponseError,
        ),
        ("OOM command not allowed when used memory > 'maxmemory'.", "OOM", rex.OutOfMemoryError),
        ("BUSY Redis is busy running a script.", "BUSY", rex.ResponseError),
        (
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "MASTERDOWN",
            rex.MasterDownError,
        ),
    ],
)
def test_every_refusal_is_unavailable_with_what_redis_said(raw: str, code: str, cls: type) -> None:
    exc = reply(raw)
    assert isinstance(exc, cls) and reply_code(exc) == code
    failure = classify("push", exc)
    assert failure.kind == "refused" and failure.code == code
    error = failure.error()
    assert isinstance(error, Unavailable) and error.status == 503 and error.code == "unavailable"
    assert error.detail.startswith(f"Redis refused the node: {code} ")
    assert raw.split(".")[0][: MAX_SAID - 2] in error.detail
    assert len(failure.said) <= MAX_SAID and failure.hint


def test_auth_replies_of_an_err_code_are_refusals_too() -> None:
    for raw in ("ERR invalid password", "ERR wrong number of arguments for 'auth' command"):
        exc = reply(raw)
        assert isinstance(exc, rex.AuthenticationError | rex.AuthenticationWrongNumberOfArgsError)
        failure = classify("push", exc)
        assert failure.kind == "refused" and "Redis refused the node" in failure.detail, failure


def test_exceptions_without_a_status_code_are_classified_by_class() -> None:
    assert (
        classify("pop", rex.AuthenticationError("Authentication required.")).detail
        == "Redis refused the node: NOAUTH Authentication required."
    )
    assert classify("pop", rex.BusyLoadingError("Redis is loading")).code == "LOADING"
    assert classify("pop", rex.ReadOnlyError("You can't write")).writes_only


def test_protected_mode_text_is_one_bounded_line() -> None:
    said = redis_said(reply(DENIED))
    assert said.startswith("DENIED Redis is running in protected mode") and said.endswith("…")
    assert len(said) == MAX_SAID and "\n" not in said
    assert redis_said(rex.ResponseError("ERR first line\nsecond line")) == "ERR first line"


@pytest.mark.parametrize(
    "exc, name",
    [
        (rex.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."), "ConnectionError"),
        (rex.TimeoutError("Timeout reading from socket"), "TimeoutError"),
        (ConnectionResetError(104, "Connection reset by peer"), "ConnectionResetError"),
        (rex.MaxConnectionsError("Too many connections"), "MaxConnectionsError"),
    ],
)
def test_no_reply_is_unreachable(exc: Exception, name: str) -> None:
    failure = classify("push", exc)
    assert failure.kind == "unreachable" and failure.detail.startswith(f"Redis unavailable during push: {name}: ")


def test_any_other_error_reply_is_a_503_naming_it_not_an_internal_error() -> None:
    failure = classify("push", reply("WRONGTYPE Operation against a key holding the wrong kind of value"))
    assert failure.kind == "unexpected"
    assert (
        failure.detail == "Redis could not serve push: WRONGTYPE Operation against a key holding the wrong kind "
        "of value"
    )
    assert failure.error().status == 503
    script = classify("pop", reply("ERR Error running script (call to f_1234): @user_script:3: oops"))
    assert script.kind == "unexpected" and script.detail.startswith("Redis could not serve pop: ERR Error running")


def test_a_client_side_data_error_is_no_outage() -> None:
    failure = classify("push", rex.DataError("Invalid input of type: 'dict'."))
    assert failure.kind == "unexpected" and failure.detail.startswith("Redis could not serve push: DataError: ")


def test_a_flapping_redis_is_warned_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rakit.queue")
    clock = Clock()
    state = RedisState(clock=clock, quiet=60.0)
    down = classify("push", rex.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."))
    for _ in range(5):  # down and up every 10 s
        state.failed(down)
        state.failed(down)
        state.served(write=False)
        clock.now += 10
    assert len(queue_warnings(caplog)) == 2  # the first outage and its end; the others at info level
    clock.now += 60
    state.failed(down)
    assert len(queue_warnings(caplog)) == 3 and "Connection refused" in queue_warnings(caplog)[-1]


# -- the store over a fake Redis ---------------------------------------------------------


class FakeRedis:
    """Answers the store's scripts and commands, or raises ``fail`` (``writes_only``: for write scripts only)."""

    def __init__(self) -> None:
        self.fail: BaseException | None = None
        self.writes_only = False
        self.hang = False
        self.calls = 0

    async def _answer(self, write: bool, value: Any) -> Any:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(30)
        if self.fail is not None and (write or not self.writes_only):
            raise self.fail
        return value

    def register_script(self, text: str) -> Any:
        name = next(n for n, t in SCRIPTS.items() if t == text)
        answers = {
            "push": 1,
            "pop": None,
            "ack": 1,
            "nack": 1,
            "extend": 1,
            "requeue": [[], []],
            "redrive": 0,
            "stats": [0, 0, 0],
            "dead_letters": [],
        }

        async def run(keys: list[str], args: list[Any]) -> Any:
            return await self._answer(name in WRITE_SCRIPTS, answers[name])

        return run

    async def ping(self) -> bool:
        return await self._answer(False, True)  # type: ignore[no-any-return]

    async def sadd(self, key: str, *members: Any) -> int:
        return await self._answer(True, 1)  # type: ignore[no-any-return]

    async def smembers(self, key: str) -> set[bytes]:
        return await self._answer(False, set())  # type: ignore[no-any-return]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def queue_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("rakit.queue") and r.levelno >= logging.WARNING]


async def test_a_refusing_redis_is_unavailable_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rakit.queue")
    fake = FakeRedis()
    fake.fail = reply(DENIED)
    store = RedisQueueStore(fake)
    assert store.redis_state.view() == {"available": None, "detail": None, "since": None}
    for _ in range(5):
        with pytest.raises(Unavailable) as caught:
            await store.push("t", "m1", b"1")
        assert caught.value.status == 503
        assert caught.value.detail.startswith("Redis refused the node: DENIED Redis is running in protected mode")
        with pytest.raises(Unavailable, match="DENIED"):
            await store.topics_with_inflight()  # the monitor's read
    state = store.redis_state.view()
    assert state["available"] is False and state["detail"].startswith("Redis refused the node: DENIED")
    assert store.redis_state.view(detail=False) == {"available": False}
    warnings = queue_warnings(caplog)
    assert len(warnings) == 1 and "DENIED" in warnings[0] and "protected mode" in warnings[0], warnings

    fake.fail = None  # the operator fixed Redis
    assert (await store.push("t", "m1", b"1")).duplicate is False
    assert store.redis_state.view()["available"] is True and store.redis_state.detail is None
    warnings = queue_warnings(caplog)
    assert len(warnings) == 2 and "serves this node again" in warnings[1]


async def test_a_write_refusal_holds_against_reads_until_a_write_succeeds_or_time_passes() -> None:
    clock = Clock()
    fake = FakeRedis()
    fake.fail, fake.writes_only = reply(READONLY), True
    store = RedisQueueStore(fake, redis_state=RedisState(clock=clock, write_hold=30.0))
    await store.ping()
    assert store.redis_state.available is True  # a replica answers PING
    with pytest.raises(Unavailable, match="Redis refused the node: READONLY"):
        await store.push("t", "m1", b"1")
    assert await store.stats("t") == {"ready": 0, "in_flight": 0, "dead": 0}  # reads work ...
    assert store.redis_state.available is False  # ... and do not clear the refusal
    clock.now += 31
    await store.topics_with_inflight()  # no write refused for 30 s: a read clears it
    assert store.redis_state.available is True
    with pytest.raises(Unavailable, match="READONLY"):
        await store.pop("t", "c", 30)
    assert store.redis_state.available is False
    fake.fail = None
    assert await store.pop("t", "c", 30) is None  # a write succeeded: available at once
    assert store.redis_state.available is True


async def test_an_odd_reply_is_a_503_but_says_nothing_about_redis(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeRedis()
    store = RedisQueueStore(fake)
    await store.ping()
    fake.fail = reply("WRONGTYPE Operation against a key holding the wrong kind of value")
    for _ in range(3):
        with pytest.raises(Unavailable, match="Redis could not serve push: WRONGTYPE"):
            await store.push("t", "m1", b"1")
    assert store.redis_state.available is True
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "WRONGTYPE" in r.getMessage()]
    assert len(errors) <= 1  # once per process and code (another test may have logged it already)


async def test_the_start_probe_is_bounded_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rakit.queue")
    fake = FakeRedis()
    fake.hang = True
    service = make_service(RedisQueueStore(fake))
    started = time.monotonic()
    assert await service.probe_redis(timeout=0.2) is False
    assert time.monotonic() - started < 1.0
    assert service.redis_state.view()["detail"] == "Redis did not answer ping within 0.2 s"
    fake.hang, fake.fail = False, reply(NOAUTH)
    with pytest.raises(Unavailable):
        await service.monitor_once()  # the monitor keeps failing: no further warning
    warnings = queue_warnings(caplog)
    assert len(warnings) == 1 and "did not answer ping" in warnings[0], warnings
    fake.fail = None
    assert await service.probe_redis() is True and service.redis_state.available is True


# -- over HTTP --------------------------------------------------------------------------


def make_service(store: RedisQueueStore) -> QueueService:
    return QueueService(
        "a", {"a": "http://127.0.0.1:1"}, ConsistentHashRing(["a"]), store, session=None, metrics=NodeMetrics("a")
    )  # type: ignore[arg-type]


@pytest.fixture
def node() -> tuple[TestClient, FakeRedis]:
    fake = FakeRedis()
    service = make_service(RedisQueueStore(fake))
    app = Starlette(routes=routes(), exception_handlers=HANDLERS)  # type: ignore[arg-type]
    app.state.runtime = SimpleNamespace(
        node_id="a", queue=service, driver=SimpleNamespace(status=lambda: {"node_id": "a", "role": "leader"})
    )
    return TestClient(app), fake


@pytest.mark.parametrize(
    "raw, code",
    [
        (NOAUTH, "NOAUTH"),
        (WRONGPASS, "WRONGPASS"),
        (DENIED, "DENIED"),
        ("LOADING Redis is loading the dataset in memory", "LOADING"),
        ("MISCONF Redis is configured to save RDB snapshots", "MISCONF"),
    ],
)
def test_queue_calls_answer_503_naming_the_refusal(node: tuple[TestClient, FakeRedis], raw: str, code: str) -> None:
    client, fake = node
    assert client.get("/health").json()["queue"] == {"available": None}
    fake.fail = reply(raw)
    calls = [
        ("POST", "/queue/push", {"topic": "t", "message": {"n": 1}}),
        ("GET", "/queue/pop/t/c", None),
        ("POST", "/queue/ack", {"topic": "t", "consumer_id": "c", "message_id": "m1"}),
        ("GET", "/queue/stats/t", None),
        ("GET", "/queue/dead/t", None),
        ("POST", "/queue/redrive", {"topic": "t"}),
    ]
    for method, path, body in calls:
        resp = client.request(method, path, json=body)
        assert resp.status_code == 503, (path, resp.text)
        answer = resp.json()
        assert answer["error"] == "unavailable" and answer["detail"].startswith(f"Redis refused the node: {code}")
        assert resp.headers["retry-after"] == "1"
    health = client.get("/health")
    assert health.status_code == 200 and health.json() == {
        "status": "ok",
        "node_id": "a",
        "queue": {"available": False},
    }
    status = client.get("/status").json()
    assert status["role"] == "leader" and status["queue"]["available"] is False
    assert status["queue"]["detail"].startswith(f"Redis refused the node: {code}")
    assert isinstance(status["queue"]["since"], float)

    fake.fail = None
    assert client.post("/queue/push", json={"topic": "t", "message": 1}).status_code == 200
    assert client.get("/health").json()["queue"] == {"available": True}
    assert client.get("/status").json()["queue"]["detail"] is None
