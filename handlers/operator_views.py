"""Everything the operators read: the ticket's topic, its card and buttons, the queue board,
the timeline, system notices and roster answers.

Operators read the deployment's default language. Every user-supplied string is escaped
here. Callback data are stable ASCII ``o|<action>|<ticket id>[|<argument>]`` (at most 64
bytes); the agency picker carries the chosen agencies as a bit mask over the agencies file's
order (``o|dsel|<id>|<mask hex>``), so a multi-select needs no state on the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.config import Settings
from bot.domain.handoff import DeclineReason
from bot.domain.lifecycle import Action, actions_for
from bot.domain.model import (
    EXERCISE_MARK,
    Assignment,
    AssignmentChannel,
    Category,
    Citizen,
    Disposition,
    Location,
    LocationSource,
    Operator,
    Ticket,
    TicketEvent,
    TicketStatus,
    is_exercise,
)
from bot.i18n import N_, Translate, gettext_for
from bot.services.console import ConsoleResult, ConsoleStatus
from bot.services.queue import QueueBoard, QueueEntry
from bot.services.roster import RosterChange, RosterResult
from handlers.agency_views import REASON_LABELS as REASON_WORDS
from handlers.views import CATEGORY_LABELS, DETAILS_SHOWN, _cut, _persons_and_details

MAX_TEXT = 4096
MAX_TOPIC_NAME = 128
MAX_VENUE_TITLE = 100
MAX_VENUE_ADDRESS = 200
MAX_CALLBACK_DATA = 64
MAX_ANSWER = 200  # characters of a callback-query answer
ETA_CHOICES = (5, 10, 15, 30)
PREFIX = "o"

#: The forum icon colours Telegram accepts, by priority (1 = life-threatening: red).
PRIORITY_COLORS: Mapping[int, int] = {1: 16478047, 2: 16766590, 3: 7322096}
DEFAULT_COLOR = 7322096

PRIORITY_WORDS: Mapping[int, str] = {
    1: N_("priority 1 — life in danger"),
    2: N_("priority 2 — urgent"),
    3: N_("priority 3 — not urgent"),
}

OPERATOR_STATUS: Mapping[TicketStatus, str] = {
    TicketStatus.DRAFT: N_("draft"),
    TicketStatus.SUBMITTED: N_("🔴 waiting for an operator"),
    TicketStatus.CLAIMED: N_("🟡 claimed"),
    TicketStatus.DISPATCHED: N_("🟠 dispatched"),
    TicketStatus.ACKNOWLEDGED: N_("🟠 accepted by the agency"),
    TicketStatus.EN_ROUTE: N_("🚨 en route"),
    TicketStatus.ON_SCENE: N_("📍 on scene"),
    TicketStatus.RESOLVED: N_("✅ resolved"),
    TicketStatus.CLOSED: N_("⬛ closed"),
    TicketStatus.CANCELLED: N_("✖️ cancelled"),
    TicketStatus.ABANDONED: N_("⌛ abandoned draft"),
}

SOURCE_WORDS: Mapping[LocationSource, str] = {
    LocationSource.GPS: N_("GPS of the caller's phone"),
    LocationSource.LIVE: N_("live location of the caller's phone"),
    LocationSource.PIN: N_("pin placed by the caller"),
    LocationSource.GEOCODED: N_("found from the typed address"),
    LocationSource.CENTROID: N_("approximate: centre of the kelurahan"),
    LocationSource.OPERATOR: N_("set by an operator"),
}

DISPOSITION_WORDS: Mapping[Disposition, str] = {
    Disposition.EMERGENCY: N_("emergency handled"),
    Disposition.INFO: N_("information only"),
    Disposition.PRANK: N_("prank"),
    Disposition.GHOST: N_("no response (ghost)"),
    Disposition.DUPLICATE: N_("duplicate"),
    Disposition.TEST: N_("test"),
}

EVENT_WORDS: Mapping[str, str] = {
    "submitted": N_("report sent by the citizen"),
    "claim": N_("claimed"),
    "release": N_("released to the queue"),
    "dispatch": N_("agencies dispatched"),
    "acknowledge": N_("accepted by the agency"),
    "en_route": N_("help en route"),
    "on_scene": N_("help on scene"),
    "resolve": N_("resolved"),
    "close": N_("closed"),
    "reopen": N_("reopened"),
    "requeue": N_("back to the queue"),
    "cancel": N_("cancelled"),
    "note": N_("📝 note"),
    "ignored_post": N_("post by a non-member ignored"),
    "reopened_by_citizen": N_("reopened: the citizen wrote after the close"),
    "sla_realert": N_("⏰ re-alert: still unclaimed"),
    "sla_escalated": N_("⏰ escalated to the admins"),
    "sla_released": N_("⏰ released: the operator was idle"),
    "category_corrected": N_("category corrected"),
    "priority_corrected": N_("priority corrected"),
    "location_corrected": N_("location corrected"),
}

#: Card buttons, by lifecycle action (ACKNOWLEDGE comes from agencies, REQUEUE and CANCEL
#: are not offered as buttons).
BUTTONS: Mapping[Action, tuple[str, str]] = {
    Action.CLAIM: (N_("✋ Claim"), "claim"),
    Action.RELEASE: (N_("↩️ Release"), "release"),
    Action.DISPATCH: (N_("🚒 Dispatched…"), "dispatch"),
    Action.EN_ROUTE: (N_("🚨 En route…"), "eta"),
    Action.ON_SCENE: (N_("📍 On scene"), "onscene"),
    Action.RESOLVE: (N_("✅ Resolve…"), "resolve"),
    Action.REOPEN: (N_("🔁 Reopen"), "reopen"),
}


def callback(action: str, ticket_id: int, *args: object) -> str:
    """``o|<action>|<ticket id>[|arg…]``; raises when Telegram's 64-byte bound is exceeded."""
    data = "|".join([PREFIX, action, str(ticket_id), *map(str, args)])
    if len(data.encode()) > MAX_CALLBACK_DATA:
        raise ValueError(f"callback data too long: {data!r}")
    return data


