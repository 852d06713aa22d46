"""What comes into the driver's loop (``rakit.node.intake``): one test per rule."""

from __future__ import annotations

import asyncio

import pytest
from driver_stubs import until

from rakit.errors import NotLeader, Unavailable
from rakit.node.clock import ManualClock
from rakit.node.intake import CoreCalls, PeerInbox, ProposalIntake
from rakit.node.proposals import READ_HOLD_SECONDS, PendingReads
from rakit.raft.messages import Heartbeat, HeartbeatResp

FAR = 30.0  # a lazy delay no test waits out


class Woken:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def make(max_batch: int = 4096) -> tuple[ProposalIntake, Woken, ManualClock]:
    clock, woken = ManualClock(), Woken()
    return ProposalIntake(clock, woken, max_batch=max_batch), woken, clock


def commands(batch: list[tuple[bytes, asyncio.Future[object]]]) -> list[bytes]:
    return [command for command, _ in batch]


async def test_rule_1_the_loop_takes_at_most_max_batch_and_is_woken_for_the_rest() -> None:
    intake, woken, _ = make(max_batch=2)
    for command in (b"a", b"b", b"c"):
        intake.submit(command, 5.0)
    assert woken.count == 3 and len(intake) == 3
    assert commands(intake.take_batch()) == [b"a", b"b"]
    assert woken.count == 4  # c is left: the loop must turn again
    assert commands(intake.take_batch()) == [b"c"]
    assert intake.take_batch() == [] and len(intake) == 0 and woken.count == 4


async def test_rule_2_a_lazy_command_waits_for_an_eager_one_and_goes_first() -> None:
    intake, woken, _ = make()
    intake.submit(b"lazy", 5.0, lazy=True, lazy_delay=FAR)
    assert woken.count == 0 and intake.take_batch() == []
    intake.submit(b"eager", 5.0)
    assert woken.count == 1
    assert commands(intake.take_batch()) == [b"lazy", b"eager"]


async def test_rule_2_a_lazy_command_alone_goes_out_on_its_timer() -> None:
    intake, woken, _ = make()
    intake.submit(b"lazy", 5.0, lazy=True, lazy_delay=0.001)
    await until(lambda: woken.count == 1, 5.0, "the lazy timer to wake the loop")
    assert commands(intake.take_batch()) == [b"lazy"]


async def test_rule_3_a_done_future_is_left_out() -> None:
    intake, _, _ = make()
    intake.submit(b"cancelled", 5.0).cancel()
    intake.submit(b"kept", 5.0)
    assert commands(intake.take_batch()) == [b"kept"]


async def test_rule_4_deadlines_fail_queued_and_proposed_commands_once_passed() -> None:
    intake, _, clock = make()
    proposed = intake.submit(b"proposed", 1.0)
    assert commands(intake.take_batch()) == [b"proposed"]
    await clock.advance(0.5)
    queued = intake.submit(b"queued", 1.0, lazy=True, lazy_delay=FAR)
    intake.expire(clock.now + 0.4)
    assert not proposed.done() and not queued.done()
    intake.expire(clock.now + 0.5)
    assert proposed.done() and not queued.done()
    with pytest.raises(Unavailable, match="within 1s"):
        proposed.result()
    intake.expire(clock.now + 1.0)
    with pytest.raises(Unavailable):
        queued.result()


async def test_rule_5_fail_queued_fails_what_waits_and_leaves_the_proposed_alone() -> None:
    intake, _, _ = make()
    proposed = intake.submit(b"proposed", 5.0)
    intake.take_batch()
    eager = intake.submit(b"eager", 5.0)
    lazy = intake.submit(b"lazy", 5.0, lazy=True, lazy_delay=FAR)
    intake.fail_queued(NotLeader("b"))
    assert not proposed.done() and len(intake) == 0
    for future in (eager, lazy):
        with pytest.raises(NotLeader):
            future.result()
    assert intake.take_batch() == []


def beat(src: str, dst: str) -> Heartbeat:
    return Heartbeat(term=1, src=src, dst=dst, commit=0)


