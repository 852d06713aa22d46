"""The error tree (rakit.errors) is the one source of codes, statuses and Retry-After."""

from __future__ import annotations

from rakit import errors as E
from rakit.http import errors as http_errors
from rakit.http import openapi


def test_every_503_answers_with_retry_after() -> None:
    for cls in E.TREE:
        assert cls.retry_after == (cls.status == 503), cls


def test_codes_have_one_status() -> None:
    for cls in E.TREE:
        if cls is not E.Conflict and (cls.code, cls.status) not in E.ELECTION_CODES:
            assert E.CODES[cls.code] == cls.status, cls
    for code in E.CONFLICT_CODES:
        assert E.CODES[code] == 409
    for code, status in E.ELECTION_CODES:  # a code's second status: the contract's election refusal
        assert code in E.CODES and E.CODES[code] != status


def test_the_edge_and_the_document_read_the_tree() -> None:
    assert http_errors.HTTP_CODES is E.STATUS_CODES
    for status, code in E.STATUS_CODES.items():
        assert code in E.CODES, status
    for name, (cls, _, description) in openapi.ERRORS.items():
        assert cls in E.TREE, name
        doc = openapi.document()["components"]["responses"][name]
        assert doc["description"] == f"{cls.status}: {description}"
        assert ("Retry-After" in doc.get("headers", {})) == cls.retry_after


def test_an_error_body_is_the_api_shape() -> None:
    assert E.NotFound("gone").body() == {"error": "not_found", "detail": "gone"}
    assert E.Conflict("deadlock", cycle=["a"]).body() == {"error": "deadlock", "detail": "deadlock", "cycle": ["a"]}
