"""Send functions of the operator console's outbox kinds (registered with ``@sends``).

Where a ticket's messages go in the operators' chat (``TelegramDeliverer.place``): into the
ticket's forum topic; in a chat without topics (not a forum, or the bot may not manage
topics: decided once at start, see :func:`detect_topics`), as replies to the ticket's card.
The topic is created by ``OPERATOR_TOPIC`` (must-deliver: the card waits for it);
``OPERATOR_CARD_EDIT`` edits the card in place
(«message is not modified» counts as sent); ``QUEUE_BOARD`` posts
the board in General and pins it the first time, then edits it (its message id is kept
in the sent row's result, see ``QueueService.board_message``); ``OPERATOR_NOTICE``
reopens a closed topic first when asked; ``CITIZEN_STATUS`` and ``CITIZEN_RELAY`` reach
the citizen in their language, an operator's message copied under the role header and
never forwarded (the operator's own account stays hidden).
"""

from __future__ import annotations

import logging
from html import escape

from telegram import Bot
from telegram.constants import ChatMemberStatus
from telegram.error import BadRequest, TelegramError

from bot.services.outbox_kinds import (
    CITIZEN_RELAY,
    CITIZEN_STATUS,
    OPERATOR_CARD_EDIT,
    OPERATOR_NOTICE,
    OPERATOR_TOPIC,
    OPERATOR_TOPIC_STATE,
    QUEUE_BOARD,
)
from bot.services.ports import DeliveryError, DeliveryResult, Fault
from handlers.delivery import Delivery, TelegramDeliverer, result_of, sends

log = logging.getLogger(__name__)

#: Telegram's words when the chat cannot have topics (or the bot may not create them).
NO_TOPICS = ("not a forum", "not enough rights", "chat_not_modified", "topics are disabled")
#: Operator messages whose copy can carry the role header as its caption.
CAPTIONED = frozenset({"photo", "video", "voice", "audio", "document", "animation"})
MAX_CAPTION = 1024


async def detect_topics(bot: Bot, chat_id: int | None) -> bool:
    """Whether the operators' chat is a forum where the bot may manage topics (asked once at
    start; when Telegram cannot tell, topics are tried, and the first refusal turns them off:
    everything about a ticket then replies to its card)."""
    if chat_id is None:
        return False
    try:
        chat = await bot.get_chat(chat_id)
        member = await bot.get_chat_member(chat_id, bot.id)
    except TelegramError as exc:  # try topics; a refused topic switches them off then
        log.warning("operators' chat: cannot tell whether topics work (%s)", type(exc).__name__)
        return True
    rights = member.status == ChatMemberStatus.OWNER or bool(
        getattr(member, "can_manage_topics", False)
    )
    topics = bool(chat.is_forum) and rights
    if topics:
        log.info("operators' chat is a forum: one topic per ticket")
    else:
        log.warning(
            "operators' chat without topics (forum: %s, may manage topics: %s): everything "
            "about a ticket replies to its card",
            bool(chat.is_forum), rights,
        )  # fmt: skip
    return topics


def _no_topics(error: BadRequest) -> bool:
    lowered = error.message.lower()
    return any(words in lowered for words in NO_TOPICS)


