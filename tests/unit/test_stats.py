"""Statistics on a known set of tickets: counts, nearest-rank percentiles, 10-minute target,
prank and ghost rates; the period's bounds; the chart."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from bot.domain.model import (
    Area,
    Assignment,
    AssignmentChannel,
    Category,
    Disposition,
    Location,
    LocationSource,
    TicketStatus,
)
from bot.domain.stats import compute, percentile
from bot.services.advisories import NotAllowed
from bot.services.stats import EXPORT_COLUMNS, PERSONAL_COLUMNS, ExportService, StatsService
from handlers.stats_chart import render_png
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.advisory_support import ADMIN, Admins
from tests.unit.console_support import T0, Clock, add_ticket

TUGU = Area("33.74.16.1002", "Tugurejo", "33.74.16", "Tugu")
GENUK = Area("33.74.05.1001", "Genuk", "33.74.05", "Genuk")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# (category, area, claim s, dispatch s, on scene s, disposition)
KNOWN = [
    (Category.FLOOD, TUGU, 30, 60, 480, Disposition.EMERGENCY),  # 8 min: within target
    (Category.FLOOD, TUGU, 60, 120, 540, Disposition.EMERGENCY),  # 9 min
    (Category.MED, GENUK, 90, 180, 720, Disposition.EMERGENCY),  # 12 min: late
    (Category.FIRE, GENUK, 120, None, None, Disposition.PRANK),
    (Category.MED, TUGU, 600, None, None, Disposition.GHOST),
    (Category.MED, TUGU, None, None, None, None),  # still in the queue
]


async def known_set(uow_factory: InMemoryUnitOfWorkFactory) -> list[int]:
    ids = []
    for n, (category, area, claim, dispatch, scene, disposition) in enumerate(KNOWN):
        ticket = await add_ticket(
            uow_factory, telegram_id=6000 + n, at=T0, category=category,
            status=TicketStatus.RESOLVED if disposition else TicketStatus.SUBMITTED,
            incident_location=Location(-6.97, 110.35, LocationSource.GPS, T0, area=area),
            claimed_at=None if claim is None else at(claim),
            dispatched_at=None if dispatch is None else at(dispatch),
            on_scene_at=None if scene is None else at(scene), disposition=disposition,
        )  # fmt: skip
        ids.append(ticket.id or 0)
    async with uow_factory() as uow:  # agencies acknowledged the first two
        for ticket_id, ack in ((ids[0], 90), (ids[1], 150)):
            await uow.assignments.add(
                Assignment(
                    ticket_id, "BPBD", at(60), AssignmentChannel.TELEGRAM, "operator:1001",
                    acknowledged_at=at(ack),
                )
            )  # fmt: skip
        await uow.commit()
    return ids


@pytest.mark.parametrize(
    ("values", "share", "expected"),
    [([], 0.5, None), ([5.0], 0.9, 5.0), ([1, 2, 3, 4], 0.5, 2), ([1, 2, 3, 4], 0.9, 4)],
)
def test_percentile_is_nearest_rank_when_computed(
    values: list[float], share: float, expected: float | None
) -> None:
    assert percentile(values, share) == expected


async def test_statistics_match_the_known_set_when_a_period_holds_it() -> None:
    uow_factory = InMemoryUnitOfWorkFactory()
    await known_set(uow_factory)
    clock = Clock()
    clock.advance(hours=1)
    service = StatsService(uow_factory, clock, Admins())

    stats = await service.last_days(ADMIN, 1)

    assert stats.total == 6
    assert stats.by_category == [("MED", 3), ("FLOOD", 2), ("FIRE", 1)]
    assert stats.by_kecamatan == [("Tugu", 4), ("Genuk", 2)]
    assert dict(stats.by_disposition) == {"emergency": 3, "prank": 1, "ghost": 1, "—": 1}
    claim = stats.intervals["claim"]
    assert (claim.count, claim.p50, claim.p90) == (5, 90.0, 600.0)
    dispatch = stats.intervals["dispatch"]
    assert (dispatch.count, dispatch.p50, dispatch.p90) == (3, 120.0, 180.0)
    ack = stats.intervals["ack"]
    assert (ack.count, ack.p50, ack.p90) == (2, 90.0, 150.0)
    scene = stats.intervals["on_scene"]
    assert (scene.count, scene.p50, scene.p90) == (3, 540.0, 720.0)
    assert (stats.on_scene_within_target, stats.on_scene_count) == (2, 3)
    assert stats.within_target_share == pytest.approx(2 / 3)
    assert stats.prank_rate == pytest.approx(1 / 5)
    assert stats.ghost_rate == pytest.approx(1 / 5)


async def test_tickets_outside_the_period_are_left_out_when_it_is_short() -> None:
    uow_factory = InMemoryUnitOfWorkFactory()
    await known_set(uow_factory)
    clock = Clock()
    clock.advance(days=2)  # the known set is two days old
    stats = await StatsService(uow_factory, clock, Admins()).last_days(ADMIN, 1)

    assert stats.total == 0
    assert stats.within_target_share is None
    assert stats.intervals["claim"].p50 is None


async def test_non_admin_is_refused_when_asking_for_statistics() -> None:
    with pytest.raises(NotAllowed):
        await StatsService(InMemoryUnitOfWorkFactory(), Clock(), Admins()).last_days(42, 7)


def test_chart_is_a_png_when_rendered_for_a_period() -> None:
    stats = compute([], [], T0, T0 + timedelta(days=7))
    labels = {"claim": "a", "dispatch": "b", "ack": "c", "on_scene": "d"}

    png = render_png(stats, labels, ("times", "categories"))

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5_000


async def test_export_has_one_row_per_ticket_without_personal_data_when_not_asked() -> None:
    uow_factory = InMemoryUnitOfWorkFactory()
    await known_set(uow_factory)
    clock = Clock()
    clock.advance(hours=1)
    service = ExportService(StatsService(uow_factory, clock, Admins()), uow_factory, clock)

    rows = await service.rows(T0 - timedelta(days=1))

    assert len(rows) == 6
    first = rows[0]
    assert set(first) == set(EXPORT_COLUMNS)
    assert (first["claim_s"], first["dispatch_s"], first["ack_s"], first["on_scene_s"]) == (
        30, 60, 90, 480
    )  # fmt: skip
    assert first["on_scene_within_10_min"] is True
    assert rows[2]["on_scene_within_10_min"] is False
    assert first["agencies"] == "BPBD"
    assert first["kecamatan"] == "Tugu"
    assert uow_factory.store.audit == {}


async def test_personal_data_export_is_recorded_in_the_audit_log_when_asked() -> None:
    uow_factory = InMemoryUnitOfWorkFactory()
    await known_set(uow_factory)
    clock = Clock()
    clock.advance(hours=1)
    service = ExportService(StatsService(uow_factory, clock, Admins()), uow_factory, clock)

    rows = await service.rows(T0 - timedelta(days=1), personal=True, actor="cli")

    assert set(rows[0]) == {*EXPORT_COLUMNS, *PERSONAL_COLUMNS}
    (entry,) = uow_factory.store.audit.values()
    assert (entry.kind, entry.actor, entry.at) == ("export_personal_data", "cli", clock.now())
    assert "6 tickets" in (entry.note or "")
