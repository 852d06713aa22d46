"""The driver's address book (``rakit.node.addresses``): one test per rule."""

from __future__ import annotations

from typing import Any

from rakit.node.addresses import AddressBook
from rakit.raft.messages import ENTRY_CONF, ENTRY_NORMAL, ConfChange, ConfEntry, ConfState, Entry, encode_conf_entry
from rakit.statemachines.members import MembersMachine

CONF = ConfState(("a", "b"), ("d",))


def add(index: int, node: str, url: str) -> Entry:
    change = ConfChange("add_learner", node, url)
    return Entry(1, index, ENTRY_CONF, encode_conf_entry(ConfEntry(change, CONF)))


def remove(index: int, node: str) -> Entry:
    return Entry(1, index, ENTRY_CONF, encode_conf_entry(ConfEntry(ConfChange("remove", node), CONF)))


def test_rule_1_initial_peers_then_the_replicated_book_then_the_log() -> None:
    members = MembersMachine()
    members.addresses = {"b": "http://b:2", "c": "http://c:1"}
    book = AddressBook({"a": "http://a:1", "b": "http://b:1"}, members, [add(5, "c", "http://c:2")])
    assert book.urls == {"a": "http://a:1", "b": "http://b:2", "c": "http://c:2"}


def test_rule_2_entries_and_snapshots_add_urls_and_a_removal_keeps_one() -> None:
    members = MembersMachine()
    book = AddressBook({"a": "http://a:1"}, members)
    assert book.learn([Entry(1, 1, ENTRY_NORMAL, b"x"), remove(2, "a")]) is False
    assert book.urls == {"a": "http://a:1"}
    assert book.learn([add(3, "d", "http://d:1")]) is True
    assert book.learn([add(4, "d", "http://d:1")]) is False  # nothing new
    members.addresses = {"e": "http://e:1"}
    book.restored()
    assert book.urls == {"a": "http://a:1", "d": "http://d:1", "e": "http://e:1"}


def test_rule_3_urls_is_one_dict_changed_in_place_and_listeners_get_copies() -> None:
    book = AddressBook({"a": "http://a:1"}, None)
    held = book.urls
    seen: list[dict[str, str]] = []
    book.add_membership_listener(lambda conf, urls: seen.append(urls))
    book.appended([add(2, "d", "http://d:1")], False, CONF)
    assert held is book.urls and held["d"] == "http://d:1"
    seen[0]["x"] = "http://x:1"
    assert "x" not in book.urls


def test_rule_3_holder_of_finds_another_member_with_the_url() -> None:
    book = AddressBook({"a": "http://a:1/", "b": "http://b:1", "gone": "http://g:1"}, None)
    assert book.holder_of("http://a:1", ("a", "b"), besides="d") == "a"
    assert book.holder_of("http://a:1", ("a", "b"), besides="a") is None
    assert book.holder_of("http://g:1", ("a", "b"), besides="d") is None  # not a member any more


def test_rule_4_membership_listeners_hear_of_changed_turns_only() -> None:
    book = AddressBook(None, None)
    heard: list[tuple[ConfState, dict[str, str]]] = []
    book.add_membership_listener(lambda conf, urls: heard.append((conf, urls)))
    book.appended([Entry(1, 1, ENTRY_NORMAL, b"x")], False, CONF)
    assert heard == []
    book.appended([], True, CONF)  # a configuration change with no new URL
    book.appended([add(2, "d", "http://d:1")], False, CONF)
    assert heard == [(CONF, {}), (CONF, {"d": "http://d:1"})]


def test_rule_4_committed_listeners_wait_for_a_known_member_set() -> None:
    members = MembersMachine()
    book = AddressBook({"a": "http://a:1"}, members)
    heard: list[Any] = []
    book.add_committed_membership_listener(lambda *args: heard.append(args))
    book.committed()
    assert heard == []
    members.apply_conf(7, ConfEntry(ConfChange("add_learner", "d", "http://d:1"), CONF))
    book.learn([add(7, "d", "http://d:1")])
    book.committed()
    assert heard == [(7, ("a", "b", "d"), {"a": "http://a:1", "d": "http://d:1"})]
    assert AddressBook(None, None).committed() is None  # no replicated book: nothing to tell
