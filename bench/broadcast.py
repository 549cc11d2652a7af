"""Broadcast benchmark: an advisory to N subscribers through the Bot API double, paid rate.

Run from the repo root::

    .venv/bin/python bench/broadcast.py [--recipients 10000] [--rate 1000] [--probes 40]
                                        [--split] [--db sqlite|postgres] [--ceiling]
                                        [--max-lag-ms MS] [--probe-after SECONDS]
                                        [--http-client aiohttp|httpx]

The real ``build_application`` (SQLite file in a temp dir, offline geocoder) polls the
in-process fake Bot API over loopback; N subscribers are written to the database and made
known to the fake. An admin composes the advisory through the real ``/broadcast``
conversation (text, all subscribers, confirm) with paid broadcasting on at ``--rate`` a
second (``TELEGRAM_RATE_PAID_BROADCAST_PER_SECOND``). Measured (never asserted in tests):

* achieved rate: copies handed to the Bot API between the first and the last, per second,
  as a share of ``--rate`` (target >= 95 %);
* duplicates: copies to a chat that already had one (must be 0);
* intake reply p95: other citizens send ``/start`` (one every 50 ms) before the broadcast
  (idle) and while it runs; the time to the bot's answer (target: during <= 1.5 x idle).

Also printed: the outbox's claims and its stores of sent rows during the run (count, rows,
mean wall time each). ``--db postgres`` runs the bot on PostgreSQL (``--postgres-url`` /
BENCH_POSTGRES_URL, in a ``bench_<random>`` schema created and dropped) instead of a SQLite
file. ``--ceiling`` measures first what the HTTP stack alone reaches: a bare PTB ``Bot``
(the bot's broadcast pool on ``--http-client``: a connection per stream) sending N messages
to the same double from as many tasks as the worker has broadcast streams, no database and
no bot logic: the most the bot could reach on this machine in the same layout.
``--max-lag-ms`` sets the bot's TELEGRAM_RATE_BROADCAST_MAX_LAG_MS (``0``: broadcasts never
give way to a lagging loop: the code before it, for back-to-back comparisons);
``--probe-after`` starts the probes during the broadcast that many seconds after the first
copy (the default 0 measures its start).

Nothing leaves loopback. The harness is observed, never changed (``model.call`` wrapped).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the intake benchmark's helpers

from intake import database  # bench/intake.py: a fresh SQLite file or PostgreSQL schema
from sqlalchemy import insert
from telegram import Bot

from bot import sizes
from bot.config import load_settings
from bot.double.fake_bot_api import FakeBotApi
from bot.double.updates import user_dict
from bot.services import outbox as outbox_module
from handlers.http import HttpClient, gated_request
from handlers.ratelimit import governor_of
from storage.db import create_engine
from storage.migrate import upgrade
from storage.models import CitizenRow
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.flow.steps import tap

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ADMIN = 9001
FIRST_SUBSCRIBER = 100_000_000
PROBE_IDS = 50_000
perf_counter = time.perf_counter
MAX_LAG_MS: str | None = None
"""``--max-lag-ms``: TELEGRAM_RATE_BROADCAST_MAX_LAG_MS for the bot (None: its default)."""
HTTP_CLIENT: HttpClient = "aiohttp"
"""``--http-client``: the bot's TELEGRAM_HTTP_CLIENT, and the ceiling's client."""
PROBE_AFTER = 0.0
"""``--probe-after``: seconds from the first copy to the first probe during the broadcast."""
THROTTLE: list[str] = []
"""The governor's loop-lag throttle after a one-process run (printed)."""


class Copies:
    """Stamps every advisory copy handed to the fake Bot API."""

    def __init__(self, fake: FakeBotApi, subscribers: range) -> None:
        self.stamps: list[float] = []
        self.per_chat: dict[int, int] = {}
        self.subscribers = subscribers
        model = fake.model
        original = model.call

        def call(method: str, params: dict[str, Any], files: Any = None) -> Any:
            if method.lower() == "sendmessage":
                try:
                    chat = int(params.get("chat_id"))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    chat = 0
                if chat in self.subscribers:
                    self.stamps.append(perf_counter())
                    self.per_chat[chat] = self.per_chat.get(chat, 0) + 1
            return original(method, params, files)

        model.call = call  # type: ignore[method-assign]

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.per_chat.values())


