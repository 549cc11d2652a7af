"""A surge is stored before it is answered (issue 11): every update reaches its unit of work
at once, and the waiting happens afterwards, for Telegram.

An update keeps its handling slot until its replies have gone, and replies wait: for the
governor's pace (30 messages a second overall, 20 a minute into the operators' group) and for
one of a few connections. With fewer slots than the people in flight, the next person's update,
and what it stores, would wait behind other people's replies. Here the Bot API answers every
call only after ``STALL`` seconds, so no reply of the surge has gone while it is checked that
every person's update was stored.
"""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import make_url

from tests.flow.conftest import Harness

SURGE = 100
"""People who write at the same instant (the bot handled 64 updates at once before)."""
STALL = 4.0
"""Seconds the Bot API takes to answer each call during the surge (long polls excepted)."""


def stored_citizens(harness: Harness) -> int:
    """Citizens in the bot's database, read beside the bot (SQLite in WAL mode)."""
    path = make_url(harness.settings.database_url).database
    assert path is not None
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT count(*) FROM citizens").fetchone()
    return int(count)


async def test_a_surge_is_stored_while_every_reply_waits(harness: Harness) -> None:
    telegram = harness.telegram
    people = [
        telegram.add_user(first_name=f"Warga {i}", phone_number=f"628139{i:07d}")
        for i in range(SURGE)
    ]
    before = stored_citizens(harness)
    telegram.latency = STALL
    await asyncio.gather(*(person.send_command("start") for person in people))

    loop = asyncio.get_running_loop()
    deadline = loop.time() + STALL - 1.0  # before the first reply of the surge is answered
    while (stored := stored_citizens(harness) - before) < SURGE:
        assert loop.time() < deadline, f"{stored} of {SURGE} people stored before any reply"
        await asyncio.sleep(0.05)
    assert not any(telegram.messages_for(person.id) for person in people)

    telegram.latency = 0.0  # the calls already waiting still take their STALL
    waited = loop.time() + 3 * STALL
    while not all(telegram.messages_for(person.id) for person in people):
        assert loop.time() < waited, "a person of the surge was never answered"
        await asyncio.sleep(0.05)
