"""The operators' group (``OPERATOR_CHAT_ID``): card buttons, posts in a ticket's topic,
``/queue``, ``/timeline`` and the roster commands.

Each handler: guard → input → service → render → reply. The services check the roster
(a non-member's press is answered «not allowed», a non-member's post is ignored).

Which message is for whom: a post in a ticket's topic, or (in a chat without topics) a reply
to its card, goes to the citizen; ``!`` makes it an internal note. A **location** from an
operator **sent as a reply to the card** corrects the ticket's location (the operator knows
better where the incident is); any other location in the topic is relayed to the citizen
like every other message (e.g. a meeting point).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode

from bot.domain.lifecycle import Staff
from bot.domain.model import Category, Disposition, Ticket
from bot.services.console import ConsoleResult, ConsoleStatus
from bot.services.relay import OperatorPost, PostStatus
from bot.services.roster import RosterChange, RosterResult
from handlers.context import Context

log = logging.getLogger(__name__)

NOT_FOUND = ConsoleResult(ConsoleStatus.NOT_FOUND)
REFUSED = RosterResult(RosterChange.NOT_ALLOWED)

#: Message kinds relayed to the citizen, with where their file id is.
MEDIA_KINDS = ("photo", "voice", "video", "video_note", "document", "audio", "animation", "sticker")


def _staff(update: Update) -> Staff:
    user = update.effective_user
    if user is None:
        raise ValueError("update without user")
    return Staff(user.id, user.full_name)


def _thread_of(message: Message) -> int | None:
    """The forum topic of a message (None: General, or a chat without topics)."""
    return message.message_thread_id if message.is_topic_message else None


def _replied_card(message: Message) -> int | None:
    """The id of the message replied to, unless it is only the topic's root."""
    reply = message.reply_to_message
    if reply is None or reply.forum_topic_created is not None:
        return None
    return reply.message_id


def _kind_and_file(message: Message) -> tuple[str, str | None]:
    if message.photo:
        return "photo", message.photo[-1].file_id
    for kind in MEDIA_KINDS[1:]:
        media = getattr(message, kind)
        if media is not None:
            return kind, str(media.file_id)
    if message.location is not None:
        return "location", None
    if message.venue is not None:
        return "venue", None
    if message.contact is not None:
        return "contact", None
    return "text", None


# -- card buttons -------------------------------------------------------------------------------


