"""Every outbox kind, registered in this one place: its lane, audience and priority class.

A unit of work enqueues a row of a registered kind; the outbox worker serves rows lane by
lane (citizen, emergency, agency, broadcast) and asks the kind's policy what a failure
means; the Telegram deliverer in ``handlers/delivery.py`` keeps one send function per kind
(a test fails when a registered kind has none). An optional ``record`` hook stores what
Telegram answered (a topic id, a card's message id) on the ticket, in the same unit of
work that marks the row sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.domain.model import OutboxMessage
    from bot.services.ports import DeliveryResult, UnitOfWork


class Lane(StrEnum):
    """Outbox lanes, served in this order (within a lane, oldest first)."""

    CITIZEN = "citizen"
    """What a citizen is sent about their report: ordered per ticket among themselves only,
    so a notice or an operator's reply never waits behind the group's budget for a card."""
    EMERGENCY = "emergency"
    AGENCY = "agency"
    BROADCAST = "broadcast"
    """Rows of no ticket (advisory copies), claimed apart in batches (``claim_lane``): a
    row of this lane with a ticket would never be claimed."""

    @property
    def rank(self) -> int:
        """0 for the lane served first."""
        return LANE_ORDER.index(self)


LANE_ORDER: tuple[Lane, ...] = (Lane.CITIZEN, Lane.EMERGENCY, Lane.AGENCY, Lane.BROADCAST)


class Priority(IntEnum):
    """Classes of the rate governor, highest (1) first: a call never waits behind a lower one."""

    CITIZEN_REPLY = 1
    """Replies and callback answers to a citizen in a conversation."""
    RELAY = 2
    """Messages relayed between operators and citizens."""
    OPERATOR = 3
    """Operator cards, topics, pins, board and card updates."""
    AGENCY = 4
    """Agency cards and updates."""
    BROADCAST = 5
    """Advisories and other bulk sends."""


class Audience(StrEnum):
    """Who receives a kind: decides what a 403/400 means (see ``DeliveryError.fault``)."""

    CITIZEN = "citizen"
    OPERATORS = "operators"
    AGENCY = "agency"
    ADMIN = "admin"


class Transport(StrEnum):
    """What carries a kind: the app's deliverer hands each row to the adapter of its transport
    (``bot.services.composite.CompositeDeliverer``)."""

    TELEGRAM = "telegram"
    """The Bot API: a send function per kind in ``handlers/delivery.py``."""
    WEBHOOK = "webhook"
    """A signed HTTP POST to an agency system (``bot/agencies_http``)."""


Recorder = Callable[["UnitOfWork", "OutboxMessage", "DeliveryResult"], Awaitable[None]]
DeadLetter = Callable[["UnitOfWork", "OutboxMessage"], Awaitable[None]]
"""Runs in the unit of work that marks a row failed for good (``last_error`` says why)."""


@dataclass(frozen=True, slots=True)
class OutboxKind:
    """The delivery policy of one kind of outbox row."""

    name: str
    lane: Lane
    audience: Audience
    priority: Priority
    must_deliver: bool
    """Never given up (an operator card): a destination fault is retried with a short cap.
    Later rows of the same ticket wait behind it so operators read them in order."""
    record: Recorder | None = None
    batched: bool = False
    """Bulk rows (broadcast copies): the worker stores their results once per pass, in one
    unit of work, instead of one per row. A crash before that store sends the pass's copies
    again; at most one batch (50 rows), the price of not writing the database per copy."""
    transport: Transport = Transport.TELEGRAM
    max_attempts: int | None = None
    """Attempts after which a row that keeps failing is dead-lettered (None: never)."""
    dead_letter: DeadLetter | None = None


KINDS: dict[str, OutboxKind] = {}


def register(
    name: str,
    *,
    lane: Lane,
    audience: Audience,
    priority: Priority,
    must_deliver: bool,
    record: Recorder | None = None,
    batched: bool = False,
    transport: Transport = Transport.TELEGRAM,
    max_attempts: int | None = None,
) -> str:
    """Registers a kind and returns its name (the constant the services enqueue)."""
    if name in KINDS:
        raise ValueError(f"outbox kind {name!r} registered twice")
    KINDS[name] = OutboxKind(
        name, lane, audience, priority, must_deliver, record, batched=batched,
        transport=transport, max_attempts=max_attempts,
    )  # fmt: skip
    return name


def kind_of(name: str) -> OutboxKind:
    """Return the policy of a registered kind (KeyError for an unknown one)."""
    return KINDS[name]


def set_recorder(name: str, record: Recorder) -> None:
    """Attaches the hook that stores a delivery's result (services that own the data call it)."""
    KINDS[name] = replace(KINDS[name], record=record)


