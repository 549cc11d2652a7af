"""The operator console: what roster members do to a ticket, one unit of work per action.

Every action checks that the actor is an active roster member, loads the ticket, applies
the lifecycle table (``bot.domain.lifecycle``), and writes the change by compare-and-set
on the ticket's version, so of two operators pressing Claim at once exactly one wins (the
other gets ``LOST_RACE`` and the ticket as the winner left it). A successful action
appends a timeline event (actor ``operator:<id>``) and queues, in this order:

* ``OPERATOR_CARD_EDIT``: the card is edited in place to the new state;
* ``CITIZEN_STATUS``: the citizen is told (being handled, help dispatched, en route with
  ETA, on scene, resolved), where the step means something to them;
* ``QUEUE_BOARD`` (coalesced): the board shows the new queue.

Results are plain data (:class:`ConsoleResult`); the edge renders them. The ``record`` hooks
of the topic and card rows (the ticket's topic id and card message id) are installed here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bot.domain.lifecycle import (
    PRIORITIES,
    Action,
    Refusal,
    Staff,
    TransitionError,
    apply,
)
from bot.domain.model import (
    CATEGORY_GROUPS,
    Assignment,
    AssignmentChannel,
    Category,
    Disposition,
    Location,
    LocationSource,
    OutboxMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.domain.rules import priority_for
from bot.services.agencies import AgencyDirectory, hand_off, refresh_cards
from bot.services.outbox_kinds import (
    CITIZEN_STATUS,
    OPERATOR_CARD,
    OPERATOR_CARD_EDIT,
    OPERATOR_TOPIC,
    OPERATOR_TOPIC_STATE,
    set_recorder,
)
from bot.services.ports import Clock, DeliveryResult, Geocoder, UnitOfWork, UnitOfWorkFactory
from bot.services.queue import request_board
from bot.services.roster import active_member
from bot.services.rows import add_event, enqueue, patch_ticket

log = logging.getLogger(__name__)


class ConsoleStatus(StrEnum):
    """How an operator's action ended."""

    DONE = "done"
    NOT_ALLOWED = "not_allowed"
    """The actor is not an active roster member (the edge answers «not allowed»)."""
    NOT_FOUND = "not_found"
    """No submitted ticket with that id."""
    REFUSED = "refused"
    """The lifecycle table refuses the action from the ticket's status (``refusal``)."""
    INVALID = "invalid"
    """A wrong argument: ``refusal`` (no disposition, bad ETA) or ``detail`` says which."""
    LOST_RACE = "lost_race"
    """Someone changed the ticket first (e.g. claimed it): ``ticket`` is its state now."""
    NOT_YOURS = "not_yours"
    """Only the operator holding the ticket (or an admin) may release it."""


@dataclass(frozen=True, slots=True)
class ConsoleResult:
    """The outcome of an action, with the ticket as it is now (when there is one)."""

    status: ConsoleStatus
    ticket: Ticket | None = None
    refusal: Refusal | None = None
    detail: str | None = None
    """Machine-readable: ``unknown_agency``, ``no_agency``, ``already_assigned``,
    ``bad_priority``, ``outside_city`` (a DONE location correction outside the city)."""
    assignments: tuple[Assignment, ...] = ()
    events: tuple[TicketEvent, ...] = ()
    """Filled by :meth:`ConsoleService.timeline`, oldest first."""

    @property
    def ok(self) -> bool:
        """Whether the action was carried out."""
        return self.status is ConsoleStatus.DONE


@dataclass(frozen=True, slots=True)
class ConsolePolicy:
    """What the console is configured with."""

    agencies: Mapping[str, str] = field(default_factory=dict)
    """Agency code -> name, from the agencies file (dispatch offers these)."""
    operator_chat_id: int | None = None
    directory: AgencyDirectory | None = None
    """The agencies with their chats and webhooks (None: every agency is called by phone)."""


