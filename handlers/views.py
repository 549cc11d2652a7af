"""Everything a citizen or an operator reads: texts (through gettext) and keyboards.

Every user-supplied string is escaped here before it goes into HTML. Callback data are stable
ASCII codes ``i|<ticket id>|<action>[|<arg>]`` (``m|<action>`` for the menu), never labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.config import Settings
from bot.domain.model import (
    CATEGORY_GROUPS,
    EXERCISE_MARK,
    Area,
    Category,
    CategoryGroup,
    Citizen,
    IntakeStep,
    Location,
    LocationSource,
    Ticket,
    TicketStatus,
    is_exercise,
)
from bot.domain.rules import MAX_MEDIA, OFFERS_SILENT
from bot.i18n import N_, SUPPORTED, Translate, gettext_for
from bot.services.intake import Notice, Outcome

DETAILS_SHOWN = 1500  # characters of details in a summary or card: the whole stays < 4096
ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


@dataclass(frozen=True, slots=True)
class Text:
    """A text message to send."""

    text: str
    markup: ReplyMarkup | None = None


@dataclass(frozen=True, slots=True)
class Venue:
    """A pin with a title and address to send (``send_venue``)."""

    lat: float
    lon: float
    title: str
    address: str
    markup: InlineKeyboardMarkup | None = None


Reply = Text | Venue


@dataclass(slots=True)
class Screen:
    """What to send for one outcome, in order."""

    replies: list[Reply] = field(default_factory=list)
    alert: str | None = None  # shown as the callback-query answer
    react: bool = False
    """Acknowledge the citizen's message with a reaction (a detail was added), no reply."""
    keep_pressed: bool = False
    """Leave the pressed message as it is (a stale button): the answer comes as new messages."""
    prompted: bool = False
    """The last reply is the prompt of the draft's current step."""


GROUP_LABELS: dict[CategoryGroup, str] = {
    CategoryGroup.MEDICAL: N_("🚑 Medical emergency / ambulance"),
    CategoryGroup.FIRE: N_("🔥 Fire"),
    CategoryGroup.ACCIDENT: N_("🚗 Traffic accident"),
    CategoryGroup.CRIME: N_("🚨 Crime or violence"),
    CategoryGroup.DISASTER: N_("🌊 Flood, landslide, fallen tree, rescue"),
    CategoryGroup.UTILITY: N_("⚡ Electricity, water, animals"),
    CategoryGroup.SOCIAL: N_("🧍 Social emergency"),
    CategoryGroup.OTHER: N_("❓ Something else"),
}

CATEGORY_LABELS: dict[Category, str] = {
    Category.MED: N_("🚑 Medical emergency / ambulance"),
    Category.FIRE: N_("🔥 Fire"),
    Category.TRAF: N_("🚗 Traffic accident"),
    Category.CRIME: N_("🚨 Crime (theft, robbery, assault)"),
    Category.KDRT: N_("🏠 Domestic violence, violence against women or children"),
    Category.ORDER: N_("👥 Public order or social conflict"),
    Category.FLOOD: N_("🌊 Flood, tidal flood, broken embankment"),
    Category.SLIDE: N_("⛰️ Landslide, collapsed wall or house"),
    Category.TREE: N_("🌳 Fallen tree or whirlwind"),
    Category.SAR: N_("🛟 Search and rescue (drowning, trapped)"),
    Category.UTIL: N_("⚡ Electricity or water (transformer, cable, pipe)"),
    Category.ANIMAL: N_("🐍 Animal evacuation (snake, bees, wild animal)"),
    Category.SOCIAL: N_("🧍 Social emergency (neglected person, body found)"),
    Category.OTHER: N_("❓ Something else / information"),
}

STATUS_LABELS: dict[TicketStatus, str] = {
    TicketStatus.DRAFT: N_("being written"),
    TicketStatus.SUBMITTED: N_("received, waiting for an operator"),
    TicketStatus.CLAIMED: N_("an operator is handling it"),
    TicketStatus.DISPATCHED: N_("passed to the responsible service"),
    TicketStatus.ACKNOWLEDGED: N_("accepted by the responsible service"),
    TicketStatus.EN_ROUTE: N_("help is on the way"),
    TicketStatus.ON_SCENE: N_("help has arrived"),
    TicketStatus.RESOLVED: N_("resolved"),
    TicketStatus.CLOSED: N_("closed"),
    TicketStatus.CANCELLED: N_("cancelled"),
    TicketStatus.ABANDONED: N_("not sent (no answer)"),
}

PERSONS_LABELS = {"1": "👤 1", "2-5": "👥 2–5", "6+": "👥 6+", "unknown": N_("❔ Not sure")}
ACK_REACTION = "👍"
"""The reaction that acknowledges a detail (one of the emoji Telegram lets bots use)."""
SKIP_PHONE = N_("⏭️ Skip")
"""The phone keyboard's second key: go on without a callback number."""


