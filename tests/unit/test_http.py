"""The Bot API's HTTP client: a fair gate in front of httpx's pool, and broadcast copies on
a pool of their own (handlers/http.py). httpx runs against a MockTransport: no network."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from telegram.error import TimedOut

from bot import sizes
from bot.services.governor import Limits, RateGovernor
from bot.services.outbox_kinds import Priority
from handlers.http import GatedRequest, SplitRequest, bulk_calls, in_bulk_calls
from handlers.ratelimit import GovernedRateLimiter

URL = "https://api.telegram.invalid/botTOKEN/sendMessage"


class Server:
    """A mock Bot API whose answers wait until released; counts calls in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.seen: list[str] = []
        self.release = asyncio.Event()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.headers.get("x-probe", ""))
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return httpx.Response(200, json={"ok": True, "result": True})

    def kwargs(self, pool_timeout: float | None = 5.0) -> dict[str, Any]:
        return {
            "pool_timeout": pool_timeout,
            "httpx_kwargs": {"transport": httpx.MockTransport(self.handle)},
        }


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_gate_lets_only_pool_size_calls_into_httpx_when_many_call_at_once() -> None:
    server = Server()
    request = GatedRequest(3, **server.kwargs())
    await request.initialize()
    try:
        calls = [asyncio.create_task(request.do_request(URL, "POST")) for _ in range(10)]
        await _settle()
        assert server.in_flight == 3
        assert len(request._gate._waiters or ()) == 7  # the other seven wait at the gate,
        # in arrival order, not in httpcore's queue (re-scanned on every hand-over)
        server.release.set()
        answers = await asyncio.gather(*calls)
    finally:
        await request.shutdown()
    assert [status for status, _ in answers] == [200] * 10
    assert server.most == 3


async def test_a_call_is_not_sent_and_times_out_when_the_gate_stays_shut() -> None:
    server = Server()
    request = GatedRequest(1, **server.kwargs(pool_timeout=0.05))
    await request.initialize()
    try:
        first = asyncio.create_task(request.do_request(URL, "POST"))
        await _settle()
        with pytest.raises(TimedOut, match="not\\* sent"):
            await request.do_request(URL, "POST")
        assert len(server.seen) == 1  # the second call never reached the server
        server.release.set()
        assert (await first)[0] == 200
    finally:
        await request.shutdown()


async def test_broadcast_copies_never_take_the_interactive_connection_when_split() -> None:
    server = Server()
    request = SplitRequest(1, 2, **server.kwargs(pool_timeout=None))
    await request.initialize()
    try:
        reply = asyncio.create_task(request.do_request(URL, "POST"))  # the interactive one

        async def copy() -> tuple[int, bytes]:
            with bulk_calls():
                return await request.do_request(URL, "POST")

        copies = [asyncio.create_task(copy()) for _ in range(3)]
        await _settle()
        assert server.in_flight == 3  # one reply + two copies: the third copy waits …
        second_reply = asyncio.create_task(request.do_request(URL, "POST"))
        await _settle()
        assert server.in_flight == 3  # … and so does a second reply, on its own gate
        server.release.set()
        await asyncio.gather(reply, second_reply, *copies)
    finally:
        await request.shutdown()
    assert server.most == 3


@pytest.mark.parametrize(
    ("priority", "bulk"),
    [(Priority.BROADCAST, True), (Priority.CITIZEN_REPLY, False), (Priority.OPERATOR, False)],
)
@pytest.mark.parametrize("enabled", [True, False])
async def test_rate_limiter_sends_only_broadcast_calls_through_the_broadcast_pool(
    priority: Priority, bulk: bool, enabled: bool
) -> None:
    limiter = GovernedRateLimiter(RateGovernor(Limits()), enabled=enabled)
    await limiter.initialize()
    seen: list[bool] = []

    async def callback() -> bool:
        seen.append(in_bulk_calls())
        return True

    try:
        await limiter.process_request(
            callback, (), {}, "sendMessage", {"chat_id": 42}, {"priority": priority}
        )
    finally:
        await limiter.shutdown()
    assert seen == [bulk]
    assert in_bulk_calls() is False  # reset after the call


def test_broadcast_streams_have_a_connection_each_when_sized() -> None:
    assert sizes.BROADCAST_CONNECTIONS >= sizes.BROADCAST_STREAMS
    assert sizes.INTERACTIVE_CONNECTIONS >= 1