def set_dead_letter(name: str, hook: DeadLetter) -> None:
    """Attaches the hook that runs when a row of the kind is given up (failed for good)."""
    KINDS[name] = replace(KINDS[name], dead_letter=hook)


# -- the kinds ---------------------------------------------------------------------------------


def _to_operators(name: str, priority: Priority) -> str:
    return register(
        name, lane=Lane.EMERGENCY, audience=Audience.OPERATORS, priority=priority,
        must_deliver=True,
    )  # fmt: skip


OPERATOR_CARD = _to_operators("operator_card", Priority.OPERATOR)
OPERATOR_PIN = _to_operators("operator_pin", Priority.OPERATOR)
OPERATOR_MEDIA = _to_operators("operator_media", Priority.RELAY)
OPERATOR_RELAY = _to_operators("operator_relay", Priority.RELAY)
OPERATOR_LOCATION_UPDATE = _to_operators("operator_location_update", Priority.RELAY)
CITIZEN_NOTICE = register(
    "citizen_notice", lane=Lane.CITIZEN, audience=Audience.CITIZEN,
    priority=Priority.CITIZEN_REPLY, must_deliver=False,
)  # fmt: skip
ADMIN_ALERT = register(
    "admin_alert", lane=Lane.EMERGENCY, audience=Audience.ADMIN, priority=Priority.OPERATOR,
    must_deliver=False,
)  # fmt: skip

# -- the operator console (issue 8) ------------------------------------------------------------
# Every payload carries ``ticket_id`` when the row is about a ticket; the deliverer renders
# from the ticket as it is when the row is sent (a card edit shows the latest state).

OPERATOR_TOPIC = register(
    "operator_topic", lane=Lane.EMERGENCY, audience=Audience.OPERATORS,
    priority=Priority.OPERATOR, must_deliver=True,
)  # fmt: skip
"""Create the ticket's forum topic; its ``record`` hook stores ``operator_thread_id``. In a
chat that is not a forum the send function returns no thread id and the ticket's messages
reply to its card. Must-deliver: the card (and all after it) waits for its topic."""
OPERATOR_CARD_EDIT = register(
    "operator_card_edit", lane=Lane.EMERGENCY, audience=Audience.OPERATORS,
    priority=Priority.OPERATOR, must_deliver=False,
)  # fmt: skip
"""Edit the card in place to the ticket's current state (status, claimer, agencies, times)."""
QUEUE_BOARD = register(
    "queue_board", lane=Lane.EMERGENCY, audience=Audience.OPERATORS,
    priority=Priority.OPERATOR, must_deliver=False,
)  # fmt: skip
"""Edit (or post and pin) the queue board in the General topic, rendered fresh when sent
(``QueueService.board``). Payload ``{"chat_id": …}``; at most one unsent row per chat."""
OPERATOR_NOTICE = register(
    "operator_notice", lane=Lane.EMERGENCY, audience=Audience.OPERATORS,
    priority=Priority.OPERATOR, must_deliver=False,
)  # fmt: skip
"""A system notice into the ticket's topic (or General): payload ``{"notice": …}`` with
``unclaimed`` (SLA re-alert, ``waited_seconds``), ``released_idle`` (``operator_id``),
``reopened`` (after an ``OPERATOR_TOPIC_STATE`` ``reopen`` row for its topic)."""
OPERATOR_TOPIC_STATE = register(
    "operator_topic_state", lane=Lane.EMERGENCY, audience=Audience.OPERATORS,
    priority=Priority.OPERATOR, must_deliver=False,
)  # fmt: skip
"""Keep the ticket's forum topic in step with the ticket: payload ``{"topic": …}`` with
``close`` (resolved or cancelled: the topic is closed, its history kept), ``reopen`` (back to
work) or ``rename`` (category or place corrected: the name shows the new emoji and kecamatan;
Telegram keeps a topic's icon colour from its creation). Nothing to do without a topic."""
CITIZEN_STATUS = register(
    "citizen_status", lane=Lane.CITIZEN, audience=Audience.CITIZEN,
    priority=Priority.RELAY, must_deliver=False,
)  # fmt: skip
"""A progress notice to the citizen, in their language, with the reference and 112: payload
``{"status": "claimed" | "dispatched" | "en_route" | "on_scene" | "resolved", …}`` plus
``agencies`` (names) for dispatched, ``eta_minutes`` for en_route, ``disposition`` for
resolved (which also invites a new report)."""
CITIZEN_RELAY = register(
    "citizen_relay", lane=Lane.CITIZEN, audience=Audience.CITIZEN,
    priority=Priority.RELAY, must_deliver=False,
)  # fmt: skip
"""An operator's message copied to the citizen under the role header («👮 Operator 112»),
never as the operator's own account: payload ``{"from_chat_id", "message_id", "kind",
"text", "edited"}`` (``edited``: an edit, sent again as a marked copy)."""

