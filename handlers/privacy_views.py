"""What a citizen reads about their personal data: the notice, their data, the erasure.

The notice is produced from the settings (controller, contact, the two retention periods),
so it says what the code does. Callback data: ``p|notice``, ``p|erase|yes``, ``p|erase|no``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.config import Settings
from bot.domain.model import Direction, Location, RelayMessage, Ticket
from bot.i18n import Translate, gettext_for
from bot.services.privacy import EraseStatus, Erasure, HeldTicket, MyData
from handlers.views import CATEGORY_LABELS, STATUS_LABELS, Screen, Text, Views

TICKETS_SHOWN = 10
"""Latest reports listed by /datasaya at most."""
MESSAGE_BUDGET = 3800
"""Characters of the /datasaya answer (Telegram takes 4096): fewer reports when long."""
TEXT_SHOWN = 200


def commands(language: str) -> tuple[str, str]:
    """The data-access and erasure commands in the citizen's language."""
    return ("/datasaya", "/hapusdata") if language == "id" else ("/mydata", "/deletemydata")


def _cut(text: str, limit: int = TEXT_SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PrivacyViews:
    """Renders the privacy notice, /datasaya and /hapusdata."""

    def __init__(self, views: Views, settings: Settings) -> None:
        self.views = views
        self.controller = settings.privacy_controller
        self.contact = settings.privacy_contact
        self.retention_days = settings.retention_days
        self.draft_retention_days = settings.draft_retention_days

    def notice(self, language: str) -> Screen:
        """The privacy notice: who, what, why, how long, the rights and their commands."""
        _ = gettext_for(language)
        see, delete = commands(language)
        contact = (
            _("Contact about your data: {contact}.").format(contact=escape(self.contact))
            if self.contact
            else _("Questions about your data: write to the operators in this chat.")
        )
        text = "\n\n".join(
            [
                _("🔒 <b>Privacy notice</b>"),
                _("Controller: {controller}. {contact}").format(
                    controller=escape(self.controller), contact=contact
                ),
                _(
                    "<b>What we keep:</b> your Telegram account, the name and phone number you "
                    "give, the place of the emergency, what you write and send (text, photos, "
                    "voice) and the time of each step."
                ),
                _(
                    "<b>Why:</b> only to handle your reports: Call Center 112 operators and the "
                    "services sent to help see them. Advisories only if you subscribe."
                ),
                _(
                    "<b>How long:</b> {days} days after a report is closed; reports never sent: "
                    "{draft_days} days. Then your name, phone, texts, media and the exact place "
                    "are erased; only anonymous statistics remain (category, kecamatan, times)."
                ).format(days=self.retention_days, draft_days=self.draft_retention_days),
                _(
                    "<b>Your rights</b> (UU No. 27/2022 on Personal Data Protection): see your "
                    "data with {see}; delete it with {delete} (an open report is kept until it "
                    "is closed); withdraw your advisory subscription in the menu; to correct "
                    "something, tell the operators in this chat."
                ).format(see=see, delete=delete),
            ]
        )
        return Screen([Text(text)])

    def my_data(self, data: MyData) -> Screen:
        """Everything held about the citizen, readable."""
        _ = gettext_for(data.language)
        citizen = data.citizen
        if citizen is None:
            return Screen([Text(_("📄 We hold no data about you."))])
        lines = [_("📄 <b>Your data</b>")]
        lines.append(_("Telegram account: {id}").format(id=citizen.telegram_id))
        if citizen.username:
            lines.append(_("Username: @{username}").format(username=escape(citizen.username)))
        lines.append(_("Name: {name}").format(name=escape(citizen.name or "—")))
        lines.append(
            _("Phone: {phone}").format(phone=escape(citizen.phone_e164 or "—"))
            + (_(" (verified)") if citizen.phone_verified else "")
        )
        if citizen.subscribed:
            lines.append(
                _("Advisories: subscribed since {time}").format(
                    time=self.views.local_time(citizen.subscribed_at)
                    if citizen.subscribed_at
                    else "—"
                )
            )
        else:
            lines.append(_("Advisories: not subscribed"))
        if citizen.erase_requested_at is not None:
            lines.append(_("Erasure requested: the rest goes when your open reports close."))
        lines.append(_("<b>Reports: {n}</b>").format(n=len(data.tickets)))
        footer = _("To delete your data: {delete}").format(delete=commands(data.language)[1])
        used = len("\n".join([*lines, footer])) + 60  # room for the «older reports» line
        shown = 0
        for held in data.tickets[:TICKETS_SHOWN]:
            entry = self._ticket(held, _)
            if used + len(entry) + 1 > MESSAGE_BUDGET:
                break
            lines.append(entry)
            used += len(entry) + 1
            shown += 1
        if len(data.tickets) > shown:
            lines.append(_("…and {n} older reports.").format(n=len(data.tickets) - shown))
        lines.append(footer)
        return Screen([Text("\n".join(lines))])

    def _ticket(self, held: HeldTicket, _: Translate) -> str:
        ticket = held.ticket
        category = _(CATEGORY_LABELS[ticket.category]) if ticket.category else "—"
        head = _("• <b>{ref}</b> · {category} · {status} · {time}").format(
            ref=escape(ticket.ref or _("draft")),
            category=category,
            status=_(STATUS_LABELS[ticket.status]),
            time=self.views.local_time(ticket.submitted_at or ticket.created_at),
        )
        if ticket.anonymised_at is not None:
            return head + "\n   " + _("personal data erased; statistics kept")
        parts = [head]
        place = _place(ticket.incident_location)
        if place:
            parts.append(_("Place: {place}").format(place=place))
        if ticket.caller_name or ticket.caller_phone_e164:
            parts.append(
                _("Name: {name} · phone: {phone}").format(
                    name=escape(ticket.caller_name or "—"),
                    phone=escape(ticket.caller_phone_e164 or "—"),
                )
            )
        if ticket.details:
            parts.append(_("Details: {text}").format(text=escape(_cut(ticket.details))))
        parts.append(_messages_line(ticket, held.messages, _))
        return "\n   ".join(parts)

    def erase_confirm(self, erasure: Erasure) -> Screen:
        """Asks before erasing; says what goes and what is kept."""
        _ = gettext_for(erasure.language)
        if erasure.status is EraseStatus.NOTHING:
            return Screen([Text(_("📄 We hold no data about you: there is nothing to delete."))])
        lines = [
            _("🗑 <b>Delete your data?</b>"),
            _(
                "Your name, phone number and the personal details of {n} reports (texts, "
                "photos, exact place) are erased. Anonymous statistics stay. This cannot be "
                "undone."
            ).format(n=erasure.tickets),
        ]
        if erasure.open_refs:
            lines.append(self._kept(erasure.open_refs, _))
        if erasure.subscribed:
            lines.append(_("Your advisory subscription ends."))
        markup = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(_("🗑 Yes, delete"), callback_data="p|erase|yes"),
                    InlineKeyboardButton(_("Keep my data"), callback_data="p|erase|no"),
                ]
            ]
        )
        return Screen([Text("\n\n".join(lines), markup)])

    @staticmethod
    def _kept(refs: Sequence[str], _: Translate) -> str:
        return _(
            "Your open reports {refs} are kept until they are closed: the operators still need "
            "them to help you. They are erased as soon as they close."
        ).format(refs=", ".join(f"<b>{escape(ref)}</b>" for ref in refs))

    def erased(self, erasure: Erasure) -> Screen:
        """The answer to a confirmed erasure (with the voice fallback)."""
        _ = gettext_for(erasure.language)
        if erasure.status is EraseStatus.NOTHING:
            lines = [_("📄 We hold no data about you: there is nothing to delete.")]
        elif erasure.status is EraseStatus.PENDING:
            lines = [_("✅ Your data have been deleted."), self._kept(erasure.open_refs, _)]
        else:
            lines = [
                _("✅ Your data have been deleted. If you write again, we start afresh."),
            ]
        lines.append(self.views.fallback(_))
        return Screen([Text("\n\n".join(lines))])

    def erase_kept(self, language: str) -> Screen:
        """The citizen changed their mind."""
        _ = gettext_for(language)
        return Screen([Text(_("👍 Nothing was deleted."))])


def _place(location: Location | None) -> str:
    if location is None:
        return ""
    area = location.area
    where = f"{area.kelurahan_name}, {area.kecamatan_name}" if area is not None else ""
    point = f"{location.lat:.5f}, {location.lon:.5f}"
    address = location.address_text or location.display_address
    return escape(" · ".join(part for part in (where, point, _cut(address or "", 120)) if part))


def _messages_line(ticket: Ticket, messages: Sequence[RelayMessage], _: Translate) -> str:
    sent = sum(1 for m in messages if m.direction is Direction.FROM_CITIZEN)
    return _("Media: {media} · your messages: {sent} · operators' messages: {received}").format(
        media=len(ticket.media), sent=sent, received=len(messages) - sent
    )