#: Citizen notices per step (what a citizen in an emergency wants to know).
CITIZEN_STEPS: Mapping[Action, str] = {
    Action.CLAIM: "claimed",
    Action.REOPEN: "claimed",
    Action.DISPATCH: "dispatched",
    Action.EN_ROUTE: "en_route",
    Action.ON_SCENE: "on_scene",
    Action.RESOLVE: "resolved",
}
#: Operator actions that change what the agencies' cards show (progress for all, the end).
AGENCY_CARD_ACTIONS = frozenset(
    {Action.EN_ROUTE, Action.ON_SCENE, Action.RESOLVE, Action.CANCEL, Action.REOPEN}
)
#: Actions after which the ticket's forum topic is closed or reopened.
TOPIC_STATES: Mapping[Action, str] = {
    Action.RESOLVE: "close",
    Action.CANCEL: "close",
    Action.REOPEN: "reopen",
}
#: Corrections that change the topic's name (the category's emoji, the kecamatan).
RENAMES_TOPIC = frozenset({"category_corrected", "location_corrected"})
#: Tickets an operator may act on: submitted ones (abandoned drafts are only shown).
WORKABLE = frozenset(TicketStatus) - {TicketStatus.DRAFT, TicketStatus.ABANDONED}

Extra = Callable[[UnitOfWork, Ticket], Awaitable[dict[str, object]]]
ClosedHook = Callable[[UnitOfWork, Ticket], Awaitable[None]]
"""Called in the unit of work of an action that closed a ticket (the citizen's erasure)."""
CLOSING = frozenset({Action.RESOLVE, Action.CLOSE, Action.CANCEL})


