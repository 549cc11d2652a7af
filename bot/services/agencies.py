"""Agency handoff: dispatching a ticket to agencies, their progress, and the ack deadline.

* **Dispatch** (:func:`hand_off`, called by ``ConsoleService.dispatch`` in the operator's
  unit of work): one assignment per agency. An agency with a Telegram chat gets an
  ``AGENCY_CARD``; one with a webhook gets an ``AGENCY_WEBHOOK`` (with an idempotency key
  fixed now, so every retry carries it); one with neither is *dispatched by phone* (the
  operator calls the number shown on the card). Chat or webhook start the acknowledgement
  deadline (``ack_deadline_seconds``).
* **Progress** (:meth:`AgencyService.press` from the card's buttons,
  :meth:`AgencyService.report` from the signed status endpoint): acknowledged, en route with
  ETA, on scene, completed, cannot handle with a reason. A press counts only from the
  agency's own chat (and, when the file lists ``members``, only from them). Each step is an
  event on the ticket's timeline, the assignment's times, the ticket's status where the
  lifecycle table allows it, an edit of the agency's card and of the operator card, a notice
  in the ticket's topic, and for the citizen (acknowledged, en route, on scene, completed) a
  ``CITIZEN_STATUS`` notice.
* **Deadline** (:meth:`AgencyService.sweep`, on a timer): an agency that has not acknowledged
  by its deadline is notified again; one deadline later the ticket's topic is alerted. The
  markers are columns set by compare-and-set, so restarts and two processes fire each once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from bot.config import AgencyConfig
from bot.domain.handoff import (
    TICKET_ACTIONS,
    AgencyStep,
    DeclineReason,
    StepRefused,
    apply_step,
    awaiting_ack,
)
from bot.domain.lifecycle import SYSTEM, apply, is_allowed
from bot.domain.model import Assignment, AssignmentChannel, OutboxMessage, Ticket
from bot.services.outbox_kinds import (
    ADMIN_ALERT,
    AGENCY_CARD,
    AGENCY_CARD_EDIT,
    AGENCY_REMINDER,
    AGENCY_WEBHOOK,
    CITIZEN_STATUS,
    OPERATOR_CARD_EDIT,
    OPERATOR_NOTICE,
    set_dead_letter,
    set_recorder,
)
from bot.services.ports import Clock, DeliveryResult, UnitOfWork, UnitOfWorkFactory
from bot.services.queue import request_board
from bot.services.routing import suggest_for
from bot.services.rows import add_event, enqueue

log = logging.getLogger(__name__)

TICKET_ATTEMPTS = 5
KEYS_KEPT = timedelta(minutes=15)
"""Inbound idempotency keys are kept this long (a request older than 5 minutes is refused
by its timestamp anyway)."""
#: What the citizen is told per step (CITIZEN_STATUS ``status``); «cannot handle» is for staff.
CITIZEN_STEPS: Mapping[AgencyStep, str] = {
    AgencyStep.ACKNOWLEDGED: "acknowledged",
    AgencyStep.EN_ROUTE: "en_route",
    AgencyStep.ON_SCENE: "on_scene",
    AgencyStep.COMPLETED: "completed",
}


class AgencyDirectory:
    """The agencies of the agencies file, by code and by chat."""

    def __init__(self, agencies: Iterable[AgencyConfig]) -> None:
        self.agencies: tuple[AgencyConfig, ...] = tuple(agencies)
        self._by_code = {agency.code: agency for agency in self.agencies}

    def get(self, code: str) -> AgencyConfig | None:
        """The agency with this code, or None."""
        return self._by_code.get(code)

    def names(self) -> dict[str, str]:
        """Code -> name, in the file's order."""
        return {agency.code: agency.name for agency in self.agencies}

    def channel(self, code: str) -> AssignmentChannel:
        """How the agency gets a ticket: its chat, else its webhook, else by phone."""
        agency = self._by_code.get(code)
        if agency is not None and agency.telegram_chat_id is not None:
            return AssignmentChannel.TELEGRAM
        if agency is not None and agency.webhook_url is not None:
            return AssignmentChannel.WEBHOOK
        return AssignmentChannel.PHONE


