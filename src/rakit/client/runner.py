"""Running a ``Call`` against the cluster: node choice, failover, retries, timeouts.

Both runners follow one policy (``RetryPolicy``), with tenacity doing the
retrying:

- a call goes to the node that last answered well; a connection error, a
  timeout or a ``503`` (``no_leader``, ``unavailable``) moves it to the next
  node and retries, with exponential backoff and jitter, at most
  ``attempts`` times and never past ``deadline`` seconds;
- any other answer is final: 2xx is parsed, an error code raises its
  exception (``rakit.client.errors``);
- every request has a timeout: ``timeout`` plus the time the server may
  legitimately hold it (a waiting acquire, a long poll).

Retries are safe because every operation is idempotent or made so:
acquire and renew are idempotent per client id, a push carries a message id
(the queue deduplicates), and a release or ack whose first answer was lost
may find ``not_holder`` / ``not_in_flight`` on the retry: that counts as done.
A call that is not (``Call.idempotent`` False: a KV ``incr``, a conditional
put or delete, a txn) is retried only after a failure that proves it was not
applied: no connection was made, or ``503 no_leader`` (nothing was proposed).
After any other failure (a timeout, a dropped connection, ``503
unavailable``: a proposal dropped by a leader that stepped down may still
commit) it raises ``OutcomeUnknown``.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias

import httpx
import tenacity

from rakit.client.calls import Call
from rakit.client.errors import (
    ConnectionFailed,
    NoLeader,
    OutcomeUnknown,
    RakitError,
    ServerError,
    Unavailable,
    error_from_answer,
)
from rakit.security.internal import OPERATOR_CALLER, InternalAuth

__all__ = ["RETRYABLE", "AsyncRunner", "RetryPolicy", "SyncRunner", "Verify", "ssl_verify"]

#: How the client checks the nodes' HTTPS certificates: True (the default CAs:
#: certifi's, or ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR``), False (no check: for
#: tests only), a CA file or folder (e.g. the cluster's ``--tls-ca``), or an
#: ``ssl.SSLContext`` (e.g. with ``load_cert_chain`` for a client certificate).
Verify: TypeAlias = bool | str | os.PathLike[str] | ssl.SSLContext

RETRYABLE = (ConnectionFailed, NoLeader, Unavailable)
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)  # no connection, so no request reached the node


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    timeout: float = 5.0  # per request, on top of the time the server may hold it
    attempts: int = 6
    deadline: float = 15.0  # all attempts of one call
    backoff_initial: float = 0.05
    backoff_max: float = 1.0

    def within(self, budget: float | None) -> RetryPolicy:
        """This policy, its attempts and each request's timeout held to ``budget`` seconds (None: as is)."""
        if budget is None:
            return self
        budget = max(0.01, budget)
        return replace(self, timeout=min(self.timeout, budget), deadline=min(self.deadline, budget))

    def tenacity_kwargs(self) -> dict[str, Any]:
        return {
            "stop": tenacity.stop_after_attempt(self.attempts) | tenacity.stop_after_delay(self.deadline),
            "wait": (
                tenacity.wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)
                + tenacity.wait_random(0, self.backoff_initial)
            ),
            "retry": tenacity.retry_if_exception_type(RETRYABLE),
            "reraise": True,
        }