async def seed(database_url: str, subscribers: range) -> None:
    """N subscribed citizens (the whole city), written in one transaction."""
    await upgrade(database_url)
    engine = create_engine(database_url)
    now = datetime.now(UTC)
    rows = [
        {"telegram_id": chat, "language": "id", "subscribed": True, "subscribed_at": now,
         "created_at": now, "updated_at": now}
        for chat in subscribers
    ]  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(insert(CitizenRow), rows)
    await engine.dispose()


async def probe(fake: FakeBotApi, count: int, first_id: int) -> list[float]:
    """Citizens sending /start one every 50 ms; seconds until each one's answer."""
    waits: list[float] = []

    async def one(user_id: int) -> None:
        user = fake.add_user(user_id)
        started = perf_counter()
        await user.send_command("start")
        await user.wait_reply(timeout=60)
        waits.append(perf_counter() - started)

    tasks = []
    for n in range(count):
        tasks.append(asyncio.create_task(one(first_id + n)))
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)
    return waits


class WorkerStats:
    """Counts the outbox worker's claims and stores of sent rows (the class is wrapped)."""

    def __init__(self) -> None:
        self.figures: dict[str, float] = {}
        worker = outbox_module.OutboxWorker
        for name in ("_claim", "_claim_broadcast"):
            self._wrap(worker, name, name.strip("_"))
        original = worker._store_finished

        async def store(this: Any) -> None:
            rows = len(this._finished)
            started = perf_counter()
            await original(this)
            if rows:
                self._add("store", rows, perf_counter() - started)

        worker._store_finished = store  # type: ignore[method-assign]

    def _add(self, what: str, rows: int, seconds: float) -> None:
        for key, value in ((what, 1), (f"{what}_rows", rows), (f"{what}_s", seconds)):
            self.figures[key] = self.figures.get(key, 0) + value

    def _wrap(self, worker: Any, name: str, what: str) -> None:
        original = getattr(worker, name, None)
        if original is None:  # an older worker (the benchmark also measures those)
            return

        async def claim(this: Any, limit: int) -> int:
            started = perf_counter()
            got: int = await original(this, limit)
            self._add(what, got, perf_counter() - started)
            return got

        setattr(worker, name, claim)

    def lines(self) -> list[str]:
        out = []
        for what, label in (("claim", "claims (other lanes)"),
                            ("claim_broadcast", "claims (broadcast lane)"),
                            ("store", "stores of sent rows")):  # fmt: skip
            count = int(self.figures.get(what, 0))
            if count:
                rows = int(self.figures[f"{what}_rows"])
                mean = 1000 * self.figures[f"{what}_s"] / count
                out.append(f"  {label:<28} {count:8d} ({rows} rows, {mean:.1f} ms each)")
        return out


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


@dataclass
class Outcome:
    """What the Telegram side saw."""

    stamps: list[float]
    delivered: int
    duplicates: int
    idle: list[float]
    during: list[float]
    confirm_to_first: float


async def telegram_side(
    fake: FakeBotApi, subscribers: range, probes: int, started: Callable[[], Awaitable[None]]
) -> Outcome:
    """The fake Bot API's world: subscribers known to it, probing citizens, the admin."""
    fake.register_forum(OPERATOR_CHAT, "Operator 112")
    for chat in subscribers:
        fake.model.register_chat({"id": chat, "type": "private", "first_name": "W"})
        fake.model.users[chat] = user_dict(chat, "W")
    copies = Copies(fake, subscribers)
    await started()
    await fake.wait_for(lambda: fake.poll_count > 0, timeout=60)
    idle = await probe(fake, probes, PROBE_IDS)
    admin = fake.add_user(ADMIN, "Admin")
    await admin.send_command("broadcast")
    await admin.wait_reply()
    await admin.send_text("Waspada banjir rob malam ini di pesisir Semarang.")
    await admin.wait_reply()
    await tap(admin, "all")
    await admin.wait_reply(lambda m: "Pratinjau" in (m.text or ""), timeout=60)
    confirmed = perf_counter()
    await tap(admin, "ok")
    await fake.wait_for(lambda: copies.stamps, timeout=60)
    await asyncio.sleep(PROBE_AFTER)
    during = await probe(fake, probes, PROBE_IDS + probes)
    await fake.wait_for(lambda: len(copies.per_chat) >= len(subscribers), timeout=600)
    await asyncio.sleep(1.0)  # late repeats would show here
    return Outcome(
        copies.stamps, len(copies.per_chat), copies.duplicates, idle, during,
        copies.stamps[0] - confirmed,
    )  # fmt: skip


