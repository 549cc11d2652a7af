"""``SiagaBot.send_text`` and ``edit_text`` against the fake Bot API over loopback: the same
request as PTB's ``send_message`` / ``edit_message_text`` with the bot's Defaults, the
message's id back, Telegram's refusals raised as PTB raises them, and the rate limiter asked
first, as for every other call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
import pytest_asyncio
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyKeyboardMarkup,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import BaseRateLimiter, Defaults

from bot.double.fake_bot_api import FakeBotApi
from bot.double.simulated import SimUser
from handlers.context import SiagaBot

DEFAULTS = Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(True))
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("✅ Kirim", callback_data="i|1|submit")]])


class RecordingLimiter(BaseRateLimiter[None]):
    """Lets every call through, noting its endpoint and chat."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []
        self.args: list[object] = []

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(  # noqa: PLR0917 - BaseRateLimiter's signature
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[Any]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[Any]:
        self.seen.append((endpoint, data.get("chat_id")))
        self.args.append(rate_limit_args)
        return await callback(*args, **kwargs)


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest_asyncio.fixture
async def siaga_bot(fake_bot_api: FakeBotApi, limiter: RecordingLimiter) -> AsyncIterator[SiagaBot]:
    async with SiagaBot(
        fake_bot_api.token,
        base_url=fake_bot_api.base_url,
        base_file_url=fake_bot_api.base_file_url,
        defaults=DEFAULTS,
        rate_limiter=limiter,
    ) as bot:
        yield bot


@pytest_asyncio.fixture
async def budi(fake_bot_api: FakeBotApi) -> SimUser:
    """A citizen who has written to the bot (so the bot can write to them)."""
    user = fake_bot_api.add_user()
    await user.send_text("halo")
    return user


async def test_a_text_is_sent_as_send_message_sends_it_and_its_id_comes_back(
    fake_bot_api: FakeBotApi, siaga_bot: SiagaBot, budi: SimUser
) -> None:
    menu = ReplyKeyboardMarkup([["🆘 Lapor"]])
    ptb = await siaga_bot.send_message(budi.id, "Laporan <b>SMG-1</b>", reply_markup=menu)
    ours = await siaga_bot.send_text(budi.id, "Laporan <b>SMG-1</b>", menu)
    first, second = fake_bot_api.calls_to("sendMessage")
    assert second.params == first.params  # HTML and no link preview from the Defaults
    assert second.params["parse_mode"] == "HTML"
    stored = fake_bot_api.model.message(budi.id, ours)
    assert stored is not None
    assert stored.text == "Laporan SMG-1"  # the HTML was parsed, not shown
    assert ours == ptb.message_id + 1


async def test_a_text_is_edited_as_edit_message_text_edits_it(
    fake_bot_api: FakeBotApi, siaga_bot: SiagaBot, budi: SimUser
) -> None:
    sent = await siaga_bot.send_text(budi.id, "Kirim laporan?", KEYBOARD)
    await siaga_bot.edit_message_text(
        "Kirim laporan? <i>ya</i>", budi.id, sent, reply_markup=KEYBOARD
    )
    await siaga_bot.edit_text(budi.id, sent, "Kirim laporan? <i>ya</i>.", KEYBOARD)
    first, second = fake_bot_api.calls_to("editMessageText")
    assert {**second.params, "text": "x"} == {**first.params, "text": "x"}
    assert second.params["parse_mode"] == "HTML"
    stored = fake_bot_api.model.message(budi.id, sent)
    assert stored is not None
    assert stored.text == "Kirim laporan? ya."
    assert stored.button_texts == ["✅ Kirim"]


async def test_without_a_text_only_the_buttons_change(
    fake_bot_api: FakeBotApi, siaga_bot: SiagaBot, budi: SimUser
) -> None:
    sent = await siaga_bot.send_text(budi.id, "Kirim laporan?", KEYBOARD)
    await siaga_bot.edit_text(budi.id, sent, None)
    (call,) = fake_bot_api.calls_to("editMessageReplyMarkup")
    assert "reply_markup" not in call.params  # no markup: Telegram removes the keyboard
    stored = fake_bot_api.model.message(budi.id, sent)
    assert stored is not None
    assert (stored.text, stored.inline_buttons) == ("Kirim laporan?", [])


async def test_telegrams_refusals_are_raised_as_ptb_raises_them(
    siaga_bot: SiagaBot, budi: SimUser
) -> None:
    sent = await siaga_bot.send_text(budi.id, "Tiket <b>SMG-1</b>")
    with pytest.raises(BadRequest, match="not modified"):
        await siaga_bot.edit_text(budi.id, sent, "Tiket <b>SMG-1</b>")
    with pytest.raises(BadRequest, match="parse"):
        await siaga_bot.send_text(budi.id, "<b>unclosed")
    budi.block_bot()
    with pytest.raises(Forbidden, match="blocked"):
        await siaga_bot.send_text(budi.id, "Peringatan banjir")


async def test_every_call_asks_the_rate_limiter_first(
    siaga_bot: SiagaBot, limiter: RecordingLimiter, budi: SimUser
) -> None:
    sent = await siaga_bot.send_text(budi.id, "Kirim laporan?", KEYBOARD)
    await siaga_bot.edit_text(budi.id, sent, "Kirim laporan? ✅", KEYBOARD)
    await siaga_bot.edit_text(budi.id, sent, None)
    assert [seen for seen in limiter.seen if seen[0] != "getMe"] == [
        ("sendMessage", budi.id),
        ("editMessageText", budi.id),
        ("editMessageReplyMarkup", budi.id),
    ]


async def test_a_card_goes_into_its_topic_as_send_message_sends_it(
    fake_bot_api: FakeBotApi, siaga_bot: SiagaBot, limiter: RecordingLimiter
) -> None:
    """The outbox's card: the same request as ``send_message`` into the topic, and the
    chat, id and topic of Telegram's answer back; the governor's arguments reach the
    limiter and not Telegram."""
    group = -1001234567890
    fake_bot_api.register_forum(group, "Operator 112")
    topic = await siaga_bot.create_forum_topic(group, "SMG-1 Kebakaran")
    thread = topic.message_thread_id
    ptb = await siaga_bot.send_message(group, "<b>SMG-1</b>", reply_markup=KEYBOARD,
                                       message_thread_id=thread)  # fmt: skip
    ours = await siaga_bot.send_placed(group, "<b>SMG-1</b>", KEYBOARD, message_thread_id=thread,
                                       rate_limit_args={"priority": 3, "rank": 1})  # fmt: skip
    first, second = fake_bot_api.calls_to("sendMessage")
    assert second.params == first.params
    assert second.params["message_thread_id"] == thread
    assert ours == (group, ptb.message_id + 1, thread)
    stored = fake_bot_api.model.message(group, ours[1])
    assert stored is not None
    assert stored.button_texts == ["✅ Kirim"]
    in_general = await siaga_bot.send_placed(group, "papan antrean")
    assert in_general[2] is None
    assert {"priority": 3, "rank": 1} in limiter.args
    assert "rate_limit_args" not in str(second.params)
