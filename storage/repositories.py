"""SQL implementations of the repository ports of :mod:`bot.services.ports`.

Every method takes and returns the plain domain objects of :mod:`bot.domain.model`; the ORM
rows stay here. Repositories never commit: the unit of work that owns the session does.

The hot path (every statement of a citizen's update, and the outbox's reads and writes
around each card) runs prebuilt Core statements that return plain rows: no ORM object is
loaded or flushed there, and a ticket read in the unit of work is written back by its
changed columns only. The rest uses the ORM where it reads better.

Errors a caller can act on are plain Python exceptions, worded without personal data:
``ValueError`` when a write breaks a constraint (a second citizen with the same Telegram id,
a second draft for one citizen, a duplicate reference, a dangling id) and ``LookupError``
when updating a row that does not exist. Inserts that may race (a citizen's first message,
a new draft) leave the unit of work usable after such a ``ValueError``: they skip a row that
breaks a unique constraint (``ON CONFLICT DO NOTHING``) rather than fail. After any other
constraint error roll the unit of work back.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Collection, Sequence
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Integer,
    Select,
    String,
    Table,
    Text,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import NamedFromClause

from bot.domain.advisory import (
    Advisory,
    AdvisoryStatus,
    DeliveryOutcome,
    Progress,
    Recipient,
    Target,
)
from bot.domain.model import (
    OPEN_STATUSES,
    Area,
    Assignment,
    AssignmentChannel,
    AuditEntry,
    Category,
    CategoryGroup,
    Citizen,
    Direction,
    Disposition,
    IntakeStep,
    Location,
    LocationSource,
    Operator,
    OutboxMessage,
    RelayMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.domain.rules import format_ref, ref_head
from bot.services.outbox_kinds import KINDS, LANE_ORDER
from bot.services.ports import QueueLine
from storage.codec import (
    ensure_utc,
    ensure_utc_or_none,
    location_from_json,
    location_to_json,
    media_from_json,
    media_to_json,
)
from storage.connection_unit import READ_ALONE
from storage.db import dialect_insert
from storage.models import (
    AdvisoryDeliveryRow,
    AdvisoryRow,
    AgencyRequestRow,
    AssignmentRow,
    AuditLogRow,
    ChatAliasRow,
    CitizenRow,
    MessageRow,
    OperatorRow,
    OutboxRow,
    RefCounterRow,
    TicketEventRow,
    TicketRow,
)
from storage.unit import Unit, Unless, constraint_error, guarded_row

_CITIZENS = cast(Table, CitizenRow.__table__)
_TICKETS = cast(Table, TicketRow.__table__)
_EVENTS = cast(Table, TicketEventRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)
_ASSIGNMENTS = cast(Table, AssignmentRow.__table__)


def _bound(table: Table, names: Collection[str]) -> dict[Any, Any]:
    """The VALUES / SET of a prebuilt statement: each column bound as ``v_<name>``, with
    its type (what :func:`_bound_values` fills in)."""
    return {table.c[name]: bindparam(f"v_{name}", type_=table.c[name].type) for name in names}


def _bound_values(columns: dict[str, Any]) -> dict[str, Any]:
    """Values by column name as the parameters of :func:`_bound` columns."""
    return {f"v_{name}": value for name, value in columns.items()}


def _fields(row: Any) -> SimpleNamespace:
    """A result row as an object with an attribute per column (what the ``_…_from_row``
    functions read, as they read ORM rows)."""
    return SimpleNamespace(**row._mapping)


@functools.cache
def _insert_statement(table: Table, names: tuple[str, ...], guarded_on: str = "") -> Insert:
    """The ``INSERT`` of these columns (:func:`_bound`) returning every column, built once
    per table and set of columns (building a statement and its cache key costs more than
    running it). ``guarded_on`` (a dialect's name): ``ON CONFLICT DO NOTHING``, so a row
    that breaks a unique constraint or index is skipped and returns nothing instead of
    failing the statement."""
    if not guarded_on:
        return insert(table).values(_bound(table, names)).returning(*table.c)
    guarded = dialect_insert(guarded_on, table).values(_bound(table, names))
    return guarded.on_conflict_do_nothing().returning(*table.c)


@functools.cache
def _guarded_insert(table: Table, names: tuple[str, ...], unless: Unless) -> Insert:
    """``INSERT … SELECT`` of these columns (:func:`_bound`) unless a row ``unless`` names
    exists (:func:`storage.unit.guarded_row`), nothing returned; built once."""
    binds = list(_bound(table, names).values())
    columns = [table.c[name] for name in names]
    row = guarded_row(table, names, binds, unless)
    return insert(table).from_select(columns, row, include_defaults=False)


class _SqlRepository:
    """Shared plumbing: the unit of work's session and constraint-error translation."""

    _table: str

    def __init__(self, session: AsyncSession | Unit) -> None:
        """``session``: the unit of work's session, or its unit (a
        :class:`~storage.sqlite_direct.DirectUnit` on SQLite, which sends prebuilt statements
        straight to sqlite3; a :class:`~storage.connection_unit.ConnectionUnit` on
        PostgreSQL, which runs them on its connection): a unit makes the session only when an
        ORM call needs it."""
        self._source = session
        self._info = session.info

    @property
    def _session(self) -> AsyncSession:
        """The unit of work's session (on a unit, made now if it was not: only ORM calls ask
        for it)."""
        source = self._source
        return source if isinstance(source, AsyncSession) else source.session()

    @property
    def _unit(self) -> Unit | None:
        source = self._source
        return None if isinstance(source, AsyncSession) else source

    @property
    def _loaded(self) -> AsyncSession | None:
        """The session if it exists (None: no ORM object was loaded or added)."""
        source = self._source
        return source if isinstance(source, AsyncSession) else source.loaded

    @property
    def _dialect(self) -> str:
        source = self._source
        if isinstance(source, AsyncSession):
            return source.get_bind().dialect.name
        return source.dialect

    async def _flush(self) -> None:
        session = self._loaded
        if session is None or not (session.new or session.deleted or session.dirty):
            return  # no ORM object to write (the hot path writes by Core statements)
        try:
            await session.flush()
        except IntegrityError as err:
            raise constraint_error(err, self._table) from None

    async def _execute_core(self, statement: Any, params: Any) -> Any:
        """Run a prebuilt Core statement in this unit of work: the session's pending rows
        are flushed first (a Core statement does not flush them), constraint errors
        translated. In a unit of work a plain statement takes the unit's way: straight to
        ``sqlite3`` on SQLite (:mod:`storage.sqlite_direct`), on the unit's connection on
        PostgreSQL (:mod:`storage.connection_unit`), in the same transaction, without a
        session."""
        await self._flush()
        try:
            if (unit := self._unit) is not None:
                result = await unit.execute(statement, params)
                if result is not None:
                    return result
            return await self._session.execute(statement, params)
        except IntegrityError as err:
            raise constraint_error(err, self._table) from None

    def _expire_loaded(self, model: type[Any], ids: Collection[int | None]) -> None:
        """Copies of these rows in this session's identity map are read anew next time
        (a Core statement wrote the rows behind the session's back)."""
        session = self._loaded
        if session is None or not session.identity_map:  # the hot path loads no ORM object
            return
        for row_id in ids:
            loaded = session.identity_map.get(session.identity_key(model, row_id))
            if loaded is not None:
                session.expire(loaded)

    async def _insert(
        self, table: Table, columns: dict[str, Any], *, guarded: bool = False
    ) -> SimpleNamespace:
        """One prebuilt ``INSERT … RETURNING`` (:func:`_insert_statement`) of these columns,
        the stored row back by column name: no ORM object is made and flushed (the hot
        path's inserts: citizens, tickets, events, outbox rows). ``guarded``: a row that
        breaks a unique constraint (a racing writer's citizen or draft) is refused with
        ``ValueError`` and leaves the transaction usable, in one statement on both
        databases: ``ON CONFLICT DO NOTHING`` returns no row instead of failing (PostgreSQL
        would abort the whole transaction at a failed statement; a SAVEPOINT around it cost
        two more round trips)."""
        statement = _insert_statement(table, tuple(columns), self._dialect if guarded else "")
        row = (await self._execute_core(statement, _bound_values(columns))).one_or_none()
        if row is None:
            raise ValueError(f"{self._table}: the write violates a unique constraint")
        return _fields(row)

    async def _insert_later(
        self, table: Table, columns: dict[str, Any], unless: Unless | None = None
    ) -> None:
        """An insert whose row nobody reads back now (only if no row ``unless`` names
        exists then, when given): the unit may hold it and send it with its next write or
        its commit (:meth:`storage.connection_unit.ConnectionUnit.insert_later`, PostgreSQL:
        a round trip less for each); else it is sent now."""
        await self._flush()  # rows the session holds go first, as they would have
        unit = self._unit
        if unit is not None and unit.insert_later(table, columns, unless):
            return
        if unless is None:
            await self._insert(table, columns)
        else:
            statement = _guarded_insert(table, tuple(columns), unless)
            await self._execute_core(statement, _bound_values(columns))

    async def _add_in_savepoint(self, row: object) -> None:
        """Insert ``row`` so that a constraint violation leaves the transaction usable."""
        try:
            async with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError as err:
            raise constraint_error(err, self._table) from None


# --- citizens -----------------------------------------------------------------------------


def _citizen_columns(citizen: Citizen) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "telegram_id": citizen.telegram_id,
        "name": citizen.name,
        "username": citizen.username,
        "phone_e164": citizen.phone_e164,
        "phone_verified": citizen.phone_verified,
        "language": citizen.language,
        "strikes": citizen.strikes,
        "blocked_bot": citizen.blocked_bot,
        "subscribed": citizen.subscribed,
        "subscription_kecamatan_code": citizen.subscription_kecamatan_code,
        "subscribed_at": ensure_utc_or_none(citizen.subscribed_at),
        "erase_requested_at": ensure_utc_or_none(citizen.erase_requested_at),
        "erased_at": ensure_utc_or_none(citizen.erased_at),
    }
    # Timestamps come from the service's clock; a missing one is filled by the database's.
    columns["created_at"] = ensure_utc_or_none(citizen.created_at)
    columns["updated_at"] = ensure_utc_or_none(citizen.updated_at)
    return columns


