"""Sends rendered screens through the Bot API, riding out short Telegram hiccups."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import TypeVar

from telegram import Bot, CallbackQuery, Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from handlers.views import Screen, Text

log = logging.getLogger(__name__)
T = TypeVar("T")

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


async def send(bot: Bot, chat_id: int, screen: Screen) -> list[Message]:
    """Sends every reply of a screen, in order."""
    sent: list[Message] = []
    for reply in screen.replies:
        if isinstance(reply, Text):
            call = partial(bot.send_message, chat_id, reply.text, reply_markup=reply.markup)
        else:
            call = partial(
                bot.send_venue,
                chat_id,
                latitude=reply.lat,
                longitude=reply.lon,
                title=reply.title,
                address=reply.address,
                reply_markup=reply.markup,
            )
        sent.append(await with_retries(call))
    return sent


async def answer(query: CallbackQuery, screen: Screen) -> None:
    """Answers a button press (with the screen's alert, if any)."""
    await query.answer(screen.alert, show_alert=False)
