"""Agency handoff benchmark: an operator's Dispatch → the agency's card and its webhook.

Run: ``.venv/bin/python bench/agencies.py [--open 50] [--dispatches 40] [--group-per-minute N]``.

The real application (``build_application``, SQLite in a temp dir) polls the fake Bot API
over loopback, with ``--open`` open tickets in its database and two agencies: DAMKAR with a
Telegram group (the card goes there) and DINKES with a webhook to a receiver on 127.0.0.1
that checks every signature. One operator presses «🚨 Dispatch» (both agencies chosen) for
``--dispatches`` of the open tickets, one after another at ``--pace`` seconds: each press is a
callback update fetched by the bot's long poll and handled by the card's button handler.
For each, the time from the press to (a) the agency card's ``sendMessage`` reaching the Bot
API double and (b) the webhook being accepted by the receiver. Telegram lets a bot post about
20 messages a minute into one group; the default ``--group-per-minute 1000`` measures the
pipeline itself (pass 20 to see the governor pace an agency group the way Telegram does).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bot.app import build_application, stop_application
from bot.config import load_settings
from bot.double.fake_bot_api import FakeBotApi
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.webhook_receiver import WebhookReceiver

OPERATOR_CHAT = -1001234567890
DAMKAR_CHAT = -1005550001
OPERATOR_ID = 4_200_000_042
SECRET = "bench-secret"  # noqa: S105 - a throwaway key for the loopback receiver
REF = re.compile(r"SMG-\d{6}-\d{4}")

AGENCIES = """
[[agency]]
code = "DAMKAR"
name = "Dinas Pemadam Kebakaran"
categories = ["FIRE", "TRAF"]
telegram_chat_id = {chat}
ack_deadline_seconds = 120

