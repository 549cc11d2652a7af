"""The fake Bot API's webhook (bot/double/webhook.py): once a bot sets one, each update is
pushed to it, with the bot's secret, retried until the bot's server takes it, each chat's
updates in order, at most ``max_connections`` at once; a real PTB application, started as
``siaga112 run --webhook-url`` starts it (``bot.app.start_application``), receives them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from telegram import Update
from telegram.ext import ContextTypes, MessageHandler, filters

from bot.app import Webhook, start_application, stop_application
from bot.double.botapi_model import ApiError
from bot.double.fake_bot_api import FakeBotApi
from bot.double.webhook import SECRET_HEADER
from tests.flow.conftest import free_port

SECRET = "w3bhook-Secret_9"


@asynccontextmanager
async def _echo_bot(fake: FakeBotApi, port: int, secret: str = SECRET) -> AsyncIterator[list[str]]:
    """A PTB echo bot taking its updates on a webhook at 127.0.0.1:``port``; yields the texts
    its handler saw, in the order it saw them."""
    seen: list[str] = []

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        text = update.effective_message.text or ""
        seen.append(text)
        await update.effective_message.reply_text(f"echo {text}")

    application = fake.application_builder().concurrent_updates(True).build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    webhook = Webhook(url=f"http://127.0.0.1:{port}/telegram", secret=secret)
    await start_application(application, poll_timeout=timedelta(seconds=1), webhook=webhook)
    try:
        yield seen
    finally:
        await stop_application(application)


def _texts(fake: FakeBotApi, chat_id: int) -> list[str]:
    return [m.text or "" for m in fake.messages_for(chat_id) if (m.text or "").startswith("echo")]


async def test_updates_are_pushed_to_the_webhook_the_bot_set_with_its_secret() -> None:
    port = free_port()
    async with FakeBotApi() as fake, _echo_bot(fake, port):
        registered = fake.calls_to("setWebhook")[-1].params
        assert registered["url"] == f"http://127.0.0.1:{port}/telegram"
        assert registered["secret_token"] == SECRET
        budi = fake.add_user(first_name="Budi")
        await budi.send_text("tolong")
        reply = await budi.wait_reply(timeout=10)
        assert reply.text == "echo tolong"
        await fake.wait_for(lambda: not fake.pending_updates)
        assert fake.webhook.pushed == 1
        assert fake.webhook.refused == 0
        with pytest.raises(ApiError) as refused:
            fake.model.call("getUpdates", {})
        assert refused.value.status == 409  # no polling while a webhook is set, as on Telegram
        info = fake.model.call("getWebhookInfo", {})
        assert info["pending_update_count"] == 0
        assert "last_error_message" not in info


async def test_each_chats_updates_arrive_in_the_order_they_were_sent() -> None:
    port = free_port()
    async with FakeBotApi() as fake, _echo_bot(fake, port) as seen:
        people = [fake.add_user(first_name=f"Warga {n}") for n in range(4)]
        for step in range(6):  # sent back to back: a surge of people typing
            for n, person in enumerate(people):
                await person.send_text(f"{n}:{step}")
        await fake.wait_for(lambda: len(seen) == 24, timeout=15)
        for n, person in enumerate(people):
            mine = [text for text in seen if text.startswith(f"{n}:")]
            assert mine == [f"{n}:{step}" for step in range(6)]
            await fake.wait_for(lambda person=person: len(_texts(fake, person.id)) == 6, timeout=10)
        assert not fake.pending_updates


async def test_an_update_waits_for_a_bot_whose_server_is_down_and_arrives_once_it_is_up() -> None:
    port = free_port()  # nobody listens there yet
    async with FakeBotApi() as fake:
        fake.model.call(
            "setWebhook", {"url": f"http://127.0.0.1:{port}/telegram", "secret_token": SECRET}
        )
        siti = fake.add_user(first_name="Siti")
        await siti.send_text("banjir")
        await fake.wait_for(lambda: fake.webhook.refused >= 2, timeout=10)  # retried
        info = fake.model.call("getWebhookInfo", {})
        assert info["pending_update_count"] == 1  # kept, not dropped
        assert info["last_error_message"].startswith("Connection failed")
        async with _echo_bot(fake, port):
            reply = await siti.wait_reply(timeout=10)
        assert reply.text == "echo banjir"
        assert not fake.pending_updates


async def test_a_refused_update_is_retried_and_the_error_shown_until_the_bot_takes_it() -> None:
    port = free_port()
    async with FakeBotApi() as fake, _echo_bot(fake, port) as seen:
        fake.model.webhook_secret = "not-the-bots-secret"  # the bot's server answers 403
        ani = fake.add_user(first_name="Ani")
        await ani.send_text("kebakaran")
        await fake.wait_for(lambda: fake.webhook.refused >= 1, timeout=10)
        info = fake.model.call("getWebhookInfo", {})
        assert info["last_error_message"].startswith("Wrong response from the webhook: 403")
        assert info["pending_update_count"] == 1
        assert seen == []
        fake.model.webhook_secret = SECRET
        reply = await ani.wait_reply(timeout=10)
        assert reply.text == "echo kebakaran"
        assert seen == ["kebakaran"]  # once


class _HeldBot:
    """A webhook server that holds every request until ``release`` is set: what arrived, and
    how many were in flight at most."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = self.most = 0
        self.release, self._arrived = asyncio.Event(), asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers[SECRET_HEADER] == SECRET
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.bodies.append(await request.json())
        self._arrived.set()
        await self.release.wait()
        self.in_flight -= 1
        return web.Response()

    async def arrived(self, count: int) -> None:
        """Waits until ``count`` requests arrived, then a little longer: one more that
        could start would have by then."""
        while len(self.bodies) < count:
            await asyncio.wait_for(self._arrived.wait(), 10)
            self._arrived.clear()
        await asyncio.sleep(0.1)

    def texts(self) -> list[str]:
        return [body["message"]["text"] for body in self.bodies]


