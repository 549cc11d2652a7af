"""Sends rendered screens through the Bot API, riding out short Telegram hiccups."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TypeVar

from telegram import CallbackQuery, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from handlers.context import SiagaBot
from handlers.views import ACK_REACTION, Screen, Text

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_MODIFIED = "message is not modified"
ATTEMPTS = 3
MAX_INLINE_WAIT = 5.0  # seconds a citizen's reply may wait for Telegram's flood control


async def with_retries(call: Callable[[], Awaitable[T]]) -> T:
    """Runs a Bot API call, retrying flood control (within 5 s) and network errors.

    A retried send may, rarely, show twice; for a citizen in an emergency a duplicate
    prompt is better than a missing one. Bad requests and blocked chats are not retried.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await call()
        except RetryAfter as exc:
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            if attempt == ATTEMPTS or seconds > MAX_INLINE_WAIT:
                raise
            await asyncio.sleep(seconds)
        except (BadRequest, Forbidden):
            raise
        except NetworkError as exc:
            if attempt == ATTEMPTS:
                raise
            log.warning("Bot API call failed (%s), retrying", type(exc).__name__)
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


async def send(bot: SiagaBot, chat_id: int, screen: Screen) -> list[int]:
    """Sends every reply of a screen, in order; returns the ids of the messages sent."""
    sent: list[int] = []
    for reply in screen.replies:
        if isinstance(reply, Text):
            text = partial(bot.send_text, chat_id, reply.text, reply.markup)
            sent.append(await with_retries(text))
        else:
            venue = partial(
                bot.send_venue,
                chat_id,
                latitude=reply.lat,
                longitude=reply.lon,
                title=reply.title,
                address=reply.address,
                reply_markup=reply.markup,
            )
            sent.append((await with_retries(venue)).message_id)
    return sent


async def answer(query: CallbackQuery, screen: Screen) -> None:
    """Answers a button press (with the screen's alert, if any)."""
    await query.answer(screen.alert, show_alert=False)


async def show(
    bot: SiagaBot, query: CallbackQuery, screen: Screen, answered: str | None = None
) -> list[int]:
    """Shows the screen that answers a button press, editing menus in place; returns the ids
    of the messages that show it (the pressed one, if edited into the screen, and those sent).

    When the screen opens with a text that needs no reply keyboard, the pressed message
    becomes it (no new message). Otherwise the pressed message keeps its question, its
    buttons replaced by the answer (``answered``; a pin just loses its buttons), and the
    screen follows as new messages. A stale press leaves the pressed message alone. The
    query is answered last, so its spinner ends when the chat shows the result.

    An edit that only closes the pressed message (its answer, or no buttons) goes out beside
    the new messages, not before them: under a surge every Bot API call waits its turn in a
    busy event loop, and the citizen waits for what comes next (the report's reference after
    "send"), not for the old buttons to go. Its failure is still the handler's, after the
    sends, as when it went first.
    """
    replies = list(screen.replies)
    message = query.message
    in_place: list[int] = []
    closing: asyncio.Task[bool] | None = None
    try:
        if isinstance(message, Message) and not screen.keep_pressed:
            first = replies[0] if replies else None
            if (
                isinstance(first, Text)
                and message.text is not None
                and (first.markup is None or isinstance(first.markup, InlineKeyboardMarkup))
            ):
                if await _edit(bot, message, first.text, first.markup):
                    replies.pop(0)
                    in_place.append(message.message_id)
            elif message.text is not None and answered is not None:
                closing = asyncio.create_task(_edit(bot, message, answered, None))
            elif message.reply_markup is not None:
                closing = asyncio.create_task(_edit(bot, message, None, None))
        chat_id = message.chat.id if message is not None else query.from_user.id
        sent = await send(bot, chat_id, Screen(replies))
        if closing is not None:
            await closing
        return [*in_place, *sent]
    finally:
        if closing is not None:
            await asyncio.wait({closing})  # never left running past the handler
            if not closing.cancelled():
                closing.exception()  # a failure behind the send's own is not logged twice
        try:
            await answer(query, screen)
        except BadRequest as exc:  # "query is too old": the screen is shown all the same
            log.info("could not answer a button press: %s", exc.message)


async def redraw(bot: SiagaBot, chat_id: int, message_id: int, reply: Text) -> None:
    """Draws a screen again in its message (Telegram's "not modified" counts as done)."""
    markup = reply.markup if isinstance(reply.markup, InlineKeyboardMarkup) else None
    try:
        await with_retries(partial(bot.edit_text, chat_id, message_id, reply.text, markup))
    except BadRequest as exc:
        if NOT_MODIFIED not in exc.message.lower():
            raise


async def _edit(
    bot: SiagaBot, message: Message, text: str | None, markup: InlineKeyboardMarkup | None
) -> bool:
    """Edits a message the bot sent (its text, or only its buttons when ``text`` is None).
    Returns False when Telegram refuses (too old, deleted): the caller sends instead."""
    edit = partial(bot.edit_text, message.chat_id, message.message_id, text, markup)
    try:
        await with_retries(edit)
    except BadRequest as exc:
        if NOT_MODIFIED in exc.message.lower():
            return True
        log.info("could not edit a message in place: %s", exc.message)
        return False
    return True


async def react(bot: SiagaBot, message: Message, fallback: Screen) -> None:
    """Acknowledges the citizen's message with a reaction; if Telegram refuses it, with the
    fallback's words instead (an acknowledgement is never silently lost)."""
    try:
        await with_retries(partial(message.set_reaction, ACK_REACTION))
    except Forbidden:
        raise
    except TelegramError as exc:
        log.info("could not react, acknowledging in words: %s", type(exc).__name__)
        await send(bot, message.chat_id, fallback)
