"""Routing: category × kecamatan × areas -> the suggested agencies, as a table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config import AgencyConfig, bundled_agencies_file, load_agencies
from bot.domain.model import (
    Area,
    Category,
    CategoryGroup,
    Location,
    LocationSource,
    Ticket,
    TicketStatus,
)
from bot.services.routing import kecamatan_of, suggest, suggest_for

TENGAH, TUGU, GENUK = "33.74.01", "33.74.16", "33.74.05"
AGENCIES = (
    AgencyConfig("DINKES", "Ambulans", ("MED", "TRAF")),
    AgencyConfig("DAMKAR", "Damkar", ("FIRE", "TRAF", "TREE")),
    AgencyConfig("POLSEK_TUGU", "Polsek Tugu", ("CRIME", "TRAF"), area_codes=(TUGU,)),
    AgencyConfig("POLSEK_TIMUR", "Polsek", ("CRIME", "TRAF"), area_codes=(GENUK, TENGAH)),
    AgencyConfig("BPBD", "BPBD", ("FLOOD", "TREE")),
)


@pytest.mark.parametrize(
    ("category", "kecamatan", "expected"),
    [
        (Category.MED, TENGAH, ["DINKES"]),
        (Category.FIRE, None, ["DAMKAR"]),  # city-wide agencies serve unknown places
        (Category.TRAF, TUGU, ["DINKES", "DAMKAR", "POLSEK_TUGU"]),  # several agencies
        (Category.TRAF, GENUK, ["DINKES", "DAMKAR", "POLSEK_TIMUR"]),
        (Category.TRAF, None, ["DINKES", "DAMKAR"]),  # area-bound ones need a kecamatan
        (Category.CRIME, TENGAH, ["POLSEK_TIMUR"]),
        (Category.CRIME, "33.74.10", []),  # no police station covers Tembalang here
        (Category.TREE, TUGU, ["DAMKAR", "BPBD"]),
        (Category.OTHER, TENGAH, []),  # the operator decides
        (None, TENGAH, []),
    ],
)
def test_routing_suggests_the_agencies_of_the_table_when_given_category_and_kecamatan(
    category: Category | None, kecamatan: str | None, expected: list[str]
) -> None:
    assert [a.code for a in suggest(AGENCIES, category, kecamatan)] == expected


def _ticket(incident: Area | None, reporter: Area | None) -> Ticket:
    now = datetime(2026, 11, 29, tzinfo=UTC)

    def at(area: Area | None) -> Location | None:
        return None if area is None else Location(-6.9, 110.4, LocationSource.GPS, now, area=area)

    return Ticket(
        citizen_id=1, chat_id=1, status=TicketStatus.SUBMITTED, created_at=now, updated_at=now,
        category_group=CategoryGroup.CRIME, category=Category.CRIME,
        incident_location=at(incident), reporter_location=at(reporter),
    )  # fmt: skip


def test_routing_uses_the_incident_kecamatan_before_the_callers_when_both_are_known() -> None:
    genuk = Area("33.74.05.1001", "Trimulyo", GENUK, "Genuk")
    tugu = Area("33.74.16.1001", "Mangkang", TUGU, "Tugu")
    assert kecamatan_of(_ticket(genuk, tugu)) == GENUK
    assert kecamatan_of(_ticket(None, tugu)) == TUGU
    assert [a.code for a in suggest_for(AGENCIES, _ticket(None, tugu))] == ["POLSEK_TUGU"]
    assert [a.code for a in suggest_for(AGENCIES, _ticket(None, None))] == []
    assert [a.code for a in suggest_for(AGENCIES, _ticket(genuk, None))] == ["POLSEK_TIMUR"]


def test_bundled_file_routes_a_traffic_accident_to_police_ambulance_and_fire_when_loaded() -> None:
    agencies = load_agencies(bundled_agencies_file(), {})
    codes = [a.code for a in suggest(agencies, Category.TRAF, TENGAH)]
    assert codes == ["DINKES", "DAMKAR", "POLRESTABES"]
    assert all(a.area_codes == () for a in agencies)  # the bundled file is city-wide
