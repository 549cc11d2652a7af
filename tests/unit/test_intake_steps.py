"""The intake's shorter path on the in-memory fakes: the contact's name, skipping the phone,
sending from the details screen, details at the summary, /status and abandoned drafts."""

from __future__ import annotations

from typing import Any

import pytest

from bot.domain.model import (
    NO_PHONE,
    Category,
    CategoryGroup,
    Citizen,
    IntakeStep,
    Location,
    LocationSource,
    Ticket,
    TicketStatus,
)
from bot.services.citizens import Actor, Notice
from bot.services.intake import IntakePolicy, IntakeService
from bot.services.outbox_kinds import CITIZEN_NOTICE, OPERATOR_CARD, OPERATOR_PIN
from tests.fakes.memory_uow import (
    InMemoryEventRepository,
    InMemoryOutboxRepository,
    InMemoryTicketRepository,
    InMemoryUnitOfWorkFactory,
)
from tests.unit.console_support import OPERATORS_CHAT, PLEBURAN, T0, Clock, Geocoder, kinds

S = TicketStatus
SITI = Actor(5001, 5001, display_name="Siti Aminah")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uow_factory() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


@pytest.fixture
def intake(uow_factory: InMemoryUnitOfWorkFactory, clock: Clock) -> IntakeService:
    policy = IntakePolicy(operator_chat_id=OPERATORS_CHAT)  # idle drafts close after 15 min
    return IntakeService(uow_factory, Geocoder(), clock, policy)


async def _draft_at(
    uow_factory: InMemoryUnitOfWorkFactory, step: IntakeStep, **fields: object
) -> Ticket:
    """A draft of Siti's at ``step`` with everything before it answered."""
    answered = {
        "category": Category.MED,
        "incident_location": Location(-6.99, 110.42, LocationSource.GPS, T0, area=PLEBURAN),
    }
    if step in (IntakeStep.DETAILS, IntakeStep.CONFIRM):
        answered |= {"caller_name": "Siti", "caller_phone_e164": "+6281390001234"}
    if step is IntakeStep.CONFIRM:
        answered["reviewed"] = True
    async with uow_factory() as uow:
        citizen = await uow.citizens.get_by_telegram_id(SITI.telegram_id)
        if citizen is None:
            citizen = await uow.citizens.add(
                Citizen(telegram_id=SITI.telegram_id, language="id", created_at=T0, updated_at=T0)
            )
        draft = await uow.tickets.add(
            Ticket(
                citizen_id=citizen.id or 0, chat_id=SITI.chat_id, status=S.DRAFT, created_at=T0,
                updated_at=T0, step=step, **(answered | fields),
            )
        )  # fmt: skip
        await uow.commit()
    return draft


