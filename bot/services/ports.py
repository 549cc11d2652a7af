"""The ports of the application core: what services need from the outside world.

Adapters live in ``storage/`` (persistence), ``bot/geo/`` (geocoding) and ``handlers/``
(Telegram delivery). Tests use fakes of these protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from bot.domain.advisory import Advisory, DeliveryOutcome, Progress, Recipient
from bot.domain.model import (
    Area,
    Assignment,
    AuditEntry,
    Category,
    Citizen,
    GeocodeCandidate,
    Operator,
    OutboxMessage,
    RelayMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)


class Clock(Protocol):
    """Tells the current time (aware, UTC)."""

    def now(self) -> datetime:
        """Return the current aware UTC time."""
        ...


class Geocoder(Protocol):
    """Turns typed addresses into points and points into areas and addresses."""

    async def geocode(self, text: str, *, language: str = "id") -> list[GeocodeCandidate]:
        """Return ranked candidates for a typed address (best first, may be empty)."""
        ...

    async def reverse(self, lat: float, lon: float, *, language: str = "id") -> str | None:
        """Return a human-readable address for a point, or None."""
        ...

    def locate_area(self, lat: float, lon: float) -> Area | None:
        """Return the kelurahan/kecamatan of a point, or None when outside the city."""
        ...

    async def aclose(self) -> None:
        """Release network resources."""
        ...


class StorageBusy(Exception):
    """The database could not take a write in time: another process holds SQLite's write
    lock, or the connection to PostgreSQL was lost before the unit of work committed.
    Nothing of the action was saved; the citizen must be told to send it again."""


class PlaceFinder(Protocol):
    """Finds the place named somewhere in a free-text message, offline and at once."""

    def find_place(self, text: str) -> GeocodeCandidate | None:
        """Return the landmark (else main road, else kelurahan or kecamatan) the text names,
        or None."""
        ...


class AreaIndex(Protocol):
    """The city's kecamatan and kelurahan and their shapes (advisory targets, CAP areas)."""

    def kecamatan_within(self, lat: float, lon: float, radius_m: float) -> tuple[str, ...]:
        """Codes of the kecamatan whose ground is within ``radius_m`` of a point."""
        ...

    def kecamatan_in_polygons(
        self, polygons: Sequence[Sequence[tuple[float, float]]]
    ) -> tuple[str, ...]:
        """Codes of the kecamatan any of ``polygons`` (rings of ``(lat, lon)``) overlaps."""
        ...


class GeocodeCache(Protocol):
    """A durable cache of normalised query -> geocoding candidates."""

    async def get(self, key: str, now: datetime) -> list[GeocodeCandidate] | None:
        """Return the unexpired candidates stored for ``key`` or None."""
        ...

    async def put(
        self, key: str, candidates: Sequence[GeocodeCandidate], expires_at: datetime
    ) -> None:
        """Store (or replace) the candidates for ``key``."""
        ...


class CitizenRepository(Protocol):
    """Citizens by id and by Telegram user id."""

    async def get(self, citizen_id: int) -> Citizen | None:
        """Return a citizen by id."""
        ...

    async def get_by_telegram_id(self, telegram_id: int) -> Citizen | None:
        """Return the citizen with this Telegram user id."""
        ...

    async def with_draft(self, telegram_id: int) -> tuple[Citizen | None, Ticket | None]:
        """Return the citizen with this Telegram user id (None: unknown) and their draft in
        progress (None: none), in one read."""
        ...

    async def add(self, citizen: Citizen) -> Citizen:
        """Insert a citizen and return it with its id."""
        ...

    async def update(self, citizen: Citizen) -> None:
        """Persist changed fields of an existing citizen."""
        ...

    async def subscribers(self, kecamatan_codes: Collection[str] | None) -> list[Recipient]:
        """Return the subscribed citizens who have not blocked the bot, by id: all of them
        (``None``), or those of the whole city plus those subscribed to one of
        ``kecamatan_codes``."""
        ...

    async def inactive(self, before: datetime, limit: int | None = None) -> list[Citizen]:
        """Return citizens still holding personal data (not erased; a name, username or phone,
        or a Telegram id without a subscription) whose record and every ticket were last
        written before ``before`` and who have no draft or open ticket; by id (retention)."""
        ...


