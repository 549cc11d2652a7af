"""Retention purge benchmark: how long the daily purge takes over a year of closed tickets.

Run from the repo root::

    .venv/bin/python bench/purge.py [--tickets 10000] [--db sqlite|postgres] [--postgres-url URL]

Writes ``--tickets`` closed tickets 400 days old (each with a caller, details, media, an exact
place, two relayed messages, an operator's note and a sent outbox row) into a fresh database
(a temp SQLite file, or a PostgreSQL schema dropped afterwards), then times
``PrivacyService.purge`` (batches of 200, one unit of work each) and a second, idle run.
Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.domain.model import (
    Area,
    Category,
    Citizen,
    Direction,
    Location,
    LocationSource,
    Media,
    MediaKind,
    OutboxMessage,
    RelayMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.geo import load_gazetteer
from bot.geo.gazetteer import city_centroids
from bot.services.clock import SystemClock
from bot.services.privacy import PrivacyService, RetentionPolicy
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory

AREA = Area("33.74.11.1005", "Pleburan", "33.74.11", "Semarang Selatan")


async def fill(uow_factory: SqlUnitOfWorkFactory, count: int) -> None:
    """``count`` closed tickets of one citizen each, 400 days old, 500 per unit of work."""
    old = datetime.now(UTC) - timedelta(days=400)
    for start in range(0, count, 500):
        async with uow_factory() as uow:
            for n in range(start, min(start + 500, count)):
                citizen = await uow.citizens.add(
                    Citizen(8_000_000_000 + n, "id", name="Siti", phone_e164="+6281234567890",
                            created_at=old, updated_at=old)
                )  # fmt: skip
                ticket = await uow.tickets.add(
                    Ticket(
                        citizen.id or 0, 8_000_000_000 + n, TicketStatus.CLOSED, old, old,
                        step=None, ref=f"SMG-B-{n:06d}", category=Category.FLOOD,
                        caller_name="Siti", caller_phone_e164="+6281234567890",
                        details="air setinggi lutut di depan rumah", submitted_at=old,
                        closed_at=old, resolved_at=old,
                        media=[Media(MediaKind.PHOTO, "AgAC-file")],
                        incident_location=Location(-6.99, 110.42, LocationSource.GPS, old,
                                                   address_text="Jl. Pleburan", area=AREA),
                    )
                )  # fmt: skip
                tid = ticket.id or 0
                for direction in Direction:
                    await uow.messages.add(RelayMessage(tid, direction, old, "text", text="x"))
                await uow.events.add(TicketEvent(tid, old, "operator:1", "note", note="Siti"))
                await uow.outbox.add(
                    OutboxMessage("citizen_relay", {"ticket_id": tid, "text": "x"}, old, old,
                                  sent_at=old, ticket_id=tid)
                )  # fmt: skip
            await uow.commit()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    schema = f"bench_purge_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'purge.db'}"
        else:
            url = f"{args.postgres_url}?schema={schema}"
        await upgrade(url)
        engine = create_engine(url)
        try:
            uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
            started = time.perf_counter()
            await fill(uow_factory, args.tickets)
            filled = time.perf_counter() - started
            service = PrivacyService(
                uow_factory, SystemClock(), RetentionPolicy(), city_centroids(load_gazetteer())
            )
            batches: list[float] = []
            one_batch = service._purge_tickets  # observed, not changed: each batch is timed

            async def timed(*args: Any) -> int:
                started = time.perf_counter()
                try:
                    return await one_batch(*args)
                finally:
                    batches.append(time.perf_counter() - started)

            service._purge_tickets = timed  # type: ignore[method-assign]
            started = time.perf_counter()
            report = await service.purge()
            first = time.perf_counter() - started
            started = time.perf_counter()
            again = await service.purge()
            idle = time.perf_counter() - started
        finally:
            if args.db == "postgres":
                async with engine.begin() as connection:
                    await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await engine.dispose()
    print(f"{args.db}: {args.tickets} tickets written in {filled:.1f} s")
    print(f"purge: {report.summary()} in {first:.2f} s "
          f"({args.tickets / first:.0f} tickets/s)")  # fmt: skip
    timed_batches = sorted(batches[:-1]) or [0.0]  # the second run's empty batch left out
    print(
        f"ticket batches (one unit of work each): {len(timed_batches)}, median "
        f"{statistics.median(timed_batches) * 1000:.0f} ms, max {timed_batches[-1] * 1000:.0f} ms"
    )
    print(f"second run: {again.total} records in {idle * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
