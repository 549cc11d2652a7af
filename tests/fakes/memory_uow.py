"""An in-memory unit of work for fast service tests (the ``UnitOfWork`` port).

Same contract as ``storage.uow.SqlUnitOfWork``, proven by the contract suite in
``tests/integration/test_uow_contract.py`` that runs against both:

* nothing is visible to other units of work until ``commit()``; leaving without commit (or
  ``rollback()``) discards the changes;
* objects go in and come out as copies: mutating a returned ticket changes nothing until
  ``update()``;
* the same constraints: one citizen per Telegram id, one draft per citizen, unique ticket
  references, existing referenced rows (``ValueError``), updates of unknown ids
  (``LookupError``), aware datetimes only (``ValueError``), JSON payloads (``TypeError``);
* the same orderings, and ``next_ref_number`` never hands out a number twice;
* the same outbox leases: a claim locks its rows until its unit of work ends and skips rows
  another open unit of work is claiming (PostgreSQL's ``FOR UPDATE SKIP LOCKED``), and
  ``exists_since`` holds its key like PostgreSQL's advisory lock.
* row locks like PostgreSQL's: a ticket written by one unit of work makes another unit of
  work that writes it wait until the first ends, so ``update_if_unchanged`` (the
  compare-and-set of claims and SLA markers) lets exactly one of two racing units win.

Usage::

    uow_factory = InMemoryUnitOfWorkFactory()
    service = IntakeService(uow_factory, ...)
    ...
    assert uow_factory.store.tickets  # committed state, for assertions
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import itertools
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from bot.domain.advisory import (
    Advisory,
    AdvisoryStatus,
    DeliveryOutcome,
    Progress,
    Recipient,
)
from bot.domain.lifecycle import queue_key
from bot.domain.model import (
    OPEN_STATUSES,
    Assignment,
    AuditEntry,
    Citizen,
    Direction,
    Operator,
    OutboxMessage,
    RelayMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.domain.rules import format_ref
from bot.services.clock import SystemClock
from bot.services.outbox_kinds import LANE_ORDER
from bot.services.ports import (
    AdvisoryRepository,
    AgencyRequestRepository,
    AssignmentRepository,
    AuditRepository,
    ChatAliasRepository,
    CitizenRepository,
    Clock,
    EventRepository,
    MessageRepository,
    OperatorRepository,
    OutboxRepository,
    QueueLine,
    TicketRepository,
)

T = TypeVar("T")
TABLES = (
    "citizens",
    "tickets",
    "events",
    "messages",
    "outbox",
    "operators",
    "assignments",
    "audit",
    "chat_aliases",
    "advisories",
    "advisory_deliveries",
    "agency_requests",
)


class InMemoryStore:
    """The committed state shared by all units of work of one factory."""

    def __init__(self, clock: Clock | None = None) -> None:
        #: Fills timestamps a citizen was stored without (the SQL store uses the database's).
        self.clock: Clock = clock or SystemClock()
        self.citizens: dict[int, Citizen] = {}
        self.tickets: dict[int, Ticket] = {}
        self.events: dict[int, TicketEvent] = {}
        self.messages: dict[int, RelayMessage] = {}
        self.outbox: dict[int, OutboxMessage] = {}
        self.chat_aliases: dict[int, tuple[int, datetime]] = {}
        self.operators: dict[int, Operator] = {}
        self.assignments: dict[int, Assignment] = {}
        self.audit: dict[int, AuditEntry] = {}
        self.advisories: dict[int, Advisory] = {}
        self.advisory_deliveries: dict[int, _Delivery] = {}
        self.agency_requests: dict[int, tuple[str, str, datetime]] = {}
        self.ref_counters: dict[date, int] = {}
        #: Row locks (``FOR UPDATE``) and key locks (advisory) held by open transactions.
        self.row_locks: dict[int, _Transaction] = {}
        self.key_locks: dict[str, _Transaction] = {}
        self._released = asyncio.Event()
        self._refs_in_flight: dict[date, set[int]] = {}
        self._ids: dict[str, itertools.count[int]] = {}
        #: Row locks (``("tickets", id)``) held until the writing transaction ends.
        self.locks: dict[tuple[str, int], tuple[_Transaction, asyncio.Event]] = {}

    def locks_released(self) -> None:
        """Wakes the transactions waiting for a lock (a transaction ended)."""
        self._released.set()
        self._released = asyncio.Event()

    async def wait_for_locks(self) -> None:
        """Waits until some transaction ends (then check the lock again)."""
        await self._released.wait()

    def next_id(self, table: str) -> int:
        """Return a fresh id for ``table`` (like a sequence: never reused, even on rollback)."""
        return next(self._ids.setdefault(table, itertools.count(1)))


class _Transaction:
    """The uncommitted writes of one unit of work, layered over the committed store."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.citizens: dict[int, Citizen] = {}
        self.tickets: dict[int, Ticket] = {}
        self.events: dict[int, TicketEvent] = {}
        self.messages: dict[int, RelayMessage] = {}
        self.outbox: dict[int, OutboxMessage] = {}
        self.chat_aliases: dict[int, tuple[int, datetime]] = {}
        self.operators: dict[int, Operator] = {}
        self.assignments: dict[int, Assignment] = {}
        self.audit: dict[int, AuditEntry] = {}
        self.advisories: dict[int, Advisory] = {}
        self.advisory_deliveries: dict[int, _Delivery] = {}
        self.agency_requests: dict[int, tuple[str, str, datetime]] = {}
        self.refs: dict[date, list[int]] = {}
        self.task = asyncio.current_task()
        self.held: list[tuple[str, int]] = []

    async def lock(self, table: str, row_id: int) -> None:
        """Waits until no other transaction holds the row, then holds it until the end."""
        key = (table, row_id)
        while (holder := self.store.locks.get(key)) is not None and holder[0] is not self:
            if holder[0].task is self.task and self.task is not None:
                raise RuntimeError("a unit of work waits for a row its own task holds")
            await holder[1].wait()
        if key not in self.store.locks:
            self.store.locks[key] = (self, asyncio.Event())
            self.held.append(key)

    def unlock(self) -> None:
        for key in self.held:
            _, released = self.store.locks.pop(key)
            released.set()
        self.held.clear()

    def view(self, table: str) -> dict[int, Any]:
        committed: dict[int, Any] = getattr(self.store, table)
        return {**committed, **getattr(self, table)}

    def commit(self) -> None:
        # Constraints are checked again against what others committed in the meantime.
        citizens = self.view("citizens")
        for citizen in self.citizens.values():
            _check_citizen_unique(citizen, citizens)
        tickets = self.view("tickets")
        for ticket in self.tickets.values():
            _check_ticket_unique(ticket, tickets)
        operators = self.view("operators")
        for operator in self.operators.values():
            _check_operator_unique(operator, operators)
        for table in TABLES:
            getattr(self.store, table).update(getattr(self, table))
        for day, numbers in self.refs.items():
            self.store.ref_counters[day] = max(self.store.ref_counters.get(day, 0), *numbers)
        self.discard()

    def discard(self) -> None:
        for day, numbers in self.refs.items():
            self.store._refs_in_flight.get(day, set()).difference_update(numbers)
        for table in (*TABLES, "refs"):
            getattr(self, table).clear()
        self.unlock()
        for row_id in [i for i, holder in self.store.row_locks.items() if holder is self]:
            del self.store.row_locks[row_id]
        for key in [k for k, holder in self.store.key_locks.items() if holder is self]:
            del self.store.key_locks[key]
        self.store.locks_released()

    def locked_by_other(self, row_id: int) -> bool:
        holder = self.store.row_locks.get(row_id)
        return holder is not None and holder is not self


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime refused: storage keeps aware UTC times only")
    return value


