"""The operators' chat fails: cards wait and recover within 30 s, admins hear it once, a
migrated group is followed, and citizens are told the truth (queued, call 112)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from bot.config import Settings
from bot.double.botapi_model import ApiError
from bot.double.fake_bot_api import FakeBotApi
from bot.double.simulated import SimUser
from handlers.context import SERVICES_KEY
from tests.flow.conftest import OPERATOR_CHAT, TELEGRAM_SHRUNK, FakeClock, Harness, shrunk_governor
from tests.flow.steps import full_gps_report

ADMIN = 555_000_111
NEW_CHAT = -1009876543210
NOT_A_MEMBER = "Forbidden: bot is not a member of the supergroup chat"


class Migrated(ApiError):
    """Telegram's answer to a group that became a supergroup (400 + migrate_to_chat_id)."""

    def __init__(self, new_chat_id: int) -> None:
        super().__init__(400, "Bad Request: group chat was upgraded to a supergroup chat")
        self.new_chat_id = new_chat_id

    def to_json(self) -> dict[str, Any]:
        body = super().to_json()
        body["parameters"] = {"migrate_to_chat_id": self.new_chat_id}
        return body


class OperatorsChat:
    """Makes the fake answer every send to the operators' chat with ``error`` while set."""

    METHODS = (
        "sendMessage", "sendLocation", "sendPhoto", "copyMessage", "getChat", "createForumTopic",
        "editMessageText", "pinChatMessage",
    )  # fmt: skip

    def __init__(self, telegram: FakeBotApi, chat_id: int = OPERATOR_CHAT) -> None:
        self.telegram = telegram
        self.chat_id = chat_id
        self.error: Callable[[], ApiError] | None = None
        self.refused = 0
        for method in self.METHODS:
            telegram.set_result(method, self._answer(method))

    def _answer(self, method: str) -> Callable[[dict[str, Any]], Any]:
        handler = getattr(self.telegram.model, f"_api_{method.lower()}")

        def answer(params: dict[str, Any]) -> Any:
            if self.error is not None and int(params.get("chat_id", 0)) == self.chat_id:
                self.refused += 1
                raise self.error()
            return handler(params, {})

        return answer


def card_for(ref: str) -> Callable[[Any], bool]:
    return lambda message: ref in (message.text or "") and "📋" not in (message.text or "")


async def wake(harness: Harness, seconds: float = 0.0) -> None:
    """Moves the bot's clock on and wakes its outbox worker."""
    harness.clock.advance(timedelta(seconds=seconds))
    harness.app.bot_data[SERVICES_KEY].outbox.wake()


async def admin_texts(harness: Harness) -> list[str]:
    return [m.text or "" for m in harness.telegram.messages_for(ADMIN)]


@pytest_asyncio.fixture(params=["unlimited", "flood_control"])
async def guarded(
    request: pytest.FixtureRequest,
    fake_bot_api: FakeBotApi,
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Harness, SimUser]]:
    """A bot with one admin (whose chat with the bot is open) and the operators' forum;
    ``flood_control``: the double refuses calls beyond Telegram's limits (the group's window
    shrunk to 20 per 3 s there and in the governor, see ``TELEGRAM_SHRUNK``; private chats
    unlimited, as the flow tests' raised private budget keeps the citizens at machine speed)."""
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    admin = fake_bot_api.add_user(ADMIN, "Admin")
    if request.param == "flood_control":
        settings = make_settings(fake_bot_api, ADMIN_USER_IDS=str(ADMIN))
        h = Harness(fake_bot_api, settings, FakeClock(), rate_limiter=shrunk_governor)
    else:
        # The refusals count against the group's 20 calls a minute (topics, boards and cards
        # since the console): a wider window keeps this test about faults, not the governor.
        settings = make_settings(
            fake_bot_api, ADMIN_USER_IDS=str(ADMIN), TELEGRAM_RATE_GROUP_PER_MINUTE="120"
        )
        h = Harness(fake_bot_api, settings, FakeClock())
    await h.start()
    if request.param == "flood_control":
        fake_bot_api.flood_control(replace(TELEGRAM_SHRUNK, private=None))
    await admin.send_command("start")
    await admin.wait_reply()
    try:
        yield h, admin
    finally:
        if h.application is not None:
            await h.stop()
    assert not h.errors, f"handler errors: {h.errors!r}"


