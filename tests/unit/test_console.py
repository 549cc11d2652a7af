"""The console service on the in-memory fakes: claims, transitions, corrections, rows."""

from __future__ import annotations

import asyncio

import pytest

from bot.domain.lifecycle import Action, Refusal, Staff, actions_for
from bot.domain.model import (
    AssignmentChannel,
    Category,
    CategoryGroup,
    Disposition,
    LocationSource,
    OutboxMessage,
    TicketStatus,
)
from bot.services.console import ConsolePolicy, ConsoleService, ConsoleStatus
from bot.services.outbox_kinds import (
    CITIZEN_STATUS,
    OPERATOR_CARD,
    OPERATOR_CARD_EDIT,
    OPERATOR_TOPIC,
    OPERATOR_TOPIC_STATE,
    QUEUE_BOARD,
    kind_of,
)
from bot.services.ports import DeliveryResult
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import (
    ADMIN,
    BUDI,
    DEWI,
    OPERATORS_CHAT,
    STRANGER,
    T0,
    Clock,
    Geocoder,
    add_staff,
    add_ticket,
    kinds,
    rows,
    ticket_of,
)

S = TicketStatus
AGENCIES = {"DAMKAR": "Damkar Kota Semarang", "DINKES": "Ambulans Hebat"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def uow_factory() -> InMemoryUnitOfWorkFactory:
    factory = InMemoryUnitOfWorkFactory()
    await add_staff(factory, DEWI, BUDI)
    return factory


@pytest.fixture
def console(uow_factory: InMemoryUnitOfWorkFactory, clock: Clock) -> ConsoleService:
    return ConsoleService(uow_factory, Geocoder(), clock, ConsolePolicy(AGENCIES, OPERATORS_CHAT))


async def test_exactly_one_operator_wins_when_two_press_claim_at_once(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory)
    dewi, budi = await asyncio.gather(
        console.claim(DEWI, ticket.id or 0), console.claim(BUDI, ticket.id or 0)
    )
    assert sorted([dewi.status, budi.status]) == [ConsoleStatus.DONE, ConsoleStatus.LOST_RACE]
    winner, loser = (dewi, budi) if dewi.ok else (budi, dewi)
    assert loser.ticket is not None
    assert loser.ticket.claimed_by == (winner.ticket.claimed_by if winner.ticket else None)
    stored = await ticket_of(uow_factory, ticket.id or 0)
    assert stored.status is S.CLAIMED
    assert stored.claimed_by in (DEWI.telegram_id, BUDI.telegram_id)
    assert stored.claimed_by_name in ("Dewi", "Budi")
    events = [e for e in uow_factory.store.events.values() if e.kind == "claim"]
    assert len(events) == 1
    assert len(rows(uow_factory, CITIZEN_STATUS)) == 1


async def test_ten_operators_racing_leave_one_claim_when_pressed_together(
    uow_factory: InMemoryUnitOfWorkFactory, console: ConsoleService
) -> None:
    crowd = [Staff(2000 + n, f"op{n}") for n in range(10)]
    await add_staff(uow_factory, *crowd, admin=None)
    ticket = await add_ticket(uow_factory)
    results = await asyncio.gather(*(console.claim(op, ticket.id or 0) for op in crowd))
    assert [r.status for r in results].count(ConsoleStatus.DONE) == 1


async def test_roster_entry_seeded_by_id_gets_the_telegram_name_when_its_operator_first_acts(
    uow_factory: InMemoryUnitOfWorkFactory, console: ConsoleService
) -> None:
    await add_staff(uow_factory, Staff(3001, None), admin=None)  # from OPERATOR_USER_IDS
    ticket = await add_ticket(uow_factory)
    assert (await console.claim(Staff(3001, "Sari"), ticket.id or 0)).ok
    assert (await console.release(Staff(3001, "Sari W."), ticket.id or 0)).ok
    async with uow_factory() as uow:
        operator = await uow.operators.get(3001)
    assert operator is not None
    assert operator.display_name == "Sari"  # the first name seen; a roster name is kept


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize(
    "action", [Action.CLAIM, Action.RELEASE, Action.ON_SCENE, Action.CLOSE, Action.REOPEN,
               Action.CANCEL, Action.RESOLVE, Action.EN_ROUTE, Action.DISPATCH]
)  # fmt: skip
async def test_console_follows_the_lifecycle_table_when_any_action_meets_any_status(
    console: ConsoleService,
    uow_factory: InMemoryUnitOfWorkFactory,
    status: TicketStatus,
    action: Action,
) -> None:
    ticket = await add_ticket(uow_factory, status=status, claimed_by=DEWI.telegram_id)
    calls = {
        Action.CLAIM: lambda: console.claim(DEWI, ticket.id or 0),
        Action.RELEASE: lambda: console.release(DEWI, ticket.id or 0),
        Action.ON_SCENE: lambda: console.on_scene(DEWI, ticket.id or 0),
        Action.CLOSE: lambda: console.close(DEWI, ticket.id or 0),
        Action.REOPEN: lambda: console.reopen(DEWI, ticket.id or 0),
        Action.CANCEL: lambda: console.cancel(DEWI, ticket.id or 0),
        Action.RESOLVE: lambda: console.resolve(DEWI, ticket.id or 0, Disposition.EMERGENCY),
        Action.EN_ROUTE: lambda: console.en_route(DEWI, ticket.id or 0, 8),
        Action.DISPATCH: lambda: console.dispatch(DEWI, ticket.id or 0, ["DAMKAR"]),
    }
    result = await calls[action]()
    stored = await ticket_of(uow_factory, ticket.id or 0)
    if status in (S.DRAFT, S.ABANDONED):
        assert result.status is ConsoleStatus.NOT_FOUND
    elif action in actions_for(status):
        assert result.status is ConsoleStatus.DONE, result
        assert stored.status is result.ticket.status if result.ticket else False
        assert stored.version == ticket.version + 1
    else:
        assert result.status is ConsoleStatus.REFUSED
        assert result.refusal is Refusal.NOT_ALLOWED
        assert stored == ticket  # nothing written
        assert not rows(uow_factory)


async def test_non_member_is_not_allowed_and_nothing_changes_when_they_press_buttons(
    console: ConsoleService,
    uow_factory: InMemoryUnitOfWorkFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticket = await add_ticket(uow_factory)
    caplog.set_level("INFO")
    for call in (
        console.claim(STRANGER, ticket.id or 0),
        console.dispatch(STRANGER, ticket.id or 0, ["DAMKAR"]),
        console.resolve(STRANGER, ticket.id or 0, Disposition.PRANK),
        console.correct_priority(STRANGER, ticket.id or 0, 3),
        console.timeline(STRANGER, ticket.id or 0),
    ):
        assert (await call).status is ConsoleStatus.NOT_ALLOWED
    assert await ticket_of(uow_factory, ticket.id or 0) == ticket
    assert not rows(uow_factory)
    assert "not a roster member" in caplog.text
    assert str(STRANGER.telegram_id) not in caplog.text  # no personal data in the log


async def test_removed_operator_is_not_allowed_when_they_press_claim(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory)
    async with uow_factory() as uow:
        member = await uow.operators.get(DEWI.telegram_id or 0)
        assert member is not None
        member.active = False
        await uow.operators.update(member)
        await uow.commit()
    assert (await console.claim(DEWI, ticket.id or 0)).status is ConsoleStatus.NOT_ALLOWED


async def test_claim_queues_card_edit_citizen_notice_and_board_when_it_wins(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory, priority=2)
    clock.advance(seconds=20)
    result = await console.claim(Staff(DEWI.telegram_id), ticket.id or 0)
    assert result.ok
    assert kinds(uow_factory) == [OPERATOR_CARD_EDIT, CITIZEN_STATUS, QUEUE_BOARD]
    notice = rows(uow_factory, CITIZEN_STATUS)[0]
    assert notice.payload == {"ticket_id": ticket.id, "status": "claimed"}
    assert notice.ticket_id == ticket.id
    assert kind_of(notice.kind).audience.value == "citizen"
    stored = await ticket_of(uow_factory, ticket.id or 0)
    assert stored.claimed_by_name == "Dewi"  # the roster's name when Telegram gave none
    assert stored.claimed_at == clock.now()
    [event] = [e for e in uow_factory.store.events.values() if e.kind == "claim"]
    assert (event.actor, event.from_status, event.to_status) == (
        f"operator:{DEWI.telegram_id}", S.SUBMITTED, S.CLAIMED,
    )  # fmt: skip


async def test_board_rows_coalesce_to_one_unsent_row_when_many_changes_follow(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    first = await add_ticket(uow_factory)
    second = await add_ticket(uow_factory, telegram_id=5002)
    await console.claim(DEWI, first.id or 0)
    await console.claim(BUDI, second.id or 0)
    await console.dispatch(DEWI, first.id or 0, ["DAMKAR"])
    boards = rows(uow_factory, QUEUE_BOARD)
    assert len(boards) == 1
    assert boards[0].payload == {"chat_id": OPERATORS_CHAT}
    async with uow_factory() as uow:  # the board row was tried (and is being retried)
        boards[0].attempts = 1
        await uow.outbox.update(boards[0])
        await uow.commit()
    await console.on_scene(DEWI, first.id or 0)
    assert len(rows(uow_factory, QUEUE_BOARD)) == 2


async def test_dispatch_records_phone_assignments_and_tells_the_citizen_which_agencies(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory)
    clock.advance(seconds=40)
    result = await console.dispatch(DEWI, ticket.id or 0, ["DAMKAR", "DINKES", "DAMKAR"])
    assert result.ok
    assert result.ticket is not None
    assert result.ticket.status is S.DISPATCHED
    assert result.ticket.claimed_by == DEWI.telegram_id  # dispatching an unclaimed one takes it
    assert [(a.agency_code, a.channel, a.by) for a in result.assignments] == [
        ("DAMKAR", AssignmentChannel.PHONE, f"operator:{DEWI.telegram_id}"),
        ("DINKES", AssignmentChannel.PHONE, f"operator:{DEWI.telegram_id}"),
    ]
    notice = rows(uow_factory, CITIZEN_STATUS)[0].payload
    assert notice["status"] == "dispatched"
    assert notice["agencies"] == ["Damkar Kota Semarang", "Ambulans Hebat"]
    [event] = [e for e in uow_factory.store.events.values() if e.kind == "dispatch"]
    assert event.note == "DAMKAR, DINKES (phone)"
    again = await console.dispatch(BUDI, ticket.id or 0, ["DINKES"])
    assert (again.status, again.detail) == (ConsoleStatus.INVALID, "already_assigned")
    more = await console.dispatch(BUDI, ticket.id or 0, ["DINKES", "DAMKAR"])
    assert more.status is ConsoleStatus.INVALID
    stored = await ticket_of(uow_factory, ticket.id or 0)
    assert stored.version == ticket.version + 1  # the refused dispatches wrote nothing


@pytest.mark.parametrize(
    ("codes", "detail"),
    [([], "no_agency"), (["NOPE"], "unknown_agency"), (["DAMKAR", "X"], "unknown_agency")],
)
async def test_dispatch_is_invalid_when_agencies_are_missing_or_unknown(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory, codes: list[str], detail: str
) -> None:
    ticket = await add_ticket(uow_factory)
    result = await console.dispatch(DEWI, ticket.id or 0, codes)
    assert (result.status, result.detail) == (ConsoleStatus.INVALID, detail)
    assert not rows(uow_factory)


async def test_progress_to_resolution_tells_the_citizen_each_step_when_help_comes(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory)
    tid = ticket.id or 0
    assert (await console.claim(DEWI, tid)).ok
    assert (await console.dispatch(DEWI, tid, ["DAMKAR"])).ok
    clock.advance(minutes=1)
    assert (await console.en_route(DEWI, tid, 7)).ok
    clock.advance(minutes=6)
    on_scene = await console.on_scene(DEWI, tid)
    assert on_scene.assignments[0].on_scene_at == clock.now()
    assert on_scene.assignments[0].eta_minutes == 7
    missing = await console.resolve(DEWI, tid, None)  # type: ignore[arg-type]
    assert (missing.status, missing.refusal) == (ConsoleStatus.INVALID, Refusal.NEEDS_DISPOSITION)
    clock.advance(minutes=20)
    done = await console.resolve(DEWI, tid, Disposition.EMERGENCY)
    assert done.ticket is not None
    assert (done.ticket.status, done.ticket.disposition) == (S.RESOLVED, Disposition.EMERGENCY)
    assert done.ticket.resolved_at == done.ticket.closed_at == clock.now()
    assert done.assignments[0].completed_at == clock.now()
    statuses = [
        (m.payload["status"], m.payload.get("eta_minutes"))
        for m in rows(uow_factory, CITIZEN_STATUS)
    ]
    assert statuses == [
        ("claimed", None), ("dispatched", None), ("en_route", 7), ("on_scene", None),
        ("resolved", None),
    ]  # fmt: skip
    assert rows(uow_factory, CITIZEN_STATUS)[-1].payload["disposition"] == "emergency"
    bad_eta = await console.en_route(DEWI, tid, 0)
    assert bad_eta.status is ConsoleStatus.REFUSED  # resolved: no more en route anyway


async def test_en_route_is_invalid_when_the_eta_is_absurd(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory, status=S.DISPATCHED)
    result = await console.en_route(DEWI, ticket.id or 0, 999)
    assert (result.status, result.refusal) == (ConsoleStatus.INVALID, Refusal.BAD_ETA)


async def test_release_is_for_the_holder_or_an_admin_when_someone_else_holds_it(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory)
    await console.claim(DEWI, ticket.id or 0)
    assert (await console.release(BUDI, ticket.id or 0)).status is ConsoleStatus.NOT_YOURS
    released = await console.release(ADMIN, ticket.id or 0)
    assert released.ok
    assert released.ticket is not None
    assert released.ticket.claimed_by is None
    await console.claim(BUDI, ticket.id or 0)
    assert (await console.release(BUDI, ticket.id or 0)).ok


async def test_reopen_claims_for_the_operator_and_counts_when_a_resolved_ticket_needs_more(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory)
    await console.resolve(DEWI, ticket.id or 0, Disposition.INFO)
    reopened = await console.reopen(BUDI, ticket.id or 0)
    assert reopened.ticket is not None
    assert (reopened.ticket.status, reopened.ticket.claimed_by) == (S.CLAIMED, BUDI.telegram_id)
    assert reopened.ticket.reopened_count == 1
    assert reopened.ticket.disposition is None
    topics = [m.payload["topic"] for m in rows(uow_factory, OPERATOR_TOPIC_STATE)]
    assert topics == ["close", "reopen"]  # the topic follows: closed when resolved, reopened


async def test_cancel_closes_the_topic_and_a_refused_action_queues_nothing_when_it_ends(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory)
    assert (await console.cancel(DEWI, ticket.id or 0)).ok
    assert not (await console.resolve(DEWI, ticket.id or 0, Disposition.INFO)).ok
    assert [m.payload["topic"] for m in rows(uow_factory, OPERATOR_TOPIC_STATE)] == ["close"]


async def test_corrections_change_category_priority_and_location_when_an_operator_knows_better(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory, category=Category.FIRE, priority=1)
    tid = ticket.id or 0
    category = await console.correct_category(DEWI, tid, Category.UTIL)
    assert category.ticket is not None
    assert category.ticket.category is Category.UTIL
    assert category.ticket.category_group is CategoryGroup.UTILITY
    assert category.ticket.priority == 3  # follows the category
    assert (await console.correct_priority(DEWI, tid, 2)).ok
    bad = await console.correct_priority(DEWI, tid, 0)
    assert (bad.status, bad.detail) == (ConsoleStatus.INVALID, "bad_priority")
    moved = await console.correct_location(DEWI, tid, -6.995, 110.43, 15.0)
    assert moved.ok
    assert moved.detail is None
    stored = await ticket_of(uow_factory, tid)
    assert stored.priority == 2
    assert stored.incident_location is not None
    assert stored.incident_location.source is LocationSource.OPERATOR
    assert stored.incident_location.captured_at == clock.now()
    assert stored.incident_location.area is not None
    assert stored.incident_location.area.kelurahan_name == "Pleburan"
    outside = await console.correct_location(DEWI, tid, -6.5, 110.43)
    assert (outside.status, outside.detail) == (ConsoleStatus.DONE, "outside_city")
    notes = [(e.kind, e.note) for e in uow_factory.store.events.values()]
    assert notes == [
        ("category_corrected", "FIRE -> UTIL"), ("priority_corrected", "3 -> 2"),
        ("location_corrected", "Pleburan"), ("location_corrected", "outside the city"),
    ]  # fmt: skip
    assert CITIZEN_STATUS not in kinds(uow_factory)
    assert kinds(uow_factory).count(OPERATOR_CARD_EDIT) == 4
    topics = [m.payload["topic"] for m in rows(uow_factory, OPERATOR_TOPIC_STATE)]
    assert topics == ["rename"] * 3  # category and both places: not the priority


async def test_corrections_are_refused_when_the_ticket_is_closed(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory, status=S.RESOLVED)
    result = await console.correct_priority(DEWI, ticket.id or 0, 2)
    assert result.status is ConsoleStatus.REFUSED


async def test_timeline_lists_every_event_oldest_first_when_a_member_asks(
    console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory)
    await console.claim(DEWI, ticket.id or 0)
    clock.advance(minutes=2)
    await console.dispatch(DEWI, ticket.id or 0, ["DINKES"])
    timeline = await console.timeline(BUDI, ticket.id or 0)
    assert timeline.ok
    assert [(e.kind, e.at) for e in timeline.events] == [
        ("claim", clock.now().replace(minute=0)), ("dispatch", clock.now()),
    ]  # fmt: skip
    assert [a.agency_code for a in timeline.assignments] == ["DINKES"]
    assert (await console.timeline(BUDI, 999)).status is ConsoleStatus.NOT_FOUND


async def test_unknown_ticket_is_not_found_when_an_operator_presses_an_old_button(
    console: ConsoleService,
) -> None:
    assert (await console.claim(DEWI, 12345)).status is ConsoleStatus.NOT_FOUND


async def test_record_hooks_store_topic_and_card_when_the_outbox_reports_them_sent(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    ticket = await add_ticket(
        uow_factory, operator_thread_id=None, operator_card_message_id=None, operator_chat_id=None
    )
    topic_hook, card_hook = kind_of(OPERATOR_TOPIC).record, kind_of(OPERATOR_CARD).record
    assert topic_hook is not None
    assert card_hook is not None
    async with uow_factory() as uow:
        topic = DeliveryResult(chat_id=OPERATORS_CHAT, message_id=9, thread_id=9)
        await topic_hook(uow, _row(ticket.id, OPERATOR_TOPIC), topic)
        await card_hook(uow, _row(ticket.id, OPERATOR_CARD), DeliveryResult(OPERATORS_CHAT, 10, 9))
        await uow.commit()
    stored = await ticket_of(uow_factory, ticket.id or 0)
    where = (stored.operator_chat_id, stored.operator_thread_id, stored.operator_card_message_id)
    assert where == (OPERATORS_CHAT, 9, 10)
    async with uow_factory() as uow:
        assert await uow.tickets.by_operator_thread(OPERATORS_CHAT, 9) == stored
        assert await uow.tickets.by_operator_card(OPERATORS_CHAT, 10) == stored


async def test_card_hook_keeps_no_topic_when_the_chat_is_not_a_forum(
    uow_factory: InMemoryUnitOfWorkFactory,
) -> None:
    ticket = await add_ticket(
        uow_factory, operator_thread_id=None, operator_card_message_id=None, operator_chat_id=None
    )
    topic_hook, card_hook = kind_of(OPERATOR_TOPIC).record, kind_of(OPERATOR_CARD).record
    assert topic_hook is not None
    assert card_hook is not None
    async with uow_factory() as uow:
        await topic_hook(uow, _row(ticket.id, OPERATOR_TOPIC), DeliveryResult(chat_id=-42))
        await card_hook(uow, _row(ticket.id, OPERATOR_CARD), DeliveryResult(-42, 77))
        await uow.commit()
    stored = await ticket_of(uow_factory, ticket.id or 0)
    where = (stored.operator_chat_id, stored.operator_thread_id, stored.operator_card_message_id)
    assert where == (-42, None, 77)


def _row(ticket_id: int | None, kind: str) -> OutboxMessage:
    return OutboxMessage(kind=kind, payload={"ticket_id": ticket_id}, created_at=T0,
                         next_attempt_at=T0, ticket_id=ticket_id)  # fmt: skip
