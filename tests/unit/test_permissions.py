"""The permission table built from endpoint declarations (rakit.security.permissions): one test per rule."""

from __future__ import annotations

import pytest

from rakit.security.permissions import Permissions
from rakit.security.tokens import AUTHENTICATED, OPEN, Need

TABLE = Permissions(
    [
        ("/health", OPEN, frozenset()),
        ("/lock/acquire", Need("locks", "write", "resource"), frozenset()),  # a body field
        ("/lock/status/{resource}", Need("locks", "read", "resource"), frozenset({"resource"})),
        ("/queue/pop/{topic}/{consumer_id}", Need("queue", "read", "topic"), frozenset()),
        ("/cluster/members", Need("admin"), frozenset()),
        ("/cluster/members", Need("admin"), frozenset()),  # GET and POST: the same ask
        ("/cluster/members/{id}", Need("admin"), frozenset()),
        ("/ping", AUTHENTICATED, frozenset()),
    ]
)


def test_rule_1_a_declared_path_answers_its_access_with_the_name_from_the_path() -> None:
    assert TABLE.need("/health") is OPEN and TABLE.need("/ping") is AUTHENTICATED
    assert TABLE.need("/lock/status/a:b") == Need("locks", "read", "a:b")
    assert TABLE.need("/lock/status/a/b") == Need("locks", "read", "a/b")  # a key takes the rest of the path
    assert TABLE.need("/queue/pop/emails/w-1") == Need("queue", "read", "emails")
    assert TABLE.need("/cluster/members/n4") == Need("admin")


def test_rule_1_a_name_in_the_body_is_left_to_the_handler() -> None:
    assert TABLE.need("/lock/acquire") == Need("locks", "write", None)


def test_rule_2_one_path_declared_with_two_asks_is_refused() -> None:
    with pytest.raises(ValueError, match="different access"):
        Permissions([("/x", OPEN, frozenset()), ("/x", Need("admin"), frozenset())])


def test_rule_3_an_undeclared_path_asks_for_a_valid_token() -> None:
    for path in ("/nowhere", "/lock/status/", "/queue/pop/emails", "/healthz", "/cluster/members/a/b"):
        assert TABLE.need(path) is AUTHENTICATED, path
