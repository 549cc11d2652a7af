"""The Bot API's HTTP client: two pools (interactive calls, broadcast copies), each PTB's
``HTTPXRequest`` with a fair gate in front of it.

httpcore keeps the requests that wait for a connection in a list and, whenever a connection
is asked for or given back, walks that list against every connection of the pool (checking
each idle one's socket with a system call). With many callers at once, as in a surge, that
walk is paid queue x pool times per call. :class:`GatedRequest` lets only as many calls into
httpx as it has connections; the others wait on an ``asyncio.Semaphore`` (first come, first
served, O(1)), with PTB's pool timeout and its error: ``TimedOut``, "not sent".

:class:`SplitRequest` keeps broadcast copies (marked by the rate limiter with
:func:`bulk_calls`) on connections of their own: a paid broadcast's 16 streams never take the
connection a citizen's reply needs, and each pool stays small (httpcore's checks grow with
its size; see :mod:`bot.sizes`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from telegram._utils.defaultvalue import DefaultValue
from telegram.error import TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

_NOT_SENT = (
    "Pool timeout: all connections were in use for the whole pool timeout. "
    "The request was *not* sent to Telegram."
)


class GatedRequest(HTTPXRequest):
    """``HTTPXRequest`` whose calls first wait for one of ``connection_pool_size`` turns."""

    __slots__ = ("_gate",)

    def __init__(self, connection_pool_size: int, **kwargs: Any) -> None:
        super().__init__(connection_pool_size=connection_pool_size, **kwargs)
        self._gate = asyncio.Semaphore(connection_pool_size)

    async def do_request(  # noqa: PLR0917 - BaseRequest's signature
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Waits for a turn (at most the pool timeout, else ``TimedOut``), then calls."""
        patience = (
            self._client.timeout.pool if isinstance(pool_timeout, DefaultValue) else pool_timeout
        )
        try:
            async with asyncio.timeout(patience):
                await self._gate.acquire()
        except TimeoutError:
            raise TimedOut(_NOT_SENT) from None
        try:
            return await super().do_request(
                url, method, request_data, read_timeout, write_timeout, connect_timeout,
                pool_timeout,
            )  # fmt: skip
        finally:
            self._gate.release()


_BULK: ContextVar[bool] = ContextVar("siaga112_bulk_call", default=False)


@contextlib.contextmanager
def bulk_calls() -> Iterator[None]:
    """Bot API calls made inside go through the broadcast pool."""
    token = _BULK.set(True)
    try:
        yield
    finally:
        _BULK.reset(token)


def in_bulk_calls() -> bool:
    """Whether calls made here go through the broadcast pool."""
    return _BULK.get()


class SplitRequest(BaseRequest):
    """Interactive calls and broadcast copies on separate gated pools (see the module)."""

    __slots__ = ("_bulk", "_interactive")

    def __init__(self, interactive: int, bulk: int, **timeouts: Any) -> None:
        self._interactive = GatedRequest(interactive, **timeouts)
        self._bulk = GatedRequest(bulk, **timeouts)

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (both pools have the same)."""
        return self._interactive.read_timeout

    async def initialize(self) -> None:
        """Opens both pools."""
        await self._interactive.initialize()
        await self._bulk.initialize()

    async def shutdown(self) -> None:
        """Closes both pools."""
        try:
            await self._bulk.shutdown()
        finally:
            await self._interactive.shutdown()

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """Sends through the broadcast pool inside :func:`bulk_calls`, else the other (the
        arguments are :meth:`GatedRequest.do_request`'s, passed on as they came)."""
        pool = self._bulk if in_bulk_calls() else self._interactive
        return await pool.do_request(*args, **kwargs)
