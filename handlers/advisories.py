"""Advisories at the edge: citizens' subscription menu, the admins' broadcast composer.

The composer is one ``ConversationHandler`` (the table in :func:`broadcast_conversation`):
text (or a photo with a caption) → target (all, kecamatan, kelurahan, radius around a
shared location) → preview with the recipient count → confirm. The draft lives in the
database (``advisories``); the conversation only remembers its id.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from enum import IntEnum

from telegram import ReplyKeyboardRemove, Update
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.domain.advisory import Target, TargetKind
from bot.services.advisories import InvalidInput, NotAllowed
from handlers.context import Context, actor_of, private_press
from handlers.render import send
from handlers.views import Screen, Text

log = logging.getLogger(__name__)

PRIVATE = filters.ChatType.PRIVATE
DRAFT_KEY = "advisory_draft"
CHOSEN_KEY = "advisory_kecamatan"
CENTRE_KEY = "advisory_centre"
TIMEOUT_SECONDS = 15 * 60


class Step(IntEnum):
    """The composer's named states."""

    TEXT = 1
    TARGET = 2
    KECAMATAN = 3
    KELURAHAN = 4
    LOCATION = 5
    RADIUS = 6
    PREVIEW = 7


# -- citizens: the subscription menu (m|sub|...) ----------------------------------------------


