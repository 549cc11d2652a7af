"""Controlled time for asyncio code that takes a ``monotonic`` and a ``sleep``."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any

SETTLE_ROUNDS = 20


class VirtualTime:
    """Time that jumps to the next sleeper's wake-up when every task is asleep.

    ``monotonic`` and ``sleep`` are the injected pair; ``run`` drives coroutines to the end,
    ``advance`` moves time by hand (waking whoever is due, in order). A cancelled sleeper is
    simply forgotten.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(seconds, 0.0), next(self._order), future))
        await future

    @property
    def sleeping(self) -> int:
        """How many sleepers are still waiting."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    @staticmethod
    async def settle() -> None:
        """Lets every runnable task run until it waits again."""
        for _ in range(SETTLE_ROUNDS):
            await asyncio.sleep(0)

    def _wake_next(self, until: float | None = None) -> bool:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        if not self._sleepers or (until is not None and self._sleepers[0][0] > until):
            return False
        wake_at, _, future = heapq.heappop(self._sleepers)
        self.now = max(self.now, wake_at)
        future.set_result(None)
        return True

    async def advance(self, seconds: float) -> None:
        """Moves time forward by ``seconds``, waking every sleeper due on the way."""
        target = self.now + seconds
        await self.settle()
        while self._wake_next(until=target):
            await self.settle()
        self.now = max(self.now, target)
        await self.settle()

    async def run(self, *coroutines: Coroutine[Any, Any, None]) -> None:
        """Runs the coroutines to the end, jumping time whenever all of them sleep."""
        tasks = [asyncio.ensure_future(c) for c in coroutines]
        while not all(t.done() for t in tasks):
            await self.settle()
            if not all(t.done() for t in tasks) and not self._wake_next():
                await asyncio.sleep(0.001)  # waiting on something real; let it happen
        for task in tasks:
            task.result()
