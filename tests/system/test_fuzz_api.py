"""Schemathesis against a running 1-node cluster's ``/openapi.json``.

Every documented operation (but the msgpack node-to-node ones, fuzzed by
``test_fuzz_internal.py``; WebSockets are not in the document) gets a few
schema-valid and a few schema-violating requests, generated deterministically.
Every answer must be documented and match the document (status code, content
type, body schema), none may be a 5xx, every 4xx must have the API's error
shape ``{"error": str, "detail": str}``, and invalid input must be refused.

Bounded: ``EXAMPLES`` per operation and mode, and the waits a request may ask
for (``timeout``, ``wait``) are cut to half a second: about 1,400 requests,
30-60 s.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable

from httpcall import get, retry_until_ok

schemathesis = pytest.importorskip("schemathesis")

from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.integration

EXAMPLES = 20
MSGPACK_PATHS = ["/append_entries", "/request_vote", "/install_snapshot", "/cache/internal/batch"]
WAIT_FIELDS = {"timeout", "wait"}  # seconds a request may legitimately be held
MAX_WAIT = 0.5
# Long polls whose wait parameter defaults to 30 s when absent (rakit.http.endpoints).
LONG_DEFAULT_WAITS = {"/lock/watch/{resource}": ("timeout",), "/election/observe/{name}": ("timeout",)}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def long_waits(case: Any) -> bool:
    """Whether the case asks for a wait over MAX_WAIT (query strings and JSON bodies)."""
    for params in (case.query, case.body):
        if not isinstance(params, dict):
            continue
        for name in WAIT_FIELDS & params.keys():
            try:
                if not isinstance(params[name], bool) and float(params[name]) > MAX_WAIT:
                    return True
            except (TypeError, ValueError, OverflowError):
                continue
    return False


def short_waits(case: Any) -> None:
    """Cut any valid wait the case asks for to MAX_WAIT (query strings and JSON bodies).

    Positive cases only: in a negative case the long wait may be the very thing made invalid
    (``wait: 21`` on a pop, whose maximum is 20), and cutting it would make the request valid."""
    if case.method.upper() == "GET" and "timeout" in LONG_DEFAULT_WAITS.get(case.path, ()):
        # An absent long-poll timeout means the documented default (30 s): as long as a case's read timeout.
        if "timeout" not in (case.query or {}):
            case.query = {**(case.query or {}), "timeout": MAX_WAIT}
    for params in (case.query, case.body):
        if not isinstance(params, dict):
            continue
        for name in WAIT_FIELDS & params.keys():
            value = params[name]
            try:
                seconds = float(value)
            except (TypeError, ValueError, OverflowError):
                continue
            if not isinstance(value, bool) and MAX_WAIT < seconds <= 300:
                params[name] = MAX_WAIT if not isinstance(value, str) else str(MAX_WAIT)


def check_error_shape(response: Any, case: Any) -> None:
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("detail"), str), (
            f"{case.method} {case.formatted_path}: {response.status_code} {body!r}"
        )


def fuzz(operation: Any, mode: GenerationMode, url: str, calls: dict[str, int]) -> None:
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if case.path == "/kv/watch" and (case.query or {}).get("format", "sse") == "sse":
            # The SSE form never ends (pings keep it alive): the fuzz reads the long-poll form. Both
            # "sse" and absent are valid, so a negative case stays as invalid as it was.
            case.query = {**(case.query or {}), "format": "json"}
        if mode is GenerationMode.NEGATIVE:
            assume(not long_waits(case))  # invalid, or held for up to 300 s: neither is worth the wait
        else:
            short_waits(case)
        response = case.call(base_url=url, timeout=30)
        calls[operation.label] = calls.get(operation.label, 0) + 1
        case.validate_response(response, checks=checks)
        check_error_shape(response, case)

    run()


def test_every_operation_conforms_to_the_document(cluster_factory: Any) -> None:
    cluster = cluster_factory(1, cluster_secret=False)  # no secret: the JSON internal endpoints answer too
    url = cluster.nodes["node1"].url
    cluster.wait_for_leader(20)
    # The cache serves a few seconds after start (write rounds from before it may still run).
    assert retry_until_ok("POST", url + "/cache/set", {"key": "warm", "value": 1}, timeout=20)[0] == 200
    schema = schemathesis.openapi.from_url(url + "/openapi.json").exclude(path=MSGPACK_PATHS)
    # This node runs without --auth-tokens: the documented bearer token is not asked for.
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30, [op.label for op in operations]
    # Membership changes go last: a change of the member set empties the cache and mutes it for
    # a few seconds (and a learner that never starts keeps a 2-member cache from serving).
    operations.sort(key=lambda op: op.path.startswith("/cluster/members"))
    started = time.monotonic()
    calls: dict[str, int] = {}

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, url, calls)
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                assert mode is GenerationMode.NEGATIVE, operation.label

    elapsed = time.monotonic() - started
    assert get(url + "/health")[0] == 200 and cluster.nodes["node1"].alive
    print(f"\n{sum(calls.values())} requests over {len(operations)} operations in {elapsed:.1f} s")
