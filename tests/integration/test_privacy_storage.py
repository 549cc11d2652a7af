"""The storage side of the retention purge and erasure, on SQLite, PostgreSQL and the fake."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from bot.domain.advisory import Advisory, AdvisoryStatus
from bot.domain.model import Citizen, Ticket, TicketStatus
from bot.services.ports import UnitOfWorkFactory
from tests.integration import builders as b

DAY = timedelta(days=1)
NOW = b.at(0) + 400 * DAY
CLOSED_BEFORE = NOW - 365 * DAY
DRAFTS_BEFORE = NOW - 30 * DAY
RECHECK_BEFORE = NOW - DAY


async def add_citizen(uow_factory: UnitOfWorkFactory, telegram_id: int, **changes: object) -> int:
    async with uow_factory() as uow:
        citizen = b.citizen(telegram_id, erase_requested_at=None, erased_at=None, **changes)
        stored = await uow.citizens.add(citizen)
        await uow.commit()
    return stored.id or 0


async def add_tickets(uow_factory: UnitOfWorkFactory, *tickets: Ticket) -> list[int]:
    async with uow_factory() as uow:
        ids = [(await uow.tickets.add(ticket)).id or 0 for ticket in tickets]
        await uow.commit()
    return ids


def ended(
    citizen_id: int, ref: str | None, status: TicketStatus, at: object, **more: object
) -> Ticket:
    return b.ticket(citizen_id, ref=ref, status=status, closed_at=at, updated_at=at, **more)


async def test_due_for_anonymisation_finds_each_kind_on_its_own_period_when_asked(
    uow_factory: UnitOfWorkFactory,
) -> None:
    cid = await add_citizen(uow_factory, 7_300_000_001)
    old, recent = NOW - 366 * DAY, NOW - 364 * DAY
    ids = await add_tickets(
        uow_factory,
        ended(cid, "R-OLD", TicketStatus.RESOLVED, old),  # due
        ended(cid, "R-NEW", TicketStatus.CLOSED, recent),  # kept: within a year
        ended(cid, "C-OLD", TicketStatus.CANCELLED, old),  # submitted then cancelled: due
        b.ticket(cid, ref="OPEN", status=TicketStatus.CLAIMED, updated_at=old, closed_at=None),
        ended(cid, None, TicketStatus.ABANDONED, NOW - 31 * DAY, submitted_at=None),  # due
        ended(cid, None, TicketStatus.CANCELLED, NOW - 29 * DAY, submitted_at=None),  # kept
        ended(cid, "A-CHAT", TicketStatus.RESOLVED, recent, anonymised_at=NOW - 2 * DAY),  # due
        dataclasses.replace(
            ended(cid, "A-DONE", TicketStatus.RESOLVED, old, anonymised_at=NOW - 2 * DAY),
            chat_id=0,
        ),
        ended(cid, "A-TODAY", TicketStatus.RESOLVED, recent, anonymised_at=NOW - DAY / 2),
    )
    async with uow_factory() as uow:
        due = await uow.tickets.due_for_anonymisation(CLOSED_BEFORE, DRAFTS_BEFORE, RECHECK_BEFORE)
        first = await uow.tickets.due_for_anonymisation(
            CLOSED_BEFORE, DRAFTS_BEFORE, RECHECK_BEFORE, 2
        )
    assert [t.id for t in due] == [ids[0], ids[2], ids[4], ids[6]]
    assert [t.id for t in first] == [ids[0], ids[2]]


async def test_of_citizen_returns_drafts_and_tickets_newest_first_when_asked(
    uow_factory: UnitOfWorkFactory,
) -> None:
    cid = await add_citizen(uow_factory, 7_300_000_002)
    other = await add_citizen(uow_factory, 7_300_000_003)
    ids = await add_tickets(
        uow_factory,
        b.ticket(cid, ref="T-1", created_at=b.at(1)),
        b.draft(cid, created_at=b.at(5)),
        b.ticket(other, ref="T-2", created_at=b.at(3)),
    )
    async with uow_factory() as uow:
        mine = await uow.tickets.of_citizen(cid)
    assert [t.id for t in mine] == [ids[1], ids[0]]


async def test_relay_log_loses_texts_files_and_chats_when_anonymised(
    uow_factory: UnitOfWorkFactory,
) -> None:
    cid = await add_citizen(uow_factory, 7_300_000_004)
    ticket_id, other_id = await add_tickets(
        uow_factory, b.ticket(cid, ref="M-1"), b.ticket(cid, ref="M-2")
    )
    async with uow_factory() as uow:
        await uow.messages.add(b.message(ticket_id, 1))
        await uow.messages.add(b.message(ticket_id, 2, text=None, file_id=None))
        await uow.messages.add(b.message(other_id, 3))
        await uow.commit()
    async with uow_factory() as uow:
        first = await uow.messages.anonymise([ticket_id])
        again = await uow.messages.anonymise([ticket_id])
        await uow.commit()
    async with uow_factory() as uow:
        kept = await uow.messages.for_ticket(ticket_id)
        untouched = await uow.messages.for_ticket(other_id)
    assert (first, again) == (2, 0)
    assert [(m.text, m.file_id, m.telegram_chat_id) for m in kept] == [(None, None, None)] * 2
    assert [(m.kind, m.direction, m.at, m.telegram_message_id) for m in kept] == [
        ("photo", b.message(0).direction, b.at(1), 4242),
        ("photo", b.message(0).direction, b.at(2), 4242),
    ]
    assert untouched[0].text == "the water is rising"


async def test_only_notes_of_the_kinds_asked_are_cleared_when_redacted(
    uow_factory: UnitOfWorkFactory,
) -> None:
    cid = await add_citizen(uow_factory, 7_300_000_005)
    (ticket_id,) = await add_tickets(uow_factory, b.ticket(cid, ref="E-1"))
    async with uow_factory() as uow:
        await uow.events.add(b.event(ticket_id, 1, kind="note", note="caller is Siti, 0812"))
        await uow.events.add(b.event(ticket_id, 2, kind="resolve", note="emergency"))
        await uow.events.add(b.event(ticket_id, 3, kind="note", note=None))
        await uow.commit()
    async with uow_factory() as uow:
        first = await uow.events.redact_notes([ticket_id], {"note"})
        again = await uow.events.redact_notes([ticket_id], {"note"})
        await uow.commit()
    async with uow_factory() as uow:
        events = await uow.events.for_ticket(ticket_id)
    assert (first, again) == (1, 0)
    assert [(e.kind, e.note) for e in events] == [
        ("note", None),
        ("resolve", "emergency"),
        ("note", None),
    ]


async def test_finished_outbox_rows_are_scrubbed_and_owed_ones_kept_when_scrubbed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    cid = await add_citizen(uow_factory, 7_300_000_006)
    (ticket_id,) = await add_tickets(uow_factory, b.ticket(cid, ref="O-1"))
    async with uow_factory() as uow:
        sent = await uow.outbox.add(b.outbox(ticket_id, 1, payload={"text": "Siti, rumah biru"}))
        failed = await uow.outbox.add(b.outbox(ticket_id, 2))
        owed = await uow.outbox.add(b.outbox(ticket_id, 3, payload={"text": "still owed"}))
        sent.sent_at, sent.result = b.at(1), {"chat_id": 7_300_000_006, "message_id": 5}
        failed.failed_at = b.at(2)
        await uow.outbox.update(sent)
        await uow.outbox.update(failed)
        await uow.commit()
    async with uow_factory() as uow:
        first = await uow.outbox.scrub_finished([ticket_id])
        again = await uow.outbox.scrub_finished([ticket_id])
        await uow.commit()
    async with uow_factory() as uow:
        rows = [await uow.outbox.get(m.id or 0) for m in (sent, failed, owed)]
    assert (first, again) == (2, 0)
    assert [(r.payload, r.result) for r in rows if r is not None] == [
        ({}, None),
        ({}, None),
        ({"text": "still owed"}, None),
    ]
    assert [r.sent_at for r in rows if r is not None] == [b.at(1), None, None]  # state stays


async def test_inactive_citizens_are_those_untouched_with_no_live_ticket_when_asked(
    uow_factory: UnitOfWorkFactory,
) -> None:
    old = NOW - 400 * DAY
    idle = await add_citizen(uow_factory, 7_300_000_010, updated_at=old)
    recent = await add_citizen(uow_factory, 7_300_000_011, updated_at=NOW - DAY)
    with_new_ticket = await add_citizen(uow_factory, 7_300_000_012, updated_at=old)
    with_open = await add_citizen(uow_factory, 7_300_000_013, updated_at=old)
    cleared_subscriber = await add_citizen(
        uow_factory, 7_300_000_014, updated_at=old, name=None, username=None, phone_e164=None
    )
    cleared_unsubscribed = await add_citizen(
        uow_factory, 7_300_000_015, updated_at=old, name=None, username=None,
        phone_e164=None, subscribed=False,
    )  # fmt: skip
    async with uow_factory() as uow:
        erased = await uow.citizens.add(
            Citizen(telegram_id=-99, language="id", updated_at=old, created_at=old, erased_at=old)
        )
        await uow.commit()
    await add_tickets(
        uow_factory,
        ended(with_new_ticket, "I-1", TicketStatus.RESOLVED, NOW - 10 * DAY),
        ended(idle, "I-2", TicketStatus.RESOLVED, old),
        b.ticket(with_open, ref="I-3", status=TicketStatus.CLAIMED, updated_at=old),
    )
    async with uow_factory() as uow:
        found = await uow.citizens.inactive(CLOSED_BEFORE)
        limited = await uow.citizens.inactive(CLOSED_BEFORE, 1)
    assert [c.id for c in found] == [idle, cleared_unsubscribed]
    assert [c.id for c in limited] == [idle]
    assert {recent, erased.id, cleared_subscriber, with_new_ticket, with_open}.isdisjoint(
        c.id for c in found
    )


async def test_advisory_deliveries_forget_the_chat_when_the_recipient_is_erased(
    uow_factory: UnitOfWorkFactory,
) -> None:
    cid = await add_citizen(uow_factory, 7_300_000_020, blocked_bot=False)
    other = await add_citizen(uow_factory, 7_300_000_021, blocked_bot=False)
    async with uow_factory() as uow:
        advisory = await uow.advisories.add(Advisory(1000, b.at(0), AdvisoryStatus.SENDING, "x"))
        await uow.advisories.enqueue(
            advisory.id or 0, await uow.citizens.subscribers(None), b.at(0), kind="advisory",
            lane="broadcast", rank=5,
        )  # fmt: skip
        await uow.commit()
    async with uow_factory() as uow:
        first = await uow.advisories.forget_recipients([cid])
        again = await uow.advisories.forget_recipients([cid])
        others = await uow.advisories.forget_recipients([other])
        none = await uow.advisories.forget_recipients([])
        await uow.commit()
    assert (first, again, others, none) == (1, 0, 1, 0)