async def on_card_button(update: Update, context: Context) -> None:
    """``o|<action>|<ticket id>[|arg]``: lifecycle actions and the pickers of the card."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    parts = query.data.split("|")
    views = context.operator_views
    if len(parts) < 3 or not parts[2].isdigit():
        await query.answer(views.action_answer(NOT_FOUND))
        return
    action, ticket_id, arg = parts[1], int(parts[2]), parts[3] if len(parts) > 3 else ""
    staff = _staff(update)
    services = context.services
    if not await services.roster.is_operator(staff.telegram_id or 0):
        log.info("card button %s on ticket %s refused: not a roster member", action, ticket_id)
        await query.answer(views.not_allowed(), show_alert=True)
        return
    message = query.message if isinstance(query.message, Message) else None
    if action in ("dispatch", "dsel", "eta", "resolve", "cats", "prios", "card", "pin"):
        await _picker(context, query.answer, message, action=action, ticket_id=ticket_id, arg=arg)
        return
    result = await _act(context, staff, action, ticket_id, arg)
    if result is None:
        await query.answer(views.action_answer(NOT_FOUND))
        return
    await query.answer(views.action_answer(result), show_alert=not result.ok)
    if result.ok:
        services.outbox.wake()  # the card edit, the citizen's notice and the board
    elif message is not None and result.ticket is not None:
        await _show_card_buttons(context, message, result.ticket)


async def _act(
    context: Context, staff: Staff, action: str, ticket_id: int, arg: str
) -> ConsoleResult | None:
    """Carries out a lifecycle button (None: not a button of ours)."""
    console = context.services.console
    if action == "claim":
        return await console.claim(staff, ticket_id)
    if action == "release":
        return await console.release(staff, ticket_id)
    if action == "dgo":
        codes = context.operator_views.chosen_agencies(_mask(arg))
        return await console.dispatch(staff, ticket_id, codes)
    if action == "enroute":
        minutes = int(arg) if arg.isdigit() else 0
        return await console.en_route(staff, ticket_id, minutes or None)
    if action == "onscene":
        return await console.on_scene(staff, ticket_id)
    if action == "resolved" and arg in set(Disposition):
        return await console.resolve(staff, ticket_id, Disposition(arg))
    if action == "reopen":
        return await console.reopen(staff, ticket_id)
    if action == "setcat" and arg in set(Category):
        return await console.correct_category(staff, ticket_id, Category(arg))
    if action == "setprio" and arg.isdigit():
        return await console.correct_priority(staff, ticket_id, int(arg))
    return None


def _mask(arg: str) -> int:
    try:
        return int(arg, 16) if arg else 0
    except ValueError:
        return 0


async def _picker(
    context: Context,
    answer: Callable[..., Awaitable[bool]],
    message: Message | None,
    *,
    action: str,
    ticket_id: int,
    arg: str,
) -> None:
    """Shows a picker (agencies, ETA, disposition, category, priority) in place of the card's
    buttons, the card's buttons again, or the native pin; nothing changes on the ticket."""
    views = context.operator_views
    detail = await context.services.queries.detail(ticket_id)
    if detail is None or message is None:
        await answer(views.action_answer(NOT_FOUND))
        return
    ticket = detail.ticket
    if action == "pin":
        await answer()
        location = ticket.incident_location or ticket.reporter_location
        if location is not None:
            await context.bot.send_location(
                message.chat_id, latitude=location.lat, longitude=location.lon,
                message_thread_id=_thread_of(message), reply_to_message_id=message.message_id,
            )  # fmt: skip
        return
    markup: InlineKeyboardMarkup | None
    if action in {"dispatch", "dsel"}:
        assigned = [a.agency_code for a in detail.assignments]
        suggested = await context.services.agencies.suggestions(ticket_id)
        mask = _mask(arg) if action == "dsel" else views.mask_of(suggested, assigned)
        markup = views.agency_picker(ticket_id, mask, assigned, suggested=suggested)
    elif action == "eta":
        markup = views.eta_picker(ticket_id)
    elif action == "resolve":
        markup = views.disposition_picker(ticket_id)
    elif action == "cats":
        markup = views.category_picker(ticket_id)
    elif action == "prios":
        markup = views.priority_picker(ticket_id)
    else:  # "card": back to the card's own buttons
        markup = views.card_keyboard(ticket)
    await answer()
    await _edit_markup(message, markup)


async def _show_card_buttons(context: Context, message: Message, ticket: Ticket) -> None:
    await _edit_markup(message, context.operator_views.card_keyboard(ticket))


async def _edit_markup(message: Message, markup: InlineKeyboardMarkup | None) -> None:
    try:
        await message.edit_reply_markup(reply_markup=markup)
    except Exception as exc:  # "message is not modified" and friends: the card stays usable
        log.info("could not change the card's buttons: %s", type(exc).__name__)


# -- posts in a ticket's topic ------------------------------------------------------------------


