"""The replicated address book and committed member set (``rakit.statemachines.members``)."""

from __future__ import annotations

from rakit.raft.messages import ConfChange, ConfEntry, ConfState
from rakit.statemachines.members import MembersMachine


def entry(change: ConfChange, voters: list[str], learners: list[str] = ()) -> ConfEntry:
    return ConfEntry(change, ConfState.of(voters, learners))


def test_the_generation_is_the_index_of_the_last_member_set_change():
    book = MembersMachine()
    assert book.members is None and book.generation == 0  # the --peers start
    book.apply_conf(7, entry(ConfChange.add_learner("d", "http://d:1"), ["a", "b", "c"], ["d"]))
    assert book.generation == 7 and book.members == ("a", "b", "c", "d")
    assert book.addresses == {"d": "http://d:1"}
    book.apply_conf(9, entry(ConfChange.promote("d"), ["a", "b", "c", "d"]))
    assert book.generation == 7  # a promotion keeps the member set
    book.apply_conf(12, entry(ConfChange.remove("a"), ["b", "c", "d"]))
    assert book.generation == 12 and book.members == ("b", "c", "d")


def test_the_book_survives_a_snapshot_and_an_old_snapshot_restores_as_the_initial_set():
    book = MembersMachine()
    book.apply_conf(7, entry(ConfChange.add_learner("d", "http://d:1"), ["a", "b", "c"], ["d"]))
    copy = MembersMachine()
    copy.restore(book.snapshot())
    assert (copy.generation, copy.members, copy.addresses) == (7, ("a", "b", "c", "d"), {"d": "http://d:1"})
    import msgspec

    old = msgspec.msgpack.encode({"addresses": {"x": "http://x:1"}})  # before generations existed
    copy.restore(old)
    assert (copy.generation, copy.members, copy.addresses) == (0, None, {"x": "http://x:1"})
    copy.restore(b"")
    assert (copy.generation, copy.members, copy.addresses) == (0, None, {})
