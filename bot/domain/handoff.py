"""An agency's progress on one ticket: the steps it reports and what each changes.

An agency reports a step by a button on its card or by a signed status update. The step
changes that agency's assignment (times, ETA, a refusal); the ticket's own status follows
the lifecycle table (``bot.domain.lifecycle``) where it allows the matching action, so a
second agency acknowledging a ticket already en route leaves the ticket en route. No I/O.

::

    dispatched ─acknowledge─▶ acknowledged ─en_route(ETA)─▶ en route ─on_scene─▶ on scene
        │                          │                           │                  │
        └── cannot_handle(reason) ─┴───────────────────────────┘      completed ◀─┘ (any)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from bot.domain.lifecycle import MAX_ETA_MINUTES, Action
from bot.domain.model import Assignment


class AgencyStep(StrEnum):
    """What an agency can report about a ticket handed to it (stable wire values)."""

    ACKNOWLEDGED = "acknowledged"
    EN_ROUTE = "en_route"
    ON_SCENE = "on_scene"
    COMPLETED = "completed"
    CANNOT_HANDLE = "cannot_handle"


class DeclineReason(StrEnum):
    """Why an agency cannot handle a ticket (the card's choices; stable wire values)."""

    NO_UNIT = "no_unit"
    """No unit available."""
    OUT_OF_AREA = "out_of_area"
    """Not the agency's area."""
    NOT_OURS = "not_ours"
    """Not the agency's kind of incident."""
    OTHER = "other"


#: The ticket's lifecycle action of each step (none: the ticket's status stays).
TICKET_ACTIONS: Mapping[AgencyStep, Action] = {
    AgencyStep.ACKNOWLEDGED: Action.ACKNOWLEDGE,
    AgencyStep.EN_ROUTE: Action.EN_ROUTE,
    AgencyStep.ON_SCENE: Action.ON_SCENE,
}
ETA_CHOICES = (5, 10, 15, 30, 60)
"""Minutes offered on the card's «En route» button."""


class StepRefused(ValueError):
    """A step that does not fit the assignment's progress; ``why`` says what is wrong."""

    def __init__(self, step: AgencyStep, why: str) -> None:
        super().__init__(f"{step.value} refused: {why}")
        self.step = step
        self.why = why


def apply_step(  # noqa: PLR0912 - one branch per step and its refusals
    assignment: Assignment,
    step: AgencyStep,
    now: datetime,
    *,
    eta_minutes: int | None = None,
    reason: DeclineReason | None = None,
) -> Assignment:
    """Return a copy of ``assignment`` after ``step`` at ``now``.

    Raises StepRefused when the agency is done with the ticket (completed or declined), when
    the step goes backwards (en route after on scene, «cannot handle» after arriving), when
    it repeats without news (a second acknowledgement; an en-route without a new ETA), or
    when the ETA is out of range.
    """
    if assignment.closed:
        raise StepRefused(step, "closed")
    if eta_minutes is not None and not 1 <= eta_minutes <= MAX_ETA_MINUTES:
        raise StepRefused(step, "bad_eta")
    a = dataclasses.replace(assignment)
    if step is AgencyStep.ACKNOWLEDGED:
        if a.acknowledged_at is not None:
            raise StepRefused(step, "repeated")
        a.acknowledged_at = now
    elif step is AgencyStep.EN_ROUTE:
        if a.on_scene_at is not None:
            raise StepRefused(step, "backwards")
        if a.en_route_at is not None and eta_minutes in (None, a.eta_minutes):
            raise StepRefused(step, "repeated")
        a.en_route_at = a.en_route_at or now
        a.eta_minutes = eta_minutes if eta_minutes is not None else a.eta_minutes
    elif step is AgencyStep.ON_SCENE:
        if a.on_scene_at is not None:
            raise StepRefused(step, "repeated")
        a.on_scene_at = now
    elif step is AgencyStep.COMPLETED:
        a.completed_at = now
    else:  # CANNOT_HANDLE
        if a.on_scene_at is not None:
            raise StepRefused(step, "backwards")
        a.declined_at = now
        a.decline_reason = (reason or DeclineReason.OTHER).value
    # Any answer means the agency has seen the ticket: it acknowledged implicitly.
    if step is not AgencyStep.CANNOT_HANDLE:
        a.acknowledged_at = a.acknowledged_at or now
    return a


def awaiting_ack(assignment: Assignment) -> bool:
    """Whether the agency still owes its acknowledgement (not acknowledged, not done)."""
    return assignment.acknowledged_at is None and not assignment.closed