async def test_cards_recover_within_30_s_and_admins_hear_once_when_the_bot_was_removed(
    guarded: tuple[Harness, SimUser], caplog: pytest.LogCaptureFixture
) -> None:
    harness, _admin = guarded
    telegram = harness.telegram
    baseline = len(telegram.messages_for(ADMIN))  # the answer to the admin's /start
    chat = OperatorsChat(telegram)
    chat.error = lambda: ApiError(403, NOT_A_MEMBER)
    caplog.set_level(logging.INFO)
    first = telegram.add_user(language_code="en")
    ref = await full_gps_report(first)
    await telegram.wait_for(lambda: chat.refused >= 1)
    # The alert goes out before the clock jumps (a jump past its lease would send it again).
    await telegram.wait_for(lambda: telegram.messages_for(ADMIN)[baseline:])
    for _ in range(8):  # a burst of refusals while the clock runs on
        seen = chat.refused
        await wake(harness, 30)
        await telegram.wait_for(lambda seen=seen: chat.refused > seen)  # type: ignore[misc]
    assert chat.refused >= 9
    alerts = await telegram.wait_for(lambda: telegram.messages_for(ADMIN)[baseline:])
    assert len(alerts) == 1  # exactly one alert for the whole burst
    assert "not a member" in (alerts[0].text or "")
    assert str(OPERATOR_CHAT) in (alerts[0].text or "")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # one clear error line, naming Telegram's reason
    assert "not a member" in errors[0].getMessage()

    # While the chat refuses cards, a new citizen is not promised an operator.
    second = telegram.add_user(language_code="en")
    await full_gps_report(second)
    confirmation = second.last_message.text or ""
    assert "queued" in confirmation
    assert "call 112 now" in confirmation
    assert "reads it now" not in confirmation
    await second.send_text("please hurry")
    relayed = await second.wait_reply()
    assert "as soon as the connection is back" in (relayed.text or "")

    chat.error = None  # the bot is added back
    await wake(harness, 30)  # the next attempt is at most 30 s away
    await telegram.wait_for_message(OPERATOR_CHAT, card_for(ref))
    assert len([m for m in harness.operator_messages() if card_for(ref)(m)]) == 1
    await telegram.wait_for(lambda: len(telegram.messages_for(ADMIN)) == baseline + 2)
    down_alert, recovered = telegram.messages_for(ADMIN)[baseline:]
    assert "not a member" in (down_alert.text or "")  # still one alert for the outage
    assert "kembali menerima pesan" in (recovered.text or "")

    third = telegram.add_user(language_code="en")
    await full_gps_report(third)
    assert "reads it now" in (third.last_message.text or "")  # the truth again


async def test_cards_follow_the_group_when_it_became_a_supergroup(
    guarded: tuple[Harness, SimUser],
) -> None:
    harness, _admin = guarded
    telegram = harness.telegram
    baseline = len(telegram.messages_for(ADMIN))
    telegram.register_forum(NEW_CHAT, "Operator 112 (supergroup)")
    chat = OperatorsChat(telegram)
    chat.error = lambda: Migrated(NEW_CHAT)
    citizen = telegram.add_user(language_code="en")
    ref = await full_gps_report(citizen)
    card = await telegram.wait_for_message(NEW_CHAT, card_for(ref))
    assert card.thread_id in telegram.topics(NEW_CHAT)  # its topic was made in the new chat
    # Only the calls already on their way (the topic, the board) met the old id.
    refused = chat.refused
    assert refused <= 2
    assert "reads it now" in (citizen.last_message.text or "")  # a move is no outage
    assert len(telegram.messages_for(ADMIN)) == baseline  # no alert either

    await harness.restart()  # the new id was stored: a fresh process uses it at once
    again = telegram.add_user(language_code="en")
    second = await full_gps_report(again)
    await telegram.wait_for_message(NEW_CHAT, card_for(second))
    assert chat.refused == refused