def _utc(obj: T) -> T:
    """Return a deep copy of a domain object with every datetime in UTC (as SQL returns them).

    Refuses naive datetimes anywhere inside, as the SQL store does.
    """
    if isinstance(obj, datetime):
        return _require_aware(obj).astimezone(UTC)  # type: ignore[return-value]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: _utc(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, list):
        return [_utc(item) for item in obj]  # type: ignore[return-value]
    return copy.deepcopy(obj)


def _check_citizen_unique(citizen: Citizen, existing: dict[int, Citizen]) -> None:
    if any(c.telegram_id == citizen.telegram_id and c.id != citizen.id for c in existing.values()):
        raise ValueError("citizens: the write violates a unique constraint")


def _check_ticket_unique(ticket: Ticket, existing: dict[int, Ticket]) -> None:
    for other in existing.values():
        if other.id == ticket.id:
            continue
        if ticket.ref is not None and other.ref == ticket.ref:
            raise ValueError("tickets: the write violates a unique constraint")
        if ticket.is_draft and other.is_draft and other.citizen_id == ticket.citizen_id:
            raise ValueError("tickets: the write violates a unique constraint")


def _check_operator_unique(operator: Operator, existing: dict[int, Operator]) -> None:
    if any(
        o.telegram_id == operator.telegram_id and o.id != operator.id for o in existing.values()
    ):
        raise ValueError("operators: the write violates a unique constraint")


def _require(value: int | None, rows: dict[int, Any], what: str) -> int:
    if value is None:
        raise LookupError(f"{what} has no id: add it first")
    if value not in rows:
        raise LookupError(f"{what} not found")
    return value


def _copies(items: Iterable[T], key: Callable[[T], Any], *, reverse: bool = False) -> list[T]:
    return [copy.deepcopy(item) for item in sorted(items, key=key, reverse=reverse)]


class _Repository:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    @property
    def _tx(self) -> _Transaction:
        return self._uow._active()


class InMemoryCitizenRepository(_Repository):
    """Citizens by id and by Telegram user id."""

    async def get(self, citizen_id: int) -> Citizen | None:
        """Return a citizen by id."""
        citizen: Citizen | None = self._tx.view("citizens").get(citizen_id)
        return copy.deepcopy(citizen)

    async def get_by_telegram_id(self, telegram_id: int) -> Citizen | None:
        """Return the citizen with this Telegram user id."""
        citizens: dict[int, Citizen] = self._tx.view("citizens")
        for citizen in citizens.values():
            if citizen.telegram_id == telegram_id:
                return copy.deepcopy(citizen)
        return None

    async def with_draft(self, telegram_id: int) -> tuple[Citizen | None, Ticket | None]:
        """Return the citizen with this Telegram user id and their draft in progress."""
        citizen = await self.get_by_telegram_id(telegram_id)
        if citizen is None:
            return None, None
        return citizen, await InMemoryTicketRepository(self._uow).active_draft(citizen.id or 0)

    async def add(self, citizen: Citizen) -> Citizen:
        """Insert a citizen and return it with its id."""
        citizen = _utc(citizen)
        _check_citizen_unique(citizen, self._tx.view("citizens"))
        now = self._tx.store.clock.now().astimezone(UTC)
        stored = dataclasses.replace(
            citizen,
            id=self._tx.store.next_id("citizens"),
            created_at=citizen.created_at or now,
            updated_at=citizen.updated_at or now,
        )
        self._tx.citizens[stored.id or 0] = stored
        return copy.deepcopy(stored)

    async def update(self, citizen: Citizen) -> None:
        """Persist all fields of an existing citizen but its id and creation time."""
        citizen = _utc(citizen)
        rows = self._tx.view("citizens")
        citizen_id = _require(citizen.id, rows, "citizen")
        _check_citizen_unique(citizen, rows)
        self._tx.citizens[citizen_id] = dataclasses.replace(
            citizen,
            created_at=rows[citizen_id].created_at,
            updated_at=citizen.updated_at or self._tx.store.clock.now().astimezone(UTC),
        )

    async def subscribers(self, kecamatan_codes: Collection[str] | None) -> list[Recipient]:
        """Return subscribed, unblocked citizens: all, or city-wide plus ``kecamatan_codes``."""
        citizens: dict[int, Citizen] = self._tx.view("citizens")
        return [
            Recipient(c.id or 0, c.telegram_id, c.language)
            for c in sorted(citizens.values(), key=lambda c: c.id or 0)
            if c.subscribed
            and not c.blocked_bot
            and (
                kecamatan_codes is None
                or c.subscription_kecamatan_code is None
                or c.subscription_kecamatan_code in kecamatan_codes
            )
        ]

    async def inactive(self, before: datetime, limit: int | None = None) -> list[Citizen]:
        """Return not erased citizens holding personal data, untouched (record and tickets)
        since before ``before`` and without a draft or open ticket; by id."""
        cutoff = _require_aware(before)
        tickets: list[Ticket] = list(self._tx.view("tickets").values())

        def busy(citizen_id: int) -> bool:
            return any(
                t.citizen_id == citizen_id
                and (t.updated_at >= cutoff or t.is_draft or t.status in OPEN_STATUSES)
                for t in tickets
            )

        citizens: dict[int, Citizen] = self._tx.view("citizens")
        found = [
            c
            for c in citizens.values()
            if c.erased_at is None
            and (c.updated_at is not None and c.updated_at < cutoff)
            and (c.name is not None or c.username is not None or c.phone_e164 is not None
                 or not c.subscribed)
            and not busy(c.id or 0)
        ]  # fmt: skip
        return _copies(found, key=lambda c: c.id)[:limit]


