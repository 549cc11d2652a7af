"""Personal data under UU PDP (Law 27/2022): retention and purge, access, erasure.

* **Retention.** Closed tickets lose their personal fields ``retention`` after they ended,
  drafts that were never sent (abandoned, cancelled) after ``draft_retention``; citizens
  untouched for ``retention`` lose their name, username and phone (and, without an advisory
  subscription, their Telegram id). :meth:`PrivacyService.purge` does it, idempotently.
* **Access.** :meth:`PrivacyService.my_data` returns what is held about a citizen.
* **Erasure.** :meth:`PrivacyService.erase` removes the citizen record's personal data, the
  personal fields of their finished tickets and drafts, and their advisory subscription.
  Open tickets are kept until they close; :meth:`PrivacyService.ticket_closed` (the
  console's close hook) anonymises them then and completes the erasure.

Every request is an audit entry naming the citizen by the record's id only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain.model import AuditEntry, Citizen, RelayMessage, Ticket, TicketStatus
from bot.domain.privacy import (
    PERSONAL_EVENT_NOTES,
    Centroids,
    anonymised,
    is_draft_record,
    without_personal_data,
)
from bot.domain.rules import resolve_language
from bot.services.citizens import Actor
from bot.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from bot.services.subscriptions import withdraw

log = logging.getLogger(__name__)

BATCH = 25
"""Tickets (or citizens) anonymised per unit of work: short transactions, so a long purge
never holds SQLite's one writer lock for long (intake and relay write between batches)."""
CHAT_KEPT_FOR = timedelta(days=1)
"""How long a ticket anonymised at its close keeps the chat id for its last notices."""
CITIZEN = "citizen"
ERASE_ATTEMPTS = 3


class _Overtaken(Exception):
    """A ticket was written by someone else while the erasure read it."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long personal data are kept (``RETENTION_DAYS``, ``DRAFT_RETENTION_DAYS``)."""

    retention: timedelta = timedelta(days=365)
    draft_retention: timedelta = timedelta(days=30)


@dataclass(slots=True)
class PurgeReport:
    """What a purge anonymised (or, dry, would): counts only."""

    tickets: int = 0
    """Closed tickets past ``retention``."""
    drafts: int = 0
    """Abandoned or cancelled drafts past ``draft_retention``."""
    chats: int = 0
    """Tickets anonymised at their close whose chat id went now."""
    messages: int = 0
    notes: int = 0
    outbox: int = 0
    citizens: int = 0
    dry_run: bool = False

    @property
    def total(self) -> int:
        """Records changed (tickets, drafts, citizens)."""
        return self.tickets + self.drafts + self.chats + self.citizens

    def summary(self) -> str:
        """One line of counts (no personal data)."""
        return (
            f"{self.tickets} closed tickets, {self.drafts} drafts, {self.chats} chat ids, "
            f"{self.messages} relayed messages, {self.notes} notes, {self.outbox} outbox rows, "
            f"{self.citizens} citizens"
        )


