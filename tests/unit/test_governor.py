"""The rate governor keeps Telegram's limits and serves the most urgent calls first.

The scheduler is driven with explicit times; the async governor runs on ``VirtualTime``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
from dataclasses import dataclass, field

import pytest

from bot.services.governor import (
    NO_CHAT,
    Call,
    Limits,
    RateGovernor,
    Scheduler,
    Target,
    TargetKind,
)
from bot.services.outbox_kinds import Priority
from tests.fakes.virtual_time import VirtualTime

GROUP = Target.group(-100123)
CITIZEN = Target.private(42)


def private(n: int) -> Target:
    return Target.private(1000 + n)


def grant_and_answer(scheduler: Scheduler, now: float) -> list[Call]:
    """Grants what may go at ``now``; every call is answered at once."""
    granted = scheduler.grant(now)
    for call in granted:
        scheduler.release(call, now)
    return granted


def run_until_idle(
    scheduler: Scheduler, start: float = 0.0, *, submit_at: dict[float, list[Call]] | None = None
) -> list[tuple[float, Call]]:
    """Replays time from wake-up to wake-up, answering every call at once."""
    now, log = start, []
    while True:
        log.extend((now, call) for call in grant_and_answer(scheduler, now))
        wake = scheduler.next_wakeup(now)
        if wake is None:
            return log
        assert wake > now
        now = wake


# -- order ---------------------------------------------------------------------------------------
def test_calls_are_granted_in_class_order_when_the_overall_budget_is_saturated() -> None:
    scheduler = Scheduler(Limits(overall_calls=3, broadcast_per_second=3))
    for n, priority in enumerate(reversed(Priority)):  # broadcast arrives first, reply last
        scheduler.submit(priority, private(n), 0.0)
    scheduler.submit(Priority.BROADCAST, private(9), 0.0)

    first = grant_and_answer(scheduler, 0.0)
    assert [c.priority for c in first] == [
        Priority.CITIZEN_REPLY,
        Priority.RELAY,
        Priority.OPERATOR,
    ]
    assert grant_and_answer(scheduler, 0.5) == []
    assert scheduler.next_wakeup(0.5) == 1.0
    second = grant_and_answer(scheduler, 1.0)
    assert [c.priority for c in second] == [
        Priority.AGENCY,
        Priority.BROADCAST,
        Priority.BROADCAST,
    ]
    assert [c.target for c in second[1:]] == [private(0), private(9)]  # FIFO within the class


def test_lower_rank_goes_first_within_a_class_when_ranks_are_given() -> None:
    scheduler = Scheduler(Limits(overall_calls=1))
    late_life_threat = Target.group(-3)
    scheduler.submit(Priority.OPERATOR, Target.group(-1), 0.0, rank=3)
    scheduler.submit(Priority.OPERATOR, Target.group(-2), 0.0, rank=2)
    scheduler.submit(Priority.OPERATOR, late_life_threat, 0.0, rank=1)
    scheduler.submit(Priority.OPERATOR, Target.group(-4), 0.0, rank=2)
    scheduler.submit(Priority.RELAY, Target.group(-5), 0.0, rank=9)

    order = [(call.priority, call.rank, call.target) for _, call in run_until_idle(scheduler)]

    assert order == [
        (Priority.RELAY, 9, Target.group(-5)),  # a higher class beats any rank
        (Priority.OPERATOR, 1, late_life_threat),
        (Priority.OPERATOR, 2, Target.group(-2)),
        (Priority.OPERATOR, 2, Target.group(-4)),  # same rank: arrival order
        (Priority.OPERATOR, 3, Target.group(-1)),
    ]


def test_lower_class_goes_when_a_higher_class_waits_for_its_own_group_budget() -> None:
    scheduler = Scheduler(Limits(group_calls=2))
    for _ in range(3):
        scheduler.submit(Priority.OPERATOR, GROUP, 0.0)
    broadcast = scheduler.submit(Priority.BROADCAST, private(1), 0.0)

    granted = grant_and_answer(scheduler, 0.0)

    assert [c.priority for c in granted] == [
        Priority.OPERATOR,
        Priority.OPERATOR,
        Priority.BROADCAST,
    ]
    assert granted[-1] is broadcast
    assert scheduler.stats().queued == 1  # the third card waits for the group's window
    assert scheduler.next_wakeup(0.0) == 60.0


def test_higher_class_takes_the_next_free_slot_when_both_wait_for_the_overall_budget() -> None:
    scheduler = Scheduler(Limits(overall_calls=1))
    filler = scheduler.submit(Priority.OPERATOR, Target.group(-1), 0.0)
    assert scheduler.grant(0.0) == [filler]
    scheduler.submit(Priority.BROADCAST, private(1), 0.1)
    reply = scheduler.submit(Priority.CITIZEN_REPLY, CITIZEN, 0.2)
    scheduler.release(filler, 0.2)

    assert scheduler.grant(1.0) == []  # the filler's slot is held until a window after its answer
    assert scheduler.grant(1.2) == [reply]


# -- budgets -------------------------------------------------------------------------------------
def test_queue_board_goes_at_once_when_topics_and_cards_have_spent_their_share_of_a_group() -> None:
    scheduler = Scheduler(Limits())  # 20 a minute per group, 10 of them kept for rank 0
    for n in range(30):  # a surge: topics and cards of tickets of priority 1-3
        scheduler.submit(Priority.OPERATOR, GROUP, 0.0, rank=1 + n % 3)
    cards = scheduler.grant(0.0)
    assert len(cards) == 10  # ranked calls leave the reserve free
    for card in cards:
        scheduler.release(card, 0.0)
    for n in range(1, 11):  # each board edit goes the moment it is asked for
        board = scheduler.submit(Priority.OPERATOR, GROUP, 5.0 * n, rank=0)
        assert scheduler.grant(5.0 * n) == [board]
        scheduler.release(board, 5.0 * n)
    late = scheduler.submit(Priority.OPERATOR, GROUP, 51.0, rank=0)
    assert scheduler.grant(51.0) == []  # the whole window is spent now: it waits like any call
    granted = scheduler.grant(60.0)  # the cards' 10 slots free: the board edit goes first,
    assert granted[0] is late  # then cards, into what is left of the window (20 - 10 - 1)
    assert len(granted) == 1 + 9


def test_group_reserve_share_must_leave_room_for_ranked_calls_when_configured() -> None:
    assert Limits(group_calls=20).group_reserve == 10
    assert Limits(group_calls=1).group_reserve == 0  # tiny windows keep no reserve
    with pytest.raises(ValueError, match="group_reserve_share"):
        Limits(group_reserve_share=1.0)


async def test_21st_message_waits_until_the_window_frees_when_a_group_gets_20_in_a_minute() -> None:
    time = VirtualTime()
    governor = RateGovernor(Limits(), monotonic=time.monotonic, sleep=time.sleep)
    granted: list[float] = []

    async def card(offset: float) -> None:
        await time.sleep(offset)
        call = await governor.acquire(Priority.OPERATOR, GROUP)
        granted.append(time.now)
        governor.release(call)

    await time.run(*(card(2.0 * n) for n in range(21)))

    assert granted[:20] == [2.0 * n for n in range(20)]
    assert granted[20] == 60.0  # submitted at 40 s, the first card's slot frees at 60 s
    stats = governor.stats()
    assert stats.max_wait[Priority.OPERATOR] == 20.0
    assert stats.granted[Priority.OPERATOR] == 21


def test_group_window_slides_when_cards_trickle_in() -> None:
    scheduler = Scheduler(Limits(group_calls=20, group_window=60.0, group_reserve_share=0))
    for n in range(25):
        scheduler.submit(Priority.OPERATOR, GROUP, 0.0, rank=n)

    times = [now for now, _ in run_until_idle(scheduler)]

    assert times == [0.0] * 20 + [60.0] * 5
    for start in times:  # never more than 20 inside any 60-second window
        assert sum(1 for t in times if start <= t < start + 60.0) <= 20


async def test_private_chat_gets_three_per_three_seconds_when_flooded() -> None:
    time = VirtualTime()
    governor = RateGovernor(Limits(), monotonic=time.monotonic, sleep=time.sleep)
    granted: list[float] = []

    async def reply() -> None:
        call = await governor.acquire(Priority.CITIZEN_REPLY, CITIZEN)
        granted.append(round(time.now, 6))
        governor.release(call)

    await time.run(*(reply() for _ in range(6)))

    # A burst of three, then the next three once the first ones leave the 3-second window:
    # never more than three inside any 3 s (about one a second on average).
    assert granted == [0.0, 0.0, 0.0, 3.0, 3.0, 3.0]


def test_overall_budget_holds_30_per_second_when_many_chats_are_busy() -> None:
    scheduler = Scheduler(Limits())
    for n in range(75):
        scheduler.submit(Priority.CITIZEN_REPLY, private(n), 0.0)

    times = [now for now, _ in run_until_idle(scheduler)]

    assert times == [0.0] * 30 + [1.0] * 30 + [2.0] * 15


def test_slot_is_held_until_the_answer_when_a_call_is_slow() -> None:
    scheduler = Scheduler(Limits(overall_calls=1))
    slow = scheduler.submit(Priority.RELAY, private(1), 0.0)
    assert scheduler.grant(0.0) == [slow]
    scheduler.submit(Priority.RELAY, private(2), 0.0)

    assert scheduler.next_wakeup(0.0) is None  # only the answer can free the slot
    assert scheduler.grant(2.0) == []
    scheduler.release(slow, 2.5)
    assert scheduler.next_wakeup(2.5) == 3.5


def test_broadcasts_stay_under_their_cap_when_only_broadcasts_wait() -> None:
    scheduler = Scheduler(Limits(broadcast_per_second=20))
    for n in range(60):
        scheduler.submit(Priority.BROADCAST, private(n), 0.0)

    times = [now for now, _ in run_until_idle(scheduler)]

    assert times == [0.0] * 20 + [1.0] * 20 + [2.0] * 20


def test_paid_broadcasts_use_their_own_budget_when_allowed() -> None:
    scheduler = Scheduler(Limits(overall_calls=2, paid_broadcast_per_second=100))
    for n in range(150):
        scheduler.submit(Priority.BROADCAST, private(n), 0.0, paid=True)
    reply = scheduler.submit(Priority.CITIZEN_REPLY, CITIZEN, 0.0)

    first = grant_and_answer(scheduler, 0.0)

    assert reply in first
    assert sum(1 for c in first if c.paid) == 100


def test_paid_flag_is_ignored_when_no_paid_budget_is_configured() -> None:
    scheduler = Scheduler(Limits(broadcast_per_second=5))
    for n in range(10):
        scheduler.submit(Priority.BROADCAST, private(n), 0.0, paid=True)

    assert len(grant_and_answer(scheduler, 0.0)) == 5


# -- no starvation -------------------------------------------------------------------------------
@pytest.mark.parametrize("broadcast_cap", [20, 30])
def test_citizen_reply_goes_within_one_overall_window_when_broadcasts_saturate(
    broadcast_cap: int,
) -> None:
    scheduler = Scheduler(Limits(broadcast_per_second=broadcast_cap))
    for n in range(500):
        scheduler.submit(Priority.BROADCAST, private(n), 0.0)
    now, reply, broadcast_times = 0.0, None, []
    while reply is None or reply.granted_at is None:
        if reply is None and now >= 2.3:
            reply = scheduler.submit(Priority.CITIZEN_REPLY, CITIZEN, 2.3)
        granted = grant_and_answer(scheduler, now)
        broadcast_times += [now for c in granted if c.priority is Priority.BROADCAST]
        wake = scheduler.next_wakeup(now)
        assert wake is not None
        now = min(wake, 2.3) if reply is None and now < 2.3 else wake

    assert reply.granted_at is not None
    assert reply.granted_at - 2.3 <= 1.0
    if broadcast_cap < 30:
        assert reply.granted_at == 2.3  # the cap leaves headroom: no wait at all
    for start in broadcast_times:
        assert sum(1 for t in broadcast_times if start <= t < start + 1.0) <= broadcast_cap


# -- 429 -----------------------------------------------------------------------------------------
async def test_call_is_granted_again_after_retry_after_when_telegram_answers_429() -> None:
    time = VirtualTime()
    governor = RateGovernor(Limits(), monotonic=time.monotonic, sleep=time.sleep)
    granted: list[tuple[str, float]] = []

    async def card() -> None:
        call = await governor.acquire(Priority.OPERATOR, GROUP)
        granted.append(("card", time.now))
        governor.penalise(GROUP, 5.0)  # Telegram said: retry after 5 s
        governor.release(call)
        again = await governor.acquire(Priority.OPERATOR, GROUP, retry_of=call)
        assert again.seq == call.seq
        granted.append(("card again", time.now))
        governor.release(again)

    async def later_card_same_group() -> None:
        await time.sleep(1.0)
        call = await governor.acquire(Priority.OPERATOR, GROUP)
        granted.append(("later card", time.now))
        governor.release(call)

    async def reply_elsewhere() -> None:
        await time.sleep(1.0)
        call = await governor.acquire(Priority.CITIZEN_REPLY, CITIZEN)
        granted.append(("reply", time.now))
        governor.release(call)

    await time.run(card(), later_card_same_group(), reply_elsewhere())

    assert granted == [("card", 0.0), ("reply", 1.0), ("card again", 5.0), ("later card", 5.0)]
    assert governor.stats().rate_limited == 1


def test_every_call_waits_when_a_call_without_a_chat_draws_429() -> None:
    scheduler = Scheduler(Limits())
    scheduler.penalise(NO_CHAT, 3.0)
    scheduler.submit(Priority.CITIZEN_REPLY, CITIZEN, 0.0)
    scheduler.submit(Priority.OPERATOR, GROUP, 0.0)

    assert scheduler.grant(1.0) == []
    assert scheduler.next_wakeup(1.0) == 3.0
    assert len(scheduler.grant(3.0)) == 2


# -- the async side ------------------------------------------------------------------------------
async def test_waiting_call_leaves_the_queue_when_its_caller_is_cancelled() -> None:
    time = VirtualTime()
    governor = RateGovernor(Limits(overall_calls=1), monotonic=time.monotonic, sleep=time.sleep)
    first = await governor.acquire(Priority.RELAY, private(1))
    waiting = asyncio.ensure_future(governor.acquire(Priority.RELAY, private(2)))
    await time.settle()
    assert governor.stats().queued == 1

    waiting.cancel()
    await time.settle()
    governor.release(first)

    assert waiting.cancelled()
    assert governor.stats().queued == 0
    assert governor.stats().in_flight == 0
    await governor.close()


async def test_waiting_calls_go_at_once_when_the_governor_closes() -> None:
    time = VirtualTime()
    governor = RateGovernor(Limits(group_calls=1), monotonic=time.monotonic, sleep=time.sleep)
    first = await governor.acquire(Priority.OPERATOR, GROUP)
    governor.release(first)
    waiting = asyncio.ensure_future(governor.acquire(Priority.OPERATOR, GROUP))
    await time.settle()
    assert not waiting.done()

    await governor.close()
    await time.settle()

    assert waiting.done()
    assert time.now == 0.0


def test_counters_add_up_when_calls_wait() -> None:
    scheduler = Scheduler(Limits(overall_calls=1))
    for n in range(3):
        scheduler.submit(Priority.RELAY, private(n), 0.0)
    scheduler.penalise(CITIZEN, 1.0)
    run_until_idle(scheduler)

    stats = scheduler.stats()
    assert stats.granted[Priority.RELAY] == 3
    assert stats.waited[Priority.RELAY] == 0.0 + 1.0 + 2.0
    assert stats.mean_wait(Priority.RELAY) == 1.0
    assert stats.max_wait[Priority.RELAY] == 2.0
    assert stats.rate_limited == 1
    assert (stats.queued, stats.in_flight) == (0, 0)
    assert stats.mean_wait(Priority.BROADCAST) == 0.0


@pytest.mark.parametrize("field", ["overall_calls", "group_window", "private_per_second"])
def test_limits_refuse_a_non_positive_value_when_built(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})


# -- randomized workloads ------------------------------------------------------------------------
@dataclass
class Replay:
    """A random workload played through a scheduler: what was granted, answered and paused."""

    limits: Limits
    calls: list[Call] = field(default_factory=list)
    released_at: dict[int, float] = field(default_factory=dict)
    pauses: list[tuple[Target, float, float]] = field(default_factory=list)

    def holding(self, selected: list[Call], at: float, window: float) -> int:
        """How many of ``selected`` hold a window slot at ``at`` (granted, not yet expired)."""
        return sum(
            1
            for c in selected
            if c.granted_at is not None
            and c.granted_at <= at
            and self.released_at.get(id(c), math.inf) + window > at
        )


def replay_random_traffic(seed: int) -> Replay:
    rng = random.Random(seed)  # noqa: S311 - a seeded workload, not cryptography
    limits = Limits(
        overall_calls=rng.choice([3, 5, 30]),
        group_calls=rng.choice([2, 4, 20]),
        group_window=rng.choice([5.0, 60.0]),
        private_burst=rng.choice([1, 3]),
        private_per_second=rng.choice([0.5, 1.0, 2.0]),
        broadcast_per_second=rng.choice([1, 3]),
    )
    replay, scheduler = Replay(limits), Scheduler(limits)
    targets = [Target.group(-1), Target.group(-2), private(1), private(2), private(3)]
    targets += [NO_CHAT, Target.unmetered(-1)]
    submits = sorted(
        (rng.uniform(0, 30), rng.choice(list(Priority)), rng.choice(targets), rng.randint(0, 3))
        for _ in range(rng.randint(20, 150))
    )
    penalties = sorted(
        (rng.uniform(0, 30), rng.choice(targets), rng.uniform(0.5, 5)) for _ in range(3)
    )
    releases: list[tuple[float, int, Call]] = []
    now, tie = 0.0, itertools.count()
    while True:
        while submits and submits[0][0] <= now:
            _, priority, target, rank = submits.pop(0)
            replay.calls.append(scheduler.submit(priority, target, now, rank=rank))
        while penalties and penalties[0][0] <= now:
            _, target, seconds = penalties.pop(0)
            scheduler.penalise(target, now + seconds)
            replay.pauses.append((target, now, now + seconds))
        while releases and releases[0][0] <= now:
            _, _, call = heapq.heappop(releases)
            scheduler.release(call, now)
            replay.released_at[id(call)] = now
        for call in scheduler.grant(now):
            heapq.heappush(releases, (now + rng.choice([0.0, 0.01, 0.3, 2.0]), next(tie), call))
        upcoming = [scheduler.next_wakeup(now)]
        upcoming += [submits[0][0] if submits else None, penalties[0][0] if penalties else None]
        upcoming += [releases[0][0] if releases else None]
        nxt = min((t for t in upcoming if t is not None), default=None)
        if nxt is None:
            assert not scheduler.stats().queued, "calls wait with nothing to wake them"
            return replay
        assert nxt >= now
        now = nxt if nxt > now else now + 1e-6  # same-time events are already handled


@pytest.mark.parametrize("seed", range(12))
def test_every_call_is_granted_within_all_budgets_when_traffic_is_random(seed: int) -> None:
    replay = replay_random_traffic(seed)
    limits, calls = replay.limits, replay.calls

    assert all(c.granted_at is not None for c in calls)  # nothing starves, nothing deadlocks
    broadcasts = [c for c in calls if c.priority is Priority.BROADCAST]
    for call in calls:
        at = call.granted_at or 0.0
        assert replay.holding(calls, at, limits.overall_window) <= limits.overall_calls
        if call.priority is Priority.BROADCAST:
            assert replay.holding(broadcasts, at, 1.0) <= limits.broadcast_per_second
        same_chat = [c for c in calls if c.target == call.target]
        if call.target.kind is TargetKind.GROUP:
            assert replay.holding(same_chat, at, limits.group_window) <= limits.group_calls
        if call.target.kind is TargetKind.PRIVATE:
            span = limits.private_burst / limits.private_per_second
            assert replay.holding(same_chat, at, span) <= limits.private_burst
        for target, start, end in replay.pauses:
            if target.chat_id is None or target.chat_id == call.target.chat_id:
                assert not start < at < end, f"granted at {at} inside a pause {start}..{end}"


def test_board_interval_spreads_the_reserve_less_two_slots_over_the_window() -> None:
    assert Limits().group_reserve == 10
    assert Limits().board_interval == 7.5  # eight board calls a minute, within 10 s of a ticket
    assert Limits(group_calls=20, group_reserve_share=0.3).board_interval == 15.0
    assert Limits(group_calls=2, group_window=3.0).board_interval == 3.0  # no reserve: one
