"""The Bot API's HTTP client (handlers/http.py): a fair gate in front of each pool, broadcast
copies on a pool of their own, on aiohttp's client (the default) or PTB's httpx.

httpx runs against a MockTransport; aiohttp against a server on the loopback interface.
No test touches the network."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from telegram import Bot, InputFile
from telegram.error import NetworkError, RetryAfter, TimedOut
from telegram.request import BaseRequest

from bot import sizes
from bot.services.governor import Limits, RateGovernor
from bot.services.outbox_kinds import Priority
from handlers.http import (
    AiohttpRequest,
    GatedRequest,
    SplitRequest,
    bulk_calls,
    gated_request,
    in_bulk_calls,
)
from handlers.ratelimit import GovernedRateLimiter

PATH = "/botTOKEN/sendMessage"
# Bot.do_api_request calls methods by name (PTB suggests its typed methods): meant here.
pytestmark = pytest.mark.filterwarnings("ignore:Please use 'Bot")


class Server:
    """A mock Bot API whose answers wait until released; counts calls in flight."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.seen: list[str] = []
        self.release = asyncio.Event()

    async def answer(self, probe: str) -> dict[str, Any]:
        self.seen.append(probe)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return {"ok": True, "result": True}


#: Makes a pool of N connections (or two pools: interactive, bulk) for the server.
MakePool = Callable[..., BaseRequest]


@asynccontextmanager
async def _httpx(server: Server) -> AsyncIterator[tuple[str, MakePool, MakePool]]:
    async def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=await server.answer(request.headers.get("x-probe", "")))

    def extra(pool_timeout: float | None) -> dict[str, Any]:
        transport = httpx.MockTransport(handle)
        return {"pool_timeout": pool_timeout, "httpx_kwargs": {"transport": transport}}

    def one(size: int, pool_timeout: float | None = 5.0) -> BaseRequest:
        return GatedRequest(size, **extra(pool_timeout))

    def split(interactive: int, bulk: int, pool_timeout: float | None = 5.0) -> BaseRequest:
        return SplitRequest(interactive, bulk, client="httpx", **extra(pool_timeout))

    yield "https://api.telegram.invalid" + PATH, one, split


@asynccontextmanager
async def _aiohttp(server: Server) -> AsyncIterator[tuple[str, MakePool, MakePool]]:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response(await server.answer(request.headers.get("x-probe", "")))

    app = web.Application()
    app.router.add_route("*", PATH, handle)
    async with TestServer(app, host="127.0.0.1") as test_server:

        def one(size: int, pool_timeout: float | None = 5.0) -> BaseRequest:
            return AiohttpRequest(size, pool_timeout=pool_timeout)

        def split(interactive: int, bulk: int, pool_timeout: float | None = 5.0) -> BaseRequest:
            return SplitRequest(interactive, bulk, pool_timeout=pool_timeout)

        yield str(test_server.make_url(PATH)), one, split


CLIENTS = {"aiohttp": _aiohttp, "httpx": _httpx}


async def _settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)  # a real socket (aiohttp's server) needs a moment


async def _wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("client", CLIENTS)
async def test_gate_lets_only_pool_size_calls_through_when_many_call_at_once(client: str) -> None:
    server = Server()
    async with CLIENTS[client](server) as (url, one, _):
        request = one(3)
        await request.initialize()
        try:
            calls = [asyncio.create_task(request.do_request(url, "POST")) for _ in range(10)]
            await _wait_until(lambda: server.in_flight == 3)
            await _settle()
            assert server.in_flight == 3
            gate = request._gate  # type: ignore[attr-defined]
            assert len(gate._waiters or ()) == 7  # the other seven wait at the gate,
            # in arrival order, not in the client's own queue
            server.release.set()
            answers = await asyncio.gather(*calls)
        finally:
            await request.shutdown()
    assert [status for status, _ in answers] == [200] * 10
    assert [json.loads(body) for _, body in answers] == [{"ok": True, "result": True}] * 10
    assert server.most == 3


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_call_is_not_sent_and_times_out_when_the_gate_stays_shut(client: str) -> None:
    server = Server()
    async with CLIENTS[client](server) as (url, one, _):
        request = one(1, pool_timeout=0.05)
        await request.initialize()
        try:
            first = asyncio.create_task(request.do_request(url, "POST"))
            await _wait_until(lambda: server.in_flight == 1)
            with pytest.raises(TimedOut, match="not\\* sent"):
                await request.do_request(url, "POST")
            assert len(server.seen) == 1  # the second call never reached the server
            server.release.set()
            assert (await first)[0] == 200
        finally:
            await request.shutdown()


@pytest.mark.parametrize("client", CLIENTS)
async def test_broadcast_copies_never_take_the_interactive_connection_when_split(
    client: str,
) -> None:
    server = Server()
    async with CLIENTS[client](server) as (url, _, split):
        request = split(1, 2, pool_timeout=None)
        await request.initialize()
        try:
            reply = asyncio.create_task(request.do_request(url, "POST"))  # the interactive one

            async def copy() -> tuple[int, bytes]:
                with bulk_calls():
                    return await request.do_request(url, "POST")

            copies = [asyncio.create_task(copy()) for _ in range(3)]
            await _wait_until(lambda: server.in_flight == 3)
            await _settle()
            assert server.in_flight == 3  # one reply + two copies: the third copy waits …
            second_reply = asyncio.create_task(request.do_request(url, "POST"))
            await _settle()
            assert server.in_flight == 3  # … and so does a second reply, on its own gate
            server.release.set()
            await asyncio.gather(reply, second_reply, *copies)
        finally:
            await request.shutdown()
    assert server.most == 3