@dataclass(frozen=True, slots=True)
class QueueLine:
    """What the queue board shows of one open ticket, read without loading the ticket."""

    ticket_id: int
    ref: str | None
    category: Category | None
    priority: int
    status: TicketStatus
    kecamatan_name: str | None
    """Of the incident's place (None: no place, or a place outside every kecamatan known)."""
    submitted_at: datetime | None
    created_at: datetime
    claimed_by: int | None
    claimed_by_name: str | None
    thread_id: int | None

    @classmethod
    def of(cls, ticket: Ticket) -> QueueLine:
        """The line of a loaded ticket (what ``queue_lines`` reads of it)."""
        place = ticket.incident_location
        area = place.area if place is not None else None
        return cls(
            ticket_id=ticket.id or 0,
            ref=ticket.ref,
            category=ticket.category,
            priority=ticket.priority,
            status=ticket.status,
            kecamatan_name=area.kecamatan_name if area is not None else None,
            submitted_at=ticket.submitted_at,
            created_at=ticket.created_at,
            claimed_by=ticket.claimed_by,
            claimed_by_name=ticket.claimed_by_name,
            thread_id=ticket.operator_thread_id,
        )


class TicketRepository(Protocol):
    """Tickets, drafts included."""

    async def get(self, ticket_id: int) -> Ticket | None:
        """Return a ticket by id."""
        ...

    async def get_by_ref(self, ref: str) -> Ticket | None:
        """Return a ticket by its human reference."""
        ...

    async def active_draft(self, citizen_id: int) -> Ticket | None:
        """Return the citizen's draft in progress, if any (at most one)."""
        ...

    async def open_tickets(self, citizen_id: int) -> list[Ticket]:
        """Return the citizen's submitted, not yet finished tickets, newest first."""
        ...

    async def recent(self, citizen_id: int, limit: int) -> list[Ticket]:
        """Return the citizen's latest non-draft tickets, newest first."""
        ...

    async def idle_drafts(self, updated_before: datetime) -> list[Ticket]:
        """Return drafts not touched since ``updated_before``."""
        ...

    async def add(self, ticket: Ticket) -> Ticket:
        """Insert a ticket and return it with its id."""
        ...

    async def update(self, ticket: Ticket) -> None:
        """Persist all fields of an existing ticket."""
        ...

    async def next_ref_number(self, day: date) -> int:
        """Allocate the next per-day sequence number (1, 2, …); never returns one twice."""
        ...

    async def update_with_next_ref(self, ticket: Ticket, day: date, prefix: str) -> str:
        """Persist the ticket as :meth:`update` does, with ``format_ref(prefix, day, n)`` as
        its reference, ``n`` allocated as :meth:`next_ref_number` does; return the reference.

        The day's counter is the one point every report of the city passes: a backend that
        locks it until the commit writes it last (PostgreSQL: the number taken and the
        ticket written in one statement)."""
        ...

    async def count_by_status(self) -> dict[TicketStatus, int]:
        """Return how many tickets are in each status."""
        ...

    async def update_if_unchanged(self, ticket: Ticket) -> bool:
        """Compare-and-set: persist all fields only if the stored ``version`` still equals
        ``ticket.version`` (nobody wrote the ticket since it was read); return whether it did.

        Of two units of work that read the same version, exactly one wins (on PostgreSQL the
        loser waits for the winner's commit, then finds the version changed). Every write
        (``update`` too) bumps the stored version.
        """
        ...

    async def by_operator_thread(self, chat_id: int, thread_id: int) -> Ticket | None:
        """Return the ticket whose forum topic is ``thread_id`` in the operators' chat."""
        ...

    async def by_operator_card(self, chat_id: int, message_id: int) -> Ticket | None:
        """Return the ticket whose operator card is message ``message_id`` of ``chat_id``."""
        ...

    async def queue(self) -> list[Ticket]:
        """Return every open ticket (submitted … on scene) in queue order: priority 1 first,
        then the oldest submission (``lifecycle.queue_key``)."""
        ...

    async def queue_lines(self) -> list[QueueLine]:
        """:meth:`queue` as the board shows it: the same tickets in the same order, each
        read as its :class:`QueueLine` only (a board of hundreds of open tickets is drawn
        often; loading every whole ticket for it cost tens of milliseconds)."""
        ...

    async def unclaimed_since(self, queued_before: datetime) -> list[Ticket]:
        """Return submitted (unclaimed) tickets queued at or before ``queued_before`` with an
        SLA marker (re-alert or escalation) still unset, in queue order."""
        ...

    async def idle_claims(self, active_before: datetime) -> list[Ticket]:
        """Return claimed tickets whose last operator message (or, without one, the claim) is
        at or before ``active_before``, in queue order."""
        ...

    async def last_closed(self, citizen_id: int) -> Ticket | None:
        """Return the citizen's most recently closed (resolved or closed) ticket."""
        ...

    async def submitted_between(self, since: datetime, until: datetime) -> list[Ticket]:
        """Return the tickets submitted at or after ``since`` and before ``until``, in
        submission order (statistics and exports)."""
        ...

    async def of_citizen(self, citizen_id: int) -> list[Ticket]:
        """Return all the citizen's tickets, drafts included, newest first."""
        ...

    async def due_for_anonymisation(
        self,
        closed_before: datetime,
        drafts_before: datetime,
        recheck_before: datetime,
        limit: int | None = None,
    ) -> list[Ticket]:
        """Return the tickets whose personal fields must go now, by id:

        * not anonymised, finished after submission (resolved, closed, or cancelled once
          submitted) before ``closed_before``;
        * not anonymised drafts that ended (abandoned, or cancelled before submission)
          before ``drafts_before``;
        * anonymised before ``recheck_before`` but still holding the citizen's chat id (kept
          for the last notice of a ticket anonymised at its close).

        The end is ``closed_at`` (``updated_at`` when unset)."""
        ...


