"""SLA timers, driven only by database columns and the injected clock.

A sweep (run every few seconds by the edge's job queue) fires, for each ticket:

* **re-alert**: unclaimed ``realert_after`` (60 s) after it entered the queue
  (``queued_at``): an ``OPERATOR_NOTICE`` (``unclaimed``) into its topic; in a surge, when
  its card is not posted yet, only the event (the board shows the ticket and its age);
* **escalation**: unclaimed ``escalate_after`` (180 s) after it entered the queue: one
  ``ADMIN_ALERT`` per active admin, by direct message;
* **idle claim**: claimed, with no operator message (nor the claim itself) for
  ``idle_claim`` (10 minutes): released back to the queue (event, card, board, a notice).

Each timer fires once per ticket: the marker (``sla_realerted_at``, ``sla_escalated_at``,
or the release itself) is written by compare-and-set on the ticket's version, so of two
processes sweeping at once only one fires it. The timers survive restarts because they are
columns; a release or a reopen puts the ticket back in the queue with fresh timers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta

from bot.domain.lifecycle import SYSTEM, Action, apply
from bot.domain.model import Ticket
from bot.services.outbox_kinds import ADMIN_ALERT, OPERATOR_CARD_EDIT, OPERATOR_NOTICE
from bot.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from bot.services.queue import request_board
from bot.services.rows import add_event, enqueue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """The three timers (settings SLA_REALERT_SECONDS, SLA_ESCALATE_SECONDS,
    SLA_IDLE_CLAIM_MINUTES)."""

    realert_after: timedelta = timedelta(seconds=60)
    escalate_after: timedelta = timedelta(seconds=180)
    idle_claim: timedelta = timedelta(minutes=10)
    operator_chat_id: int | None = None


@dataclass(slots=True)
class SlaReport:
    """Ticket ids whose timers fired in one sweep."""

    realerted: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)

    @property
    def fired(self) -> int:
        """How many timers fired."""
        return len(self.realerted) + len(self.escalated) + len(self.released)


class SlaService:
    """Sweeps the tickets for timers that are due."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, policy: SlaPolicy) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._policy = policy

    async def sweep(self) -> SlaReport:
        """Fires every due timer once; returns what fired."""
        now = self._clock.now()
        report = SlaReport()
        policy = self._policy
        async with self._uow_factory() as uow:
            admins = [o.telegram_id for o in await uow.operators.list() if o.is_admin]
            for ticket in await uow.tickets.unclaimed_since(now - policy.realert_after):
                queued = ticket.queued_at or ticket.submitted_at or now
                realert = ticket.sla_realerted_at is None
                escalate = ticket.sla_escalated_at is None and now - queued >= policy.escalate_after
                if not (realert or escalate):
                    continue
                marked = replace(
                    ticket,
                    sla_realerted_at=now if realert else ticket.sla_realerted_at,
                    sla_escalated_at=now if escalate else ticket.sla_escalated_at,
                )
                if not await uow.tickets.update_if_unchanged(marked):
                    continue  # claimed meanwhile, or another process fired it
                waited = int((now - queued).total_seconds())
                if realert:
                    await self._realert(uow, marked, waited)
                    report.realerted.append(ticket.id or 0)
                if escalate:
                    await self._escalate(uow, marked, waited, admins)
                    report.escalated.append(ticket.id or 0)
            for ticket in await uow.tickets.idle_claims(now - policy.idle_claim):
                released = apply(ticket, Action.RELEASE, now, by=SYSTEM)
                if not await uow.tickets.update_if_unchanged(released):
                    continue  # the operator wrote or acted meanwhile
                await self._release(uow, ticket, released)
                report.released.append(ticket.id or 0)
            if report.released:
                await request_board(uow, now, policy.operator_chat_id)
            await uow.commit()
        if report.fired:
            log.info(
                "sla: %d re-alerted, %d escalated, %d released", len(report.realerted),
                len(report.escalated), len(report.released),
            )  # fmt: skip
        return report

    async def _realert(self, uow: UnitOfWork, ticket: Ticket, waited: int) -> None:
        now = self._clock.now()
        if ticket.operator_card_message_id is None:
            # A surge: its card still waits for the group's budget. The card, when it comes,
            # is the alert, and the queue board shows the ticket and its age meanwhile; a
            # notice would only take one more of the group's 20 messages a minute.
            note = f"{waited} s; no card yet, on the queue board"
            await add_event(uow, ticket, "sla_realert", now, SYSTEM.actor, note=note)
            return
        await add_event(uow, ticket, "sla_realert", now, SYSTEM.actor, note=f"{waited} s")
        await enqueue(
            uow, OPERATOR_NOTICE, now, {"notice": "unclaimed", "waited_seconds": waited},
            ticket=ticket,
        )  # fmt: skip

    async def _escalate(
        self, uow: UnitOfWork, ticket: Ticket, waited: int, admins: list[int]
    ) -> None:
        now = self._clock.now()
        await add_event(
            uow,
            ticket,
            "sla_escalated",
            now,
            SYSTEM.actor,
            note=f"{waited} s, {len(admins)} admins",
        )
        if not admins:
            log.warning("sla: ticket %s unclaimed, but there is no admin to alert", ticket.id)
        for admin in admins:
            await enqueue(
                uow, ADMIN_ALERT, now, {"admin_id": admin, "alert": "unclaimed",
                "waited_seconds": waited}, ticket=ticket,
            )  # fmt: skip

    async def _release(self, uow: UnitOfWork, before: Ticket, after: Ticket) -> None:
        now = self._clock.now()
        await add_event(
            uow, after, "sla_released", now, SYSTEM.actor, from_status=before.status,
            to_status=after.status, note=f"operator:{before.claimed_by} idle",
        )  # fmt: skip
        await enqueue(
            uow, OPERATOR_NOTICE, now, {"notice": "released_idle", "operator_id":
            before.claimed_by}, ticket=after,
        )  # fmt: skip
        await enqueue(uow, OPERATOR_CARD_EDIT, now, ticket=after)