# -- aiohttp: what PTB's HTTPXRequest does, the same way ----------------------------------


@asynccontextmanager
async def _bot_api(
    handle: Callable[[web.Request], Any], **timeouts: float
) -> AsyncIterator[tuple[Bot, AiohttpRequest]]:
    """A PTB Bot whose calls go through an AiohttpRequest to ``handle`` on the loopback."""
    app = web.Application()
    app.router.add_route("*", "/botTOKEN/{method}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        request = AiohttpRequest(2, **timeouts)
        bot = Bot("TOKEN", base_url=str(server.make_url("/bot")), request=request)
        await request.initialize()
        try:
            yield bot, request
        finally:
            await request.shutdown()


TEXT = "Banjir di Kaligawe — tolong & cepat: 1+1=2 ✅ 🚨\n<b>50%</b> air?"


async def test_parameters_arrive_form_encoded_and_the_answer_comes_back_when_called() -> None:
    seen: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        seen["type"] = request.content_type
        seen["form"] = dict(await request.post())
        seen["agent"] = request.headers.get("User-Agent", "")
        return web.json_response({"ok": True, "result": {"answer": "ya"}})

    async with _bot_api(handle) as (bot, _):
        result = await bot.do_api_request("sendMessage", api_kwargs={"chat_id": 42, "text": TEXT})
    assert result == {"answer": "ya"}
    assert seen["type"] == "application/x-www-form-urlencoded"
    assert seen["form"] == {"chat_id": "42", "text": TEXT}
    assert "python-telegram-bot" in seen["agent"]


async def test_a_file_arrives_as_multipart_with_the_other_parameters_when_uploaded() -> None:
    seen: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.Response:
        seen["type"] = request.content_type
        form = await request.post()
        upload = form["document"]
        assert isinstance(upload, web.FileField)
        seen["file"] = (upload.filename, upload.content_type, upload.file.read())
        seen["chat_id"] = form["chat_id"]
        return web.json_response({"ok": True, "result": True})

    async with _bot_api(handle) as (bot, _):
        document = InputFile(b"ref,kategori\nSMG-1,banjir\n", filename="laporan.csv")
        await bot.do_api_request("sendDocument", api_kwargs={"chat_id": 7, "document": document})
    assert seen["type"] == "multipart/form-data"
    assert seen["chat_id"] == "7"
    assert seen["file"] == ("laporan.csv", "text/csv", b"ref,kategori\nSMG-1,banjir\n")


async def test_telegram_errors_are_read_from_the_answer_when_it_is_not_ok() -> None:
    async def handle(request: web.Request) -> web.Response:
        body = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3"}
        body["parameters"] = {"retry_after": 3}
        return web.json_response(body, status=429)

    async with _bot_api(handle) as (bot, _):
        with pytest.raises(RetryAfter) as caught:
            await bot.do_api_request("sendMessage", api_kwargs={"chat_id": 1, "text": "x"})
    assert caught.value.retry_after in (3, timedelta(seconds=3))


async def test_a_slow_answer_raises_timed_out_after_the_read_timeout() -> None:
    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True, "result": True})

    async with _bot_api(handle, read_timeout=0.1) as (bot, _):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimedOut):
            await bot.do_api_request("sendMessage", api_kwargs={"chat_id": 1, "text": "x"})
        assert loop.time() - started < 1.5


async def test_a_refused_connection_raises_network_error_when_nobody_listens() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = AiohttpRequest(1, connect_timeout=2)
    await request.initialize()
    try:
        with pytest.raises(NetworkError, match="aiohttp"):
            await request.do_request(f"http://127.0.0.1:{port}{PATH}", "POST")
    finally:
        await request.shutdown()


async def test_a_dropped_connection_raises_network_error_when_the_server_hangs_up() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    request = AiohttpRequest(1)
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as caught:
            await request.do_request(f"http://127.0.0.1:{port}{PATH}", "POST")
        assert not isinstance(caught.value, TimedOut)
    finally:
        await request.shutdown()
        server.close()
        await server.wait_closed()


async def test_calls_are_refused_after_shutdown_and_work_again_when_reopened() -> None:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": True})

    async with _bot_api(handle) as (bot, request):
        await request.shutdown()
        with pytest.raises(NetworkError, match="not initialized"):  # PTB wraps the error
            await bot.do_api_request("getMe")
        await request.initialize()
        assert await bot.do_api_request("getMe") is True


def test_a_pool_needs_a_connection_when_made() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AiohttpRequest(0)
    assert isinstance(gated_request("aiohttp", 2), AiohttpRequest)
    assert isinstance(gated_request("httpx", 2), GatedRequest)


# -- the rate limiter marks broadcast copies ----------------------------------------------


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
