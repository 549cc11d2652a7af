"""Domain objects with every field set, for round-trip tests of the stores."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bot.domain.model import (
    Area,
    Assignment,
    AssignmentChannel,
    AuditEntry,
    Category,
    CategoryGroup,
    Citizen,
    Direction,
    Disposition,
    GeocodeCandidate,
    IntakeStep,
    Location,
    LocationSource,
    Media,
    MediaKind,
    Operator,
    OutboxMessage,
    RelayMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)

#: A fixed "now": 10:00 WIB on a weekday, in UTC.
T0 = datetime(2026, 5, 27, 3, 0, 0, 123456, tzinfo=UTC)
WIB = timezone(timedelta(hours=7), "WIB")


def at(minutes: float) -> datetime:
    """Return ``T0`` shifted by ``minutes``."""
    return T0 + timedelta(minutes=minutes)


def area(suffix: str = "1") -> Area:
    """A kelurahan of Semarang Tengah, slightly outside its polygon."""
    return Area(
        kelurahan_code=f"33.74.01.100{suffix}",
        kelurahan_name=f"Sekayu {suffix}",
        kecamatan_code="33.74.01",
        kecamatan_name="Semarang Tengah",
        inside=False,
        distance_m=12.5,
    )


def location(source: LocationSource = LocationSource.GPS, shift: float = 0.0) -> Location:
    """A location with every optional field set (times in WIB, to prove UTC conversion)."""
    return Location(
        lat=-6.983 + shift,
        lon=110.409 - shift,
        source=source,
        captured_at=at(1).astimezone(WIB),
        accuracy_m=8.25,
        address_text="Jl. Pemuda dekat Lawang Sewu",
        display_address="Jalan Pemuda, Sekayu, Semarang Tengah",
        area=area(),
        confidence=0.875,
        live_until=at(16).astimezone(WIB),
    )


def citizen(telegram_id: int = 7_000_000_001, **changes: Any) -> Citizen:
    """A citizen with every field set (no id yet)."""
    full = Citizen(
        telegram_id=telegram_id,
        language="en",
        name="Siti Rahayu",
        username="siti_r",
        phone_e164="+6281234567890",
        phone_verified=True,
        strikes=2,
        blocked_bot=True,
        subscribed=True,
        subscription_kecamatan_code="33.74.11",
        subscribed_at=at(-45),
        erase_requested_at=at(-40).astimezone(WIB),
        erased_at=at(-35),
        created_at=at(-60),
        updated_at=at(-30),
    )
    return dataclasses.replace(full, **changes)


def ticket(citizen_id: int, **changes: Any) -> Ticket:
    """A submitted ticket with every field set (no id yet)."""
    full = Ticket(
        citizen_id=citizen_id,
        chat_id=-1_002_000_000_123,
        status=TicketStatus.DISPATCHED,
        created_at=at(0),
        updated_at=at(5),
        step=IntakeStep.CONFIRM,
        ref="SMG-260527-0042",
        category_group=CategoryGroup.DISASTER,
        category=Category.FLOOD,
        priority=1,
        disposition=Disposition.EMERGENCY,
        incident_location=location(LocationSource.PIN, shift=0.01),
        reporter_location=location(LocationSource.LIVE),
        pending_location=location(LocationSource.GEOCODED, shift=0.02),
        location_elsewhere=True,
        location_note="behind the mosque, blue gate",
        unresolved_address="gang buntu dekat masjid",
        reviewed=True,
        live_notified_at=at(7),
        caller_name="Budi Santoso",
        caller_phone_e164="+6289876543210",
        caller_phone_verified=True,
        language="en",
        details="Water up to the knees, an elderly neighbour cannot leave",
        persons_affected="3 adults, 1 child",
        silent=True,
        media=[
            Media(kind=MediaKind.PHOTO, file_id="AgACAgUAAxkBAAIB", caption="the street"),
            Media(kind=MediaKind.VOICE, file_id="AwACAgUAAxkBAAIC"),
        ],
        submitted_at=at(2),
        closed_at=at(90).astimezone(WIB),
        queued_at=at(2),
        operator_chat_id=-1_001_234_567_890,
        operator_thread_id=77,
        operator_card_message_id=78,
        claimed_by=4_200_000_042,
        claimed_by_name="Dewi (operator)",
        claimed_at=at(3),
        dispatched_at=at(4),
        acknowledged_at=at(4.5),
        en_route_at=at(5).astimezone(WIB),
        eta_minutes=7,
        on_scene_at=at(12),
        resolved_at=at(60),
        last_operator_message_at=at(11),
        sla_realerted_at=at(3),
        sla_escalated_at=at(5),
        reopened_count=2,
        version=4,
    )
    return dataclasses.replace(full, **changes)


def draft(citizen_id: int, **changes: Any) -> Ticket:
    """A fresh draft (defaults only)."""
    base = Ticket(
        citizen_id=citizen_id,
        chat_id=7_000_000_001,
        status=TicketStatus.DRAFT,
        created_at=at(0),
        updated_at=at(0),
    )
    return dataclasses.replace(base, **changes)


def event(ticket_id: int, minutes: float = 0.0, **changes: Any) -> TicketEvent:
    """A status change event with every field set."""
    full = TicketEvent(
        ticket_id=ticket_id,
        at=at(minutes),
        actor="operator:42",
        kind="status",
        from_status=TicketStatus.SUBMITTED,
        to_status=TicketStatus.CLAIMED,
        note="claimed from the queue",
    )
    return dataclasses.replace(full, **changes)


def message(ticket_id: int, minutes: float = 0.0, **changes: Any) -> RelayMessage:
    """A relayed photo from the citizen with every field set."""
    full = RelayMessage(
        ticket_id=ticket_id,
        direction=Direction.FROM_CITIZEN,
        at=at(minutes),
        kind="photo",
        text="the water is rising",
        file_id="AgACAgUAAxkBAAID",
        telegram_chat_id=-1_002_000_000_999,
        telegram_message_id=4242,
        edited=True,
    )
    return dataclasses.replace(full, **changes)


def outbox(ticket_id: int | None = None, minutes: float = 0.0, **changes: Any) -> OutboxMessage:
    """An operator card delivery with every field set (still owed)."""
    full = OutboxMessage(
        kind="operator_card",
        payload={"ticket_id": ticket_id, "lines": ["a", "b"], "nested": {"n": 1.5, "ok": True}},
        created_at=at(minutes),
        next_attempt_at=at(minutes),
        attempts=1,
        last_error="TimedOut",
        ticket_id=ticket_id,
        lane="emergency",
    )
    return dataclasses.replace(full, **changes)


def operator(telegram_id: int = 4_200_000_042, **changes: Any) -> Operator:
    """A roster entry with every field set (no id yet)."""
    full = Operator(
        telegram_id=telegram_id,
        display_name="Dewi Lestari",
        is_admin=True,
        active=False,
        added_by="operator:4200000001",
        added_at=at(-5).astimezone(WIB),
    )
    return dataclasses.replace(full, **changes)


def assignment(ticket_id: int, agency_code: str = "DAMKAR", **changes: Any) -> Assignment:
    """An agency assignment with every field set (no id yet)."""
    full = Assignment(
        ticket_id=ticket_id,
        agency_code=agency_code,
        dispatched_at=at(4).astimezone(WIB),
        channel=AssignmentChannel.TELEGRAM,
        by="operator:4200000042",
        acknowledged_at=at(5),
        en_route_at=at(6),
        eta_minutes=9,
        on_scene_at=at(14),
        completed_at=at(50),
        declined_at=at(51),
        decline_reason="no_unit",
        ack_due_at=at(6),
        ack_reminded_at=at(7),
        ack_escalated_at=at(9),
        card_chat_id=-1009876543210,
        card_message_id=77,
    )
    return dataclasses.replace(full, **changes)


def audit(minutes: float = 0.0, **changes: Any) -> AuditEntry:
    """An audit entry with every field set."""
    full = AuditEntry(
        at=at(minutes),
        actor="operator:4200000001",
        kind="operator_added",
        subject="operator:4200000042",
        note="admin",
    )
    return dataclasses.replace(full, **changes)


def candidate(suffix: str = "1", *, with_area: bool = True) -> GeocodeCandidate:
    """A geocoding answer with every field set."""
    return GeocodeCandidate(
        lat=-6.99,
        lon=110.42,
        display_address=f"Simpang Lima {suffix}, Semarang",
        confidence=0.9,
        source="nominatim",
        area=area(suffix) if with_area else None,
        rt_rw="RT 03 / RW 05",
    )


def unset_fields(obj: object, *, ignore: tuple[str, ...] = ("id",)) -> list[str]:
    """Return the fields of ``obj`` still at their default: a round trip would not test them."""
    assert dataclasses.is_dataclass(obj)
    assert not isinstance(obj, type)
    unset = []
    for f in dataclasses.fields(obj):
        if f.name in ignore:
            continue
        if f.default is not dataclasses.MISSING:
            default: object = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            continue
        if getattr(obj, f.name) == default:
            unset.append(f.name)
    return unset
