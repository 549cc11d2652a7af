"""Outbox worker benchmark on SQLite: throughput, and a citizen's row during a group backlog.

Run: ``.venv/bin/python bench/outbox.py [--tickets 100] [--notices 20] [--group-rate 20]``.
No network: a fake deliverer answers at once, except that rows for the operators' group are
paced at ``--group-rate`` per second (Telegram allows 20 per minute; the bench runs 60 times
faster), as the rate governor would pace them. Two figures:

1. throughput: ``--tickets`` x 4 rows (card, pin, media, relay) plus as many rows of no ticket,
   nothing paced: rows claimed, sent and marked sent per second by one worker;
2. surge: the same backlog with the group paced; meanwhile a citizen notice of a fresh ticket
   is committed every 0.1 s (``--notices`` of them): the p50/p95/max time from its commit
   (and ``wake()``) to its delivery, and how long the group backlog took.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bot.domain.model import Citizen, OutboxMessage, Ticket, TicketStatus
from bot.services.clock import SystemClock
from bot.services.outbox import OutboxWorker
from bot.services.outbox_kinds import (
    ADMIN_ALERT,
    CITIZEN_NOTICE,
    OPERATOR_CARD,
    OPERATOR_MEDIA,
    OPERATOR_PIN,
    OPERATOR_RELAY,
    Audience,
    kind_of,
)
from bot.services.ports import DeliveryResult, UnitOfWorkFactory
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory

PER_TICKET = (OPERATOR_CARD, OPERATOR_PIN, OPERATOR_MEDIA, OPERATOR_RELAY)


class PacedDeliverer:
    """Answers at once; rows for the operators' group get one slot per 1/rate seconds."""

    def __init__(self, group_rate: float | None) -> None:
        self.interval = 1 / group_rate if group_rate else 0.0
        self.next_slot = 0.0
        self.delivered: dict[int, float] = {}
        self.group_done = 0.0

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        loop = asyncio.get_running_loop()
        if self.interval and kind_of(message.kind).audience is Audience.OPERATORS:
            slot = max(loop.time(), self.next_slot)
            self.next_slot = slot + self.interval
            await asyncio.sleep(slot - loop.time())
            self.group_done = loop.time()
        self.delivered[message.id or 0] = loop.time()
        return DeliveryResult(chat_id=-100, message_id=message.id)


async def add_rows(uow_factory: UnitOfWorkFactory, tickets: int, notices: int = 0) -> list[int]:
    now = datetime.now(UTC)
    ids = []
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(
            Citizen(telegram_id=int(time.time_ns() % 10**9), language="id")
        )
        for n in range(tickets + notices):
            ticket = await uow.tickets.add(
                Ticket(citizen_id=citizen.id or 0, chat_id=1, status=TicketStatus.SUBMITTED,
                       created_at=now, updated_at=now)
            )  # fmt: skip
            for kind in PER_TICKET if n < tickets else (CITIZEN_NOTICE,):
                stored = await uow.outbox.add(
                    OutboxMessage(kind=kind, payload={}, created_at=now, next_attempt_at=now,
                                  ticket_id=ticket.id, lane="emergency", rank=1 + n % 3)
                )  # fmt: skip
                ids.append(stored.id or 0)
            if n < tickets:
                stored = await uow.outbox.add(
                    OutboxMessage(kind=ADMIN_ALERT, payload={}, created_at=now,
                                  next_attempt_at=now, lane="emergency", rank=2)
                )  # fmt: skip
        await uow.commit()
    return ids


async def drained(uow_factory: UnitOfWorkFactory) -> None:
    while True:
        async with uow_factory() as uow:
            if await uow.outbox.pending_count() == 0:
                return
        await asyncio.sleep(0.01)


async def run(args: argparse.Namespace, directory: str, paced: bool) -> None:
    url = f"sqlite+aiosqlite:///{directory}/bench-{int(paced)}.db"
    await upgrade(url)
    engine = create_engine(url)
    try:
        uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
        deliverer = PacedDeliverer(args.group_rate if paced else None)
        await add_rows(uow_factory, args.tickets)
        total = args.tickets * (len(PER_TICKET) + 1)
        worker = OutboxWorker(uow_factory, deliverer, SystemClock(), poll_interval=1.0,
                              parallel=args.parallel)  # fmt: skip
        loop = asyncio.get_running_loop()
        started = loop.time()
        worker.start()
        if not paced:
            await drained(uow_factory)
            elapsed = loop.time() - started
            print(f"throughput: {total} rows in {elapsed:.2f} s = {total / elapsed:.0f} rows/s "
                  f"({worker.claims} claims)")  # fmt: skip
        else:
            committed: dict[int, float] = {}
            for _ in range(args.notices):
                await asyncio.sleep(0.1)
                (row_id,) = await add_rows(uow_factory, 0, notices=1)
                committed[row_id] = loop.time()
                worker.wake()
            await drained(uow_factory)
            waits = sorted(deliverer.delivered[i] - t for i, t in committed.items())
            p95 = waits[min(len(waits) - 1, round(0.95 * (len(waits) - 1)))]
            print(f"surge: {args.tickets * len(PER_TICKET)} group rows at {args.group_rate}/s "
                  f"took {deliverer.group_done - started:.1f} s; citizen notice commit -> "
                  f"delivered p50 {statistics.median(waits) * 1000:.0f} ms, p95 "
                  f"{p95 * 1000:.0f} ms, max {waits[-1] * 1000:.0f} ms")  # fmt: skip
        await worker.stop()
    finally:
        await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        await run(args, directory, paced=False)
        await run(args, directory, paced=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--notices", type=int, default=20)
    parser.add_argument("--group-rate", type=float, default=20.0)
    parser.add_argument("--parallel", type=int, default=64)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
