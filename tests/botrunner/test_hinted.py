"""botrunner/hinted.py: which hinted bars a bot takes instead of querying (pure; the trigger and the
bots that use it are tested against PostgreSQL in tests/events/test_hints.py and test_bot_process.py)."""

from __future__ import annotations

import pytest

from gordon_manager.botrunner.hinted import MAX_HELD, HintedBars, parse
from gordon_manager.execution import Bar

MIN = 60_000


def body(prev: int, ts: int, close: float = 100.5) -> bytes:
    return f"{prev} [{ts}, 100, 101.25, 99, {close}, 7]".encode()


def test_parse_reads_the_bar_and_the_one_before_it():
    assert parse(body(-1, MIN)) == (-1, Bar(MIN, 100.0, 101.25, 99.0, 100.5, 7.0))
    prev, bar = parse(f"{MIN} [{2 * MIN},0.30000000000000004,1e-7,1,2,3]")
    assert prev == MIN and bar.open == 0.1 + 0.2 and bar.high == 1e-7
    assert all(type(v) is float for v in bar[1:]) and type(bar.ts) is int


@pytest.mark.parametrize("text", [
    "", "60000", "60000 ", "x [1,2,3,4,5,6]", "60000 [1,2,3,4,5]", "60000 [1,2,3,4,5,6,7]", "60000 {}",
    '60000 [1,2,3,4,"NaN",6]', "60000 [1,2,3,4,5,null]", "60000 [1.5,2,3,4,5,6]", "60000 [1,2,3",
    "60000 [1,true,3,4,5,6]",
])
def test_parse_refuses_anything_but_a_well_formed_finite_bar(text):
    assert parse(text) is None


def test_take_follows_the_chain_from_the_last_bar_and_drops_what_it_passed():
    hinted = HintedBars()
    for k in (3, 1, 2):  # out of order, as hints may arrive
        hinted.add(body(k * MIN, (k + 1) * MIN))
    hinted.add(body(0, MIN))  # the bar the bot already has
    hinted.add(body(9 * MIN, 10 * MIN))  # ahead of a gap
    assert [b.ts for b in hinted.take(MIN)] == [2 * MIN, 3 * MIN, 4 * MIN]
    assert len(hinted) == 1  # the passed one is dropped, the one ahead of the gap waits
    assert hinted.take(4 * MIN) == []  # the gap: the bot queries
    assert [b.ts for b in hinted.take(9 * MIN)] == [10 * MIN] and len(hinted) == 0


def test_a_later_hint_for_the_same_predecessor_replaces_the_earlier():
    hinted = HintedBars()
    hinted.add(body(MIN, 2 * MIN, close=100.5))
    hinted.add(body(MIN, 3 * MIN, close=101.5))  # the bar between was deleted meanwhile
    assert hinted.take(MIN) == [Bar(3 * MIN, 100.0, 101.25, 99.0, 101.5, 7.0)]


def test_a_hint_without_a_bar_or_a_bot_that_does_not_continue_takes_nothing():
    hinted = HintedBars()
    hinted.add(b"")
    hinted.add("NaN [1,2,3,4,5,6]")
    assert len(hinted) == 0 and hinted.take(0) == []
    hinted.add(body(MIN, 2 * MIN))
    assert hinted.take(5 * MIN) == [] and len(hinted) == 0  # passed: dropped
    hinted.add(body(MIN, 2 * MIN))
    hinted.clear()
    assert hinted.take(MIN) == []


def test_held_hints_are_bounded_oldest_first():
    hinted = HintedBars()
    for k in range(MAX_HELD + 5):
        hinted.add(body(k * MIN, (k + 1) * MIN))
    assert len(hinted) == MAX_HELD
    assert hinted.take(0) == []  # the oldest went first
    assert len(hinted.take(5 * MIN)) == MAX_HELD
