"""The intake's cost below the Bot API: IntakeService and its storage, no Telegram.

Run from the repo root::

    .venv/bin/python bench/intake_service.py [--citizens 300] [--db sqlite|postgres]
                                             [--repeat 3] [--postgres-url URL]

Each run migrates a fresh database (a SQLite file in a temp dir, or a PostgreSQL schema that
is dropped afterwards), builds ``IntakeService`` as ``siaga112 run`` does (the citizen's
units of work, the offline geocoder) and takes N citizens one after another through the GPS
report the intake benchmark drives (greet, start, group, GPS, location ok, own contact,
submit). It reports the process's CPU time per call of each step and per step overall: the
service, the repositories, SQLAlchemy and the driver, without PTB, HTTP or the fake Bot API.
``bench/intake.py`` measures the whole bot; this isolates the part under the storage ports,
with far less noise from the machine. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bench.intake import DEFAULT_POSTGRES, database
from bot.domain.model import CategoryGroup
from bot.geo import build_geocoder
from bot.loop import new_event_loop
from bot.services.citizens import Actor
from bot.services.clock import SystemClock
from bot.services.intake import IntakePolicy, IntakeService, Notice
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory

T = TypeVar("T")
STEPS = ("greet", "start", "group", "GPS", "location ok", "contact", "submit")
OPERATORS = -1001234567890


async def one_run(citizens: int, db: str, postgres_url: str) -> dict[str, float]:
    """CPU milliseconds per call of each step (and, under ``"<step> wall"``, wall-clock
    milliseconds: the server's round trips too, on PostgreSQL), for ``citizens`` full
    reports."""
    async with database(db, postgres_url) as url:
        await upgrade(url)
        engine = create_engine(url)
        try:
            sessions = session_factory(engine)
            clock = SystemClock()
            intake = IntakeService(
                SqlUnitOfWorkFactory(sessions, write_wait=5.0),  # as the citizen's factory
                build_geocoder("offline", clock=clock),
                clock,
                IntakePolicy(operator_chat_id=OPERATORS),
                read_uow_factory=SqlUnitOfWorkFactory(sessions, read_only=True),
            )
            spent: dict[str, float] = defaultdict(float)
            waited: dict[str, float] = defaultdict(float)

            async def timed(step: str, call: Awaitable[T]) -> T:
                started, clock_started = time.process_time(), time.perf_counter()
                result = await call
                spent[step] += time.process_time() - started
                waited[step] += time.perf_counter() - clock_started
                return result

            gc.collect()
            for n in range(citizens):
                actor = Actor(telegram_id=10_000 + n, chat_id=10_000 + n, display_name="Warga")
                await timed("greet", intake.greet(actor))
                started = await timed("start", intake.start_report(actor))
                assert started.ticket is not None
                assert started.ticket.id is not None
                ticket_id = started.ticket.id
                await timed("group", intake.choose_group(actor, ticket_id, CategoryGroup.MEDICAL))
                await timed("GPS", intake.share_location(actor, -6.99, 110.42, None, None))
                await timed("location ok", intake.confirm_location(actor, ticket_id))
                phone = f"+62813900{n:05d}"
                await timed(
                    "contact", intake.share_contact(actor, phone, actor.telegram_id, "Siti")
                )
                done = await timed("submit", intake.submit(actor, ticket_id))
                if Notice.SUBMITTED not in done.notices:
                    raise RuntimeError(f"citizen {n}: not submitted ({done.notices})")
            cpu = {step: spent[step] / citizens * 1000 for step in STEPS}
            return cpu | {f"{step} wall": waited[step] / citizens * 1000 for step in STEPS}
        finally:
            await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=300, help="reports per run (300)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    loop, name = new_event_loop(True)
    runs: list[dict[str, float]] = []
    with contextlib.closing(loop):
        for index in range(args.repeat):
            runs.append(loop.run_until_complete(one_run(args.citizens, args.db, args.postgres_url)))
            per_step = sum(runs[-1][step] for step in STEPS) / len(STEPS)
            print(f"run {index + 1}/{args.repeat}: {per_step:.3f} ms CPU per step", flush=True)
    print(
        f"\nIntakeService on {args.db} ({name} loop), {args.citizens} citizens one after "
        f"another, ms per call (median of {args.repeat}):\n  {'':12s} {'CPU':>7s} {'wall':>7s}"
    )
    for step in STEPS:
        cpu = statistics.median(run[step] for run in runs)
        wall = statistics.median(run[f"{step} wall"] for run in runs)
        print(f"  {step:12s} {cpu:7.3f} {wall:7.3f}")
    overall = [sum(run[step] for step in STEPS) / len(STEPS) for run in runs]
    walls = [sum(run[f"{step} wall"] for step in STEPS) / len(STEPS) for run in runs]
    print(f"  {'per step':12s} {statistics.median(overall):7.3f} {statistics.median(walls):7.3f}")


if __name__ == "__main__":
    main()