async def test_shared_contact_brings_its_name_and_skips_the_name_question_when_valid(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    await _draft_at(uow_factory, IntakeStep.PHONE)
    outcome = await intake.share_contact(SITI, "+62 813-9000-1234", SITI.telegram_id, "Siti A")
    assert outcome.ticket is not None
    assert outcome.ticket.step is IntakeStep.DETAILS
    assert outcome.ticket.caller_name == "Siti A"
    assert outcome.ticket.caller_phone_verified


async def test_name_question_stays_when_the_shared_contacts_name_is_not_a_name(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    await _draft_at(uow_factory, IntakeStep.PHONE)
    outcome = await intake.share_contact(SITI, "+6281390001234", SITI.telegram_id, "😀")
    assert outcome.ticket is not None
    assert outcome.ticket.step is IntakeStep.NAME
    assert outcome.suggestion == "😀"  # offered, refused if tapped: the citizen types a name


async def test_phone_step_is_skipped_with_no_callback_number_when_the_citizen_skips(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    await _draft_at(uow_factory, IntakeStep.PHONE)
    outcome = await intake.skip_phone(SITI)
    ticket = outcome.ticket
    assert ticket is not None
    assert ticket.caller_phone_e164 == NO_PHONE
    assert ticket.phone_skipped
    assert not ticket.caller_phone_verified
    assert ticket.step is IntakeStep.NAME
    assert outcome.suggestion == "Siti Aminah"
    async with uow_factory() as uow:
        events = await uow.events.for_ticket(ticket.id or 0)
    assert [e.kind for e in events] == ["phone_skipped"]


async def test_skip_is_refused_as_for_another_step_when_the_draft_is_not_at_the_phone_step(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    await _draft_at(uow_factory, IntakeStep.DETAILS)
    outcome = await intake.skip_phone(SITI)  # a message (the keyboard's «Skip»), not a button
    assert outcome.notices == [Notice.OTHER_STEP]  # the handler routes it again by the step
    assert outcome.ticket is not None
    assert outcome.ticket.caller_phone_e164 == "+6281390001234"


async def test_a_message_for_another_step_changes_nothing_and_says_so_when_the_draft_moved_on(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    draft = await _draft_at(uow_factory, IntakeStep.NAME)
    outcome = await intake.add_detail_text(SITI, "Siti Rahma")
    assert outcome.notices == [Notice.OTHER_STEP]
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft.id or 0)
    assert stored == draft  # not a detail, not a version further


async def test_a_button_for_another_step_stays_a_stale_button_when_pressed(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    draft = await _draft_at(uow_factory, IntakeStep.DETAILS)
    outcome = await intake.confirm_identity(SITI, draft.id or 0)  # the phone step's button
    assert outcome.notices == [Notice.STALE_BUTTON]


async def test_report_is_sent_from_the_details_screen_when_send_is_tapped_there(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    draft = await _draft_at(uow_factory, IntakeStep.DETAILS)
    outcome = await intake.submit(SITI, draft.id or 0)
    assert Notice.SUBMITTED in outcome.notices
    assert outcome.ticket is not None
    assert outcome.ticket.status is S.SUBMITTED


async def test_detail_typed_at_the_summary_is_kept_when_sent_there(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    await _draft_at(uow_factory, IntakeStep.CONFIRM)
    outcome = await intake.add_detail_text(SITI, "lantai dua")
    assert outcome.notices == [Notice.DETAIL_ADDED]
    assert outcome.ticket is not None
    assert outcome.ticket.details == "lantai dua"
    assert outcome.ticket.step is IntakeStep.CONFIRM


async def test_status_leaves_out_cancelled_drafts_when_listed(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    sent = await _draft_at(uow_factory, IntakeStep.DETAILS)
    await intake.submit(SITI, sent.id or 0)
    for _ in range(6):  # more cancelled drafts than the list is long
        draft = await _draft_at(uow_factory, IntakeStep.LOCATION, incident_location=None)
        await intake.cancel(SITI, draft.id)
    outcome = await intake.status(SITI)
    assert [t.id for t in outcome.open_tickets] == [sent.id]


async def test_abandoned_drafts_unconfirmed_gps_point_is_pinned_when_it_times_out(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, intake: IntakeService
) -> None:
    shared = Location(-6.99, 110.42, LocationSource.GPS, T0, accuracy_m=12.0, area=PLEBURAN)
    await _draft_at(
        uow_factory, IntakeStep.LOCATION_CONFIRM, incident_location=None, pending_location=shared
    )
    clock.advance(minutes=16)
    assert await intake.abandon_idle_drafts() == 1
    assert kinds(uow_factory) == [OPERATOR_CARD, OPERATOR_PIN, CITIZEN_NOTICE]
    async with uow_factory() as uow:
        citizen = await uow.citizens.get_by_telegram_id(SITI.telegram_id)
        assert citizen is not None
        tickets = await uow.tickets.recent(citizen.id or 0, 5)
    assert tickets[0].status is S.ABANDONED
    assert tickets[0].pinned_location == shared


# -- silent mode up front (issue 10) -----------------------------------------------------------


async def test_silent_mode_is_switched_on_at_the_first_menu_when_the_caller_cannot_speak(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    started = await intake.start_report(SITI)
    assert started.ticket is not None
    assert started.ticket.step is IntakeStep.CATEGORY
    outcome = await intake.toggle_silent(SITI, started.ticket.id or 0)
    assert outcome.ticket is not None
    assert (outcome.ticket.silent, outcome.ticket.step) == (True, IntakeStep.CATEGORY)
    kinds_ = [e.kind for e in uow_factory.store.events.values()]
    assert "silent_on" in kinds_


async def test_kdrt_turns_silent_mode_on_by_default_and_the_caller_may_turn_it_off(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    started = await intake.start_report(SITI)
    tid = started.ticket.id if started.ticket else 0
    await intake.choose_group(SITI, tid or 0, CategoryGroup.CRIME)
    chosen = await intake.choose_category(SITI, tid or 0, Category.KDRT)
    assert chosen.ticket is not None
    assert chosen.ticket.silent is True  # on by default for domestic violence
    notes = [(e.kind, e.note) for e in uow_factory.store.events.values()]
    assert ("silent_on", "default for KDRT") in notes
    async with uow_factory() as uow:
        draft = await uow.tickets.get(tid or 0)
    assert draft is not None
    assert draft.silent is True


async def test_crime_other_than_kdrt_leaves_silent_mode_to_the_caller_when_chosen(
    intake: IntakeService,
) -> None:
    started = await intake.start_report(SITI)
    tid = (started.ticket.id if started.ticket else 0) or 0
    await intake.choose_group(SITI, tid, CategoryGroup.CRIME)
    chosen = await intake.choose_category(SITI, tid, Category.CRIME)
    assert chosen.ticket is not None
    assert chosen.ticket.silent is False  # offered on the crime menu, not imposed


async def test_current_state_makes_no_record_when_the_citizen_is_unknown_or_erased(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService
) -> None:
    assert await intake.current(SITI) is None  # e.g. the redraw timer after an erasure
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(SITI.telegram_id) is None
    draft = await _draft_at(uow_factory, IntakeStep.DETAILS)
    state = await intake.current(SITI)
    assert state is not None
    assert state.ticket is not None
    assert state.ticket.id == draft.id


async def test_submit_takes_its_reference_last_so_the_days_counter_is_held_only_to_the_commit(
    uow_factory: InMemoryUnitOfWorkFactory, intake: IntakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = await _draft_at(uow_factory, IntakeStep.CONFIRM)
    writes: list[str] = []
    depth = [0]  # the service's own calls only, not the fake's calls within them
    for repository, method in (
        (InMemoryTicketRepository, "next_ref_number"),
        (InMemoryTicketRepository, "update"),
        (InMemoryTicketRepository, "update_with_next_ref"),
        (InMemoryEventRepository, "add"),
        (InMemoryOutboxRepository, "add"),
    ):
        original = getattr(repository, method)

        async def logged(self: object, *args: object, _o: Any = original, _n: str = method,
                         _r: type = repository) -> Any:  # fmt: skip
            if not depth[0]:
                writes.append(f"{_r.__name__.removeprefix('InMemory')}.{_n}")
            depth[0] += 1
            try:
                return await _o(self, *args)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(repository, method, logged)
    outcome = await intake.submit(SITI, draft.id or 0)
    assert Notice.SUBMITTED in outcome.notices
    # On PostgreSQL the counter's row stays locked from its upsert to the commit, and every
    # report of the day queues on it: the ticket is written with its reference, last.
    assert writes[-1] == "TicketRepository.update_with_next_ref"
    assert "TicketRepository.update" not in writes  # one write of the ticket
    assert "EventRepository.add" in writes
    assert "OutboxRepository.add" in writes
    assert outcome.ticket is not None
    assert outcome.ticket.ref is not None
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft.id or 0)
    assert stored is not None
    assert (stored.ref, stored.status) == (outcome.ticket.ref, TicketStatus.SUBMITTED)
