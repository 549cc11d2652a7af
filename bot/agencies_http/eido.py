"""The webhook's JSON: an incident document shaped after NENA EIDO (pure, no I/O).

Components as in EIDO: ``incident``, ``call``, ``person``, ``location`` (a circle whose
radius is the accuracy, plus the civic address with kelurahan and kecamatan), ``agency`` and
``notes``; ``docs/agency-webhook.md`` shows an example. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot import __version__
from bot.config import AgencyConfig
from bot.domain.model import Assignment, Citizen, Location, Ticket

SCHEMA = "siaga112-eido/1"
SILENT_CONTACT = "chat only, via 112"
"""What a silent-mode caller's contact says instead of a phone number."""


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def incident_document(
    ticket: Ticket,
    citizen: Citizen | None,
    agency: AgencyConfig,
    assignment: Assignment | None,
    *,
    event: str,
    key: str,
    sent_at: datetime,
) -> dict[str, Any]:
    """The document POSTed to ``agency`` about ``ticket`` (``event``: dispatch, reminder)."""
    location = ticket.incident_location or ticket.reporter_location
    return {
        "schema": SCHEMA,
        "event": event,
        "idempotencyKey": key,
        "sentAt": iso(sent_at),
        "sender": {"system": "siaga112", "version": __version__},
        "incident": {
            "reference": ticket.ref,
            "status": ticket.status.value,
            "category": ticket.category.value if ticket.category else None,
            "priority": ticket.priority,
            "reportedAt": iso(ticket.submitted_at),
            "dispatchedAt": iso(assignment.dispatched_at if assignment else ticket.dispatched_at),
        },
        "call": {
            "channel": "telegram-chat",
            "language": ticket.language,
            "silent": ticket.silent,
            "receivedAt": iso(ticket.submitted_at),
        },
        "person": _person(ticket, citizen),
        "location": _location(location) if location is not None else None,
        "agency": {
            "code": agency.code,
            "name": agency.name,
            "ackDeadlineSeconds": agency.ack_deadline_seconds,
            "ackDueAt": iso(assignment.ack_due_at if assignment else None),
        },
        "notes": _notes(ticket),
    }


def _person(ticket: Ticket, citizen: Citizen | None) -> dict[str, Any]:
    silent = ticket.silent or not ticket.caller_phone_e164
    return {
        "role": "caller",
        "name": ticket.caller_name or (citizen.name if citizen else None),
        "phone": None if ticket.silent else ticket.caller_phone_e164,
        "phoneVerified": bool(ticket.caller_phone_verified) and not ticket.silent,
        "contact": SILENT_CONTACT if silent else "phone",
    }


def _location(location: Location) -> dict[str, Any]:
    area = location.area
    return {
        "geometry": {
            "type": "Circle",
            "coordinates": [location.lon, location.lat],
            "radius": location.accuracy_m,
            "uom": "m",
        },
        "source": location.source.value,
        "capturedAt": iso(location.captured_at),
        "civicAddress": {
            "country": "ID",
            "A1": "Jawa Tengah",
            "A2": "Kota Semarang",
            "A3": area.kecamatan_name if area else None,
            "A4": area.kelurahan_name if area else None,
            "kecamatanCode": area.kecamatan_code if area else None,
            "kelurahanCode": area.kelurahan_code if area else None,
            "text": location.display_address or location.address_text,
        },
    }


def _notes(ticket: Ticket) -> list[dict[str, str]]:
    notes = []
    if ticket.details:
        notes.append({"type": "details", "text": ticket.details})
    if ticket.persons_affected:
        notes.append({"type": "personsAffected", "text": ticket.persons_affected})
    if ticket.location_note:
        notes.append({"type": "location", "text": ticket.location_note})
    if ticket.media:
        notes.append({"type": "media", "text": f"{len(ticket.media)} attachment(s) in Telegram"})
    return notes