class InMemoryTicketRepository(_Repository):
    """Tickets, drafts included."""

    async def get(self, ticket_id: int) -> Ticket | None:
        """Return a ticket by id as it was when asked; other tasks run before the answer
        arrives, as while SQL waits on I/O (so read-then-write races happen here too)."""
        ticket: Ticket | None = copy.deepcopy(self._tx.view("tickets").get(ticket_id))
        await asyncio.sleep(0)
        return ticket

    async def get_by_ref(self, ref: str) -> Ticket | None:
        """Return a ticket by its human reference."""
        found = self._select(lambda t: t.ref == ref)
        return found[0] if found else None

    async def active_draft(self, citizen_id: int) -> Ticket | None:
        """Return the citizen's draft in progress, if any."""
        found = self._select(lambda t: t.citizen_id == citizen_id and t.is_draft)
        return found[0] if found else None

    async def open_tickets(self, citizen_id: int) -> list[Ticket]:
        """Return the citizen's submitted, not yet finished tickets, newest first."""
        return self._select(lambda t: t.citizen_id == citizen_id and t.status in OPEN_STATUSES)

    async def recent(self, citizen_id: int, limit: int) -> list[Ticket]:
        """Return the citizen's latest non-draft tickets, newest first."""
        return self._select(lambda t: t.citizen_id == citizen_id and not t.is_draft)[:limit]

    async def idle_drafts(self, updated_before: datetime) -> list[Ticket]:
        """Return drafts not touched since ``updated_before``, longest idle first."""
        _require_aware(updated_before)
        drafts = [
            t
            for t in self._tx.view("tickets").values()
            if t.is_draft and t.updated_at < updated_before
        ]
        return _copies(drafts, key=lambda t: (t.updated_at, t.id))

    async def add(self, ticket: Ticket) -> Ticket:
        """Insert a ticket and return it with its id."""
        ticket = _utc(ticket)
        self._validate(ticket)
        stored = dataclasses.replace(ticket, id=self._tx.store.next_id("tickets"))
        self._tx.tickets[stored.id or 0] = stored
        return copy.deepcopy(stored)

    async def update(self, ticket: Ticket) -> None:
        """Persist all fields of an existing ticket (its stored version goes up by one)."""
        ticket_id = _require(ticket.id, self._tx.view("tickets"), "ticket")
        ticket = _utc(ticket)
        self._validate(ticket)
        await self._tx.lock("tickets", ticket_id)
        current: Ticket = self._tx.view("tickets")[ticket_id]
        self._tx.tickets[ticket_id] = dataclasses.replace(ticket, version=current.version + 1)

    async def update_if_unchanged(self, ticket: Ticket) -> bool:
        """Compare-and-set on ``version`` (waits for another writer of the row, like SQL)."""
        ticket_id = _require(ticket.id, self._tx.view("tickets"), "ticket")
        ticket = _utc(ticket)
        self._validate(ticket)
        await self._tx.lock("tickets", ticket_id)
        current: Ticket = self._tx.view("tickets")[ticket_id]
        if current.version != ticket.version:
            return False
        self._tx.tickets[ticket_id] = dataclasses.replace(ticket, version=ticket.version + 1)
        return True

    async def by_operator_thread(self, chat_id: int, thread_id: int) -> Ticket | None:
        """Return the ticket whose forum topic is ``thread_id`` in the operators' chat."""
        found = self._select(
            lambda t: t.operator_chat_id == chat_id and t.operator_thread_id == thread_id
        )
        return found[0] if found else None

    async def by_operator_card(self, chat_id: int, message_id: int) -> Ticket | None:
        """Return the ticket whose operator card is message ``message_id`` of ``chat_id``."""
        found = self._select(
            lambda t: t.operator_chat_id == chat_id and t.operator_card_message_id == message_id
        )
        return found[0] if found else None

    async def queue(self) -> list[Ticket]:
        """Return every open ticket in queue order (priority 1 first, then the oldest)."""
        return self._queue(lambda t: t.status in OPEN_STATUSES)

    async def queue_lines(self) -> list[QueueLine]:
        """:meth:`queue` as the board shows it."""
        return [QueueLine.of(ticket) for ticket in await self.queue()]

    async def unclaimed_since(self, queued_before: datetime) -> list[Ticket]:
        """Return unclaimed tickets queued by ``queued_before`` with an SLA marker unset."""
        _require_aware(queued_before)

        def due(t: Ticket) -> bool:
            queued = t.queued_at or t.submitted_at
            unset = t.sla_realerted_at is None or t.sla_escalated_at is None
            waiting = queued is not None and queued <= queued_before
            return t.status is TicketStatus.SUBMITTED and unset and waiting

        return self._queue(due)

    async def idle_claims(self, active_before: datetime) -> list[Ticket]:
        """Return claimed tickets with no operator message (nor claim) since the cutoff."""
        _require_aware(active_before)

        def idle(t: Ticket) -> bool:
            last, claimed = t.last_operator_message_at, t.claimed_at
            activity = last if last and claimed and last > claimed else claimed
            stale = activity is not None and activity <= active_before
            return t.status is TicketStatus.CLAIMED and stale

        return self._queue(idle)

    async def submitted_between(self, since: datetime, until: datetime) -> list[Ticket]:
        """Return the tickets submitted in ``[since, until)``, in submission order."""
        _require_aware(since)
        _require_aware(until)
        tickets: dict[int, Ticket] = self._tx.view("tickets")
        found = [
            t for t in tickets.values()
            if t.submitted_at is not None and since <= t.submitted_at < until
        ]  # fmt: skip
        return _copies(found, key=lambda t: (t.submitted_at, t.id))

    async def last_closed(self, citizen_id: int) -> Ticket | None:
        """Return the citizen's most recently closed (resolved or closed) ticket."""
        closed = [
            t
            for t in self._tx.view("tickets").values()
            if t.citizen_id == citizen_id
            and t.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
        ]
        if not closed:
            return None
        dated = [t for t in closed if t.closed_at is not None]
        newest = (
            max(dated, key=lambda t: (t.closed_at, t.id))
            if dated
            else max(closed, key=lambda t: t.id or 0)
        )
        return copy.deepcopy(newest)

    async def of_citizen(self, citizen_id: int) -> list[Ticket]:
        """Return all the citizen's tickets, drafts included, newest first."""
        return self._select(lambda t: t.citizen_id == citizen_id)

    async def due_for_anonymisation(
        self,
        closed_before: datetime,
        drafts_before: datetime,
        recheck_before: datetime,
        limit: int | None = None,
    ) -> list[Ticket]:
        """Finished tickets and drafts past their retention, and anonymised tickets still
        holding a chat id; by id."""
        for moment in (closed_before, drafts_before, recheck_before):
            _require_aware(moment)

        def due(t: Ticket) -> bool:
            if t.anonymised_at is not None:
                return t.anonymised_at < recheck_before and t.chat_id != 0
            ended = t.closed_at or t.updated_at
            cancelled = t.status is TicketStatus.CANCELLED
            if t.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED) or (
                cancelled and t.submitted_at is not None
            ):
                return ended < closed_before
            if t.status is TicketStatus.ABANDONED or (cancelled and t.submitted_at is None):
                return ended < drafts_before
            return False

        found = [t for t in self._tx.view("tickets").values() if due(t)]
        return _copies(found, key=lambda t: t.id)[:limit]

    def _queue(self, predicate: Callable[[Ticket], bool]) -> list[Ticket]:
        matching = [t for t in self._tx.view("tickets").values() if predicate(t)]
        return _copies(matching, key=queue_key)

    async def next_ref_number(self, day: date) -> int:
        """Allocate the next per-day sequence number (1, 2, …); never returns one twice."""
        store = self._tx.store
        in_flight = store._refs_in_flight.setdefault(day, set())
        number = max([store.ref_counters.get(day, 0), *in_flight]) + 1
        in_flight.add(number)
        self._tx.refs.setdefault(day, []).append(number)
        return number

    async def update_with_next_ref(self, ticket: Ticket, day: date, prefix: str) -> str:
        """:meth:`next_ref_number`, then :meth:`update` with the reference."""
        ref = format_ref(prefix, day, await self.next_ref_number(day))
        await self.update(dataclasses.replace(ticket, ref=ref))
        return ref

    async def count_by_status(self) -> dict[TicketStatus, int]:
        """Return how many tickets are in each status (every status, zero included)."""
        counts = dict.fromkeys(TicketStatus, 0)
        for ticket in self._tx.view("tickets").values():
            counts[ticket.status] += 1
        return counts

    def _validate(self, ticket: Ticket) -> None:
        if ticket.citizen_id not in self._tx.view("citizens"):
            raise ValueError("tickets: the write violates a foreign key")
        _check_ticket_unique(ticket, self._tx.view("tickets"))

    def _select(self, predicate: Callable[[Ticket], bool]) -> list[Ticket]:
        matching = [t for t in self._tx.view("tickets").values() if predicate(t)]
        return _copies(matching, key=lambda t: (t.created_at, t.id), reverse=True)


