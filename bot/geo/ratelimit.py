"""An asyncio rate limiter: at most one request per ``min_interval`` seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class AsyncRateLimiter:
    """Hands out request slots at least ``min_interval`` seconds apart, first come first served.

    A slot is reserved synchronously (no await between reading and advancing the next free
    slot), so concurrent tasks on one event loop never share a slot. Time and sleep are
    injected so tests control them.
    """

    def __init__(
        self,
        min_interval: float,
        *,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """Creates a limiter; ``min_interval`` is in seconds (0 disables limiting)."""
        if min_interval < 0:
            msg = "min_interval must not be negative"
            raise ValueError(msg)
        self.min_interval = min_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_free = -float("inf")

    async def acquire(self, *, max_wait: float | None = None) -> bool:
        """Waits for the next slot; returns False at once if it is more than ``max_wait`` away."""
        now = self._monotonic()
        slot = max(now, self._next_free)
        delay = slot - now
        if max_wait is not None and delay > max_wait:
            return False
        self._next_free = slot + self.min_interval
        if delay > 0:
            await self._sleep(delay)
        return True
