"""The queue board, and what a submit queues for the operators (topic, card, board)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.model import (
    Category,
    Citizen,
    IntakeStep,
    Location,
    LocationSource,
    Media,
    MediaKind,
    Ticket,
    TicketStatus,
)
from bot.services.citizens import Actor
from bot.services.console import ConsolePolicy, ConsoleService
from bot.services.intake import IntakePolicy, IntakeService
from bot.services.outbox_kinds import (
    OPERATOR_CARD,
    OPERATOR_MEDIA,
    OPERATOR_PIN,
    OPERATOR_TOPIC,
    QUEUE_BOARD,
)
from bot.services.queue import QueueService
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import (
    DEWI,
    OPERATORS_CHAT,
    PLEBURAN,
    T0,
    Clock,
    Geocoder,
    add_staff,
    add_ticket,
    kinds,
    rows,
)

S = TicketStatus


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uow_factory() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


async def test_board_lists_open_tickets_priority_first_then_oldest_with_age_and_claimer(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    await add_staff(uow_factory, DEWI)
    console = ConsoleService(uow_factory, Geocoder(), clock, ConsolePolicy({}, OPERATORS_CHAT))
    low = await add_ticket(uow_factory, priority=3, at=T0, category=Category.OTHER)
    late_urgent = await add_ticket(uow_factory, priority=1, at=T0 + timedelta(minutes=4))
    early_urgent = await add_ticket(uow_factory, priority=1, at=T0 + timedelta(minutes=1))
    middle = await add_ticket(uow_factory, priority=2, at=T0 + timedelta(minutes=2))
    await add_ticket(uow_factory, priority=1, status=S.RESOLVED)
    await add_ticket(uow_factory, priority=1, status=S.DRAFT, telegram_id=5009, ref=None)
    await add_ticket(uow_factory, priority=1, status=S.ABANDONED)
    clock.advance(minutes=10)
    await console.claim(DEWI, early_urgent.id or 0)
    board = await QueueService(uow_factory, clock).board()
    assert [e.ticket_id for e in board.entries] == [
        early_urgent.id,
        late_urgent.id,
        middle.id,
        low.id,
    ]
    first = board.entries[0]
    assert (first.ref, first.category, first.kecamatan) == (
        early_urgent.ref,
        Category.FIRE,
        "Semarang Selatan",
    )
    assert (first.status, first.claimed_by_name, first.age) == (
        S.CLAIMED,
        "Dewi",
        timedelta(minutes=9),
    )
    assert first.thread_id == early_urgent.operator_thread_id
    assert board.entries[-1].age == timedelta(minutes=10)
    assert board.unclaimed == 3
    assert board.at == clock.now()


async def test_board_is_empty_when_nothing_is_open(uow_factory: InMemoryUnitOfWorkFactory) -> None:
    board = await QueueService(uow_factory, Clock()).board()
    assert board.entries == ()
    assert board.unclaimed == 0


async def _confirmable_draft(uow_factory: InMemoryUnitOfWorkFactory, media: int = 0) -> Ticket:
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(
            Citizen(telegram_id=5001, language="id", created_at=T0, updated_at=T0)
        )
        draft = await uow.tickets.add(
            Ticket(
                citizen_id=citizen.id or 0, chat_id=5001, status=S.DRAFT, created_at=T0,
                updated_at=T0, step=IntakeStep.CONFIRM, category=Category.MED, caller_name="Siti",
                caller_phone_e164="+6281390001234", reviewed=True,
                incident_location=Location(-6.99, 110.42, LocationSource.GPS, T0, area=PLEBURAN),
                media=[Media(MediaKind.PHOTO, f"file{n}") for n in range(media)],
            )
        )  # fmt: skip
        await uow.commit()
    return draft


def _intake(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, *, separate_pin: bool = True
) -> IntakeService:
    policy = IntakePolicy(operator_chat_id=OPERATORS_CHAT, separate_pin=separate_pin)
    return IntakeService(uow_factory, Geocoder(), clock, policy)


async def test_submit_queues_board_topic_card_pin_and_media_in_that_order_when_confirmed(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    draft = await _confirmable_draft(uow_factory, media=2)
    clock.advance(seconds=3)
    outcome = await _intake(uow_factory, clock).submit(Actor(5001, 5001), draft.id or 0)
    assert outcome.ticket is not None
    assert outcome.ticket.status is S.SUBMITTED
    assert outcome.ticket.queued_at == outcome.ticket.submitted_at == clock.now()
    assert kinds(uow_factory) == [  # the board first: it is sent first anyway (its rank)
        QUEUE_BOARD, OPERATOR_TOPIC, OPERATOR_CARD, OPERATOR_PIN, OPERATOR_MEDIA, OPERATOR_MEDIA,
    ]  # fmt: skip
    assert [m.payload.get("index") for m in rows(uow_factory, OPERATOR_MEDIA)] == [0, 1]
    assert rows(uow_factory, QUEUE_BOARD)[0].payload == {"chat_id": OPERATORS_CHAT}
    assert all(m.ticket_id == draft.id for m in rows(uow_factory) if m.kind != QUEUE_BOARD)
    # Topics and cards follow the queue: the ticket's priority is the rows' rank.
    assert [m.rank for m in rows(uow_factory)][:3] == [0, 1, 1]


async def test_submit_leaves_the_pin_to_the_card_when_the_edge_merges_them(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    draft = await _confirmable_draft(uow_factory)
    await _intake(uow_factory, clock, separate_pin=False).submit(Actor(5001, 5001), draft.id or 0)
    assert kinds(uow_factory) == [QUEUE_BOARD, OPERATOR_TOPIC, OPERATOR_CARD]


async def test_abandoned_draft_gets_a_card_but_no_topic_nor_board_when_it_times_out(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    await _confirmable_draft(uow_factory)
    clock.advance(minutes=16)
    assert await _intake(uow_factory, clock).abandon_idle_drafts() == 1
    assert kinds(uow_factory) == [OPERATOR_CARD, OPERATOR_PIN, "citizen_notice"]
