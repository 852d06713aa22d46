"""Deadlines: replaced, cancelled and due timers."""

from rakit.node.deadlines import Deadlines


def test_due_in_deadline_order_with_payloads():
    d = Deadlines()
    d.set("b", 2.0, "B")
    d.set("a", 1.0, "A")
    d.set("c", 3.0, "C")
    assert d.next_deadline() == 1.0
    assert d.pop_due(2.5) == [("a", "A"), ("b", "B")]
    assert len(d) == 1 and "c" in d


def test_setting_again_replaces_and_cancel_removes():
    d = Deadlines()
    d.set("a", 1.0, 1)
    d.set("a", 5.0, 2)
    assert d.pop_due(2.0) == []
    assert d.next_deadline() == 5.0
    d.cancel("a")
    assert d.next_deadline() is None
    assert d.pop_due(10.0) == [] and len(d) == 0


def test_clear_forgets_everything():
    d = Deadlines()
    for i in range(10):
        d.set(i, float(i))
    d.clear()
    assert d.pop_due(100.0) == [] and d.next_deadline() is None
