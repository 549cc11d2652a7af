"""The running bot paces its calls through the governor and rides out Telegram's 429."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Settings
from bot.double.fake_bot_api import FakeBotApi
from bot.services.outbox_kinds import Priority
from handlers.ratelimit import governor_of
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.flow.steps import full_gps_report


async def test_citizen_gets_the_welcome_exactly_once_when_it_draws_a_429(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    harness.telegram.fail_next("sendMessage", 429, retry_after=1)
    loop = asyncio.get_running_loop()
    asked = loop.time()

    await user.send_command("start")
    welcome = await user.wait_reply(timeout=5)

    assert loop.time() - asked >= 1.0  # Telegram's retry_after was honoured
    assert "112" in (welcome.text or "")
    sends = [c for c in harness.telegram.calls_to("sendMessage") if c.params["chat_id"] == user.id]
    assert [c.ok for c in sends] == [False, True]
    assert len(user.messages) == 1
    governor = governor_of(harness.app.bot)
    assert governor is not None
    assert governor.stats().rate_limited == 1
    assert governor.stats().granted[Priority.CITIZEN_REPLY] >= 2


async def test_operator_card_arrives_once_when_the_operators_chat_answers_429(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = harness.telegram.model
    answer = model.call
    left = [1]

    def operators_chat_draws_429_once(method: str, params: Any, files: Any = None) -> Any:
        to_operators = str(params.get("chat_id")) == str(OPERATOR_CHAT)
        if method.lower() == "sendmessage" and to_operators and left[0]:
            left[0] -= 1
            model.fail_next("sendMessage", 429, retry_after=1)
        return answer(method, params, files)

    monkeypatch.setattr(model, "call", operators_chat_draws_429_once)
    user = harness.telegram.add_user(language_code="id")
    ref = await full_gps_report(user)

    card = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and bool(m.inline_buttons), timeout=10
    )
    await harness.outbox_drained(within=10)

    assert left == [0]  # the card did draw the 429
    cards = [m for m in harness.operator_messages() if ref in (m.text or "") and m.inline_buttons]
    assert [m.message_id for m in cards] == [card.message_id]


async def test_calls_go_straight_through_when_the_governor_is_switched_off(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> None:
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    h = Harness(
        fake_bot_api, make_settings(fake_bot_api, TELEGRAM_RATE_GOVERNOR="off"), FakeClock()
    )
    await h.start()
    try:
        user = fake_bot_api.add_user(language_code="en")
        await user.send_command("start")
        await user.wait_reply()
        governor = governor_of(h.app.bot)
        assert governor is not None
        assert governor.stats().granted[Priority.CITIZEN_REPLY] == 0  # nothing was paced
    finally:
        await h.stop()
    assert not h.errors
