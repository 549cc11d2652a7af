"""Broadcast benchmark: an advisory to N subscribers through the Bot API double, paid rate.

Run from the repo root::

    .venv/bin/python bench/broadcast.py [--recipients 10000] [--rate 1000] [--probes 40]

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

Nothing leaves loopback. The harness is observed, never changed (``model.call`` wrapped).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from sqlalchemy import insert

from bot.config import load_settings
from storage.db import create_engine
from storage.migrate import upgrade
from storage.models import CitizenRow
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.flow.steps import tap
from tests.harness.fake_bot_api import FakeBotApi
from tests.harness.updates import user_dict

ADMIN = 9001
FIRST_SUBSCRIBER = 100_000_000
PROBE_IDS = 50_000
perf_counter = time.perf_counter


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


async def probe(harness: Harness, count: int, first_id: int) -> list[float]:
    """Citizens sending /start one every 50 ms; seconds until each one's answer."""
    waits: list[float] = []

    async def one(user_id: int) -> None:
        user = harness.telegram.add_user(user_id)
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


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


async def run(recipients: int, rate: int, probes: int) -> None:
    subscribers = range(FIRST_SUBSCRIBER, FIRST_SUBSCRIBER + recipients)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await seed(database_url, subscribers)
        async with FakeBotApi() as fake:
            fake.register_forum(OPERATOR_CHAT, "Operator 112")
            for chat in subscribers:
                fake.model.register_chat({"id": chat, "type": "private", "first_name": "W"})
                fake.model.users[chat] = user_dict(chat, "W")
            copies = Copies(fake, subscribers)
            settings = load_settings(
                {
                    "TELEGRAM_BOT_TOKEN": fake.token,
                    "TELEGRAM_API_BASE_URL": fake.base_url,
                    "TELEGRAM_API_FILE_URL": fake.base_file_url,
                    "DATABASE_URL": database_url,
                    "OPERATOR_CHAT_ID": str(OPERATOR_CHAT),
                    "ADMIN_USER_IDS": str(ADMIN),
                    "GEOCODER": "offline",
                    "TELEGRAM_RATE_PRIVATE_BURST": "100",
                    "TELEGRAM_RATE_PRIVATE_PER_SECOND": "100",
                    "TELEGRAM_RATE_PAID_BROADCAST_PER_SECOND": str(rate),
                    "LOG_LEVEL": "WARNING",
                },
                env_file=None,
            )
            harness = Harness(fake, settings, FakeClock())
            await harness.start()
            try:
                idle = await probe(harness, probes, PROBE_IDS)
                admin = fake.add_user(ADMIN, "Admin")
                await admin.send_command("broadcast")
                await admin.wait_reply()
                await admin.send_text("Waspada banjir rob malam ini di pesisir Semarang.")
                await admin.wait_reply()
                await tap(admin, "all")
                await admin.wait_reply(lambda m: "Pratinjau" in (m.text or ""), timeout=60)
                confirmed = perf_counter()
                await tap(admin, "ok")
                await fake.wait_for(lambda: copies.stamps, timeout=30)
                during = await probe(harness, probes, PROBE_IDS + probes)
                await fake.wait_for(
                    lambda: len(copies.per_chat) >= recipients, timeout=30 + 3 * recipients / rate
                )
                await asyncio.sleep(1.0)  # late repeats would show here
            finally:
                await harness.stop()
    stamps = copies.stamps
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    achieved = (len(stamps) - 1) / span if span else float("nan")
    print(f"broadcast benchmark: {recipients} recipients, paid rate {rate}/s, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"  confirm -> first copy        {stamps[0] - confirmed:8.3f} s")
    print(f"  copies delivered             {len(copies.per_chat):8d} of {recipients}")
    print(f"  first -> last copy           {span:8.2f} s")
    print(f"  achieved rate                {achieved:8.1f} /s = {100 * achieved / rate:.1f} %"
          " of the configured rate (target >= 95 %)")  # fmt: skip
    print(f"  duplicates                   {copies.duplicates:8d} (must be 0)")
    print(f"  intake reply p95 idle        {1000 * p95(idle):8.1f} ms (p50 "
          f"{1000 * statistics.median(idle):.1f})")  # fmt: skip
    print(f"  intake reply p95 during      {1000 * p95(during):8.1f} ms (p50 "
          f"{1000 * statistics.median(during):.1f}); ratio {p95(during) / p95(idle):.2f} "
          "(target <= 1.5)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000, help="paid broadcasts per second")
    parser.add_argument("--probes", type=int, default=40, help="intake probes idle and during")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run(args.recipients, args.rate, args.probes))


if __name__ == "__main__":
    main()
