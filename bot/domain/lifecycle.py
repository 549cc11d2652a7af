"""The ticket lifecycle after submit: ONE table of allowed transitions, and what each sets.

``TRANSITIONS`` maps (status, action) to the next status; nothing else moves a submitted
ticket. :func:`apply` checks an action against the table and returns the changed ticket
(a copy) with the times and the operator of that step filled in. No I/O here: services
load, apply, compare-and-set and record the event.

::

    submitted ─claim─▶ claimed ─dispatch─▶ dispatched ─acknowledge─▶ acknowledged
        ▲  └──────────dispatch──────────────▲     └──en_route──▶ en_route ◀──┘
        └─release─┘                                          └─on_scene─▶ on_scene
    any open ─resolve(disposition)─▶ resolved ─close─▶ closed
    resolved | closed ─reopen─▶ claimed (by the operator)  ─requeue─▶ submitted (the queue)
    any open ─cancel─▶ cancelled
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from bot.domain.model import OPEN_STATUSES, Disposition, Ticket, TicketStatus

MAX_ETA_MINUTES = 240
PRIORITIES = (1, 2, 3)
"""1 = life-threatening (see ``rules.priority_for``); the queue serves the lowest first."""


class Action(StrEnum):
    """What staff (or the system) can do to a submitted ticket."""

    CLAIM = "claim"
    RELEASE = "release"
    DISPATCH = "dispatch"
    ACKNOWLEDGE = "acknowledge"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    """Back to work, claimed by the operator who reopens it."""
    REQUEUE = "requeue"
    """Back to the queue, unclaimed (a citizen wrote soon after the close)."""
    CANCEL = "cancel"


S = TicketStatus
A = Action

#: The one table: (current status, action) -> next status. Absent pairs are refused.
TRANSITIONS: Mapping[tuple[TicketStatus, Action], TicketStatus] = {
    (S.SUBMITTED, A.CLAIM): S.CLAIMED,
    (S.CLAIMED, A.RELEASE): S.SUBMITTED,
    (S.SUBMITTED, A.DISPATCH): S.DISPATCHED,
    (S.CLAIMED, A.DISPATCH): S.DISPATCHED,
    # One more agency on a ticket already under way keeps its progress.
    (S.DISPATCHED, A.DISPATCH): S.DISPATCHED,
    (S.ACKNOWLEDGED, A.DISPATCH): S.ACKNOWLEDGED,
    (S.EN_ROUTE, A.DISPATCH): S.EN_ROUTE,
    (S.ON_SCENE, A.DISPATCH): S.ON_SCENE,
    (S.DISPATCHED, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.DISPATCHED, A.EN_ROUTE): S.EN_ROUTE,
    (S.ACKNOWLEDGED, A.EN_ROUTE): S.EN_ROUTE,
    (S.EN_ROUTE, A.EN_ROUTE): S.EN_ROUTE,  # a new ETA
    (S.DISPATCHED, A.ON_SCENE): S.ON_SCENE,
    (S.ACKNOWLEDGED, A.ON_SCENE): S.ON_SCENE,
    (S.EN_ROUTE, A.ON_SCENE): S.ON_SCENE,
    **{(status, A.RESOLVE): S.RESOLVED for status in OPEN_STATUSES},
    (S.RESOLVED, A.CLOSE): S.CLOSED,
    (S.RESOLVED, A.REOPEN): S.CLAIMED,
    (S.CLOSED, A.REOPEN): S.CLAIMED,
    (S.RESOLVED, A.REQUEUE): S.SUBMITTED,
    (S.CLOSED, A.REQUEUE): S.SUBMITTED,
    **{(status, A.CANCEL): S.CANCELLED for status in OPEN_STATUSES},
}

#: Statuses a ticket may be reopened from: the incident was closed by the operators.
CLOSED_STATUSES = frozenset({S.RESOLVED, S.CLOSED})


class Refusal(StrEnum):
    """Why an action was refused."""

    NOT_ALLOWED = "not_allowed"
    """The table has no such transition from the ticket's status."""
    NEEDS_DISPOSITION = "needs_disposition"
    BAD_ETA = "bad_eta"


