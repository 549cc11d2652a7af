"""Routing: which agencies the agencies file suggests for a category in a kecamatan.

Pure: the agencies (already validated, areas resolved to kecamatan codes) in, the suggested
agencies out, in the file's order. An agency handles a ticket when the ticket's category is
one of its ``categories`` and its ``areas`` are empty (the whole city) or include the
ticket's kecamatan. A ticket without a known kecamatan (outside the city, not located yet)
gets the city-wide agencies only, and a ticket without a category (or OTHER, which no
agency lists) gets none: the operator decides. The operator confirms or changes the
suggestion on the Dispatch picker.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import AgencyConfig
from bot.domain.model import Category, Ticket


def serves(agency: AgencyConfig, category: Category | str | None, kecamatan: str | None) -> bool:
    """Whether ``agency`` handles ``category`` in the kecamatan with code ``kecamatan``."""
    if category is None or str(category) not in agency.categories:
        return False
    if not agency.area_codes:
        return True
    return kecamatan is not None and kecamatan in agency.area_codes


def suggest(
    agencies: Sequence[AgencyConfig], category: Category | str | None, kecamatan: str | None
) -> list[AgencyConfig]:
    """The agencies that handle ``category`` in ``kecamatan`` (a code), in the file's order."""
    return [agency for agency in agencies if serves(agency, category, kecamatan)]


def kecamatan_of(ticket: Ticket) -> str | None:
    """The code of the kecamatan the incident is in (the incident's place, else the caller's)."""
    for location in (ticket.incident_location, ticket.reporter_location):
        if location is not None and location.area is not None:
            return location.area.kecamatan_code
    return None


def suggest_for(agencies: Sequence[AgencyConfig], ticket: Ticket) -> list[AgencyConfig]:
    """The agencies suggested for a ticket (its category and kecamatan)."""
    return suggest(agencies, ticket.category, kecamatan_of(ticket))
