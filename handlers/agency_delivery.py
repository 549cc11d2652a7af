"""Send functions of the agency kinds: the card in the agency's chat, its edits, reminders.

Registered with ``@sends`` in the Telegram deliverer's table (``handlers/delivery.py``).
Each renders from the ticket and the agency's assignment as they are when the row is sent.
"""

from __future__ import annotations

from telegram import ReplyParameters

from bot.config import AgencyConfig
from bot.domain.model import Assignment
from bot.services.outbox_kinds import AGENCY_CARD, AGENCY_CARD_EDIT, AGENCY_REMINDER
from bot.services.ports import DeliveryError, DeliveryResult, Fault
from handlers.agency_views import AgencyViews
from handlers.delivery import Delivery, TelegramDeliverer, result_of, sends


def _views(d: TelegramDeliverer) -> AgencyViews:
    views = d.views
    return AgencyViews(views.zone, views.operator_language, views.phone)


def _agency(d: TelegramDeliverer, delivery: Delivery) -> tuple[AgencyConfig, int]:
    code = str(delivery.message.payload.get("agency", ""))
    agency = d.agencies.get(code)
    if agency is None:
        raise DeliveryError(f"agency {code} is not in the agencies file", fault=Fault.REJECTED)
    if agency.telegram_chat_id is None:
        raise DeliveryError(f"agency {code} has no telegram_chat_id", fault=Fault.REJECTED)
    return agency, agency.telegram_chat_id


def _assignment(delivery: Delivery, code: str) -> Assignment | None:
    assignments = delivery.detail.assignments if delivery.detail else ()
    return next((a for a in assignments if a.agency_code == code), None)


@sends(AGENCY_CARD)
async def _agency_card(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    agency, chat = _agency(d, delivery)
    assignment = _assignment(delivery, agency.code)
    if assignment is not None and assignment.card_message_id is not None:  # sent already
        return DeliveryResult(
            chat_id=assignment.card_chat_id, message_id=assignment.card_message_id
        )
    chat = await d.chat_of(delivery, chat)
    card = _views(d).card(delivery.ticket, delivery.citizen, agency, assignment)
    sent = await d.bot.send_message(
        chat, d.marked(delivery, card.text), reply_markup=card.markup, **d.limits(delivery)
    )
    return result_of(sent)


@sends(AGENCY_CARD_EDIT)
async def _agency_card_edit(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    agency, _chat = _agency(d, delivery)
    assignment = _assignment(delivery, agency.code)
    if assignment is None or assignment.card_message_id is None:
        raise DeliveryError("the agency's card is not sent yet")  # retried after the card
    chat = await d.chat_of(delivery, assignment.card_chat_id or _chat)
    card = _views(d).card(delivery.ticket, delivery.citizen, agency, assignment)
    return await d.edit_in_place(delivery, chat, assignment.card_message_id, card.text, card.markup)


@sends(AGENCY_REMINDER)
async def _agency_reminder(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    agency, chat = _agency(d, delivery)
    assignment = _assignment(delivery, agency.code)
    if assignment is not None and assignment.acknowledged_at is not None:
        return None  # acknowledged meanwhile: nothing to remind
    waited = int(str(delivery.message.payload.get("waited_seconds", 0)))
    chat = await d.chat_of(delivery, (assignment.card_chat_id if assignment else None) or chat)
    reply = None
    if assignment is not None and assignment.card_message_id is not None:
        reply = ReplyParameters(assignment.card_message_id, allow_sending_without_reply=True)
    text = _views(d).reminder(delivery.ticket, waited)
    sent = await d.bot.send_message(chat, text, reply_parameters=reply, **d.limits(delivery))
    return result_of(sent)