class Views:
    """Renders outcomes for one deployment (emergency number, time zone)."""

    def __init__(self, settings: Settings) -> None:
        self.phone = settings.emergency_phone
        self.zone: ZoneInfo = settings.timezone
        self.timeout_minutes = settings.intake_timeout_minutes
        self.operator_language = settings.default_language
        self.exercise = settings.demo_mode
        """Exercise mode (``DEMO_MODE``): the greeting carries the exercise mark."""

    # -- helpers ------------------------------------------------------------------------

    def local_time(self, moment: datetime) -> str:
        """Return ``27-11-2026 14:05 WIB`` in the display time zone."""
        local = moment.astimezone(self.zone)
        return f"{local:%d-%m-%Y %H:%M} {local.tzname()}"

    def when(self, moment: datetime, _: Translate) -> str:
        """Return «pada 29-11-2026 pukul 23.41 WIB» (en: «on 29-11-2026 at 23.41 WIB»)."""
        local = moment.astimezone(self.zone)
        return _("on {date} at {time} {zone}").format(
            date=f"{local:%d-%m-%Y}", time=f"{local:%H.%M}", zone=local.tzname()
        )

    @staticmethod
    def skip_labels() -> frozenset[str]:
        """The «Skip» key of the phone keyboard in every language (it arrives as text)."""
        return frozenset(gettext_for(language)(SKIP_PHONE) for language in SUPPORTED)

    def answered(self, question_html: str, label: str) -> str:
        """A question whose buttons were answered: the question and the chosen answer."""
        return f"{question_html}\n<b>☑️ {escape(label)}</b>"

    def detail_added(self, citizen: Citizen) -> Text:
        """Acknowledges a detail in words (when a reaction cannot be set)."""
        _ = gettext_for(citizen.language)
        return Text(_("✅ Added to your report."))

    def fallback(self, _: Translate) -> str:
        """The voice fallback line every terminal message carries."""
        return _("☎️ In a life-threatening emergency, call <b>{phone}</b>.").format(
            phone=escape(self.phone)
        )

    @staticmethod
    def _button(text: str, data: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text, callback_data=data)

    # -- menu, welcome, language, status ------------------------------------------------

    def menu(self, _: Translate) -> InlineKeyboardMarkup:
        """The main menu."""
        return InlineKeyboardMarkup(
            [
                [self._button(_("🆘 Report an emergency"), "m|report")],
                [
                    self._button(_("📋 My reports"), "m|status"),
                    self._button(_("📢 Advisories"), "m|advisories"),
                ],
                [self._button(_("🌐 Language"), "m|language")],
            ]
        )

    def welcome(self, citizen: Citizen) -> Screen:
        """The /start greeting (short: at most 300 characters), the menu and a «Privacy»
        button for the privacy notice."""
        _ = gettext_for(citizen.language)
        text = "\n\n".join(
            ([f"<b>{EXERCISE_MARK}</b>"] if self.exercise else [])
            + [
                _("🆘 <b>Siaga112 — Call Center 112 Kota Semarang</b>"),
                _("Report an emergency here by chat. An operator reads every report."),
                _("☎️ If a life is in danger, also call <b>{phone}</b> now.").format(
                    phone=escape(self.phone)
                ),
            ]
        )
        menu = self.menu(_)
        rows = [*menu.inline_keyboard, [self._button(_("🔒 Privacy"), "p|notice")]]
        return Screen([Text(text, InlineKeyboardMarkup(rows))])

    def language_menu(self, citizen: Citizen) -> Screen:
        """Offers the two languages."""
        _ = gettext_for(citizen.language)
        markup = InlineKeyboardMarkup(
            [
                [
                    self._button("🇮🇩 Bahasa Indonesia", "m|lang|id"),
                    self._button("🇬🇧 English", "m|lang|en"),
                ]
            ]
        )
        return Screen([Text(_("🌐 Choose your language:"), markup)])

    def language_set(self, citizen: Citizen) -> Screen:
        """Confirms the language switch in the new language."""
        _ = gettext_for(citizen.language)
        return Screen([Text(_("✅ We will talk to you in English."), self.menu(_))])

    def status(self, outcome: Outcome) -> Screen:
        """Lists the citizen's latest reports with their status."""
        _ = gettext_for(outcome.citizen.language)
        lines = [_("📋 <b>Your reports</b>")]
        if outcome.ticket is not None and outcome.ticket.is_draft:
            lines.append(_("✏️ A report is being written — tap «Report an emergency» to go on."))
        if not outcome.open_tickets:
            lines.append(_("You have not sent any report yet."))
        for ticket in outcome.open_tickets:
            category = escape(_(CATEGORY_LABELS[ticket.category])) if ticket.category else "—"
            lines.append(
                _("• <b>{ref}</b> · {category}\n   {status} · {time}").format(
                    ref=escape(ticket.ref or "—"),
                    category=category,
                    status=_(STATUS_LABELS[ticket.status]),
                    time=self.when(ticket.submitted_at or ticket.created_at, _),
                )
            )
        lines.append(self.fallback(_))
        return Screen([Text("\n".join(lines), self.menu(_))])

    def no_report(self, citizen: Citizen) -> Screen:
        """Answers a message when there is neither a draft nor an open ticket."""
        _ = gettext_for(citizen.language)
        text = _("You have no report in progress. Tap «🆘 Report an emergency» to start one.")
        return Screen([Text(text + "\n\n" + self.fallback(_), self.menu(_))])

    # -- the intake ---------------------------------------------------------------------

    def intake(self, outcome: Outcome, *, change_identity: bool = False) -> Screen:
        """Renders the notices of an outcome followed by the prompt of the current step."""
        citizen, ticket = outcome.citizen, outcome.ticket
        _ = gettext_for(citizen.language)
        screen = Screen()
        if outcome.notices == [Notice.DETAIL_ADDED]:
            return Screen(react=True)  # a reaction, not the whole prompt again
        for notice in outcome.notices:
            self._notice(screen, notice, outcome, _)
        if Notice.SUBMITTED in outcome.notices or Notice.CANCELLED in outcome.notices:
            return screen
        full = {Notice.DETAILS_FULL, Notice.MEDIA_FULL} & set(outcome.notices)
        if full and ticket is not None and ticket.step in (IntakeStep.DETAILS, IntakeStep.CONFIRM):
            return screen  # the details screen above stays as it is
        if Notice.TOO_MANY_OPEN in outcome.notices or ticket is None or not ticket.is_draft:
            if not screen.replies and outcome.open_tickets:
                screen.replies.append(self._open_reminder(outcome, _))
            if not screen.replies:
                fallback = self.no_report(citizen)
                fallback.alert = screen.alert
                return fallback
            return screen
        screen.replies.extend(self._prompt(ticket, outcome, _, change_identity=change_identity))
        screen.prompted = True
        return screen

    def _notice_text(  # noqa: PLR0912 - one case per notice reads best
        self, notice: Notice, outcome: Outcome, _: Translate
    ) -> str:
        """The text of a notice (empty when the notice shows no message of its own)."""
        match notice:
            case Notice.RESUMED:
                return _("You have a report in progress. Let's continue where you left off.")
            case Notice.WRONG_INPUT | Notice.OTHER_STEP:
                return _("Sorry, we cannot use that here.")
            case Notice.OUTSIDE_CITY:
                return _(
                    "📍 That place is outside Kota Semarang; Siaga112 serves Kota Semarang only. "
                    "For an emergency elsewhere in Indonesia, call <b>{phone}</b> — it works "
                    "everywhere. If the emergency is in Semarang, type its address or a landmark."
                ).format(phone=escape(self.phone))
            case Notice.ADDRESS_NOT_FOUND:
                return (
                    _(
                        "🔎 We could not find «{text}» on the map of Kota Semarang. Try a street "
                        "with its kelurahan (e.g. «Jl. Pemuda, Sekayu»), a well-known landmark, "
                        "or share your location. Or continue with your description as it is; "
                        "an operator will ask you for more."
                    ).format(text=escape(outcome.suggestion or ""))
                    + "\n"
                    + _(
                        "If the emergency is outside Kota Semarang, call <b>{phone}</b>: it "
                        "works everywhere."
                    ).format(phone=escape(self.phone))
                )
            case Notice.APPROXIMATE:
                return _(
                    "ℹ️ We only found the area, not the exact place: the pin is the centre of the "
                    "kelurahan. Confirm it if that is right, or type a street or landmark."
                )
            case Notice.CONTACT_NOT_YOURS:
                return _(
                    "That is someone else's contact. Tap «📱 Share my phone number» to share your "
                    "own, type the number the operator should call, or tap «⏭️ Skip»."
                )
            case Notice.INVALID_PHONE:
                return _(
                    "That does not look like a phone number. Type it like 0812 3456 7890 or "
                    "+62 812 3456 7890, or tap «📱 Share my phone number»."
                )
            case Notice.INVALID_NAME:
                return _("Please type your name (2 to 80 characters, with letters).")
            case Notice.DETAIL_ADDED:
                return _("✅ Added to your report.")
            case Notice.KEPT:
                return _("✅ Kept in your report.")
            case Notice.DETAILS_FULL:
                return _(
                    "Your description has reached its maximum length and was shortened. You can "
                    "still send photos or voice notes."
                )
            case Notice.MEDIA_FULL:
                return _("You have attached the maximum of {count} files.").format(count=MAX_MEDIA)
            case Notice.TOO_MANY_OPEN:
                return _(
                    "You have reached the limit of open reports ({refs}). The operators are "
                    "working on them: write here and your message reaches them. If this is a new "
                    "emergency, call <b>{phone}</b> now."
                ).format(
                    refs=", ".join(escape(t.ref or "—") for t in outcome.open_tickets),
                    phone=escape(self.phone),
                )
            case Notice.FLOODING:
                return _(
                    "You are sending messages very fast; please wait a minute before the next "
                    "one. If it is urgent, call <b>{phone}</b>."
                ).format(phone=escape(self.phone))
            case Notice.CANCELLED:
                return _(
                    "Your report was cancelled; nothing was sent to the operators. Tap «🆘 Report "
                    "an emergency» to start again."
                )
            case Notice.NOTHING_TO_CANCEL:
                return _("There is no report in progress to cancel.")
            case _:
                return ""

    def _notice(self, screen: Screen, notice: Notice, outcome: Outcome, _: Translate) -> None:
        if notice is Notice.SUBMITTED and outcome.ticket is not None:
            queued = not outcome.operators_reachable
            screen.replies.append(self._submitted(outcome.ticket, _, queued=queued))
            return
        if notice is Notice.RELAYED and outcome.ticket is not None:
            if outcome.operators_reachable:
                text = _("✓ Sent to the operator (report {ref}).")
            else:
                text = _(
                    "✓ Added to your report {ref}; the operators see it as soon as the "
                    "connection is back."
                )
            text = text.format(ref=escape(outcome.ticket.ref or ""))
            screen.replies.append(Text(text))
            return
        if notice is Notice.REOPENED and outcome.ticket is not None:
            text = _(
                "🔁 Your report {ref} was reopened: your message went to the operators, who "
                "will answer here."
            ).format(ref=escape(outcome.ticket.ref or ""))
            screen.replies.append(Text(f"{text}\n\n{self.fallback(_)}"))
            return
        if notice is Notice.CLOSED_NEW_REPORT and outcome.ticket is not None:
            text = _(
                "Your report {ref} is closed, so this message was not passed on. If you need "
                "help again, tap «🆘 Report an emergency» to send a new report."
            ).format(ref=escape(outcome.ticket.ref or ""))
            screen.replies.append(Text(f"{text}\n\n{self.fallback(_)}", self.menu(_)))
            return
        if notice is Notice.STALE_BUTTON:
            screen.alert = _("This button is no longer active.")
            screen.keep_pressed = True
            return
        text = self._notice_text(notice, outcome, _)
        if not text:
            return
        if notice is Notice.CANCELLED or notice is Notice.NOTHING_TO_CANCEL:
            text = f"{text}\n\n{self.fallback(_)}"
            screen.replies.append(Text(text, ReplyKeyboardRemove()))
            screen.replies.append(Text(_("What would you like to do?"), self.menu(_)))
            return
        markup: ReplyMarkup | None = None
        if notice is Notice.ADDRESS_NOT_FOUND or notice is Notice.OUTSIDE_CITY:
            ticket = outcome.ticket
            if ticket is not None and ticket.unresolved_address:
                markup = InlineKeyboardMarkup(
                    [[self._button(_("➡️ Continue with this description"), f"i|{ticket.id}|note")]]
                )
        screen.replies.append(Text(text, markup))

    def _open_reminder(self, outcome: Outcome, _: Translate) -> Text:
        text = _(
            "Your report {ref} has been sent and is being handled. Anything you write here "
            "goes to the operator."
        ).format(ref=escape(outcome.open_tickets[0].ref or ""))
        return Text(f"{text}\n\n{self.fallback(_)}", self.menu(_))

    def _submitted(self, ticket: Ticket, _: Translate, *, queued: bool = False) -> Text:
        """The confirmation; ``queued`` while operator cards cannot be delivered (never
        promise that an operator is reading what they cannot see yet)."""
        lines = [f"<b>{EXERCISE_MARK}</b>"] if is_exercise(ticket) else []
        lines.append(
            _("✅ Your report <b>{ref}</b> was received {when}.").format(
                ref=escape(ticket.ref or ""),
                when=self.when(ticket.submitted_at or ticket.created_at, _),
            )
        )
        if queued:
            lines.append(
                _(
                    "<b>What happens next:</b> your report is saved and queued. The operators "
                    "of Call Center 112 cannot be reached through this chat at the moment; it "
                    "reaches them as soon as the connection is back. <b>If a life is at risk, "
                    "call {phone} now.</b>"
                ).format(phone=escape(self.phone))
            )
        elif ticket.silent:  # never "or call you"
            lines.append(
                _(
                    "<b>What happens next:</b> an operator of Call Center 112 reads it now and "
                    "sends the responsible service. The operator will write to you here. You "
                    "will see every step of your report in this chat."
                )
            )
        else:
            lines.append(
                _(
                    "<b>What happens next:</b> an operator of Call Center 112 reads it now and "
                    "sends the responsible service. The operator may write to you here or call "
                    "you. You will see every step of your report in this chat."
                )
            )
        if ticket.silent:
            lines.append(_("🤫 Silent mode is on: the operator will contact you by chat only."))
        if queued:
            lines.append(_("Anything you send here now is added to your report."))
        else:
            lines.append(_("Anything you send here now goes straight to the operator."))
        lines.append(self.fallback(_))
        return Text("\n\n".join(lines), ReplyKeyboardRemove())

    def _category_menu(self, ticket: Ticket, _: Translate, cancel: InlineKeyboardButton) -> Text:
        """The group menu (with "I cannot speak safely" up front), or a group's categories."""
        tid = ticket.id
        if ticket.category_group is None:
            rows = [
                [self._button(_(GROUP_LABELS[group]), f"i|{tid}|grp|{group.value}")]
                for group in CategoryGroup
            ]
            text = _("🆘 <b>What happened?</b> Tap one:")
            silent = [self._silent_button(ticket, _)]  # up front: before anything is asked
            return Text(text, InlineKeyboardMarkup([*rows, silent, [cancel]]))
        rows = [
            [self._button(_(CATEGORY_LABELS[c]), f"i|{tid}|cat|{c.value}")]
            for c in CATEGORY_GROUPS[ticket.category_group]
        ]
        if ticket.category_group in OFFERS_SILENT:
            rows.append([self._silent_button(ticket, _)])
        back = self._button(_("⬅️ Back"), f"i|{tid}|back")
        text = _("Which one fits best?")
        return Text(text, InlineKeyboardMarkup([*rows, [back, cancel]]))

    def _prompt(
        self, ticket: Ticket, outcome: Outcome, _: Translate, *, change_identity: bool
    ) -> list[Reply]:
        step = ticket.step
        tid = ticket.id
        cancel = self._button(_("✖️ Cancel report"), f"i|{tid}|cancel")
        if step in (IntakeStep.CATEGORY, IntakeStep.SUBCATEGORY):
            return [self._category_menu(ticket, _, cancel)]
        if step is IntakeStep.GUESS:
            return [self._guess(ticket, _)]
        if step is IntakeStep.LOCATION_SUGGEST and ticket.pending_location is not None:
            return self._suggest_location(ticket, ticket.pending_location, _)
        if step is IntakeStep.LOCATION:
            text = _(
                "📍 <b>Where is the emergency?</b>\nTap «📍 Share my location» below, or type "
                "the address or a landmark (e.g. «Jl. Pandanaran 10» or «Simpang Lima»)."
            )
            button = KeyboardButton(_("📍 Share my location"), request_location=True)
            return [self._keyboard_prompt(text, button, _("Address or landmark"), _)]
        if step is IntakeStep.INCIDENT_LOCATION:
            text = _(
                "📍 <b>Where is the emergency itself?</b>\nType its address or a landmark, or "
                "send a pin of that place (📎 → Location)."
            )
            return [Text(text, ReplyKeyboardRemove())]
        if step is IntakeStep.LOCATION_CONFIRM and ticket.pending_location is not None:
            return self._confirm_location(ticket, ticket.pending_location, _)
        if step is IntakeStep.PHONE:
            return self._phone_prompt(outcome, _, change_identity=change_identity)
        if step is IntakeStep.NAME:
            text = _("👤 <b>What is your name?</b> Type it.")
            rows = []
            if outcome.suggestion:
                text = _("👤 <b>What is your name?</b> Tap to use «{name}», or type it.").format(
                    name=escape(outcome.suggestion)
                )
                rows.append([self._button(f"✅ {outcome.suggestion[:40]}", f"i|{tid}|name")])
            return [Text(text, InlineKeyboardMarkup([*rows, [cancel]]))]
        if step is IntakeStep.DETAILS:
            return [Text(self._details_text(ticket, _), self._details_keyboard(ticket, _))]
        if step is IntakeStep.CONFIRM:
            return [Text(self.summary(ticket, _), self._confirm_keyboard(ticket, _))]
        return [
            Text(_("Sorry, we lost track. Tap «🆘 Report an emergency» to go on."), self.menu(_))
        ]

    def _confirm_location(self, ticket: Ticket, location: Location, _: Translate) -> list[Reply]:
        """One message: for a GPS share (the citizen's own pin is on screen) the question with
        the place in words; for a typed address the found pin, titled with what was typed."""
        tid = ticket.id
        if location.source in (LocationSource.GPS, LocationSource.LIVE):
            rows = [
                [self._button(_("✅ The emergency is here"), f"i|{tid}|locok")],
                [self._button(_("📍 It is somewhere else"), f"i|{tid}|elsewhere")],
            ]
            question = _("📍 Location received: {place}.\nIs the emergency at this place?").format(
                place=self._location_line(ticket, location, _)
            )
            return [Text(question, InlineKeyboardMarkup(rows))]
        rows = [
            [self._button(_("✅ Yes, this is the place"), f"i|{tid}|locok")],
            [self._button(_("✏️ No, let me correct it"), f"i|{tid}|locretry")],
        ]
        area = location.area
        kelurahan = (
            _("Kel. {kelurahan}, Kec. {kecamatan}").format(
                kelurahan=area.kelurahan_name, kecamatan=area.kecamatan_name
            )
            if area
            else _("Kota Semarang")
        )
        title = _typed_street(ticket, location) or kelurahan
        return [
            Venue(
                location.lat, location.lon, _cut(title, 100), _cut(kelurahan, 200),
                InlineKeyboardMarkup(rows),
            )
        ]  # fmt: skip

    @staticmethod
    def _location_line(ticket: Ticket, location: Location, _: Translate) -> str:
        """The place in one line, escaped: the street as typed (or found), then the kelurahan
        and kecamatan once."""
        street = _typed_street(ticket, location)
        parts = [escape(_cut(street, 200))] if street else []
        if location.area is not None:
            parts.append(
                _("Kel. {kelurahan}, Kec. {kecamatan}").format(
                    kelurahan=escape(location.area.kelurahan_name),
                    kecamatan=escape(location.area.kecamatan_name),
                )
            )
        return " · ".join(parts) or _("Kota Semarang")

    def _guess(self, ticket: Ticket, _: Translate) -> Text:
        """A one-message report read back: the guessed category (and place), one tap."""
        tid = ticket.id
        lines = [_("🆘 <b>Is this what happened?</b>")]
        if ticket.category:
            category = _(CATEGORY_LABELS[ticket.category])
            lines.append(_("<b>What:</b> {category}").format(category=category))
        rows = [[self._button(_("✅ Yes, that's right"), f"i|{tid}|guessok")]]
        rows.append([self._button(_("✏️ Another type"), f"i|{tid}|guesscat")])
        pending = ticket.pending_location
        if pending is not None:
            lines.append(_("<b>Where:</b> {place}").format(place=self._pending_place(pending, _)))
            rows.append([self._button(_("✏️ Another place"), f"i|{tid}|guessplace")])
        if ticket.details:
            details = escape(_cut(ticket.details, 300))
            lines.append(_("<b>Details:</b> {details}").format(details=details))
        lines.append(_("Tap «✅ Yes» if that is right, or change it."))
        rows.append([self._silent_button(ticket, _)])
        rows.append([self._button(_("✖️ Cancel report"), f"i|{tid}|cancel")])
        return Text("\n".join(lines), InlineKeyboardMarkup(rows))

    @staticmethod
    def _pending_place(location: Location, _: Translate) -> str:
        """A place found for the citizen to confirm: its name (or "the location you shared")
        and its area, the kelurahan said once."""
        if location.source in (LocationSource.GPS, LocationSource.LIVE):
            name = _("the location you shared")
        else:
            name = escape(_short_name(location))
        area = location.area
        if area is None:
            return name
        if area.kelurahan_name.lower() in name.lower():
            where = _("Kec. {kecamatan}").format(kecamatan=escape(area.kecamatan_name))
        else:
            where = _("Kel. {kelurahan}, Kec. {kecamatan}").format(
                kelurahan=escape(area.kelurahan_name), kecamatan=escape(area.kecamatan_name)
            )
        return f"{name} · {where}" if name else where

    def _suggest_location(self, ticket: Ticket, location: Location, _: Translate) -> list[Reply]:
        """A typed place read with typos: "did you mean …?", never taken without a tap."""
        tid = ticket.id
        place = self._pending_place(location, _)
        text = _("🔎 <b>Did you mean {place}?</b>").format(place=place)
        name = _cut(_short_name(location), 40)
        rows = [
            [self._button(_("✅ Yes, {place}").format(place=name), f"i|{tid}|locok")],
            [self._button(_("✏️ No, let me type it again"), f"i|{tid}|locretry")],
        ]
        return [Text(text, InlineKeyboardMarkup(rows))]

    def _phone_prompt(
        self, outcome: Outcome, _: Translate, *, change_identity: bool
    ) -> list[Reply]:
        citizen, ticket = outcome.citizen, outcome.ticket
        tid = ticket.id if ticket else 0
        if citizen.phone_e164 and citizen.name and not change_identity:
            text = _("👤 <b>Are you still {name}</b>, phone {phone} ({verified})?").format(
                name=escape(citizen.name),
                phone=escape(citizen.phone_e164),
                verified=_verified(citizen.phone_verified, _),
            )
            markup = InlineKeyboardMarkup(
                [
                    [self._button(_("✅ Yes, that's me"), f"i|{tid}|me")],
                    [self._button(_("✏️ Change name or number"), f"i|{tid}|notme")],
                ]
            )
            return [Text(text, markup)]
        if ticket is not None and ticket.silent:  # never "so the operator can call you back"
            text = _(
                "📱 <b>Who are you?</b> Tap «📱 Share my phone number» below: the operator will "
                "only write to you here, never call. You can also type your number (it will be "
                "marked as not verified), or tap «⏭️ Skip» to go on without one."
            )
        else:
            text = _(
                "📱 <b>Who are you?</b> Tap «📱 Share my phone number» below so the operator can "
                "call you back. You can also type your number (it will be marked as not "
                "verified), or tap «⏭️ Skip» to go on without one."
            )
        button = KeyboardButton(_("📱 Share my phone number"), request_contact=True)
        skip = KeyboardButton(_(SKIP_PHONE))
        return [self._keyboard_prompt(text, button, _("Phone number"), _, skip)]

    @staticmethod
    def _keyboard_prompt(
        text: str, button: KeyboardButton, placeholder: str, _: Translate,
        *more: KeyboardButton,
    ) -> Text:  # fmt: skip
        """A question answered by one tap on a reply-keyboard button (or by typing)."""
        keyboard = ReplyKeyboardMarkup(
            [[button], *([list(more)] if more else [])], resize_keyboard=True,
            one_time_keyboard=True, input_field_placeholder=placeholder,
        )  # fmt: skip
        return Text(text + "\n" + _("Send /cancel to stop."), keyboard)

    def _details_text(self, ticket: Ticket, _: Translate) -> str:
        """The report so far, the invitation to add details, and the persons question: one
        screen, edited in place as the citizen taps, sent with one more tap."""
        lines = self._summary_lines(ticket, _)
        lines.append("")
        lines.append(
            _(
                "📝 <b>Anything else the operator should know?</b> (optional) Send a short "
                "description, a photo or a voice note, then tap «📨 Send report»."
            )
        )
        lines.append(_("👥 <b>How many people are affected?</b>"))
        return "\n".join(lines)

    def _silent_button(self, ticket: Ticket, _: Translate) -> InlineKeyboardButton:
        """ "I cannot speak safely", on or off: the operators then contact by chat only."""
        label = (
            _("🤫 I cannot speak safely: ON") if ticket.silent else _("🤫 I cannot speak safely")
        )
        return self._button(label, f"i|{ticket.id}|silent")

    def _details_keyboard(self, ticket: Ticket, _: Translate) -> InlineKeyboardMarkup:
        tid = ticket.id
        persons = [
            self._button(
                ("• " if ticket.persons_affected == key else "") + _(label),
                f"i|{tid}|persons|{key}",
            )
            for key, label in PERSONS_LABELS.items()
        ]
        return InlineKeyboardMarkup(
            [
                persons,
                [self._silent_button(ticket, _)],
                [self._button(_("📨 Send report"), f"i|{tid}|submit")],
                [
                    self._button(_("✏️ Change something"), f"i|{tid}|done"),
                    self._button(_("✖️ Cancel report"), f"i|{tid}|cancel"),
                ],
            ]
        )

    def _confirm_keyboard(self, ticket: Ticket, _: Translate) -> InlineKeyboardMarkup:
        tid = ticket.id
        return InlineKeyboardMarkup(
            [
                [self._button(_("📨 Send report"), f"i|{tid}|submit")],
                [
                    self._button(_("✏️ Type"), f"i|{tid}|edit|category"),
                    self._button(_("✏️ Place"), f"i|{tid}|edit|location"),
                ],
                [
                    self._button(_("✏️ Name/phone"), f"i|{tid}|edit|identity"),
                    self._button(_("✏️ Details"), f"i|{tid}|edit|details"),
                ],
                [self._button(_("✖️ Cancel report"), f"i|{tid}|cancel")],
            ]
        )

    def summary(self, ticket: Ticket, _: Translate) -> str:
        """The citizen's summary before sending."""
        lines = [_("📋 <b>Please check your report</b>"), *self._summary_lines(ticket, _)[1:]]
        lines.append("")
        lines.append(_("Send it to Call Center 112?"))
        return "\n".join(lines)  # every part is bounded, so the whole stays < 4096

    def _summary_lines(self, ticket: Ticket, _: Translate) -> list[str]:
        """A heading and what the report holds so far (each part bounded)."""
        lines = [_("📋 <b>Your report</b>")]
        if ticket.category:
            lines.append(
                _("<b>What:</b> {category}").format(
                    category=escape(_(CATEGORY_LABELS[ticket.category]))
                )
            )
        lines.append(_("<b>Where:</b> {place}").format(place=self._place(ticket, _)))
        if ticket.phone_skipped:
            lines.append(
                _("<b>Who:</b> {name}, no callback number").format(
                    name=escape(ticket.caller_name or "—")
                )
            )
        else:
            lines.append(
                _("<b>Who:</b> {name}, {phone} ({verified})").format(
                    name=escape(ticket.caller_name or "—"),
                    phone=escape(ticket.caller_phone_e164 or "—"),
                    verified=_verified(ticket.caller_phone_verified, _),
                )
            )
        lines.extend(_persons_and_details(ticket, _))
        if ticket.media:
            lines.append(_("<b>Attachments:</b> {count}").format(count=len(ticket.media)))
        if ticket.silent:
            lines.append(_("🤫 Silent mode is on: the operator will contact you by chat only."))
        return lines

    def _place(self, ticket: Ticket, _: Translate) -> str:
        location = ticket.incident_location
        if location is None:
            return escape(_cut(ticket.location_note or "—", 300))
        line = self._location_line(ticket, location, _)
        if location.source is LocationSource.CENTROID:
            line += " · " + _("(approximate)")
        return line

    # -- after submit and system notices ------------------------------------------------

    def abandoned(self, citizen: Citizen) -> Text:
        """Tells a citizen their idle draft was closed."""
        _ = gettext_for(citizen.language)
        text = _(
            "⌛ Your report was closed because there was no answer for {minutes} minutes. "
            "What you had entered was kept for the operators. Tap «🆘 Report an emergency» to "
            "report again."
        ).format(minutes=self.timeout_minutes)
        return Text(text + "\n\n" + self.fallback(_), self.menu(_))

    def error(self, language: str, reference: str) -> Text:
        """Tells the citizen something broke, with a reference and the voice number."""
        _ = gettext_for(language)
        text = _(
            "⚠️ Sorry, something went wrong on our side (reference {reference}). What you "
            "sent so far is saved; please try again in a moment."
        ).format(reference=escape(reference))
        return Text(text + "\n\n" + self.fallback(_))

    def busy(self, language: str) -> Text:
        """Tells the citizen their last message or tap could not be saved (the database was
        busy) and must be sent again: never a silent loss."""
        _ = gettext_for(language)
        text = _(
            "⏳ Sorry, we are very busy right now and could <b>not</b> save your last message "
            "or tap. Please send it again in a few seconds; everything before it is saved."
        )
        return Text(text + "\n\n" + self.fallback(_))

    # -- the conversation with the operators after submit ---------------------------------

    def citizen_status(
        self, citizen: Citizen, ticket: Ticket, payload: Mapping[str, object]
    ) -> Text:
        """A progress notice (being handled, dispatched, en route, on scene, resolved), in
        the citizen's language, with the reference and the voice number."""
        _ = gettext_for(citizen.language)
        ref = escape(ticket.ref or "")
        step = payload.get("status")
        markup = None
        if step == "claimed":
            text = _(
                "👮 An operator of Call Center 112 is now handling your report <b>{ref}</b>. "
                "You can write here to talk to them."
            ).format(ref=ref)
        elif step == "acknowledged":
            text = _("✅ {agencies} has received your report <b>{ref}</b>.").format(
                ref=ref, agencies=escape(_names(payload) or "—")
            )
        elif step == "completed":
            text = _("🏁 {agencies} has finished its work on your report <b>{ref}</b>.").format(
                ref=ref, agencies=escape(_names(payload) or "—")
            )
        elif step == "dispatched":
            names = payload.get("agencies")
            agencies = ", ".join(map(str, names)) if isinstance(names, list) else ""
            text = _("🚒 Help has been requested for your report <b>{ref}</b>: {agencies}.").format(
                ref=ref, agencies=escape(agencies or "—")
            )
        elif step == "en_route":
            eta = payload.get("eta_minutes")
            if isinstance(eta, int) and eta > 0:
                text = _(
                    "🚨 Help is on the way for your report <b>{ref}</b>, in about {minutes} "
                    "minutes."
                ).format(ref=ref, minutes=eta)
            else:
                text = _("🚨 Help is on the way for your report <b>{ref}</b>.").format(ref=ref)
            if _names(payload):  # an agency's own word: say who is coming
                text += " " + _("({agencies})").format(agencies=escape(_names(payload)))
        elif step == "on_scene":
            text = _("📍 Help has arrived at the place of your report <b>{ref}</b>.").format(
                ref=ref
            )
        elif step == "resolved":
            text = _(
                "✅ Your report <b>{ref}</b> has been closed by Call Center 112. Thank you. "
                "If you need help again, tap «🆘 Report an emergency» to send a new report."
            ).format(ref=ref)
            markup = self.menu(_)
        else:
            text = _("ℹ️ There is news about your report <b>{ref}</b>.").format(ref=ref)
        if is_exercise(ticket):
            text = f"<b>{EXERCISE_MARK}</b>\n{text}"
        return Text(text + "\n\n" + self.fallback(_), markup)

    def citizen_relay_header(
        self, citizen: Citizen, ticket: Ticket, *, edited: bool = False
    ) -> str:
        """The role header of an operator's message (never the operator's own name)."""
        _ = gettext_for(citizen.language)
        header = _("👮 <b>Operator 112</b> · {ref}").format(ref=escape(ticket.ref or ""))
        return header + (" " + _("(corrected)") if edited else "")

    # -- operators ----------------------------------------------------------------------

    def repeat_mark(self) -> str:
        """Heads a message sent again after a crash: operators must not count it twice."""
        _ = gettext_for(self.operator_language)
        return _("⟳ <b>sent again after a disruption — possibly a duplicate</b>")

    def repeat_pin(self, ticket: Ticket) -> str:
        """Precedes a pin sent again after a crash (a pin carries no text of its own)."""
        _ = gettext_for(self.operator_language)
        return _("{mark} · location of <b>{ref}</b>:").format(
            mark=self.repeat_mark(), ref=escape(ticket.ref or "")
        )

    def admin_alert(self, payload: dict[str, object]) -> str:
        """An alert for the admins (default language): which chat, and Telegram's reason."""
        _ = gettext_for(self.operator_language)
        if payload.get("event") == "webhook_dead":
            return _(
                "⚠️ <b>Siaga112:</b> the webhook of agency {agency} for report {ref} was given "
                "up after repeated failures («{reason}»). Call the agency by phone and check its "
                "webhook_url and secret."
            ).format(
                agency=escape(str(payload.get("agency") or "—")),
                ref=escape(str(payload.get("ref") or "—")),
                reason=escape(str(payload.get("reason") or "—")),
            )
        chat_id = payload.get("chat_id")
        chat = escape(str(chat_id)) if chat_id is not None else _("not configured")
        if payload.get("audience") == "agency":
            where = _("the agency chat {chat}").format(chat=chat)
        else:
            where = _("the operators' chat {chat}").format(chat=chat)
        if payload.get("event") == "destination_recovered":
            return _("✅ <b>Siaga112:</b> {where} receives messages again.").format(where=where)
        reason = escape(str(payload.get("reason") or "—"))
        return _(
            "⚠️ <b>Siaga112:</b> {where} does not accept messages from the bot. Telegram says: "
            "«{reason}». Reports wait in the queue and are retried every 30 seconds. Check that "
            "the bot is a member and an administrator of that chat, and that the configured id "
            "is right."
        ).format(where=where, reason=reason)


