"""Operator console benchmark (issue 8): relay latency with 50 open tickets, and the surge.

Run from the repo root::

    .venv/bin/python bench/operators.py [--tickets 50] [--surge 40] [--spread 60]
                                        [--db sqlite|postgres]

1. Relay. The real ``build_application`` polls the in-process Bot API double over loopback,
   WITHOUT flood limits (the governor on, its private budget raised as in the flow tests so
   the setup runs at machine speed). ``--tickets`` citizens report; once every topic and card
   exists and the outbox is drained, ticket after ticket (``--at-once``: every ticket in the
   same instant, which measures a burst's queueing instead): an operator posts in its topic
   (operator -> citizen: until the double stores the copy in the citizen's chat), then every
   citizen at once writes (citizen -> topic: until the double stores it in the ticket's
   topic). Times are the double's (``StoredMessage.times``) from the moment the update was
   handed to it. Target p95 <= 300 ms each.
2. Surge. ``bench/surge.py``'s run with ``--surge`` citizens starting within ``--spread``
   seconds at a human pace under Telegram's real limits (20 a minute into the group, 30 a
   second overall, 3 per 3 s per private chat), governor on: when the last ticket reached the
   queue board and when the last card arrived (seconds after the first update), and confirm
   -> board / confirm -> card per ticket.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import intake as bench  # bench/intake.py
import surge  # bench/surge.py

from bot.app import build_application, start_application, stop_application
from bot.config import load_settings
from bot.double.fake_bot_api import FakeBotApi
from bot.double.simulated import SimUser
from handlers.context import SERVICES_KEY
from tests.flow.steps import full_gps_report

OPERATOR_CHAT = bench.OPERATOR_CHAT
OPERATOR_ID = 777000111


async def relay(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Operator -> citizen and citizen -> topic latencies (seconds) with ``tickets`` open."""
    async with bench.database(args.db, args.postgres_url) as url, FakeBotApi() as fake:
        fake.register_forum(OPERATOR_CHAT, "Operator 112")
        settings = load_settings(
            {
                "TELEGRAM_BOT_TOKEN": fake.token,
                "TELEGRAM_API_BASE_URL": fake.base_url,
                "TELEGRAM_API_FILE_URL": fake.base_file_url,
                "DATABASE_URL": url,
                "OPERATOR_CHAT_ID": str(OPERATOR_CHAT),
                "OPERATOR_USER_IDS": str(OPERATOR_ID),
                "GEOCODER": "offline",
                "TELEGRAM_RATE_PRIVATE_BURST": "100",
                "TELEGRAM_RATE_PRIVATE_PER_SECOND": "100",
                "TELEGRAM_RATE_GROUP_PER_MINUTE": "100000",
                "TELEGRAM_RATE_OVERALL_PER_SECOND": "100000",
                "TELEGRAM_RATE_BROADCAST_PER_SECOND": "20",
            },
            env_file=None,
        )
        application = build_application(settings, outbox_poll_interval=0.05)
        await start_application(application, poll_timeout=bench.POLL_TIMEOUT)
        model = fake.model
        try:
            operator = fake.add_user(OPERATOR_ID, "Dewi")
            citizens = [
                fake.add_user(language_code="id", first_name=f"Warga {n}")
                for n in range(args.tickets)
            ]
            refs = await asyncio.gather(*(full_gps_report(c) for c in citizens))
            topics: dict[str, int] = {}

            def all_topics() -> bool:
                for thread, name in fake.topics(OPERATOR_CHAT).items():
                    for ref in refs:
                        if ref in name:
                            topics[ref] = thread
                return len(topics) == len(refs)

            await fake.wait_for(all_topics, timeout=120)
            await bench.outbox_drained(application.bot_data[SERVICES_KEY])

            async def to_citizen(citizen: SimUser, ref: str, n: int) -> float:
                text = f"Ambulans menuju lokasi {n}"
                before = len(fake.messages_for(citizen.id))
                sent_at = model.monotonic()
                await operator.send_text(text, chat_id=OPERATOR_CHAT, thread_id=topics[ref])
                got = await fake.wait_for(
                    lambda: next(
                        (
                            m
                            for m in fake.messages_for(citizen.id)[before:]
                            if text in (m.text or "")
                        ),
                        None,
                    ),
                    timeout=30,
                )
                return float(got.times[0]) - sent_at

            async def to_topic(citizen: SimUser, ref: str, n: int) -> float:
                text = f"Tolong cepat {n}"
                sent_at = model.monotonic()
                await citizen.send_text(text)
                thread = topics[ref]

                def arrived() -> Any:
                    return next(
                        (
                            m
                            for m in fake.messages_for(OPERATOR_CHAT)
                            if m.thread_id == thread and m.outgoing and text in (m.text or "")
                        ),
                        None,
                    )

                got = await fake.wait_for(arrived, timeout=30)
                return float(got.times[0]) - sent_at

            pairs = list(zip(citizens, refs, strict=True))
            if args.at_once:  # every ticket's relay in the same instant: a burst's queueing
                down = await asyncio.gather(
                    *(to_citizen(c, r, n) for n, (c, r) in enumerate(pairs))
                )
                up = await asyncio.gather(*(to_topic(c, r, n) for n, (c, r) in enumerate(pairs)))
                return list(down), list(up)
            # One relay at a time across the open tickets: what one message costs while 50
            # tickets are open (the measure), without a burst's queueing.
            down_seq = [await to_citizen(c, r, n) for n, (c, r) in enumerate(pairs)]
            up_seq = [await to_topic(c, r, n) for n, (c, r) in enumerate(pairs)]
            return down_seq, up_seq
        finally:
            await stop_application(application)


def ms(samples: list[float], q: float) -> str:
    return f"{bench.percentile(samples, q) * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=50)
    parser.add_argument(
        "--at-once", action="store_true", help="every ticket's relay in the same instant"
    )
    parser.add_argument("--surge", type=int, default=40, help="citizens of the surge (0: skip)")
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=bench.DEFAULT_POSTGRES)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=112)
    args = parser.parse_args()
    print(bench.machine())
    down, up = asyncio.run(relay(args))
    print(f"\n== relay with {args.tickets} open tickets, no flood limits (ms; target p95 <= 300)")
    for label, samples in (("operator -> citizen", down), ("citizen -> topic", up)):
        print(
            f"  {label:<20} p50 {ms(samples, 50):>5}  p95 {ms(samples, 95):>5}  "
            f"max {ms(samples, 100):>5}  (n={len(samples)})"
        )
    if args.surge:
        surge_args = argparse.Namespace(**{**vars(args), "citizens": args.surge})
        outcome = asyncio.run(surge.run(surge_args, True))
        surge.report(outcome)
        if outcome.board:
            print(f"  last ticket on the board {max(outcome.board):.1f} s after its confirm")


if __name__ == "__main__":
    main()
