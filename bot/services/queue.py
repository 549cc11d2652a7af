"""The queue board: every open ticket in the order operators should take them.

The board is one message in the operators' General topic, edited as the queue changes; the
same list answers ``/queue``. Services that change the queue call :func:`request_board`
(coalesced: at most one unsent board row per chat); the deliverer renders
:meth:`QueueService.board` fresh when it sends the row, so the board is never stale by more
than one delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.model import Category, Ticket, TicketStatus
from bot.services.outbox_kinds import QUEUE_BOARD
from bot.services.ports import Clock, QueueLine, UnitOfWork, UnitOfWorkFactory
from bot.services.rows import BOARD_RANK, enqueue


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One line of the board."""

    ticket_id: int
    ref: str | None
    category: Category | None
    priority: int
    status: TicketStatus
    kecamatan: str | None
    """Name of the incident's kecamatan (None: no place found yet)."""
    submitted_at: datetime | None
    age: timedelta
    """Since the citizen sent the report."""
    claimed_by: int | None
    claimed_by_name: str | None
    thread_id: int | None
    """The ticket's forum topic, to link to (None: not created yet, or no forum)."""


@dataclass(frozen=True, slots=True)
class QueueBoard:
    """The open tickets, priority 1 first, then the oldest, as of ``at``."""

    at: datetime
    entries: tuple[QueueEntry, ...]

    @property
    def unclaimed(self) -> int:
        """How many tickets no operator has taken yet."""
        return sum(1 for e in self.entries if e.status is TicketStatus.SUBMITTED)


def entry_for(ticket: Ticket, now: datetime) -> QueueEntry:
    """The board line of one open ticket at ``now``."""
    return entry_of(QueueLine.of(ticket), now)


def entry_of(line: QueueLine, now: datetime) -> QueueEntry:
    """The board line of an open ticket read as its :class:`QueueLine`, at ``now``."""
    submitted = line.submitted_at or line.created_at
    return QueueEntry(
        ticket_id=line.ticket_id,
        ref=line.ref,
        category=line.category,
        priority=line.priority,
        status=line.status,
        kecamatan=line.kecamatan_name,
        submitted_at=line.submitted_at,
        age=max(now - submitted, timedelta(0)),
        claimed_by=line.claimed_by,
        claimed_by_name=line.claimed_by_name,
        thread_id=line.thread_id,
    )


class QueueService:
    """Reads the queue board (never changes anything)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def board(self) -> QueueBoard:
        """Return every open ticket (submitted … on scene) in queue order."""
        async with self._uow_factory() as uow:
            lines = await uow.tickets.queue_lines()
        now = self._clock.now()
        return QueueBoard(now, tuple(entry_of(line, now) for line in lines))

    async def board_message(self, chat_id: int) -> int | None:
        """The message the board was last posted or edited as in ``chat_id`` (kept durably
        as the result of its last sent row), or None: post a new one."""
        async with self._uow_factory() as uow:
            last = await uow.outbox.last_sent_of_kind(QUEUE_BOARD)
        result = last.result if last is not None else None
        if not result or result.get("chat_id") != chat_id:
            return None
        message_id = result.get("message_id")
        return message_id if isinstance(message_id, int) else None


async def request_board(uow: UnitOfWork, now: datetime, chat_id: int | None) -> None:
    """Queues a board update for ``chat_id`` unless one is already waiting.

    A row already tried may be in flight with an older rendering, so only a row never
    attempted counts as waiting. The store checks as it writes (the row's key is the chat):
    no read of the outbox for it.
    """
    payload = {"chat_id": chat_id}
    coalesce = f"{QUEUE_BOARD}:{chat_id}"
    await enqueue(uow, QUEUE_BOARD, now, payload, rank=BOARD_RANK, coalesce=coalesce)
