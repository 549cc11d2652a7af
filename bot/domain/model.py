"""Plain domain objects of the call center: no Telegram, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Category(StrEnum):
    """Emergency categories (codes are the project's convention, see DOMAIN.md)."""

    MED = "MED"
    FIRE = "FIRE"
    TRAF = "TRAF"
    CRIME = "CRIME"
    KDRT = "KDRT"
    ORDER = "ORDER"
    FLOOD = "FLOOD"
    SLIDE = "SLIDE"
    TREE = "TREE"
    SAR = "SAR"
    UTIL = "UTIL"
    ANIMAL = "ANIMAL"
    SOCIAL = "SOCIAL"
    OTHER = "OTHER"


class CategoryGroup(StrEnum):
    """The top-level menu a citizen taps (at most nine buttons)."""

    MEDICAL = "MEDICAL"
    FIRE = "FIRE"
    ACCIDENT = "ACCIDENT"
    CRIME = "CRIME"
    DISASTER = "DISASTER"
    UTILITY = "UTILITY"
    SOCIAL = "SOCIAL"
    OTHER = "OTHER"


#: Group -> the categories it offers. A group with one category needs no second tap.
CATEGORY_GROUPS: dict[CategoryGroup, tuple[Category, ...]] = {
    CategoryGroup.MEDICAL: (Category.MED,),
    CategoryGroup.FIRE: (Category.FIRE,),
    CategoryGroup.ACCIDENT: (Category.TRAF,),
    CategoryGroup.CRIME: (Category.CRIME, Category.KDRT, Category.ORDER),
    CategoryGroup.DISASTER: (Category.FLOOD, Category.SLIDE, Category.TREE, Category.SAR),
    CategoryGroup.UTILITY: (Category.UTIL, Category.ANIMAL),
    CategoryGroup.SOCIAL: (Category.SOCIAL,),
    CategoryGroup.OTHER: (Category.OTHER,),
}


class TicketStatus(StrEnum):
    """Lifecycle of a ticket (ARCHITECTURE.md 2.2)."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    CLAIMED = "claimed"
    DISPATCHED = "dispatched"
    ACKNOWLEDGED = "acknowledged"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"

    @property
    def is_open(self) -> bool:
        """Whether the ticket still belongs to an ongoing incident (after submit)."""
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset(
    {
        TicketStatus.SUBMITTED,
        TicketStatus.CLAIMED,
        TicketStatus.DISPATCHED,
        TicketStatus.ACKNOWLEDGED,
        TicketStatus.EN_ROUTE,
        TicketStatus.ON_SCENE,
    }
)


class Disposition(StrEnum):
    """Operator dispositions (Indonesian 112 practice)."""

    EMERGENCY = "emergency"
    INFO = "info"
    PRANK = "prank"
    GHOST = "ghost"
    DUPLICATE = "duplicate"
    TEST = "test"


EXERCISE_MARK = "🧪 LATIHAN / EXERCISE"
"""Shown on everything about an exercise ticket (disposition ``test`` from its creation, as in
``siaga112 demo``), in both languages at once so it is never mistaken for a real emergency."""


def is_exercise(ticket: Ticket) -> bool:
    """Whether the ticket is an exercise: it carries the disposition ``test``."""
    return ticket.disposition is Disposition.TEST


class IntakeStep(StrEnum):
    """Named states of the citizen intake conversation (stored on the draft)."""

    CATEGORY = "category"
    SUBCATEGORY = "subcategory"
    GUESS = "guess"
    """A report started from one message: the guessed category (and place) waits for a tap."""
    LOCATION = "location"
    LOCATION_CONFIRM = "location_confirm"
    LOCATION_SUGGEST = "location_suggest"
    """The typed place was read with typos: "did you mean …?" waits for a tap."""
    INCIDENT_LOCATION = "incident_location"
    PHONE = "phone"
    NAME = "name"
    DETAILS = "details"
    CONFIRM = "confirm"


class LocationSource(StrEnum):
    """Where a location came from; operators weigh it accordingly."""

    GPS = "gps"
    LIVE = "live"
    PIN = "pin"
    GEOCODED = "geocoded"
    CENTROID = "centroid"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Area:
    """Kelurahan and kecamatan of a point, derived locally from the boundary polygons."""

    kelurahan_code: str
    kelurahan_name: str
    kecamatan_code: str
    kecamatan_name: str
    inside: bool = True
    distance_m: float = 0.0


@dataclass(frozen=True, slots=True)
class GeocodeCandidate:
    """One answer of a geocoder for a typed address, best first."""

    lat: float
    lon: float
    display_address: str
    confidence: float
    source: str
    area: Area | None = None
    rt_rw: str | None = None
    fuzzy: bool = False
    """True when the answer matched a name with typos ("Bandungan" read as Bendungan): a guess
    to offer ("did you mean …?"), never to accept without the citizen's tap."""


@dataclass(frozen=True, slots=True)
class Location:
    """A located point with everything an operator needs to judge it."""

    lat: float
    lon: float
    source: LocationSource
    captured_at: datetime
    accuracy_m: float | None = None
    address_text: str | None = None
    display_address: str | None = None
    area: Area | None = None
    confidence: float | None = None
    live_until: datetime | None = None


@dataclass(slots=True)
class Citizen:
    """A person who talks to the bot, known by an opaque Telegram user id."""

    telegram_id: int
    language: str
    name: str | None = None
    username: str | None = None
    phone_e164: str | None = None
    phone_verified: bool = False
    strikes: int = 0
    blocked_bot: bool = False
    subscribed: bool = False
    """Whether the citizen asked for advisories (consent, given at ``subscribed_at``)."""
    subscription_kecamatan_code: str | None = None
    """The kecamatan they subscribed to; None with ``subscribed``: the whole city."""
    subscribed_at: datetime | None = None
    erase_requested_at: datetime | None = None
    """The citizen asked for erasure while a ticket was open: it is anonymised at its close."""
    erased_at: datetime | None = None
    """The record holds no personal data any more (erasure or retention)."""
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class MediaKind(StrEnum):
    """Media a citizen can attach to a report."""

    PHOTO = "photo"
    VOICE = "voice"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class Media:
    """A Telegram file attached to a report (kept by file id, never downloaded)."""

    kind: MediaKind
    file_id: str
    caption: str | None = None


NO_PHONE = ""
"""The caller's number when they skipped the phone step: no callback number (chat only)."""


@dataclass(slots=True)
class Ticket:
    """A report: a draft while the citizen answers, a ticket after submit."""

    citizen_id: int
    chat_id: int
    status: TicketStatus
    created_at: datetime
    updated_at: datetime
    step: IntakeStep | None = IntakeStep.CATEGORY
    ref: str | None = None
    category_group: CategoryGroup | None = None
    category: Category | None = None
    priority: int = 3
    disposition: Disposition | None = None
    incident_location: Location | None = None
    reporter_location: Location | None = None
    pending_location: Location | None = None
    location_elsewhere: bool = False
    location_note: str | None = None
    unresolved_address: str | None = None
    reviewed: bool = False
    caller_name: str | None = None
    caller_phone_e164: str | None = None
    caller_phone_verified: bool = False
    language: str = "id"
    details: str | None = None
    persons_affected: str | None = None
    silent: bool = False
    media: list[Media] = field(default_factory=list)
    submitted_at: datetime | None = None
    closed_at: datetime | None = None
    live_notified_at: datetime | None = None
    # -- the operator console (see bot/domain/lifecycle.py for who sets what) --
    queued_at: datetime | None = None
    """When the ticket last entered the queue (submit, release, reopen): SLA timers start here."""
    operator_chat_id: int | None = None
    operator_thread_id: int | None = None
    """The forum topic of the ticket (None: not created yet, or the chat is not a forum)."""
    operator_card_message_id: int | None = None
    claimed_by: int | None = None
    """The Telegram user id of the operator who holds the ticket."""
    claimed_by_name: str | None = None
    claimed_at: datetime | None = None
    dispatched_at: datetime | None = None
    acknowledged_at: datetime | None = None
    en_route_at: datetime | None = None
    eta_minutes: int | None = None
    on_scene_at: datetime | None = None
    resolved_at: datetime | None = None
    last_operator_message_at: datetime | None = None
    sla_realerted_at: datetime | None = None
    sla_escalated_at: datetime | None = None
    reopened_count: int = 0
    version: int = 0
    """How many times the stored row was written; compare-and-set writes check it."""
    anonymised_at: datetime | None = None
    """When the personal fields were removed (retention purge or the citizen's erasure)."""
    id: int | None = None

    @property
    def is_draft(self) -> bool:
        """Whether the citizen is still filling the report in."""
        return self.status is TicketStatus.DRAFT

    @property
    def pinned_location(self) -> Location | None:
        """The point the operators' pin shows: the incident, else where the caller is, else
        (an abandoned draft) the point the citizen shared but never confirmed."""
        return self.incident_location or self.reporter_location or self.pending_location

    @property
    def phone_skipped(self) -> bool:
        """Whether the caller chose to give no callback number."""
        return self.caller_phone_e164 == NO_PHONE


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One row of a ticket's timeline: who did what, when."""

    ticket_id: int
    at: datetime
    actor: str
    kind: str
    from_status: TicketStatus | None = None
    to_status: TicketStatus | None = None
    note: str | None = None
    id: int | None = None


class Direction(StrEnum):
    """Which way a relayed message went."""

    FROM_CITIZEN = "in"
    TO_CITIZEN = "out"


@dataclass(frozen=True, slots=True)
class RelayMessage:
    """A message of the ticket's conversation log (relay both ways)."""

    ticket_id: int
    direction: Direction
    at: datetime
    kind: str
    text: str | None = None
    file_id: str | None = None
    telegram_chat_id: int | None = None
    telegram_message_id: int | None = None
    edited: bool = False
    """An edit of a message relayed earlier (relayed again as a marked copy)."""
    id: int | None = None


class AssignmentChannel(StrEnum):
    """How an agency was handed a ticket."""

    PHONE = "phone"
    TELEGRAM = "telegram"
    WEBHOOK = "webhook"


@dataclass(slots=True)
class Assignment:
    """A ticket handed to one agency, with that agency's progress."""

    ticket_id: int
    agency_code: str
    dispatched_at: datetime
    channel: AssignmentChannel
    by: str
    """Who dispatched it (an actor string like ``operator:42``)."""
    acknowledged_at: datetime | None = None
    en_route_at: datetime | None = None
    eta_minutes: int | None = None
    on_scene_at: datetime | None = None
    completed_at: datetime | None = None
    declined_at: datetime | None = None
    """When the agency answered «cannot handle» (``decline_reason`` says why)."""
    decline_reason: str | None = None
    ack_due_at: datetime | None = None
    """When the agency must have acknowledged (None: no deadline, e.g. called by phone)."""
    ack_reminded_at: datetime | None = None
    """When the agency was notified again because the deadline passed."""
    ack_escalated_at: datetime | None = None
    """When the ticket's topic was alerted that the agency still has not acknowledged."""
    card_chat_id: int | None = None
    """Where the agency's Telegram card is (stored from the delivery result)."""
    card_message_id: int | None = None
    id: int | None = None

    @property
    def closed(self) -> bool:
        """Whether the agency is done with the ticket (completed or declined)."""
        return self.completed_at is not None or self.declined_at is not None


@dataclass(slots=True)
class Operator:
    """A member of the operator roster, known by their Telegram user id."""

    telegram_id: int
    display_name: str | None
    is_admin: bool
    active: bool
    added_by: str
    """An actor string: ``settings`` for seeded members, ``operator:<id>`` otherwise."""
    added_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A staff action that concerns no ticket (roster changes): who, what, on whom, when."""

    at: datetime
    actor: str
    kind: str
    subject: str
    note: str | None = None
    id: int | None = None


@dataclass(slots=True)
class OutboxMessage:
    """A delivery owed to the outside world, committed with the change that caused it."""

    kind: str
    payload: dict[str, object]
    created_at: datetime
    next_attempt_at: datetime
    attempts: int = 0
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str | None = None
    ticket_id: int | None = None
    """None for rows of no ticket (admin alerts, advisories)."""
    lane: str = "emergency"
    rank: int = 3
    """Order within a lane, lower first: the ticket's priority (1..3) when it was enqueued."""
    result: dict[str, object] | None = None
    """What the destination answered (``DeliveryResult.to_json``), once sent."""
    dedup_key: str | None = None
    """Marks rows that must not be enqueued twice within a while (admin alerts)."""
    claimed_by: str | None = None
    """The worker (process) that holds the lease on this row, while it sends it."""
    claimed_until: datetime | None = None
    """When that lease ends: a dead worker's rows are claimed again after it."""
    repeat: bool = False
    """Claimed again after its owner died with the outcome unknown: it may already have
    reached its destination, so the copy is marked as a possible duplicate."""
    id: int | None = None