# -- agency handoff (issue 9) ------------------------------------------------------------------
# Payloads carry ``ticket_id`` and ``agency`` (the agency's code); rows are rendered from the
# ticket and assignment as they are when sent.

AGENCY_CARD = register(
    "agency_card", lane=Lane.AGENCY, audience=Audience.AGENCY, priority=Priority.AGENCY,
    must_deliver=False,
)  # fmt: skip
"""The ticket's card in the agency's Telegram chat, with the agency's buttons; its ``record``
hook stores the card's chat and message id on the assignment. Not must-deliver: one agency's
broken chat must not hold back another agency's card of the same ticket (a refusal is still
retried every 30 s at most, never given up, and told to the admins)."""
AGENCY_CARD_EDIT = register(
    "agency_card_edit", lane=Lane.AGENCY, audience=Audience.AGENCY, priority=Priority.AGENCY,
    must_deliver=False,
)  # fmt: skip
"""Edit the agency's card to the assignment's progress (its buttons follow)."""
AGENCY_REMINDER = register(
    "agency_reminder", lane=Lane.AGENCY, audience=Audience.AGENCY, priority=Priority.AGENCY,
    must_deliver=False,
)  # fmt: skip
"""The acknowledgement deadline passed: the agency's chat is notified again (a reply to the
card). Payload ``waited_seconds``."""
WEBHOOK_ATTEMPTS = 8
"""A webhook that failed this many times is dead-lettered (1+2+4+…+64 s ≈ 2 min of tries)."""
AGENCY_WEBHOOK = register(
    "agency_webhook", lane=Lane.AGENCY, audience=Audience.AGENCY, priority=Priority.AGENCY,
    must_deliver=False, transport=Transport.WEBHOOK, max_attempts=WEBHOOK_ATTEMPTS,
)  # fmt: skip
"""A signed EIDO-shaped POST to the agency's ``webhook_url`` (docs/agency-webhook.md):
payload ``event`` (``dispatch`` or ``reminder``) and ``idempotency_key`` (fixed when the row
is written, so every retry carries the same key). Dead-lettered after ``WEBHOOK_ATTEMPTS``:
the ticket's topic and the admins are told."""


# -- advisories (issue 12) ---------------------------------------------------------------------

ADVISORY = register(
    "advisory", lane=Lane.BROADCAST, audience=Audience.CITIZEN, priority=Priority.BROADCAST,
    must_deliver=False, batched=True,
)  # fmt: skip
"""One recipient's copy of an advisory: payload ``{"advisory_id", "delivery_id", "chat_id",
"language"}``
(``dedup_key`` ``advisory:<id>``); the text and photo are read from the advisory when sent.
Its ``record`` hook (set by ``AdvisoryService``) stores the outcome on the delivery row."""
ADVISORY_DRAFT = register(
    "advisory_draft", lane=Lane.EMERGENCY, audience=Audience.ADMIN, priority=Priority.AGENCY,
    must_deliver=False,
)  # fmt: skip
"""A draft from a CAP alert offered to one admin: payload ``{"advisory_id", "admin_id"}``;
the message shows the draft, its target and a button to review and send it."""
ADVISORY_PROGRESS = register(
    "advisory_progress", lane=Lane.EMERGENCY, audience=Audience.ADMIN,
    priority=Priority.AGENCY, must_deliver=False,
)  # fmt: skip
"""The admin's progress message of a broadcast, rendered fresh when sent: posted once, then
edited (payload ``{"advisory_id"}``); ``"final": true`` sends the final report. Claimed
after the emergency rows (rank 9) and paced above broadcasts, so it is never stuck behind
the copies it reports on."""