class EventRepository(Protocol):
    """The append-only ticket timeline."""

    async def add(self, event: TicketEvent) -> None:
        """Append an event."""
        ...

    async def for_ticket(self, ticket_id: int) -> list[TicketEvent]:
        """Return a ticket's events, oldest first."""
        ...

    async def redact_notes(self, ticket_ids: Collection[int], kinds: Collection[str]) -> int:
        """Clear the free-text note of the tickets' events of ``kinds``; return how many
        notes were cleared (events without a note are not counted). One statement."""
        ...


class MessageRepository(Protocol):
    """The relay log of a ticket's conversation."""

    async def add(self, message: RelayMessage) -> None:
        """Append a relayed message."""
        ...

    async def for_ticket(self, ticket_id: int) -> list[RelayMessage]:
        """Return a ticket's messages, oldest first."""
        ...

    async def count_from_citizen_since(self, citizen_id: int, since: datetime) -> int:
        """Return how many messages the citizen sent to operators since ``since``."""
        ...

    async def anonymise(self, ticket_ids: Collection[int]) -> int:
        """Clear the text, file id and Telegram chat id of the tickets' messages (direction,
        kind and time stay); return how many messages still held any of them. One
        statement."""
        ...


class OperatorRepository(Protocol):
    """The operator roster, by Telegram user id."""

    async def get(self, telegram_id: int) -> Operator | None:
        """Return the roster entry of a Telegram user (active or not)."""
        ...

    async def list(self, *, include_inactive: bool = False) -> list[Operator]:
        """Return roster entries, oldest first."""
        ...

    async def add(self, operator: Operator) -> Operator:
        """Insert an entry and return it with its id (ValueError if the user is known)."""
        ...

    async def update(self, operator: Operator) -> None:
        """Persist all fields of an existing entry (LookupError if unknown)."""
        ...