class ConsoleService:
    """Operator actions on tickets: claim … reopen, corrections, the timeline."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        geocoder: Geocoder,
        clock: Clock,
        policy: ConsolePolicy,
        *,
        read_uow_factory: UnitOfWorkFactory | None = None,
        on_closed: ClosedHook | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._read_uow_factory = read_uow_factory or uow_factory
        self._geocoder = geocoder
        self._clock = clock
        self._policy = policy
        self._on_closed = on_closed

    # -- the lifecycle --------------------------------------------------------------------

    async def claim(self, by: Staff, ticket_id: int) -> ConsoleResult:
        """Takes an unclaimed ticket; of two operators pressing at once, one wins."""
        return await self._act(by, ticket_id, Action.CLAIM)

    async def release(self, by: Staff, ticket_id: int) -> ConsoleResult:
        """Gives a claimed ticket back to the queue (its holder or an admin)."""
        return await self._act(by, ticket_id, Action.RELEASE)

    async def dispatch(
        self, by: Staff, ticket_id: int, agency_codes: Sequence[str]
    ) -> ConsoleResult:
        """Hands the ticket to the agencies (codes of the agencies file).

        One assignment per new agency; agencies already on the ticket are skipped, and a
        dispatch that adds none is INVALID (``already_assigned``). Each agency gets the
        ticket in its chat and/or by its webhook (``agencies.hand_off``); one with neither is
        recorded as dispatched by phone.
        """
        codes = list(dict.fromkeys(agency_codes))
        if not codes:
            return ConsoleResult(ConsoleStatus.INVALID, detail="no_agency")
        if any(code not in self._policy.agencies for code in codes):
            return ConsoleResult(ConsoleStatus.INVALID, detail="unknown_agency")

        async def assign(uow: UnitOfWork, ticket: Ticket) -> dict[str, object]:
            assigned = {a.agency_code for a in await uow.assignments.for_ticket(ticket.id or 0)}
            new = [code for code in codes if code not in assigned]
            if not new:
                raise _Invalid("already_assigned")
            if self._policy.directory is not None:
                return await hand_off(
                    uow, ticket, new, by.actor, self._clock.now(), directory=self._policy.directory
                )
            for code in new:
                await uow.assignments.add(
                    Assignment(
                        ticket_id=ticket.id or 0, agency_code=code,
                        dispatched_at=self._clock.now(), channel=AssignmentChannel.PHONE,
                        by=by.actor,
                    )
                )  # fmt: skip
            names = [self._policy.agencies[code] for code in new]
            return {"agencies": names, "codes": new, "channel": AssignmentChannel.PHONE.value}

        return await self._act(by, ticket_id, Action.DISPATCH, extra=assign)

    async def en_route(self, by: Staff, ticket_id: int, eta_minutes: int | None) -> ConsoleResult:
        """Records that help is on its way, with the ETA in minutes (None: unknown)."""

        async def progress(uow: UnitOfWork, ticket: Ticket) -> dict[str, object]:
            for assignment in await uow.assignments.for_ticket(ticket.id or 0):
                if assignment.en_route_at is None:
                    assignment.en_route_at = self._clock.now()
                    assignment.eta_minutes = eta_minutes
                    await uow.assignments.update(assignment)
            return {"eta_minutes": eta_minutes}

        return await self._act(
            by, ticket_id, Action.EN_ROUTE, eta_minutes=eta_minutes, extra=progress
        )

    async def on_scene(self, by: Staff, ticket_id: int) -> ConsoleResult:
        """Records that help arrived."""

        async def arrived(uow: UnitOfWork, ticket: Ticket) -> dict[str, object]:
            for assignment in await uow.assignments.for_ticket(ticket.id or 0):
                if assignment.on_scene_at is None:
                    assignment.on_scene_at = self._clock.now()
                    await uow.assignments.update(assignment)
            return {}

        return await self._act(by, ticket_id, Action.ON_SCENE, extra=arrived)

    async def resolve(self, by: Staff, ticket_id: int, disposition: Disposition) -> ConsoleResult:
        """Closes the incident with a disposition (emergency, info, prank, ghost…)."""

        async def completed(uow: UnitOfWork, ticket: Ticket) -> dict[str, object]:
            for assignment in await uow.assignments.for_ticket(ticket.id or 0):
                if assignment.completed_at is None:
                    assignment.completed_at = self._clock.now()
                    await uow.assignments.update(assignment)
            return {"disposition": disposition.value}

        return await self._act(
            by, ticket_id, Action.RESOLVE, disposition=disposition, extra=completed
        )

    async def close(self, by: Staff, ticket_id: int) -> ConsoleResult:
        """Archives a resolved ticket."""
        return await self._act(by, ticket_id, Action.CLOSE)

    async def reopen(self, by: Staff, ticket_id: int) -> ConsoleResult:
        """Brings a resolved or closed ticket back, claimed by the operator."""
        return await self._act(by, ticket_id, Action.REOPEN)

    async def cancel(self, by: Staff, ticket_id: int) -> ConsoleResult:
        """Cancels an open ticket (e.g. the citizen withdrew it)."""
        return await self._act(by, ticket_id, Action.CANCEL)

    # -- corrections ----------------------------------------------------------------------

    async def correct_category(
        self, by: Staff, ticket_id: int, category: Category
    ) -> ConsoleResult:
        """Sets the category (its group follows) and the priority that goes with it."""

        def change(ticket: Ticket) -> str | None:
            before = ticket.category.value if ticket.category else "-"
            ticket.category = category
            ticket.category_group = next(
                group for group, members in CATEGORY_GROUPS.items() if category in members
            )
            ticket.priority = priority_for(ticket)
            return f"{before} -> {category.value}"

        return await self._correct(by, ticket_id, "category_corrected", change)

    async def correct_priority(self, by: Staff, ticket_id: int, priority: int) -> ConsoleResult:
        """Sets the priority (1 = life-threatening … 3)."""
        if priority not in PRIORITIES:
            return ConsoleResult(ConsoleStatus.INVALID, detail="bad_priority")

        def change(ticket: Ticket) -> str | None:
            before, ticket.priority = ticket.priority, priority
            return f"{before} -> {priority}"

        return await self._correct(by, ticket_id, "priority_corrected", change)

    async def correct_location(
        self, by: Staff, ticket_id: int, lat: float, lon: float, accuracy_m: float | None = None
    ) -> ConsoleResult:
        """Replaces the incident location with one an operator sent (source OPERATOR); the
        kelurahan/kecamatan come from the city's polygons. A point outside the city is
        kept too (``detail="outside_city"``): the operator knows best."""
        area = self._geocoder.locate_area(lat, lon)

        def change(ticket: Ticket) -> str | None:
            ticket.incident_location = Location(
                lat=lat, lon=lon, source=LocationSource.OPERATOR, captured_at=self._clock.now(),
                accuracy_m=accuracy_m, area=area,
            )  # fmt: skip
            return area.kelurahan_name if area else "outside the city"

        result = await self._correct(by, ticket_id, "location_corrected", change)
        if result.ok and area is None:
            return ConsoleResult(result.status, result.ticket, detail="outside_city")
        return result

    # -- reading --------------------------------------------------------------------------

    async def timeline(self, by: Staff, ticket_id: int) -> ConsoleResult:
        """Returns the ticket with its events (oldest first) and assignments; the edge shows
        the times in WIB."""
        async with self._read_uow_factory() as uow:
            if await self._member(uow, by, "timeline", ticket_id) is None:
                return ConsoleResult(ConsoleStatus.NOT_ALLOWED)
            ticket = await uow.tickets.get(ticket_id)
            if ticket is None or ticket.status is TicketStatus.DRAFT:
                return ConsoleResult(ConsoleStatus.NOT_FOUND)
            events = await uow.events.for_ticket(ticket_id)
            assignments = await uow.assignments.for_ticket(ticket_id)
        return ConsoleResult(
            ConsoleStatus.DONE, ticket, assignments=tuple(assignments), events=tuple(events)
        )

    # -- the frame ------------------------------------------------------------------------

    async def _member(
        self, uow: UnitOfWork, by: Staff, action: str, ticket_id: int, *, remember: bool = False
    ) -> Staff | None:
        """The actor with their roster name, or None (logged without personal data).
        ``remember`` (a writing unit of work): a roster entry without a name takes theirs."""
        member = await active_member(uow, by.telegram_id)
        if member is None:
            log.info("console: %s on ticket %s refused: not a roster member", action, ticket_id)
            return None
        if remember and not member.display_name and by.name:
            # Seeded by id only (OPERATOR_USER_IDS): the name Telegram shows, the first time
            # they act, so the timeline and the card name them.
            member.display_name = by.name
            await uow.operators.update(member)
        return Staff(by.telegram_id, by.name or member.display_name)

    async def _load(
        self, uow: UnitOfWork, by: Staff, action: str, ticket_id: int
    ) -> tuple[Staff, Ticket] | ConsoleResult:
        member = await self._member(uow, by, action, ticket_id, remember=True)
        if member is None:
            return ConsoleResult(ConsoleStatus.NOT_ALLOWED)
        ticket = await uow.tickets.get(ticket_id)
        if ticket is None or ticket.status not in WORKABLE:
            return ConsoleResult(ConsoleStatus.NOT_FOUND)
        if ticket.anonymised_at is not None and action != Action.CLOSE.value:
            return ConsoleResult(ConsoleStatus.NOT_FOUND)  # erased: only archiving is left
        return member, ticket

    async def _act(
        self,
        by: Staff,
        ticket_id: int,
        action: Action,
        *,
        disposition: Disposition | None = None,
        eta_minutes: int | None = None,
        extra: Extra | None = None,
    ) -> ConsoleResult:
        """Applies one lifecycle action: check, compare-and-set, event, outbox rows."""
        now = self._clock.now()
        async with self._uow_factory() as uow:
            loaded = await self._load(uow, by, action.value, ticket_id)
            if isinstance(loaded, ConsoleResult):
                return loaded
            member, ticket = loaded
            try:
                after = apply(
                    ticket, action, now, by=member, disposition=disposition,
                    eta_minutes=eta_minutes,
                )  # fmt: skip
            except TransitionError as refused:
                status = (
                    ConsoleStatus.REFUSED
                    if refused.refusal is Refusal.NOT_ALLOWED
                    else ConsoleStatus.INVALID
                )
                return ConsoleResult(status, ticket, refusal=refused.refusal)
            if action is Action.RELEASE and not await self._may_release(uow, member, ticket):
                return ConsoleResult(ConsoleStatus.NOT_YOURS, ticket)
            if not await uow.tickets.update_if_unchanged(after):
                return ConsoleResult(ConsoleStatus.LOST_RACE, await uow.tickets.get(ticket_id))
            try:
                details = await extra(uow, after) if extra else {}
            except _Invalid as invalid:  # leaving without commit rolls the change back
                return ConsoleResult(ConsoleStatus.INVALID, ticket, detail=invalid.detail)
            note = _note(action, details)
            await add_event(
                uow, after, action.value, now, member.actor, from_status=ticket.status,
                to_status=after.status, note=note,
            )  # fmt: skip
            await self._announce(uow, after, action, details)
            if self._on_closed is not None and action in CLOSING:
                await self._on_closed(uow, after)
            assignments = await uow.assignments.for_ticket(ticket_id)
            await uow.commit()
        after.version += 1
        return ConsoleResult(ConsoleStatus.DONE, after, assignments=tuple(assignments))

    async def _may_release(self, uow: UnitOfWork, member: Staff, ticket: Ticket) -> bool:
        if ticket.claimed_by in (None, member.telegram_id):
            return True
        operator = await active_member(uow, member.telegram_id)
        return operator is not None and operator.is_admin

    async def _correct(
        self, by: Staff, ticket_id: int, kind: str, change: Callable[[Ticket], str | None]
    ) -> ConsoleResult:
        """Applies a correction to an open ticket (no status change) by compare-and-set."""
        now = self._clock.now()
        async with self._uow_factory() as uow:
            loaded = await self._load(uow, by, kind, ticket_id)
            if isinstance(loaded, ConsoleResult):
                return loaded
            member, ticket = loaded
            if not ticket.status.is_open:
                return ConsoleResult(ConsoleStatus.REFUSED, ticket, refusal=Refusal.NOT_ALLOWED)
            note = change(ticket)
            ticket.updated_at = now
            if not await uow.tickets.update_if_unchanged(ticket):
                return ConsoleResult(ConsoleStatus.LOST_RACE, await uow.tickets.get(ticket_id))
            await add_event(uow, ticket, kind, now, member.actor, note=note)
            await enqueue(uow, OPERATOR_CARD_EDIT, now, ticket=ticket)
            if kind in RENAMES_TOPIC:
                await enqueue(uow, OPERATOR_TOPIC_STATE, now, {"topic": "rename"}, ticket=ticket)
            await request_board(uow, now, self._policy.operator_chat_id)
            await uow.commit()
        ticket.version += 1
        return ConsoleResult(ConsoleStatus.DONE, ticket)

    async def _announce(
        self, uow: UnitOfWork, ticket: Ticket, action: Action, details: dict[str, object]
    ) -> None:
        now = self._clock.now()
        await enqueue(uow, OPERATOR_CARD_EDIT, now, ticket=ticket)
        if (topic := TOPIC_STATES.get(action)) is not None:
            await enqueue(uow, OPERATOR_TOPIC_STATE, now, {"topic": topic}, ticket=ticket)
        if self._policy.directory is not None and action in AGENCY_CARD_ACTIONS:
            await refresh_cards(uow, ticket, now, self._policy.directory)
        if (step := CITIZEN_STEPS.get(action)) is not None:
            await enqueue(uow, CITIZEN_STATUS, now, {"status": step, **details}, ticket=ticket)
        await request_board(uow, now, self._policy.operator_chat_id)


class _Invalid(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _note(action: Action, details: Mapping[str, object]) -> str | None:
    if action is Action.DISPATCH:
        codes = details.get("codes")
        channels = details.get("channels")
        ways = channels if isinstance(channels, dict) else {}
        by_way: dict[str, list[str]] = {}
        for code in codes if isinstance(codes, list) else []:
            by_way.setdefault(str(ways.get(code, "phone")), []).append(str(code))
        return "; ".join(f"{', '.join(group)} ({way})" for way, group in by_way.items())
    if action is Action.EN_ROUTE and details.get("eta_minutes") is not None:
        return f"ETA {details['eta_minutes']} min"
    if action is Action.RESOLVE:
        return str(details.get("disposition"))
    return None


# -- what Telegram answered, stored on the ticket (the outbox's record hooks) -----------------


async def record_topic(uow: UnitOfWork, message: OutboxMessage, result: DeliveryResult) -> None:
    """Stores the forum topic created for a ticket (none in a chat that is not a forum)."""

    def change(ticket: Ticket) -> bool:
        ticket.operator_chat_id = result.chat_id or ticket.operator_chat_id
        ticket.operator_thread_id = result.thread_id
        return True

    await patch_ticket(uow, message.ticket_id or 0, change)


async def record_card(uow: UnitOfWork, message: OutboxMessage, result: DeliveryResult) -> None:
    """Stores where the ticket's card is, so replies to it and card edits find it."""

    def change(ticket: Ticket) -> bool:
        ticket.operator_chat_id = result.chat_id or ticket.operator_chat_id
        ticket.operator_card_message_id = result.message_id
        if result.thread_id is not None and ticket.operator_thread_id is None:
            ticket.operator_thread_id = result.thread_id
        return True

    await patch_ticket(uow, message.ticket_id or 0, change)


set_recorder(OPERATOR_TOPIC, record_topic)
set_recorder(OPERATOR_CARD, record_card)
