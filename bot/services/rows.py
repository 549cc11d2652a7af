"""Writes every service makes the same way: outbox rows, timeline events, ticket patches.

One place, so that every row gets its lane from the kind registry and its rank from the
ticket's priority, and every concurrent ticket write goes through compare-and-set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime

from bot.domain.model import OutboxMessage, Ticket, TicketEvent, TicketStatus
from bot.services.outbox_kinds import kind_of
from bot.services.ports import UnitOfWork

#: The outbox branch adds ``OutboxMessage.rank`` (ticket priority, lower is sent first).
#: Until that field exists rows carry no rank; once it does, every row gets one here.
BOARD_RANK = 0
"""The queue board goes before every ticket's rows: nothing may wait invisibly."""
PATCH_ATTEMPTS = 5


async def enqueue(
    uow: UnitOfWork,
    kind: str,
    now: datetime,
    payload: Mapping[str, object] | None = None,
    *,
    ticket: Ticket | None = None,
    rank: int | None = None,
    coalesce: str | None = None,
) -> None:
    """Queues a row of a registered ``kind`` (about ``ticket``, if any) due at ``now``.

    The payload carries ``ticket_id`` for ticket rows; ``rank`` defaults to the ticket's
    priority. ``coalesce``: the row's ``dedup_key``, and no row is queued while one of the
    kind with that key waits, never attempted (``OutboxRepository.put_unless_waiting``).
    """
    body: dict[str, object] = {"ticket_id": ticket.id} if ticket else {}
    body.update(payload or {})
    message = OutboxMessage(
        kind=kind,
        payload=body,
        created_at=now,
        next_attempt_at=now,
        ticket_id=ticket.id if ticket else None,
        lane=kind_of(kind).lane.value,
        rank=rank if rank is not None else (ticket.priority if ticket is not None else 3),
        dedup_key=coalesce,
    )
    if coalesce is None:
        await uow.outbox.put(message)
    else:
        await uow.outbox.put_unless_waiting(message)


async def add_event(
    uow: UnitOfWork,
    ticket: Ticket,
    kind: str,
    at: datetime,
    actor: str,
    *,
    from_status: TicketStatus | None = None,
    to_status: TicketStatus | None = None,
    note: str | None = None,
) -> None:
    """Appends a row to the ticket's timeline."""
    await uow.events.add(
        TicketEvent(
            ticket_id=ticket.id or 0, at=at, actor=actor, kind=kind, from_status=from_status,
            to_status=to_status, note=note,
        )
    )  # fmt: skip


async def patch_ticket(
    uow: UnitOfWork, ticket_id: int, change: Callable[[Ticket], bool]
) -> Ticket | None:
    """Applies ``change`` to the latest ticket by compare-and-set, reading again when another
    writer was faster; ``change`` returns False to leave the ticket alone. Returns the
    written ticket, or None (unknown ticket, nothing to change, or always overtaken)."""
    for _ in range(PATCH_ATTEMPTS):
        ticket = await uow.tickets.get(ticket_id)
        if ticket is None or not change(ticket):
            return None
        if await uow.tickets.update_if_unchanged(ticket):
            return dataclasses.replace(ticket, version=ticket.version + 1)
    return None
