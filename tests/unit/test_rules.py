"""Rules of the intake that need no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bot.domain.model import (
    Category,
    CategoryGroup,
    IntakeStep,
    Location,
    LocationSource,
    Ticket,
    TicketStatus,
)
from bot.domain.rules import clean_text, format_ref, next_step, priority_for, silent_by_default
from bot.services.intake import normalise_phone

NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
PLACE = Location(lat=-6.99, lon=110.42, source=LocationSource.GPS, captured_at=NOW)


def draft(**fields: object) -> Ticket:
    ticket = Ticket(citizen_id=1, chat_id=1, status=TicketStatus.DRAFT, created_at=NOW,
                    updated_at=NOW)  # fmt: skip
    for name, value in fields.items():
        setattr(ticket, name, value)
    return ticket


@pytest.mark.parametrize(
    ("fields", "step"),
    [
        ({}, IntakeStep.CATEGORY),
        ({"category_group": CategoryGroup.CRIME}, IntakeStep.SUBCATEGORY),
        ({"category": Category.MED}, IntakeStep.LOCATION),
        ({"category": Category.MED, "location_elsewhere": True}, IntakeStep.INCIDENT_LOCATION),
        ({"category": Category.MED, "incident_location": PLACE}, IntakeStep.PHONE),
        ({"category": Category.MED, "location_note": "near the mosque"}, IntakeStep.PHONE),
        (
            {"category": Category.MED, "incident_location": PLACE, "caller_phone_e164": "+62"},
            IntakeStep.NAME,
        ),
        (
            {
                "category": Category.MED,
                "incident_location": PLACE,
                "caller_phone_e164": "+62",
                "caller_name": "Siti",
            },
            IntakeStep.DETAILS,
        ),
        (
            {
                "category": Category.MED,
                "incident_location": PLACE,
                "caller_phone_e164": "+62",
                "caller_name": "Siti",
                "reviewed": True,
            },
            IntakeStep.CONFIRM,
        ),
    ],
)
def test_next_step_is_the_first_missing_answer_when_a_draft_is_partly_filled(
    fields: dict[str, object], step: IntakeStep
) -> None:
    assert next_step(draft(**fields)) is step


@pytest.mark.parametrize(
    ("fields", "priority"),
    [
        ({"category": Category.MED}, 1),
        ({"category": Category.FIRE}, 1),
        ({"category": Category.FLOOD}, 2),
        ({"category": Category.ANIMAL}, 3),
        ({"category": Category.ANIMAL, "silent": True}, 1),
    ],
)
def test_priority_follows_category_and_silent_mode_when_computed(
    fields: dict[str, object], priority: int
) -> None:
    assert priority_for(draft(**fields)) == priority


def test_reference_carries_prefix_local_day_and_four_digits_when_formatted() -> None:
    assert format_ref("SMG", date(2026, 11, 27), 42) == "SMG-261127-0042"


def test_clean_text_drops_control_characters_and_cuts_when_text_is_hostile() -> None:
    assert clean_text("  a\x00b\u200bc\nd\t ", 100) == "abc\nd"
    assert clean_text("x" * 50, 10) == "x" * 10


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("0812 3456 7890", "+6281234567890"),
        ("+62 812-3456-7890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("(024) 3515000", "+62243515000"),
        ("+44 20 7946 0958", "+442079460958"),
        ("112", None),
        ("not a number", None),
        ("0812", None),
        ("", None),
        ("9" * 40, None),
    ],
)
def test_phone_is_stored_as_e164_or_refused_when_typed(typed: str, e164: str | None) -> None:
    assert normalise_phone(typed) == e164


def test_silent_mode_is_on_by_default_only_for_domestic_violence_when_chosen() -> None:
    kdrt = draft(category=Category.KDRT)
    assert silent_by_default(kdrt) is True
    assert kdrt.silent is True
    assert silent_by_default(kdrt) is False  # already on: nothing to do
    theft = draft(category=Category.CRIME)
    assert silent_by_default(theft) is False
    assert theft.silent is False