def _citizen_from_row(row: CitizenRow | SimpleNamespace) -> Citizen:
    return Citizen(
        id=row.id,
        telegram_id=row.telegram_id,
        language=row.language,
        name=row.name,
        username=row.username,
        phone_e164=row.phone_e164,
        phone_verified=row.phone_verified,
        strikes=row.strikes,
        blocked_bot=row.blocked_bot,
        subscribed=row.subscribed,
        subscription_kecamatan_code=row.subscription_kecamatan_code,
        subscribed_at=row.subscribed_at,
        erase_requested_at=row.erase_requested_at,
        erased_at=row.erased_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# A citizen's reads and write, built once, on the table's columns (rows, not ORM objects).
_CITIZEN_BY_TELEGRAM_ID = select(_CITIZENS).where(
    _CITIZENS.c.telegram_id == bindparam("telegram_id")
)
_CITIZEN_BY_ID = select(_CITIZENS).where(_CITIZENS.c.id == bindparam("citizen_id"))


@functools.lru_cache(maxsize=8)
def _citizen_write(names: tuple[str, ...], *, now: bool) -> Update:
    """The citizen's ``UPDATE`` of these columns (bound as ``v_<name>``) by ``w_id``;
    ``now``: ``updated_at`` is the database's clock."""
    values = _bound(_CITIZENS, names)
    if now:
        values[_CITIZENS.c.updated_at] = func.now()
    return (
        update(_CITIZENS)
        .where(_CITIZENS.c.id == bindparam("w_id"))
        .values(values)
        .returning(_CITIZENS.c.id)
    )


class SqlCitizenRepository(_SqlRepository):
    """Citizens by id and by Telegram user id."""

    _table = "citizens"

    async def get(self, citizen_id: int) -> Citizen | None:
        """Return a citizen by id."""
        row = (await self._execute_core(_CITIZEN_BY_ID, {"citizen_id": citizen_id})).first()
        return None if row is None else _citizen_from_row(_fields(row))

    async def get_by_telegram_id(self, telegram_id: int) -> Citizen | None:
        """Return the citizen with this Telegram user id."""
        result = await self._execute_core(_CITIZEN_BY_TELEGRAM_ID, {"telegram_id": telegram_id})
        row = result.first()
        return None if row is None else _citizen_from_row(_fields(row))

    async def with_draft(self, telegram_id: int) -> tuple[Citizen | None, Ticket | None]:
        """Return the citizen with this Telegram user id and their draft in progress, in one
        read (:data:`_CITIZEN_AND_DRAFT`: plain columns, no ORM objects to load)."""
        result = await self._execute_core(_CITIZEN_AND_DRAFT, {"telegram_id": telegram_id})
        row = result.first()
        if row is None:
            return None, None
        citizen, draft, stored = _citizen_and_draft(tuple(row))
        if draft is not None and stored is not None:  # the draft's next write: what changed
            _stored_tickets(self._info)[_require_id(draft.id, "ticket")] = stored
        return citizen, draft

    async def add(self, citizen: Citizen) -> Citizen:
        """Insert a citizen and return it with its id (ValueError if the id is known)."""
        columns = {k: v for k, v in _citizen_columns(citizen).items() if v is not None}
        return _citizen_from_row(await self._insert(_CITIZENS, columns, guarded=True))

    async def update(self, citizen: Citizen) -> None:
        """Persist all fields of an existing citizen but its id and creation time."""
        citizen_id = _require_id(citizen.id, "citizen")
        columns = _citizen_columns(citizen)
        del columns["created_at"]
        now = columns["updated_at"] is None
        if now:  # filled by the database's clock
            del columns["updated_at"]
        params = {**_bound_values(columns), "w_id": citizen_id}
        statement = _citizen_write(tuple(columns), now=now)
        if (await self._execute_core(statement, params)).first() is None:
            raise LookupError("citizen not found")
        self._expire_loaded(CitizenRow, [citizen_id])

    async def subscribers(self, kecamatan_codes: Collection[str] | None) -> list[Recipient]:
        """Return subscribed, unblocked citizens: all, or the city-wide ones plus those of
        ``kecamatan_codes``; by id."""
        statement = select(CitizenRow.id, CitizenRow.telegram_id, CitizenRow.language).where(
            CitizenRow.subscribed.is_(True), CitizenRow.blocked_bot.is_(False)
        )
        if kecamatan_codes is not None:
            statement = statement.where(
                or_(
                    CitizenRow.subscription_kecamatan_code.is_(None),
                    CitizenRow.subscription_kecamatan_code.in_(list(kecamatan_codes)),
                )
            )
        rows = await self._session.execute(statement.order_by(CitizenRow.id))
        return [Recipient(row.id, row.telegram_id, row.language) for row in rows]

    async def inactive(self, before: datetime, limit: int | None = None) -> list[Citizen]:
        """Return not erased citizens holding personal data, untouched (record and tickets)
        since before ``before`` and without a draft or open ticket; by id."""
        cutoff = ensure_utc(before)
        busy = exists().where(
            TicketRow.citizen_id == CitizenRow.id,
            or_(
                TicketRow.updated_at >= cutoff,
                TicketRow.status.in_(_fixed(*_OPEN, TicketStatus.DRAFT)),
            ),
        )
        statement = (
            select(CitizenRow)
            .where(
                CitizenRow.erased_at.is_(None),
                CitizenRow.updated_at < cutoff,
                or_(
                    CitizenRow.name.is_not(None),
                    CitizenRow.username.is_not(None),
                    CitizenRow.phone_e164.is_not(None),
                    CitizenRow.subscribed.is_(False),
                ),
                ~busy,
            )
            .order_by(CitizenRow.id)
        )
        if limit is not None:
            statement = statement.limit(limit)
        rows = await self._session.scalars(statement)
        return [_citizen_from_row(row) for row in rows]


# --- tickets ------------------------------------------------------------------------------


def _location_columns(location: Location | None, prefix: str) -> dict[str, Any]:
    area = location.area if location is not None else None
    return {
        f"{prefix}lat": location.lat if location else None,
        f"{prefix}lon": location.lon if location else None,
        f"{prefix}accuracy_m": location.accuracy_m if location else None,
        f"{prefix}source": location.source.value if location else None,
        f"{prefix}captured_at": ensure_utc(location.captured_at) if location else None,
        f"{prefix}address_text": location.address_text if location else None,
        f"{prefix}display_address": location.display_address if location else None,
        f"{prefix}kelurahan_code": area.kelurahan_code if area else None,
        f"{prefix}kelurahan_name": area.kelurahan_name if area else None,
        f"{prefix}kecamatan_code": area.kecamatan_code if area else None,
        f"{prefix}kecamatan_name": area.kecamatan_name if area else None,
        f"{prefix}area_inside": area.inside if area else None,
        f"{prefix}area_distance_m": area.distance_m if area else None,
        f"{prefix}confidence": location.confidence if location else None,
        f"{prefix}live_until": ensure_utc_or_none(location.live_until) if location else None,
    }


def _location_from_row(row: TicketRow | SimpleNamespace, prefix: str) -> Location | None:
    def column(name: str) -> Any:
        return getattr(row, prefix + name)

    if column("lat") is None:
        return None
    area = None
    if column("kelurahan_code") is not None:
        area = Area(
            kelurahan_code=column("kelurahan_code"),
            kelurahan_name=column("kelurahan_name"),
            kecamatan_code=column("kecamatan_code"),
            kecamatan_name=column("kecamatan_name"),
            inside=bool(column("area_inside")),
            distance_m=float(column("area_distance_m") or 0.0),
        )
    return Location(
        lat=column("lat"),
        lon=column("lon"),
        source=LocationSource(column("source")),
        captured_at=column("captured_at"),
        accuracy_m=column("accuracy_m"),
        address_text=column("address_text"),
        display_address=column("display_address"),
        area=area,
        confidence=column("confidence"),
        live_until=column("live_until"),
    )


def _ticket_columns(ticket: Ticket) -> dict[str, Any]:
    return {
        "ref": ticket.ref,
        "citizen_id": ticket.citizen_id,
        "chat_id": ticket.chat_id,
        "status": ticket.status.value,
        "step": ticket.step.value if ticket.step is not None else None,
        "category_group": ticket.category_group.value if ticket.category_group else None,
        "category": ticket.category.value if ticket.category else None,
        "priority": ticket.priority,
        "disposition": ticket.disposition.value if ticket.disposition else None,
        "language": ticket.language,
        "caller_name": ticket.caller_name,
        "caller_phone_e164": ticket.caller_phone_e164,
        "caller_phone_verified": ticket.caller_phone_verified,
        "details": ticket.details,
        "persons_affected": ticket.persons_affected,
        "silent": ticket.silent,
        "location_elsewhere": ticket.location_elsewhere,
        "location_note": ticket.location_note,
        "unresolved_address": ticket.unresolved_address,
        "reviewed": ticket.reviewed,
        **_location_columns(ticket.incident_location, ""),
        **_location_columns(ticket.reporter_location, "reporter_"),
        "pending_location": location_to_json(ticket.pending_location),
        "media": media_to_json(ticket.media),
        "created_at": ensure_utc(ticket.created_at),
        "updated_at": ensure_utc(ticket.updated_at),
        "submitted_at": ensure_utc_or_none(ticket.submitted_at),
        "closed_at": ensure_utc_or_none(ticket.closed_at),
        "live_notified_at": ensure_utc_or_none(ticket.live_notified_at),
        "queued_at": ensure_utc_or_none(ticket.queued_at),
        "operator_chat_id": ticket.operator_chat_id,
        "operator_thread_id": ticket.operator_thread_id,
        "operator_card_message_id": ticket.operator_card_message_id,
        "claimed_by": ticket.claimed_by,
        "claimed_by_name": ticket.claimed_by_name,
        "claimed_at": ensure_utc_or_none(ticket.claimed_at),
        "dispatched_at": ensure_utc_or_none(ticket.dispatched_at),
        "acknowledged_at": ensure_utc_or_none(ticket.acknowledged_at),
        "en_route_at": ensure_utc_or_none(ticket.en_route_at),
        "eta_minutes": ticket.eta_minutes,
        "on_scene_at": ensure_utc_or_none(ticket.on_scene_at),
        "resolved_at": ensure_utc_or_none(ticket.resolved_at),
        "last_operator_message_at": ensure_utc_or_none(ticket.last_operator_message_at),
        "sla_realerted_at": ensure_utc_or_none(ticket.sla_realerted_at),
        "sla_escalated_at": ensure_utc_or_none(ticket.sla_escalated_at),
        "reopened_count": ticket.reopened_count,
        "anonymised_at": ensure_utc_or_none(ticket.anonymised_at),
    }


def _ticket_from_row(row: TicketRow | SimpleNamespace) -> Ticket:
    return Ticket(
        id=row.id,
        ref=row.ref,
        citizen_id=row.citizen_id,
        chat_id=row.chat_id,
        status=TicketStatus(row.status),
        step=IntakeStep(row.step) if row.step is not None else None,
        category_group=CategoryGroup(row.category_group) if row.category_group else None,
        category=Category(row.category) if row.category else None,
        priority=row.priority,
        disposition=Disposition(row.disposition) if row.disposition else None,
        language=row.language,
        caller_name=row.caller_name,
        caller_phone_e164=row.caller_phone_e164,
        caller_phone_verified=row.caller_phone_verified,
        details=row.details,
        persons_affected=row.persons_affected,
        silent=row.silent,
        location_elsewhere=row.location_elsewhere,
        location_note=row.location_note,
        unresolved_address=row.unresolved_address,
        reviewed=row.reviewed,
        incident_location=_location_from_row(row, ""),
        reporter_location=_location_from_row(row, "reporter_"),
        pending_location=location_from_json(row.pending_location),
        media=media_from_json(row.media),
        created_at=row.created_at,
        updated_at=row.updated_at,
        submitted_at=row.submitted_at,
        closed_at=row.closed_at,
        live_notified_at=row.live_notified_at,
        queued_at=row.queued_at,
        operator_chat_id=row.operator_chat_id,
        operator_thread_id=row.operator_thread_id,
        operator_card_message_id=row.operator_card_message_id,
        claimed_by=row.claimed_by,
        claimed_by_name=row.claimed_by_name,
        claimed_at=row.claimed_at,
        dispatched_at=row.dispatched_at,
        acknowledged_at=row.acknowledged_at,
        en_route_at=row.en_route_at,
        eta_minutes=row.eta_minutes,
        on_scene_at=row.on_scene_at,
        resolved_at=row.resolved_at,
        last_operator_message_at=row.last_operator_message_at,
        sla_realerted_at=row.sla_realerted_at,
        sla_escalated_at=row.sla_escalated_at,
        reopened_count=row.reopened_count,
        anonymised_at=row.anonymised_at,
        version=row.version,
    )


def _fixed(*statuses: str) -> tuple[ColumnElement[str], ...]:
    """Ticket statuses written into the SQL as constants, not bound: SQLite prepares a
    statement anew at every execution when a bound value is compared with a column that a
    partial index's WHERE names (``uq_tickets_citizen_id_draft``: ``status = 'draft'``),
    since the value might make that index usable. The intake's joined read cost about 430 µs
    so on the development machine, about 40 µs with the constant. Only for the code's own
    enum values, never for input."""
    for status in statuses:
        if not str(status).isidentifier():
            raise ValueError(f"not a status: {status!r}")
    return tuple(literal_column(f"'{status}'", String) for status in statuses)


_NEWEST_FIRST = (_TICKETS.c.created_at.desc(), _TICKETS.c.id.desc())


@functools.lru_cache(maxsize=512)
def _ticket_write(names: tuple[str, ...], *, compare_version: bool) -> Update:
    """The ticket's ``UPDATE``, built once for a set of columns (the hot path: SQLAlchemy's
    cache key of a statement object is memoised, building one costs milliseconds): the
    columns and ``w_id`` (and ``w_version``) are bound by name; the version goes up by one.
    Each step of the intake changes its own few columns: a few dozen sets in all."""
    table = _TICKETS
    values = _bound(table, names)
    criteria = [table.c.id == bindparam("w_id")]
    if compare_version:
        criteria.append(table.c.version == bindparam("w_version"))
        values[table.c.version] = bindparam("w_version") + 1
    else:
        values[table.c.version] = table.c.version + 1
    return update(table).where(*criteria).values(values).returning(table.c.id)


#: ``lifecycle.queue_key``: priority 1 first, then the oldest submission.
_QUEUE_ORDER = (
    _TICKETS.c.priority,
    func.coalesce(_TICKETS.c.submitted_at, _TICKETS.c.created_at),
    _TICKETS.c.id,
)
_OPEN = sorted(status.value for status in OPEN_STATUSES)

# The queue board's read: drawn after every change of the queue (at most every 7.5 s under
# Telegram's limits), over every open ticket. Whole tickets cost about 80 µs each to load.
_QUEUE_LINES = (
    select(
        _TICKETS.c.id,
        _TICKETS.c.ref,
        _TICKETS.c.category,
        _TICKETS.c.priority,
        _TICKETS.c.status,
        _TICKETS.c.lat,
        _TICKETS.c.kelurahan_code,
        _TICKETS.c.kecamatan_name,
        _TICKETS.c.submitted_at,
        _TICKETS.c.created_at,
        _TICKETS.c.claimed_by,
        _TICKETS.c.claimed_by_name,
        _TICKETS.c.operator_thread_id,
    )
    .where(_TICKETS.c.status.in_(_fixed(*_OPEN)))
    .order_by(*_QUEUE_ORDER)
)  # table columns, not the ORM's: a plain statement goes straight to sqlite3


def _queue_line(row: Sequence[Any]) -> QueueLine:
    """A row of :data:`_QUEUE_LINES` as a board line."""
    (ticket_id, ref, category, priority, status, lat, kelurahan_code, kecamatan_name,
     submitted_at, created_at, claimed_by, claimed_by_name, thread_id) = row  # fmt: skip
    placed = lat is not None and kelurahan_code is not None  # as _location_from_row reads it
    return QueueLine(
        ticket_id=ticket_id,
        ref=ref,
        category=Category(category) if category else None,
        priority=priority,
        status=TicketStatus(status),
        kecamatan_name=kecamatan_name if placed else None,
        submitted_at=submitted_at,
        created_at=created_at,
        claimed_by=claimed_by,
        claimed_by_name=claimed_by_name,
        thread_id=thread_id,
    )


@functools.cache
def _next_ref_statement(dialect: str) -> Insert:
    """The day counter's upsert (``day`` bound), built once per dialect."""
    table = cast(Table, RefCounterRow.__table__)
    return (
        dialect_insert(dialect, table)
        .values(day=bindparam("day", type_=table.c.day.type), last_value=1)
        .on_conflict_do_update(
            index_elements=[table.c.day], set_={"last_value": table.c.last_value + 1}
        )
        .returning(table.c.last_value)
    )


@functools.cache
def _ticket_write_with_next_ref(names: tuple[str, ...]) -> Update:
    """PostgreSQL's :func:`_ticket_write` that also takes the day's next number and writes
    the reference, in one statement: the day counter's upsert as a data-modifying ``WITH``
    (``day`` bound), the reference as ``ref_head`` (bound) and the number in at least four
    digits, as :func:`bot.domain.rules.format_ref` writes it. The counter's row is locked
    from here to the commit: no round trip of this unit of work follows but the commit."""
    table = _TICKETS
    taken = _next_ref_statement("postgresql").cte("taken_ref")
    digits = sql_cast(taken.c.last_value, Text)
    number = func.lpad(digits, func.greatest(4, func.length(digits)), "0")
    values = _bound(table, names)
    values[table.c.ref] = bindparam("ref_head", type_=String) + select(number).scalar_subquery()
    values[table.c.version] = table.c.version + 1
    return (
        update(table)
        .add_cte(taken)
        .where(table.c.id == bindparam("w_id"))
        .values(values)
        .returning(table.c.id, table.c.ref)
    )


# The intake's reads on every update, built once (a statement object memoises its cache key),
# on the table's columns: rows, not ORM objects.
_ACTIVE_DRAFT = (
    select(_TICKETS)
    .where(
        _TICKETS.c.citizen_id == bindparam("citizen_id"),
        _TICKETS.c.status == _fixed(TicketStatus.DRAFT)[0],
    )
    .order_by(*_NEWEST_FIRST)
    .limit(1)
)
_OPEN_TICKETS = (
    select(_TICKETS)
    .where(
        _TICKETS.c.citizen_id == bindparam("citizen_id"),
        _TICKETS.c.status.in_(_fixed(*_OPEN)),
    )
    .order_by(*_NEWEST_FIRST)
)

# The citizen and their draft in progress, in one read: the first statement of every intake
# update. A LEFT JOIN (a unique index allows one draft), the columns of both tables by position.
_CITIZEN_AND_DRAFT = (
    select(*_CITIZENS.c, *_TICKETS.c)
    .select_from(
        _CITIZENS.outerjoin(
            _TICKETS,
            and_(
                _TICKETS.c.citizen_id == _CITIZENS.c.id,
                _TICKETS.c.status == _fixed(TicketStatus.DRAFT)[0],
            ),
        )
    )
    .where(_CITIZENS.c.telegram_id == bindparam("telegram_id"))
    # As _ACTIVE_DRAFT, on the table's columns: one ORM attribute anywhere in a statement
    # makes SQLAlchemy load its rows through the ORM (about 60 column processors per row).
    .order_by(*_NEWEST_FIRST)
    .limit(1)
    .execution_options(**{READ_ALONE: True})  # PostgreSQL: no BEGIN for it (connection_unit)
)
_TICKET_BY_ID = select(_TICKETS).where(_TICKETS.c.id == bindparam("ticket_id"))
_CITIZEN_NAMES = tuple(_CITIZENS.c.keys())
_TICKET_NAMES = tuple(_TICKETS.c.keys())
_DRAFT_ID_AT = len(_CITIZEN_NAMES) + _TICKET_NAMES.index("id")


def _citizen_and_draft(
    values: tuple[Any, ...],
) -> tuple[Citizen, Ticket | None, dict[str, Any] | None]:
    """The domain objects of one :data:`_CITIZEN_AND_DRAFT` row (no draft: its columns NULL),
    and the draft's stored columns by name."""
    split = len(_CITIZEN_NAMES)
    citizen = SimpleNamespace(**dict(zip(_CITIZEN_NAMES, values[:split], strict=True)))
    if values[_DRAFT_ID_AT] is None:
        return _citizen_from_row(citizen), None, None
    stored = dict(zip(_TICKET_NAMES, values[split:], strict=True))
    return _citizen_from_row(citizen), _ticket_from_row(SimpleNamespace(**stored)), stored


#: ``info`` key (the unit of work's session's, or its unit's): ticket id -> its
#: columns as this unit of work last read or wrote them (:meth:`SqlTicketRepository.update`
#: writes only the columns that differ).
_STORED_TICKETS = "siaga112_stored_tickets"


def _stored_tickets(info: dict[str, Any]) -> dict[int, dict[str, Any]]:
    stored: dict[int, dict[str, Any]] = info.setdefault(_STORED_TICKETS, {})
    return stored


class SqlTicketRepository(_SqlRepository):
    """Tickets, drafts included."""

    _table = "tickets"

    async def get(self, ticket_id: int) -> Ticket | None:
        """Return a ticket by id (its columns kept: its next write sets those it changed)."""
        row = (await self._execute_core(_TICKET_BY_ID, {"ticket_id": ticket_id})).first()
        if row is None:
            return None
        stored = dict(row._mapping)
        _stored_tickets(self._info)[ticket_id] = stored
        return _ticket_from_row(SimpleNamespace(**stored))

    async def get_by_ref(self, ref: str) -> Ticket | None:
        """Return a ticket by its human reference."""
        return await self._one(TicketRow.ref == ref)

    async def active_draft(self, citizen_id: int) -> Ticket | None:
        """Return the citizen's draft in progress, if any (a unique index allows one)."""
        row = (await self._execute_core(_ACTIVE_DRAFT, {"citizen_id": citizen_id})).first()
        return None if row is None else _ticket_from_row(_fields(row))

    async def open_tickets(self, citizen_id: int) -> list[Ticket]:
        """Return the citizen's submitted, not yet finished tickets, newest first."""
        result = await self._execute_core(_OPEN_TICKETS, {"citizen_id": citizen_id})
        return [_ticket_from_row(_fields(row)) for row in result]

    async def recent(self, citizen_id: int, limit: int) -> list[Ticket]:
        """Return the citizen's latest non-draft tickets, newest first."""
        return await self._many(
            TicketRow.citizen_id == citizen_id,
            TicketRow.status != _fixed(TicketStatus.DRAFT)[0],
            limit=limit,
        )

    async def idle_drafts(self, updated_before: datetime) -> list[Ticket]:
        """Return drafts not touched since ``updated_before``, longest idle first."""
        rows = await self._session.scalars(
            select(TicketRow)
            .where(
                TicketRow.status == _fixed(TicketStatus.DRAFT)[0],
                TicketRow.updated_at < ensure_utc(updated_before),
            )
            .order_by(TicketRow.updated_at, TicketRow.id)
        )
        return [_ticket_from_row(row) for row in rows]

    async def add(self, ticket: Ticket) -> Ticket:
        """Insert a ticket and return it with its id.

        ValueError when the citizen already has a draft, the reference is taken or the
        citizen does not exist.
        """
        columns = {**_ticket_columns(ticket), "version": ticket.version}
        return _ticket_from_row(await self._insert(_TICKETS, columns, guarded=True))

    async def update(self, ticket: Ticket) -> None:
        """Persist all fields of an existing ticket (its stored version goes up by one)."""
        if await self._write(ticket, compare_version=False) is None:
            raise LookupError("ticket not found")

    async def update_if_unchanged(self, ticket: Ticket) -> bool:
        """Compare-and-set on ``version``: one ``UPDATE … WHERE id = ? AND version = ?``."""
        won = await self._write(ticket, compare_version=True) is not None
        if not won and await self._session.get(TicketRow, _require_id(ticket.id, "ticket")) is None:
            raise LookupError("ticket not found")
        return won

    async def update_with_next_ref(self, ticket: Ticket, day: date, prefix: str) -> str:
        """:meth:`update` with the day's next reference (see the port). PostgreSQL takes
        the number and writes the ticket in one statement
        (:func:`_ticket_write_with_next_ref`): the counter's row, which every submission
        of the city waits for, stays locked for that statement and the commit only, not
        for a round trip more. SQLite: the counter's upsert, then the ticket's update (its
        unit of work holds the database's one write lock throughout anyway)."""
        if self._dialect != "postgresql":
            ref = format_ref(prefix, day, await self.next_ref_number(day))
            await self.update(dataclasses.replace(ticket, ref=ref))
            return ref
        params = {"day": day.isoformat(), "ref_head": ref_head(prefix, day)}
        row = await self._write(ticket, compare_version=False, taking_ref=params)
        if row is None:
            raise LookupError("ticket not found")
        return str(row.ref)

    async def _write(
        self,
        ticket: Ticket,
        *,
        compare_version: bool,
        taking_ref: dict[str, str] | None = None,
    ) -> Row[Any] | None:
        """One prebuilt ``UPDATE … RETURNING id`` (:func:`_ticket_write`; with ``taking_ref``,
        the ``day`` and ``ref_head`` of :func:`_ticket_write_with_next_ref`, which returns the
        reference too); the row written, or None when none matched. A copy in this session's
        identity map is expired, so the next read sees the row.

        When this unit of work read the row's columns (:meth:`SqlCitizenRepository.with_draft`,
        the intake's read) or wrote them, only the columns that differ are written: SQLite
        rewrites every index of a column in the SET list (a ticket has nine), and a column
        not written cannot undo another writer's change to it (on PostgreSQL, which reads
        committed rows, a draft abandoned meanwhile stays abandoned). A value that merely
        looks different is written: never fewer columns than changed."""
        ticket_id = _require_id(ticket.id, "ticket")
        columns = _ticket_columns(ticket)
        if taking_ref is not None:
            del columns["ref"]
        stored = _stored_tickets(self._info)
        known = stored.pop(ticket_id, None)
        if known is not None:
            columns = {
                name: v for name, v in columns.items() if name not in known or known[name] != v
            }
        params = {**_bound_values(columns), "w_id": ticket_id, "w_version": ticket.version}
        if taking_ref is None:
            statement = _ticket_write(tuple(columns), compare_version=compare_version)
        else:
            statement = _ticket_write_with_next_ref(tuple(columns))
            params.update(taking_ref)
        row: Row[Any] | None = (await self._execute_core(statement, params)).first()
        self._expire_loaded(TicketRow, [ticket_id])
        if row is not None and known is not None:  # the row holds what was known and written
            known.update(columns)
            if taking_ref is not None:
                known["ref"] = row.ref
            stored[ticket_id] = known
        return row

    async def by_operator_thread(self, chat_id: int, thread_id: int) -> Ticket | None:
        """Return the ticket whose forum topic is ``thread_id`` in the operators' chat."""
        return await self._one(
            TicketRow.operator_chat_id == chat_id, TicketRow.operator_thread_id == thread_id
        )

    async def by_operator_card(self, chat_id: int, message_id: int) -> Ticket | None:
        """Return the ticket whose operator card is message ``message_id`` of ``chat_id``."""
        return await self._one(
            TicketRow.operator_chat_id == chat_id,
            TicketRow.operator_card_message_id == message_id,
        )

    async def queue(self) -> list[Ticket]:
        """Return every open ticket in queue order (priority 1 first, then the oldest)."""
        return await self._queue(TicketRow.status.in_(_fixed(*_OPEN)))

    async def queue_lines(self) -> list[QueueLine]:
        """:meth:`queue` as the board shows it (:data:`_QUEUE_LINES`: a few plain columns)."""
        result = await self._execute_core(_QUEUE_LINES, {})
        return [_queue_line(row) for row in result]

    async def unclaimed_since(self, queued_before: datetime) -> list[Ticket]:
        """Return unclaimed tickets queued by ``queued_before`` with an SLA marker unset."""
        return await self._queue(
            TicketRow.status == _fixed(TicketStatus.SUBMITTED)[0],
            func.coalesce(TicketRow.queued_at, TicketRow.submitted_at) <= ensure_utc(queued_before),
            or_(TicketRow.sla_realerted_at.is_(None), TicketRow.sla_escalated_at.is_(None)),
        )

    async def idle_claims(self, active_before: datetime) -> list[Ticket]:
        """Return claimed tickets with no operator message (nor claim) since the cutoff."""
        last_activity = case(
            (
                TicketRow.last_operator_message_at > TicketRow.claimed_at,
                TicketRow.last_operator_message_at,
            ),
            else_=TicketRow.claimed_at,
        )
        return await self._queue(
            TicketRow.status == _fixed(TicketStatus.CLAIMED)[0],
            last_activity <= ensure_utc(active_before),
        )

    async def last_closed(self, citizen_id: int) -> Ticket | None:
        """Return the citizen's most recently closed (resolved or closed) ticket."""
        row = await self._session.scalar(
            select(TicketRow)
            .where(
                TicketRow.citizen_id == citizen_id,
                TicketRow.status.in_(_fixed(TicketStatus.RESOLVED, TicketStatus.CLOSED)),
            )
            .order_by(TicketRow.closed_at.desc().nulls_last(), TicketRow.id.desc())
            .limit(1)
        )
        return None if row is None else _ticket_from_row(row)

    async def _queue(self, *criteria: ColumnElement[bool]) -> list[Ticket]:
        rows = await self._session.scalars(
            select(TicketRow).where(*criteria).order_by(*_QUEUE_ORDER)
        )
        return [_ticket_from_row(row) for row in rows]

    async def next_ref_number(self, day: date) -> int:
        """Allocate the next per-day sequence number (1, 2, …) atomically.

        One upsert statement: concurrent callers queue on the day's counter row, each sees
        the previous caller's committed value. The number belongs to this unit of work: if it
        rolls back, no ticket can carry the number and it is handed out again.
        """
        statement = _next_ref_statement(self._dialect)
        value = (await self._execute_core(statement, {"day": day.isoformat()})).scalar_one()
        return int(value)

    async def count_by_status(self) -> dict[TicketStatus, int]:
        """Return how many tickets are in each status (every status, zero included)."""
        counts = dict.fromkeys(TicketStatus, 0)
        result = await self._session.execute(
            select(TicketRow.status, func.count()).group_by(TicketRow.status)
        )
        for status, count in result:
            counts[TicketStatus(status)] = int(count)
        return counts

    async def _one(self, *criteria: ColumnElement[bool]) -> Ticket | None:
        found = await self._many(*criteria, limit=1)
        return found[0] if found else None

    async def submitted_between(self, since: datetime, until: datetime) -> list[Ticket]:
        """Return the tickets submitted in ``[since, until)``, in submission order."""
        rows = await self._session.scalars(
            select(TicketRow)
            .where(
                TicketRow.submitted_at >= ensure_utc(since),
                TicketRow.submitted_at < ensure_utc(until),
            )
            .order_by(TicketRow.submitted_at, TicketRow.id)
        )
        return [_ticket_from_row(row) for row in rows]

    async def of_citizen(self, citizen_id: int) -> list[Ticket]:
        """Return all the citizen's tickets, drafts included, newest first."""
        return await self._many(TicketRow.citizen_id == citizen_id)

    async def due_for_anonymisation(
        self,
        closed_before: datetime,
        drafts_before: datetime,
        recheck_before: datetime,
        limit: int | None = None,
    ) -> list[Ticket]:
        """Finished tickets and drafts past their retention, and anonymised tickets still
        holding a chat id; by id."""
        ended = func.coalesce(TicketRow.closed_at, TicketRow.updated_at)
        cancelled = TicketRow.status == _fixed(TicketStatus.CANCELLED)[0]
        closed = or_(
            TicketRow.status.in_(_fixed(TicketStatus.RESOLVED, TicketStatus.CLOSED)),
            and_(cancelled, TicketRow.submitted_at.is_not(None)),
        )
        draft = or_(
            TicketRow.status == _fixed(TicketStatus.ABANDONED)[0],
            and_(cancelled, TicketRow.submitted_at.is_(None)),
        )
        statement = (
            select(TicketRow)
            .where(
                or_(
                    and_(
                        TicketRow.anonymised_at.is_(None),
                        or_(
                            and_(closed, ended < ensure_utc(closed_before)),
                            and_(draft, ended < ensure_utc(drafts_before)),
                        ),
                    ),
                    and_(
                        TicketRow.anonymised_at < ensure_utc(recheck_before),
                        TicketRow.chat_id != 0,
                    ),
                )
            )
            .order_by(TicketRow.id)
        )
        if limit is not None:
            statement = statement.limit(limit)
        rows = await self._session.scalars(statement)
        return [_ticket_from_row(row) for row in rows]

    async def _many(self, *criteria: ColumnElement[bool], limit: int | None = None) -> list[Ticket]:
        statement = select(TicketRow).where(*criteria).order_by(*_NEWEST_FIRST)
        if limit is not None:
            statement = statement.limit(limit)
        rows = await self._session.scalars(statement)
        return [_ticket_from_row(row) for row in rows]


# --- timeline and relay log ---------------------------------------------------------------


class SqlEventRepository(_SqlRepository):
    """The append-only ticket timeline."""

    _table = "ticket_events"

    async def add(self, event: TicketEvent) -> None:
        """Append an event."""
        columns = {
            "ticket_id": event.ticket_id,
            "at": ensure_utc(event.at),
            "actor": event.actor,
            "kind": event.kind,
            "from_status": event.from_status.value if event.from_status else None,
            "to_status": event.to_status.value if event.to_status else None,
            "note": event.note,
        }
        await self._insert_later(_EVENTS, columns)

    async def for_ticket(self, ticket_id: int) -> list[TicketEvent]:
        """Return a ticket's events, oldest first."""
        rows = await self._session.scalars(
            select(TicketEventRow)
            .where(TicketEventRow.ticket_id == ticket_id)
            .order_by(TicketEventRow.at, TicketEventRow.id)
        )
        return [
            TicketEvent(
                id=row.id,
                ticket_id=row.ticket_id,
                at=row.at,
                actor=row.actor,
                kind=row.kind,
                from_status=TicketStatus(row.from_status) if row.from_status else None,
                to_status=TicketStatus(row.to_status) if row.to_status else None,
                note=row.note,
            )
            for row in rows
        ]

    async def redact_notes(self, ticket_ids: Collection[int], kinds: Collection[str]) -> int:
        """Clear the notes of the tickets' events of ``kinds``; return how many."""
        result = await self._session.execute(
            update(TicketEventRow)
            .where(
                TicketEventRow.ticket_id.in_(list(ticket_ids)),
                TicketEventRow.kind.in_(list(kinds)),
                TicketEventRow.note.is_not(None),
            )
            .values(note=None)
        )
        return _rowcount(result)


class SqlMessageRepository(_SqlRepository):
    """The relay log of a ticket's conversation."""

    _table = "messages"

    async def add(self, message: RelayMessage) -> None:
        """Append a relayed message (its citizen is the ticket's)."""
        citizen_of_ticket = (
            select(TicketRow.citizen_id).where(TicketRow.id == message.ticket_id).scalar_subquery()
        )
        statement = insert(MessageRow).values(
            ticket_id=message.ticket_id,
            citizen_id=citizen_of_ticket,
            direction=message.direction.value,
            at=ensure_utc(message.at),
            kind=message.kind,
            text=message.text,
            file_id=message.file_id,
            telegram_chat_id=message.telegram_chat_id,
            telegram_message_id=message.telegram_message_id,
            edited=message.edited,
        )
        try:
            await self._session.execute(statement)
        except IntegrityError as err:
            raise constraint_error(err, self._table) from None

    async def for_ticket(self, ticket_id: int) -> list[RelayMessage]:
        """Return a ticket's messages, oldest first."""
        rows = await self._session.scalars(
            select(MessageRow)
            .where(MessageRow.ticket_id == ticket_id)
            .order_by(MessageRow.at, MessageRow.id)
        )
        return [
            RelayMessage(
                id=row.id,
                ticket_id=row.ticket_id,
                direction=Direction(row.direction),
                at=row.at,
                kind=row.kind,
                text=row.text,
                file_id=row.file_id,
                telegram_chat_id=row.telegram_chat_id,
                telegram_message_id=row.telegram_message_id,
                edited=row.edited,
            )
            for row in rows
        ]

    async def count_from_citizen_since(self, citizen_id: int, since: datetime) -> int:
        """Return how many messages the citizen sent to operators at or after ``since``."""
        count = await self._session.scalar(
            select(func.count())
            .select_from(MessageRow)
            .where(
                MessageRow.citizen_id == citizen_id,
                MessageRow.direction == Direction.FROM_CITIZEN.value,
                MessageRow.at >= ensure_utc(since),
            )
        )
        return int(count or 0)

    async def anonymise(self, ticket_ids: Collection[int]) -> int:
        """Clear the texts, file ids and chat ids of the tickets' messages; return how many
        messages held any."""
        result = await self._session.execute(
            update(MessageRow)
            .where(
                MessageRow.ticket_id.in_(list(ticket_ids)),
                or_(
                    MessageRow.text.is_not(None),
                    MessageRow.file_id.is_not(None),
                    MessageRow.telegram_chat_id.is_not(None),
                ),
            )
            .values(text=None, file_id=None, telegram_chat_id=None)
        )
        return _rowcount(result)


# --- outbox -------------------------------------------------------------------------------


def _outbox_from_row(row: OutboxRow | SimpleNamespace) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        kind=row.kind,
        payload=dict(row.payload),
        ticket_id=row.ticket_id,
        lane=row.lane,
        rank=row.rank,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        attempts=row.attempts,
        sent_at=row.sent_at,
        failed_at=row.failed_at,
        last_error=row.last_error,
        result=dict(row.result) if row.result is not None else None,
        dedup_key=row.dedup_key,
        claimed_by=row.claimed_by,
        claimed_until=row.claimed_until,
        repeat=row.repeat,
    )