class AgencyStatus(StrEnum):
    """How an agency's press or status update ended."""

    DONE = "done"
    NOT_ALLOWED = "not_allowed"
    """Not from the agency's chat, or not one of its ``members``."""
    NOT_FOUND = "not_found"
    """No such ticket, or the ticket was not handed to this agency."""
    REFUSED = "refused"
    """The step does not fit the agency's progress (``why``: closed, repeated, backwards,
    bad_eta)."""
    REPLAY = "replay"
    """The agency's system sent this request (its idempotency key) before."""


@dataclass(frozen=True, slots=True)
class AgencyResult:
    """The outcome of an agency's step, with the ticket and assignment as they are now."""

    status: AgencyStatus
    ticket: Ticket | None = None
    assignment: Assignment | None = None
    why: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the step was recorded."""
        return self.status is AgencyStatus.DONE


@dataclass(slots=True)
class AckReport:
    """Assignment ids whose acknowledgement deadline fired in one sweep."""

    reminded: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)

    @property
    def fired(self) -> int:
        """How many timers fired."""
        return len(self.reminded) + len(self.escalated)


# -- dispatch ---------------------------------------------------------------------------------


async def hand_off(
    uow: UnitOfWork,
    ticket: Ticket,
    codes: Sequence[str],
    actor: str,
    now: datetime,
    *,
    directory: AgencyDirectory,
) -> dict[str, object]:
    """Assigns ``ticket`` to the agencies ``codes`` (none assigned yet) and queues their
    deliveries; returns the event details (names, codes, channel per code, phone agencies)."""
    channels: dict[str, str] = {}
    for code in codes:
        agency = directory.get(code)
        channel = directory.channel(code)
        deadline = agency.ack_deadline_seconds if agency is not None else None
        reaches = agency is not None and (agency.telegram_chat_id or agency.webhook_url)
        await uow.assignments.add(
            Assignment(
                ticket_id=ticket.id or 0, agency_code=code, dispatched_at=now, channel=channel,
                by=actor,
                ack_due_at=now + timedelta(seconds=deadline) if reaches and deadline else None,
            )
        )  # fmt: skip
        channels[code] = channel.value
        if agency is not None and agency.telegram_chat_id is not None:
            await enqueue(uow, AGENCY_CARD, now, {"agency": code}, ticket=ticket)
        if agency is not None and agency.webhook_url is not None:
            await _enqueue_webhook(uow, ticket, code, "dispatch", now)
            if channel is not AssignmentChannel.WEBHOOK:
                channels[code] = f"{channel.value}+webhook"
    names = [directory.names().get(code, code) for code in codes]
    phone = [code for code in codes if directory.channel(code) is AssignmentChannel.PHONE]
    return {"agencies": names, "codes": list(codes), "channels": channels, "phone": phone}


async def refresh_cards(
    uow: UnitOfWork, ticket: Ticket, now: datetime, directory: AgencyDirectory
) -> None:
    """Queues an edit of every agency card of the ticket (an operator recorded progress for
    all agencies, or closed the ticket: the cards show it and lose the buttons that no
    longer fit)."""
    for assignment in await uow.assignments.for_ticket(ticket.id or 0):
        agency = directory.get(assignment.agency_code)
        if agency is not None and agency.telegram_chat_id is not None:
            payload = {"agency": assignment.agency_code}
            await enqueue(uow, AGENCY_CARD_EDIT, now, payload, ticket=ticket)


async def _enqueue_webhook(
    uow: UnitOfWork, ticket: Ticket, code: str, event: str, now: datetime
) -> None:
    key = f"{ticket.ref or ticket.id}-{code}-{event}-{uuid.uuid4().hex[:16]}"
    await enqueue(
        uow, AGENCY_WEBHOOK, now, {"agency": code, "event": event, "idempotency_key": key},
        ticket=ticket,
    )  # fmt: skip


# -- progress and deadlines -------------------------------------------------------------------


class AgencyService:
    """Agencies' steps on tickets handed to them, and the acknowledgement deadline."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        directory: AgencyDirectory,
        *,
        operator_chat_id: int | None = None,
        read_uow_factory: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._read_uow_factory = read_uow_factory or uow_factory
        self._clock = clock
        self.directory = directory
        self._operator_chat_id = operator_chat_id

    async def suggestions(self, ticket_id: int) -> list[str]:
        """The codes routing suggests for the ticket (category × kecamatan), file order."""
        async with self._read_uow_factory() as uow:
            ticket = await uow.tickets.get(ticket_id)
        if ticket is None:
            return []
        return [agency.code for agency in suggest_for(self.directory.agencies, ticket)]

    def may_press(self, chat_id: int, user_id: int, agency_code: str) -> bool:
        """Whether a press in ``chat_id`` by ``user_id`` counts for the agency: only from its
        own chat, and only by its ``members`` when the agencies file lists them."""
        agency = self.directory.get(agency_code)
        if agency is None or agency.telegram_chat_id != chat_id:
            return False
        return not agency.members or user_id in agency.members

    async def press(
        self,
        chat_id: int,
        user_id: int,
        ticket_id: int,
        agency_code: str,
        step: AgencyStep,
        *,
        eta_minutes: int | None = None,
        reason: DeclineReason | None = None,
    ) -> AgencyResult:
        """A button on the agency's card: counts only from the agency's chat (and members)."""
        agency = self.directory.get(agency_code)
        if agency is None or not self.may_press(chat_id, user_id, agency_code):
            log.info("agency press on ticket %s refused: chat %s / user %s may not act for %s",
                     ticket_id, chat_id, user_id, agency_code)  # fmt: skip
            return AgencyResult(AgencyStatus.NOT_ALLOWED)
        return await self._step(
            ticket_id, None, agency, step, f"agency:{agency.code}:{user_id}",
            eta_minutes=eta_minutes, reason=reason,
        )  # fmt: skip

    async def report(
        self,
        agency_code: str,
        ref: str,
        step: AgencyStep,
        *,
        eta_minutes: int | None = None,
        reason: DeclineReason | None = None,
        request_key: str | None = None,
    ) -> AgencyResult:
        """A status update the agency's system posted (already authenticated as the agency).

        ``request_key`` (its idempotency key) is stored in the same unit of work as the step:
        a second request with the key is a REPLAY and changes nothing."""
        agency = self.directory.get(agency_code)
        if agency is None:
            return AgencyResult(AgencyStatus.NOT_ALLOWED)
        return await self._step(
            None, ref, agency, step, f"agency:{agency.code}:api", eta_minutes=eta_minutes,
            reason=reason, request_key=request_key,
        )  # fmt: skip

    async def _step(
        self,
        ticket_id: int | None,
        ref: str | None,
        agency: AgencyConfig,
        step: AgencyStep,
        actor: str,
        *,
        eta_minutes: int | None,
        reason: DeclineReason | None,
        request_key: str | None = None,
    ) -> AgencyResult:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            if request_key is not None and not await uow.agency_requests.remember(
                agency.code, request_key, now
            ):
                return AgencyResult(AgencyStatus.REPLAY)
            ticket = (
                await uow.tickets.get(ticket_id)
                if ticket_id is not None
                else await uow.tickets.get_by_ref(ref or "")
            )
            if ticket is None or ticket.id is None:
                return AgencyResult(AgencyStatus.NOT_FOUND)
            assignment = await uow.assignments.get(ticket.id, agency.code)
            if assignment is None:
                return AgencyResult(AgencyStatus.NOT_FOUND, ticket)
            try:
                after = apply_step(assignment, step, now, eta_minutes=eta_minutes, reason=reason)
            except StepRefused as refused:
                return AgencyResult(AgencyStatus.REFUSED, ticket, assignment, why=refused.why)
            await uow.assignments.update(after)
            before, ticket = ticket, await self._advance(uow, ticket, step, now, eta_minutes)
            await add_event(
                uow, ticket, f"agency_{step.value}", now, actor, from_status=before.status,
                to_status=ticket.status if ticket.status is not before.status else None,
                note=_note(agency.code, after, step),
            )  # fmt: skip
            await self._announce(uow, ticket, agency, after, step=step, now=now)
            if ticket.status is not before.status:
                await request_board(uow, now, self._operator_chat_id)
            await uow.commit()
        return AgencyResult(AgencyStatus.DONE, ticket, after)

    async def _advance(
        self, uow: UnitOfWork, ticket: Ticket, step: AgencyStep, now: datetime, eta: int | None
    ) -> Ticket:
        """Moves the ticket's status where the lifecycle table allows the step's action
        (compare-and-set, reading again when an operator was faster)."""
        action = TICKET_ACTIONS.get(step)
        for _ in range(TICKET_ATTEMPTS):
            if action is None or not is_allowed(ticket.status, action):
                return ticket
            after = apply(ticket, action, now, by=SYSTEM, eta_minutes=eta)
            if await uow.tickets.update_if_unchanged(after):
                after.version += 1
                return after
            ticket = await uow.tickets.get(ticket.id or 0) or ticket
        log.warning("agency step on ticket %s: the ticket kept changing", ticket.id)
        return ticket

    async def _announce(
        self,
        uow: UnitOfWork,
        ticket: Ticket,
        agency: AgencyConfig,
        assignment: Assignment,
        *,
        step: AgencyStep,
        now: datetime,
    ) -> None:
        if agency.telegram_chat_id is not None:
            await enqueue(uow, AGENCY_CARD_EDIT, now, {"agency": agency.code}, ticket=ticket)
        await enqueue(uow, OPERATOR_CARD_EDIT, now, ticket=ticket)
        notice: dict[str, object] = {
            "notice": "agency_status", "agency": agency.code, "agency_name": agency.name,
            "step": step.value, "eta_minutes": assignment.eta_minutes,
            "reason": assignment.decline_reason,
        }  # fmt: skip
        await enqueue(uow, OPERATOR_NOTICE, now, notice, ticket=ticket)
        if (status := CITIZEN_STEPS.get(step)) is not None:
            citizen: dict[str, object] = {"status": status, "agencies": [agency.name]}
            if step is AgencyStep.EN_ROUTE:
                citizen["eta_minutes"] = assignment.eta_minutes
            await enqueue(uow, CITIZEN_STATUS, now, citizen, ticket=ticket)

    async def sweep(self) -> AckReport:
        """Fires the due acknowledgement deadlines: the agency is notified again, and one
        deadline after that the ticket's topic is alerted. Each fires once."""
        now = self._clock.now()
        report = AckReport()
        async with self._uow_factory() as uow:
            for assignment in await uow.assignments.ack_overdue(now):
                agency = self.directory.get(assignment.agency_code)
                ticket = await uow.tickets.get(assignment.ticket_id)
                if not awaiting_ack(assignment) or assignment.id is None or ticket is None:
                    continue
                if agency is None or not ticket.status.is_open:  # nobody left to wait for
                    await uow.assignments.mark(assignment.id, "ack_escalated_at", now)
                    continue
                deadline = timedelta(seconds=agency.ack_deadline_seconds or 0)
                waited = int((now - assignment.dispatched_at).total_seconds())
                if assignment.ack_reminded_at is None:
                    if await uow.assignments.mark(assignment.id, "ack_reminded_at", now):
                        await self._remind(uow, ticket, agency, waited, now)
                        report.reminded.append(assignment.id)
                elif now >= assignment.ack_reminded_at + deadline and await uow.assignments.mark(
                    assignment.id, "ack_escalated_at", now
                ):
                    await self._escalate(uow, ticket, agency, waited, now)
                    report.escalated.append(assignment.id)
            await uow.agency_requests.forget_before(now - KEYS_KEPT)
            await uow.commit()
        if report.fired:
            log.info("agency deadlines: %d reminded, %d escalated", len(report.reminded),
                     len(report.escalated))  # fmt: skip
        return report

    async def _remind(
        self, uow: UnitOfWork, ticket: Ticket, agency: AgencyConfig, waited: int, now: datetime
    ) -> None:
        await add_event(uow, ticket, "agency_ack_reminder", now, SYSTEM.actor,
                        note=f"{agency.code} {waited} s")  # fmt: skip
        if agency.telegram_chat_id is not None:
            await enqueue(
                uow, AGENCY_REMINDER, now, {"agency": agency.code, "waited_seconds": waited},
                ticket=ticket,
            )  # fmt: skip
        if agency.webhook_url is not None:
            await _enqueue_webhook(uow, ticket, agency.code, "reminder", now)

    async def _escalate(
        self, uow: UnitOfWork, ticket: Ticket, agency: AgencyConfig, waited: int, now: datetime
    ) -> None:
        await add_event(uow, ticket, "agency_ack_escalated", now, SYSTEM.actor,
                        note=f"{agency.code} {waited} s")  # fmt: skip
        await enqueue(
            uow, OPERATOR_NOTICE, now, {"notice": "agency_unacknowledged", "agency": agency.code,
            "agency_name": agency.name, "waited_seconds": waited}, ticket=ticket,
        )  # fmt: skip


