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
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.flow.steps import full_gps_report
from tests.integration.conftest import (
    drop_schema,
    postgres_url,  # noqa: F401 (the fixture, for this module)
    unique_schema,
    with_schema,
)

BURST = 24
"""Citizens who press "send" together (more than the pool's 15 connections)."""


@pytest_asyncio.fixture
async def pg_harness(
    fake_bot_api: FakeBotApi,
    make_settings: Callable[..., Settings],
    postgres_url: str,  # noqa: F811 (the fixture imported above)
) -> AsyncIterator[Harness]:
    """A running bot whose database is a fresh schema of the test server (migrated by the
    bot's own start, as ``siaga112 run`` does), dropped afterwards."""
    schema = unique_schema("flow")
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    # What is tested here is the database's concurrency, so the burst runs at machine speed:
    # Telegram's pace (20 messages a minute into the operators' group) is the surge tests'.
    settings = make_settings(
        fake_bot_api,
        DATABASE_URL=with_schema(postgres_url, schema),
        TELEGRAM_RATE_GOVERNOR="off",
    )
    h = Harness(fake_bot_api, settings, FakeClock())
    try:
        await h.start()
        yield h
        if h.application is not None:
            await h.stop()
        assert not h.errors, f"handler errors: {h.errors!r}"
    finally:
        if h.application is not None:
            await h.stop()
        await drop_schema(postgres_url, schema)


async def test_a_burst_of_reports_gets_one_reference_each_without_gaps_on_postgresql(
    pg_harness: Harness,
) -> None:
    telegram = pg_harness.telegram
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

    engine = create_engine(pg_harness.settings.database_url)
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

    await pg_harness.outbox_drained(within=10.0)
    cards = "\n".join(message.text or "" for message in pg_harness.operator_messages())
    assert all(ref in cards for ref in refs)
