"""What agencies see in their Telegram chat: the ticket card with its buttons, reminders and
the answers to their presses (in the deployment's default language; every text escaped).

Callback data (ASCII, at most 64 bytes): ``a|<button>|<ticket id>|<agency code>[|<arg>]``
with the buttons ``ack``, ``eta`` (the ETA picker), ``er`` (en route, arg = minutes), ``os``
(on scene), ``done`` (completed), ``no`` (the reason picker), ``nr`` (cannot handle, arg =
reason) and ``back`` (the card's buttons again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.config import AgencyConfig, Settings
from bot.domain.handoff import ETA_CHOICES, AgencyStep, DeclineReason
from bot.domain.model import EXERCISE_MARK, Assignment, Citizen, Location, Ticket, is_exercise
from bot.i18n import N_, Translate, gettext_for
from bot.services.agencies import AgencyResult, AgencyStatus
from handlers.views import CATEGORY_LABELS

PREFIX = "a"
DETAILS_SHOWN = 1200
#: The button's code in the callback data -> the step it reports.
BUTTON_STEPS: Mapping[str, AgencyStep] = {
    "ack": AgencyStep.ACKNOWLEDGED,
    "er": AgencyStep.EN_ROUTE,
    "os": AgencyStep.ON_SCENE,
    "done": AgencyStep.COMPLETED,
    "nr": AgencyStep.CANNOT_HANDLE,
}
REASON_LABELS: Mapping[DeclineReason, str] = {
    DeclineReason.NO_UNIT: N_("No unit available"),
    DeclineReason.OUT_OF_AREA: N_("Not our area"),
    DeclineReason.NOT_OURS: N_("Not our kind of incident"),
    DeclineReason.OTHER: N_("Other reason"),
}
STEP_LABELS: Mapping[AgencyStep, str] = {
    AgencyStep.ACKNOWLEDGED: N_("acknowledged"),
    AgencyStep.EN_ROUTE: N_("en route"),
    AgencyStep.ON_SCENE: N_("on scene"),
    AgencyStep.COMPLETED: N_("completed"),
    AgencyStep.CANNOT_HANDLE: N_("cannot handle"),
}


@dataclass(frozen=True, slots=True)
class Card:
    """A card's text and buttons."""

    text: str
    markup: InlineKeyboardMarkup | None


def callback(button: str, ticket_id: int, code: str, arg: str = "") -> str:
    """The callback data of a card button."""
    return "|".join((PREFIX, button, str(ticket_id), code, *((arg,) if arg else ())))


def parse(data: str) -> tuple[str, int, str, str] | None:
    """(button, ticket id, agency code, arg) of a card button's data, or None."""
    parts = data.split("|")
    if len(parts) < 4 or parts[0] != PREFIX or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2]), parts[3], parts[4] if len(parts) > 4 else ""