async def on_group_message(update: Update, context: Context) -> None:
    """A post in the operators' chat: relayed to the citizen of its ticket, kept as a note
    (``!``), a location correction (a location replying to the card), or ignored."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or user.is_bot:
        return
    edited = update.edited_message is not None
    kind, file_id = _kind_and_file(message)
    if kind == "location" and edited:
        return  # a live location moving: not a new message for the citizen
    services = context.services
    card = _replied_card(message)
    if kind == "location" and card is not None and message.location is not None:
        ticket = await services.queries.by_operator_place(message.chat_id, card_message_id=card)
        if ticket is not None and ticket.operator_card_message_id == card and ticket.id:
            location = message.location
            corrected = await services.console.correct_location(
                _staff(update), ticket.id, location.latitude, location.longitude,
                location.horizontal_accuracy,
            )  # fmt: skip
            if corrected.status is not ConsoleStatus.NOT_ALLOWED:
                await message.reply_text(context.operator_views.location_corrected(corrected))
                services.outbox.wake()
            return
    post = OperatorPost(
        telegram_id=user.id, chat_id=message.chat_id, message_id=message.message_id, kind=kind,
        text=message.text or message.caption, file_id=file_id, thread_id=_thread_of(message),
        reply_to_message_id=card, edited=edited,
    )  # fmt: skip
    result = await services.relay.from_operator(post)
    if result.status is PostStatus.NOTE:
        await message.reply_text(context.operator_views.noted())
    elif result.status is PostStatus.RELAYED:
        services.outbox.wake()


# -- commands -----------------------------------------------------------------------------------


async def queue(update: Update, context: Context) -> None:
    """``/queue``: the open tickets in priority order (roster members only)."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or not await context.services.roster.is_operator(user.id):
        return
    board = await context.services.queue.board()
    await message.reply_text(context.operator_views.board(board), parse_mode=ParseMode.HTML)


async def timeline(update: Update, context: Context) -> None:
    """``/timeline`` in a ticket's topic (or replying to its card): every event in WIB."""
    message = update.effective_message
    if message is None or update.effective_user is None:
        return
    services, views = context.services, context.operator_views
    ticket = await services.queries.by_operator_place(
        message.chat_id, thread_id=_thread_of(message), card_message_id=_replied_card(message)
    )
    if ticket is None or ticket.id is None:
        if await services.roster.is_operator(update.effective_user.id):
            await message.reply_text(views.wrong_place())
        return
    result = await services.console.timeline(_staff(update), ticket.id)
    if not result.ok or result.ticket is None:
        return  # not a roster member: nothing to show
    ticket = result.ticket
    names = {
        m.telegram_id: m.display_name
        for m in await services.roster.members(include_inactive=True)
        if m.display_name
    }
    if ticket.claimed_by is not None and ticket.claimed_by_name:
        names.setdefault(ticket.claimed_by, ticket.claimed_by_name)
    await message.reply_text(views.timeline(ticket, result.events, names))


async def operator(update: Update, context: Context) -> None:
    """``/operator add|remove [id] [admin]`` (or replying to the person's message); admins."""
    message = update.effective_message
    if message is None or update.effective_user is None:
        return
    roster, views = context.services.roster, context.operator_views
    if not await roster.is_admin(update.effective_user.id):
        if await roster.is_operator(update.effective_user.id):
            await message.reply_text(views.roster_answer(REFUSED, update.effective_user.id))
        return
    args = [a.lower() for a in (context.args or [])]
    target, name = _target(message, args)
    if not args or args[0] not in ("add", "remove") or target is None:
        await message.reply_text(views.roster_usage())
        return
    by = _staff(update)
    if args[0] == "add":
        result = await roster.add(by, target, name, admin="admin" in args)
    else:
        result = await roster.remove(by, target)
    await message.reply_text(views.roster_answer(result, target))


def _target(message: Message, args: list[str]) -> tuple[int | None, str | None]:
    """The person an /operator command is about: an id argument, or the replied-to sender."""
    for arg in args[1:]:
        if arg.lstrip("-").isdigit():
            return int(arg), None
    reply = message.reply_to_message
    sender = reply.from_user if reply is not None else None
    if reply is not None and reply.forum_topic_created is None and sender and not sender.is_bot:
        return sender.id, sender.full_name
    return None, None


async def operators(update: Update, context: Context) -> None:
    """``/operators``: the active roster (roster members only)."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or not await context.services.roster.is_operator(user.id):
        return
    members = await context.services.roster.members()
    await message.reply_text(context.operator_views.roster(members))
