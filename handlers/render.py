"""Sends rendered screens through the Bot API."""

from __future__ import annotations

from telegram import Bot, CallbackQuery, Message

from handlers.views import Screen, Text, Venue


async def send(bot: Bot, chat_id: int, screen: Screen) -> list[Message]:
    """Sends every reply of a screen, in order."""
    sent: list[Message] = []
    for reply in screen.replies:
        if isinstance(reply, Text):
            sent.append(await bot.send_message(chat_id, reply.text, reply_markup=reply.markup))
        elif isinstance(reply, Venue):
            sent.append(
                await bot.send_venue(
                    chat_id,
                    latitude=reply.lat,
                    longitude=reply.lon,
                    title=reply.title,
                    address=reply.address,
                    reply_markup=reply.markup,
                )
            )
    return sent


async def answer(query: CallbackQuery, screen: Screen) -> None:
    """Answers a button press (with the screen's alert, if any)."""
    await query.answer(screen.alert, show_alert=False)