class AssignmentRepository(Protocol):
    """Tickets handed to agencies (one row per ticket and agency)."""

    async def add(self, assignment: Assignment) -> Assignment:
        """Insert and return with its id (ValueError for a second row of the same pair)."""
        ...

    async def for_ticket(self, ticket_id: int) -> list[Assignment]:
        """Return a ticket's assignments in dispatch order."""
        ...

    async def for_tickets(self, ticket_ids: Collection[int]) -> list[Assignment]:
        """Return the assignments of many tickets, by ticket then dispatch order."""
        ...

    async def update(self, assignment: Assignment) -> None:
        """Persist the progress fields of an existing assignment (LookupError if unknown)."""
        ...

    async def get(self, ticket_id: int, agency_code: str) -> Assignment | None:
        """Return the assignment of one ticket and agency, or None."""
        ...

    async def ack_overdue(self, now: datetime) -> list[Assignment]:
        """Return assignments whose ``ack_due_at`` is at or before ``now``, not acknowledged,
        completed or declined, and not yet escalated; the earliest deadline first."""
        ...

    async def mark(self, assignment_id: int, marker: str, at: datetime) -> bool:
        """Compare-and-set of an escalation marker (``ack_reminded_at``, ``ack_escalated_at``):
        set it if still unset and the agency has not acknowledged; return whether this call
        did (of two processes sweeping at once exactly one wins)."""
        ...


class AgencyRequestRepository(Protocol):
    """Idempotency keys of signed requests from agency systems: a replay is refused."""

    async def remember(self, agency_code: str, key: str, at: datetime) -> bool:
        """Store the key; return False when this agency sent it before."""
        ...

    async def forget_before(self, at: datetime) -> int:
        """Drop keys received before ``at``; return how many."""
        ...


class AuditRepository(Protocol):
    """Staff actions that concern no ticket (roster changes), append-only."""

    async def add(self, entry: AuditEntry) -> None:
        """Append an entry."""
        ...

    async def recent(self, limit: int) -> list[AuditEntry]:
        """Return the latest entries, newest first."""
        ...