class _Nodes:
    """The node URLs, starting with the one that last answered well."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.current = 0

    def pick(self) -> str:
        return self.urls[self.current % len(self.urls)]

    def failed(self, url: str) -> None:
        if self.pick() == url:
            self.current = (self.current + 1) % len(self.urls)


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return response.text


def _outcome(call: Call, response: httpx.Response, attempt: int, node: str) -> Any:
    status = response.status_code
    body = _decode(response)
    if call.absent is not None and status == call.absent[0]:
        code = call.absent[1]
        if code is None or (isinstance(body, dict) and body.get("error") == code):
            return None
    if 200 <= status < 300:
        if body is None:
            raise ServerError(f"HTTP {status} with no body", status=status, node=node)
        return call.parse(body)
    error = error_from_answer(status, body, node)
    if attempt > 1 and call.retry_success is not None and error.error == call.retry_success:
        return call.retry_result
    raise error


def ssl_verify(verify: Verify) -> bool | ssl.SSLContext:
    """``verify`` in the form httpx takes (a path becomes a context trusting that CA)."""
    if isinstance(verify, (bool, ssl.SSLContext)):
        return verify
    path = Path(os.fspath(verify))
    if path.is_dir():
        return ssl.create_default_context(capath=str(path))
    if not path.is_file():
        raise ValueError(f"verify={os.fspath(verify)!r}: no such CA file or folder")
    return ssl.create_default_context(cafile=str(path))


def _timeout(policy: RetryPolicy, call: Call) -> httpx.Timeout:
    return httpx.Timeout(policy.timeout + call.wait, connect=min(policy.timeout, 2.0))


def _headers(token: str | None) -> dict[str, str]:
    """Headers of every request: the user agent and, with an API token, ``Authorization: Bearer``."""
    headers = {"user-agent": "rakit-client"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


class _Signer:
    """Signs operator calls (``Call.signed``) with the cluster secret, for the node each is sent to.

    The signature names its callee, so the signer learns each node's id once
    (``GET /health``) and remembers it per URL.
    """

    def __init__(self, secret: str | None, caller: str = OPERATOR_CALLER) -> None:
        self.secret = secret
        self.auth = InternalAuth(secret, caller) if secret else None
        self.node_ids: dict[str, str] = {}

    def as_caller(self, caller: str) -> _Signer:
        """This signer naming ``caller`` (a joining node signs as itself: ``rakit.server.join``)."""
        signer = _Signer(self.secret, caller)
        signer.node_ids = self.node_ids
        return signer

    def needs_id(self, call: Call, url: str) -> bool:
        return call.signed and self.auth is not None and url not in self.node_ids

    def learn(self, url: str, health: httpx.Response) -> None:
        try:
            node_id = health.json()["node_id"]
        except (ValueError, KeyError, TypeError):
            raise ConnectionFailed(f"{url}/health did not name its node", node=url) from None
        self.node_ids[url] = str(node_id)

    def request(self, call: Call, url: str) -> dict[str, Any]:
        """``httpx`` request arguments for ``call`` to ``url`` (signed when it is an operator call)."""
        if not call.signed:
            return {"json": call.json, "params": call.params}
        if self.auth is None:
            raise ValueError(
                "membership changes and leader transfer need the cluster secret: pass "
                "cluster_secret=... (or set CLUSTER_SECRET / CLUSTER_SECRET_FILE)"
            )
        body = json.dumps(call.json).encode() if call.json is not None else b""
        headers = self.auth.headers(call.method, call.path, body, dst=self.node_ids[url])
        headers["content-type"] = "application/json"
        return {"content": body, "headers": headers}


def _answer(
    nodes: _Nodes,
    call: Call,
    url: str,
    attempt: int,
    response: httpx.Response | None,
    error: httpx.TransportError | None,
) -> Any:
    """One attempt's outcome, for both runners: a node that failed or answered 503 is rotated away."""
    if error is not None:
        nodes.failed(url)
        if not call.idempotent and not isinstance(error, _NOT_SENT):
            raise OutcomeUnknown(f"{type(error).__name__}: {error}", node=url) from None
        raise ConnectionFailed(f"{type(error).__name__}: {error}", node=url) from None
    assert response is not None
    try:
        return _outcome(call, response, attempt, url)
    except RakitError as exc:
        if isinstance(exc, RETRYABLE):
            nodes.failed(url)
            if not call.idempotent and not isinstance(exc, NoLeader):
                raise OutcomeUnknown(str(exc), status=exc.status, body=exc.body, node=url) from exc
        raise


class SyncRunner:
    def __init__(
        self,
        urls: list[str],
        policy: RetryPolicy,
        verify: Verify = True,
        token: str | None = None,
        cluster_secret: str | None = None,
    ) -> None:
        self.nodes = _Nodes(urls)
        self.policy = policy
        self.http = httpx.Client(headers=_headers(token), verify=ssl_verify(verify))
        self.signer = _Signer(cluster_secret)

    def run(self, call: Call, node: str | None = None, single: bool = False, budget: float | None = None) -> Any:
        """Run ``call`` (on ``node`` only, when given: no failover; ``single``: one attempt; ``budget``:
        seconds all attempts may take, e.g. what is left of a lease being renewed)."""
        attempt = 0
        policy = self.policy.within(budget)

        def once() -> Any:
            nonlocal attempt
            attempt += 1
            url = node or self.nodes.pick()
            try:
                if self.signer.needs_id(call, url):
                    self.signer.learn(url, self.http.get(url + "/health", timeout=_timeout(policy, call)))
                response = self.http.request(
                    call.method, url + call.path, **self.signer.request(call, url), timeout=_timeout(policy, call)
                )
            except httpx.TransportError as exc:
                return _answer(self.nodes, call, url, attempt, None, exc)
            return _answer(self.nodes, call, url, attempt, response, None)

        if single:
            return once()
        for try_ in tenacity.Retrying(**policy.tenacity_kwargs()):
            with try_:
                return once()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.http.close()


class AsyncRunner:
    def __init__(
        self,
        urls: list[str],
        policy: RetryPolicy,
        verify: Verify = True,
        token: str | None = None,
        cluster_secret: str | None = None,
    ) -> None:
        self.nodes = _Nodes(urls)
        self.policy = policy
        self.http = httpx.AsyncClient(headers=_headers(token), verify=ssl_verify(verify))
        self.signer = _Signer(cluster_secret)

    async def run(self, call: Call, node: str | None = None, single: bool = False, budget: float | None = None) -> Any:
        """Run ``call`` (on ``node`` only, when given: no failover; ``single``: one attempt; ``budget``:
        seconds all attempts may take, e.g. what is left of a lease being renewed)."""
        attempt = 0
        policy = self.policy.within(budget)

        async def once() -> Any:
            nonlocal attempt
            attempt += 1
            url = node or self.nodes.pick()
            try:
                if self.signer.needs_id(call, url):
                    self.signer.learn(url, await self.http.get(url + "/health", timeout=_timeout(policy, call)))
                response = await self.http.request(
                    call.method, url + call.path, **self.signer.request(call, url), timeout=_timeout(policy, call)
                )
            except httpx.TransportError as exc:
                return _answer(self.nodes, call, url, attempt, None, exc)
            return _answer(self.nodes, call, url, attempt, response, None)

        if single:
            return await once()
        async for try_ in tenacity.AsyncRetrying(**policy.tenacity_kwargs()):
            with try_:
                return await once()
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.http.aclose()