@dataclass(frozen=True, slots=True)
class HeldTicket:
    """One ticket as the citizen may see it, with its relay log."""

    ticket: Ticket
    messages: tuple[RelayMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class MyData:
    """What is held about a citizen (``citizen`` None: nothing, never seen)."""

    language: str
    citizen: Citizen | None = None
    tickets: tuple[HeldTicket, ...] = ()


class EraseStatus(StrEnum):
    """How an erasure request ended."""

    CONFIRM = "confirm"
    """Asked: nothing is done before the citizen confirms."""
    DONE = "done"
    """Everything erased."""
    PENDING = "pending"
    """Erased but the open tickets, which are anonymised when they close."""
    NOTHING = "nothing"
    """No data held about this person."""


@dataclass(frozen=True, slots=True)
class Erasure:
    """The answer to an erasure request or its confirmation."""

    language: str
    status: EraseStatus
    open_refs: tuple[str, ...] = ()
    """The open tickets kept until they close."""
    tickets: int = 0
    """Tickets and drafts anonymised (or, when asked, to be anonymised)."""
    subscribed: bool = False
    """Whether an advisory subscription was (or will be) withdrawn."""


class PrivacyService:
    """Retention purge, the citizen's access and erasure requests, erasure at close."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        policy: RetentionPolicy,
        centroids: Centroids,
        *,
        default_language: str = "id",
        citizen_uow_factory: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._citizen_uow_factory = citizen_uow_factory or uow_factory
        """For the citizen's own requests: a bounded wait for SQLite's writer (StorageBusy)."""
        self._clock = clock
        self.policy = policy
        self._centroids = centroids
        self._default_language = default_language

    # -- retention ------------------------------------------------------------------------

    async def purge(self, *, dry_run: bool = False) -> PurgeReport:
        """Anonymises what is past its retention (``dry_run``: only counts it). Idempotent:
        a second run finds nothing. Logs and audits counts only."""
        now = self._clock.now()
        report = PurgeReport(dry_run=dry_run)
        limit = None if dry_run else BATCH
        while await self._purge_tickets(now, report, limit) == BATCH and not dry_run:
            pass
        while await self._purge_citizens(now, report, limit) == BATCH and not dry_run:
            pass
        if report.total and not dry_run:
            async with self._uow_factory() as uow:
                await uow.audit.add(
                    AuditEntry(at=now, actor="system", kind="privacy_purge",
                               subject="retention", note=report.summary())
                )  # fmt: skip
                await uow.commit()
        if report.total:
            log.info("privacy purge%s: %s", " (dry run)" if dry_run else "", report.summary())
        return report

    async def _purge_tickets(self, now: datetime, report: PurgeReport, limit: int | None) -> int:
        """One batch of tickets (all of them, counted only, without ``limit``); return how
        many were found, 0 when none could be written."""
        async with self._uow_factory() as uow:
            due = found = await uow.tickets.due_for_anonymisation(
                now - self.policy.retention, now - self.policy.draft_retention,
                now - CHAT_KEPT_FOR, limit,
            )  # fmt: skip
            if limit is not None:  # tickets written meanwhile are left to the next run
                done = set(await self._anonymise(uow, due, now, report))
                due = [t for t in due if t.id in done]
            for ticket in due:
                if ticket.anonymised_at is not None:
                    report.chats += 1
                elif is_draft_record(ticket):
                    report.drafts += 1
                else:
                    report.tickets += 1
            await uow.commit()
        return len(found) if due else 0  # a batch all overtaken ends this run

    async def _purge_citizens(self, now: datetime, report: PurgeReport, limit: int | None) -> int:
        """One batch of citizens untouched for the retention period: name, username and phone
        go; without a subscription the Telegram id too (a subscription is consent that
        stands until withdrawn)."""
        async with self._uow_factory() as uow:
            citizens = await uow.citizens.inactive(now - self.policy.retention, limit)
            report.citizens += len(citizens)
            for citizen in citizens if limit is not None else ():
                subscribed = citizen.subscribed  # consent that stands: the Telegram id stays
                await uow.citizens.update(
                    without_personal_data(citizen, now, erase_id=not subscribed)
                )
            if limit is not None:
                await uow.advisories.forget_recipients(
                    [c.id or 0 for c in citizens if not c.subscribed]
                )
            await uow.commit()
        return len(citizens)

    async def _anonymise(
        self,
        uow: UnitOfWork,
        tickets: Sequence[Ticket],
        now: datetime,
        report: PurgeReport | None = None,
        *,
        keep_chat: bool = False,
    ) -> list[int]:
        """In ``uow``: the tickets (each by compare-and-set: one written since it was read is
        left alone, so nothing written meanwhile comes back), then in one statement each
        their relay log, their notes and their finished outbox rows. Return the ids of the
        tickets written."""
        done = []
        for ticket in tickets:
            changed = anonymised(ticket, now, self._centroids, keep_chat=keep_chat)
            if await uow.tickets.update_if_unchanged(changed):
                done.append(ticket.id or 0)
        if done:
            messages = await uow.messages.anonymise(done)
            notes = await uow.events.redact_notes(done, PERSONAL_EVENT_NOTES)
            outbox = await uow.outbox.scrub_finished(done)
            if report is not None:
                report.messages += messages
                report.notes += notes
                report.outbox += outbox
        return done

    # -- the citizen's rights -------------------------------------------------------------

    def _language(self, actor: Actor, citizen: Citizen | None) -> str:
        if citizen is not None:
            return citizen.language
        return resolve_language(actor.language_code, self._default_language)

    async def _audit(self, uow: UnitOfWork, kind: str, citizen: Citizen | None, note: str) -> None:
        subject = f"{CITIZEN}:{citizen.id}" if citizen is not None else f"{CITIZEN}:unknown"
        await uow.audit.add(
            AuditEntry(at=self._clock.now(), actor=subject, kind=kind, subject=subject, note=note)
        )

    async def my_data(self, actor: Actor) -> MyData:
        """What is held about the actor (nothing for someone never seen: no record is made);
        the request is audited."""
        async with self._citizen_uow_factory() as uow:
            citizen = await uow.citizens.get_by_telegram_id(actor.telegram_id)
            held: list[HeldTicket] = []
            if citizen is not None:
                for ticket in await uow.tickets.of_citizen(citizen.id or 0):
                    messages = await uow.messages.for_ticket(ticket.id or 0)
                    held.append(HeldTicket(ticket, tuple(messages)))
            await self._audit(uow, "privacy_access", citizen, f"{len(held)} tickets")
            await uow.commit()
        log.info("privacy: data access request answered")
        return MyData(self._language(actor, citizen), citizen, tuple(held))

    async def erase(self, actor: Actor, *, confirmed: bool) -> Erasure:
        """Without ``confirmed``: says what would be erased. Confirmed: erases the citizen's
        personal data now, but the open tickets' (anonymised when they close); audited.

        A ticket written meanwhile (the citizen typing into a draft) makes the whole erasure
        start again, so nothing is left half erased."""
        for _ in range(ERASE_ATTEMPTS - 1):
            try:
                return await self._erase(actor, confirmed=confirmed)
            except _Overtaken:
                log.info("privacy: erasure overtaken by another write, again")
        return await self._erase(actor, confirmed=confirmed)

    async def _erase(self, actor: Actor, *, confirmed: bool) -> Erasure:
        now = self._clock.now()
        async with self._citizen_uow_factory() as uow:
            citizen = await uow.citizens.get_by_telegram_id(actor.telegram_id)
            language = self._language(actor, citizen)
            if citizen is None:
                if confirmed:
                    await self._audit(uow, "privacy_erase", None, "nothing held")
                    await uow.commit()
                return Erasure(language, EraseStatus.NOTHING)
            tickets = await uow.tickets.of_citizen(citizen.id or 0)
            open_tickets = [t for t in tickets if t.status.is_open]
            finished = [t for t in tickets if not t.status.is_open and t.anonymised_at is None]
            refs = tuple(t.ref or "" for t in open_tickets)
            if not confirmed:
                return Erasure(
                    language, EraseStatus.CONFIRM, refs, len(finished), citizen.subscribed
                )
            for ticket in finished:
                if ticket.is_draft:  # the report being written goes with the rest
                    ticket.status, ticket.step = TicketStatus.CANCELLED, None
                    ticket.closed_at = ticket.updated_at = now
            if len(await self._anonymise(uow, finished, now)) < len(finished):
                raise _Overtaken  # leaving without commit rolls everything back
            await uow.advisories.forget_recipients([citizen.id or 0])
            erased = without_personal_data(citizen, now, erase_id=not open_tickets)
            withdraw(erased)
            if open_tickets:
                erased.erase_requested_at = citizen.erase_requested_at or now
            erased.updated_at = now
            await uow.citizens.update(erased)
            status = EraseStatus.PENDING if open_tickets else EraseStatus.DONE
            await self._audit(
                uow, "privacy_erase", citizen,
                f"{status.value}: {len(finished)} tickets anonymised, {len(refs)} open kept",
            )  # fmt: skip
            await uow.commit()
        log.info("privacy: erasure request %s", status.value)
        return Erasure(language, status, refs, len(finished), citizen.subscribed)

    async def ticket_closed(self, uow: UnitOfWork, ticket: Ticket) -> None:
        """In the console's unit of work, after a ticket closed (resolved, closed, cancelled):
        when its citizen asked for erasure, the ticket is anonymised now (its chat id kept a
        day for the last notices) and, with no ticket left open, the erasure completes."""
        if ticket.anonymised_at is not None or ticket.status.is_open:
            return
        citizen = await uow.citizens.get(ticket.citizen_id)
        if citizen is None or citizen.erase_requested_at is None:
            return
        now = self._clock.now()
        current = await uow.tickets.get(ticket.id or 0)
        await self._anonymise(uow, [current or ticket], now, keep_chat=True)
        if await uow.tickets.open_tickets(citizen.id or 0):
            return
        others = [
            t for t in await uow.tickets.of_citizen(citizen.id or 0)
            if t.anonymised_at is None and t.id != ticket.id
        ]  # fmt: skip
        for other in others:
            if other.is_draft:  # begun after the request: it goes with the rest
                other.status, other.step = TicketStatus.CANCELLED, None
                other.closed_at = other.updated_at = now
        if len(await self._anonymise(uow, others, now)) < len(others):
            log.warning("privacy: a ticket was written meanwhile, left to the purge")
        erased = without_personal_data(citizen, now, erase_id=True)
        withdraw(erased)
        erased.updated_at = now
        await uow.citizens.update(erased)
        await self._audit(uow, "privacy_erase_completed", citizen, "open tickets closed")
        log.info("privacy: erasure completed at the close of ticket %s", ticket.id)
