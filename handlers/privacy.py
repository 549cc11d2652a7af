"""The citizen's data rights: the privacy notice, /datasaya (/mydata), /hapusdata
(/deletemydata) with its confirmation button."""

from __future__ import annotations

import logging

from telegram import Update

from bot.domain.rules import resolve_language
from handlers.context import Context, actor_of
from handlers.render import answer, send

log = logging.getLogger(__name__)


async def _language(update: Update, context: Context) -> str:
    """The citizen's chosen language, or Telegram's guess (no record is made for it)."""
    user = update.effective_user
    default = context.services.settings.default_language
    if user is None:
        return default
    chosen = await context.services.queries.language_of(user.id)
    return chosen or resolve_language(user.language_code, default)


async def notice(update: Update, context: Context) -> None:
    """Shows the privacy notice (a command, or the welcome's «Privacy» button)."""
    actor = actor_of(update)
    screen = context.privacy_views.notice(await _language(update, context))
    if update.callback_query is not None:
        await answer(update.callback_query, screen)
    await send(context.bot, actor.chat_id, screen)


async def my_data(update: Update, context: Context) -> None:
    """Sends what is held about the citizen."""
    actor = actor_of(update)
    data = await context.services.privacy.my_data(actor)
    await send(context.bot, actor.chat_id, context.privacy_views.my_data(data))


async def delete_my_data(update: Update, context: Context) -> None:
    """Says what would be erased and asks for confirmation."""
    actor = actor_of(update)
    erasure = await context.services.privacy.erase(actor, confirmed=False)
    await send(context.bot, actor.chat_id, context.privacy_views.erase_confirm(erasure))


async def on_privacy_button(update: Update, context: Context) -> None:
    """Applies ``p|notice``, ``p|erase|yes`` and ``p|erase|no``."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    if query.data == "p|notice":
        await notice(update, context)
        return
    actor = actor_of(update)
    views = context.privacy_views
    if query.data == "p|erase|yes":
        screen = views.erased(await context.services.privacy.erase(actor, confirmed=True))
    else:  # "p|erase|no" or a forged button: nothing is erased
        screen = views.erase_kept(await _language(update, context))
    await answer(query, screen)
    if query.message is not None:  # the question is answered: its buttons go
        try:
            await context.bot.edit_message_reply_markup(actor.chat_id, query.message.message_id)
        except Exception as exc:
            log.info("could not remove the erasure buttons: %s", type(exc).__name__)
    await send(context.bot, actor.chat_id, screen)