def category_emoji(ticket: Ticket) -> str:
    """The category's emoji (the first word of its label), or a siren."""
    if ticket.category is None:
        return "🆘"
    return CATEGORY_LABELS[ticket.category].split(" ", 1)[0]


def maps_link(location: Location) -> str:
    """An OpenStreetMap link centred on the location (HTML-escaped for an ``href``)."""
    lat, lon = f"{location.lat:.6f}", f"{location.lon:.6f}"
    return escape(
        f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=18/{lat}/{lon}", quote=True
    )


def who(actor: str, names: Mapping[int, str]) -> str:
    """An actor string of the timeline in words (escaped)."""
    kind, _sep, ident = actor.partition(":")
    if kind == "operator" and ident.lstrip("-").isdigit():
        name = names.get(int(ident))
        return escape(f"{name} ({ident})" if name else f"operator {ident}")
    return escape(actor)


def age_text(age: timedelta) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``."""
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass(frozen=True, slots=True)
class Card:
    """A card's text and its buttons."""

    text: str
    markup: InlineKeyboardMarkup | None


class OperatorViews:
    """Renders the console for the operators' chat of one deployment."""

    def __init__(
        self,
        zone: ZoneInfo,
        phone: str,
        language: str,
        agencies: Sequence[tuple[str, str]] = (),
        agency_phones: Mapping[str, str] | None = None,
        *,
        exercise: bool = False,
    ) -> None:
        self.exercise = exercise
        """Exercise mode (``DEMO_MODE``): the queue board carries the exercise mark."""
        self.zone = zone
        self.phone = phone
        self.language = language
        self.agencies: tuple[tuple[str, str], ...] = tuple(agencies)
        """(code, name) of every agency, in the agencies file's order (the picker's bits)."""
        self._agency_names = dict(self.agencies)
        self._agency_phones = dict(agency_phones or {})
        """Code -> phone number, shown on the card for an agency dispatched by phone."""

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorViews:
        """The console of a deployment: its time zone, number, language and agencies."""
        return cls(
            settings.timezone,
            settings.emergency_phone,
            settings.default_language,
            [(agency.code, agency.name) for agency in settings.agencies],
            {agency.code: agency.phone for agency in settings.agencies if agency.phone},
            exercise=settings.demo_mode,
        )

    @property
    def _(self) -> Translate:
        return gettext_for(self.language)

    def local_time(self, moment: datetime) -> str:
        """``27-11-2026 14:05 WIB``."""
        local = moment.astimezone(self.zone)
        return f"{local:%d-%m-%Y %H:%M} {local.tzname()}"

    def clock(self, moment: datetime) -> str:
        """``14:05`` (the card's times are of today, mostly)."""
        return f"{moment.astimezone(self.zone):%H:%M}"

    def agency_name(self, code: str) -> str:
        """The agency's name from the agencies file (its code if unknown)."""
        return self._agency_names.get(code, code)

    # -- the topic --------------------------------------------------------------------------

    def topic_name(self, ticket: Ticket) -> str:
        """``🚑 SMG-261129-0001 · Semarang Tengah`` (at most 128 characters)."""
        location = ticket.incident_location or ticket.reporter_location
        area = location.area if location else None
        place = area.kecamatan_name if area else self._("place unknown")
        name = f"{category_emoji(ticket)} {ticket.ref or ticket.id} · {place}"
        if is_exercise(ticket):
            name = f"🧪 LATIHAN · {name}"
        return name[:MAX_TOPIC_NAME]

    @staticmethod
    def topic_color(ticket: Ticket) -> int:
        """The forum icon colour of the ticket's priority."""
        return PRIORITY_COLORS.get(ticket.priority, DEFAULT_COLOR)

    # -- the card ---------------------------------------------------------------------------

    def card(
        self, ticket: Ticket, citizen: Citizen | None, assignments: Sequence[Assignment] = ()
    ) -> Card:
        """The ticket's card as it is now, with the buttons of its status."""
        return Card(self.card_text(ticket, citizen, assignments), self.card_keyboard(ticket))

    def card_text(
        self, ticket: Ticket, citizen: Citizen | None, assignments: Sequence[Assignment] = ()
    ) -> str:
        """The card's text: status, claimer, agencies, times in WIB, caller, place."""
        _ = self._
        if ticket.status is TicketStatus.ABANDONED:
            head = _("⌛ <b>ABANDONED DRAFT</b> (not sent by the citizen) · {time}").format(
                time=self.local_time(ticket.created_at)
            )
        else:
            head = _("{emoji} <b>{ref}</b> · {time}").format(
                emoji=category_emoji(ticket),
                ref=escape(ticket.ref or ""),
                time=self.local_time(ticket.submitted_at or ticket.created_at),
            )
        lines = [f"<b>{EXERCISE_MARK}</b>", head] if is_exercise(ticket) else [head]
        if ticket.silent:
            lines.append(
                _("🤫 <b>SILENT MODE — the caller cannot speak safely. Do NOT call; chat only.</b>")
            )
        lines.append(_("<b>Status:</b> {status}").format(status=_(OPERATOR_STATUS[ticket.status])))
        if ticket.claimed_by is not None:
            lines.append(
                _("<b>Claimed by:</b> {name} · {time}").format(
                    name=escape(ticket.claimed_by_name or str(ticket.claimed_by)),
                    time=self.clock(ticket.claimed_at) if ticket.claimed_at else "—",
                )
            )
        category = escape(_(CATEGORY_LABELS[ticket.category])) if ticket.category else "—"
        lines.append(
            _("<b>Type:</b> {category} · {priority}").format(
                category=category,
                priority=_(PRIORITY_WORDS.get(ticket.priority, PRIORITY_WORDS[3])),
            )
        )
        lines.extend(self._caller(ticket, citizen, _))
        lines.extend(self._place(_("<b>Incident:</b>"), ticket.incident_location, _))
        if ticket.pending_location is not None and ticket.status is TicketStatus.ABANDONED:
            label = _("<b>Shared, never confirmed:</b>")
            lines.extend(self._place(label, ticket.pending_location, _))
        if ticket.location_note:
            lines.append(
                _("<b>Place as described (not on the map):</b> {text}").format(
                    text=escape(_cut(ticket.location_note, 300))
                )
            )
        if ticket.reporter_location is not None and (
            ticket.location_elsewhere or ticket.incident_location is None
        ):
            lines.extend(self._place(_("<b>Caller is at:</b>"), ticket.reporter_location, _))
        lines.extend(_persons_and_details(ticket, _))
        if ticket.details and len(ticket.details) > DETAILS_SHOWN:
            lines.append(_("(shortened; the full text is kept with the ticket)"))
        if ticket.media:
            lines.append(
                _("<b>Attachments:</b> {count} (follow below)").format(count=len(ticket.media))
            )
        lines.extend(self._agencies(assignments, _))
        lines.extend(self._times(ticket, _))
        return _fit("\n".join(lines))

    def _caller(self, ticket: Ticket, citizen: Citizen | None, _: Translate) -> list[str]:
        username = f" @{escape(citizen.username)}" if citizen and citizen.username else ""
        lines = [
            _(
                "<b>Caller:</b> {name} · Telegram {telegram_id}{username} · language {language}"
            ).format(
                name=escape(_cut(ticket.caller_name or "—", 100)),
                telegram_id=citizen.telegram_id if citizen else "—",
                username=username,
                language=escape(ticket.language),
            )
        ]
        phone = escape(ticket.caller_phone_e164 or "")
        if ticket.silent:
            lines.append(_("<b>Phone:</b> no number: chat only"))
        elif ticket.phone_skipped or not phone:
            lines.append(_("<b>Phone:</b> no callback number (the caller skipped it): chat only"))
        elif ticket.caller_phone_verified:
            lines.append(_("<b>Phone:</b> {phone} (verified)").format(phone=phone))
        else:  # the warning once, on the number's own line
            lines.append(
                _("⚠️ <b>Phone:</b> {phone} — NOT verified (typed by the caller)").format(
                    phone=phone
                )
            )
        return lines

    def _place(self, label: str, location: Location | None, _: Translate) -> list[str]:
        if location is None:
            return []
        address = escape(_cut(location.display_address or location.address_text or "", 300))
        lines = [f"{label} {address}".rstrip()]
        area = location.area
        if area is not None:
            where = _("Kel. {kelurahan} ({kel_code}), Kec. {kecamatan} ({kec_code})").format(
                kelurahan=escape(area.kelurahan_name),
                kel_code=escape(area.kelurahan_code),
                kecamatan=escape(area.kecamatan_name),
                kec_code=escape(area.kecamatan_code),
            )
            if not area.inside:
                where += " " + _("(nearest, {distance} m)").format(distance=round(area.distance_m))
            lines.append("   " + where)
        accuracy = (
            f"±{round(location.accuracy_m)} m" if location.accuracy_m else _("accuracy unknown")
        )
        lines.append(
            "   "
            + _(
                '<a href="{url}">🗺 {lat:.6f}, {lon:.6f}</a> · {accuracy} · {source} · {time}'
            ).format(
                url=maps_link(location),
                lat=location.lat,
                lon=location.lon,
                accuracy=accuracy,
                source=_(SOURCE_WORDS[location.source]),
                time=self.local_time(location.captured_at),
            )
        )
        if location.address_text and location.display_address:
            lines.append(
                "   " + _("typed: «{text}»").format(text=escape(_cut(location.address_text, 300)))
            )
        return lines

    def _agencies(self, assignments: Sequence[Assignment], _: Translate) -> list[str]:
        if not assignments:
            return []
        lines = [_("<b>Agencies:</b>")]
        for a in assignments:
            if a.channel is AssignmentChannel.PHONE:
                phone = self._agency_phones.get(a.agency_code)
                steps = [
                    _("dispatched by phone {time}").format(time=self.clock(a.dispatched_at))
                    + (f" ☎️ {escape(phone)}" if phone else "")
                ]
            else:
                steps = [_("sent {time}").format(time=self.clock(a.dispatched_at))]
            if a.acknowledged_at:
                steps.append(_("acknowledged {time}").format(time=self.clock(a.acknowledged_at)))
            if a.en_route_at:
                eta = (
                    _(", ETA {minutes} min").format(minutes=a.eta_minutes) if a.eta_minutes else ""
                )
                steps.append(
                    _("en route {time}{eta}").format(time=self.clock(a.en_route_at), eta=eta)
                )
            if a.on_scene_at:
                steps.append(_("on scene {time}").format(time=self.clock(a.on_scene_at)))
            if a.completed_at:
                steps.append(_("done {time}").format(time=self.clock(a.completed_at)))
            if a.declined_at:
                reason = DeclineReason(a.decline_reason or DeclineReason.OTHER)
                steps.append(
                    _("❌ cannot handle ({reason})").format(reason=_(REASON_WORDS[reason]))
                )
            elif a.ack_escalated_at and not a.acknowledged_at:
                steps.append(_("⚠️ not acknowledged"))
            name = escape(self.agency_name(a.agency_code))
            lines.append(f"   • {name}: {', '.join(steps)}")
        return lines

    def _times(self, ticket: Ticket, _: Translate) -> list[str]:
        steps = [
            (_("dispatched"), ticket.dispatched_at),
            (_("en route"), ticket.en_route_at),
            (_("on scene"), ticket.on_scene_at),
            (_("resolved"), ticket.resolved_at),
        ]
        shown = [f"{label} {self.clock(at)}" for label, at in steps if at is not None]
        lines = []
        if shown:
            lines.append(_("<b>Times (WIB):</b> {times}").format(times=" · ".join(shown)))
        if ticket.eta_minutes and ticket.status is TicketStatus.EN_ROUTE:
            lines.append(_("<b>ETA:</b> {minutes} min").format(minutes=ticket.eta_minutes))
        if ticket.disposition is not None:
            lines.append(
                _("<b>Outcome:</b> {disposition}").format(
                    disposition=_(DISPOSITION_WORDS[ticket.disposition])
                )
            )
        if ticket.reopened_count:
            lines.append(_("🔁 reopened {count}×").format(count=ticket.reopened_count))
        return lines

    def card_keyboard(self, ticket: Ticket) -> InlineKeyboardMarkup | None:
        """The buttons of the ticket's status (none for drafts and abandoned ones)."""
        if ticket.id is None or ticket.status in (TicketStatus.DRAFT, TicketStatus.ABANDONED):
            return None
        _ = self._
        buttons = [
            InlineKeyboardButton(_(BUTTONS[action][0]), callback_data=callback(
                BUTTONS[action][1], ticket.id))
            for action in actions_for(ticket.status)
            if action in BUTTONS
        ]  # fmt: skip
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        if ticket.status.is_open:  # what the operator learns may change the category
            rows.append(
                [
                    InlineKeyboardButton(
                        _("✏️ Category…"), callback_data=callback("cats", ticket.id)
                    ),
                    InlineKeyboardButton(
                        _("⚡ Priority…"), callback_data=callback("prios", ticket.id)
                    ),
                ]
            )
        if ticket.incident_location or ticket.reporter_location:
            rows.append(
                [
                    InlineKeyboardButton(
                        _("📍 Send the pin"), callback_data=callback("pin", ticket.id)
                    )
                ]
            )
        return InlineKeyboardMarkup(rows) if rows else None

    def agency_picker(
        self,
        ticket_id: int,
        mask: int,
        assigned: Iterable[str] = (),
        *,
        suggested: Iterable[str] = (),
    ) -> InlineKeyboardMarkup:
        """Multi-select of the agencies (✅ chosen, ⭐ suggested by routing for the ticket's
        category and kecamatan; agencies already on the ticket are left out), then «Dispatch»."""
        _ = self._
        done, hints = set(assigned), set(suggested)
        rows = []
        for index, (code, name) in enumerate(self.agencies):
            if code in done:
                continue
            mark = "✅" if mask >> index & 1 else "▫️"
            star = "⭐ " if code in hints else ""
            data = callback("dsel", ticket_id, f"{mask ^ (1 << index):x}")
            rows.append(
                [InlineKeyboardButton(f"{mark} {star}{_cut(name, 40)}", callback_data=data)]
            )
        last = [InlineKeyboardButton(_("⬅️ Back"), callback_data=callback("card", ticket_id))]
        if mask:
            last.append(
                InlineKeyboardButton(
                    _("🚨 Dispatch"), callback_data=callback("dgo", ticket_id, f"{mask:x}")
                )
            )
        rows.append(last)
        return InlineKeyboardMarkup(rows)

    def mask_of(self, codes: Iterable[str], assigned: Iterable[str] = ()) -> int:
        """The picker's bit mask choosing ``codes`` (those already on the ticket left out)."""
        wanted = set(codes) - set(assigned)
        return sum(1 << index for index, (code, _n) in enumerate(self.agencies) if code in wanted)

    def chosen_agencies(self, mask: int) -> list[str]:
        """The agency codes of a picker's bit mask (bits beyond the file are ignored)."""
        return [code for index, (code, _name) in enumerate(self.agencies) if mask >> index & 1]

    def eta_picker(self, ticket_id: int) -> InlineKeyboardMarkup:
        """ETA choices in minutes (or unknown)."""
        _ = self._
        choices = [
            InlineKeyboardButton(
                _("{minutes} min").format(minutes=m),
                callback_data=callback("enroute", ticket_id, m),
            )
            for m in ETA_CHOICES
        ]
        return InlineKeyboardMarkup(
            [
                choices,
                [
                    InlineKeyboardButton(
                        _("ETA unknown"), callback_data=callback("enroute", ticket_id, 0)
                    )
                ],
                [InlineKeyboardButton(_("⬅️ Back"), callback_data=callback("card", ticket_id))],
            ]
        )

    def category_picker(self, ticket_id: int) -> InlineKeyboardMarkup:
        """Every category, to correct what the citizen tapped (its priority follows)."""
        _ = self._
        buttons = [
            InlineKeyboardButton(
                _(CATEGORY_LABELS[category]), callback_data=callback("setcat", ticket_id, category)
            )
            for category in Category
        ]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        rows.append([InlineKeyboardButton(_("⬅️ Back"), callback_data=callback("card", ticket_id))])
        return InlineKeyboardMarkup(rows)

    def priority_picker(self, ticket_id: int) -> InlineKeyboardMarkup:
        """Priorities 1 (life-threatening) to 3, in words."""
        _ = self._
        rows = [
            [
                InlineKeyboardButton(
                    _(PRIORITY_WORDS[priority]),
                    callback_data=callback("setprio", ticket_id, priority),
                )
            ]
            for priority in sorted(PRIORITY_WORDS)
        ]
        rows.append([InlineKeyboardButton(_("⬅️ Back"), callback_data=callback("card", ticket_id))])
        return InlineKeyboardMarkup(rows)

    def disposition_picker(self, ticket_id: int) -> InlineKeyboardMarkup:
        """How the incident ended."""
        _ = self._
        buttons = [
            InlineKeyboardButton(_(words), callback_data=callback("resolved", ticket_id, d.value))
            for d, words in DISPOSITION_WORDS.items()
        ]
        rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
        rows.append([InlineKeyboardButton(_("⬅️ Back"), callback_data=callback("card", ticket_id))])
        return InlineKeyboardMarkup(rows)

    # -- answers to buttons -----------------------------------------------------------------

    def not_allowed(self) -> str:
        """A non-member pressed a button."""
        return self._("⛔ Not allowed: only operators on the roster can do this.")

    def action_answer(self, result: ConsoleResult) -> str:
        """The short answer to a card button (at most 200 characters)."""
        _ = self._
        ticket = result.ticket
        if result.status is ConsoleStatus.DONE:
            text = _("✔️ Done: {status}.").format(
                status=_(OPERATOR_STATUS[ticket.status]) if ticket else "—"
            )
        elif result.status is ConsoleStatus.NOT_ALLOWED:
            text = self.not_allowed()
        elif result.status is ConsoleStatus.LOST_RACE:
            if ticket is not None and ticket.claimed_by is not None:
                text = _("Already claimed by {name}.").format(
                    name=ticket.claimed_by_name or ticket.claimed_by
                )
            else:
                text = _("Someone changed this ticket first; the card shows it as it is now.")
        elif result.status is ConsoleStatus.NOT_YOURS:
            text = _("Only the operator holding this ticket (or an admin) can release it.")
        elif result.status is ConsoleStatus.NOT_FOUND:
            text = _("This ticket does not exist (any more).")
        elif result.status is ConsoleStatus.INVALID and result.detail == "already_assigned":
            text = _("These agencies are already on the ticket.")
        elif result.status is ConsoleStatus.INVALID:
            text = _("That does not fit: choose again.")
        elif ticket is not None and ticket.claimed_by is not None:
            text = _("Not possible now: the ticket is {status} (claimed by {name}).").format(
                status=_(OPERATOR_STATUS[ticket.status]),
                name=ticket.claimed_by_name or ticket.claimed_by,
            )
        else:
            text = _("Not possible now: the ticket is {status}.").format(
                status=_(OPERATOR_STATUS[ticket.status]) if ticket else "—"
            )
        return text[:MAX_ANSWER]

    def location_corrected(self, result: ConsoleResult) -> str:
        """Answers an operator's location correction."""
        _ = self._
        if not result.ok:
            return escape(self.action_answer(result))
        if result.detail == "outside_city":
            return _("📍 Location corrected (outside Kota Semarang).")
        return _("📍 Location corrected.")

    def noted(self) -> str:
        """Confirms an internal note."""
        return self._("📝 noted (internal, not sent to the citizen)")

    def wrong_place(self) -> str:
        """A ticket command outside a ticket's topic (or not a reply to its card)."""
        return self._("Use this in a ticket's topic, or as a reply to its card.")

    # -- the queue board and /timeline ------------------------------------------------------

    def board(self, board: QueueBoard) -> str:
        """Every open ticket, priority 1 first, then the oldest (at most 4096 characters)."""
        _ = self._
        head = _("📋 <b>Queue</b> · {open} open, {unclaimed} unclaimed · {time}").format(
            open=len(board.entries), unclaimed=board.unclaimed, time=self.local_time(board.at)
        )
        if self.exercise:
            head = f"<b>{EXERCISE_MARK}</b>\n{head}"
        if not board.entries:
            return head + "\n" + _("No open tickets.")
        lines = [self._board_line(entry, _) for entry in board.entries]
        return _bounded(head, lines, _)

    def _board_line(self, entry: QueueEntry, _: Translate) -> str:
        emoji = CATEGORY_LABELS[entry.category].split(" ", 1)[0] if entry.category else "🆘"
        claimed = (
            _("claimed by {name}").format(
                name=escape(_cut(entry.claimed_by_name or str(entry.claimed_by), 40))
            )
            if entry.claimed_by is not None
            else _("unclaimed")
        )
        return "P{priority} {emoji} <b>{ref}</b> · {place} · {age} · {claimed}".format(
            priority=entry.priority,
            emoji=emoji,
            ref=escape(entry.ref or str(entry.ticket_id)),
            place=escape(entry.kecamatan or "—"),
            age=age_text(entry.age),
            claimed=claimed,
        )

    def timeline(
        self, ticket: Ticket, events: Sequence[TicketEvent], names: Mapping[int, str]
    ) -> str:
        """Every event of a ticket in WIB: when, who, what (at most 4096 characters)."""
        _ = self._
        head = _("🕒 <b>Timeline {ref}</b>").format(ref=escape(ticket.ref or str(ticket.id)))
        lines = []
        for event in events:
            what = _(EVENT_WORDS[event.kind]) if event.kind in EVENT_WORDS else escape(event.kind)
            line = f"{self.local_time(event.at)} · {who(event.actor, names)} · {what}"
            if event.note:
                line += f": {escape(_cut(event.note, 300))}"
            lines.append(line)
        return _bounded(head, lines, _)

    # -- notices into the topic -------------------------------------------------------------

    def notice(self, ticket: Ticket, payload: Mapping[str, object]) -> str:
        """A system notice about a ticket (SLA re-alert, idle release, reopened)."""
        _ = self._
        ref = escape(ticket.ref or str(ticket.id))
        kind = payload.get("notice")
        if kind == "unclaimed":
            waited = int(str(payload.get("waited_seconds") or 0))
            return _("⏰ <b>{ref}</b> is still unclaimed after {age}. Please claim it.").format(
                ref=ref, age=age_text(timedelta(seconds=waited))
            )
        if kind == "released_idle":
            return _(
                "⏰ <b>{ref}</b> went back to the queue: no message from operator {operator} "
                "for too long."
            ).format(ref=ref, operator=escape(str(payload.get("operator_id") or "—")))
        if kind == "agency_status":
            return self._agency_notice(ref, payload)
        if kind == "agency_unacknowledged":
            waited = int(str(payload.get("waited_seconds") or 0))
            return _(
                "⚠️ <b>{ref}</b>: {agency} has not acknowledged after {age}, even after a "
                "reminder. Call them, or dispatch another agency."
            ).format(ref=ref, agency=escape(self._named(payload)),
                     age=age_text(timedelta(seconds=waited)))  # fmt: skip
        if kind == "agency_webhook_failed":
            return _(
                "⚠️ <b>{ref}</b>: the handoff to {agency}'s system failed {attempts} times "
                "(«{reason}»). Call the agency by phone."
            ).format(ref=ref, agency=escape(self._named(payload)),
                     attempts=escape(str(payload.get("attempts") or "?")),
                     reason=escape(str(payload.get("reason") or "—")))  # fmt: skip
        if kind == "reopened":
            return _(
                "🔁 <b>{ref}</b> was reopened: the citizen wrote again soon after the close. "
                "It is back in the queue."
            ).format(ref=ref)
        return _("ℹ️ <b>{ref}</b>: {notice}").format(ref=ref, notice=escape(str(kind)))

    def _named(self, payload: Mapping[str, object]) -> str:
        code = str(payload.get("agency") or "")
        return str(payload.get("agency_name") or self.agency_name(code))

    def _agency_notice(self, ref: str, payload: Mapping[str, object]) -> str:
        """An agency's step, as the topic reads it."""
        _ = self._
        agency = escape(self._named(payload))
        step = payload.get("step")
        if step == "acknowledged":
            return _("✅ <b>{ref}</b>: {agency} acknowledged.").format(ref=ref, agency=agency)
        if step == "en_route":
            eta = payload.get("eta_minutes")
            if isinstance(eta, int) and eta > 0:
                return _("🚑 <b>{ref}</b>: {agency} is on the way, ETA {minutes} min.").format(
                    ref=ref, agency=agency, minutes=eta
                )
            return _("🚑 <b>{ref}</b>: {agency} is on the way.").format(ref=ref, agency=agency)
        if step == "on_scene":
            return _("📍 <b>{ref}</b>: {agency} is on scene.").format(ref=ref, agency=agency)
        if step == "completed":
            return _("🏁 <b>{ref}</b>: {agency} completed its work.").format(ref=ref, agency=agency)
        reason = DeclineReason(str(payload.get("reason") or DeclineReason.OTHER))
        return _(
            "❌ <b>{ref}</b>: {agency} cannot handle it ({reason}). Dispatch another agency."
        ).format(ref=ref, agency=agency, reason=_(REASON_WORDS[reason]))

    def escalation(self, ticket: Ticket, payload: Mapping[str, object]) -> str:
        """The SLA escalation an admin gets by direct message: a ticket nobody claimed."""
        waited = int(str(payload.get("waited_seconds") or 0))
        return self._(
            "🚨 <b>Siaga112:</b> report <b>{ref}</b> ({priority}) has waited {age} and no "
            "operator has claimed it. Please make sure someone takes it now."
        ).format(
            ref=escape(ticket.ref or str(ticket.id)),
            priority=self._(PRIORITY_WORDS.get(ticket.priority, PRIORITY_WORDS[3])),
            age=age_text(timedelta(seconds=waited)),
        )

    def relay_header(self, ticket: Ticket) -> str:
        """The line that introduces a citizen's message in the ticket's topic."""
        return self._("💬 <b>{ref}</b> · {name}:").format(
            ref=escape(ticket.ref or ""), name=escape(_cut(ticket.caller_name or "—", 100))
        )

    def location_update(self, ticket: Ticket, location: Location) -> tuple[str, str]:
        """A live-location update as one pin's title and address (plain text, no HTML):
        which ticket, where now (kelurahan, kecamatan), how precise, when."""
        _ = self._
        title = _("📍 {ref}: live location updated").format(ref=ticket.ref or ticket.id)
        area = location.area
        parts = [
            _("Kel. {kelurahan}, Kec. {kecamatan}").format(
                kelurahan=area.kelurahan_name, kecamatan=area.kecamatan_name
            )
            if area
            else _("outside Kota Semarang")
        ]
        if location.accuracy_m:
            parts.append(f"±{round(location.accuracy_m)} m")
        parts.append(self.clock(location.captured_at))
        return title[:MAX_VENUE_TITLE], " · ".join(parts)[:MAX_VENUE_ADDRESS]

    # -- the roster -------------------------------------------------------------------------

    def roster_answer(self, result: RosterResult, telegram_id: int) -> str:
        """Answers /operator add and /operator remove."""
        _ = self._
        texts = {
            RosterChange.ADDED: _("✅ {who} is now on the roster."),
            RosterChange.REACTIVATED: _("✅ {who} is on the roster again."),
            RosterChange.PROMOTED: _("✅ {who} is now an admin."),
            RosterChange.ALREADY: _("{who} is already on the roster."),
            RosterChange.REMOVED: _("✅ {who} was taken off the roster."),
            RosterChange.NOT_A_MEMBER: _("{who} is not on the roster."),
            RosterChange.NOT_ALLOWED: _("⛔ Only admins can change the roster."),
            RosterChange.SELF: _("You cannot remove yourself."),
        }
        name = result.operator.display_name if result.operator else None
        label = f"{name} ({telegram_id})" if name else str(telegram_id)
        return texts[result.change].format(who=escape(label))

    def roster_usage(self) -> str:
        """How /operator is used."""
        return self._(
            "Usage: reply to a person's message with <code>/operator add</code> or "
            "<code>/operator remove</code>, or give their Telegram id: "
            "<code>/operator add 123456789</code>. Add <code>admin</code> to make an admin."
        )

    def roster(self, members: Sequence[Operator]) -> str:
        """The active roster (/operators)."""
        _ = self._
        head = _("👮 <b>Operators</b> ({count})").format(count=len(members))
        lines = [
            "• {name} · {id}{admin}".format(
                name=escape(_cut(m.display_name or "—", 60)),
                id=m.telegram_id,
                admin=" · " + _("admin") if m.is_admin else "",
            )
            for m in members
        ]
        return _bounded(head, lines, _)


def _bounded(head: str, lines: Sequence[str], _: Translate) -> str:
    """``head`` and as many lines as fit in 4096 characters, then «+N more»."""
    budget = MAX_TEXT - len(head) - 40
    kept: list[str] = []
    for line in lines:
        if budget - len(line) - 1 < 0:
            break
        kept.append(line)
        budget -= len(line) + 1
    text = "\n".join([head, *kept])
    if len(kept) < len(lines):
        text += "\n" + _("+{count} more").format(count=len(lines) - len(kept))
    return text


def _fit(text: str) -> str:
    """Every part of a card is bounded; this is the last guard for Telegram's 4096."""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