class OutboxRepository(Protocol):
    """The transactional outbox: rows committed with the change that caused them."""

    async def add(self, message: OutboxMessage) -> OutboxMessage:
        """Enqueue a delivery."""
        ...

    async def put(self, message: OutboxMessage) -> None:
        """Enqueue a delivery whose row the caller does not need back: the store may write
        it later in the unit of work, with its next write or its commit, but always before
        anything the unit reads could miss it, and never without the commit. A payload that
        is not JSON fails here (TypeError); a ticket that does not exist fails here or at the
        commit (ValueError)."""
        ...

    async def put_unless_waiting(self, message: OutboxMessage) -> None:
        """:meth:`put`, unless a row of the same kind, lane, rank and ``dedup_key`` (which
        ``message`` must have: ValueError) is waiting: unsent, unfailed and never attempted
        (one in flight may carry an older rendering). For coalesced kinds (the queue
        board): the check and the write are one statement, so a unit of work spends no read
        on it; whether the row was written is not told. Two such calls in one unit of work
        leave one row."""
        ...

    async def get(self, message_id: int) -> OutboxMessage | None:
        """Return one row by id, whatever its state."""
        ...

    async def due(self, now: datetime, limit: int, lane: str | None = None) -> list[OutboxMessage]:
        """Return unsent, unfailed rows whose next attempt is due, oldest first."""
        ...

    async def owed(self, limit: int, lane: str | None = None) -> list[OutboxMessage]:
        """Return unsent, unfailed rows, due or not, oldest first."""
        ...

    async def update(self, message: OutboxMessage) -> None:
        """Persist the delivery state: attempts, next attempt, sent/failed time, last error,
        result and the repeat mark (never the lease)."""
        ...

    async def pending_count(self) -> int:
        """Return how many deliveries are still owed."""
        ...

    async def owed_of_kind(self, kind: str) -> list[OutboxMessage]:
        """Return unsent, unfailed rows of one kind, oldest first (to coalesce updates)."""
        ...

    async def last_sent_of_kind(self, kind: str) -> OutboxMessage | None:
        """Return the row of one kind sent last (e.g. where the queue board was posted)."""
        ...

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
        """Lease up to ``limit`` due rows to ``owner`` until ``until`` and return them.

        Served in order of lane (emergency, agency, broadcast), then ``rank``, then id. A row
        is claimable when it is owed, due, and not leased (or its lease ended: then it comes
        back with ``repeat`` set, its first sending may have happened). Each claim counts an
        attempt. A ticket's row is not claimed while an earlier owed row of the same ticket
        and lane is leased by another owner, waits for a retry and is of a ``holding`` kind,
        or is due but not claimed by this very call (order per ticket, across processes).
        Rows of a ``skip`` kind are not claimed (and, being due, hold their ticket's later
        rows); with ``max_rank`` only rows of that rank or better are. On PostgreSQL rows
        being claimed by another transaction are skipped
        (``FOR UPDATE SKIP LOCKED``); the lease holds once the unit of work commits. Rows
        of a lane in ``skip_lanes`` are not claimed (the worker claims them with
        :meth:`claim_lane`).
        """
        ...

    async def claim_lane(
        self, owner: str, now: datetime, until: datetime, limit: int, lane: str
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due rows of ``lane`` that belong to no ticket to ``owner``
        until ``until``; return them in order of ``rank``, then id.

        For a lane of independent rows (the broadcast lane: one advisory copy per row), in
        one statement: no per-ticket order to keep. The rules of :meth:`claim` otherwise: a
        row is claimable when owed, due and not leased (an ended lease makes it a
        ``repeat``), each claim counts an attempt, and on PostgreSQL rows another
        transaction is claiming are skipped.
        """
        ...

    async def extend(self, owner: str, ids: Collection[int], until: datetime) -> int:
        """Prolong ``owner``'s leases on ``ids``; return how many it still holds."""
        ...

    async def release(self, owner: str, ids: Collection[int]) -> int:
        """End ``owner``'s leases on unsent ``ids`` it did not attempt (their claim's
        attempt is taken back); return how many were released."""
        ...

    async def finish(self, message: OutboxMessage, owner: str) -> bool:
        """Persist the outcome of ``owner``'s attempt (as ``update``) and end its lease.

        A failure is not written over a lease another owner took meanwhile (returns False);
        a success always is (the row went out)."""
        ...

    async def finish_sent(self, messages: Sequence[OutboxMessage], owner: str) -> None:
        """Persist many sent rows at once (as ``finish`` does for a success: the delivery
        state is written, ``owner``'s leases end); for bulk kinds, one statement a batch."""
        ...

    async def expire_leases(self, owner: str, now: datetime) -> int:
        """End every lease not held by ``owner`` at ``now``; return how many rows it freed.

        Only for a database one process uses (SQLite), at start: the previous process is
        dead, its rows need not wait for their leases (they come back as repeats)."""
        ...

    async def scrub_finished(self, ticket_ids: Collection[int]) -> int:
        """Empty the payload of the tickets' sent or failed rows and drop their result
        (texts, chat ids; ``ticket_id`` stays); owed rows are left to be sent. Return how many
        rows were scrubbed."""
        ...

    async def exists_since(self, dedup_key: str, since: datetime) -> bool:
        """Whether a row with ``dedup_key`` was enqueued at or after ``since``.

        On PostgreSQL the key stays locked until the unit of work ends, so two processes
        checking the same key one after the other never both find nothing and enqueue."""
        ...


class AdvisoryRepository(Protocol):
    """Advisories and one delivery row per recipient (whose copy is an outbox row)."""

    async def add(self, advisory: Advisory) -> Advisory:
        """Insert an advisory and return it with its id."""
        ...

    async def get(self, advisory_id: int) -> Advisory | None:
        """Return an advisory by id."""
        ...

    async def update(self, advisory: Advisory) -> None:
        """Persist all fields of an existing advisory (LookupError if unknown)."""
        ...

    async def sending(self) -> list[Advisory]:
        """Return the advisories being sent, oldest first."""
        ...

    async def with_source(self, source: str) -> list[Advisory]:
        """Return the advisories drafted from ``source`` (a CAP alert), oldest first."""
        ...

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
        """Write a delivery row and an owed outbox row of ``kind`` for each recipient not yet
        given one (payload ``advisory_id``, ``delivery_id``, ``chat_id``, ``language``;
        ``dedup_key`` ``advisory:<id>``); return how many were written."""
        ...

    async def record(self, delivery_id: int, outcome: DeliveryOutcome, at: datetime) -> None:
        """Store that one recipient's copy was refused for good or stopped."""
        ...

    async def progress(self, advisory_id: int) -> Progress:
        """Count the copies: sent and owed (their outbox rows), blocked, failed, cancelled."""
        ...

    async def forget_recipients(self, citizen_ids: Collection[int]) -> int:
        """Replace the chat id of the citizens' delivery rows by 0 (erasure); return how many
        rows still held it. One statement."""
        ...

    async def cancel_owed(self, advisory_id: int, now: datetime) -> int:
        """Fail the advisory's owed outbox rows no worker holds (``last_error`` "cancelled")
        and mark their copies cancelled; return how many stopped. A copy being sent at that
        moment still goes out."""
        ...


class ChatAliasRepository(Protocol):
    """Telegram chats that moved: a group that became a supergroup has a new id."""

    async def get(self, old_id: int) -> int | None:
        """Return the id the chat ``old_id`` moved to, or None."""
        ...

    async def add(self, old_id: int, new_id: int, at: datetime) -> None:
        """Remember (or replace) where ``old_id`` moved to."""
        ...


class UnitOfWork(Protocol):
    """One transaction over all repositories. Leaving without commit rolls back."""

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

    async def __aenter__(self) -> Self:
        """Begin the transaction."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed and release the connection."""
        ...

    async def commit(self) -> None:
        """Commit the transaction."""
        ...

    async def commit_with_next_ref(self, ticket: Ticket, day: date, prefix: str) -> str:
        """Write the ticket with the day's next reference as ``tickets.update_with_next_ref``
        does, as the unit's last write, and commit; return the reference. The day's counter
        is the one row every report of the city waits for: a backend may take it in the
        commit itself (PostgreSQL, a unit that has only read: one statement, in no
        transaction of its own, so the row is held for no round trip)."""
        ...

    async def commit_with_update(self, ticket: Ticket) -> None:
        """Write the ticket as ``tickets.update`` does (failing as it fails), as the unit's
        last write, and commit. A backend may send that write as the commit itself
        (PostgreSQL, a unit that has only read and holds nothing to write: one statement,
        atomic on its own, with no ``BEGIN`` or ``COMMIT`` round trip)."""
        ...

    async def rollback(self) -> None:
        """Roll the transaction back."""
        ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class Fault(StrEnum):
    """Why a delivery failed; the outbox worker decides from it what to do next."""

    RATE_LIMITED = "rate_limited"
    """429: wait ``retry_after`` and send the same call again."""
    TRANSIENT = "transient"
    """5xx, time-outs, network errors: back off (capped at 30 s on the emergency lane)."""
    DESTINATION = "destination"
    """403/400 on the operators' or an agency's chat (not found, bot not a member): a
    configuration fault, retried with a short cap while admins are alerted."""
    RECIPIENT_GONE = "recipient_gone"
    """A citizen blocked the bot (403): final for that row."""
    REJECTED = "rejected"
    """Telegram refused this very message (400 to a citizen, unknown kind): retrying the same
    call cannot help."""


class DeliveryError(Exception):
    """A delivery failed, with the ``fault`` that decides what happens next."""

    def __init__(
        self,
        reason: str,
        *,
        fault: Fault = Fault.TRANSIENT,
        retry_after: float | None = None,
        migrated_to: int | None = None,
        chat_id: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fault = fault
        self.retry_after = retry_after
        self.migrated_to = migrated_to
        """The new id of a group that became a supergroup (Telegram's ``migrate_to_chat_id``)."""
        self.chat_id = chat_id
        """The chat the failed call went to (a destination fault names it to the admins)."""

    @property
    def permanent(self) -> bool:
        """Whether sending the same row again cannot help."""
        return self.fault in (Fault.RECIPIENT_GONE, Fault.REJECTED)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What the destination answered: stored on the outbox row, and by a kind's ``record``
    hook wherever the services need it (a ticket's topic id, its card's message id)."""

    chat_id: int | None = None
    message_id: int | None = None
    thread_id: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The JSON form kept on the outbox row."""
        return {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            **({"extra": self.extra} if self.extra else {}),
        }


class Deliverer(Protocol):
    """Sends one outbox message to its destination (Telegram, webhook…)."""

    async def deliver(self, message: OutboxMessage) -> DeliveryResult | None:
        """Deliver and return what the destination answered, or raise DeliveryError."""
        ...
