"""Broadcasts give way when the event loop lags: the throttle, the scheduler's cap, the watch.

The throttle and the scheduler take explicit times; the governor's lag watch runs on
``VirtualTime`` with a sleep that wakes late by a chosen lag.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.app import build_rate_limiter
from bot.config import load_settings
from bot.services.governor import LagPolicy, LagThrottle, Limits, RateGovernor, Scheduler, Target
from bot.services.outbox_kinds import Priority
from tests.fakes.virtual_time import VirtualTime

POLICY = LagPolicy(max_lag=0.005, interval=0.025, cut=0.5, cooldown=0.1, recovery=0.5)
PAID = Limits(paid_broadcast_per_second=1000, lag=POLICY)
CITIZEN = Target.private(42)


def subscriber(n: int) -> Target:
    return Target.private(100_000 + n)


# -- the throttle --------------------------------------------------------------------------------
def test_share_is_halved_when_a_sample_lags_and_only_once_per_cooldown() -> None:
    throttle = LagThrottle(POLICY)

    assert throttle.observe(0.020, 0.0) == 0.5
    assert throttle.observe(0.020, 0.05) == 0.5  # inside the cooldown: the cut has to show
    assert throttle.observe(0.020, 0.10) == 0.25
    assert throttle.cuts == 2
    assert throttle.lowest == 0.25


def test_share_recovers_additively_when_samples_are_calm() -> None:
    throttle = LagThrottle(POLICY)
    throttle.observe(0.050, 0.0)  # 0.5

    assert throttle.observe(0.001, 0.2) == pytest.approx(0.6)
    assert throttle.observe(0.005, 0.4) == pytest.approx(0.7)  # max_lag itself is calm
    assert throttle.observe(0.0, 10.0) == 1.0  # never above the configured rate
    assert throttle.lowest == 0.5


def test_share_never_falls_below_the_floor_when_the_loop_stays_saturated() -> None:
    throttle = LagThrottle(POLICY)

    shares = [throttle.observe(1.0, 0.1 * n) for n in range(40)]

    assert min(shares) == POLICY.floor
    assert shares[-1] == POLICY.floor


def test_calm_first_sample_keeps_full_share() -> None:
    assert LagThrottle(POLICY).observe(0.0, 5.0) == 1.0


@pytest.mark.parametrize(
    "field",
    [
        {"max_lag": 0},
        {"interval": -1},
        {"cut": 1.0},
        {"floor": 0},
        {"min_per_second": 0},
        {"recovery": 0},
    ],
)
def test_nonsense_policy_is_refused_when_built(field: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(field))):
        LagPolicy(**field)  # type: ignore[arg-type]


# -- the scheduler's cap -------------------------------------------------------------------------
def run_for(scheduler: Scheduler, start: float, seconds: float) -> list[float]:
    """Grants every millisecond for ``seconds``, answering at once; the grant times."""
    times: list[float] = []
    for ms in range(round(seconds * 1000)):
        now = start + ms / 1000
        for call in scheduler.grant(now):
            scheduler.release(call, now)
            times.append(now)
    return times


def test_paid_lane_grants_only_its_share_when_throttled() -> None:
    scheduler = Scheduler(PAID)
    scheduler.set_broadcast_share(0.1)
    for n in range(500):
        scheduler.submit(Priority.BROADCAST, subscriber(n), 0.0, paid=True)

    times = run_for(scheduler, 0.0, 2.0)

    assert len(times) == 200  # 100 a second, not 1000
    for start in times:  # never more than 100 in any second
        assert sum(1 for t in times if start <= t < start + 1.0) <= 100


def test_throttled_copies_go_evenly_not_in_one_burst_a_second() -> None:
    scheduler = Scheduler(PAID)
    scheduler.set_broadcast_share(0.1)  # 100/s: 2 every 20 ms
    for n in range(500):
        scheduler.submit(Priority.BROADCAST, subscriber(n), 0.0, paid=True)

    times = run_for(scheduler, 0.0, 1.0)

    assert max(sum(1 for t in times if s <= t < s + 0.02) for s in times) == 2


def test_unthrottled_paid_lane_still_reaches_its_rate_when_paced() -> None:
    scheduler = Scheduler(PAID)
    for n in range(3000):
        scheduler.submit(Priority.BROADCAST, subscriber(n), 0.0, paid=True)

    assert len(run_for(scheduler, 0.0, 2.0)) == 2000


def test_citizen_reply_goes_at_once_when_broadcast_lane_is_throttled_and_full() -> None:
    scheduler = Scheduler(PAID)
    scheduler.set_broadcast_share(POLICY.floor)
    for n in range(200):
        scheduler.submit(Priority.BROADCAST, subscriber(n), 0.0, paid=True)
    assert len(run_for(scheduler, 0.0, 1.0)) == 20

    reply = scheduler.submit(Priority.CITIZEN_REPLY, CITIZEN, 1.0)

    assert scheduler.grant(1.0) == [reply]


def test_throttled_lane_keeps_min_per_second_when_share_is_tiny() -> None:
    scheduler = Scheduler(Limits(broadcast_per_second=20, lag=POLICY))
    scheduler.set_broadcast_share(POLICY.floor)
    for n in range(40):
        scheduler.submit(Priority.BROADCAST, subscriber(n), 0.0)

    assert len(run_for(scheduler, 0.0, 1.0)) == 20  # the free rate is never cut


def test_raised_share_lets_waiting_copies_go_when_grant_runs_again() -> None:
    scheduler = Scheduler(PAID)
    scheduler.set_broadcast_share(0.1)
    for n in range(600):
        scheduler.submit(Priority.BROADCAST, subscriber(n), 0.0, paid=True)
    assert len(run_for(scheduler, 0.0, 1.0)) == 100

    scheduler.set_broadcast_share(0.25)

    assert len(run_for(scheduler, 1.0, 1.0)) == 250
    assert scheduler.stats().broadcast_share == 0.25


def test_share_outside_range_is_refused_when_set() -> None:
    with pytest.raises(ValueError, match="share"):
        Scheduler(PAID).set_broadcast_share(0)


# -- the governor's watch ------------------------------------------------------------------------
class LaggingLoop:
    """A loop whose timers wake ``lag`` seconds late (virtual time)."""

    def __init__(self, time: VirtualTime) -> None:
        self.time = time
        self.lag = 0.0

    async def sleep(self, seconds: float) -> None:
        await self.time.sleep(seconds + self.lag)


async def test_lagging_loop_slows_paid_copies_and_calm_loop_restores_them() -> None:
    time = VirtualTime()
    loop = LaggingLoop(time)
    governor = RateGovernor(
        PAID, monotonic=time.monotonic, sleep=time.sleep,
        lag_monotonic=time.monotonic, lag_sleep=loop.sleep,
    )  # fmt: skip
    granted: list[float] = []

    async def copy(n: int) -> None:
        call = await governor.acquire(Priority.BROADCAST, subscriber(n), paid=True)
        granted.append(time.now)
        governor.release(call)

    loop.lag = 0.030
    tasks = [asyncio.ensure_future(copy(n)) for n in range(3000)]
    await time.advance(0.5)
    assert governor.watching_lag
    assert governor.scheduler.broadcast_share < 0.1  # cut every 0.1 s while the loop lags
    lagging = sum(1 for t in granted if 1.0 <= t < 2.0)
    assert lagging <= 1000 * governor.scheduler.broadcast_share + 1

    loop.lag = 0.0
    await time.advance(3.0)
    assert governor.scheduler.broadcast_share == 1.0
    calm = sum(1 for t in granted if 3.0 <= t < 4.0)
    assert calm > 10 * max(lagging, 1)
    stats = governor.stats()
    assert stats.lag_cuts >= 4
    assert stats.lowest_broadcast_share < 0.1

    await time.advance(10.0)
    assert all(t.done() for t in tasks)
    assert len(granted) == 3000
    await time.advance(POLICY.idle_stop + 1.0)
    assert not governor.watching_lag  # no broadcast, full share: the watch stops
    await governor.close()


async def test_citizen_reply_is_granted_at_once_when_loop_lags_during_broadcast() -> None:
    time = VirtualTime()
    loop = LaggingLoop(time)
    governor = RateGovernor(
        PAID, monotonic=time.monotonic, sleep=time.sleep,
        lag_monotonic=time.monotonic, lag_sleep=loop.sleep,
    )  # fmt: skip
    loop.lag = 0.050
    copies = [
        asyncio.ensure_future(governor.acquire(Priority.BROADCAST, subscriber(n), paid=True))
        for n in range(2000)
    ]
    await time.advance(0.5)
    assert governor.scheduler.broadcast_share < 1.0

    asked = time.now
    reply = await governor.acquire(Priority.CITIZEN_REPLY, CITIZEN)

    assert reply.granted_at == asked
    governor.release(reply)
    await governor.close()
    for task in copies:
        task.cancel()
    await asyncio.gather(*copies, return_exceptions=True)


async def test_no_watch_runs_when_no_lag_policy_or_only_citizen_calls() -> None:
    time = VirtualTime()
    off = RateGovernor(
        replace(PAID, lag=None), monotonic=time.monotonic, sleep=time.sleep,
        lag_monotonic=time.monotonic, lag_sleep=time.sleep,
    )  # fmt: skip
    on = RateGovernor(
        PAID, monotonic=time.monotonic, sleep=time.sleep,
        lag_monotonic=time.monotonic, lag_sleep=time.sleep,
    )  # fmt: skip

    off.release(await off.acquire(Priority.BROADCAST, subscriber(1), paid=True))
    on.release(await on.acquire(Priority.CITIZEN_REPLY, CITIZEN))

    assert not off.watching_lag
    assert not on.watching_lag
    assert off.stats().lag_cuts == 0
    on.release(await on.acquire(Priority.BROADCAST, subscriber(2), paid=True))
    assert on.watching_lag
    await on.close()
    assert not on.watching_lag


# -- the setting ---------------------------------------------------------------------------------
def test_governor_watches_lag_by_default_and_not_when_the_setting_is_zero() -> None:
    default = build_rate_limiter(load_settings({}, env_file=None)).governor.limits
    tighter = build_rate_limiter(
        load_settings({"TELEGRAM_RATE_BROADCAST_MAX_LAG_MS": "12"}, env_file=None)
    ).governor.limits
    off = build_rate_limiter(
        load_settings({"TELEGRAM_RATE_BROADCAST_MAX_LAG_MS": "0"}, env_file=None)
    ).governor.limits

    assert default.lag == LagPolicy(max_lag=0.005)
    assert tighter.lag is not None
    assert tighter.lag.max_lag == pytest.approx(0.012)
    assert off.lag is None