class InMemoryEventRepository(_Repository):
    """The append-only ticket timeline."""

    async def add(self, event: TicketEvent) -> None:
        """Append an event."""
        event = _utc(event)
        if event.ticket_id not in self._tx.view("tickets"):
            raise ValueError("ticket_events: the write violates a foreign key")
        event_id = self._tx.store.next_id("events")
        self._tx.events[event_id] = dataclasses.replace(event, id=event_id)

    async def for_ticket(self, ticket_id: int) -> list[TicketEvent]:
        """Return a ticket's events, oldest first."""
        events = [e for e in self._tx.view("events").values() if e.ticket_id == ticket_id]
        return _copies(events, key=lambda e: (e.at, e.id))

    async def redact_notes(self, ticket_ids: Collection[int], kinds: Collection[str]) -> int:
        """Clear the notes of the tickets' events of ``kinds``; return how many."""
        events: dict[int, TicketEvent] = self._tx.view("events")
        cleared = 0
        for event_id, event in events.items():
            if event.ticket_id in ticket_ids and event.kind in kinds and event.note is not None:
                self._tx.events[event_id] = dataclasses.replace(event, note=None)
                cleared += 1
        return cleared


class InMemoryMessageRepository(_Repository):
    """The relay log of a ticket's conversation."""

    async def add(self, message: RelayMessage) -> None:
        """Append a relayed message."""
        message = _utc(message)
        if message.ticket_id not in self._tx.view("tickets"):
            raise ValueError("messages: the write violates a foreign key")
        message_id = self._tx.store.next_id("messages")
        self._tx.messages[message_id] = dataclasses.replace(message, id=message_id)

    async def for_ticket(self, ticket_id: int) -> list[RelayMessage]:
        """Return a ticket's messages, oldest first."""
        messages = [m for m in self._tx.view("messages").values() if m.ticket_id == ticket_id]
        return _copies(messages, key=lambda m: (m.at, m.id))

    async def count_from_citizen_since(self, citizen_id: int, since: datetime) -> int:
        """Return how many messages the citizen sent to operators at or after ``since``."""
        _require_aware(since)
        tickets = self._tx.view("tickets")
        return sum(
            1
            for m in self._tx.view("messages").values()
            if m.direction is Direction.FROM_CITIZEN
            and m.at >= since
            and tickets[m.ticket_id].citizen_id == citizen_id
        )

    async def anonymise(self, ticket_ids: Collection[int]) -> int:
        """Clear the texts, file ids and chat ids of the tickets' messages; return how many
        messages held any."""
        messages: dict[int, RelayMessage] = self._tx.view("messages")
        cleared = 0
        for message_id, message in messages.items():
            held = (message.text, message.file_id, message.telegram_chat_id)
            if message.ticket_id in ticket_ids and any(v is not None for v in held):
                self._tx.messages[message_id] = dataclasses.replace(
                    message, text=None, file_id=None, telegram_chat_id=None
                )
                cleared += 1
        return cleared


def _owed(message: OutboxMessage) -> bool:
    return message.sent_at is None and message.failed_at is None


def _lease_ended(message: OutboxMessage, now: datetime) -> bool:
    return message.claimed_until is not None and message.claimed_until <= now


def _leased_by_other(message: OutboxMessage, owner: str | None, now: datetime) -> bool:
    return (
        message.claimed_by is not None
        and message.claimed_by != owner
        and message.claimed_until is not None
        and message.claimed_until > now
    )


