"""SQLAlchemy 2 declarative models: the database schema of Siaga112.

These classes never leave ``storage/``: repositories map them to and from the plain domain
objects of :mod:`bot.domain.model`. The schema is created and changed only by the Alembic
migrations in ``storage/migrations`` (a test proves the two agree).

Portable across SQLite and PostgreSQL: JSON columns use ``sa.JSON``, enumerations are stored
as their string values (no PostgreSQL enum types to migrate), and every timestamp is an aware
UTC ``datetime`` on the Python side (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC, always read back as aware UTC.

    PostgreSQL gets ``timestamp with time zone``; SQLite, which has no time zones, gets the
    naive UTC wall time (so stored strings sort chronologically). Naive datetimes are refused:
    a timestamp without a zone is a bug waiting for a response-time report.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive UTC on SQLite) or refuse a naive value."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: storage keeps aware UTC times only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the driver returned."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: Surrogate keys: BIGINT on PostgreSQL, ``INTEGER PRIMARY KEY`` (the rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# Reusable column types (SQLAlchemy 2.0 "Annotated" declarative style).
IntPK = Annotated[int, mapped_column(BigId, primary_key=True)]
TelegramId = Annotated[int, mapped_column(BigInteger)]
Code = Annotated[str, mapped_column(String(32))]
"""Enumeration values, references, language tags, area codes: short ASCII we control."""
Label = Annotated[str, mapped_column(String(64))]
"""Short identifiers and names we control (event kinds, actors, usernames, outbox kinds)."""
AreaName = Annotated[str, mapped_column(String(128))]
FreeText = Annotated[str, mapped_column(Text)]
"""Anything a person typed or a service returned: never length-limited by the database."""
Phone = Annotated[str, mapped_column(String(20))]
CreatedAt = Annotated[datetime, mapped_column(server_default=func.now())]
"""Taken from the domain object (the injected clock); the database clock only fills gaps."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable names for migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute as is
        datetime: UTCDateTime(),
        bool: Boolean(),
        float: Double(),
        int: Integer(),
        str: Text(),
        dict[str, Any]: JSON(),
        list[dict[str, Any]]: JSON(),
    }


class CitizenRow(Base):
    """A person talking to the bot, known by their Telegram user id."""

    __tablename__ = "citizens"

    id: Mapped[IntPK]
    telegram_id: Mapped[TelegramId] = mapped_column(unique=True)
    name: Mapped[FreeText | None]
    username: Mapped[Label | None]
    phone_e164: Mapped[Phone | None]
    phone_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    language: Mapped[Code]
    strikes: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    blocked_bot: Mapped[bool] = mapped_column(default=False, server_default=false())
    last_kelurahan_code: Mapped[Code | None]
    """Unused (from 0001); the area of the last report is read from the tickets."""
    # Advisories (migration 0005): consent with its time; no kecamatan = the whole city.
    subscribed: Mapped[bool] = mapped_column(default=False, server_default=false())
    subscription_kecamatan_code: Mapped[Code | None]
    subscribed_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[CreatedAt]
    # Personal data (migration 0006): erasure asked for while a ticket was open; done.
    erase_requested_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]


