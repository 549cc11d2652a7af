"""SLA timers with a controlled clock: 59/61 s, 179/181 s, 10 minutes; once per ticket."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.domain.lifecycle import Staff
from bot.domain.model import TicketStatus
from bot.services.console import ConsolePolicy, ConsoleService
from bot.services.outbox_kinds import ADMIN_ALERT, OPERATOR_CARD_EDIT, OPERATOR_NOTICE, QUEUE_BOARD
from bot.services.relay import OperatorPost, RelayPolicy, RelayService
from bot.services.sla import SlaPolicy, SlaService
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import (
    ADMIN,
    DEWI,
    OPERATORS_CHAT,
    Clock,
    Geocoder,
    add_staff,
    add_ticket,
    kinds,
    rows,
    ticket_of,
)

SECOND_ADMIN = Staff(1009, "Admin Joko")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def uow_factory() -> InMemoryUnitOfWorkFactory:
    factory = InMemoryUnitOfWorkFactory()
    await add_staff(factory, DEWI)
    await add_staff(factory, admin=SECOND_ADMIN)
    return factory


def sla_for(uow_factory: InMemoryUnitOfWorkFactory, clock: Clock) -> SlaService:
    return SlaService(uow_factory, clock, SlaPolicy(operator_chat_id=OPERATORS_CHAT))


@pytest.fixture
def sla(uow_factory: InMemoryUnitOfWorkFactory, clock: Clock) -> SlaService:
    return sla_for(uow_factory, clock)


async def test_unclaimed_ticket_realerts_at_61_s_and_escalates_at_181_s_once_each(
    sla: SlaService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory)
    clock.advance(seconds=59)
    assert (await sla.sweep()).fired == 0
    clock.advance(seconds=2)  # 61 s
    report = await sla.sweep()
    assert (report.realerted, report.escalated) == ([ticket.id], [])
    [notice] = rows(uow_factory, OPERATOR_NOTICE)
    assert notice.payload == {"ticket_id": ticket.id, "notice": "unclaimed", "waited_seconds": 61}
    assert (await sla.sweep()).fired == 0  # fires once
    clock.advance(seconds=118)  # 179 s
    assert (await sla.sweep()).fired == 0
    clock.advance(seconds=2)  # 181 s
    report = await sla.sweep()
    assert (report.realerted, report.escalated) == ([], [ticket.id])
    alerts = rows(uow_factory, ADMIN_ALERT)
    assert sorted(int(str(a.payload["admin_id"])) for a in alerts) == [
        ADMIN.telegram_id,
        SECOND_ADMIN.telegram_id,
    ]
    assert {a.payload["waited_seconds"] for a in alerts} == {181}
    clock.advance(minutes=30)
    assert (await sla.sweep()).fired == 0
    assert len(rows(uow_factory, OPERATOR_NOTICE)) == 1
    assert len(rows(uow_factory, ADMIN_ALERT)) == 2
    stored = await ticket_of(uow_factory, ticket.id or 0)
    assert stored.sla_realerted_at == clock.now().replace(minute=1, second=1)
    assert [e.kind for e in uow_factory.store.events.values()] == ["sla_realert", "sla_escalated"]


async def test_realert_is_only_an_event_when_the_card_still_waits_for_the_groups_budget(
    sla: SlaService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory, operator_thread_id=None, operator_card_message_id=None)
    clock.advance(seconds=61)
    report = await sla.sweep()
    assert report.realerted == [ticket.id]
    assert rows(uow_factory, OPERATOR_NOTICE) == []  # the coming card is the alert
    [event] = uow_factory.store.events.values()
    assert (event.kind, event.note) == ("sla_realert", "61 s; no card yet, on the queue board")
    clock.advance(seconds=120)
    assert (await sla.sweep()).escalated == [ticket.id]  # the admins are still told
    assert len(rows(uow_factory, ADMIN_ALERT)) == 2


async def test_late_sweep_fires_realert_and_escalation_together_when_the_bot_was_down(
    sla: SlaService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory)
    clock.advance(minutes=5)  # e.g. a restart: the timers are columns, not memory
    report = await sla.sweep()
    assert (report.realerted, report.escalated) == ([ticket.id], [ticket.id])


async def test_claimed_ticket_never_realerts_when_an_operator_took_it_in_time(
    sla: SlaService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    console = ConsoleService(uow_factory, Geocoder(), clock, ConsolePolicy({}, OPERATORS_CHAT))
    ticket = await add_ticket(uow_factory)
    clock.advance(seconds=30)
    await console.claim(DEWI, ticket.id or 0)
    clock.advance(seconds=200)
    assert (await sla.sweep()).fired == 0


async def test_each_timer_fires_once_when_two_processes_sweep_at_the_same_moment(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    tickets = [await add_ticket(uow_factory, telegram_id=5000 + n) for n in range(5)]
    clock.advance(seconds=200)
    first, second = await asyncio.gather(
        sla_for(uow_factory, clock).sweep(), sla_for(uow_factory, clock).sweep()
    )
    assert sorted(first.realerted + second.realerted) == sorted(t.id for t in tickets)
    assert sorted(first.escalated + second.escalated) == sorted(t.id for t in tickets)
    assert len(rows(uow_factory, OPERATOR_NOTICE)) == 5
    assert len(rows(uow_factory, ADMIN_ALERT)) == 10


async def test_idle_claim_goes_back_to_the_queue_after_10_minutes_when_no_operator_writes(
    sla: SlaService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    console = ConsoleService(uow_factory, Geocoder(), clock, ConsolePolicy({}, OPERATORS_CHAT))
    ticket = await add_ticket(uow_factory)
    clock.advance(seconds=10)
    await console.claim(DEWI, ticket.id or 0)
    before = len(rows(uow_factory))
    clock.advance(minutes=9, seconds=59)
    assert (await sla.sweep()).fired == 0
    clock.advance(seconds=1)
    report = await sla.sweep()
    assert report.released == [ticket.id]
    stored = await ticket_of(uow_factory, ticket.id or 0)
    assert (stored.status, stored.claimed_by, stored.queued_at) == (
        TicketStatus.SUBMITTED,
        None,
        clock.now(),
    )
    assert (stored.sla_realerted_at, stored.sla_escalated_at) == (None, None)
    # The board row the claim queued is still unsent: the release coalesces into it.
    assert kinds(uow_factory)[before:] == [OPERATOR_NOTICE, OPERATOR_CARD_EDIT]
    assert len(rows(uow_factory, QUEUE_BOARD)) == 1
    assert rows(uow_factory, OPERATOR_NOTICE)[-1].payload["notice"] == "released_idle"
    [event] = [e for e in uow_factory.store.events.values() if e.kind == "sla_released"]
    assert (event.actor, event.from_status, event.to_status) == (
        "system",
        TicketStatus.CLAIMED,
        TicketStatus.SUBMITTED,
    )
    clock.advance(seconds=61)  # back in the queue: its re-alert timer starts again
    assert (await sla.sweep()).realerted == [ticket.id]


async def test_operator_message_keeps_the_claim_when_written_within_10_minutes(
    sla: SlaService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    console = ConsoleService(uow_factory, Geocoder(), clock, ConsolePolicy({}, OPERATORS_CHAT))
    relay = RelayService(uow_factory, clock, RelayPolicy())
    ticket = await add_ticket(uow_factory)
    await console.claim(DEWI, ticket.id or 0)
    clock.advance(minutes=8)
    await relay.from_operator(
        OperatorPost(telegram_id=DEWI.telegram_id or 0, chat_id=OPERATORS_CHAT, message_id=1,
                     kind="text", text="sudah ditelepon", thread_id=ticket.operator_thread_id)
    )  # fmt: skip
    clock.advance(minutes=9)  # 17 min after the claim, 9 after the message
    assert (await sla.sweep()).released == []
    clock.advance(minutes=1)
    assert (await sla.sweep()).released == [ticket.id]


async def test_dispatched_ticket_stays_with_its_operator_when_quiet_for_long(
    sla: SlaService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    await add_ticket(
        uow_factory,
        status=TicketStatus.DISPATCHED,
        claimed_by=DEWI.telegram_id,
        claimed_at=clock.now(),
    )
    clock.advance(hours=1)
    assert (await sla.sweep()).fired == 0


async def test_timers_follow_the_policy_when_configured_shorter(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    quick = SlaService(
        uow_factory,
        clock,
        SlaPolicy(timedelta(seconds=5), timedelta(seconds=10), timedelta(minutes=1)),
    )
    ticket = await add_ticket(uow_factory)
    clock.advance(seconds=6)
    assert (await quick.sweep()).realerted == [ticket.id]
    clock.advance(seconds=5)
    assert (await quick.sweep()).escalated == [ticket.id]