def settings_for(base_url: str, file_url: str, token: str, database_url: str, rate: int) -> Any:
    return load_settings(
        {
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_BASE_URL": base_url,
            "TELEGRAM_API_FILE_URL": file_url,
            "DATABASE_URL": database_url,
            "OPERATOR_CHAT_ID": str(OPERATOR_CHAT),
            "ADMIN_USER_IDS": str(ADMIN),
            "GEOCODER": "offline",
            "TELEGRAM_RATE_PRIVATE_BURST": "100",
            "TELEGRAM_RATE_PRIVATE_PER_SECOND": "100",
            "TELEGRAM_RATE_PAID_BROADCAST_PER_SECOND": str(rate),
            "LOG_LEVEL": "WARNING",
            "TELEGRAM_HTTP_CLIENT": HTTP_CLIENT,
            **({"TELEGRAM_RATE_BROADCAST_MAX_LAG_MS": MAX_LAG_MS} if MAX_LAG_MS else {}),
        },
        env_file=None,
    )


async def one_process(database_url: str, subscribers: range, rate: int, probes: int) -> Outcome:
    """Bot, fake Bot API and people share one event loop (like bench/intake.py)."""
    async with FakeBotApi() as fake:
        settings = settings_for(fake.base_url, fake.base_file_url, fake.token, database_url, rate)
        harness = Harness(fake, settings, FakeClock(), outbox_poll_interval=1.0)  # as deployed
        try:
            outcome = await telegram_side(fake, subscribers, probes, harness.start)
            governor = governor_of(harness.app.bot)
            if governor is not None:
                stats = governor.stats()
                THROTTLE.append(
                    f"  loop-lag throttle             {stats.lag_cuts:8d} cuts, lowest share "
                    f"{stats.lowest_broadcast_share:.3f}, last {stats.broadcast_share:.3f}"
                )
            return outcome
        finally:
            await harness.stop()


def _child(port: int, subscribers: range, probes: int, results: Any) -> None:
    """The Telegram side in its own process (its own core, as Telegram would be)."""

    async def main() -> None:
        async with FakeBotApi(port=port) as fake:

            async def ready() -> None:
                results.put(("ready", fake.base_url, fake.base_file_url, fake.token))

            results.put(("done", await telegram_side(fake, subscribers, probes, ready)))

    asyncio.run(main())


async def two_processes(database_url: str, subscribers: range, rate: int, probes: int) -> Outcome:
    """The bot alone in this process; the fake Bot API and the people in a child."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_child, args=(0, subscribers, probes, results))
    child.start()
    _, base_url, file_url, token = await asyncio.to_thread(results.get, True, 120)
    settings = settings_for(base_url, file_url, token, database_url, rate)
    harness = Harness(None, settings, FakeClock(), outbox_poll_interval=1.0)  # type: ignore[arg-type]
    await harness.start()
    try:
        _, outcome = await asyncio.to_thread(results.get, True, 900)
    finally:
        await harness.stop()
        child.join(10)
    return outcome  # type: ignore[no-any-return]


async def bare_sends(base_url: str, token: str, subscribers: range) -> tuple[float, float]:
    """A bare PTB bot sends one message per subscriber: (messages/s, CPU ms per message),
    through the bot's broadcast pool (a gated pool of one connection per stream)."""
    request = gated_request(HTTP_CLIENT, sizes.BROADCAST_CONNECTIONS, pool_timeout=30)
    chats = iter(subscribers)
    async with Bot(token, base_url=base_url, request=request) as bot:

        async def sender() -> None:
            for chat in chats:
                await bot.send_message(chat, "Waspada banjir rob malam ini di pesisir Semarang.")

        started, cpu = perf_counter(), time.process_time()
        await asyncio.gather(*(sender() for _ in range(outbox_module.BROADCAST_STREAMS)))
        wall, cpu = perf_counter() - started, time.process_time() - cpu
    return len(subscribers) / wall, 1000 * cpu / len(subscribers)


def _register(fake: FakeBotApi, subscribers: range) -> None:
    for chat in subscribers:
        fake.model.register_chat({"id": chat, "type": "private", "first_name": "W"})
        fake.model.users[chat] = user_dict(chat, "W")


def _ceiling_child(subscribers: range, results: Any, stop: Any) -> None:
    async def main() -> None:
        async with FakeBotApi() as fake:
            _register(fake, subscribers)
            results.put((fake.base_url, fake.token))
            await asyncio.to_thread(stop.wait)

    asyncio.run(main())


