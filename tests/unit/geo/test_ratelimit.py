"""The rate limiter hands out slots at least ``min_interval`` apart, under controlled time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any

import pytest

from bot.geo.ratelimit import AsyncRateLimiter


class VirtualTime:
    """Time that jumps to the next sleeper's wake-up when every task is asleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), future))
        await future

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    async def run(self, *coroutines: Coroutine[Any, Any, None]) -> None:
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        while not all(t.done() for t in tasks):
            for _ in range(5):
                await asyncio.sleep(0)
            if self._sleepers:
                wake_at, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake_at)
                future.set_result(None)
        for task in tasks:
            task.result()


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