class AgencyViews:
    """Renders the agencies' side for one deployment (time zone, language)."""

    def __init__(self, zone: ZoneInfo, language: str, phone: str) -> None:
        self.zone = zone
        self.language = language
        self.phone = phone

    @classmethod
    def from_settings(cls, settings: Settings) -> AgencyViews:
        """The agencies' views of a deployment."""
        return cls(settings.timezone, settings.default_language, settings.emergency_phone)

    def _clock(self, moment: datetime) -> str:
        local = moment.astimezone(self.zone)
        return f"{local:%H:%M} {local.tzname()}"

    # -- the card -------------------------------------------------------------------------

    def card(
        self,
        ticket: Ticket,
        citizen: Citizen | None,
        agency: AgencyConfig,
        assignment: Assignment | None,
    ) -> Card:
        """The ticket as the agency needs it, with the buttons its progress allows."""
        _ = gettext_for(self.language)
        sent = ticket.submitted_at or ticket.created_at
        lines = [f"<b>{EXERCISE_MARK}</b>"] if is_exercise(ticket) else []
        lines.append(
            _("🚨 <b>{ref}</b> · for {agency} · reported {time}").format(
                ref=escape(ticket.ref or ""), agency=escape(agency.name), time=self._clock(sent)
            )
        )
        category = (
            f"{escape(_(CATEGORY_LABELS[ticket.category]))} ({ticket.category.value})"
            if ticket.category
            else "—"
        )
        lines.append(
            _("<b>Type:</b> {category} · priority {priority}").format(
                category=category, priority=ticket.priority
            )
        )
        lines.extend(self._place(ticket.incident_location or ticket.reporter_location, _))
        if ticket.location_note:
            lines.append(_("<b>Place as described:</b> {text}").format(
                text=escape(ticket.location_note)))  # fmt: skip
        if ticket.details:
            details = ticket.details[:DETAILS_SHOWN]
            lines.append(_("<b>Details:</b> {details}").format(details=escape(details)))
        name = ticket.caller_name or (citizen.name if citizen else None) or "—"
        if ticket.silent or not ticket.caller_phone_e164:
            contact = _("🤫 chat only, via {phone}").format(phone=escape(self.phone))
        else:
            contact = escape(ticket.caller_phone_e164)
        lines.append(_("<b>Caller:</b> {name} · {contact}").format(name=escape(name),
                                                                   contact=contact))  # fmt: skip
        lines.append(_("<b>Status:</b> {status}").format(status=self._progress(assignment, _)))
        markup = self.buttons(ticket.id or 0, agency.code, assignment)
        return Card("\n".join(lines), markup)

    def _place(self, location: Location | None, _: Translate) -> list[str]:
        if location is None:
            return [_("<b>Where:</b> not located yet")]
        lines = []
        address = location.display_address or location.address_text
        if address:
            lines.append(_("<b>Where:</b> {address}").format(address=escape(address)))
        if location.area is not None:
            lines.append(
                _("<b>Kelurahan</b> {kelurahan}, <b>kecamatan</b> {kecamatan}").format(
                    kelurahan=escape(location.area.kelurahan_name),
                    kecamatan=escape(location.area.kecamatan_name),
                )
            )
        accuracy = f" (± {round(location.accuracy_m)} m)" if location.accuracy_m else ""
        link = f"https://www.google.com/maps?q={location.lat:.6f},{location.lon:.6f}"
        lines.append(
            _('<b>Location:</b> <a href="{link}">{lat:.6f}, {lon:.6f}</a>{accuracy}').format(
                link=link, lat=location.lat, lon=location.lon, accuracy=accuracy
            )
        )
        return lines

    def _progress(self, a: Assignment | None, _: Translate) -> str:
        if a is None:
            return _("waiting for your acknowledgement")
        if a.declined_at is not None:
            reason = DeclineReason(a.decline_reason or DeclineReason.OTHER)
            return _("❌ cannot handle ({reason}) {time}").format(
                reason=_(REASON_LABELS[reason]), time=self._clock(a.declined_at)
            )
        if a.completed_at is not None:
            return _("🏁 completed {time}").format(time=self._clock(a.completed_at))
        if a.on_scene_at is not None:
            return _("📍 on scene {time}").format(time=self._clock(a.on_scene_at))
        if a.en_route_at is not None:
            eta = _(", ETA {minutes} min").format(minutes=a.eta_minutes) if a.eta_minutes else ""
            return _("🚑 en route {time}{eta}").format(time=self._clock(a.en_route_at), eta=eta)
        if a.acknowledged_at is not None:
            return _("✅ acknowledged {time}").format(time=self._clock(a.acknowledged_at))
        return _("⏳ waiting for your acknowledgement")

    def buttons(
        self, ticket_id: int, code: str, a: Assignment | None
    ) -> InlineKeyboardMarkup | None:
        """The buttons the agency's progress allows (none once completed or declined)."""
        _ = gettext_for(self.language)

        def button(label: str, name: str) -> InlineKeyboardButton:
            return InlineKeyboardButton(label, callback_data=callback(name, ticket_id, code))

        if a is not None and a.closed:
            return None
        done = button(_("🏁 Completed"), "done")
        if a is not None and a.on_scene_at is not None:
            return InlineKeyboardMarkup([[done]])
        rows = []
        if a is None or a.acknowledged_at is None:
            rows.append([button(_("✅ Acknowledge"), "ack")])
        en_route = _("🚑 New ETA…") if a is not None and a.en_route_at else _("🚑 En route…")
        rows.append([button(en_route, "eta"), button(_("📍 On scene"), "os")])
        rows.append([done, button(_("❌ Cannot handle…"), "no")])
        return InlineKeyboardMarkup(rows)

    def eta_picker(self, ticket_id: int, code: str) -> InlineKeyboardMarkup:
        """The ETA choices of «En route»."""
        _ = gettext_for(self.language)
        choices = [
            InlineKeyboardButton(
                _("{minutes} min").format(minutes=m), callback_data=callback("er", ticket_id,
                                                                            code, str(m)),
            )
            for m in ETA_CHOICES
        ]  # fmt: skip
        back = InlineKeyboardButton(_("↩️ Back"), callback_data=callback("back", ticket_id, code))
        return InlineKeyboardMarkup([choices, [back]])

    def reason_picker(self, ticket_id: int, code: str) -> InlineKeyboardMarkup:
        """The reasons of «Cannot handle»."""
        _ = gettext_for(self.language)
        rows = [
            [InlineKeyboardButton(_(label), callback_data=callback("nr", ticket_id, code,
                                                                   reason.value))]
            for reason, label in REASON_LABELS.items()
        ]  # fmt: skip
        rows.append(
            [InlineKeyboardButton(_("↩️ Back"), callback_data=callback("back", ticket_id, code))]
        )
        return InlineKeyboardMarkup(rows)

    # -- reminders and answers ------------------------------------------------------------

    def reminder(self, ticket: Ticket, waited_seconds: int) -> str:
        """The deadline passed without an acknowledgement."""
        _ = gettext_for(self.language)
        return _(
            "⏰ <b>{ref}</b> has waited {minutes} min for your acknowledgement. Please press "
            "✅ Acknowledge on the card, or ❌ Cannot handle."
        ).format(ref=escape(ticket.ref or ""), minutes=max(1, round(waited_seconds / 60)))

    def answer(self, result: AgencyResult, step: AgencyStep | None) -> str:
        """The short answer to a press."""
        _ = gettext_for(self.language)
        if result.status is AgencyStatus.DONE and step is not None:
            return _("Recorded: {step}.").format(step=_(STEP_LABELS[step]))
        if result.status is AgencyStatus.NOT_ALLOWED:
            return _("Only the agency's own members can press these buttons.")
        if result.status is AgencyStatus.NOT_FOUND:
            return _("This report was not handed to your agency.")
        if result.why == "repeated":
            return _("Already recorded.")
        if result.why == "closed":
            return _("Your agency is already done with this report.")
        return _("That step is not possible any more.")
