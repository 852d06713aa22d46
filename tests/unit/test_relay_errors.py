"""``rakit.relay`` rule 5: a peer's error answer is rebuilt as the ``rakit.errors`` exception it stands for."""

from __future__ import annotations

import msgspec
import pytest

from rakit.errors import CODES, Conflict, InvalidRequest, NoLeader, NotInFlight, Unavailable, error_body
from rakit.relay import Relayed, relayed_error

_json = msgspec.json.Encoder()


@pytest.mark.parametrize("code", sorted(CODES))
def test_rule_5_every_code_of_the_api_comes_back_as_its_class(code: str) -> None:
    body = error_body(code, f"why {code}", field="topic")
    error = relayed_error(Relayed(CODES[code], _json.encode(body), {}), "the peer n2")
    assert (error.code, error.status, error.body()) == (code, CODES[code], body)
    assert error.retry_after == (CODES[code] == 503)  # so the edge answers Retry-After as the peer did


def test_rule_5_the_class_is_the_one_raised() -> None:
    def rebuilt(body: dict[str, str], status: int) -> Exception:
        return relayed_error(Relayed(status, _json.encode(body), {}), "the peer n2")

    assert type(rebuilt(error_body("not_in_flight", "m"), 404)) is NotInFlight
    assert type(rebuilt(error_body("invalid_request", "m"), 422)) is InvalidRequest
    assert type(rebuilt(error_body("unavailable", "m"), 503)) is Unavailable
    assert type(rebuilt(error_body("deadlock", "m"), 409)) is Conflict
    no_leader = rebuilt(error_body("no_leader", "m"), 503)
    assert type(no_leader) is NoLeader and no_leader.leader_id is None


@pytest.mark.parametrize(
    "status, body",
    [
        (502, b"<html>bad gateway</html>"),
        (500, b""),
        (500, b'["error", "internal"]'),
        (500, b'{"error": "from-a-newer-node", "detail": "?"}'),
        (422, b'{"error": "invalid_request", "detail": 3}'),
    ],
)
def test_rule_5_an_answer_that_is_no_error_of_the_api_is_unavailable(status: int, body: bytes) -> None:
    error = relayed_error(Relayed(status, body, {}), "the peer n2")
    assert type(error) is Unavailable
    assert str(error) == f"the peer n2 answered HTTP {status} with no error of the API; outcome unknown"
