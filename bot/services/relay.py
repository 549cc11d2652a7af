"""The conversation after submit: citizen -> operators and operators -> citizen.

Both directions are logged in the relay log (``messages``) and delivered through the outbox.

**Citizen -> operators.** A message goes to the citizen's newest open ticket (flood limit:
``flood_limit_per_minute`` per citizen). With no open ticket, the rule after the close:

* within ``reopen_window`` (30 minutes) of the close of their last resolved or closed
  ticket, the message reopens it: back to the queue, unclaimed, SLA timers restarted; the
  operators are told (``OPERATOR_TOPIC_STATE`` ``reopen``, then ``OPERATOR_NOTICE`` ``reopened``),
  get the message, and the card and board follow (``Notice.REOPENED``);
* later, the message is still logged on that old ticket but not relayed, and the citizen is
  offered a new report and 112 (``Notice.CLOSED_NEW_REPORT``);
* cancelled tickets are not reopened; without any ticket the answer is ``Notice.NO_REPORT``.

**Operators -> citizen.** A post in a ticket's topic (or a reply to its card) by an active
roster member is logged (``Direction.TO_CITIZEN``) and queued as ``CITIZEN_RELAY``: a copy
under the role header, never the operator's own account. A text starting with ``!`` is an
internal note: a timeline event, not relayed. Edits are relayed again as marked copies. A
non-member's post is ignored (logged, and an event on the ticket's timeline). Posts and
notes count as operator activity (``last_operator_message_at``) for the SLA.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from bot.domain.lifecycle import CLOSED_STATUSES, SYSTEM, Action, TransitionError, apply
from bot.domain.model import Citizen, Direction, RelayMessage, Ticket
from bot.domain.rules import clean_text
from bot.services.citizens import Actor, Notice, Outcome, citizen_for
from bot.services.health import DeliveryHealth
from bot.services.outbox_kinds import (
    CITIZEN_RELAY,
    OPERATOR_CARD_EDIT,
    OPERATOR_NOTICE,
    OPERATOR_RELAY,
    OPERATOR_TOPIC_STATE,
)
from bot.services.ports import Clock, UnitOfWork, UnitOfWorkFactory
from bot.services.queue import request_board
from bot.services.roster import active_member
from bot.services.rows import add_event, enqueue, patch_ticket

log = logging.getLogger(__name__)

MAX_RELAY_CHARS = 4096
NOTE_PREFIX = "!"
CITIZEN = "citizen"


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    """Configurable limits of the relay."""

    flood_limit_per_minute: int = 20
    reopen_window: timedelta = timedelta(minutes=30)
    default_language: str = "id"
    operator_chat_id: int | None = None


@dataclass(frozen=True, slots=True)
class OperatorPost:
    """A message in the operators' chat, as plain data."""

    telegram_id: int
    """The sender (checked against the roster)."""
    chat_id: int
    message_id: int
    kind: str
    """text, photo, voice, video, document, audio, animation, location, sticker…"""
    text: str | None = None
    """The text or caption."""
    file_id: str | None = None
    thread_id: int | None = None
    """The forum topic the post is in (None: General, or not a forum)."""
    reply_to_message_id: int | None = None
    """The message the post replies to (a ticket's card, where there are no topics)."""
    edited: bool = False


class PostStatus(StrEnum):
    """What became of an operator's post."""

    RELAYED = "relayed"
    NOTE = "note"
    """An internal note (``!``): on the timeline, not sent to the citizen."""
    IGNORED = "ignored"
    """The sender is not an active roster member."""
    NO_TICKET = "no_ticket"
    """Not in a ticket's topic nor a reply to a card: not for a citizen."""


@dataclass(frozen=True, slots=True)
class PostResult:
    """The outcome of an operator's post, with its ticket (when found)."""

    status: PostStatus
    ticket: Ticket | None = None


