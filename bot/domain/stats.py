"""Response-time statistics of a period: counts, interval percentiles, targets, pranks.

Intervals run from the report's submission to each milestone: the claim by an operator,
the dispatch to an agency, the first agency acknowledgement and the arrival on scene (the
ticket's columns, else the earliest of its assignments). Percentiles are nearest-rank.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.model import Assignment, Disposition, Ticket

TARGET = timedelta(minutes=10)
"""The mayor's target: from report to help arriving."""
MILESTONES = ("claim", "dispatch", "ack", "on_scene")


@dataclass(frozen=True, slots=True)
class Interval:
    """How long a milestone took: how many tickets reached it, p50 and p90 in seconds."""

    count: int
    p50: float | None
    p90: float | None


@dataclass(frozen=True, slots=True)
class Stats:
    """The statistics of one period."""

    since: datetime
    until: datetime
    total: int
    by_category: list[tuple[str, int]] = field(default_factory=list)
    by_kecamatan: list[tuple[str, int]] = field(default_factory=list)
    by_disposition: list[tuple[str, int]] = field(default_factory=list)
    intervals: dict[str, Interval] = field(default_factory=dict)
    on_scene_within_target: int = 0
    on_scene_count: int = 0
    prank: int = 0
    ghost: int = 0
    with_disposition: int = 0

    @property
    def within_target_share(self) -> float | None:
        """Share of tickets with an arrival whose arrival took at most 10 minutes."""
        return self.on_scene_within_target / self.on_scene_count if self.on_scene_count else None

    @property
    def prank_rate(self) -> float | None:
        """Pranks among the tickets an operator gave a disposition."""
        return self.prank / self.with_disposition if self.with_disposition else None

    @property
    def ghost_rate(self) -> float | None:
        """Silent or empty reports among the tickets given a disposition."""
        return self.ghost / self.with_disposition if self.with_disposition else None


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def milestones(ticket: Ticket, assignments: Iterable[Assignment]) -> dict[str, datetime | None]:
    """When the ticket reached each milestone (None: not reached)."""
    mine = list(assignments)

    def first(values: Iterable[datetime | None]) -> datetime | None:
        present = [v for v in values if v is not None]
        return min(present) if present else None

    return {
        "claim": ticket.claimed_at,
        "dispatch": ticket.dispatched_at or first(a.dispatched_at for a in mine),
        "ack": ticket.acknowledged_at or first(a.acknowledged_at for a in mine),
        "on_scene": ticket.on_scene_at or first(a.on_scene_at for a in mine),
    }


def compute(
    tickets: Sequence[Ticket],
    assignments: Iterable[Assignment],
    since: datetime,
    until: datetime,
) -> Stats:
    """The statistics of the submitted ``tickets`` of ``[since, until)``."""
    by_ticket: dict[int, list[Assignment]] = {}
    for assignment in assignments:
        by_ticket.setdefault(assignment.ticket_id, []).append(assignment)
    categories: Counter[str] = Counter()
    kecamatan: Counter[str] = Counter()
    dispositions: Counter[str] = Counter()
    waits: dict[str, list[float]] = {name: [] for name in MILESTONES}
    within = 0
    for ticket in tickets:
        categories[ticket.category.value if ticket.category else "—"] += 1
        area = ticket.incident_location.area if ticket.incident_location else None
        kecamatan[area.kecamatan_name if area is not None and area.inside else "—"] += 1
        dispositions[ticket.disposition.value if ticket.disposition else "—"] += 1
        if ticket.submitted_at is None:
            continue
        for name, at in milestones(ticket, by_ticket.get(ticket.id or 0, [])).items():
            if at is not None and at >= ticket.submitted_at:
                waits[name].append((at - ticket.submitted_at).total_seconds())
                if name == "on_scene" and at - ticket.submitted_at <= TARGET:
                    within += 1
    return Stats(
        since=since,
        until=until,
        total=len(tickets),
        by_category=_ranked(categories),
        by_kecamatan=_ranked(kecamatan),
        by_disposition=_ranked(dispositions),
        intervals={
            name: Interval(len(v), percentile(v, 0.5), percentile(v, 0.9))
            for name, v in waits.items()
        },
        on_scene_within_target=within,
        on_scene_count=len(waits["on_scene"]),
        prank=dispositions[Disposition.PRANK.value],
        ghost=dispositions[Disposition.GHOST.value],
        with_disposition=sum(n for d, n in dispositions.items() if d != "—"),
    )


def _ranked(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))
