"""Statistics and exports for admins: a period's tickets with their milestones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.model import Assignment, Ticket
from bot.domain.stats import Stats, compute
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
