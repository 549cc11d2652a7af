"""One-message reports: nothing a citizen sends is thrown away.

A text, location, photo or voice note sent outside a report starts a draft pre-filled from
it: the category guessed from the words (``bot.domain.guess``), the place named in the text
(a landmark, main road or kelurahan, offline), the text itself as the details, the point or the file
kept. The citizen then sees the guess and confirms or changes it with one tap (step
``GUESS``); nothing guessed is ever taken without that tap.

The same happens to a message sent while a draft waits for a button (the category menu, the
summary, the guess) or of a kind its step does not take: it is kept on the draft as details,
an attachment or the place, and the step's question is asked again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from bot.domain.guess import group_of, guess_category
from bot.domain.model import (
    Area,
    Citizen,
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
    MAX_DETAILS_CHARS,
    MAX_MEDIA,
    clean_text,
    next_step,
    priority_for,
    silent_by_default,
)
from bot.services.citizens import Actor, Notice, Outcome, citizen_and_draft
from bot.services.ports import Clock, Geocoder, PlaceFinder, UnitOfWork, UnitOfWorkFactory
from bot.services.rows import add_event

__all__ = ["Incoming", "QuickReportService", "SharedPoint"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SharedPoint:
    """A location the citizen shared (Telegram GPS)."""

    lat: float
    lon: float
    accuracy_m: float | None = None
    live_period: int | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """What one message carried: text (or a caption), a point, a file."""

    text: str | None = None
    point: SharedPoint | None = None
    media: tuple[MediaKind, str] | None = None


class QuickReportService:
    """Starts or fills a draft from whatever the citizen sent, and settles the guess."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        geocoder: Geocoder,
        places: PlaceFinder | None,
        clock: Clock,
        *,
        max_open_tickets: int = 3,
        default_language: str = "id",
    ) -> None:
        self._uow_factory = uow_factory
        self._geocoder = geocoder
        self._places = places
        self._clock = clock
        self._max_open_tickets = max_open_tickets
        self._default_language = default_language

    async def take(self, actor: Actor, incoming: Incoming) -> Outcome:
        """Keeps the message on the citizen's draft, starting one when there is none."""
        text = clean_text(incoming.text, len(incoming.text)) if incoming.text else ""
        area = address = None
        if incoming.point is not None:
            area = self._geocoder.locate_area(incoming.point.lat, incoming.point.lon)
            address = await self._reverse(incoming.point) if area else None
        async with self._uow_factory() as uow:
            now = self._clock.now()
            citizen, draft = await citizen_and_draft(uow, actor, now, self._default_language)
            if draft is None:
                open_tickets = await uow.tickets.open_tickets(citizen.id or 0)
                if len(open_tickets) >= self._max_open_tickets:
                    await uow.commit()
                    too_many = [Notice.TOO_MANY_OPEN]
                    return Outcome(citizen, None, too_many, open_tickets=open_tickets)
                draft = await self._start(uow, citizen, actor)
            kept: list[Notice] = []
            guessed = self._guess(draft, text)
            if incoming.media is not None:  # a caption stays with its file
                kept.append(self._attach(draft, incoming.media, text or None))
            elif text:
                kept.append(self._append_details(draft, text))
            if incoming.point is not None:
                kept.append(self._place_point(draft, incoming.point, area, address))
            elif text:
                self._place_text(draft, text)
            await self._settle(uow, draft, guessed=guessed)
            await uow.commit()
        return Outcome(citizen, draft, _told(kept, draft))

    async def confirm_guess(self, actor: Actor, ticket_id: int) -> Outcome:
        """Takes the guessed category and place as they are."""
        return await self._on_guess(actor, ticket_id, category=True, place=True)

    async def change_guess(self, actor: Actor, ticket_id: int) -> Outcome:
        """Drops the guessed category: the category menu comes next (a found place then
        waits for its own tap)."""
        return await self._on_guess(actor, ticket_id, category=False, place=False)

    async def change_guessed_place(self, actor: Actor, ticket_id: int) -> Outcome:
        """Takes the guessed category but not the place: the place question comes next."""
        return await self._on_guess(actor, ticket_id, category=True, place=False)

    # -- inside one unit of work ----------------------------------------------------------

    async def _start(self, uow: UnitOfWork, citizen: Citizen, actor: Actor) -> Ticket:
        now = self._clock.now()
        draft = await uow.tickets.add(
            Ticket(
                citizen_id=citizen.id or 0, chat_id=actor.chat_id, status=TicketStatus.DRAFT,
                step=IntakeStep.CATEGORY, language=citizen.language, created_at=now,
                updated_at=now,
            )
        )  # fmt: skip
        await add_event(
            uow, draft, "draft_started", now, "citizen", to_status=TicketStatus.DRAFT,
            note="one_message",
        )  # fmt: skip
        return draft

    @staticmethod
    def _guess(draft: Ticket, text: str) -> bool:
        """Sets the category the words point to while none is chosen; True when it did."""
        if draft.category is not None or not text:
            return False
        category = guess_category(text)
        if category is None:
            return False
        draft.category_group, draft.category = group_of(category), category
        return True

    @staticmethod
    def _append_details(draft: Ticket, text: str) -> Notice:
        current = draft.details or ""
        room = MAX_DETAILS_CHARS - len(current) - (1 if current else 0)
        if room <= 0:
            return Notice.DETAILS_FULL
        draft.details = f"{current}\n{text[:room]}" if current else text[:room]
        return Notice.DETAILS_FULL if len(text) > room else Notice.KEPT

    @staticmethod
    def _attach(draft: Ticket, media: tuple[MediaKind, str], caption: str | None) -> Notice:
        if len(draft.media) >= MAX_MEDIA:
            return Notice.MEDIA_FULL
        text = caption[:MAX_DETAILS_CHARS] if caption else None
        draft.media = [*draft.media, Media(kind=media[0], file_id=media[1], caption=text)]
        return Notice.KEPT

    def _place_point(
        self, draft: Ticket, point: SharedPoint, area: Area | None, address: str | None
    ) -> Notice:
        """A shared point: the place to confirm while none is set, else where the citizen is."""
        now = self._clock.now()
        location = Location(
            lat=point.lat, lon=point.lon,
            source=LocationSource.LIVE if point.live_period else LocationSource.GPS,
            captured_at=now, accuracy_m=point.accuracy_m, display_address=address,
            area=area,
            live_until=now + timedelta(seconds=point.live_period) if point.live_period else None,
        )  # fmt: skip
        if location.area is None:
            draft.reporter_location = location  # kept: it still helps an operator
            return Notice.OUTSIDE_CITY
        if draft.incident_location is None and draft.location_note is None:
            draft.pending_location = location
        else:
            draft.reporter_location = location
        return Notice.KEPT

    def _place_text(self, draft: Ticket, text: str) -> None:
        """The landmark or main road named in the text, to confirm, while no place is set."""
        if self._places is None or draft.step not in _PLACE_OPEN_STEPS:
            return
        if draft.incident_location or draft.pending_location or draft.location_note:
            return
        try:
            found: GeocodeCandidate | None = self._places.find_place(text[:PLACE_CHARS])
        except Exception as exc:  # never lose a report to the place finder
            log.warning("finding a place in a message failed: %s", type(exc).__name__)
            return
        if found is None or found.area is None:
            return
        # The rule of a typed address: an area's centre (or a road's) is only approximate.
        approximate = found.source != "nominatim" and found.confidence < APPROXIMATE_BELOW
        draft.pending_location = Location(
            lat=found.lat, lon=found.lon,
            source=LocationSource.CENTROID if approximate else LocationSource.GEOCODED,
            captured_at=self._clock.now(), address_text=text[:300],
            display_address=found.display_address, area=found.area,
            confidence=found.confidence,
        )  # fmt: skip

    async def _settle(self, uow: UnitOfWork, draft: Ticket, *, guessed: bool) -> None:
        """Saves the draft at its step: the guess while one waits, else what comes next."""
        if guessed or draft.step is IntakeStep.GUESS:
            draft.step = IntakeStep.GUESS
        elif draft.step in _RECOMPUTED_STEPS:
            draft.step = next_step(draft)
        draft.priority = priority_for(draft)
        draft.updated_at = self._clock.now()
        await uow.tickets.update(draft)

    async def _on_guess(
        self, actor: Actor, ticket_id: int, *, category: bool, place: bool
    ) -> Outcome:
        async with self._uow_factory() as uow:
            now = self._clock.now()
            citizen, draft = await citizen_and_draft(uow, actor, now, self._default_language)
            if draft is None:
                open_tickets = await uow.tickets.open_tickets(citizen.id or 0)
                return Outcome(citizen, None, [Notice.STALE_BUTTON], open_tickets=open_tickets)
            if draft.id != ticket_id or draft.step is not IntakeStep.GUESS:
                return Outcome(citizen, draft, [Notice.STALE_BUTTON])
            pending = draft.pending_location
            if category:
                note = draft.category.value if draft.category else None
                await add_event(uow, draft, "guess_confirmed", now, "citizen", note=note)
                if silent_by_default(draft):
                    await add_event(
                        uow, draft, "silent_on", now, "citizen", note=f"default for {note}"
                    )
            else:
                draft.category_group = draft.category = None
            if category and pending is not None and place:
                if pending.source in (LocationSource.GPS, LocationSource.LIVE):
                    draft.reporter_location = pending
                draft.incident_location, draft.pending_location = pending, None
                await add_event(
                    uow, draft, "location_set", now, "citizen", note=pending.source.value
                )
            elif category and pending is not None:
                if pending.source in (LocationSource.GPS, LocationSource.LIVE):
                    draft.reporter_location = pending  # where the citizen is, still useful
                draft.pending_location = None
            draft.step = next_step(draft)
            draft.priority = priority_for(draft)
            draft.updated_at = now
            await uow.tickets.update(draft)
            await uow.commit()
        return Outcome(citizen, draft)

    async def _reverse(self, point: SharedPoint) -> str | None:
        try:
            return await self._geocoder.reverse(point.lat, point.lon)
        except Exception as exc:  # a failed reverse geocode never blocks a report
            log.warning("reverse geocoding failed: %s", type(exc).__name__)
            return None


#: Below this confidence an offline answer is an area's (or road's) centre: approximate.
APPROXIMATE_BELOW = 0.5
#: Characters of a message searched for a place (a place is named early; a long text is
#: not worth the time of the search).
PLACE_CHARS = 500
#: Steps where a message may name the place (before the place is asked or confirmed).
_PLACE_OPEN_STEPS = (IntakeStep.CATEGORY, IntakeStep.SUBCATEGORY, IntakeStep.GUESS)
#: Steps recomputed after a kept message (a found place may now wait for its tap); other
#: steps keep asking their own question.
_RECOMPUTED_STEPS = (IntakeStep.CATEGORY, IntakeStep.SUBCATEGORY)


def _told(kept: list[Notice], draft: Ticket) -> list[Notice]:
    """What to tell besides the step's question: problems first; a plain "kept" only where
    the question does not show the message already (the guess reads it back)."""
    problems: list[Notice] = [n for n in dict.fromkeys(kept) if n is not Notice.KEPT]
    if problems or draft.step is IntakeStep.GUESS:
        return problems
    return [Notice.KEPT]