def _note(code: str, assignment: Assignment, step: AgencyStep) -> str:
    if step is AgencyStep.EN_ROUTE and assignment.eta_minutes is not None:
        return f"{code} ETA {assignment.eta_minutes} min"
    if step is AgencyStep.CANNOT_HANDLE:
        return f"{code}: {assignment.decline_reason}"
    return code


# -- what the outbox reports back --------------------------------------------------------------


async def record_agency_card(
    uow: UnitOfWork, message: OutboxMessage, result: DeliveryResult
) -> None:
    """Stores where the agency's card is, so its edits and reminders find it."""
    code = str(message.payload.get("agency", ""))
    assignment = await uow.assignments.get(message.ticket_id or 0, code)
    if assignment is None:
        return
    assignment.card_chat_id = result.chat_id
    assignment.card_message_id = result.message_id
    await uow.assignments.update(assignment)


async def webhook_dead(uow: UnitOfWork, message: OutboxMessage) -> None:
    """A webhook given up: shown in the ticket's topic, on its timeline and to the admins."""
    now = message.failed_at or message.next_attempt_at
    code = str(message.payload.get("agency", ""))
    reason = (message.last_error or "")[:200]
    ticket = await uow.tickets.get(message.ticket_id or 0)
    if ticket is not None:
        await add_event(uow, ticket, "agency_webhook_failed", now, SYSTEM.actor,
                        note=f"{code}: {reason}")  # fmt: skip
        await enqueue(
            uow, OPERATOR_NOTICE, now, {"notice": "agency_webhook_failed", "agency": code,
            "attempts": message.attempts, "reason": reason}, ticket=ticket,
        )  # fmt: skip
    for operator in await uow.operators.list():
        if operator.is_admin:
            await enqueue(
                uow, ADMIN_ALERT, now, {"admin_id": operator.telegram_id, "event":
                "webhook_dead", "audience": "agency", "agency": code, "reason": reason,
                "ref": ticket.ref if ticket else None}, ticket=ticket, rank=1,
            )  # fmt: skip
    log.error("agency %s webhook for ticket %s given up after %d attempts: %s", code,
              message.ticket_id, message.attempts, reason)  # fmt: skip


set_recorder(AGENCY_CARD, record_agency_card)
set_dead_letter(AGENCY_WEBHOOK, webhook_dead)
