"""Statistics and exports for admins: a period's tickets with their milestones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.domain.model import Assignment, AuditEntry, Ticket
from bot.domain.stats import TARGET, Stats, compute, milestones
from bot.services.advisories import AdminCheck, NotAllowed
from bot.services.ports import Clock, UnitOfWorkFactory

MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class Period:
    """The tickets of a period and their agency assignments."""

    since: datetime
    until: datetime
    tickets: list[Ticket]
    assignments: list[Assignment]


class StatsService:
    """Reads a period's tickets (read-only units of work) and computes the statistics."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, admins: AdminCheck) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._admins = admins

    async def period(self, since: datetime, until: datetime | None = None) -> Period:
        """The tickets submitted in ``[since, until)`` (until: now) and their assignments."""
        until = until or self._clock.now()
        async with self._uow_factory() as uow:
            tickets = await uow.tickets.submitted_between(since, until)
            assignments = await uow.assignments.for_tickets([t.id or 0 for t in tickets])
        return Period(since, until, tickets, assignments)

    async def last_days(self, admin_id: int, days: int) -> Stats:
        """The statistics of the last ``days`` days (1..366), for an admin."""
        if not await self._admins.is_admin(admin_id):
            raise NotAllowed
        days = min(max(days, 1), MAX_DAYS)
        until = self._clock.now()
        period = await self.period(until - timedelta(days=days), until)
        return compute(period.tickets, period.assignments, period.since, period.until)


EXPORT_COLUMNS = (
    "ref", "status", "category", "priority", "disposition", "language", "source",
    "kecamatan_code", "kecamatan", "kelurahan_code", "kelurahan", "accuracy_m", "silent",
    "agencies", "submitted_at", "claimed_at", "dispatched_at", "acknowledged_at",
    "en_route_at", "on_scene_at", "resolved_at", "closed_at", "claim_s", "dispatch_s",
    "ack_s", "on_scene_s", "on_scene_within_10_min", "reopened",
)  # fmt: skip
PERSONAL_COLUMNS = (
    "caller_name", "caller_phone", "phone_verified", "lat", "lon", "address",
)  # fmt: skip
"""Only with ``--with-personal-data`` (and then recorded in the audit log)."""


class ExportService:
    """One row per ticket with its milestones, for the city's own analysis."""

    def __init__(self, stats: StatsService, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._stats = stats
        self._uow_factory = uow_factory
        self._clock = clock

    async def rows(
        self, since: datetime, *, personal: bool = False, actor: str = "cli"
    ) -> list[dict[str, object]]:
        """The rows of the tickets submitted since ``since``; an export with personal data
        is recorded in the audit log (who, when, which period, how many tickets)."""
        period = await self._stats.period(since)
        by_ticket: dict[int, list[Assignment]] = {}
        for assignment in period.assignments:
            by_ticket.setdefault(assignment.ticket_id, []).append(assignment)
        rows = [
            _row(ticket, by_ticket.get(ticket.id or 0, []), personal=personal)
            for ticket in period.tickets
        ]
        if personal:
            async with self._uow_factory() as uow:
                await uow.audit.add(
                    AuditEntry(
                        at=self._clock.now(), actor=actor, kind="export_personal_data",
                        subject=f"since {since.date().isoformat()}",
                        note=f"{len(rows)} tickets with names, phones and locations",
                    )
                )  # fmt: skip
                await uow.commit()
        return rows


def _row(ticket: Ticket, assignments: list[Assignment], *, personal: bool) -> dict[str, object]:
    location = ticket.incident_location
    area = location.area if location is not None else None
    reached = milestones(ticket, assignments)
    submitted = ticket.submitted_at

    def since_report(at: datetime | None) -> object:
        if at is None or submitted is None:
            return ""
        return round((at - submitted).total_seconds())

    row: dict[str, object] = {
        "ref": ticket.ref or "",
        "status": ticket.status.value,
        "category": ticket.category.value if ticket.category else "",
        "priority": ticket.priority,
        "disposition": ticket.disposition.value if ticket.disposition else "",
        "language": ticket.language,
        "source": location.source.value if location else "",
        "kecamatan_code": area.kecamatan_code if area else "",
        "kecamatan": area.kecamatan_name if area else "",
        "kelurahan_code": area.kelurahan_code if area else "",
        "kelurahan": area.kelurahan_name if area else "",
        "accuracy_m": location.accuracy_m if location and location.accuracy_m else "",
        "silent": ticket.silent,
        "agencies": " ".join(a.agency_code for a in assignments),
        "submitted_at": _iso(submitted),
        "claimed_at": _iso(ticket.claimed_at),
        "dispatched_at": _iso(reached["dispatch"]),
        "acknowledged_at": _iso(reached["ack"]),
        "en_route_at": _iso(ticket.en_route_at),
        "on_scene_at": _iso(reached["on_scene"]),
        "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at),
        "claim_s": since_report(reached["claim"]),
        "dispatch_s": since_report(reached["dispatch"]),
        "ack_s": since_report(reached["ack"]),
        "on_scene_s": since_report(reached["on_scene"]),
        "on_scene_within_10_min": (
            "" if reached["on_scene"] is None or submitted is None
            else reached["on_scene"] - submitted <= TARGET
        ),
        "reopened": ticket.reopened_count,
    }  # fmt: skip
    if personal:
        row.update(
            caller_name=ticket.caller_name or "",
            caller_phone=ticket.caller_phone_e164 or "",
            phone_verified=ticket.caller_phone_verified,
            lat=location.lat if location else "",
            lon=location.lon if location else "",
            address=(location.address_text or location.display_address or "") if location else "",
        )
    return row


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()