def _json_or_none(value: dict[str, object] | None) -> dict[str, Any] | None:
    """A JSON-safe copy (TypeError now rather than at commit)."""
    return None if value is None else dict(json.loads(json.dumps(value)))


_OWED = (_OUTBOX.c.sent_at.is_(None), _OUTBOX.c.failed_at.is_(None))
#: 0 for the lane served first; unknown lanes after the known ones.
_LANE_RANK = case(
    {lane.value: lane.rank for lane in LANE_ORDER}, value=_OUTBOX.c.lane, else_=len(LANE_ORDER)
)


def _in_list(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """``column IN`` the values bound as ``name`` (:func:`_list_value` gives the value):
    on PostgreSQL an expanding parameter; on SQLite the rows of ``json_each`` over one JSON
    array, so the statement's SQL is the same for every list and goes straight to sqlite3
    (:mod:`storage.sqlite_direct` leaves expanding parameters to SQLAlchemy)."""
    if dialect == "postgresql":
        return cast(ColumnElement[bool], column.in_(bindparam(name, expanding=True)))
    values: Select[Any] = select(literal_column("value")).select_from(
        func.json_each(bindparam(name, type_=String))
    )
    return cast(ColumnElement[bool], column.in_(values.scalar_subquery()))


def _list_value(values: Collection[object], dialect: str) -> object:
    """The parameter of :func:`_in_list` for these values."""
    return list(values) if dialect == "postgresql" else json.dumps(list(values))


def _outbox_columns(message: OutboxMessage) -> dict[str, Any]:
    """An outbox row's columns by name (TypeError if the payload is not JSON: it fails
    here, not at the commit)."""
    payload = json.loads(json.dumps(message.payload))
    return {
        "kind": message.kind,
        "payload": payload,
        "ticket_id": message.ticket_id,
        "lane": message.lane,
        "rank": message.rank,
        "created_at": ensure_utc(message.created_at),
        "next_attempt_at": ensure_utc(message.next_attempt_at),
        "attempts": message.attempts,
        "sent_at": ensure_utc_or_none(message.sent_at),
        "failed_at": ensure_utc_or_none(message.failed_at),
        "last_error": message.last_error,
        "result": _json_or_none(message.result),
        "dedup_key": message.dedup_key,
        "claimed_by": message.claimed_by,
        "claimed_until": ensure_utc_or_none(message.claimed_until),
        "repeat": message.repeat,
    }


def _delivery_state(message: OutboxMessage) -> dict[str, Any]:
    """The columns an attempt's outcome sets, by name."""
    return {
        "attempts": message.attempts,
        "next_attempt_at": ensure_utc(message.next_attempt_at),
        "sent_at": ensure_utc_or_none(message.sent_at),
        "failed_at": ensure_utc_or_none(message.failed_at),
        "last_error": message.last_error,
        "result": _json_or_none(message.result),
        "repeat": message.repeat,
    }


def _finish_sent_statements() -> tuple[Any, Any]:
    """``finish_sent``'s two statements, built once: each row's state by primary key (one
    ``executemany``), then the leases of this owner released."""
    table = _OUTBOX
    c = table.c
    state = (
        "attempts",
        "next_attempt_at",
        "sent_at",
        "failed_at",
        "last_error",
        "result",
        "repeat",
    )
    values = _bound(table, state)  # the columns of _delivery_state
    finish = update(table).where(c.id == bindparam("b_id")).values(values)
    release = (
        update(table)
        .where(c.id.in_(bindparam("b_ids", expanding=True)), c.claimed_by == bindparam("b_owner"))
        .values(claimed_by=None, claimed_until=None)
    )
    return finish, release


_FINISH_SENT, _RELEASE_LEASES = _finish_sent_statements()


def _never_attempted(row: NamedFromClause) -> ColumnElement[bool]:
    """An owed row never attempted (one in flight may carry an older rendering)."""
    c = row.c
    return and_(c.sent_at.is_(None), c.failed_at.is_(None), c.attempts == 0)


#: ``put_unless_waiting``'s condition: the same kind and key, in the same lane and rank (the
#: owed rows' index, ix_outbox_owed_lane_rank_id, finds them), never attempted.
_WAITING = Unless(same=("lane", "rank", "kind", "dedup_key"), where=_never_attempted)
# Owed rows of one kind (an advisory's progress message waiting): in a broadcast's lane
# thousands of copies may be owed, so a registered kind is looked for in its own lane
# (ix_outbox_owed_lane_rank_id), not among every owed row.
_OWED_OF_KIND = (
    select(_OUTBOX)
    .where(*_OWED, _OUTBOX.c.kind == bindparam("b_kind"))
    .order_by(_OUTBOX.c.id)
    .execution_options(**{READ_ALONE: True})
)
_OWED_OF_KIND_IN_LANE = _OWED_OF_KIND.where(_OUTBOX.c.lane == bindparam("b_lane"))
#: ``finish``'s statements, built once: the row's owner (locked on PostgreSQL), then its
#: state (``_FINISH_SENT``'s) with or without its lease released.
_ROW_OWNER = select(_OUTBOX.c.claimed_by).where(_OUTBOX.c.id == bindparam("b_id"))
_ROW_OWNER_LOCKED = _ROW_OWNER.with_for_update()
_FINISH_RELEASED = _FINISH_SENT.values(claimed_by=None, claimed_until=None)


@functools.cache
def _claim_lane_statement(dialect: str) -> Any:
    """``claim_lane``'s statement, built once: Core (rows come back as tuples, not as ORM
    objects: 64 of those cost milliseconds); the lane, time, limit, owner and lease end are
    bound by name."""
    table = _OUTBOX
    c = table.c
    now = bindparam("w_now", type_=c.next_attempt_at.type)
    pick = (
        select(c.id)
        .where(
            c.sent_at.is_(None),
            c.failed_at.is_(None),
            c.lane == bindparam("w_lane"),
            c.ticket_id.is_(None),
            c.next_attempt_at <= now,
            or_(c.claimed_by.is_(None), c.claimed_until <= now),
        )
        .order_by(c.rank, c.id)
        .limit(bindparam("w_limit", type_=Integer))
    )
    if dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    return (
        update(table)
        .where(c.id.in_(pick.scalar_subquery()))
        .values(
            # SET reads the row as it was: a lease that ended makes the row a repeat.
            repeat=or_(c.repeat, c.claimed_by.is_not(None)),
            claimed_by=bindparam("v_owner"),
            claimed_until=bindparam("v_until", type_=c.claimed_until.type),
            attempts=c.attempts + 1,
        )
        .returning(*c)
    )


@functools.cache
def _claim_statement(dialect: str, *, skip: bool, max_rank: bool, skip_lanes: bool) -> Select[Any]:
    """The outbox's candidate ``SELECT`` (see ``claim``), built once per shape, on the
    table's columns (rows, not ORM objects): ``now``, ``limit`` and the ``holding`` kinds
    (and ``skip``, ``max_rank``, ``skip_lanes`` where the shape has them) are bound by name,
    the lists as :func:`_list_value` gives them."""
    row, earlier = _OUTBOX.c, _OUTBOX.alias("earlier").c
    now = bindparam("now", type_=row.next_attempt_at.type)
    # Leased by anyone, this owner too: a continuous worker claims again while a row
    # of the ticket is in flight, and the LIMIT must not fill up with rows behind it.
    leased = and_(earlier.claimed_by.is_not(None), earlier.claimed_until > now)
    held = exists().where(
        earlier.ticket_id == row.ticket_id,
        earlier.lane == row.lane,
        earlier.id < row.id,
        earlier.sent_at.is_(None),
        earlier.failed_at.is_(None),
        or_(
            leased,
            and_(_in_list(earlier.kind, "holding", dialect), earlier.next_attempt_at > now),
            earlier.rank > row.rank,  # it is served later: this row would overtake it
        ),
    )
    statement = (
        select(_OUTBOX)
        .where(
            *_OWED,
            row.next_attempt_at <= now,
            or_(row.claimed_by.is_(None), row.claimed_until <= now),
            # Inside an OR, PostgreSQL keeps NOT EXISTS a per-row probe of the
            # (ticket_id, lane, id) index instead of an anti-join; with the statistics
            # of a young table that join was planned as a nested loop over every owed
            # row (13 s for a backlog of 10,000 rows; 40 ms this way).
            or_(row.ticket_id.is_(None), ~held),
        )
        .order_by(_LANE_RANK, row.rank, row.id)
        .limit(bindparam("limit", type_=Integer))
    )
    if skip:
        statement = statement.where(~_in_list(row.kind, "skip", dialect))
    if max_rank:
        statement = statement.where(row.rank <= bindparam("max_rank", type_=Integer))
    if skip_lanes:
        statement = statement.where(~_in_list(row.lane, "skip_lanes", dialect))
    if dialect == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return statement


@functools.cache
def _earlier_owed_statement(dialect: str) -> Select[Any]:
    """``claim``'s second read: the owed rows of the candidates' tickets (``tickets``) below
    the last candidate (``below``) that are not candidates (``mine``), built once."""
    c = _OUTBOX.c
    return select(
        c.ticket_id, c.lane, c.id, c.kind, c.next_attempt_at, c.claimed_by, c.claimed_until
    ).where(
        *_OWED,
        _in_list(c.ticket_id, "tickets", dialect),
        ~_in_list(c.id, "mine", dialect),
        c.id < bindparam("below", type_=Integer),
    )


#: ``claim``'s lease of one candidate, run once per row kept (``w_id``; ``v_owner``,
#: ``v_until``): the SET reads the row as it was, as ``claim_lane``'s does.
_CLAIM_ONE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("w_id"))
    .values(
        repeat=or_(_OUTBOX.c.repeat, _OUTBOX.c.claimed_by.is_not(None)),
        claimed_by=bindparam("v_owner"),
        claimed_until=bindparam("v_until", type_=_OUTBOX.c.claimed_until.type),
        attempts=_OUTBOX.c.attempts + 1,
    )
)