class TicketRow(Base):
    """A report: a draft while the citizen answers, a ticket after submit.

    The incident location is the ticket's location, so its columns carry no prefix (``lat``,
    ``kecamatan_code``…); where the reporter stands, when different, uses ``reporter_``.
    A location is present when its ``lat`` is; its area when its ``kelurahan_code`` is.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_citizen_id_status", "citizen_id", "status"),
        Index("ix_tickets_status_updated_at", "status", "updated_at"),
        Index("ix_tickets_status_closed_at", "status", "closed_at"),
        Index(
            "ix_tickets_operator_chat_id_operator_thread_id",
            "operator_chat_id",
            "operator_thread_id",
        ),
        Index(
            "ix_tickets_operator_chat_id_operator_card_message_id",
            "operator_chat_id",
            "operator_card_message_id",
        ),
        # At most one draft per citizen, even when two updates race to start one.
        Index(
            "uq_tickets_citizen_id_draft",
            "citizen_id",
            unique=True,
            sqlite_where=text("status = 'draft'"),
            postgresql_where=text("status = 'draft'"),
        ),
    )

    id: Mapped[IntPK]
    ref: Mapped[Code | None] = mapped_column(unique=True)
    citizen_id: Mapped[int] = mapped_column(BigId, ForeignKey("citizens.id"))
    chat_id: Mapped[TelegramId]
    status: Mapped[Code]
    step: Mapped[Code | None]
    category_group: Mapped[Code | None]
    category: Mapped[Code | None]
    priority: Mapped[int]
    disposition: Mapped[Code | None]
    language: Mapped[Code]
    caller_name: Mapped[FreeText | None]
    caller_phone_e164: Mapped[Phone | None]
    caller_phone_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    details: Mapped[FreeText | None]
    persons_affected: Mapped[FreeText | None]
    silent: Mapped[bool] = mapped_column(default=False, server_default=false())
    location_elsewhere: Mapped[bool] = mapped_column(default=False, server_default=false())
    location_note: Mapped[FreeText | None]
    """What the citizen typed about the place when no point could be found for it."""
    unresolved_address: Mapped[FreeText | None]
    reviewed: Mapped[bool] = mapped_column(default=False, server_default=false())

    # Incident location.
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    accuracy_m: Mapped[float | None]
    source: Mapped[Code | None]
    captured_at: Mapped[datetime | None]
    address_text: Mapped[FreeText | None]
    display_address: Mapped[FreeText | None]
    kelurahan_code: Mapped[Code | None]
    kelurahan_name: Mapped[AreaName | None]
    kecamatan_code: Mapped[Code | None]
    kecamatan_name: Mapped[AreaName | None]
    area_inside: Mapped[bool | None]
    area_distance_m: Mapped[float | None]
    confidence: Mapped[float | None]
    live_until: Mapped[datetime | None]

    # Reporter location (where the citizen is, when the incident is elsewhere).
    reporter_lat: Mapped[float | None]
    reporter_lon: Mapped[float | None]
    reporter_accuracy_m: Mapped[float | None]
    reporter_source: Mapped[Code | None]
    reporter_captured_at: Mapped[datetime | None]
    reporter_address_text: Mapped[FreeText | None]
    reporter_display_address: Mapped[FreeText | None]
    reporter_kelurahan_code: Mapped[Code | None]
    reporter_kelurahan_name: Mapped[AreaName | None]
    reporter_kecamatan_code: Mapped[Code | None]
    reporter_kecamatan_name: Mapped[AreaName | None]
    reporter_area_inside: Mapped[bool | None]
    reporter_area_distance_m: Mapped[float | None]
    reporter_confidence: Mapped[float | None]
    reporter_live_until: Mapped[datetime | None]

    # A location awaiting the citizen's confirmation (geocoded, shown on a pin).
    pending_location: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    media: Mapped[list[dict[str, Any]]] = mapped_column(default=list)

    created_at: Mapped[CreatedAt]
    updated_at: Mapped[CreatedAt]
    submitted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    live_notified_at: Mapped[datetime | None]
    """When operators were last shown a live-location update (one a minute at most)."""

    # The operator console (migration 0003).
    queued_at: Mapped[datetime | None]
    operator_chat_id: Mapped[TelegramId | None]
    operator_thread_id: Mapped[TelegramId | None]
    operator_card_message_id: Mapped[TelegramId | None]
    claimed_by: Mapped[TelegramId | None]
    claimed_by_name: Mapped[FreeText | None]
    claimed_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    en_route_at: Mapped[datetime | None]
    eta_minutes: Mapped[int | None]
    on_scene_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    last_operator_message_at: Mapped[datetime | None]
    sla_realerted_at: Mapped[datetime | None]
    sla_escalated_at: Mapped[datetime | None]
    reopened_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    version: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    """Bumped by every write; compare-and-set writes (claims, SLA markers) check it."""
    anonymised_at: Mapped[datetime | None]
    """When the personal fields were removed (migration 0006; retention or erasure)."""


class TicketEventRow(Base):
    """One row of a ticket's timeline (append-only)."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id_at", "ticket_id", "at"),)

    id: Mapped[IntPK]
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id"))
    at: Mapped[datetime]
    actor: Mapped[Label]
    kind: Mapped[Label]
    from_status: Mapped[Code | None]
    to_status: Mapped[Code | None]
    note: Mapped[FreeText | None]


class MessageRow(Base):
    """The relay log: one message of a ticket's conversation, either way."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_ticket_id_at", "ticket_id", "at"),
        Index("ix_messages_citizen_id_direction_at", "citizen_id", "direction", "at"),
    )

    id: Mapped[IntPK]
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id"))
    # Denormalised from the ticket so flood control counts without a join.
    citizen_id: Mapped[int] = mapped_column(BigId, ForeignKey("citizens.id"))
    direction: Mapped[Code]
    at: Mapped[datetime]
    kind: Mapped[Code]
    text: Mapped[FreeText | None]
    file_id: Mapped[FreeText | None]
    telegram_chat_id: Mapped[TelegramId | None]
    telegram_message_id: Mapped[TelegramId | None]
    edited: Mapped[bool] = mapped_column(default=False, server_default=false())


class AssignmentRow(Base):
    """A ticket handed to one agency, with that agency's progress (one row per pair)."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("ticket_id", "agency_code"),
        Index("ix_assignments_ack_due_at", "ack_due_at"),
    )

    id: Mapped[IntPK]
    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id"))
    agency_code: Mapped[Code]
    channel: Mapped[Code]
    by: Mapped[Label]
    dispatched_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    en_route_at: Mapped[datetime | None]
    eta_minutes: Mapped[int | None]
    on_scene_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    declined_at: Mapped[datetime | None]
    decline_reason: Mapped[Code | None]
    ack_due_at: Mapped[datetime | None]
    ack_reminded_at: Mapped[datetime | None]
    ack_escalated_at: Mapped[datetime | None]
    card_chat_id: Mapped[TelegramId | None]
    card_message_id: Mapped[TelegramId | None]