@pytest_asyncio.fixture
async def unreachable(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Harness, OperatorsChat]]:
    """A bot whose operators' chat refuses it from the start (checked with getChat)."""
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    fake_bot_api.add_user(ADMIN, "Admin")
    fake_bot_api.model.chats[ADMIN].known = True  # the admin started the bot long ago
    chat = OperatorsChat(fake_bot_api)
    chat.error = lambda: ApiError(400, "Bad Request: chat not found")
    # The refusals count against the group's 20 calls a minute (topics, boards and cards
    # since the console): a wider window keeps this test about faults, not the governor.
    settings = make_settings(
        fake_bot_api, ADMIN_USER_IDS=str(ADMIN), TELEGRAM_RATE_GROUP_PER_MINUTE="120"
    )
    h = Harness(fake_bot_api, settings, FakeClock())
    await h.start()
    try:
        yield h, chat
    finally:
        if h.application is not None:
            await h.stop()
    assert not h.errors, f"handler errors: {h.errors!r}"


async def test_confirmation_says_queued_and_call_112_when_the_start_check_failed(
    unreachable: tuple[Harness, OperatorsChat], caplog: pytest.LogCaptureFixture
) -> None:
    harness, chat = unreachable
    telegram = harness.telegram
    caplog.set_level(logging.INFO)
    assert telegram.calls_to("getChat")  # checked at start
    alert = await telegram.wait_for_message(ADMIN)
    assert "chat not found" in (alert.text or "").lower()
    citizen = telegram.add_user(language_code="id")
    ref = await full_gps_report(citizen)
    confirmation = citizen.last_message.text or ""
    assert "masuk antrean" in confirmation
    assert "telepon 112 sekarang" in confirmation
    await telegram.wait_for(lambda: chat.refused >= 2)  # getChat, then the card
    chat.error = None
    await wake(harness, 30)
    await telegram.wait_for_message(OPERATOR_CHAT, card_for(ref))
    later = telegram.add_user(language_code="id")
    await full_gps_report(later)
    assert "masuk antrean" not in (later.last_message.text or "")
    await telegram.wait_for(lambda: len(telegram.messages_for(ADMIN)) == 2)
    down, recovered = telegram.messages_for(ADMIN)
    assert "not found" in (down.text or "")
    assert "kembali menerima pesan" in (recovered.text or "")
    at_start = [r for r in caplog.get_records("setup") if r.levelno >= logging.ERROR]
    assert len(at_start) == 1  # one clear line at start, naming Telegram's reason
    assert "chat not found" in at_start[0].getMessage().lower()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # and no more


async def test_check_names_telegrams_reason_when_the_operators_chat_refuses(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> None:
    from bot.app import check_deployment

    chat = OperatorsChat(fake_bot_api)
    chat.error = lambda: ApiError(403, NOT_A_MEMBER)
    results = await check_deployment(make_settings(fake_bot_api))
    failed = [text for ok, text in results if not ok and "operators' chat" in text]
    assert len(failed) == 1
    assert "bot is not a member" in failed[0]
    assert str(OPERATOR_CHAT) in failed[0]
    chat.error = lambda: ApiError(400, "Bad Request: chat not found")
    results = await check_deployment(make_settings(fake_bot_api))
    failed = [text for ok, text in results if not ok and "operators' chat" in text]
    assert "chat not found" in failed[0].lower()
