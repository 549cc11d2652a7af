"""What anonymising a ticket and erasing a citizen remove, and what they keep (UU PDP).

Kept, because the statistics and the call center's records need them: category, priority,
disposition, status, every event time, the kelurahan and kecamatan, how the place was given
(source, accuracy), silent mode, the number of people affected, the operators' names.
Removed: the caller's name and phone number, everything typed (details, notes about the
place, unresolved addresses), the media file ids, the exact point (moved to the centroid of
its kelurahan), the address texts and the chat id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime

from bot.domain.model import Citizen, Location, Ticket, TicketStatus

Centroids = Mapping[str, tuple[float, float]]
"""Kelurahan (and kecamatan) code -> ``(lat, lon)`` of its centroid."""

PERSONAL_EVENT_NOTES = frozenset({"note"})
"""Timeline events whose note is free text (operators' internal notes)."""

FINISHED_DRAFT = frozenset({TicketStatus.ABANDONED})


def is_draft_record(ticket: Ticket) -> bool:
    """Whether a finished ticket was never submitted (kept for ``DRAFT_RETENTION_DAYS``)."""
    return ticket.status in FINISHED_DRAFT or (
        ticket.status is TicketStatus.CANCELLED and ticket.submitted_at is None
    )


def reduced_location(location: Location | None, centroids: Centroids) -> Location | None:
    """The location moved to its kelurahan's centroid (its kecamatan's, when the kelurahan is
    unknown); without an area nothing of it is kept."""
    if location is None or location.area is None:
        return None
    area = location.area
    point = centroids.get(area.kelurahan_code) or centroids.get(area.kecamatan_code)
    if point is None:
        return None
    return dataclasses.replace(
        location, lat=point[0], lon=point[1], address_text=None, display_address=None,
        live_until=None,
    )  # fmt: skip


def anonymised(
    ticket: Ticket, now: datetime, centroids: Centroids, *, keep_chat: bool = False
) -> Ticket:
    """Return a copy of ``ticket`` without personal data (idempotent).

    ``keep_chat`` keeps the citizen's chat id for the notices still owed (a ticket anonymised
    at its close); the purge removes it a day later."""
    return dataclasses.replace(
        ticket,
        chat_id=ticket.chat_id if keep_chat else 0,
        caller_name=None,
        caller_phone_e164=None,
        details=None,
        location_note=None,
        unresolved_address=None,
        media=[],
        incident_location=reduced_location(ticket.incident_location, centroids),
        reporter_location=reduced_location(ticket.reporter_location, centroids),
        pending_location=None,
        anonymised_at=ticket.anonymised_at or now,
    )


def without_personal_data(citizen: Citizen, now: datetime, *, erase_id: bool) -> Citizen:
    """Return a copy of ``citizen`` without name, username and phone (an advisory
    subscription is the subscriptions service's to withdraw).

    ``erase_id`` also replaces the Telegram id with a pseudonym (minus the record's id: never
    a real user's) and marks the record erased; otherwise the erasure waits
    (``erase_requested_at``) for the citizen's open tickets to close."""
    erased = dataclasses.replace(
        citizen, name=None, username=None, phone_e164=None, phone_verified=False
    )
    if erase_id:
        erased.telegram_id = -(citizen.id or 0)
        erased.erased_at = now
        erased.erase_requested_at = None
    return erased
