"""The admins' console commands: ``siaga112 cap import FILE|URL``, ``export`` and ``purge``.

Wiring only (the composition root of each command). ``cap import``: the document is read
from a file or fetched over http(s) (10 s timeout, 1 MB at most, a real User-Agent), then
:class:`bot.services.cap.CapImporter` matches it to the city and stores the draft; the
running bot's outbox worker delivers the offers to the admins. ``export``: one CSV row per
ticket with its milestones (:class:`bot.services.stats.ExportService`). ``purge``: the
retention purge the running bot does daily (:class:`bot.services.privacy.PrivacyService`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from bot import __version__
from bot.config import Settings
from bot.geo import load_gazetteer
from bot.geo.gazetteer import city_centroids
from bot.services.cap import MAX_BYTES, CapImporter, ImportResult, parse_cap
from bot.services.clock import SystemClock
from bot.services.ports import Clock, UnitOfWorkFactory
from bot.services.privacy import PrivacyService, PurgeReport, RetentionPolicy
from bot.services.stats import EXPORT_COLUMNS, PERSONAL_COLUMNS, ExportService, StatsService
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory

FETCH_TIMEOUT = 10.0


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": f"siaga112/{__version__}"})  # noqa: S310 - http(s) only, checked by the caller
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:  # noqa: S310
        data: bytes = response.read(MAX_BYTES + 1)
    return data


async def read_source(source: str) -> bytes:
    """The document at ``source``: an http(s) URL or a file path."""
    if urlsplit(source).scheme in ("http", "https"):
        return await asyncio.to_thread(_fetch, source)
    return await asyncio.to_thread(Path(source).read_bytes)


async def import_cap(settings: Settings, source: str) -> ImportResult:
    """Reads, matches and stores one alert; the admins of the settings and the roster are
    offered the draft."""
    alert = parse_cap(await read_source(source))
    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
        async with uow_factory() as uow:
            roster = await uow.operators.list()
        admins = set(settings.admin_user_ids) | {o.telegram_id for o in roster if o.is_admin}
        gazetteer = load_gazetteer()
        importer = CapImporter(
            uow_factory, SystemClock(), gazetteer,
            {k.code: k.name for k in gazetteer.kecamatan}, zone=settings.timezone,
        )  # fmt: skip
        return await importer.import_alert(alert, admins)
    finally:
        await engine.dispose()


class _Everyone:
    """The command line is run by the deployment's operators: no roster check."""

    async def is_admin(self, telegram_id: int) -> bool:
        return True


async def export_csv(settings: Settings, since: datetime, *, personal: bool) -> str:
    """The CSV of the tickets submitted since ``since`` (UTC times, milestones in seconds)."""
    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
        clock = SystemClock()
        service = ExportService(StatsService(uow_factory, clock, _Everyone()), uow_factory, clock)
        rows = await service.rows(since, personal=personal)
    finally:
        await engine.dispose()
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=[*EXPORT_COLUMNS, *(PERSONAL_COLUMNS if personal else ())],
        lineterminator="\n",
    )  # fmt: skip
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def privacy_service(
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    citizen_uow_factory: UnitOfWorkFactory | None = None,
) -> PrivacyService:
    """The retention purge and the citizen's rights, with the settings' periods."""
    return PrivacyService(
        uow_factory, clock,
        RetentionPolicy(
            retention=timedelta(days=settings.retention_days),
            draft_retention=timedelta(days=settings.draft_retention_days),
        ),
        city_centroids(load_gazetteer()), default_language=settings.default_language,
        citizen_uow_factory=citizen_uow_factory,
    )  # fmt: skip


async def purge(settings: Settings, *, dry_run: bool) -> PurgeReport:
    """Anonymises (``dry_run``: counts) what is past its retention period."""
    await upgrade(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
        return await privacy_service(settings, uow_factory, SystemClock()).purge(dry_run=dry_run)
    finally:
        await engine.dispose()
