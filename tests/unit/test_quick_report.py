"""One-message reports on the in-memory fakes: a message outside a report starts a draft."""

from __future__ import annotations

import pytest

from bot.domain.model import (
    Category,
    CategoryGroup,
    GeocodeCandidate,
    IntakeStep,
    LocationSource,
    MediaKind,
    TicketStatus,
)
from bot.services.citizens import Actor, Notice
from bot.services.intake import IntakePolicy, IntakeService
from bot.services.quick_report import Incoming, QuickReportService, SharedPoint
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import PLEBURAN, Clock, Geocoder, add_ticket

SITI = Actor(5001, 5001, "id")
JOHAR = GeocodeCandidate(-6.97173, 110.424165, "Pasar Johar", 0.6, "landmark", area=PLEBURAN)
PLEBURAN_CENTRE = GeocodeCandidate(
    -6.99, 110.42, "Kelurahan Pleburan, Kecamatan Semarang Selatan", 0.4, "gazetteer",
    area=PLEBURAN,
)  # fmt: skip


class Places:
    """Finds Pasar Johar in any text naming it; counts the look-ups."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def find_place(self, text: str) -> GeocodeCandidate | None:
        self.calls.append(text)
        if self.fail:
            raise RuntimeError("index broken")
        if "pleburan" in text.lower():
            return PLEBURAN_CENTRE
        return JOHAR if "johar" in text.lower() else None


@pytest.fixture
def uow_factory() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


def _quick(
    uow_factory: InMemoryUnitOfWorkFactory, places: Places | None = None
) -> QuickReportService:
    return QuickReportService(uow_factory, Geocoder(), places or Places(), Clock())


def _intake(uow_factory: InMemoryUnitOfWorkFactory) -> IntakeService:
    return IntakeService(uow_factory, Geocoder(), Clock(), IntakePolicy())


async def test_text_outside_report_starts_draft_with_guessed_category_place_and_details(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    outcome = await _quick(uow_factory).take(SITI, Incoming(text="ada kebakaran di pasar johar!!"))
    draft = outcome.ticket
    assert draft is not None
    assert draft.status is TicketStatus.DRAFT
    assert draft.step is IntakeStep.GUESS
    assert (draft.category_group, draft.category) == (CategoryGroup.FIRE, Category.FIRE)
    assert draft.priority == 1
    assert draft.details == "ada kebakaran di pasar johar!!"
    assert draft.pending_location is not None
    assert draft.pending_location.display_address == "Pasar Johar"
    assert draft.pending_location.source is LocationSource.GEOCODED
    assert draft.incident_location is None  # nothing guessed is taken without a tap
    assert outcome.notices == []  # the guess reads the message back itself
    async with uow_factory() as uow:
        events = await uow.events.for_ticket(draft.id or 0)
    assert [(e.kind, e.note) for e in events] == [("draft_started", "one_message")]


async def test_confirming_the_guess_takes_category_and_place_and_asks_who(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    quick = _quick(uow_factory)
    draft = (await quick.take(SITI, Incoming(text="kebakaran di pasar johar"))).ticket
    assert draft is not None
    outcome = await quick.confirm_guess(SITI, draft.id or 0)
    assert outcome.ticket is not None
    assert outcome.ticket.step is IntakeStep.PHONE
    assert outcome.ticket.incident_location is not None
    assert outcome.ticket.incident_location.area == PLEBURAN
    assert outcome.ticket.pending_location is None


async def test_changing_the_guessed_type_shows_the_menu_then_the_found_place_to_confirm(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    quick = _quick(uow_factory)
    draft = (await quick.take(SITI, Incoming(text="banjir di pasar johar"))).ticket
    assert draft is not None
    changed = await quick.change_guess(SITI, draft.id or 0)
    assert changed.ticket is not None
    assert changed.ticket.step is IntakeStep.CATEGORY
    assert changed.ticket.category is None
    assert changed.ticket.pending_location is not None  # the place is still offered
    chosen = await _intake(uow_factory).choose_group(SITI, draft.id or 0, CategoryGroup.FIRE)
    assert chosen.ticket is not None
    assert chosen.ticket.step is IntakeStep.LOCATION_CONFIRM


async def test_changing_the_guessed_place_keeps_the_type_and_asks_where(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    quick = _quick(uow_factory)
    draft = (await quick.take(SITI, Incoming(text="kebakaran di pasar johar"))).ticket
    assert draft is not None
    outcome = await quick.change_guessed_place(SITI, draft.id or 0)
    assert outcome.ticket is not None
    assert outcome.ticket.category is Category.FIRE
    assert outcome.ticket.pending_location is None
    assert outcome.ticket.step is IntakeStep.LOCATION


async def test_text_without_known_words_is_kept_as_details_and_the_menu_asked(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    outcome = await _quick(uow_factory).take(SITI, Incoming(text="tolong cepat"))
    assert outcome.ticket is not None
    assert outcome.ticket.step is IntakeStep.CATEGORY
    assert outcome.ticket.details == "tolong cepat"
    assert outcome.notices == [Notice.KEPT]


async def test_shared_location_outside_report_is_offered_after_the_category(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    point = SharedPoint(-6.99, 110.42, accuracy_m=12.0)
    outcome = await _quick(uow_factory).take(SITI, Incoming(point=point))
    draft = outcome.ticket
    assert draft is not None
    assert draft.step is IntakeStep.CATEGORY
    assert draft.pending_location is not None
    assert draft.pending_location.source is LocationSource.GPS
    assert draft.pending_location.accuracy_m == 12.0
    chosen = await _intake(uow_factory).choose_group(SITI, draft.id or 0, CategoryGroup.MEDICAL)
    assert chosen.ticket is not None
    assert chosen.ticket.step is IntakeStep.LOCATION_CONFIRM
    confirmed = await _intake(uow_factory).confirm_location(SITI, draft.id or 0)
    assert confirmed.ticket is not None
    assert confirmed.ticket.reporter_location == confirmed.ticket.incident_location


class FailingReverse(Geocoder):
    """The address lookup of a point is down (the area comes from local polygons)."""

    async def reverse(self, lat: float, lon: float, *, language: str = "id") -> str | None:
        raise TimeoutError("nominatim down")


async def test_shared_location_is_kept_when_its_address_lookup_fails(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    quick = QuickReportService(uow_factory, FailingReverse(), Places(), Clock())
    outcome = await quick.take(SITI, Incoming(point=SharedPoint(-6.99, 110.42)))
    assert outcome.ticket is not None
    assert outcome.ticket.pending_location is not None
    assert outcome.ticket.pending_location.area == PLEBURAN
    assert outcome.ticket.pending_location.display_address is None


async def test_location_outside_the_city_is_kept_as_where_the_citizen_is(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    outcome = await _quick(uow_factory).take(SITI, Incoming(point=SharedPoint(-6.17, 106.82)))
    assert outcome.notices == [Notice.OUTSIDE_CITY]
    assert outcome.ticket is not None
    assert outcome.ticket.reporter_location is not None
    assert outcome.ticket.pending_location is None


async def test_photo_with_caption_is_attached_and_caption_guesses(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    incoming = Incoming(text="pohon tumbang", media=(MediaKind.PHOTO, "photo-1"))
    outcome = await _quick(uow_factory).take(SITI, incoming)
    draft = outcome.ticket
    assert draft is not None
    assert [(m.kind, m.file_id, m.caption) for m in draft.media] == [
        (MediaKind.PHOTO, "photo-1", "pohon tumbang")
    ]
    assert draft.category is Category.TREE
    assert draft.step is IntakeStep.GUESS


async def test_message_at_a_button_step_of_an_open_draft_is_kept_and_guessed(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    started = await _intake(uow_factory).start_report(SITI)
    assert started.ticket is not None
    outcome = await _quick(uow_factory).take(SITI, Incoming(text="maling di pasar johar"))
    assert outcome.ticket is not None
    assert outcome.ticket.id == started.ticket.id  # the same draft, no second one
    assert outcome.ticket.category is Category.CRIME
    assert outcome.ticket.step is IntakeStep.GUESS
    assert outcome.ticket.details == "maling di pasar johar"


async def test_message_at_the_summary_is_appended_to_details_and_summary_asked_again(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    ticket = await add_ticket(uow_factory, status=TicketStatus.DRAFT, ref=None)
    async with uow_factory() as uow:
        ticket.step, ticket.reviewed, ticket.details = IntakeStep.CONFIRM, True, "asap"
        await uow.tickets.update(ticket)
        await uow.commit()
    places = Places()
    outcome = await _quick(uow_factory, places).take(
        Actor(5001, 5001), Incoming(text="korban dua orang, di pasar johar")
    )
    assert outcome.ticket is not None
    assert outcome.ticket.step is IntakeStep.CONFIRM
    assert outcome.ticket.details == "asap\nkorban dua orang, di pasar johar"
    assert outcome.ticket.category is Category.FIRE  # a chosen category is never replaced
    assert outcome.notices == [Notice.KEPT]
    assert places.calls == []  # the place is settled: no look-up


async def test_no_draft_is_started_past_the_open_ticket_limit(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    for _ in range(3):
        await add_ticket(uow_factory)
    outcome = await _quick(uow_factory).take(Actor(5001, 5001), Incoming(text="kebakaran"))
    assert outcome.ticket is None
    assert outcome.notices == [Notice.TOO_MANY_OPEN]
    async with uow_factory() as uow:
        citizen = await uow.citizens.get_by_telegram_id(5001)
        assert citizen is not None
        assert await uow.tickets.active_draft(citizen.id or 0) is None


async def test_a_failing_place_finder_loses_nothing(uow_factory: InMemoryUnitOfWorkFactory) -> None:
    quick = _quick(uow_factory, Places(fail=True))
    outcome = await quick.take(SITI, Incoming(text="kebakaran di pasar johar"))
    assert outcome.ticket is not None
    assert outcome.ticket.category is Category.FIRE
    assert outcome.ticket.details == "kebakaran di pasar johar"
    assert outcome.ticket.pending_location is None


async def test_guess_buttons_of_another_draft_or_step_are_stale(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    quick = _quick(uow_factory)
    draft = (await quick.take(SITI, Incoming(text="kebakaran"))).ticket
    assert draft is not None
    stale = await quick.confirm_guess(SITI, (draft.id or 0) + 1)
    assert stale.notices == [Notice.STALE_BUTTON]
    await quick.confirm_guess(SITI, draft.id or 0)
    again = await quick.change_guess(SITI, draft.id or 0)  # the guess is settled
    assert again.notices == [Notice.STALE_BUTTON]
    assert again.ticket is not None
    assert again.ticket.category is Category.FIRE


async def test_area_named_in_the_text_is_offered_as_its_approximate_centre(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    outcome = await _quick(uow_factory).take(SITI, Incoming(text="banjir di pleburan"))
    assert outcome.ticket is not None
    pending = outcome.ticket.pending_location
    assert pending is not None
    assert pending.source is LocationSource.CENTROID  # the summary says "(approximate)"
    assert pending.area == PLEBURAN
    assert pending.confidence == 0.4