async def ceiling(subscribers: range, *, split: bool) -> tuple[float, float]:
    """What the HTTP stack alone reaches in the same layout (see the module)."""
    if not split:
        async with FakeBotApi() as fake:
            _register(fake, subscribers)
            return await bare_sends(fake.base_url, fake.token, subscribers)
    context = multiprocessing.get_context("spawn")
    results, stop = context.Queue(), context.Event()
    child = context.Process(target=_ceiling_child, args=(subscribers, results, stop))
    child.start()
    try:
        base_url, token = await asyncio.to_thread(results.get, True, 120)
        return await bare_sends(base_url, token, subscribers)
    finally:
        stop.set()
        child.join(10)


async def run(
    recipients: int, rate: int, probes: int, *, split: bool, db: str = "sqlite",
    postgres_url: str = DEFAULT_POSTGRES, with_ceiling: bool = False,
) -> None:  # fmt: skip
    subscribers = range(FIRST_SUBSCRIBER, FIRST_SUBSCRIBER + recipients)
    bare = await ceiling(subscribers, split=split) if with_ceiling else None
    stats = WorkerStats()
    async with database(db, postgres_url) as database_url:
        await seed(database_url, subscribers)
        runner = two_processes if split else one_process
        outcome = await runner(database_url, subscribers, rate, probes)
    stamps, idle, during = outcome.stamps, outcome.idle, outcome.during
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    achieved = (len(stamps) - 1) / span if span else float("nan")
    where = "bot alone; fake Bot API and people in a second process" if split else (
        "bot, fake Bot API and people in one event loop"
    )  # fmt: skip
    print(f"broadcast benchmark: {recipients} recipients, paid rate {rate}/s, {db}, {where}, "
          f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if bare is not None:
        print(f"  bare PTB sends, same double   {bare[0]:8.1f} /s ({bare[1]:.2f} ms CPU per "
              f"message in the sending process): the ceiling")  # fmt: skip
    print(f"  confirm -> first copy        {outcome.confirm_to_first:8.3f} s")
    print(f"  copies delivered             {outcome.delivered:8d} of {recipients}")
    print(f"  first -> last copy           {span:8.2f} s")
    print(f"  achieved rate                {achieved:8.1f} /s = {100 * achieved / rate:.1f} %"
          " of the configured rate (target >= 95 %)")  # fmt: skip
    print(f"  duplicates                   {outcome.duplicates:8d} (must be 0)")
    print(f"  intake reply p95 idle        {1000 * p95(idle):8.1f} ms (p50 "
          f"{1000 * statistics.median(idle):.1f})")  # fmt: skip
    print(f"  intake reply p95 during      {1000 * p95(during):8.1f} ms (p50 "
          f"{1000 * statistics.median(during):.1f}); ratio {p95(during) / p95(idle):.2f} "
          "(target <= 1.5)")  # fmt: skip
    for line in [*stats.lines(), *THROTTLE]:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="paid broadcasts per second")
    parser.add_argument("--probes", type=int, default=40, help="intake probes idle and during")
    parser.add_argument(
        "--split", action="store_true",
        help="run the fake Bot API and the people in a second process (the bot has a core)",
    )  # fmt: skip
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="server for --db postgres (a bench_<random> schema is created and dropped)",
    )
    parser.add_argument(
        "--ceiling", action="store_true",
        help="first measure bare PTB sends to the same double (the HTTP stack's ceiling)",
    )  # fmt: skip
    parser.add_argument(
        "--max-lag-ms", default=None,
        help="TELEGRAM_RATE_BROADCAST_MAX_LAG_MS for the bot (0: broadcasts never give way)",
    )  # fmt: skip
    parser.add_argument(
        "--probe-after", type=float, default=0.0,
        help="seconds from the first copy to the first probe during the broadcast",
    )  # fmt: skip
    parser.add_argument(
        "--http-client", choices=("aiohttp", "httpx"), default="aiohttp",
        help="the bot's TELEGRAM_HTTP_CLIENT, and the --ceiling client's (aiohttp)",
    )  # fmt: skip
    args = parser.parse_args()
    global MAX_LAG_MS, PROBE_AFTER, HTTP_CLIENT
    MAX_LAG_MS, PROBE_AFTER, HTTP_CLIENT = args.max_lag_ms, args.probe_after, args.http_client
    logging.basicConfig(level=logging.WARNING)
    options = {"db": args.db, "postgres_url": args.postgres_url, "with_ceiling": args.ceiling}
    asyncio.run(run(args.recipients, args.rate, args.probes, split=args.split, **options))


if __name__ == "__main__":
    main()
