"""Two real worker processes on one PostgreSQL schema with 1,000 outbox rows.

While both live no row is sent twice; one is killed with SIGKILL in the middle of a batch
(after sending a row, before it could mark it sent); once its leases end the other sends
everything left, so nothing is lost, and the only rows sent twice are ones the killed
process had claimed, sent again marked as possible repeats. Each ticket's rows go out in
order across both processes. Every send is recorded in a table by the process that made it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.model import OutboxMessage, Ticket, TicketStatus
from bot.services.outbox_kinds import (
    ADMIN_ALERT,
    OPERATOR_CARD,
    OPERATOR_MEDIA,
    OPERATOR_PIN,
    OPERATOR_RELAY,
    kind_of,
)
from storage.db import session_factory
from storage.uow import SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.conftest import only_postgresql
from tests.integration.outbox_process import SENDS_TABLE

ROOT = Path(__file__).resolve().parents[2]
TICKETS = 150
PER_TICKET = (OPERATOR_CARD, OPERATOR_PIN, OPERATOR_MEDIA, OPERATOR_MEDIA, OPERATOR_RELAY,
              OPERATOR_RELAY)  # fmt: skip
SUBMITTED = TicketStatus.SUBMITTED
ALONE = 100  # rows of no ticket (admin alerts)
LEASE = 3.0  # heartbeat every 0.6 s: a live worker keeps its rows even on a loaded machine
HANG_AFTER = 60


async def seed(engine: AsyncEngine) -> dict[int, int | None]:
    """1,000 owed rows: 150 tickets x 6 rows in order, 100 alone; returns id -> ticket."""
    uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
    now = b.at(0)
    rows: dict[int, int | None] = {}
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen())
        tickets: list[Ticket] = [
            await uow.tickets.add(
                b.ticket(citizen.id or 0, ref=None, status=TicketStatus.SUBMITTED)
            )
            for _ in range(TICKETS)
        ]
        for n, ticket in enumerate(tickets):
            for kind in PER_TICKET:
                stored = await uow.outbox.add(
                    OutboxMessage(
                        kind=kind, payload={"n": n}, created_at=now, next_attempt_at=now,
                        ticket_id=ticket.id, lane=kind_of(kind).lane.value, rank=1 + n % 3,
                    )
                )  # fmt: skip
                rows[stored.id or 0] = ticket.id
        for n in range(ALONE):
            stored = await uow.outbox.add(
                OutboxMessage(
                    kind=ADMIN_ALERT, payload={"n": n}, created_at=now, next_attempt_at=now,
                    lane="emergency", rank=1,
                )
            )  # fmt: skip
            rows[stored.id or 0] = None
        await uow.commit()
    return rows


async def spawn(url: str, owner: str, *extra: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.integration.outbox_process", "--url", url,
        "--owner", owner, "--lease", str(LEASE), "--deadline", "25", *extra,
        cwd=ROOT, env=env,
    )  # fmt: skip


async def hung_row(engine: AsyncEngine, process: asyncio.subprocess.Process) -> int:
    """Waits until ``b`` made the send it hangs after; returns that row's id."""
    deadline = time.monotonic() + 15
    query = text("SELECT outbox_id FROM test_sends WHERE hung")
    while True:
        assert process.returncode is None, "the process ended before hanging"
        assert time.monotonic() < deadline, "the process never reached its hang"
        async with engine.connect() as connection:
            found = await connection.scalar(query)
        if found is not None:
            return int(found)
        await asyncio.sleep(0.02)


@only_postgresql
async def test_no_row_is_lost_or_silently_doubled_when_one_of_two_workers_is_killed(
    engine: AsyncEngine, database_url: str
) -> None:
    started = time.monotonic()
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DROP TABLE IF EXISTS test_sends")
        await connection.exec_driver_sql(SENDS_TABLE)
    rows = await seed(engine)
    assert len(rows) == 1000
    a = await spawn(database_url, "a")
    b_ = await spawn(database_url, "b", "--hang-after", str(HANG_AFTER), "--delay", "0.01")
    try:
        hung = await hung_row(engine, b_)
        await asyncio.sleep(2 * LEASE)  # b lives (hung), its leases are prolonged
        b_.kill()  # SIGKILL: no clean-up at all
        await b_.wait()
        # b is continuous: its other tickets went on while one send hung, so what it held
        # is read once it is dead (its leases run at least another second).
        async with engine.connect() as connection:
            held = set(
                await connection.scalars(text("SELECT id FROM outbox WHERE claimed_by = 'b'"))
            )
            kill_seq = await connection.scalar(text("SELECT coalesce(max(seq), 0) FROM test_sends"))
        assert await asyncio.wait_for(a.wait(), 25) == 0  # a drained the outbox
    finally:
        for process in (a, b_):
            if process.returncode is None:
                process.kill()
                await process.wait()
    elapsed = time.monotonic() - started

    async with engine.connect() as connection:
        sends = (
            await connection.execute(text("SELECT seq, outbox_id, owner, repeat FROM test_sends"))
        ).all()
        unsent = await connection.scalar(
            text("SELECT count(*) FROM outbox WHERE sent_at IS NULL OR claimed_by IS NOT NULL")
        )
        await connection.exec_driver_sql("DROP TABLE test_sends")

    assert unsent == 0
    counts = Counter(outbox_id for _, outbox_id, _, _ in sends)
    assert set(counts) == set(rows)  # nothing lost
    assert {owner for _, _, owner, _ in sends} == {"a", "b"}  # both really worked
    assert hung in held  # b died holding rows
    before_kill = Counter(outbox_id for seq, outbox_id, _, _ in sends if seq <= kill_seq)
    assert max(before_kill.values()) == 1  # never twice while both lived
    doubled = {outbox_id for outbox_id, count in counts.items() if count > 1}
    assert hung in doubled  # sent by b just before it died, then again by a
    assert doubled <= held  # only rows the killed process had claimed
    for seq, outbox_id, owner, repeat in sends:
        if outbox_id in held and seq > kill_seq:
            assert (owner, repeat) == ("a", True)  # taken over after the lease, as a repeat
        if outbox_id in held:
            assert seq > kill_seq or owner == "b"  # a never touched them while b lived
    first_send = {}
    for seq, outbox_id, _, _ in sorted(sends):
        first_send.setdefault(outbox_id, seq)
    by_ticket: dict[int, list[int]] = {}
    for outbox_id, ticket_id in sorted(rows.items()):
        if ticket_id is not None:
            by_ticket.setdefault(ticket_id, []).append(first_send[outbox_id])
    assert all(seqs == sorted(seqs) for seqs in by_ticket.values())  # order per ticket
    by_a = sum(owner == "a" for _, _, owner, _ in sends)
    print(f"sends {len(sends)} (a {by_a}), b held {len(held)} at kill, doubled {len(doubled)}, "
          f"{elapsed:.1f} s")  # fmt: skip
    assert elapsed < 20, f"took {elapsed:.1f} s"
