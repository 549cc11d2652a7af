"""One outbox worker process for the two-process test (``test_outbox_processes.py``).

Runs the real ``OutboxWorker`` on the real SQL store of ``--url`` with a deliverer that
records each send in the table ``test_sends`` (committed before it returns, as a message
sent to Telegram is out before the worker can mark its row). With ``--hang-after N`` the
N-th send is recorded and then never returns (that ticket's task hangs, the process's other
tickets go on, its leases are still prolonged): the test then kills the process with SIGKILL.
Exits 0 once the outbox owes nothing, 3 when ``--deadline`` passes first.

    python -m tests.integration.outbox_process --url URL --owner a [--hang-after 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.model import OutboxMessage
from bot.services.clock import SystemClock
from bot.services.outbox import OutboxWorker
from bot.services.ports import DeliveryResult
from storage.db import create_engine, session_factory
from storage.uow import SqlUnitOfWorkFactory

SENDS_TABLE = """
CREATE TABLE IF NOT EXISTS test_sends (
    seq BIGSERIAL PRIMARY KEY,
    outbox_id BIGINT NOT NULL,
    owner TEXT NOT NULL,
    repeat BOOLEAN NOT NULL,
    hung BOOLEAN NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
)
"""


class RecordingDeliverer:
    """Records every send in ``test_sends``; optionally hangs forever on the N-th."""

    def __init__(self, engine: AsyncEngine, owner: str, hang_after: int, delay: float) -> None:
        self.engine = engine
        self.owner = owner
        self.hang_after = hang_after
        self.delay = delay
        self.sent = 0

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        self.sent += 1
        hang = self.sent == self.hang_after
        await asyncio.sleep(self.delay)  # the Bot API's round trip
        async with self.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO test_sends (outbox_id, owner, repeat, hung)"
                    " VALUES (:id, :o, :r, :h)"
                ),
                {"id": message.id, "o": self.owner, "r": message.repeat, "h": hang},
            )
        if hang:
            await asyncio.sleep(3600)  # sent, but the worker never hears back: killed here
        return DeliveryResult(chat_id=-100, message_id=message.id)


async def main(args: argparse.Namespace) -> int:
    engine = create_engine(args.url)
    try:
        uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
        deliverer = RecordingDeliverer(engine, args.owner, args.hang_after, args.delay)
        lease = timedelta(seconds=args.lease)
        worker = OutboxWorker(
            uow_factory, deliverer, SystemClock(), owner=args.owner, lease=lease,
            heartbeat=args.lease / 5, batch=args.batch, poll_interval=0.05,
        )  # fmt: skip
        worker.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.deadline
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            async with uow_factory() as uow:
                if await uow.outbox.pending_count() == 0:
                    await worker.stop()
                    return 0
        await worker.stop(grace=0.5)
        return 3
    finally:
        await engine.dispose()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--lease", type=float, default=1.5)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.002)
    parser.add_argument("--hang-after", type=int, default=0)
    parser.add_argument("--deadline", type=float, default=30.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