class TransitionError(ValueError):
    """An action that does not fit the ticket; ``refusal`` says why."""

    def __init__(self, status: TicketStatus, action: Action, refusal: Refusal) -> None:
        super().__init__(f"{action.value} refused from {status.value}: {refusal.value}")
        self.status = status
        self.action = action
        self.refusal = refusal


@dataclasses.dataclass(frozen=True, slots=True)
class Staff:
    """Who acts: an operator (Telegram user id and display name), or the system."""

    telegram_id: int | None
    name: str | None = None

    @property
    def actor(self) -> str:
        """The actor string of the timeline: ``operator:<id>`` or ``system``."""
        return "system" if self.telegram_id is None else f"operator:{self.telegram_id}"


SYSTEM = Staff(None)


def is_allowed(status: TicketStatus, action: Action) -> bool:
    """Whether the table allows ``action`` from ``status``."""
    return (status, action) in TRANSITIONS


def next_status(status: TicketStatus, action: Action) -> TicketStatus:
    """Return the status after ``action`` (TransitionError when the table refuses it)."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise TransitionError(status, action, Refusal.NOT_ALLOWED) from None


def actions_for(status: TicketStatus) -> tuple[Action, ...]:
    """The actions allowed from ``status``, in the order of :class:`Action` (for buttons)."""
    return tuple(action for action in Action if (status, action) in TRANSITIONS)


def apply(
    ticket: Ticket,
    action: Action,
    now: datetime,
    *,
    by: Staff = SYSTEM,
    disposition: Disposition | None = None,
    eta_minutes: int | None = None,
) -> Ticket:
    """Return a copy of ``ticket`` after ``action`` at ``now`` by ``by``.

    Sets the status from the table and the times of the step (first time only, so a second
    agency does not move ``dispatched_at``). Raises TransitionError when refused.
    """
    to = next_status(ticket.status, action)
    if ticket.disposition is Disposition.TEST and action in (A.RESOLVE, A.REOPEN, A.REQUEUE):
        disposition = Disposition.TEST  # an exercise stays an exercise (``is_exercise``)
    if action is A.RESOLVE and disposition is None:
        raise TransitionError(ticket.status, action, Refusal.NEEDS_DISPOSITION)
    if eta_minutes is not None and not 1 <= eta_minutes <= MAX_ETA_MINUTES:
        raise TransitionError(ticket.status, action, Refusal.BAD_ETA)
    t = dataclasses.replace(ticket, status=to, updated_at=now)
    if action in (A.CLAIM, A.REOPEN) or (action is A.DISPATCH and t.claimed_by is None):
        _claim(t, by, now)
    if action is A.DISPATCH:
        t.dispatched_at = t.dispatched_at or now
    elif action is A.ACKNOWLEDGE:
        t.acknowledged_at = t.acknowledged_at or now
    elif action is A.EN_ROUTE:
        t.en_route_at = t.en_route_at or now
        t.eta_minutes = eta_minutes if eta_minutes is not None else t.eta_minutes
    elif action is A.ON_SCENE:
        t.on_scene_at = t.on_scene_at or now
    elif action is A.RESOLVE:
        t.disposition = disposition
        t.resolved_at = t.closed_at = now
    elif action in (A.CLOSE, A.CANCEL):
        t.closed_at = t.closed_at or now
    elif action in (A.RELEASE, A.REQUEUE):
        _back_to_queue(t, now)
    if action in (A.REOPEN, A.REQUEUE):
        t.disposition = disposition if disposition is Disposition.TEST else None
        t.resolved_at = t.closed_at = None
        t.reopened_count += 1
    return t


def _claim(t: Ticket, by: Staff, now: datetime) -> None:
    t.claimed_by, t.claimed_by_name, t.claimed_at = by.telegram_id, by.name, now


def _back_to_queue(t: Ticket, now: datetime) -> None:
    """Unclaimed and queued again: the SLA timers start over."""
    t.claimed_by = t.claimed_by_name = t.claimed_at = None
    t.queued_at = now
    t.sla_realerted_at = t.sla_escalated_at = None


def queue_key(ticket: Ticket) -> tuple[int, datetime, int]:
    """Order of the queue board and of topic creation: priority 1 first, then the oldest."""
    return (ticket.priority, ticket.submitted_at or ticket.created_at, ticket.id or 0)
