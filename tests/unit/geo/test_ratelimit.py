"""The rate limiter hands out slots at least ``min_interval`` apart, under controlled time."""

from __future__ import annotations

import asyncio

import pytest

from bot.geo.ratelimit import AsyncRateLimiter
from tests.fakes.virtual_time import VirtualTime


async def test_slots_one_second_apart_when_five_tasks_ask_at_once() -> None:
    time = VirtualTime()
    limiter = AsyncRateLimiter(1.0, monotonic=time.monotonic, sleep=time.sleep)
    granted: list[float] = []

    async def request() -> None:
        await limiter.acquire()
        granted.append(time.now)

    await time.run(*(request() for _ in range(5)))

    assert granted == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_no_wait_when_the_last_request_is_older_than_the_interval() -> None:
    time = VirtualTime()
    limiter = AsyncRateLimiter(1.0, monotonic=time.monotonic, sleep=time.sleep)
    await limiter.acquire()
    time.now = 1.5

    granted = await asyncio.wait_for(limiter.acquire(), timeout=1)

    assert granted is True
    assert time.sleeping == 0


async def test_shorter_interval_when_configured_for_a_self_hosted_server() -> None:
    time = VirtualTime()
    limiter = AsyncRateLimiter(0.2, monotonic=time.monotonic, sleep=time.sleep)
    granted: list[float] = []

    async def request() -> None:
        await limiter.acquire()
        granted.append(round(time.now, 6))

    await time.run(*(request() for _ in range(4)))

    assert granted == [0.0, 0.2, 0.4, 0.6]


async def test_refused_without_waiting_when_the_slot_is_beyond_max_wait() -> None:
    time = VirtualTime()
    limiter = AsyncRateLimiter(1.0, monotonic=time.monotonic, sleep=time.sleep)
    assert await limiter.acquire(max_wait=0.5)
    assert await limiter.acquire(max_wait=0.5) is False

    time.now = 0.6

    granted: list[bool] = []

    async def request() -> None:
        granted.append(await limiter.acquire(max_wait=0.5))

    await time.run(request())
    assert granted == [True]
    assert time.now == 1.0


def test_error_when_interval_is_negative() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        AsyncRateLimiter(-1.0)