[[agency]]
code = "DINKES"
name = "Ambulans Hebat"
categories = ["MED", "TRAF", "FIRE"]
webhook_url = "{url}"
webhook_secret_env = "BENCH_DINKES_SECRET"
ack_deadline_seconds = 120
"""


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


async def open_tickets(url: str, count: int) -> list[tuple[int, str]]:
    """``count`` open (submitted) tickets and the operator, written straight to the database."""
    await upgrade(url)
    engine = create_engine(url)
    uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
    made = []
    try:
        async with uow_factory() as uow:
            await uow.operators.add(b.operator(OPERATOR_ID, active=True))
            for n in range(count):
                citizen = await uow.citizens.add(b.citizen(7_100_000_000 + n))
                ticket = b.ticket(
                    citizen.id or 0, ref=f"SMG-261129-{n + 1:04d}", status=b.TicketStatus.SUBMITTED,
                    claimed_by=None, claimed_by_name=None, claimed_at=None, dispatched_at=None,
                    acknowledged_at=None, en_route_at=None, on_scene_at=None, resolved_at=None,
                    closed_at=None, disposition=None, chat_id=7_100_000_000 + n,
                    persons_affected=None, operator_thread_id=None, operator_card_message_id=None,
                )  # fmt: skip
                stored = await uow.tickets.add(ticket)
                made.append((stored.id or 0, stored.ref or ""))
            await uow.commit()
    finally:
        await engine.dispose()
    return made


async def arrived(done: Callable[[], bool], within: float = 120.0) -> None:
    """Waits until ``done()`` (the double's calls and the receiver both feed it)."""
    for _ in range(int(within / 0.01)):
        if done():
            return
        await asyncio.sleep(0.01)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    card_at: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="siaga112-agencies-") as tmp:
        async with FakeBotApi() as fake, WebhookReceiver(SECRET) as receiver:
            fake.register_forum(OPERATOR_CHAT, "Operator 112")
            fake.register_forum(DAMKAR_CHAT, "Damkar", is_forum=False)
            original = fake.model.call

            def call(method: str, params: dict[str, Any], files: Any = None) -> Any:
                stamp = time.perf_counter()
                try:
                    return original(method, params, files)
                finally:
                    if method.lower() == "sendmessage" and str(params.get("chat_id")) == str(
                        DAMKAR_CHAT
                    ):
                        found = REF.search(str(params.get("text") or ""))
                        if found is not None:
                            card_at.setdefault(found.group(0), stamp)

            fake.model.call = call  # type: ignore[method-assign]
            agencies_file = Path(tmp) / "agencies.toml"
            agencies_file.write_text(AGENCIES.format(chat=DAMKAR_CHAT, url=receiver.url))
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            settings = load_settings(
                {
                    "TELEGRAM_BOT_TOKEN": fake.token,
                    "TELEGRAM_API_BASE_URL": fake.base_url,
                    "TELEGRAM_API_FILE_URL": fake.base_file_url,
                    "DATABASE_URL": url,
                    "OPERATOR_CHAT_ID": str(OPERATOR_CHAT),
                    "OPERATOR_USER_IDS": str(OPERATOR_ID),
                    "GEOCODER": "offline",
                    "AGENCIES_FILE": str(agencies_file),
                    "BENCH_DINKES_SECRET": SECRET,
                    "TELEGRAM_RATE_GROUP_PER_MINUTE": str(args.group_per_minute),
                    "LOG_LEVEL": "WARNING",
                },
                env_file=None,
            )
            application = build_application(settings, outbox_poll_interval=1.0)
            await application.initialize()
            assert application.post_init is not None
            tickets = await open_tickets(url, args.open)
            await application.post_init(application)
            await application.start()
            assert application.updater is not None
            await application.updater.start_polling(poll_interval=0, timeout=1)
            dewi = fake.add_user(OPERATOR_ID, "Dewi")
            # The operator presses «🚨 Dispatch» under a card in the operators' chat; the press
            # travels as a real callback update through the bot's long poll and handler.
            under = await application.bot.send_message(OPERATOR_CHAT, "card")
            card = fake.model.message(OPERATOR_CHAT, under.message_id)
            assert card is not None
            both = 0b11  # DAMKAR and DINKES: bits 0 and 1 of the picker's mask
            pressed: dict[str, float] = {}
            try:
                for ticket_id, ref in tickets[: args.dispatches]:
                    update = fake.updates.callback_query(
                        dewi.user, card.raw, f"o|dgo|{ticket_id}|{both:x}"
                    )
                    pressed[ref] = time.perf_counter()
                    await fake.deliver(update)
                    await asyncio.sleep(args.pace)
                await arrived(lambda: min(len(card_at), len(receiver.accepted)) >= len(pressed))
            finally:
                await stop_application(application)
    accepted_at = {
        r.document["incident"]["reference"]: r.at for r in receiver.requests if r.answered == 200
    }
    to_card = [1000 * (card_at[ref] - t) for ref, t in pressed.items() if ref in card_at]
    to_hook = [1000 * (accepted_at[ref] - t) for ref, t in pressed.items() if ref in accepted_at]
    return {
        "cards": len(to_card), "webhooks": len(to_hook), "dispatched": len(pressed),
        "card_p50": statistics.median(to_card), "card_p95": p95(to_card),
        "hook_p50": statistics.median(to_hook), "hook_p95": p95(to_hook),
        "bad_signatures": sum(not r.signature_ok for r in receiver.requests),
        "duplicates": len(receiver.requests) - len(receiver.accepted),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--open", type=int, default=50, help="open tickets in the database")
    parser.add_argument("--dispatches", type=int, default=40, help="tickets dispatched")
    parser.add_argument("--pace", type=float, default=0.25, help="seconds between dispatches")
    parser.add_argument("--group-per-minute", type=int, default=1000,
                        help="the governor's budget per group (Telegram's: 20)")  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    result = asyncio.run(run(args))
    print(f"agency handoff, {args.open} open tickets, {result['dispatched']} dispatches to "
          f"a Telegram agency and a webhook agency, {args.pace}s apart, group budget "
          f"{args.group_per_minute}/min ({platform.python_implementation()} "
          f"{platform.python_version()})")  # fmt: skip
    print(f"  press -> agency card at the Bot API : p50 {result['card_p50']:.1f} ms, "
          f"p95 {result['card_p95']:.1f} ms ({result['cards']} cards)")  # fmt: skip
    print(f"  press -> webhook accepted           : p50 {result['hook_p50']:.1f} ms, "
          f"p95 {result['hook_p95']:.1f} ms ({result['webhooks']} webhooks)")  # fmt: skip
    print(f"  bad signatures {result['bad_signatures']}, repeated deliveries "
          f"{result['duplicates']}")  # fmt: skip


if __name__ == "__main__":
    main()