async def test_rule_6_what_would_overflow_the_inbox_is_dropped_and_its_exchange_answered_empty() -> None:
    woken = Woken()
    inbox = PeerInbox(woken, max_messages=2)
    assert inbox.receive([beat("b", "a")]) and woken.count == 1
    dropped = inbox.exchange("c", [beat("c", "a"), beat("c", "a")])
    assert dropped.result() == [] and woken.count == 1
    assert inbox.take() == [beat("b", "a")] and inbox.take() == []


async def test_rule_7_a_turn_holds_messages_for_its_exchanges_and_answers_the_latest_request() -> None:
    inbox = PeerInbox(Woken())
    first, latest = inbox.exchange("b", [beat("b", "a")]), inbox.exchange("b", [beat("b", "a")])
    inbox.start_turn()
    later = inbox.exchange("c", [beat("c", "a")])  # the next turn's
    assert len(inbox.take()) == 3 and inbox.answering
    ack_b, ack_c = HeartbeatResp(term=1, src="a", dst="b"), HeartbeatResp(term=1, src="a", dst="c")
    assert inbox.route([ack_b, ack_c]) == [ack_c]
    inbox.answer_turn()
    assert (first.result(), latest.result()) == ([], [ack_b]) and not later.done()
    assert not inbox.answering and inbox.route([ack_b]) == [ack_b]  # later Readies: the transport


async def test_rule_8_stop_answers_every_exchange_with_nothing() -> None:
    inbox = PeerInbox(Woken())
    in_turn = inbox.exchange("b", [beat("b", "a")])
    inbox.start_turn()
    queued = inbox.exchange("c", [beat("c", "a")])
    inbox.route([HeartbeatResp(term=1, src="a", dst="b")])
    inbox.stop()
    assert in_turn.result() == [] and queued.result() == []


async def test_rule_9_core_calls_run_when_the_loop_drains_them_with_result_or_exception() -> None:
    woken, ran = Woken(), list[str]()
    calls = CoreCalls(woken)

    def call(name: str) -> str:
        ran.append(name)
        if name == "refused":
            raise NotLeader("b")
        return name.upper()

    done, refused, skipped = (calls.submit(lambda n=n: call(n)) for n in ("done", "refused", "skipped"))
    skipped.cancel()
    assert woken.count == 3 and ran == []  # not from the handler: at the loop's turn
    calls.run()
    assert ran == ["done", "refused"] and done.result() == "DONE"
    with pytest.raises(NotLeader):
        refused.result()
    late = calls.submit(lambda: call("late"))
    calls.fail_all(Unavailable("stopping"))
    with pytest.raises(Unavailable):
        late.result()
    calls.run()
    assert ran == ["done", "refused"]


async def test_requested_reads_go_to_the_core_under_one_ctx_or_fail_with_not_leader() -> None:
    reads, sent = PendingReads(), list[int]()
    loop = asyncio.get_running_loop()
    reads.send(sent.append)
    assert sent == []  # nothing requested: nothing sent
    reads.requested = [loop.create_future(), loop.create_future()]
    reads.send(sent.append)
    assert sent == [1] and len(reads.by_ctx[1]) == 2 and reads.requested == []

    def refuse(ctx: int) -> None:
        raise NotLeader("b")

    refused = loop.create_future()
    reads.requested = [refused]
    reads.send(refuse)
    with pytest.raises(NotLeader):
        refused.result()


async def test_reads_requested_while_a_round_is_in_flight_wait_for_the_next_round() -> None:
    reads, sent = PendingReads(), list[int]()
    loop = asyncio.get_running_loop()
    reads.requested = [loop.create_future()]
    reads.send(sent.append, now=10.0)
    later = [loop.create_future(), loop.create_future()]
    reads.requested = list(later)
    reads.send(sent.append, now=10.01)
    assert sent == [1] and reads.requested == later  # held: round 1 is in flight
    reads.confirm(1, 7)
    reads.send(sent.append, now=10.02)
    assert sent == [1, 2] and reads.by_ctx[2] == later
    reads.requested = [loop.create_future()]
    reads.send(sent.append, now=10.02 + READ_HOLD_SECONDS)  # round 2 unanswered too long: send anyway
    assert sent == [1, 2, 3]
