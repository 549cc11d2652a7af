"""Commands and menu buttons every citizen can use at any moment, and the error handler."""

from __future__ import annotations

import contextlib
import logging
import secrets

from telegram import Update
from telegram.error import Forbidden

from bot.domain.rules import SUPPORTED_LANGUAGES, resolve_language
from bot.services.intake import Notice
from bot.services.ports import StorageBusy
from handlers.context import Context, actor_of, private_press
from handlers.intake import answered_text, remember_screen
from handlers.render import send, show

log = logging.getLogger(__name__)


async def start(update: Update, context: Context) -> None:
    """Greets the citizen; a draft in progress is resumed right after the greeting."""
    actor = actor_of(update)
    outcome = await context.services.intake.greet(actor)
    await send(context.bot, actor.chat_id, context.views.welcome(outcome.citizen))
    if outcome.step is not None:
        resumed = await context.services.intake.start_report(actor)
        screen = context.views.intake(resumed)
        remember_screen(context, resumed, screen, await send(context.bot, actor.chat_id, screen))


async def report(update: Update, context: Context) -> None:
    """Starts (or resumes) a report."""
    actor = actor_of(update)
    outcome = await context.services.intake.start_report(actor)
    screen = context.views.intake(outcome)
    remember_screen(context, outcome, screen, await send(context.bot, actor.chat_id, screen))


async def cancel(update: Update, context: Context) -> None:
    """Cancels the draft in progress, from whatever step it is at."""
    actor = actor_of(update)
    outcome = await context.services.intake.cancel(actor)
    await send(context.bot, actor.chat_id, context.views.intake(outcome))


async def status(update: Update, context: Context) -> None:
    """Shows the citizen's reports and their latest status."""
    actor = actor_of(update)
    outcome = await context.services.intake.status(actor)
    await send(context.bot, actor.chat_id, context.views.status(outcome))


async def language(update: Update, context: Context) -> None:
    """Offers the language choice."""
    actor = actor_of(update)
    outcome = await context.services.intake.greet(actor)
    await send(context.bot, actor.chat_id, context.views.language_menu(outcome.citizen))


async def unknown_command(update: Update, context: Context) -> None:
    """Answers a command the bot does not know, then repeats the current question."""
    actor = actor_of(update)
    outcome = await context.services.intake.greet(actor)
    if outcome.step is None:
        await send(context.bot, actor.chat_id, context.views.no_report(outcome.citizen))
        return
    outcome.notices.append(Notice.WRONG_INPUT)
    await send(context.bot, actor.chat_id, context.views.intake(outcome))


async def on_menu_button(update: Update, context: Context) -> None:
    """Applies a press on the main menu (``m|<action>[|<argument>]``)."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    if not private_press(update):  # the menu acts only in the presser's own chat
        await query.answer()
        return
    actor = actor_of(update)
    parts = query.data.split("|")
    intake = context.services.intake
    views = context.views
    action = parts[1] if len(parts) > 1 else ""
    outcome = None
    if action == "report":
        outcome = await intake.start_report(actor)
        screen = views.intake(outcome)
    elif action == "status":
        screen = views.status(await intake.status(actor))
    elif action == "language" and len(parts) == 2:
        screen = views.language_menu((await intake.greet(actor)).citizen)
    elif action == "lang" and len(parts) == 3 and parts[2] in SUPPORTED_LANGUAGES:
        outcome = await intake.set_language(actor, parts[2])
        screen = views.language_set(outcome.citizen)
        if outcome.step is not None:
            prompt = views.intake(outcome)
            screen.replies.extend(prompt.replies)
            screen.prompted = prompt.prompted
    else:  # not one of ours: an old or forged button
        outcome = await intake.greet(actor)
        outcome.notices.append(Notice.STALE_BUTTON)
        screen = views.intake(outcome)
    shown = await show(
        context.bot, query, screen, answered_text(context, query.message, query.data)
    )
    if outcome is not None:
        remember_screen(context, outcome, screen, shown)


async def on_error(update: object, context: Context) -> None:
    """Logs a reference and the error class (no personal data) and tells the citizen."""
    reference = secrets.token_hex(4).upper()
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    if isinstance(error, StorageBusy):  # a state of the database, not a bug: no traceback
        log.warning("update %s not saved: the database is busy (%s)", update_id, error)
    else:
        log.error(
            "error %s while handling update %s: %s",
            reference,
            update_id,
            type(error).__name__,
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if update.effective_chat.type != "private" or isinstance(error, Forbidden):
        if isinstance(error, Forbidden) and update.effective_user is not None:
            await _mark_blocked(context, update.effective_user.id)
        return
    language = await _language(update, context)
    busy = isinstance(error, StorageBusy)  # nothing was saved: ask for it again, plainly
    text = context.views.busy(language) if busy else context.views.error(language, reference)
    try:
        await context.bot.send_message(update.effective_chat.id, text.text)
    except Exception as exc:  # the error message itself failed: only log
        log.warning("could not tell the citizen about error %s: %s", reference,
                    type(exc).__name__)  # fmt: skip
    if update.callback_query is not None:
        with contextlib.suppress(Exception):  # an unanswered spinner is the lesser evil
            await update.callback_query.answer()


async def _language(update: Update, context: Context) -> str:
    """The citizen's chosen language; Telegram's guess when the database cannot tell."""
    user = update.effective_user
    default = context.services.settings.default_language
    if user is None:
        return default
    try:
        chosen = await context.services.queries.language_of(user.id)
    except Exception as exc:  # the database may be what failed
        log.warning("could not read the citizen's language: %s", type(exc).__name__)
        chosen = None
    return chosen or resolve_language(user.language_code, default)


async def _mark_blocked(context: Context, telegram_id: int) -> None:
    try:
        await context.services.intake.mark_blocked(telegram_id)
    except Exception as exc:
        log.warning("could not mark citizen as blocked: %s", type(exc).__name__)
