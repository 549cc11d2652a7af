"""The whole bot on PostgreSQL (issue 11): a burst of reports sent at the same instant, as a
flood brings them. Every submission takes the day's next reference in the statement that
writes its ticket (``TicketRepository.update_with_next_ref``), and the submissions queue on
the day counter's row: each citizen gets a reference of their own, the day's numbers have no
gap and no repeat, each stored ticket carries the reference its citizen was shown, and every
report reaches the operators.

The rest of the flow tier runs on SQLite; the storage contract runs the same repositories on
both databases. This is the one place where the application's own concurrency (many updates
handled at once, a pool of connections) meets PostgreSQL's row locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest_asyncio
from sqlalchemy import text

from bot.config import Settings
from bot.double.fake_bot_api import FakeBotApi
from storage.db import create_engine
from tests.flow.conftest import Harness, postgres_harness
from tests.flow.steps import full_gps_report

BURST = 24
"""Citizens who press "send" together (more than the pool's 15 connections)."""


@pytest_asyncio.fixture
async def surge_harness(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings], postgres_url: str
) -> AsyncIterator[Harness]:
    """The bot on PostgreSQL with the governor off: what is tested here is the database's
    concurrency, so the burst runs at machine speed (Telegram's pace, 20 messages a minute
    into the operators' group, is the surge tests')."""
    async with postgres_harness(
        fake_bot_api, make_settings, postgres_url, TELEGRAM_RATE_GOVERNOR="off"
    ) as h:
        yield h


async def test_a_burst_of_reports_gets_one_reference_each_without_gaps_on_postgresql(
    surge_harness: Harness,
) -> None:
    telegram = surge_harness.telegram
    people = [
        telegram.add_user(first_name=f"Warga {i}", phone_number=f"628139{i:07d}")
        for i in range(BURST)
    ]
    refs = await asyncio.wait_for(
        asyncio.gather(*(full_gps_report(person) for person in people)), timeout=60
    )

    heads = {ref.rsplit("-", 1)[0] for ref in refs}
    assert len(heads) == 1, refs  # one local day (the harness's clock)
    (head,) = heads
    assert sorted(refs) == [f"{head}-{n:04d}" for n in range(1, BURST + 1)]

    engine = create_engine(surge_harness.settings.database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT t.ref, c.telegram_id FROM tickets t"
                    " JOIN citizens c ON c.id = t.citizen_id"
                )
            )
            stored = {telegram_id: ref for ref, telegram_id in rows}
    finally:
        await engine.dispose()
    assert stored == {person.id: ref for person, ref in zip(people, refs, strict=True)}

    await surge_harness.outbox_drained(within=10.0)
    cards = "\n".join(message.text or "" for message in surge_harness.operator_messages())
    assert all(ref in cards for ref in refs)