def _names(payload: Mapping[str, object]) -> str:
    """The agency names of a citizen notice's payload, joined."""
    names = payload.get("agencies")
    return ", ".join(map(str, names)) if isinstance(names, list) else ""


def _verified(verified: bool, _: Translate) -> str:
    return _("verified") if verified else _("not verified")


def _persons_and_details(ticket: Ticket, _: Translate) -> list[str]:
    """The lines the citizen's summary and the operator card share about the incident."""
    lines = []
    if ticket.persons_affected:
        persons = _(PERSONS_LABELS[ticket.persons_affected])
        lines.append(_("<b>People affected:</b> {persons}").format(persons=persons))
    if ticket.details:
        details = escape(_cut(ticket.details, DETAILS_SHOWN))
        lines.append(_("<b>Details:</b> {details}").format(details=details))
    return lines


def _typed_street(ticket: Ticket, location: Location) -> str:
    """The street the citizen typed as the address (without its kelurahan), else the found
    place's; a one-message report's own words are not an address."""
    typed = location.address_text
    if typed and ticket.details and typed in ticket.details:
        typed = None
    return _street(typed, location.area) or _street(location.display_address, location.area)


def _street(display_address: str | None, area: Area | None) -> str:
    """The street part of a found address: what comes before its kelurahan (which the line
    names once, with the kecamatan, on its own)."""
    if not display_address:
        return ""
    if area is None:
        return display_address
    names = {area.kelurahan_name.lower(), area.kecamatan_name.lower(), "kota semarang",
             "semarang", "jawa tengah", "central java", "indonesia"}  # fmt: skip
    kept: list[str] = []
    for part in (p.strip() for p in display_address.split(",")):
        bare = part.lower().removeprefix("kelurahan ").removeprefix("kecamatan ")
        bare = bare.removeprefix("kel. ").removeprefix("kec. ")
        if bare.isdigit() or any(bare == n or bare.startswith(f"{n} ") for n in names):
            break
        kept.append(part)
    return ", ".join(kept)


def _short_name(location: Location) -> str:
    """The first part of a found place's address ("Pasar Johar", "Kelurahan Bendungan")."""
    return (location.display_address or "").split(",")[0].strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
