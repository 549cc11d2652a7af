"""The citizen intake use cases: one method per citizen action, plain data in and out.

Every method runs in one unit of work: it loads the citizen and their draft, checks that the
action fits the draft's current step, changes the draft, records an event and commits. The
draft is therefore in the database after every step, and a restart resumes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import phonenumbers

from bot.domain.model import (
    CATEGORY_GROUPS,
    NO_PHONE,
    Category,
    CategoryGroup,
    Citizen,
    Disposition,
    GeocodeCandidate,
    IntakeStep,
    Location,
    LocationSource,
    Media,
    MediaKind,
    Ticket,
    TicketStatus,
)
from bot.domain.rules import (
    MAX_ADDRESS_CHARS,
    MAX_DETAILS_CHARS,
    MAX_MEDIA,
    MAX_NAME_CHARS,
    PERSONS_CHOICES,
    clean_text,
    next_step,
    priority_for,
    silent_by_default,
)
from bot.services.citizens import Actor, Notice, Outcome, citizen_and_draft
from bot.services.health import DeliveryHealth
from bot.services.outbox_kinds import (
    CITIZEN_NOTICE,
    OPERATOR_CARD,
    OPERATOR_LOCATION_UPDATE,
    OPERATOR_MEDIA,
    OPERATOR_PIN,
    OPERATOR_TOPIC,
)
from bot.services.ports import Clock, Geocoder, UnitOfWork, UnitOfWorkFactory
from bot.services.queue import request_board
from bot.services.rows import add_event, enqueue
from bot.services.subscriptions import mark_blocked

__all__ = ["Actor", "IntakePolicy", "IntakeService", "Notice", "Outcome", "normalise_phone"]

log = logging.getLogger(__name__)

LIVE_NOTIFY_EVERY = timedelta(minutes=1)
#: Steps where a location (shared or typed) is taken; a new one at the confirm step corrects.
LOCATION_STEPS = (
    IntakeStep.LOCATION,
    IntakeStep.INCIDENT_LOCATION,
    IntakeStep.LOCATION_CONFIRM,
    IntakeStep.LOCATION_SUGGEST,
)
#: Steps where a pin waits for the citizen's tap (shown, or offered as "did you mean …?").
PIN_STEPS = (IntakeStep.LOCATION_CONFIRM, IntakeStep.LOCATION_SUGGEST)
CITIZEN = "citizen"
SYSTEM = "system"
CANCELLED_SLACK = 10
"""/status hides cancelled drafts: read this many more so they do not crowd the list out."""
SILENT_STEPS = (
    IntakeStep.CATEGORY, IntakeStep.SUBCATEGORY, IntakeStep.GUESS, IntakeStep.DETAILS,
)  # fmt: skip
"""Where "I cannot speak safely" is offered: the first menu, the crime menu, the one-message
guess and the details screen."""
DETAIL_STEPS = (IntakeStep.DETAILS, IntakeStep.CONFIRM)
"""Details (text, photos, voice) are taken on the details screen and on the summary alike;
the report can be sent from either."""


@dataclass(frozen=True, slots=True)
class IntakePolicy:
    """Configurable limits of the intake."""

    timeout: timedelta = timedelta(minutes=15)
    max_open_tickets: int = 3
    flood_limit_per_minute: int = 20
    ref_prefix: str = "SMG"
    local_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Jakarta"))
    default_language: str = "id"
    operator_chat_id: int | None = None
    """The operators' chat, whose queue board a submit updates."""
    exercise: bool = False
    """Exercise mode (``DEMO_MODE``): every new ticket carries the disposition ``test``."""
    separate_pin: bool = True
    """Queue the location pin as its own row after the card; False when the edge's card
    carries the location itself (the pin merged into the card)."""


Result = Outcome | Notice | None
Change = Callable[[UnitOfWork, Citizen, Ticket], Awaitable[Result]]


