"""Races of the console on every store (memory, SQLite, PostgreSQL): one claim wins, each
SLA timer fires once even when two processes sweep at the same moment."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.domain.lifecycle import Staff
from bot.domain.model import Citizen, Operator, Ticket, TicketStatus
from bot.services.console import ConsolePolicy, ConsoleService, ConsoleStatus
from bot.services.outbox_kinds import ADMIN_ALERT, OPERATOR_NOTICE
from bot.services.ports import UnitOfWorkFactory
from bot.services.sla import SlaPolicy, SlaService
from tests.integration import builders as b
from tests.unit.console_support import Clock, Geocoder

OPERATORS = [Staff(3000 + n, f"op{n}") for n in range(6)]


async def _world(uow_factory: UnitOfWorkFactory, tickets: int) -> list[int]:
    async with uow_factory() as uow:
        for n, member in enumerate(OPERATORS):
            await uow.operators.add(
                Operator(
                    telegram_id=member.telegram_id or 0, display_name=member.name,
                    is_admin=n == 0, active=True, added_by="settings", added_at=b.T0,
                )
            )  # fmt: skip
        citizen = await uow.citizens.add(Citizen(telegram_id=77, language="id"))
        ids = []
        for n in range(tickets):
            ticket = await uow.tickets.add(
                Ticket(
                    citizen_id=citizen.id or 0, chat_id=77, status=TicketStatus.SUBMITTED,
                    created_at=b.T0, updated_at=b.T0, step=None, ref=f"R{n}",
                    submitted_at=b.T0, queued_at=b.T0, operator_chat_id=-1001234567890,
                    operator_card_message_id=500 + n,  # its card is out: a re-alert is a notice
                )
            )  # fmt: skip
            ids.append(ticket.id or 0)
        await uow.commit()
    return ids


async def test_one_claim_wins_when_six_operators_press_at_once_on_every_store(
    uow_factory: UnitOfWorkFactory,
) -> None:
    [ticket_id] = await _world(uow_factory, 1)
    clock = Clock()
    clock.current = b.T0
    console = ConsoleService(uow_factory, Geocoder(), clock, ConsolePolicy())
    results = await asyncio.gather(*(console.claim(op, ticket_id) for op in OPERATORS))
    statuses = [r.status for r in results]
    assert statuses.count(ConsoleStatus.DONE) == 1
    assert set(statuses) <= {ConsoleStatus.DONE, ConsoleStatus.LOST_RACE, ConsoleStatus.REFUSED}
    winner = OPERATORS[statuses.index(ConsoleStatus.DONE)]
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(ticket_id)
        events = await uow.events.for_ticket(ticket_id)
    assert ticket is not None
    assert (ticket.status, ticket.claimed_by) == (TicketStatus.CLAIMED, winner.telegram_id)
    assert [e.actor for e in events] == [winner.actor]


async def test_sla_timers_fire_once_when_two_processes_sweep_together_on_every_store(
    uow_factory: UnitOfWorkFactory,
) -> None:
    ids = await _world(uow_factory, 3)
    clock = Clock()
    clock.current = b.T0 + timedelta(seconds=200)

    def sla() -> SlaService:
        return SlaService(uow_factory, clock, SlaPolicy())

    first, second = await asyncio.gather(sla().sweep(), sla().sweep())
    assert sorted(first.realerted + second.realerted) == ids
    assert sorted(first.escalated + second.escalated) == ids
    again = await sla().sweep()
    assert again.fired == 0
    async with uow_factory() as uow:
        owed = await uow.outbox.owed(100)
    assert sum(1 for m in owed if m.kind == OPERATOR_NOTICE) == 3
    assert sum(1 for m in owed if m.kind == ADMIN_ALERT) == 3  # one admin