class SqlOutboxRepository(_SqlRepository):
    """The transactional outbox, leased row by row to the workers that send it."""

    _table = "outbox"

    async def add(self, message: OutboxMessage) -> OutboxMessage:
        """Enqueue a delivery (TypeError if the payload is not JSON)."""
        return _outbox_from_row(await self._insert(_OUTBOX, _outbox_columns(message)))

    async def put(self, message: OutboxMessage) -> None:
        """:meth:`add` without the row back (see the port): the row may go with the unit's
        next write or its commit."""
        await self._insert_later(_OUTBOX, _outbox_columns(message))

    async def put_unless_waiting(self, message: OutboxMessage) -> None:
        """:meth:`put` unless a row of the message's kind and ``dedup_key`` waits (see the
        port): the check is the insert's own ``WHERE NOT EXISTS``, in the same statement."""
        if message.dedup_key is None:
            raise ValueError("outbox: put_unless_waiting needs a dedup_key")
        await self._insert_later(_OUTBOX, _outbox_columns(message), _WAITING)

    async def get(self, message_id: int) -> OutboxMessage | None:
        """Return one row by id, whatever its state."""
        row = await self._session.scalar(
            select(OutboxRow)
            .where(OutboxRow.id == message_id)
            .execution_options(populate_existing=True)
        )
        return None if row is None else _outbox_from_row(row)

    async def due(self, now: datetime, limit: int, lane: str | None = None) -> list[OutboxMessage]:
        """Return unsent, unfailed rows due at ``now``, in the order they were written."""
        return await self._owed(limit, lane, OutboxRow.next_attempt_at <= ensure_utc(now))

    async def owed(self, limit: int, lane: str | None = None) -> list[OutboxMessage]:
        """Return unsent, unfailed rows, due or not, in the order they were written."""
        return await self._owed(limit, lane)

    async def _owed(self, limit: int, lane: str | None, *where: Any) -> list[OutboxMessage]:
        statement = (
            select(OutboxRow)
            .where(*_OWED, *where)
            .order_by(OutboxRow.id)  # FIFO: a retried card is never overtaken by its pin
            .limit(limit)
        )
        if lane is not None:
            statement = statement.where(OutboxRow.lane == lane)
        rows = await self._session.scalars(statement)
        return [_outbox_from_row(row) for row in rows]

    async def update(self, message: OutboxMessage) -> None:
        """Persist the delivery state (attempts, next attempt, sent/failed time, last error,
        result, repeat mark); never the lease, the kind or the payload."""
        row = await self._session.get(OutboxRow, _require_id(message.id, "outbox message"))
        if row is None:
            raise LookupError("outbox message not found")
        _set_delivery_state(row, message)
        await self._flush()

    async def pending_count(self) -> int:
        """Return how many deliveries are still owed (due or not)."""
        count = await self._session.scalar(
            select(func.count()).select_from(OutboxRow).where(*_OWED)
        )
        return int(count or 0)

    async def owed_of_kind(self, kind: str) -> list[OutboxMessage]:
        """Return unsent, unfailed rows of one kind, oldest first."""
        registered = KINDS.get(kind)
        if registered is None:
            result = await self._execute_core(_OWED_OF_KIND, {"b_kind": kind})
        else:  # its rows are in its lane: the owed rows of that lane only, by their index
            params = {"b_kind": kind, "b_lane": registered.lane.value}
            result = await self._execute_core(_OWED_OF_KIND_IN_LANE, params)
        return [_outbox_from_row(_fields(row)) for row in result]

    async def last_sent_of_kind(self, kind: str) -> OutboxMessage | None:
        """Return the row of one kind sent last."""
        row = await self._session.scalar(
            select(OutboxRow)
            .where(OutboxRow.kind == kind, OutboxRow.sent_at.is_not(None))
            .order_by(OutboxRow.sent_at.desc(), OutboxRow.id.desc())
            .limit(1)
        )
        return _outbox_from_row(row) if row is not None else None

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
        """Lease up to ``limit`` due rows to ``owner`` (see the port for the rules).

        Three statements whatever the batch: select the candidates (locking them on
        PostgreSQL, skipping rows another transaction is claiming), look up the earlier owed
        rows of their tickets, lease the candidates that keep their ticket's order.
        """
        now, until = ensure_utc(now), ensure_utc(until)
        dialect = self._dialect
        statement = _claim_statement(
            dialect, skip=bool(skip), max_rank=max_rank is not None, skip_lanes=bool(skip_lanes)
        )
        params: dict[str, Any] = {
            "now": now, "limit": limit, "holding": _list_value(holding, dialect),
        }  # fmt: skip
        if skip:
            params["skip"] = _list_value(skip, dialect)
        if max_rank is not None:
            params["max_rank"] = max_rank
        if skip_lanes:
            params["skip_lanes"] = _list_value(skip_lanes, dialect)
        candidates = [
            SimpleNamespace(**row._mapping) for row in await self._execute_core(statement, params)
        ]
        kept = await self._in_ticket_order(candidates, owner, now, holding)
        if not kept:
            return []
        await self._execute_core(
            _CLAIM_ONE, [{"w_id": c.id, "v_owner": owner, "v_until": until} for c in kept]
        )
        self._expire_loaded(OutboxRow, [c.id for c in kept])
        for claimed in kept:  # as the UPDATE set them
            claimed.repeat = bool(claimed.repeat or claimed.claimed_by is not None)
            claimed.claimed_by = owner
            claimed.claimed_until = until
            claimed.attempts += 1
        return [_outbox_from_row(claimed) for claimed in kept]

    async def claim_lane(
        self, owner: str, now: datetime, until: datetime, limit: int, lane: str
    ) -> list[OutboxMessage]:
        """Lease up to ``limit`` due rows of ``lane`` that belong to no ticket, by rank then
        id, in one statement (see the port)."""
        if limit < 1:
            return []
        params = {
            "w_lane": lane, "w_now": ensure_utc(now), "w_limit": limit, "v_owner": owner,
            "v_until": ensure_utc(until),
        }  # fmt: skip
        claimed = await self._execute_core(_claim_lane_statement(self._dialect), params)
        messages = sorted(
            (_outbox_from_row(found) for found in claimed), key=lambda m: (m.rank, m.id or 0)
        )
        self._expire_loaded(OutboxRow, [m.id for m in messages])
        return messages

    async def _in_ticket_order(
        self,
        candidates: list[SimpleNamespace],
        owner: str,
        now: datetime,
        holding: Collection[str],
    ) -> list[SimpleNamespace]:
        """Drop each candidate that an earlier owed row of its ticket and lane, not among
        the candidates, must precede: one being sent or claimed elsewhere (due, or leased by
        another owner), or a held row of a ``holding`` kind."""
        tickets = {c.ticket_id for c in candidates if c.ticket_id is not None}
        if not tickets:
            return candidates
        mine = [c.id for c in candidates]
        dialect = self._dialect
        found = await self._execute_core(
            _earlier_owed_statement(dialect),
            {
                "tickets": _list_value(sorted(tickets), dialect),
                "mine": _list_value(mine, dialect),
                "below": max(mine),
            },
        )
        first_blocker: dict[tuple[int | None, str], int] = {}
        for ticket_id, lane, row_id, kind, next_attempt_at, claimed_by, claimed_until in found:
            blocks = (
                ensure_utc(next_attempt_at) <= now
                or kind in holding
                or (
                    claimed_by is not None
                    and claimed_by != owner
                    and claimed_until is not None
                    and ensure_utc(claimed_until) > now
                )
            )
            key = (ticket_id, lane)
            if blocks and row_id < first_blocker.get(key, row_id + 1):
                first_blocker[key] = row_id
        kept, dropped = [], set()
        for candidate in sorted(candidates, key=lambda c: c.id):
            key = (candidate.ticket_id, candidate.lane)
            if candidate.ticket_id is not None and (
                key in dropped or candidate.id > first_blocker.get(key, candidate.id)
            ):
                dropped.add(key)  # and every later row of the ticket and lane
                continue
            kept.append(candidate)
        order = {c.id: n for n, c in enumerate(candidates)}
        return sorted(kept, key=lambda c: order[c.id])

    async def extend(self, owner: str, ids: Collection[int], until: datetime) -> int:
        """Prolong ``owner``'s leases on unsent ``ids``; return how many it still holds."""
        if not ids:
            return 0
        result = await self._session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(list(ids)), OutboxRow.claimed_by == owner)
            .where(OutboxRow.sent_at.is_(None))
            .values(claimed_until=ensure_utc(until))
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def release(self, owner: str, ids: Collection[int]) -> int:
        """End ``owner``'s leases on unsent ``ids`` it did not attempt (attempt taken back)."""
        if not ids:
            return 0
        result = await self._session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(list(ids)), OutboxRow.claimed_by == owner)
            .where(OutboxRow.sent_at.is_(None))
            .values(
                claimed_by=None,
                claimed_until=None,
                attempts=case((OutboxRow.attempts > 0, OutboxRow.attempts - 1), else_=0),
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def finish(self, message: OutboxMessage, owner: str) -> bool:
        """Persist the outcome of ``owner``'s attempt and end its lease (see the port)."""
        message_id = _require_id(message.id, "outbox message")
        locked = self._dialect == "postgresql"
        found = await self._execute_core(
            _ROW_OWNER_LOCKED if locked else _ROW_OWNER, {"b_id": message_id}
        )
        row = found.first()
        if row is None:
            raise LookupError("outbox message not found")
        ours = row.claimed_by in (None, owner)
        if not ours and message.sent_at is None:
            return False  # another owner took the row over: its attempt decides
        params = {"b_id": message_id, **_bound_values(_delivery_state(message))}
        await self._execute_core(_FINISH_RELEASED if ours else _FINISH_SENT, params)
        self._expire_loaded(OutboxRow, [message_id])
        return ours

    async def finish_sent(self, messages: Sequence[OutboxMessage], owner: str) -> None:
        """Persist many sent rows in two statements (state by primary key, then leases)."""
        if not messages:
            return
        await self._execute_core(
            _FINISH_SENT,
            [
                {
                    "b_id": _require_id(m.id, "outbox message"),
                    **_bound_values(_delivery_state(m)),
                    "v_sent_at": ensure_utc(m.sent_at or m.next_attempt_at),
                }
                for m in messages
            ],
        )
        await self._session.execute(
            _RELEASE_LEASES, {"b_ids": [m.id for m in messages], "b_owner": owner}
        )
        self._expire_loaded(OutboxRow, [m.id for m in messages])

    async def expire_leases(self, owner: str, now: datetime) -> int:
        """End every lease not held by ``owner`` at ``now`` (one process per database)."""
        now = ensure_utc(now)
        result = await self._session.execute(
            update(OutboxRow)
            .where(*_OWED, OutboxRow.claimed_by.is_not(None), OutboxRow.claimed_by != owner)
            .where(OutboxRow.claimed_until > now)
            .values(claimed_until=now)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def scrub_finished(self, ticket_ids: Collection[int]) -> int:
        """Empty the payload and drop the result of the tickets' sent or failed rows."""
        rows = await self._session.execute(
            select(OutboxRow.id, OutboxRow.payload, OutboxRow.result).where(
                OutboxRow.ticket_id.in_(list(ticket_ids)),
                or_(OutboxRow.sent_at.is_not(None), OutboxRow.failed_at.is_not(None)),
            )
        )  # JSON has no equality on PostgreSQL: what still holds data is picked here
        ids = [row.id for row in rows if row.payload or row.result is not None]
        if ids:
            await self._session.execute(
                update(OutboxRow).where(OutboxRow.id.in_(ids)).values(payload={}, result=None)
            )
        return len(ids)

    async def exists_since(self, dedup_key: str, since: datetime) -> bool:
        """Whether a row with ``dedup_key`` was enqueued at or after ``since`` (the key stays
        locked on PostgreSQL until the unit of work ends)."""
        if self._dialect == "postgresql":
            await self._session.execute(
                select(func.pg_advisory_xact_lock(func.hashtext(f"siaga112:outbox:{dedup_key}")))
            )
        found = await self._session.scalar(
            select(
                exists().where(
                    OutboxRow.dedup_key == dedup_key, OutboxRow.created_at >= ensure_utc(since)
                )
            )
        )
        return bool(found)


def _set_delivery_state(row: OutboxRow, message: OutboxMessage) -> None:
    for name, value in _delivery_state(message).items():
        setattr(row, name, value)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# --- chat aliases -------------------------------------------------------------------------


class SqlChatAliasRepository(_SqlRepository):
    """Chats that moved to a new id (a group upgraded to a supergroup)."""

    _table = "chat_aliases"

    async def get(self, old_id: int) -> int | None:
        """Return the id the chat ``old_id`` moved to, or None."""
        new_id = await self._session.scalar(
            select(ChatAliasRow.new_id).where(ChatAliasRow.old_id == old_id)
        )
        return None if new_id is None else int(new_id)

    async def add(self, old_id: int, new_id: int, at: datetime) -> None:
        """Remember (or replace) where ``old_id`` moved to."""
        statement = (
            dialect_insert(self._dialect, ChatAliasRow)
            .values(old_id=old_id, new_id=new_id, created_at=ensure_utc(at))
            .on_conflict_do_update(
                index_elements=[ChatAliasRow.old_id],
                set_={"new_id": new_id, "created_at": ensure_utc(at)},
            )
        )
        await self._session.execute(statement)


# --- the console: roster, assignments, audit ----------------------------------------------


def _operator_from_row(row: OperatorRow) -> Operator:
    return Operator(
        id=row.id,
        telegram_id=row.telegram_id,
        display_name=row.display_name,
        is_admin=row.is_admin,
        active=row.active,
        added_by=row.added_by,
        added_at=row.added_at,
    )


class SqlOperatorRepository(_SqlRepository):
    """The operator roster, by Telegram user id."""

    _table = "operators"

    async def get(self, telegram_id: int) -> Operator | None:
        """Return the roster entry of a Telegram user (active or not)."""
        row = await self._session.scalar(
            select(OperatorRow).where(OperatorRow.telegram_id == telegram_id)
        )
        return None if row is None else _operator_from_row(row)

    async def list(self, *, include_inactive: bool = False) -> list[Operator]:
        """Return roster entries, oldest first."""
        statement = select(OperatorRow).order_by(OperatorRow.added_at, OperatorRow.id)
        if not include_inactive:
            statement = statement.where(OperatorRow.active.is_(True))
        return [_operator_from_row(row) for row in await self._session.scalars(statement)]

    async def add(self, operator: Operator) -> Operator:
        """Insert an entry (ValueError when the Telegram user is already on the roster)."""
        row = OperatorRow(
            telegram_id=operator.telegram_id,
            display_name=operator.display_name,
            is_admin=operator.is_admin,
            active=operator.active,
            added_by=operator.added_by,
            added_at=ensure_utc(operator.added_at),
        )
        await self._add_in_savepoint(row)
        return _operator_from_row(row)

    async def update(self, operator: Operator) -> None:
        """Persist all fields of an existing entry."""
        row = await self._session.get(OperatorRow, _require_id(operator.id, "operator"))
        if row is None:
            raise LookupError("operator not found")
        row.telegram_id = operator.telegram_id
        row.display_name = operator.display_name
        row.is_admin = operator.is_admin
        row.active = operator.active
        row.added_by = operator.added_by
        row.added_at = ensure_utc(operator.added_at)
        await self._flush()


_ASSIGNMENT_PROGRESS = (
    "acknowledged_at", "en_route_at", "on_scene_at", "completed_at", "declined_at", "ack_due_at",
    "ack_reminded_at", "ack_escalated_at",
)  # fmt: skip
_ASSIGNMENT_MARKERS = frozenset({"ack_reminded_at", "ack_escalated_at"})


# Read for every operator card drawn: built once, rows rather than ORM objects.
_TICKET_ASSIGNMENTS = (
    select(_ASSIGNMENTS)
    .where(_ASSIGNMENTS.c.ticket_id == bindparam("ticket_id"))
    .order_by(_ASSIGNMENTS.c.dispatched_at, _ASSIGNMENTS.c.id)
)


def _assignment_from_row(row: AssignmentRow | SimpleNamespace) -> Assignment:
    return Assignment(
        id=row.id,
        ticket_id=row.ticket_id,
        agency_code=row.agency_code,
        channel=AssignmentChannel(row.channel),
        by=row.by,
        dispatched_at=row.dispatched_at,
        acknowledged_at=row.acknowledged_at,
        en_route_at=row.en_route_at,
        eta_minutes=row.eta_minutes,
        on_scene_at=row.on_scene_at,
        completed_at=row.completed_at,
        declined_at=row.declined_at,
        decline_reason=row.decline_reason,
        ack_due_at=row.ack_due_at,
        ack_reminded_at=row.ack_reminded_at,
        ack_escalated_at=row.ack_escalated_at,
        card_chat_id=row.card_chat_id,
        card_message_id=row.card_message_id,
    )


class SqlAssignmentRepository(_SqlRepository):
    """Tickets handed to agencies."""

    _table = "assignments"

    async def add(self, assignment: Assignment) -> Assignment:
        """Insert (ValueError for a second row of the same ticket and agency)."""
        row = AssignmentRow(
            ticket_id=assignment.ticket_id,
            agency_code=assignment.agency_code,
            channel=assignment.channel.value,
            by=assignment.by,
            dispatched_at=ensure_utc(assignment.dispatched_at),
            eta_minutes=assignment.eta_minutes,
            decline_reason=assignment.decline_reason,
            card_chat_id=assignment.card_chat_id,
            card_message_id=assignment.card_message_id,
            **{
                name: ensure_utc_or_none(getattr(assignment, name)) for name in _ASSIGNMENT_PROGRESS
            },
        )
        await self._add_in_savepoint(row)
        return _assignment_from_row(row)

    async def for_ticket(self, ticket_id: int) -> list[Assignment]:
        """Return a ticket's assignments in dispatch order."""
        result = await self._execute_core(_TICKET_ASSIGNMENTS, {"ticket_id": ticket_id})
        return [_assignment_from_row(_fields(row)) for row in result]

    async def for_tickets(self, ticket_ids: Collection[int]) -> list[Assignment]:
        """Return the assignments of many tickets, by ticket then dispatch order."""
        found: list[Assignment] = []
        ids = sorted(ticket_ids)
        for start in range(0, len(ids), 500):  # bounded IN lists
            rows = await self._session.scalars(
                select(AssignmentRow)
                .where(AssignmentRow.ticket_id.in_(ids[start : start + 500]))
                .order_by(AssignmentRow.ticket_id, AssignmentRow.dispatched_at, AssignmentRow.id)
            )
            found.extend(_assignment_from_row(row) for row in rows)
        return found

    async def update(self, assignment: Assignment) -> None:
        """Persist the progress fields (times, ETA, channel) of an existing assignment."""
        row = await self._session.get(AssignmentRow, _require_id(assignment.id, "assignment"))
        if row is None:
            raise LookupError("assignment not found")
        row.channel = assignment.channel.value
        row.eta_minutes = assignment.eta_minutes
        row.decline_reason = assignment.decline_reason
        row.card_chat_id = assignment.card_chat_id
        row.card_message_id = assignment.card_message_id
        for name in _ASSIGNMENT_PROGRESS:
            setattr(row, name, ensure_utc_or_none(getattr(assignment, name)))
        await self._flush()

    async def get(self, ticket_id: int, agency_code: str) -> Assignment | None:
        """Return the assignment of one ticket and agency, or None."""
        row = await self._session.scalar(
            select(AssignmentRow).where(
                AssignmentRow.ticket_id == ticket_id, AssignmentRow.agency_code == agency_code
            )
        )
        return None if row is None else _assignment_from_row(row)

    async def ack_overdue(self, now: datetime) -> list[Assignment]:
        """Return assignments past their acknowledgement deadline, not acknowledged, not done,
        and not yet escalated, oldest deadline first."""
        rows = await self._session.scalars(
            select(AssignmentRow)
            .where(
                AssignmentRow.ack_due_at <= ensure_utc(now),
                AssignmentRow.acknowledged_at.is_(None),
                AssignmentRow.completed_at.is_(None),
                AssignmentRow.declined_at.is_(None),
                AssignmentRow.ack_escalated_at.is_(None),
            )
            .order_by(AssignmentRow.ack_due_at, AssignmentRow.id)
        )
        return [_assignment_from_row(row) for row in rows]

    async def mark(self, assignment_id: int, marker: str, at: datetime) -> bool:
        """Sets ``marker`` (``ack_reminded_at``/``ack_escalated_at``) if it is still unset and
        the agency has not acknowledged; returns whether this call set it (one of two
        processes sweeping at once wins)."""
        if marker not in _ASSIGNMENT_MARKERS:
            raise ValueError(f"not an assignment marker: {marker}")
        column = getattr(AssignmentRow, marker)
        result = await self._session.execute(
            update(AssignmentRow)
            .where(
                AssignmentRow.id == assignment_id,
                column.is_(None),
                AssignmentRow.acknowledged_at.is_(None),
            )
            .values({marker: ensure_utc(at)})
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))


class SqlAgencyRequestRepository(_SqlRepository):
    """Idempotency keys of the signed requests agency systems sent (replays are refused)."""

    _table = "agency_requests"

    async def remember(self, agency_code: str, key: str, at: datetime) -> bool:
        """Stores the key; False when the agency sent it before (a replay)."""
        try:
            await self._add_in_savepoint(
                AgencyRequestRow(
                    agency_code=agency_code, request_key=key, received_at=ensure_utc(at)
                )
            )
        except ValueError:
            return False
        return True

    async def forget_before(self, at: datetime) -> int:
        """Drops keys received before ``at`` (older requests are refused by their age)."""
        result = await self._session.execute(
            delete(AgencyRequestRow)
            .where(AgencyRequestRow.received_at < ensure_utc(at))
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class SqlAuditRepository(_SqlRepository):
    """Staff actions that concern no ticket, append-only."""

    _table = "audit_log"

    async def add(self, entry: AuditEntry) -> None:
        """Append an entry."""
        self._session.add(
            AuditLogRow(
                at=ensure_utc(entry.at),
                actor=entry.actor,
                kind=entry.kind,
                subject=entry.subject,
                note=entry.note,
            )
        )
        await self._flush()

    async def recent(self, limit: int) -> list[AuditEntry]:
        """Return the latest entries, newest first."""
        rows = await self._session.scalars(
            select(AuditLogRow).order_by(AuditLogRow.at.desc(), AuditLogRow.id.desc()).limit(limit)
        )
        return [
            AuditEntry(
                id=row.id,
                at=row.at,
                actor=row.actor,
                kind=row.kind,
                subject=row.subject,
                note=row.note,
            )
            for row in rows
        ]


# --- advisories ---------------------------------------------------------------------------


def _advisory_columns(advisory: Advisory) -> dict[str, Any]:
    return {
        "created_by": advisory.created_by,
        "created_at": ensure_utc(advisory.created_at),
        "status": advisory.status.value,
        "text": advisory.text,
        "photo_file_id": advisory.photo_file_id,
        "target": None if advisory.target is None else advisory.target.to_json(),
        "source": advisory.source,
        "recipients": advisory.recipients,
        "confirmed_by": advisory.confirmed_by,
        "confirmed_at": ensure_utc_or_none(advisory.confirmed_at),
        "finished_at": ensure_utc_or_none(advisory.finished_at),
        "progress_chat_id": advisory.progress_chat_id,
        "progress_message_id": advisory.progress_message_id,
    }


def _advisory_from_row(row: AdvisoryRow) -> Advisory:
    return Advisory(
        id=row.id,
        created_by=row.created_by,
        created_at=row.created_at,
        status=AdvisoryStatus(row.status),
        text=row.text,
        photo_file_id=row.photo_file_id,
        target=None if row.target is None else Target.from_json(row.target),
        source=row.source,
        recipients=row.recipients,
        confirmed_by=row.confirmed_by,
        confirmed_at=row.confirmed_at,
        finished_at=row.finished_at,
        progress_chat_id=row.progress_chat_id,
        progress_message_id=row.progress_message_id,
    )


def advisory_key(advisory_id: int) -> str:
    """The ``dedup_key`` of an advisory's outbox rows (they are found by it)."""
    return f"advisory:{advisory_id}"


class SqlAdvisoryRepository(_SqlRepository):
    """Advisories and their deliveries (each copy an outbox row)."""

    _table = "advisories"

    async def add(self, advisory: Advisory) -> Advisory:
        """Insert an advisory and return it with its id."""
        row = AdvisoryRow(**_advisory_columns(advisory))
        self._session.add(row)
        await self._flush()
        return _advisory_from_row(row)

    async def get(self, advisory_id: int) -> Advisory | None:
        """Return an advisory by id."""
        row = await self._session.get(AdvisoryRow, advisory_id, populate_existing=True)
        return None if row is None else _advisory_from_row(row)

    async def update(self, advisory: Advisory) -> None:
        """Persist all fields of an existing advisory."""
        row = await self._session.get(AdvisoryRow, _require_id(advisory.id, "advisory"))
        if row is None:
            raise LookupError("advisory not found")
        for name, value in _advisory_columns(advisory).items():
            setattr(row, name, value)
        await self._flush()

    async def sending(self) -> list[Advisory]:
        """Return the advisories being sent, oldest first."""
        rows = await self._session.scalars(
            select(AdvisoryRow)
            .where(AdvisoryRow.status == AdvisoryStatus.SENDING.value)
            .order_by(AdvisoryRow.id)
            .execution_options(populate_existing=True)
        )
        return [_advisory_from_row(row) for row in rows]

    async def with_source(self, source: str) -> list[Advisory]:
        """Return the advisories drafted from ``source``, oldest first."""
        rows = await self._session.scalars(
            select(AdvisoryRow).where(AdvisoryRow.source == source).order_by(AdvisoryRow.id)
        )
        return [_advisory_from_row(row) for row in rows]

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
        now = ensure_utc(now)
        known = set(
            await self._session.scalars(
                select(AdvisoryDeliveryRow.citizen_id).where(
                    AdvisoryDeliveryRow.advisory_id == advisory_id
                )
            )
        )
        fresh = [r for r in recipients if r.citizen_id not in known]
        if not fresh:
            return 0
        language = {r.telegram_id: r.language for r in fresh}
        result = await self._session.execute(
            insert(AdvisoryDeliveryRow).returning(
                AdvisoryDeliveryRow.id, AdvisoryDeliveryRow.chat_id, sort_by_parameter_order=True
            ),
            [
                {"advisory_id": advisory_id, "citizen_id": r.citizen_id, "chat_id": r.telegram_id}
                for r in fresh
            ],
        )
        key = advisory_key(advisory_id)
        outbox = [
            {
                "kind": kind,
                "payload": {
                    "advisory_id": advisory_id,
                    "delivery_id": row.id,
                    "chat_id": row.chat_id,
                    "language": language[row.chat_id],
                },
                "lane": lane,
                "rank": rank,
                "created_at": now,
                "next_attempt_at": now,
                "dedup_key": key,
            }
            for row in result
        ]
        await self._session.execute(insert(OutboxRow), outbox)
        return len(outbox)

    async def record(self, delivery_id: int, outcome: DeliveryOutcome, at: datetime) -> None:
        """Store that one recipient's copy was refused for good or stopped."""
        await self._session.execute(
            update(AdvisoryDeliveryRow)
            .where(AdvisoryDeliveryRow.id == delivery_id)
            .values(outcome=outcome.value, at=ensure_utc(at))
        )

    async def progress(self, advisory_id: int) -> Progress:
        """Count the outcomes and the owed outbox rows of an advisory."""
        rows = await self._session.execute(
            select(AdvisoryDeliveryRow.outcome, func.count())
            .where(AdvisoryDeliveryRow.advisory_id == advisory_id)
            .group_by(AdvisoryDeliveryRow.outcome)
        )
        counts = {outcome: int(count) for outcome, count in rows}
        states = await self._session.execute(
            select(OutboxRow.sent_at.is_not(None), OutboxRow.failed_at.is_not(None), func.count())
            .where(OutboxRow.dedup_key == advisory_key(advisory_id))
            .group_by(OutboxRow.sent_at.is_not(None), OutboxRow.failed_at.is_not(None))
        )
        by_state = {(bool(sent), bool(failed)): int(n) for sent, failed, n in states}
        return Progress(
            recipients=sum(counts.values()),
            sent=sum(n for (sent, _), n in by_state.items() if sent),
            blocked=counts.get(DeliveryOutcome.BLOCKED.value, 0),
            failed=counts.get(DeliveryOutcome.FAILED.value, 0),
            cancelled=counts.get(DeliveryOutcome.CANCELLED.value, 0),
            owed=by_state.get((False, False), 0),
        )

    async def forget_recipients(self, citizen_ids: Collection[int]) -> int:
        """Replace the chat id of the citizens' delivery rows by 0; return how many held it."""
        if not citizen_ids:
            return 0
        result = await self._session.execute(
            update(AdvisoryDeliveryRow)
            .where(
                AdvisoryDeliveryRow.citizen_id.in_(list(citizen_ids)),
                AdvisoryDeliveryRow.chat_id != 0,
            )
            .values(chat_id=0)
        )
        return _rowcount(result)

    async def cancel_owed(self, advisory_id: int, now: datetime) -> int:
        """Fail the owed rows no worker holds and mark their copies cancelled."""
        now = ensure_utc(now)
        rows = (
            await self._session.execute(
                select(OutboxRow.id, OutboxRow.payload).where(
                    OutboxRow.dedup_key == advisory_key(advisory_id),
                    *_OWED,
                    or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until <= now),
                )
            )
        ).all()
        if not rows:
            return 0
        await self._session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_([row.id for row in rows]))
            .values(failed_at=now, last_error="cancelled", claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        await self._session.execute(
            update(AdvisoryDeliveryRow)
            .where(
                AdvisoryDeliveryRow.id.in_([int(row.payload["delivery_id"]) for row in rows]),
                AdvisoryDeliveryRow.outcome.is_(None),
            )
            .values(outcome=DeliveryOutcome.CANCELLED.value, at=now)
            .execution_options(synchronize_session=False)
        )
        return len(rows)


def _require_id(value: int | None, what: str) -> int:
    if value is None:
        raise LookupError(f"{what} has no id: add it first")
    return value
