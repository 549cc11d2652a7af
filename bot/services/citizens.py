"""What the citizen-facing services share: the actor, the outcome they render, the registry.

``IntakeService`` (the report) and ``RelayService`` (the chat after it) both answer a
citizen with an :class:`Outcome`; both find or register the citizen with
:func:`citizen_for`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from bot.domain.model import Citizen, IntakeStep, Ticket
from bot.domain.rules import resolve_language
from bot.services.ports import UnitOfWork


class Notice(StrEnum):
    """What the citizen should be told besides the prompt of the current step."""

    RESUMED = "resumed"
    STALE_BUTTON = "stale_button"
    WRONG_INPUT = "wrong_input"
    OUTSIDE_CITY = "outside_city"
    ADDRESS_NOT_FOUND = "address_not_found"
    APPROXIMATE = "approximate"
    CONTACT_NOT_YOURS = "contact_not_yours"
    INVALID_PHONE = "invalid_phone"
    INVALID_NAME = "invalid_name"
    DETAIL_ADDED = "detail_added"
    KEPT = "kept"
    """A message sent where no answer was expected was kept on the report (as details, an
    attachment or the place)."""
    DETAILS_FULL = "details_full"
    MEDIA_FULL = "media_full"
    TOO_MANY_OPEN = "too_many_open"
    FLOODING = "flooding"
    CANCELLED = "cancelled"
    NOTHING_TO_CANCEL = "nothing_to_cancel"
    SUBMITTED = "submitted"
    RELAYED = "relayed"
    LOCATION_UPDATED = "location_updated"
    NO_REPORT = "no_report"
    OTHER_STEP = "other_step"
    """A message for a step the draft is no longer at (the handler routed it by the step it
    last saw): refused, nothing changed; the handler routes it again by the draft's step."""
    REOPENED = "reopened"
    """A message soon after the close reopened the ticket (``Outcome.ticket``) and went to
    the operators."""
    CLOSED_NEW_REPORT = "closed_new_report"
    """The ticket (``Outcome.ticket``) was closed too long ago: the message is kept on it,
    not relayed; offer a new report (and 112)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: the Telegram identity as opaque plain data."""

    telegram_id: int
    chat_id: int
    language_code: str | None = None
    username: str | None = None
    display_name: str | None = None


@dataclass(slots=True)
class Outcome:
    """What happened, for the edge to render: the draft (if any) and notices."""

    citizen: Citizen
    ticket: Ticket | None = None
    notices: list[Notice] = field(default_factory=list)
    open_tickets: list[Ticket] = field(default_factory=list)
    suggestion: str | None = None
    operators_reachable: bool = True
    """False while operator cards cannot be delivered: the report waits in the outbox, and
    the citizen must not be told that an operator is reading it."""

    @property
    def step(self) -> IntakeStep | None:
        """The step the draft waits at, or None when there is no draft."""
        return self.ticket.step if self.ticket and self.ticket.is_draft else None


async def citizen_for(
    uow: UnitOfWork, actor: Actor, now: datetime, default_language: str
) -> Citizen:
    """Return the actor's citizen row, registering a newcomer (language from Telegram) and
    remembering a changed username or that a blocked bot was unblocked."""
    citizen = await uow.citizens.get_by_telegram_id(actor.telegram_id)
    return await _settled(uow, actor, citizen, now, default_language)


async def citizen_and_draft(
    uow: UnitOfWork, actor: Actor, now: datetime, default_language: str
) -> tuple[Citizen, Ticket | None]:
    """:func:`citizen_for` and the citizen's draft in progress, read together (one
    statement: the first of every intake update)."""
    citizen, draft = await uow.citizens.with_draft(actor.telegram_id)
    return await _settled(uow, actor, citizen, now, default_language), draft


async def _settled(
    uow: UnitOfWork, actor: Actor, citizen: Citizen | None, now: datetime, default_language: str
) -> Citizen:
    if citizen is None:
        citizen = Citizen(
            telegram_id=actor.telegram_id,
            language=resolve_language(actor.language_code, default_language),
            username=actor.username,
            created_at=now,
            updated_at=now,
        )
        return await uow.citizens.add(citizen)
    if citizen.blocked_bot or citizen.username != actor.username:
        citizen.blocked_bot = False
        citizen.username = actor.username
        citizen.updated_at = now
        await uow.citizens.update(citizen)
    return citizen