async def on_subscription_button(update: Update, context: Context) -> None:
    """Shows or changes the citizen's subscription (``m|advisories`` and ``m|sub|…``)."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    if not private_press(update):  # the menu acts only in the presser's own chat
        await query.answer()
        return
    actor = actor_of(update)
    service = context.services.subscriptions
    views = context.advisory_views
    parts = query.data.split("|")
    action = parts[2] if len(parts) > 2 and parts[1] == "sub" else "show"
    if action == "city":
        screen = views.subscription(await service.subscribe(actor, None))
    elif action == "kec" and len(parts) == 4:
        screen = views.subscription(await service.subscribe(actor, parts[3]))
    elif action == "off":
        screen = views.subscription(await service.unsubscribe(actor))
    elif action == "pick":
        screen = views.kecamatan_menu(await service.show(actor))
    else:
        screen = views.subscription(await service.show(actor))
    await query.answer()
    await send(context.bot, actor.chat_id, screen)


# -- admins: the composer ---------------------------------------------------------------------


async def start(update: Update, context: Context) -> int:
    """Opens a draft and asks for its text (admins only)."""
    actor = actor_of(update)
    views = context.advisory_views
    try:
        draft = await context.services.advisories.start(actor.telegram_id)
    except NotAllowed:
        await _reply(context, actor.chat_id, views.not_admin())
        return ConversationHandler.END
    _user_data(context)[DRAFT_KEY] = draft.id
    await _reply(context, actor.chat_id, views.ask_text())
    return Step.TEXT


async def take(update: Update, context: Context) -> int:
    """Takes a draft made from a CAP alert (``b|take|id``) and shows its preview."""
    actor = actor_of(update)
    views = context.advisory_views
    advisory_id = int((await _pressed(update)).removeprefix("take|"))
    service = context.services.advisories
    try:
        await service.take_draft(actor.telegram_id, advisory_id)
        preview = await service.preview(actor.telegram_id, advisory_id)
    except NotAllowed:
        await _reply(context, actor.chat_id, views.not_admin())
        return ConversationHandler.END
    except InvalidInput as exc:
        await _reply(context, actor.chat_id, views.invalid(exc.reason))
        return ConversationHandler.END
    _user_data(context)[DRAFT_KEY] = advisory_id
    await send(context.bot, actor.chat_id, views.preview(preview, service.kelurahan))
    return Step.PREVIEW


async def on_text(update: Update, context: Context) -> int:
    """Stores the text (or photo and caption) and asks for the target."""
    message = update.effective_message
    actor = actor_of(update)
    if message is None:
        return Step.TEXT
    photo = message.photo[-1].file_id if message.photo else None
    text = (message.caption if photo else message.text) or ""
    try:
        await context.services.advisories.set_content(
            actor.telegram_id, _draft(context), text, photo
        )
    except InvalidInput as exc:
        await _reply(context, actor.chat_id, context.advisory_views.invalid(exc.reason))
        return Step.TEXT
    await _reply(context, actor.chat_id, context.advisory_views.ask_target())
    return Step.TARGET


async def on_target(update: Update, context: Context) -> int:
    """Applies the chosen kind of target."""
    choice = await _pressed(update)
    actor = actor_of(update)
    views = context.advisory_views
    if choice == "all":
        return await _preview(context, actor.chat_id, actor.telegram_id, Target(TargetKind.ALL))
    if choice == "kec":
        _user_data(context)[CHOSEN_KEY] = set()
        await _reply(context, actor.chat_id, views.kecamatan_picker(set()))
        return Step.KECAMATAN
    if choice == "kel":
        await _reply(context, actor.chat_id, views.ask_kelurahan())
        return Step.KELURAHAN
    if choice == "rad":
        await _reply(context, actor.chat_id, views.ask_location())
        return Step.LOCATION
    await _reply(context, actor.chat_id, views.ask_target())
    return Step.TARGET


async def on_kecamatan(update: Update, context: Context) -> int:
    """Toggles a kecamatan (``b|k|code``) or finishes the choice (``b|kdone``)."""
    choice = await _pressed(update)
    actor = actor_of(update)
    chosen = _chosen(context)
    if choice == "kdone":
        target = Target(TargetKind.KECAMATAN, tuple(sorted(chosen)))
        return await _preview(context, actor.chat_id, actor.telegram_id, target, Step.KECAMATAN)
    code = choice.removeprefix("k|")
    if code in context.services.advisories.kecamatan:
        chosen.symmetric_difference_update({code})
    query = update.callback_query
    if query is not None and query.message is not None:
        await context.bot.edit_message_reply_markup(
            actor.chat_id, query.message.message_id,
            reply_markup=context.advisory_views.kecamatan_keyboard(chosen),
        )  # fmt: skip
    return Step.KECAMATAN


async def on_kelurahan_name(update: Update, context: Context) -> int:
    """Finds the typed kelurahan; asks which one when the name repeats."""
    message = update.effective_message
    actor = actor_of(update)
    options = context.services.advisories.kelurahan_named(message.text or "" if message else "")
    views = context.advisory_views
    if not options:
        await _reply(context, actor.chat_id, views.invalid("unknown_kelurahan"))
        return Step.KELURAHAN
    if len(options) > 1:
        await _reply(context, actor.chat_id, views.kelurahan_choice(options))
        return Step.KELURAHAN
    target = Target(TargetKind.KELURAHAN, (options[0][0],))
    return await _preview(context, actor.chat_id, actor.telegram_id, target, Step.KELURAHAN)


async def on_kelurahan_button(update: Update, context: Context) -> int:
    """Takes the kelurahan chosen among those of the same name (``b|l|code``)."""
    choice = await _pressed(update)
    actor = actor_of(update)
    target = Target(TargetKind.KELURAHAN, (choice.removeprefix("l|"),))
    return await _preview(context, actor.chat_id, actor.telegram_id, target, Step.KELURAHAN)


async def on_location(update: Update, context: Context) -> int:
    """Remembers the centre and asks for the radius."""
    message = update.effective_message
    actor = actor_of(update)
    if message is None or message.location is None:
        return Step.LOCATION
    _user_data(context)[CENTRE_KEY] = (message.location.latitude, message.location.longitude)
    removed = Text("📍 ✓", ReplyKeyboardRemove())
    await _reply(context, actor.chat_id, removed)
    await _reply(context, actor.chat_id, context.advisory_views.ask_radius())
    return Step.RADIUS


async def on_radius(update: Update, context: Context) -> int:
    """Takes the radius (a button ``b|r|metres`` or typed metres) and shows the preview."""
    actor = actor_of(update)
    if update.callback_query is not None:
        raw = (await _pressed(update)).removeprefix("r|")
    else:
        message = update.effective_message
        raw = (message.text or "") if message else ""
    try:
        radius = float(raw.strip().lower().removesuffix("m").strip())
    except ValueError:
        await _reply(context, actor.chat_id, context.advisory_views.invalid("radius"))
        return Step.RADIUS
    centre = _user_data(context).get(CENTRE_KEY)
    lat, lon = centre if isinstance(centre, tuple) else (None, None)
    target = Target(TargetKind.RADIUS, (), lat, lon, radius)
    return await _preview(context, actor.chat_id, actor.telegram_id, target, Step.RADIUS)


async def on_preview(update: Update, context: Context) -> int:
    """Sends (``b|ok``), discards (``b|no``) or goes back to the target (``b|back``)."""
    choice = await _pressed(update)
    actor = actor_of(update)
    views = context.advisory_views
    service = context.services.advisories
    if choice == "back":
        await _reply(context, actor.chat_id, views.ask_target())
        return Step.TARGET
    if choice == "no":
        await service.discard(actor.telegram_id, _draft(context))
        await _reply(context, actor.chat_id, views.discarded())
        return _end(context)
    if choice != "ok":
        return Step.PREVIEW
    try:
        advisory = await service.confirm(actor.telegram_id, _draft(context), actor.chat_id)
    except InvalidInput as exc:
        await _reply(context, actor.chat_id, views.invalid(exc.reason))
        return _end(context)
    context.services.outbox.wake()
    await _reply(context, actor.chat_id, views.confirmed(advisory))
    return _end(context)


async def cancel(update: Update, context: Context) -> int:
    """Discards the draft in progress."""
    actor = actor_of(update)
    draft = _user_data(context).get(DRAFT_KEY)
    if isinstance(draft, int):
        with contextlib.suppress(NotAllowed, InvalidInput):  # already sent or discarded
            await context.services.advisories.discard(actor.telegram_id, draft)
    await _reply(context, actor.chat_id, context.advisory_views.discarded())
    return _end(context)


async def broadcast_cancel(update: Update, context: Context) -> None:
    """Stops the advisory being sent (admins only)."""
    actor = actor_of(update)
    views = context.advisory_views
    try:
        stopped = await context.services.advisories.cancel(actor.telegram_id)
    except NotAllowed:
        await _reply(context, actor.chat_id, views.not_admin())
        return
    if stopped is None:
        await _reply(context, actor.chat_id, views.nothing_to_cancel())
        return
    context.services.outbox.wake()
    await _reply(context, actor.chat_id, views.cancelling(stopped))


def broadcast_conversation() -> ConversationHandler[Context]:
    """The composer as one table of named states; /cancel from each, a 15-minute timeout."""
    text = PRIVATE & filters.TEXT & ~filters.COMMAND
    with warnings.catch_warnings():
        # per_message=False on purpose: the conversation is the admin's private chat, and its
        # buttons sit on several messages (picker, preview) of that one conversation.
        warnings.filterwarnings("ignore", "If 'per_message=False'", PTBUserWarning)
        return _conversation(text)


def _conversation(text: filters.BaseFilter) -> ConversationHandler[Context]:
    return ConversationHandler(
        entry_points=[
            CommandHandler("broadcast", start, filters=PRIVATE),
            CallbackQueryHandler(take, pattern=r"^b\|take\|\d+$"),
        ],
        states={
            Step.TEXT: [MessageHandler(PRIVATE & (filters.PHOTO | filters.TEXT) & ~filters.COMMAND,
                                       on_text)],
            Step.TARGET: [CallbackQueryHandler(on_target, pattern=r"^b\|")],
            Step.KECAMATAN: [CallbackQueryHandler(on_kecamatan, pattern=r"^b\|(k\||kdone$)")],
            Step.KELURAHAN: [
                MessageHandler(text, on_kelurahan_name),
                CallbackQueryHandler(on_kelurahan_button, pattern=r"^b\|l\|"),
            ],
            Step.LOCATION: [MessageHandler(PRIVATE & filters.LOCATION, on_location)],
            Step.RADIUS: [
                CallbackQueryHandler(on_radius, pattern=r"^b\|r\|"),
                MessageHandler(text, on_radius),
            ],
            Step.PREVIEW: [CallbackQueryHandler(on_preview, pattern=r"^b\|")],
        },
        fallbacks=[
            CommandHandler(["cancel", "batal"], cancel, filters=PRIVATE),
            CommandHandler("broadcast", start, filters=PRIVATE),
        ],
        allow_reentry=True,
        conversation_timeout=TIMEOUT_SECONDS,
        name="broadcast",
    )  # fmt: skip


# -- helpers ----------------------------------------------------------------------------------


async def _preview(
    context: Context, chat_id: int, admin_id: int, target: Target, retry: Step = Step.TARGET
) -> int:
    try:
        preview = await context.services.advisories.set_target(admin_id, _draft(context), target)
    except InvalidInput as exc:
        await _reply(context, chat_id, context.advisory_views.invalid(exc.reason))
        return retry
    screen = context.advisory_views.preview(preview, context.services.advisories.kelurahan)
    await send(context.bot, chat_id, screen)
    return Step.PREVIEW


async def _pressed(update: Update) -> str:
    query = update.callback_query
    if query is None or query.data is None:
        return ""
    await query.answer()
    return query.data.removeprefix("b|")


async def _reply(context: Context, chat_id: int, text: Text) -> None:
    await send(context.bot, chat_id, Screen([text]))


def _user_data(context: Context) -> dict[str, object]:
    data = context.user_data
    if data is None:
        raise RuntimeError("no user data for a private chat")
    return data


def _chosen(context: Context) -> set[str]:
    chosen = _user_data(context).get(CHOSEN_KEY)
    if not isinstance(chosen, set):
        chosen = set()
        _user_data(context)[CHOSEN_KEY] = chosen
    return chosen


def _draft(context: Context) -> int:
    draft = _user_data(context).get(DRAFT_KEY)
    if not isinstance(draft, int):
        raise InvalidInput("no_draft")
    return draft


def _end(context: Context) -> int:
    for key in (DRAFT_KEY, CHOSEN_KEY, CENTRE_KEY):
        _user_data(context).pop(key, None)
    return ConversationHandler.END
