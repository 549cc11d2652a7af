"""``handlers.render.show``: the order of the Bot API calls that answer a button press.

A stand-in bot records the calls (and can hold or fail them); the messages and the press are
PTB's own objects bound to it, so ``CallbackQuery.answer`` runs as in the bot.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from telegram import (
    Bot,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    User,
)
from telegram.error import BadRequest, Forbidden

from handlers.context import SiagaBot
from handlers.render import show
from handlers.views import Screen, Text

CHAT = Chat(42, Chat.PRIVATE)
CITIZEN = User(42, "Sari", is_bot=False)
WAIT = 2.0  # seconds a held call waits for what the test expects before giving up


class StandInBot:
    """Records ``edit_text``, ``send_text`` and ``answer_callback_query`` (``SiagaBot``'s).

    ``hold_edit_until_sent``: an edit is answered only once a message has been sent (it
    never is if the sends wait for the edit's answer: then the edit fails after WAIT).
    """

    def __init__(
        self, *, hold_edit_until_sent: bool = False, edit_fails: Exception | None = None
    ) -> None:
        self.calls: list[str] = []
        self.sent = asyncio.Event()
        self.hold_edit_until_sent = hold_edit_until_sent
        self.edit_fails = edit_fails
        self.send_fails: Exception | None = None
        self.edit_finished = False

    async def edit_text(self, chat_id: int, message_id: int, *args: Any) -> None:
        self.calls.append("edit")
        try:
            if self.hold_edit_until_sent:
                await asyncio.wait_for(self.sent.wait(), WAIT)
            if self.edit_fails is not None:
                raise self.edit_fails
            self.calls.append("edit answered")
        finally:
            self.edit_finished = True

    async def send_text(self, chat_id: int, text: str, *args: Any) -> int:
        self.calls.append(f"send {text}")
        if self.send_fails is not None:
            raise self.send_fails
        self.sent.set()
        return len(self.calls) + 100  # the message id

    async def answer_callback_query(self, *args: Any, **kwargs: Any) -> bool:
        self.calls.append("answer")
        return True


def _press(bot: StandInBot) -> CallbackQuery:
    """A press of the "send" button under a question the bot asked."""
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Send", callback_data="i|1|submit")]])
    pressed = Message(7, datetime.now(UTC), CHAT, text="Send the report?", reply_markup=keyboard)
    query = CallbackQuery("q1", CITIZEN, "chat", message=pressed, data="i|1|submit")
    for obj in (pressed, query):
        obj.set_bot(cast(Bot, bot))
    return query


def _next_screen() -> Screen:
    """A screen that cannot replace the pressed message: it has a reply keyboard."""
    menu = ReplyKeyboardMarkup([["🆘 Report"]])
    return Screen([Text("Report SMG-301126-0001 received", menu), Text("Stay safe")])


async def test_the_next_messages_do_not_wait_for_the_pressed_one_to_be_closed() -> None:
    bot = StandInBot(hold_edit_until_sent=True)
    shown = await show(cast(SiagaBot, bot), _press(bot), _next_screen(), "Send the report? ☑️ Send")
    sends = [call for call in bot.calls if call.startswith("send")]
    assert sends == ["send Report SMG-301126-0001 received", "send Stay safe"]
    assert len(shown) == 2  # the two messages' ids (the pressed message kept its question)
    # The reference went out while the edit was still unanswered; the press is answered last.
    assert bot.calls.index("send Report SMG-301126-0001 received") < bot.calls.index(
        "edit answered"
    )
    assert bot.calls[-1] == "answer"


async def test_a_failed_closing_edit_fails_the_handler_after_the_messages_went_out() -> None:
    bot = StandInBot(edit_fails=Forbidden("Forbidden: bot was blocked by the user"))
    with pytest.raises(Forbidden):
        await show(cast(SiagaBot, bot), _press(bot), _next_screen(), "Send the report? ☑️ Send")
    assert "send Stay safe" in bot.calls  # nothing the citizen needs was held back by it
    assert bot.calls[-1] == "answer"


async def test_a_failed_send_leaves_no_edit_running_and_is_the_error_raised() -> None:
    bot = StandInBot(edit_fails=BadRequest("message to edit not found"))
    bot.send_fails = Forbidden("Forbidden: bot was blocked by the user")
    with pytest.raises(Forbidden):
        await show(cast(SiagaBot, bot), _press(bot), _next_screen(), "Send the report? ☑️ Send")
    assert bot.edit_finished  # waited for, not left behind the handler
    assert bot.calls[-1] == "answer"


async def test_a_screen_that_replaces_the_pressed_message_is_edited_in_first() -> None:
    bot = StandInBot()
    screen = Screen([Text("Which one fits best?"), Text("Or type it")])
    shown = await show(cast(SiagaBot, bot), _press(bot), screen, "Send the report? ☑️ Send")
    assert bot.calls == ["edit", "edit answered", "send Or type it", "answer"]
    assert shown == [7, 103]  # the pressed message's id, then the sent one's