class AgencyRequestRow(Base):
    """A signed request an agency system sent (its idempotency key): a replay is refused."""

    __tablename__ = "agency_requests"
    __table_args__ = (
        UniqueConstraint("agency_code", "request_key"),
        Index("ix_agency_requests_received_at", "received_at"),
    )

    id: Mapped[IntPK]
    agency_code: Mapped[Code]
    request_key: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime]


class OperatorRow(Base):
    """A member of the operator roster (removed members stay, inactive, for the record)."""

    __tablename__ = "operators"

    id: Mapped[IntPK]
    telegram_id: Mapped[TelegramId] = mapped_column(unique=True)
    display_name: Mapped[FreeText | None]
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    added_by: Mapped[Label]
    added_at: Mapped[datetime]


class AuditLogRow(Base):
    """Staff actions that concern no ticket (roster changes); ticket actions are events."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[IntPK]
    at: Mapped[datetime]
    actor: Mapped[Label]
    kind: Mapped[Label]
    subject: Mapped[Label]
    note: Mapped[FreeText | None]


class OutboxRow(Base):
    """A delivery owed to the outside world, committed with the change that caused it.

    A worker leases the rows it sends (``claimed_by`` until ``claimed_until``), so two
    processes on one PostgreSQL database never send a row twice while both live.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_sent_at_failed_at_next_attempt_at", "sent_at", "failed_at", "next_attempt_at"
        ),
        # Earlier owed rows of a ticket and lane (the claim keeps each ticket's order).
        Index("ix_outbox_ticket_id_lane_id", "ticket_id", "lane", "id"),
        Index("ix_outbox_dedup_key_created_at", "dedup_key", "created_at"),
        # Owed rows of a lane in claim order (a broadcast's claim reads the first 64).
        Index(
            "ix_outbox_owed_lane_rank_id",
            "lane",
            "rank",
            "id",
            sqlite_where=text("sent_at IS NULL AND failed_at IS NULL"),
            postgresql_where=text("sent_at IS NULL AND failed_at IS NULL"),
        ),
    )

    id: Mapped[IntPK]
    kind: Mapped[Label]
    payload: Mapped[dict[str, Any]]
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tickets.id"))
    lane: Mapped[Code]
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_error: Mapped[FreeText | None]
    rank: Mapped[int] = mapped_column(default=3, server_default=text("3"))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    dedup_key: Mapped[str | None] = mapped_column(String(128))
    claimed_by: Mapped[Label | None]
    claimed_until: Mapped[datetime | None]
    repeat: Mapped[bool] = mapped_column(default=False, server_default=false())


class AdvisoryRow(Base):
    """An advisory composed by an admin (or drafted from a CAP alert) and its sending."""

    __tablename__ = "advisories"
    __table_args__ = (Index("ix_advisories_status_created_at", "status", "created_at"),)

    id: Mapped[IntPK]
    created_by: Mapped[TelegramId]
    created_at: Mapped[datetime]
    status: Mapped[Code]
    recipients: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # Declared after ``recipients``: from here on ``text`` names the column, not sql's text().
    text: Mapped[FreeText]
    photo_file_id: Mapped[FreeText | None]
    target: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    source: Mapped[FreeText | None]
    confirmed_by: Mapped[TelegramId | None]
    confirmed_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    progress_chat_id: Mapped[TelegramId | None]
    progress_message_id: Mapped[TelegramId | None]


class AdvisoryDeliveryRow(Base):
    """One recipient of an advisory (its outbox row carries ``delivery_id``)."""

    __tablename__ = "advisory_deliveries"
    __table_args__ = (
        UniqueConstraint("advisory_id", "citizen_id"),
        Index("ix_advisory_deliveries_advisory_id_outcome", "advisory_id", "outcome"),
    )

    id: Mapped[IntPK]
    advisory_id: Mapped[int] = mapped_column(BigId, ForeignKey("advisories.id"))
    citizen_id: Mapped[int] = mapped_column(BigId, ForeignKey("citizens.id"))
    chat_id: Mapped[TelegramId]
    outcome: Mapped[Code | None]
    """None while owed or once sent (its outbox row tells which); else why not."""
    at: Mapped[datetime | None]


class ChatAliasRow(Base):
    """A chat that moved (a group upgraded to a supergroup gets a new id)."""

    __tablename__ = "chat_aliases"

    old_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    new_id: Mapped[TelegramId]
    created_at: Mapped[datetime]


class RefCounterRow(Base):
    """The last ticket reference number handed out per day (numbers are never reused)."""

    __tablename__ = "ref_counters"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    """ISO date, ``YYYY-MM-DD``."""
    last_value: Mapped[int]


class GeocodeCacheRow(Base):
    """Geocoder answers by normalised query, kept until ``expires_at``."""

    __tablename__ = "geocode_cache"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    payload: Mapped[dict[str, Any]]
    expires_at: Mapped[datetime]
    created_at: Mapped[CreatedAt]