class IntakeService:
    """Runs the citizen's report from the first tap to the submitted ticket."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        geocoder: Geocoder,
        clock: Clock,
        policy: IntakePolicy,
        *,
        read_uow_factory: UnitOfWorkFactory | None = None,
        health: DeliveryHealth | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._read_uow_factory = read_uow_factory or uow_factory
        self._health = health
        self._geocoder = geocoder
        self._clock = clock
        self._policy = policy

    # -- citizens -------------------------------------------------------------------------

    async def greet(self, actor: Actor) -> Outcome:
        """Registers the citizen (language from Telegram) and returns their state."""
        async with self._uow_factory() as uow:
            outcome = await self._state(uow, *await self._load(uow, actor), actor)
            await uow.commit()
        return outcome

    async def _state(
        self, uow: UnitOfWork, citizen: Citizen, draft: Ticket | None, actor: Actor
    ) -> Outcome:
        """The citizen's draft (with the name to suggest at its name step), or else their
        open tickets."""
        open_tickets = [] if draft else await uow.tickets.open_tickets(citizen.id or 0)
        outcome = Outcome(citizen, draft, open_tickets=open_tickets)
        if draft is not None and draft.step is IntakeStep.NAME:
            outcome.suggestion = self._suggested_name(citizen, actor)
        return outcome

    async def change_identity(self, actor: Actor, ticket_id: int) -> Outcome:
        """Shows the phone question again for a returning citizen who wants to change it."""
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            steps = (IntakeStep.PHONE,)
            if (bad := await self._check(uow, citizen, draft, ticket_id, steps)) or not draft:
                return bad or Outcome(citizen)
            await uow.commit()
        return Outcome(citizen, draft)

    async def peek(self, actor: Actor) -> Outcome:
        """Returns the citizen's state without writing (falls back to ``greet`` for newcomers)."""
        async with self._read_uow_factory() as uow:
            citizen, draft = await uow.citizens.with_draft(actor.telegram_id)
            if (
                citizen is not None
                and citizen.username == actor.username
                and not citizen.blocked_bot
            ):
                return await self._state(uow, citizen, draft, actor)
        return await self.greet(actor)

    async def current(self, actor: Actor) -> Outcome | None:
        """The citizen's state, or None for someone without a record: never writes (a timer
        such as the details screen's redraw must not recreate a citizen who erased their
        data meanwhile)."""
        async with self._read_uow_factory() as uow:
            citizen, draft = await uow.citizens.with_draft(actor.telegram_id)
            if citizen is None:
                return None
            return await self._state(uow, citizen, draft, actor)

    async def set_language(self, actor: Actor, language: str) -> Outcome:
        """Remembers the citizen's language (and that of their draft)."""
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            citizen.language = language
            citizen.updated_at = self._clock.now()
            await uow.citizens.update(citizen)
            if draft is not None:
                draft.language = language
                await uow.tickets.update(draft)
            await uow.commit()
        return Outcome(citizen, draft)

    async def status(self, actor: Actor, limit: int = 5) -> Outcome:
        """Returns the citizen's open tickets and latest reports."""
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            recent = await uow.tickets.recent(citizen.id or 0, limit + CANCELLED_SLACK)
            await uow.commit()
        shown = [t for t in recent if t.status is not TicketStatus.CANCELLED][:limit]
        return Outcome(citizen, draft, open_tickets=shown)

    # -- the draft ------------------------------------------------------------------------

    async def start_report(self, actor: Actor) -> Outcome:
        """Starts a new draft, or resumes the one in progress."""
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            if draft is not None:
                return Outcome(citizen, draft, [Notice.RESUMED])
            open_tickets = await uow.tickets.open_tickets(citizen.id or 0)
            if len(open_tickets) >= self._policy.max_open_tickets:
                await uow.commit()
                return Outcome(citizen, None, [Notice.TOO_MANY_OPEN], open_tickets=open_tickets)
            now = self._clock.now()
            draft = await uow.tickets.add(
                Ticket(
                    citizen_id=citizen.id or 0,
                    chat_id=actor.chat_id,
                    status=TicketStatus.DRAFT,
                    step=IntakeStep.CATEGORY,
                    language=citizen.language,
                    created_at=now,
                    updated_at=now,
                    disposition=Disposition.TEST if self._policy.exercise else None,
                )
            )
            await self._event(uow, draft, "draft_started", to_status=TicketStatus.DRAFT)
            await uow.commit()
        return Outcome(citizen, draft, open_tickets=open_tickets)

    async def _load(self, uow: UnitOfWork, actor: Actor) -> tuple[Citizen, Ticket | None]:
        """The citizen (registered or refreshed) and their draft, in one read."""
        return await citizen_and_draft(uow, actor, self._clock.now(), self._policy.default_language)

    async def _save(
        self, uow: UnitOfWork, citizen: Citizen, draft: Ticket, *notices: Notice
    ) -> Outcome:
        draft.step = next_step(draft)
        draft.priority = priority_for(draft)
        draft.updated_at = self._clock.now()
        await uow.commit_with_update(draft)  # PostgreSQL: alone, when nothing else is owed
        return Outcome(citizen, draft, list(notices))

    async def _event(
        self,
        uow: UnitOfWork,
        ticket: Ticket,
        kind: str,
        *,
        actor: str = CITIZEN,
        from_status: TicketStatus | None = None,
        to_status: TicketStatus | None = None,
        note: str | None = None,
    ) -> None:
        await add_event(
            uow, ticket, kind, self._clock.now(), actor, from_status=from_status,
            to_status=to_status, note=note,
        )  # fmt: skip

    async def _check(
        self,
        uow: UnitOfWork,
        citizen: Citizen,
        draft: Ticket | None,
        ticket_id: int | None,
        steps: tuple[IntakeStep, ...],
    ) -> Outcome | None:
        """Return an outcome for a stale or misplaced action, None when it fits."""
        if draft is None:
            notice = Notice.STALE_BUTTON if ticket_id else Notice.NO_REPORT
            open_tickets = await uow.tickets.open_tickets(citizen.id or 0)
            return Outcome(citizen, None, [notice], open_tickets=open_tickets)
        if (ticket_id is not None and ticket_id != draft.id) or draft.step not in steps:
            notice = Notice.STALE_BUTTON if ticket_id is not None else Notice.OTHER_STEP
            return Outcome(citizen, draft, [notice])
        return None

    async def _apply(
        self,
        actor: Actor,
        ticket_id: int | None,
        steps: tuple[IntakeStep, ...],
        change: Change,
    ) -> Outcome:
        """Runs one citizen action on their draft: load it, check that the action fits the
        step (and the button's ticket), change it, then save it at its next step. ``change``
        returns None (saved), a Notice (saved, and told) or an Outcome (refused, not saved).
        """
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            if (bad := await self._check(uow, citizen, draft, ticket_id, steps)) or draft is None:
                return bad or Outcome(citizen)
            result = await change(uow, citizen, draft)
            if isinstance(result, Outcome):
                return result
            return await self._save(uow, citizen, draft, *([result] if result else []))

    async def choose_group(self, actor: Actor, ticket_id: int, group: CategoryGroup) -> Outcome:
        """Stores the tapped category group; single-category groups need no second tap."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            draft.category_group = group
            choices = CATEGORY_GROUPS[group]
            draft.category = choices[0] if len(choices) == 1 else None
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.CATEGORY,), change)

    async def choose_category(self, actor: Actor, ticket_id: int, category: Category) -> Outcome:
        """Stores the sub-category chosen within the group."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            if draft.category_group and category not in CATEGORY_GROUPS[draft.category_group]:
                return Outcome(citizen, draft, [Notice.STALE_BUTTON])
            draft.category = category
            if silent_by_default(draft):
                await self._event(uow, draft, "silent_on", note=f"default for {category.value}")
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.SUBCATEGORY,), change)

    async def back_to_groups(self, actor: Actor, ticket_id: int) -> Outcome:
        """Goes back from the sub-category menu to the group menu."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            draft.category_group = None
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.SUBCATEGORY,), change)

    # -- location -------------------------------------------------------------------------

    async def share_location(
        self,
        actor: Actor,
        lat: float,
        lon: float,
        accuracy_m: float | None,
        live_period: int | None,
    ) -> Outcome:
        """Takes a shared GPS point, places it in its kelurahan and asks to confirm it."""
        now = self._clock.now()
        area = self._geocoder.locate_area(lat, lon)
        address = await self._reverse(lat, lon, actor) if area else None
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            if (bad := await self._check(uow, citizen, draft, None, LOCATION_STEPS)) or not draft:
                return bad or Outcome(citizen)
            source = LocationSource.LIVE if live_period else LocationSource.GPS
            location = Location(
                lat=lat,
                lon=lon,
                source=LocationSource.PIN if draft.location_elsewhere else source,
                captured_at=now,
                accuracy_m=accuracy_m,
                display_address=address,
                area=area,
                live_until=now + timedelta(seconds=live_period) if live_period else None,
            )
            if area is None:
                if not draft.location_elsewhere:
                    draft.reporter_location = location  # kept: it still helps an operator
                    await uow.commit_with_update(draft)
                return Outcome(citizen, draft, [Notice.OUTSIDE_CITY])
            draft.pending_location = location
            draft.updated_at = now
            draft.step = IntakeStep.LOCATION_CONFIRM
            await uow.commit_with_update(draft)
        return Outcome(citizen, draft)

    async def _reverse(self, lat: float, lon: float, actor: Actor) -> str | None:
        try:
            return await self._geocoder.reverse(lat, lon)
        except Exception as exc:  # a failed reverse geocode never blocks a report
            log.warning("reverse geocoding failed: %s", type(exc).__name__)
            return None

    async def type_address(self, actor: Actor, text: str) -> Outcome:
        """Geocodes a typed address or landmark and shows the best match to confirm."""
        typed = clean_text(text, MAX_ADDRESS_CHARS)
        candidates: list[GeocodeCandidate] = []
        if typed:
            try:
                candidates = await self._geocoder.geocode(typed)
            except Exception as exc:  # never block a report on the geocoder
                log.warning("geocoding failed: %s", type(exc).__name__)
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            if (bad := await self._check(uow, citizen, draft, None, LOCATION_STEPS)) or not draft:
                return bad or Outcome(citizen)
            draft.pending_location = None
            draft.step = next_step(draft)
            if not typed:
                return Outcome(citizen, draft, [Notice.WRONG_INPUT])
            inside = [c for c in candidates if c.area is not None]
            if not inside:
                # Keep the typed text so "continue with this description" can use it.
                draft.unresolved_address = typed
                draft.updated_at = self._clock.now()
                await uow.commit_with_update(draft)
                notice = Notice.OUTSIDE_CITY if candidates else Notice.ADDRESS_NOT_FOUND
                return Outcome(citizen, draft, [notice], suggestion=typed)
            best = inside[0]
            approximate = best.source != "nominatim" and best.confidence < 0.5
            draft.pending_location = Location(
                lat=best.lat,
                lon=best.lon,
                source=LocationSource.CENTROID if approximate else LocationSource.GEOCODED,
                captured_at=self._clock.now(),
                address_text=typed,
                display_address=best.display_address,
                area=best.area,
                confidence=best.confidence,
            )
            draft.unresolved_address = None
            # A name read with typos is only a guess: "did you mean …?" (never taken silently).
            draft.step = IntakeStep.LOCATION_SUGGEST if best.fuzzy else IntakeStep.LOCATION_CONFIRM
            draft.updated_at = self._clock.now()
            await uow.commit_with_update(draft)
        return Outcome(citizen, draft, [Notice.APPROXIMATE] if approximate else [])

    async def use_typed_description(self, actor: Actor, ticket_id: int) -> Outcome:
        """Accepts the typed place description as it is when geocoding found nothing."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            if not draft.unresolved_address:
                return Outcome(citizen, draft, [Notice.STALE_BUTTON])
            draft.location_note = draft.unresolved_address
            draft.unresolved_address = None
            await self._event(uow, draft, "location_text_only")
            return None

        steps = (IntakeStep.LOCATION, IntakeStep.INCIDENT_LOCATION)
        return await self._apply(actor, ticket_id, steps, change)

    async def confirm_location(self, actor: Actor, ticket_id: int) -> Outcome:
        """Accepts the shown pin as the incident location (and the reporter's, for GPS)."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            pending = draft.pending_location
            if pending is None:
                return Outcome(citizen, draft, [Notice.STALE_BUTTON])
            if pending.source in (LocationSource.GPS, LocationSource.LIVE):
                draft.reporter_location = pending
            draft.incident_location = pending
            draft.pending_location = None
            await self._event(uow, draft, "location_set", note=pending.source.value)
            return None

        return await self._apply(actor, ticket_id, PIN_STEPS, change)

    async def location_elsewhere(self, actor: Actor, ticket_id: int) -> Outcome:
        """Keeps the shared GPS as the reporter's location and asks where the incident is."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            pending = draft.pending_location
            if pending is not None and pending.source in (LocationSource.GPS, LocationSource.LIVE):
                draft.reporter_location = pending
            draft.location_elsewhere = True
            draft.pending_location = None
            draft.incident_location = None
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.LOCATION_CONFIRM,), change)

    async def retry_location(self, actor: Actor, ticket_id: int) -> Outcome:
        """Discards the shown pin and asks for the location again."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            draft.pending_location = None
            return None

        return await self._apply(actor, ticket_id, PIN_STEPS, change)

    async def update_live_location(
        self, actor: Actor, lat: float, lon: float, accuracy_m: float | None
    ) -> Outcome:
        """Applies a live-location update to the draft or the open ticket it belongs to."""
        now = self._clock.now()
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            target = draft
            if target is None:
                open_tickets = await uow.tickets.open_tickets(citizen.id or 0)
                target = open_tickets[0] if open_tickets else None
            if target is None:
                return Outcome(citizen)
            area = self._geocoder.locate_area(lat, lon)
            changed = False
            for attr in ("pending_location", "reporter_location", "incident_location"):
                current: Location | None = getattr(target, attr)
                if current is not None and current.source is LocationSource.LIVE:
                    moved = replace(
                        current, lat=lat, lon=lon, accuracy_m=accuracy_m, captured_at=now, area=area
                    )
                    setattr(target, attr, moved)
                    changed = True
            if not changed:
                return Outcome(citizen, draft)
            target.updated_at = now
            last = target.live_notified_at or target.submitted_at
            # One pin a minute at most: a group takes about 20 messages a minute.
            if not target.is_draft and (last is None or now - last >= LIVE_NOTIFY_EVERY):
                target.live_notified_at = now
                await self._enqueue(uow, target, OPERATOR_LOCATION_UPDATE)
            # Compare-and-set: an operator's change made meanwhile is never overwritten
            # (this update is dropped instead; the next one follows within seconds).
            if not await uow.tickets.update_if_unchanged(target):
                return Outcome(citizen, draft)
            await uow.commit()
        return Outcome(citizen, draft, [Notice.LOCATION_UPDATED])

    # -- identity -------------------------------------------------------------------------

    async def share_contact(
        self, actor: Actor, phone: str, contact_user_id: int | None, contact_name: str | None
    ) -> Outcome:
        """Stores the shared phone number; verified only when it is the sender's own."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            if contact_user_id != actor.telegram_id:
                return Outcome(citizen, draft, [Notice.CONTACT_NOT_YOURS])
            e164 = normalise_phone(phone)
            if e164 is None:
                return Outcome(citizen, draft, [Notice.INVALID_PHONE])
            draft.caller_phone_e164, draft.caller_phone_verified = e164, True
            citizen.phone_e164, citizen.phone_verified = e164, True
            citizen.name = citizen.name or clean_text(contact_name or "", MAX_NAME_CHARS) or None
            # The name comes with the contact: no question of its own (the summary shows it,
            # and «Name/phone» there changes it).
            draft.caller_name = _valid_name(citizen.name or "")
            await self._update_citizen(uow, citizen)
            return None

        outcome = await self._apply(actor, None, (IntakeStep.PHONE,), change)
        outcome.suggestion = self._suggested_name(outcome.citizen, actor)
        return outcome

    async def _update_citizen(self, uow: UnitOfWork, citizen: Citizen) -> None:
        citizen.updated_at = self._clock.now()
        await uow.citizens.update(citizen)

    @staticmethod
    def _suggested_name(citizen: Citizen, actor: Actor) -> str | None:
        return citizen.name or clean_text(actor.display_name or "", MAX_NAME_CHARS) or None

    async def type_phone(self, actor: Actor, text: str) -> Outcome:
        """Accepts a typed number as unverified after validation (stored as E.164)."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            e164 = normalise_phone(text)
            if e164 is None:
                return Outcome(citizen, draft, [Notice.INVALID_PHONE])
            draft.caller_phone_e164 = e164
            draft.caller_phone_verified = e164 == citizen.phone_e164 and citizen.phone_verified
            draft.caller_name = None
            if not citizen.phone_verified:
                citizen.phone_e164 = e164
                await self._update_citizen(uow, citizen)
            return None

        outcome = await self._apply(actor, None, (IntakeStep.PHONE,), change)
        outcome.suggestion = self._suggested_name(outcome.citizen, actor)
        return outcome

    async def skip_phone(self, actor: Actor) -> Outcome:
        """Goes on without a callback number (operators see "no callback number")."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            draft.caller_phone_e164, draft.caller_phone_verified = NO_PHONE, False
            draft.caller_name = None
            await self._event(uow, draft, "phone_skipped")
            return None

        outcome = await self._apply(actor, None, (IntakeStep.PHONE,), change)
        outcome.suggestion = self._suggested_name(outcome.citizen, actor)
        return outcome

    async def confirm_identity(self, actor: Actor, ticket_id: int) -> Outcome:
        """Reuses a returning citizen's name and number for this report."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            if not (citizen.phone_e164 and citizen.name):
                return Outcome(citizen, draft, [Notice.STALE_BUTTON])
            draft.caller_phone_e164 = citizen.phone_e164
            draft.caller_phone_verified = citizen.phone_verified
            draft.caller_name = citizen.name
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.PHONE,), change)

    async def use_suggested_name(self, actor: Actor, ticket_id: int) -> Outcome:
        """Takes the prefilled name (from the shared contact, the profile or Telegram)."""
        return await self._set_name(actor, None, ticket_id)

    async def type_name(self, actor: Actor, text: str) -> Outcome:
        """Takes the typed name."""
        return await self._set_name(actor, text, None)

    async def _set_name(self, actor: Actor, text: str | None, ticket_id: int | None) -> Outcome:
        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            typed = self._suggested_name(citizen, actor) if text is None else text
            name = _valid_name(typed or "")
            if name is None:
                suggestion = self._suggested_name(citizen, actor)
                return Outcome(citizen, draft, [Notice.INVALID_NAME], suggestion=suggestion)
            draft.caller_name = citizen.name = name
            await self._update_citizen(uow, citizen)
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.NAME,), change)

    # -- details --------------------------------------------------------------------------

    async def add_detail_text(self, actor: Actor, text: str) -> Outcome:
        """Appends a description to the report."""
        piece = clean_text(text, len(text))

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            if not piece:
                return Outcome(citizen, draft, [Notice.WRONG_INPUT])
            current = draft.details or ""
            room = MAX_DETAILS_CHARS - len(current) - (1 if current else 0)
            if room <= 0:
                return Outcome(citizen, draft, [Notice.DETAILS_FULL])
            draft.details = f"{current}\n{piece[:room]}" if current else piece[:room]
            return Notice.DETAILS_FULL if len(piece) > room else Notice.DETAIL_ADDED

        return await self._apply(actor, None, DETAIL_STEPS, change)

    async def add_media(
        self, actor: Actor, kind: MediaKind, file_id: str, caption: str | None
    ) -> Outcome:
        """Attaches a photo, voice note or video to the report (kept by Telegram file id)."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            if len(draft.media) >= MAX_MEDIA:
                return Outcome(citizen, draft, [Notice.MEDIA_FULL])
            text = clean_text(caption, MAX_DETAILS_CHARS) if caption else None
            draft.media = [*draft.media, Media(kind=kind, file_id=file_id, caption=text)]
            return Notice.DETAIL_ADDED

        return await self._apply(actor, None, DETAIL_STEPS, change)

    async def toggle_silent(self, actor: Actor, ticket_id: int) -> Outcome:
        """Switches "I cannot speak safely" on or off."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            draft.silent = not draft.silent
            await self._event(uow, draft, "silent_on" if draft.silent else "silent_off")
            return None

        return await self._apply(actor, ticket_id, SILENT_STEPS, change)

    async def set_persons(self, actor: Actor, ticket_id: int, choice: str) -> Outcome:
        """Stores how many people are affected."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            if choice not in PERSONS_CHOICES:
                return Outcome(citizen, draft, [Notice.STALE_BUTTON])
            draft.persons_affected = choice
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.DETAILS,), change)

    async def details_done(self, actor: Actor, ticket_id: int) -> Outcome:
        """Finishes the optional details and shows the summary."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            draft.reviewed = True
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.DETAILS,), change)

    # -- summary, edit, submit, cancel ----------------------------------------------------

    async def edit(self, actor: Actor, ticket_id: int, part: str) -> Outcome:
        """Reopens one part of the report from the summary."""

        async def change(uow: UnitOfWork, citizen: Citizen, draft: Ticket) -> Result:
            if part == "category":
                draft.category_group, draft.category = None, None
            elif part == "location":
                draft.incident_location = draft.pending_location = None
                draft.location_note, draft.location_elsewhere = None, False
            elif part == "identity":
                draft.caller_phone_e164, draft.caller_name = None, None
                draft.caller_phone_verified = False
            elif part == "details":
                draft.reviewed = False
            else:
                return Outcome(citizen, draft, [Notice.STALE_BUTTON])
            return None

        return await self._apply(actor, ticket_id, (IntakeStep.CONFIRM,), change)

    async def submit(self, actor: Actor, ticket_id: int) -> Outcome:
        """Turns the draft into a ticket with a reference and queues the operator card."""
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            bad = await self._check(uow, citizen, draft, ticket_id, DETAIL_STEPS)
            if bad or not draft:
                return bad or Outcome(citizen)
            now = self._clock.now()
            draft.status = TicketStatus.SUBMITTED
            draft.step = None
            draft.submitted_at = draft.queued_at = now
            draft.updated_at = now
            draft.priority = priority_for(draft)
            await self._event(
                uow, draft, "submitted", from_status=TicketStatus.DRAFT,
                to_status=TicketStatus.SUBMITTED,
            )  # fmt: skip
            await self._enqueue_card(uow, draft, queued=True)
            # The reference last, with the ticket's own write and the commit: taking it locks
            # the day's counter row until the commit, and every report of the city queues on
            # that row (on PostgreSQL; SQLite's unit of work holds the one write lock
            # throughout).
            day = now.astimezone(self._policy.local_zone).date()
            prefix = self._policy.ref_prefix
            draft.ref = await uow.commit_with_next_ref(draft, day, prefix)
        reachable = self._operators_reachable()
        return Outcome(citizen, draft, [Notice.SUBMITTED], operators_reachable=reachable)

    def _operators_reachable(self) -> bool:
        """Whether operator cards get through now, as far as this process knows."""
        return self._health is None or self._health.operators_reachable

    async def _enqueue_card(self, uow: UnitOfWork, ticket: Ticket, *, queued: bool) -> None:
        """Queues the queue board's update, then, in order: the ticket's forum topic (these
        two only for the queue: not for abandoned drafts), its operator card, the pin
        (unless merged into the card) and each attachment.

        The board goes first in the outbox anyway (``BOARD_RANK``), and its row first among
        them too: the store sends them all with the ticket's own write, in the order queued
        (:mod:`storage.connection_unit`)."""
        if queued:
            await request_board(uow, self._clock.now(), self._policy.operator_chat_id)
            await self._enqueue(uow, ticket, OPERATOR_TOPIC)
        await self._enqueue(uow, ticket, OPERATOR_CARD)
        located = ticket.pinned_location is not None
        if located and self._policy.separate_pin:
            await self._enqueue(uow, ticket, OPERATOR_PIN)
        for index in range(len(ticket.media)):
            await self._enqueue(uow, ticket, OPERATOR_MEDIA, index=index)

    async def _enqueue(
        self, uow: UnitOfWork, ticket: Ticket, outbox_kind: str, **payload: object
    ) -> None:
        await enqueue(uow, outbox_kind, self._clock.now(), payload, ticket=ticket)

    async def cancel(self, actor: Actor, ticket_id: int | None = None) -> Outcome:
        """Cancels the draft in progress (submitted tickets are cancelled by operators).

        ``ticket_id`` comes with a Cancel button: a button of another report is stale.
        """
        async with self._uow_factory() as uow:
            citizen, draft = await self._load(uow, actor)
            if ticket_id is not None:
                every_step = tuple(IntakeStep)
                if bad := await self._check(uow, citizen, draft, ticket_id, every_step):
                    return bad
            if draft is None:
                return Outcome(citizen, None, [Notice.NOTHING_TO_CANCEL])
            draft.status = TicketStatus.CANCELLED
            draft.step = None
            draft.closed_at = draft.updated_at = self._clock.now()
            await uow.tickets.update(draft)
            await self._event(
                uow, draft, "cancelled", from_status=TicketStatus.DRAFT,
                to_status=TicketStatus.CANCELLED,
            )  # fmt: skip
            await uow.commit()
        return Outcome(citizen, None, [Notice.CANCELLED])

    async def abandon_idle_drafts(self) -> int:
        """Closes drafts idle past the timeout; they stay visible to operators as abandoned."""
        cutoff = self._clock.now() - self._policy.timeout
        async with self._uow_factory() as uow:
            drafts = await uow.tickets.idle_drafts(cutoff)
            for draft in drafts:
                draft.status = TicketStatus.ABANDONED
                draft.step = None
                draft.closed_at = draft.updated_at = self._clock.now()
                await uow.tickets.update(draft)
                await self._event(
                    uow, draft, "abandoned", actor=SYSTEM, from_status=TicketStatus.DRAFT,
                    to_status=TicketStatus.ABANDONED,
                )  # fmt: skip
                if draft.category is not None:
                    await self._enqueue_card(uow, draft, queued=False)
                await self._enqueue(uow, draft, CITIZEN_NOTICE, notice="abandoned")
            await uow.commit()
        return len(drafts)

    async def mark_blocked(self, telegram_id: int) -> None:
        """Remembers that the citizen blocked the bot (their draft stays as it is); it ends
        their advisory subscription, so after unblocking they start unsubscribed."""
        async with self._uow_factory() as uow:
            await mark_blocked(uow, telegram_id, self._clock)
            await uow.commit()


def _valid_name(text: str) -> str | None:
    """The name with its spaces tidied, or None unless it has 2 to 80 characters and a
    letter."""
    name = " ".join(clean_text(text, MAX_NAME_CHARS * 2).split())
    if not (2 <= len(name) <= MAX_NAME_CHARS) or not any(ch.isalpha() for ch in name):
        return None
    return name


def normalise_phone(text: str) -> str | None:
    """Return an Indonesian (or international) number as E.164, or None when invalid."""
    raw = text.strip()
    if not raw or len(raw) > 32:
        return None
    try:
        number = phonenumbers.parse(raw, "ID")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
