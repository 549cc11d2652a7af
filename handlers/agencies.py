"""The buttons of the agency card in an agency's chat (``a|…``).

Guard → input → service → answer. The service decides whether the press counts (only from
the agency's own chat, and from its ``members`` when the file lists them); the card's edit,
the operators' notice and the citizen's notice go out through the outbox.
"""

from __future__ import annotations

import logging

from telegram import InlineKeyboardMarkup, Message, Update

from bot.domain.handoff import DeclineReason
from bot.services.agencies import AgencyResult, AgencyStatus
from handlers.agency_views import BUTTON_STEPS, AgencyViews, parse
from handlers.context import Context

log = logging.getLogger(__name__)


async def on_agency_button(update: Update, context: Context) -> None:
    """Records an agency's step, or shows the ETA / reason choices in place of the buttons."""
    query = update.callback_query
    if query is None or query.data is None or update.effective_chat is None:
        return
    parsed = parse(query.data)
    user = update.effective_user
    views = AgencyViews.from_settings(context.services.settings)
    if parsed is None or user is None:
        await query.answer(views.answer(AgencyResult(AgencyStatus.NOT_FOUND), None))
        return
    button, ticket_id, code, arg = parsed
    agencies = context.services.agencies
    chat_id = update.effective_chat.id
    if not agencies.may_press(chat_id, user.id, code):
        await query.answer(views.answer(AgencyResult(AgencyStatus.NOT_ALLOWED), None),
                           show_alert=True)  # fmt: skip
        return
    message = query.message if isinstance(query.message, Message) else None
    if button in ("eta", "no", "back"):
        await query.answer()
        if message is not None:
            markup = (
                views.eta_picker(ticket_id, code) if button == "eta"
                else views.reason_picker(ticket_id, code) if button == "no"
                else await _current_buttons(context, views, ticket_id, code)
            )  # fmt: skip
            await message.edit_reply_markup(markup)
        return
    step = BUTTON_STEPS.get(button)
    if step is None:
        await query.answer(views.answer(AgencyResult(AgencyStatus.NOT_FOUND), None))
        return
    eta = int(arg) if button == "er" and arg.isdigit() else None
    reason = DeclineReason(arg) if button == "nr" and arg in set(DeclineReason) else None
    result = await agencies.press(
        chat_id, user.id, ticket_id, code, step, eta_minutes=eta, reason=reason
    )
    await query.answer(views.answer(result, step), show_alert=not result.ok)
    if result.ok:
        context.services.outbox.wake()  # the card's edit and everyone's notices
    elif message is not None and result.assignment is not None:
        await message.edit_reply_markup(views.buttons(ticket_id, code, result.assignment))


async def _current_buttons(
    context: Context, views: AgencyViews, ticket_id: int, code: str
) -> InlineKeyboardMarkup | None:
    detail = await context.services.queries.detail(ticket_id)
    assignments = detail.assignments if detail else ()
    assignment = next((a for a in assignments if a.agency_code == code), None)
    return views.buttons(ticket_id, code, assignment)