class RelayService:
    """Carries messages between a citizen and the operators of their ticket."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        policy: RelayPolicy,
        *,
        health: DeliveryHealth | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._policy = policy
        self._health = health

    # -- citizen -> operators -------------------------------------------------------------

    async def from_citizen(
        self, actor: Actor, kind: str, message_id: int, text: str | None, file_id: str | None
    ) -> Outcome:
        """Logs a citizen's message on their ticket and queues it for the operators (or
        reopens a ticket closed moments ago, see the module's rule)."""
        now = self._clock.now()
        text = clean_text(text, MAX_RELAY_CHARS) if text else None
        async with self._uow_factory() as uow:
            citizen = await citizen_for(uow, actor, now, self._policy.default_language)
            open_tickets = await uow.tickets.open_tickets(citizen.id or 0)
            ticket = (
                open_tickets[0] if open_tickets else await uow.tickets.last_closed(citizen.id or 0)
            )
            if ticket is None:
                await uow.commit()
                return Outcome(citizen, None, [Notice.NO_REPORT])
            recent = await uow.messages.count_from_citizen_since(
                citizen.id or 0, now - timedelta(minutes=1)
            )
            if recent >= self._policy.flood_limit_per_minute:
                await uow.commit()
                return Outcome(citizen, ticket, [Notice.FLOODING], open_tickets=open_tickets)
            await uow.messages.add(
                RelayMessage(
                    ticket_id=ticket.id or 0, direction=Direction.FROM_CITIZEN, at=now, kind=kind,
                    text=text, file_id=file_id, telegram_chat_id=actor.chat_id,
                    telegram_message_id=message_id,
                )
            )  # fmt: skip
            notice = Notice.RELAYED
            if not open_tickets:
                reopened = await self._reopen(uow, citizen, ticket)
                if reopened is None:
                    await uow.commit()
                    return Outcome(citizen, ticket, [Notice.CLOSED_NEW_REPORT])
                ticket, open_tickets, notice = reopened, [reopened], Notice.REOPENED
            await enqueue(
                uow, OPERATOR_RELAY, now, {"from_chat_id": actor.chat_id, "message_id": message_id,
                "kind": kind, "text": text}, ticket=ticket,
            )  # fmt: skip
            if notice is Notice.REOPENED:
                await request_board(uow, now, self._policy.operator_chat_id)
            await uow.commit()
        reachable = self._health is None or self._health.operators_reachable
        return Outcome(
            citizen, ticket, [notice], open_tickets=open_tickets, operators_reachable=reachable
        )

    async def _reopen(self, uow: UnitOfWork, citizen: Citizen, ticket: Ticket) -> Ticket | None:
        """Puts a ticket closed within the window back in the queue, or returns None."""
        now = self._clock.now()
        closed = ticket.closed_at
        if ticket.status not in CLOSED_STATUSES or closed is None:
            return None
        if now - closed > self._policy.reopen_window:
            return None
        try:
            reopened = apply(ticket, Action.REQUEUE, now, by=SYSTEM)
        except TransitionError:  # pragma: no cover - CLOSED_STATUSES all allow REQUEUE
            return None
        if not await uow.tickets.update_if_unchanged(reopened):
            # An operator reopened it at this very moment: it is open, relay to it.
            current = await uow.tickets.get(ticket.id or 0)
            return current if current is not None and current.status.is_open else None
        reopened.version += 1
        await add_event(
            uow, reopened, "reopened_by_citizen", now, CITIZEN, from_status=ticket.status,
            to_status=reopened.status,
        )  # fmt: skip
        # The topic is reopened first: one ticket's rows go out in order.
        await enqueue(uow, OPERATOR_TOPIC_STATE, now, {"topic": "reopen"}, ticket=reopened)
        await enqueue(uow, OPERATOR_NOTICE, now, {"notice": "reopened"}, ticket=reopened)
        await enqueue(uow, OPERATOR_CARD_EDIT, now, ticket=reopened)
        log.info("ticket %s reopened by a citizen message", reopened.id)
        return reopened

    # -- operators -> citizen -------------------------------------------------------------

    async def from_operator(self, post: OperatorPost) -> PostResult:
        """Relays a roster member's post in a ticket's topic (or reply to its card) to the
        citizen; ``!`` notes stay internal; non-members are ignored."""
        now = self._clock.now()
        async with self._uow_factory() as uow:
            ticket = await self._ticket_of(uow, post)
            if ticket is None or ticket.anonymised_at is not None:  # erased: nobody to tell
                return PostResult(PostStatus.NO_TICKET)
            member = await active_member(uow, post.telegram_id)
            if member is None:
                log.info("relay: post by a non-member ignored (ticket %s)", ticket.id)
                await add_event(uow, ticket, "ignored_post", now, f"user:{post.telegram_id}")
                await uow.commit()
                return PostResult(PostStatus.IGNORED, ticket)
            actor = f"operator:{post.telegram_id}"
            text = clean_text(post.text, MAX_RELAY_CHARS) if post.text else None
            if text is not None and text.startswith(NOTE_PREFIX):
                note = text[len(NOTE_PREFIX) :].strip()
                await add_event(uow, ticket, "note", now, actor, note=note)
                status = PostStatus.NOTE
            else:
                await uow.messages.add(
                    RelayMessage(
                        ticket_id=ticket.id or 0, direction=Direction.TO_CITIZEN, at=now,
                        kind=post.kind, text=text, file_id=post.file_id,
                        telegram_chat_id=post.chat_id, telegram_message_id=post.message_id,
                        edited=post.edited,
                    )
                )  # fmt: skip
                await enqueue(
                    uow, CITIZEN_RELAY, now, {"from_chat_id": post.chat_id,
                    "message_id": post.message_id, "kind": post.kind, "text": text,
                    "edited": post.edited}, ticket=ticket,
                )  # fmt: skip
                status = PostStatus.RELAYED

            def active(current: Ticket) -> bool:
                current.last_operator_message_at = now
                return True

            ticket = await patch_ticket(uow, ticket.id or 0, active) or ticket
            await uow.commit()
        return PostResult(status, ticket)

    async def _ticket_of(self, uow: UnitOfWork, post: OperatorPost) -> Ticket | None:
        ticket = None
        if post.thread_id is not None:
            ticket = await uow.tickets.by_operator_thread(post.chat_id, post.thread_id)
        if ticket is None and post.reply_to_message_id is not None:
            ticket = await uow.tickets.by_operator_card(post.chat_id, post.reply_to_message_id)
        if ticket is None or ticket.is_draft:
            return None
        return ticket