@asynccontextmanager
async def _held_bot() -> AsyncIterator[tuple[_HeldBot, FakeBotApi]]:
    """A fake Bot API whose webhook is a :class:`_HeldBot` (``max_connections`` 2)."""
    held = _HeldBot()
    app = web.Application()
    app.router.add_post("/hook", held.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with FakeBotApi() as fake:
            fake.model.call(
                "setWebhook", {"url": url, "secret_token": SECRET, "max_connections": 2}
            )
            yield held, fake
            held.release.set()
    finally:
        held.release.set()
        await runner.cleanup()


async def test_no_more_requests_are_in_flight_than_max_connections() -> None:
    async with _held_bot() as (held, fake):
        for n in range(5):  # five chats: nothing but the limit holds them back
            await fake.add_user(first_name=f"P{n}").send_text(f"halo {n}")
        await held.arrived(2)
        assert (len(held.bodies), held.most) == (2, 2)
        held.release.set()
        await fake.wait_for(lambda: not fake.pending_updates, timeout=10)
        assert held.most == 2
        assert sorted(held.texts()) == [f"halo {n}" for n in range(5)]


async def test_a_chats_next_update_waits_until_its_last_one_was_taken() -> None:
    async with _held_bot() as (held, fake):
        budi, siti = fake.add_user(first_name="Budi"), fake.add_user(first_name="Siti")
        for step in range(3):
            await budi.send_text(f"budi {step}")
        await siti.send_text("siti 0")
        await held.arrived(2)  # one of each chat, though the connections allow two of Budi's
        assert held.texts() == ["budi 0", "siti 0"]
        held.release.set()
        await fake.wait_for(lambda: not fake.pending_updates, timeout=10)
        assert held.texts() == ["budi 0", "siti 0", "budi 1", "budi 2"]
        assert held.most == 2


@pytest.mark.parametrize(
    "params",
    [
        {"url": "ftp://bot.example/hook"},
        {"url": "https://bot.example/hook", "max_connections": 101},
        {"url": "https://bot.example/hook", "max_connections": 0},
    ],
)
async def test_set_webhook_refuses_what_telegram_refuses(params: dict[str, Any]) -> None:
    async with FakeBotApi() as fake:
        with pytest.raises(ApiError) as refused:
            fake.model.call("setWebhook", params)
        assert refused.value.status == 400
        assert fake.model.webhook_url == ""