class InMemoryOutboxRepository(_Repository):
    """The transactional outbox, leased row by row like the SQL store."""

    async def add(self, message: OutboxMessage) -> OutboxMessage:
        """Enqueue a delivery (TypeError if the payload is not JSON)."""
        message = _utc(message)
        if message.ticket_id is not None and message.ticket_id not in self._tx.view("tickets"):
            raise ValueError("outbox: the write violates a foreign key")
        stored = dataclasses.replace(
            message,
            payload=json.loads(json.dumps(message.payload)),
            result=None if message.result is None else json.loads(json.dumps(message.result)),
            id=self._tx.store.next_id("outbox"),
        )
        self._tx.outbox[stored.id or 0] = stored
        return copy.deepcopy(stored)

    async def put(self, message: OutboxMessage) -> None:
        """:meth:`add` without the row back (written at once here: reads see it as they
        must on every store)."""
        await self.add(message)

    async def put_unless_waiting(self, message: OutboxMessage) -> None:
        """:meth:`put` unless a row of its kind, lane, rank and key waits, never attempted."""
        if message.dedup_key is None:
            raise ValueError("outbox: put_unless_waiting needs a dedup_key")
        for row in self._tx.view("outbox").values():
            if (
                (row.kind, row.lane, row.rank, row.dedup_key)
                == (message.kind, message.lane, message.rank, message.dedup_key)
                and _owed(row)
                and row.attempts == 0
            ):
                return
        await self.put(message)

    async def get(self, message_id: int) -> OutboxMessage | None:
        """Return one row by id, whatever its state."""
        message: OutboxMessage | None = self._tx.view("outbox").get(message_id)
        return copy.deepcopy(message)

    async def due(self, now: datetime, limit: int, lane: str | None = None) -> list[OutboxMessage]:
        """Return unsent, unfailed rows due at ``now``, in the order they were written."""
        _require_aware(now)
        return [m for m in await self.owed(10**9, lane) if m.next_attempt_at <= now][:limit]

    async def owed(self, limit: int, lane: str | None = None) -> list[OutboxMessage]:
        """Return unsent, unfailed rows, due or not, in the order they were written."""
        owed = [
            m
            for m in self._tx.view("outbox").values()
            if _owed(m) and (lane is None or m.lane == lane)
        ]
        return _copies(owed, key=lambda m: m.id)[:limit]  # FIFO, as the SQL store

    async def update(self, message: OutboxMessage) -> None:
        """Persist the delivery state (never the lease, the kind or the payload)."""
        rows = self._tx.view("outbox")
        message_id = _require(message.id, rows, "outbox message")
        self._tx.outbox[message_id] = _with_delivery_state(rows[message_id], message)

    async def pending_count(self) -> int:
        """Return how many deliveries are still owed (due or not)."""
        return sum(1 for m in self._tx.view("outbox").values() if _owed(m))

    async def claim(
        self,
        owner: str,
        now: datetime,
        until: datetime,
        limit: int,
        *,
        holding: Collection[str] = (),
        skip: Collection[str] = (),
        max_rank: int | None = None,
        skip_lanes: Collection[str] = (),
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due rows to ``owner`` (rules: the port's docstring)."""
        now, until = _require_aware(now), _require_aware(until)
        tx = self._tx
        rows: dict[int, OutboxMessage] = tx.view("outbox")
        owed = sorted((m for m in rows.values() if _owed(m)), key=lambda m: m.id or 0)

        def held(message: OutboxMessage) -> bool:
            return any(
                e.ticket_id == message.ticket_id
                and e.lane == message.lane
                and (e.id or 0) < (message.id or 0)
                and (
                    _leased_by_other(e, None, now)  # this owner's in-flight rows too
                    or (e.kind in holding and e.next_attempt_at > now)
                    or e.rank > message.rank
                )
                for e in owed
                if message.ticket_id is not None
            )

        candidates = [
            m
            for m in owed
            if m.next_attempt_at <= now
            and m.kind not in skip
            and m.lane not in skip_lanes
            and (max_rank is None or m.rank <= max_rank)
            and (m.claimed_by is None or (m.claimed_until is not None and m.claimed_until <= now))
            and not tx.locked_by_other(m.id or 0)
            and not held(m)
        ]
        candidates.sort(key=lambda m: (_lane_rank(m.lane), m.rank, m.id or 0))
        candidates = candidates[:limit]
        for m in candidates:  # FOR UPDATE: locked until this unit of work ends
            tx.store.row_locks[m.id or 0] = tx
        mine = {m.id for m in candidates}
        dropped: set[tuple[int | None, str]] = set()
        kept: list[OutboxMessage] = []
        for m in sorted(candidates, key=lambda m: m.id or 0):
            key = (m.ticket_id, m.lane)
            blocked = m.ticket_id is not None and (
                key in dropped
                or any(
                    e.ticket_id == m.ticket_id
                    and e.lane == m.lane
                    and (e.id or 0) < (m.id or 0)
                    and e.id not in mine
                    and (
                        e.next_attempt_at <= now
                        or e.kind in holding
                        or _leased_by_other(e, owner, now)
                    )
                    for e in owed
                )
            )
            if blocked:
                dropped.add(key)
                continue
            claimed = dataclasses.replace(
                m,
                repeat=m.repeat or m.claimed_by is not None,
                claimed_by=owner,
                claimed_until=until.astimezone(UTC),
                attempts=m.attempts + 1,
            )
            tx.outbox[claimed.id or 0] = claimed
            kept.append(claimed)
        order = {m.id: n for n, m in enumerate(candidates)}
        return _copies(kept, key=lambda m: order[m.id])

    async def claim_lane(
        self, owner: str, now: datetime, until: datetime, limit: int, lane: str
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due rows of ``lane`` of no ticket (rules: the port's)."""
        now, until = _require_aware(now), _require_aware(until)
        tx = self._tx
        rows: dict[int, OutboxMessage] = tx.view("outbox")
        candidates = sorted(
            (
                m
                for m in rows.values()
                if _owed(m)
                and m.lane == lane
                and m.ticket_id is None
                and m.next_attempt_at <= now
                and (m.claimed_by is None or _lease_ended(m, now))
                and not tx.locked_by_other(m.id or 0)
            ),
            key=lambda m: (m.rank, m.id or 0),
        )[: max(limit, 0)]
        claimed: list[OutboxMessage] = []
        for m in candidates:  # FOR UPDATE: locked until this unit of work ends
            tx.store.row_locks[m.id or 0] = tx
            leased = dataclasses.replace(
                m,
                repeat=m.repeat or m.claimed_by is not None,
                claimed_by=owner,
                claimed_until=until.astimezone(UTC),
                attempts=m.attempts + 1,
            )
            tx.outbox[leased.id or 0] = leased
            claimed.append(leased)
        return _copies(claimed, key=lambda m: (m.rank, m.id or 0))

    async def extend(self, owner: str, ids: Collection[int], until: datetime) -> int:
        """Prolong ``owner``'s leases on unsent ``ids``; return how many it still holds."""
        _require_aware(until)
        rows: dict[int, OutboxMessage] = self._tx.view("outbox")
        held = [rows[i] for i in ids if i in rows and rows[i].claimed_by == owner]
        held = [m for m in held if m.sent_at is None]
        for m in held:
            self._tx.outbox[m.id or 0] = dataclasses.replace(m, claimed_until=until.astimezone(UTC))
        return len(held)

    async def release(self, owner: str, ids: Collection[int]) -> int:
        """End ``owner``'s leases on unsent ``ids`` it did not attempt (attempt taken back)."""
        rows: dict[int, OutboxMessage] = self._tx.view("outbox")
        held = [rows[i] for i in ids if i in rows and rows[i].claimed_by == owner]
        held = [m for m in held if m.sent_at is None]
        for m in held:
            self._tx.outbox[m.id or 0] = dataclasses.replace(
                m, claimed_by=None, claimed_until=None, attempts=max(m.attempts - 1, 0)
            )
        return len(held)

    async def finish(self, message: OutboxMessage, owner: str) -> bool:
        """Persist the outcome of ``owner``'s attempt and end its lease (see the port)."""
        rows: dict[int, OutboxMessage] = self._tx.view("outbox")
        message_id = _require(message.id, rows, "outbox message")
        while self._tx.locked_by_other(message_id):  # FOR UPDATE waits for the other
            await self._tx.store.wait_for_locks()
        rows = self._tx.view("outbox")
        current = rows[message_id]
        ours = current.claimed_by in (None, owner)
        if not ours and message.sent_at is None:
            return False
        changed = _with_delivery_state(current, message)
        if ours:
            changed = dataclasses.replace(changed, claimed_by=None, claimed_until=None)
        self._tx.outbox[message_id] = changed
        return ours

    async def finish_sent(self, messages: Sequence[OutboxMessage], owner: str) -> None:
        """Persist many sent rows at once (each as ``finish`` does a success)."""
        for message in messages:
            await self.finish(message, owner)

    async def expire_leases(self, owner: str, now: datetime) -> int:
        """End every lease not held by ``owner`` at ``now`` (one process per database)."""
        now = _require_aware(now).astimezone(UTC)
        rows: dict[int, OutboxMessage] = self._tx.view("outbox")
        live = [m for m in rows.values() if _owed(m) and _leased_by_other(m, owner, now)]
        for m in live:
            self._tx.outbox[m.id or 0] = dataclasses.replace(m, claimed_until=now)
        return len(live)

    async def scrub_finished(self, ticket_ids: Collection[int]) -> int:
        """Empty the payload and drop the result of the tickets' sent or failed rows."""
        rows: dict[int, OutboxMessage] = self._tx.view("outbox")
        scrubbed = 0
        for message_id, message in rows.items():
            if message.ticket_id not in ticket_ids or _owed(message):
                continue
            if message.payload or message.result is not None:
                self._tx.outbox[message_id] = dataclasses.replace(message, payload={}, result=None)
                scrubbed += 1
        return scrubbed

    async def exists_since(self, dedup_key: str, since: datetime) -> bool:
        """Whether a row with ``dedup_key`` was enqueued at or after ``since`` (the key stays
        locked until the unit of work ends, like PostgreSQL's advisory lock)."""
        _require_aware(since)
        locks = self._tx.store.key_locks
        while locks.get(dedup_key, self._tx) is not self._tx:
            await self._tx.store.wait_for_locks()
        locks[dedup_key] = self._tx
        return any(
            m.dedup_key == dedup_key and m.created_at >= since
            for m in self._tx.view("outbox").values()
        )

    async def owed_of_kind(self, kind: str) -> list[OutboxMessage]:
        """Return unsent, unfailed rows of one kind, oldest first."""
        return [m for m in await self.owed(10**9) if m.kind == kind]

    async def last_sent_of_kind(self, kind: str) -> OutboxMessage | None:
        """Return the row of one kind sent last."""
        rows: dict[int, OutboxMessage] = self._tx.view("outbox")
        sent = [m for m in rows.values() if m.kind == kind and m.sent_at is not None]
        if not sent:
            return None
        return copy.deepcopy(max(sent, key=lambda m: (m.sent_at, m.id or 0)))


class InMemoryOperatorRepository(_Repository):
    """The operator roster, by Telegram user id."""

    async def get(self, telegram_id: int) -> Operator | None:
        """Return the roster entry of a Telegram user (active or not)."""
        operators: dict[int, Operator] = self._tx.view("operators")
        found = [o for o in operators.values() if o.telegram_id == telegram_id]
        return copy.deepcopy(found[0]) if found else None

    async def list(self, *, include_inactive: bool = False) -> list[Operator]:
        """Return roster entries, oldest first."""
        operators: dict[int, Operator] = self._tx.view("operators")
        kept = [o for o in operators.values() if include_inactive or o.active]
        return _copies(kept, key=lambda o: (o.added_at, o.id))

    async def add(self, operator: Operator) -> Operator:
        """Insert an entry (ValueError when the Telegram user is already on the roster)."""
        operator = _utc(operator)
        _check_operator_unique(operator, self._tx.view("operators"))
        stored = dataclasses.replace(operator, id=self._tx.store.next_id("operators"))
        self._tx.operators[stored.id or 0] = stored
        return copy.deepcopy(stored)

    async def update(self, operator: Operator) -> None:
        """Persist all fields of an existing entry."""
        operator = _utc(operator)
        rows = self._tx.view("operators")
        operator_id = _require(operator.id, rows, "operator")
        _check_operator_unique(operator, rows)
        self._tx.operators[operator_id] = operator


class InMemoryAssignmentRepository(_Repository):
    """Tickets handed to agencies."""

    async def add(self, assignment: Assignment) -> Assignment:
        """Insert (ValueError for a second row of the same ticket and agency)."""
        assignment = _utc(assignment)
        if assignment.ticket_id not in self._tx.view("tickets"):
            raise ValueError("assignments: the write violates a foreign key")
        rows: dict[int, Assignment] = self._tx.view("assignments")
        if any(
            a.ticket_id == assignment.ticket_id and a.agency_code == assignment.agency_code
            for a in rows.values()
        ):
            raise ValueError("assignments: the write violates a unique constraint")
        stored = dataclasses.replace(assignment, id=self._tx.store.next_id("assignments"))
        self._tx.assignments[stored.id or 0] = stored
        return copy.deepcopy(stored)

    async def for_ticket(self, ticket_id: int) -> list[Assignment]:
        """Return a ticket's assignments in dispatch order."""
        rows: dict[int, Assignment] = self._tx.view("assignments")
        mine = [a for a in rows.values() if a.ticket_id == ticket_id]
        return _copies(mine, key=lambda a: (a.dispatched_at, a.id))

    async def for_tickets(self, ticket_ids: Collection[int]) -> list[Assignment]:
        """Return the assignments of many tickets, by ticket then dispatch order."""
        rows: dict[int, Assignment] = self._tx.view("assignments")
        mine = [a for a in rows.values() if a.ticket_id in set(ticket_ids)]
        return _copies(mine, key=lambda a: (a.ticket_id, a.dispatched_at, a.id))

    async def update(self, assignment: Assignment) -> None:
        """Persist the progress fields (times, ETA, channel) of an existing assignment."""
        assignment = _utc(assignment)
        rows: dict[int, Assignment] = self._tx.view("assignments")
        assignment_id = _require(assignment.id, rows, "assignment")
        self._tx.assignments[assignment_id] = dataclasses.replace(
            rows[assignment_id],
            channel=assignment.channel,
            eta_minutes=assignment.eta_minutes,
            acknowledged_at=assignment.acknowledged_at,
            en_route_at=assignment.en_route_at,
            on_scene_at=assignment.on_scene_at,
            completed_at=assignment.completed_at,
            declined_at=assignment.declined_at,
            decline_reason=assignment.decline_reason,
            ack_due_at=assignment.ack_due_at,
            ack_reminded_at=assignment.ack_reminded_at,
            ack_escalated_at=assignment.ack_escalated_at,
            card_chat_id=assignment.card_chat_id,
            card_message_id=assignment.card_message_id,
        )

    async def get(self, ticket_id: int, agency_code: str) -> Assignment | None:
        """Return the assignment of one ticket and agency, or None."""
        rows: dict[int, Assignment] = self._tx.view("assignments")
        found = [
            a for a in rows.values() if (a.ticket_id, a.agency_code) == (ticket_id, agency_code)
        ]
        return copy.deepcopy(found[0]) if found else None

    async def ack_overdue(self, now: datetime) -> list[Assignment]:
        """Return assignments past their acknowledgement deadline, still owed, not escalated."""
        now = _require_aware(now)
        rows: dict[int, Assignment] = self._tx.view("assignments")
        due = [
            a for a in rows.values()
            if a.ack_due_at is not None and a.ack_due_at <= now and a.acknowledged_at is None
            and a.completed_at is None and a.declined_at is None and a.ack_escalated_at is None
        ]  # fmt: skip
        return _copies(due, key=lambda a: (a.ack_due_at, a.id))

    async def mark(self, assignment_id: int, marker: str, at: datetime) -> bool:
        """Sets an unset escalation marker of an unacknowledged assignment (compare-and-set)."""
        if marker not in ("ack_reminded_at", "ack_escalated_at"):
            raise ValueError(f"not an assignment marker: {marker}")
        await self._tx.lock("assignments", assignment_id)
        rows: dict[int, Assignment] = self._tx.view("assignments")
        row = rows.get(assignment_id)
        if row is None or getattr(row, marker) is not None or row.acknowledged_at is not None:
            return False
        self._tx.assignments[assignment_id] = dataclasses.replace(
            row, **{marker: _require_aware(at).astimezone(UTC)}
        )
        return True


class InMemoryAgencyRequestRepository(_Repository):
    """Idempotency keys of signed agency requests (replays refused)."""

    async def remember(self, agency_code: str, key: str, at: datetime) -> bool:
        """Stores the key; False when the agency sent it before."""
        rows: dict[int, tuple[str, str, datetime]] = self._tx.view("agency_requests")
        if any((code, k) == (agency_code, key) for code, k, _ in rows.values()):
            return False
        row_id = self._tx.store.next_id("agency_requests")
        self._tx.agency_requests[row_id] = (agency_code, key, _require_aware(at).astimezone(UTC))
        return True

    async def forget_before(self, at: datetime) -> int:
        """Drops keys received before ``at``."""
        at = _require_aware(at)
        rows: dict[int, tuple[str, str, datetime]] = self._tx.view("agency_requests")
        old = [row_id for row_id, (_, _, received) in rows.items() if received < at]
        for row_id in old:
            self._tx.store.agency_requests.pop(row_id, None)
            self._tx.agency_requests.pop(row_id, None)
        return len(old)


class InMemoryAuditRepository(_Repository):
    """Staff actions that concern no ticket, append-only."""

    async def add(self, entry: AuditEntry) -> None:
        """Append an entry."""
        entry = _utc(entry)
        entry_id = self._tx.store.next_id("audit")
        self._tx.audit[entry_id] = dataclasses.replace(entry, id=entry_id)

    async def recent(self, limit: int) -> list[AuditEntry]:
        """Return the latest entries, newest first."""
        rows: dict[int, AuditEntry] = self._tx.view("audit")
        return _copies(rows.values(), key=lambda e: (e.at, e.id), reverse=True)[:limit]


_LANE_RANKS = {lane.value: lane.rank for lane in LANE_ORDER}


def _lane_rank(lane: str) -> int:
    return _LANE_RANKS.get(lane, len(LANE_ORDER))


def _with_delivery_state(row: OutboxMessage, message: OutboxMessage) -> OutboxMessage:
    message = _utc(message)
    return dataclasses.replace(
        row,
        attempts=message.attempts,
        next_attempt_at=message.next_attempt_at,
        sent_at=message.sent_at,
        failed_at=message.failed_at,
        last_error=message.last_error,
        result=None if message.result is None else json.loads(json.dumps(message.result)),
        repeat=message.repeat,
    )


@dataclasses.dataclass(slots=True)
class _Delivery:
    advisory_id: int
    citizen_id: int
    chat_id: int
    outcome: DeliveryOutcome | None = None
    at: datetime | None = None


class InMemoryAdvisoryRepository(_Repository):
    """Advisories and their deliveries (each copy an outbox row)."""

    async def add(self, advisory: Advisory) -> Advisory:
        """Insert an advisory and return it with its id."""
        stored = dataclasses.replace(_utc(advisory), id=self._tx.store.next_id("advisories"))
        self._tx.advisories[stored.id or 0] = stored
        return copy.deepcopy(stored)

    async def get(self, advisory_id: int) -> Advisory | None:
        """Return an advisory by id."""
        found: Advisory | None = self._tx.view("advisories").get(advisory_id)
        return copy.deepcopy(found)

    async def update(self, advisory: Advisory) -> None:
        """Persist all fields of an existing advisory."""
        advisory_id = _require(advisory.id, self._tx.view("advisories"), "advisory")
        self._tx.advisories[advisory_id] = _utc(advisory)

    async def sending(self) -> list[Advisory]:
        """Return the advisories being sent, oldest first."""
        rows: dict[int, Advisory] = self._tx.view("advisories")
        found = [a for a in rows.values() if a.status is AdvisoryStatus.SENDING]
        return _copies(found, key=lambda a: a.id)

    async def with_source(self, source: str) -> list[Advisory]:
        """Return the advisories drafted from ``source``, oldest first."""
        rows: dict[int, Advisory] = self._tx.view("advisories")
        return _copies([a for a in rows.values() if a.source == source], key=lambda a: a.id)

    async def enqueue(
        self,
        advisory_id: int,
        recipients: Sequence[Recipient],
        now: datetime,
        *,
        kind: str,
        lane: str,
        rank: int,
    ) -> int:
        """Write a delivery row and an outbox row per recipient not yet given one."""
        _require(advisory_id, self._tx.view("advisories"), "advisory")
        deliveries: dict[int, _Delivery] = self._tx.view("advisory_deliveries")
        known = {d.citizen_id for d in deliveries.values() if d.advisory_id == advisory_id}
        written = 0
        for recipient in recipients:
            if recipient.citizen_id in known:
                continue
            known.add(recipient.citizen_id)
            delivery_id = self._tx.store.next_id("advisory_deliveries")
            self._tx.advisory_deliveries[delivery_id] = _Delivery(
                advisory_id, recipient.citizen_id, recipient.telegram_id
            )
            await self._uow.outbox.add(
                OutboxMessage(
                    kind=kind, lane=lane, rank=rank, created_at=now, next_attempt_at=now,
                    payload={"advisory_id": advisory_id, "delivery_id": delivery_id,
                             "chat_id": recipient.telegram_id,
                             "language": recipient.language},
                    dedup_key=f"advisory:{advisory_id}",
                )
            )  # fmt: skip
            written += 1
        return written

    async def record(self, delivery_id: int, outcome: DeliveryOutcome, at: datetime) -> None:
        """Store that one recipient's copy was refused for good or stopped."""
        rows: dict[int, _Delivery] = self._tx.view("advisory_deliveries")
        if delivery_id in rows:
            self._tx.advisory_deliveries[delivery_id] = dataclasses.replace(
                rows[delivery_id], outcome=outcome, at=_require_aware(at)
            )

    async def progress(self, advisory_id: int) -> Progress:
        """Count the outcomes and the owed outbox rows of an advisory."""
        rows: dict[int, _Delivery] = self._tx.view("advisory_deliveries")
        mine = [d.outcome for d in rows.values() if d.advisory_id == advisory_id]
        key = f"advisory:{advisory_id}"
        outbox: dict[int, OutboxMessage] = self._tx.view("outbox")
        copies = [m for m in outbox.values() if m.dedup_key == key]
        return Progress(
            recipients=len(mine),
            sent=sum(1 for m in copies if m.sent_at is not None),
            blocked=mine.count(DeliveryOutcome.BLOCKED),
            failed=mine.count(DeliveryOutcome.FAILED),
            cancelled=mine.count(DeliveryOutcome.CANCELLED),
            owed=sum(1 for m in copies if _owed(m)),
        )

    async def forget_recipients(self, citizen_ids: Collection[int]) -> int:
        """Replace the chat id of the citizens' delivery rows by 0; return how many held it."""
        deliveries: dict[int, _Delivery] = self._tx.view("advisory_deliveries")
        forgotten = 0
        for delivery_id, delivery in deliveries.items():
            if delivery.citizen_id in citizen_ids and delivery.chat_id != 0:
                self._tx.advisory_deliveries[delivery_id] = dataclasses.replace(delivery, chat_id=0)
                forgotten += 1
        return forgotten

    async def cancel_owed(self, advisory_id: int, now: datetime) -> int:
        """Fail the owed rows no worker holds and mark their copies cancelled."""
        key = f"advisory:{advisory_id}"
        stopped = 0
        for message in await self._uow.outbox.owed(10**9):
            leased = message.claimed_until is not None and message.claimed_until > now
            if message.dedup_key != key or leased or self._tx.locked_by_other(message.id or 0):
                continue
            rows = self._tx.view("outbox")
            self._tx.outbox[message.id or 0] = dataclasses.replace(
                rows[message.id or 0], failed_at=_require_aware(now), last_error="cancelled",
                claimed_by=None, claimed_until=None,
            )  # fmt: skip
            delivery_id = int(str(message.payload["delivery_id"]))
            deliveries: dict[int, _Delivery] = self._tx.view("advisory_deliveries")
            if deliveries[delivery_id].outcome is None:
                self._tx.advisory_deliveries[delivery_id] = dataclasses.replace(
                    deliveries[delivery_id], outcome=DeliveryOutcome.CANCELLED, at=now
                )
            stopped += 1
        return stopped


class InMemoryChatAliasRepository(_Repository):
    """Chats that moved to a new id."""

    async def get(self, old_id: int) -> int | None:
        """Return the id the chat ``old_id`` moved to, or None."""
        found: tuple[int, datetime] | None = self._tx.view("chat_aliases").get(old_id)
        return None if found is None else found[0]

    async def add(self, old_id: int, new_id: int, at: datetime) -> None:
        """Remember (or replace) where ``old_id`` moved to."""
        self._tx.chat_aliases[old_id] = (new_id, _require_aware(at).astimezone(UTC))


class InMemoryUnitOfWork:
    """One transaction over all in-memory repositories. Leaving without commit rolls back."""

    citizens: CitizenRepository
    tickets: TicketRepository
    events: EventRepository
    messages: MessageRepository
    outbox: OutboxRepository
    chat_aliases: ChatAliasRepository
    operators: OperatorRepository
    assignments: AssignmentRepository
    audit: AuditRepository
    advisories: AdvisoryRepository
    agency_requests: AgencyRequestRepository

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self._tx: _Transaction | None = None
        self.citizens = InMemoryCitizenRepository(self)
        self.tickets = InMemoryTicketRepository(self)
        self.events = InMemoryEventRepository(self)
        self.messages = InMemoryMessageRepository(self)
        self.outbox = InMemoryOutboxRepository(self)
        self.chat_aliases = InMemoryChatAliasRepository(self)
        self.operators = InMemoryOperatorRepository(self)
        self.assignments = InMemoryAssignmentRepository(self)
        self.audit = InMemoryAuditRepository(self)
        self.advisories = InMemoryAdvisoryRepository(self)
        self.agency_requests = InMemoryAgencyRequestRepository(self)

    async def __aenter__(self) -> Self:
        """Begin the transaction."""
        if self._tx is not None:
            raise RuntimeError("this unit of work is already in progress")
        self._tx = _Transaction(self.store)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed."""
        tx, self._tx = self._tx, None
        if tx is not None:
            tx.discard()

    async def commit(self) -> None:
        """Commit the transaction."""
        self._active().commit()

    async def commit_with_next_ref(self, ticket: Ticket, day: date, prefix: str) -> str:
        """The ticket's write with the day's next reference, then the commit."""
        ref = await self.tickets.update_with_next_ref(ticket, day, prefix)
        await self.commit()
        return ref

    async def commit_with_update(self, ticket: Ticket) -> None:
        """The ticket's write, then the commit."""
        await self.tickets.update(ticket)
        await self.commit()

    async def rollback(self) -> None:
        """Roll the transaction back."""
        self._active().discard()

    def _active(self) -> _Transaction:
        if self._tx is None:
            raise RuntimeError("the unit of work is not in progress: use `async with`")
        return self._tx


class InMemoryUnitOfWorkFactory:
    """Makes units of work over one shared :class:`InMemoryStore` (a ``UnitOfWorkFactory``)."""

    def __init__(self, store: InMemoryStore | None = None, *, clock: Clock | None = None) -> None:
        self.store = store or InMemoryStore(clock)

    def __call__(self) -> InMemoryUnitOfWork:
        """Return a new unit of work; enter it with ``async with``."""
        return InMemoryUnitOfWork(self.store)