@sends(OPERATOR_TOPIC)
async def _operator_topic(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    chat = await d.operators_chat(delivery)
    ticket = delivery.ticket
    if ticket.operator_thread_id is not None:  # created already (a repeat)
        return DeliveryResult(chat_id=chat, thread_id=ticket.operator_thread_id)
    if not d.topics:
        return DeliveryResult(chat_id=chat)
    views = d.operator_views
    try:
        topic = await d.bot.create_forum_topic(
            chat, views.topic_name(ticket), icon_color=views.topic_color(ticket),
            **d.limits(delivery),
        )  # fmt: skip
    except BadRequest as exc:
        if not _no_topics(exc):
            raise
        log.warning("no topic for ticket %s (%s): replies to its card", ticket.id, exc.message)
        d.topics = False
        return DeliveryResult(chat_id=chat)
    return DeliveryResult(chat_id=chat, thread_id=topic.message_thread_id)


@sends(OPERATOR_CARD_EDIT)
async def _operator_card_edit(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    chat = await d.operators_chat(delivery)
    ticket = delivery.ticket
    if ticket.operator_card_message_id is None:
        return None  # no card yet: it shows the latest state when it is sent
    chat = ticket.operator_chat_id or chat
    delivery.chat_id = chat
    assignments = delivery.detail.assignments if delivery.detail else ()
    card = d.operator_views.card(ticket, delivery.citizen, assignments)
    return await d.edit_in_place(
        delivery, chat, ticket.operator_card_message_id, card.text, card.markup
    )


@sends(QUEUE_BOARD)
async def _queue_board(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    chat = await d.operators_chat(delivery)
    if d.queue is None:
        raise DeliveryError("no queue service", fault=Fault.REJECTED)
    async with d.board_lock:
        await d.pace_board(chat)  # the wait gathers every ticket that arrives meanwhile
        text = d.operator_views.board(await d.queue.board())  # fresh, as of this send
        board_id = d.boards.get(chat) or await d.queue.board_message(chat)
        if board_id is not None and d.board_texts.get(chat) == text:
            return DeliveryResult(chat_id=chat, message_id=board_id)  # shows this already
        result = await _edit_board(d, delivery, chat, board_id, text) if board_id else None
        if result is None:
            result = await _post_board(d, delivery, chat, text)
        d.board_sent(chat)
        if result.message_id is not None:
            d.boards[chat] = result.message_id
            d.board_texts[chat] = text
        return result


async def _edit_board(
    d: TelegramDeliverer, delivery: Delivery, chat: int, board_id: int, text: str
) -> DeliveryResult | None:
    """Edits the board in place; None when it is gone (deleted, too old): post anew."""
    try:
        return await d.edit_in_place(delivery, chat, board_id, text)
    except BadRequest as exc:
        log.warning("queue board %s cannot be edited (%s): posting anew", board_id,
                    exc.message)  # fmt: skip
        return None


async def _post_board(
    d: TelegramDeliverer, delivery: Delivery, chat: int, text: str
) -> DeliveryResult:
    """Posts the board in General and pins it (silently)."""
    limits = d.limits(delivery)
    sent = await d.bot.send_message(chat, text, **limits)
    try:
        await d.bot.pin_chat_message(chat, sent.message_id, disable_notification=True, **limits)
    except BadRequest as exc:  # no right to pin: the board is still there, unpinned
        log.warning("could not pin the queue board: %s", exc.message)
    return result_of(sent)


@sends(OPERATOR_NOTICE)
async def _operator_notice(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    chat = await d.operators_chat(delivery)
    ticket, payload = delivery.ticket, delivery.message.payload
    text = d.marked(delivery, d.operator_views.notice(ticket, payload))
    return result_of(
        await d.bot.send_message(chat, text, **d.place(delivery), **d.limits(delivery))
    )


@sends(OPERATOR_TOPIC_STATE)
async def _operator_topic_state(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    """Closes, reopens or renames the ticket's topic (nothing to do without one)."""
    ticket, action = delivery.ticket, delivery.message.payload.get("topic")
    thread = ticket.operator_thread_id
    if thread is None:
        return None  # not a forum, or the topic is not created yet (it is named as it is then)
    chat = ticket.operator_chat_id or await d.operators_chat(delivery)
    delivery.chat_id = chat
    limits = d.limits(delivery)
    try:
        if action == "close":
            await d.bot.close_forum_topic(chat, thread, **limits)
        elif action == "reopen":
            await d.bot.reopen_forum_topic(chat, thread, **limits)
        elif action == "rename":
            name = d.operator_views.topic_name(ticket)
            await d.bot.edit_forum_topic(chat, thread, name=name, **limits)
        else:
            raise DeliveryError(f"unknown topic action {action!r}", fault=Fault.REJECTED)
    except BadRequest as exc:  # already so ("TOPIC_NOT_MODIFIED"), deleted, or no right
        log.info("topic of ticket %s not changed (%s): %s", ticket.id, action, exc.message)
    return DeliveryResult(chat_id=chat, thread_id=thread)


@sends(CITIZEN_STATUS)
async def _citizen_status(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    ticket, citizen = delivery.ticket, delivery.citizen
    if citizen is None:
        raise DeliveryError("citizen not found", fault=Fault.REJECTED)
    delivery.chat_id = ticket.chat_id
    text = d.views.citizen_status(citizen, ticket, delivery.message.payload)
    sent = await d.bot.send_message(
        ticket.chat_id, text.text, reply_markup=text.markup, **d.limits(delivery)
    )
    return result_of(sent)


@sends(CITIZEN_RELAY)
async def _citizen_relay(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    """An operator's message to the citizen: a copy under «👮 Operator 112», never a forward."""
    ticket, citizen, payload = delivery.ticket, delivery.citizen, delivery.message.payload
    if citizen is None:
        raise DeliveryError("citizen not found", fault=Fault.REJECTED)
    chat = ticket.chat_id
    delivery.chat_id = chat
    limits = d.limits(delivery)
    header = d.views.citizen_relay_header(citizen, ticket, edited=bool(payload.get("edited")))
    kind = str(payload.get("kind", "text"))
    text = payload.get("text")
    text = text if isinstance(text, str) else ""
    if kind == "text":
        sent = await d.bot.send_message(chat, f"{header}\n{escape(text)}", **limits)
        return result_of(sent)
    from_chat = int(str(payload["from_chat_id"]))
    message_id = int(str(payload["message_id"]))
    caption = f"{header}\n{escape(text)}" if text else header
    if kind in CAPTIONED and len(caption) <= MAX_CAPTION:
        copied = await d.bot.copy_message(chat, from_chat, message_id, caption=caption, **limits)
        return DeliveryResult(chat_id=chat, message_id=copied.message_id)
    # Too long for a caption, or a kind without one (location, sticker…): the header first,
    # then the copy as it is.
    first = await d.bot.send_message(chat, header, **limits)
    await d.bot.copy_message(chat, from_chat, message_id, **limits)
    return result_of(first)
