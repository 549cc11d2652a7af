"""What a statement costs on SQLite beyond SQLite's own work: the intake's reads are
prepared once per connection, and a statement of the inline driver passes through the loop
once at most (not at all when it goes straight to sqlite3).

SQLite compiles a statement anew at each execution whose bound values might change the
query plan: a bound value compared with a column that a partial index's WHERE names
(``uq_tickets_citizen_id_draft``: ``status = 'draft'``) is one. The ticket statuses are
therefore written into the SQL as constants (``storage.repositories._fixed``).

Compiling calls the connection's authorizer; a statement served from the connection's
statement cache does not. So after one warm-up run of each read, a second run with other
values must not call it at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.connectors.asyncio
import sqlalchemy.dialects.sqlite.aiosqlite
from sqlalchemy import event

from bot.domain.model import TicketStatus
from bot.services.outbox_kinds import ADVISORY, QUEUE_BOARD, Lane
from storage import sqlite_direct, sqlite_inline
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.test_uow_contract import add_citizen, add_ticket


class Compiles:
    """Counts the authorizer's calls for reads, i.e. SQLite compiling a query."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, action: int, *_: Any) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ):  # not the driver's COMMIT
            self.calls += 1
        return sqlite3.SQLITE_OK


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[SqlUnitOfWorkFactory, Compiles]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'prepared.db'}"
    await upgrade(url)
    engine = create_engine(url, sqlite_driver="inline")
    compiles = Compiles()

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        inline = dbapi_connection.driver_connection  # storage.sqlite_inline.InlineConnection
        inline.raw().set_authorizer(compiles)

    event.listen(engine.sync_engine, "connect", on_connect)
    try:
        yield SqlUnitOfWorkFactory(session_factory(engine)), compiles
    finally:
        await engine.dispose()


async def _citizen_with_draft(uow_factory: SqlUnitOfWorkFactory, telegram_id: int) -> int:
    """The id of a new citizen with a draft."""
    citizen_id = await add_citizen(uow_factory, telegram_id)
    await add_ticket(uow_factory, b.draft(citizen_id))
    return citizen_id


async def _reads(uow_factory: SqlUnitOfWorkFactory, telegram_id: int, citizen_id: int) -> None:
    async with uow_factory() as uow:
        citizen, draft = await uow.citizens.with_draft(telegram_id)
        assert citizen is not None
        assert citizen.id == citizen_id
        assert draft is not None
        assert draft.status is TicketStatus.DRAFT
        assert await uow.tickets.active_draft(citizen_id) == draft
        assert await uow.tickets.open_tickets(citizen_id) == []
        assert await uow.tickets.queue_lines() == []
        await uow.commit()


async def test_the_intakes_reads_are_not_compiled_again_with_other_values(counted) -> None:  # type: ignore[no-untyped-def]
    uow_factory, compiles = counted
    first = await _citizen_with_draft(uow_factory, 501)
    second = await _citizen_with_draft(uow_factory, 502)
    await _reads(uow_factory, 501, first)  # each statement compiled once here
    assert compiles.calls > 0  # the authorizer does see compiling
    compiles.calls = 0
    await _reads(uow_factory, 502, second)
    assert compiles.calls == 0


@pytest.mark.parametrize("direct", [True, False], ids=["sqlite_direct", "sqlalchemy"])
async def test_a_statement_on_the_inline_driver_waits_on_the_loop_at_most_once(  # type: ignore[no-untyped-def]
    counted, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    """SQLAlchemy's adapted cursor hands each call (opening the cursor, executing it,
    closing it) to the loop through ``await_``; the inline driver's calls complete at once,
    so it does so only where SQLAlchemy insists on one (``AsyncConnection.execute``), and a
    prebuilt statement sent straight to sqlite3 (``storage.sqlite_direct``) not at all once
    its transaction has begun."""
    if not direct:
        monkeypatch.setattr(sqlite_direct, "executor_for_engine", lambda _engine: None)
    uow_factory, _ = counted
    first = await _citizen_with_draft(uow_factory, 501)
    waits = 0

    def counting(original: Any) -> Any:
        def await_(awaitable: Any) -> Any:
            nonlocal waits
            waits += 1
            return original(awaitable)

        return await_

    for module in (sqlalchemy.connectors.asyncio, sqlalchemy.dialects.sqlite.aiosqlite):
        monkeypatch.setattr(module, "await_", counting(module.await_))
    monkeypatch.setattr(sqlite_inline, "await_", counting(sqlite_inline.await_))
    async with uow_factory() as uow:
        for _ in range(10):
            await uow.citizens.with_draft(501)
        waits = 0
        for _ in range(10):
            citizen, _draft = await uow.citizens.with_draft(501)
            assert citizen is not None
            assert citizen.id == first
        assert waits == (0 if direct else 10)


async def test_a_waiting_board_is_found_without_reading_a_broadcasts_owed_copies(  # type: ignore[no-untyped-def]
    counted, tmp_path: Path
) -> None:
    """Every report asks whether a queue board update already waits; during a broadcast
    thousands of copies are owed in their own lane, and none of them is read for it."""
    uow_factory, _ = counted
    async with uow_factory() as uow:
        for n in range(2_000):
            await uow.outbox.add(
                b.outbox(kind=ADVISORY, lane=Lane.BROADCAST.value, payload={"n": n})
            )
        board = await uow.outbox.add(
            b.outbox(kind=QUEUE_BOARD, lane=Lane.EMERGENCY.value, payload={"chat_id": -1})
        )
        await uow.commit()
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    engine = uow_factory._session_factory.kw["bind"]
    async with engine.connect() as connection:  # the pool's one connection: ours to watch
        raw = await connection.get_raw_connection()
        raw.driver_connection.raw().set_progress_handler(count, 100)
    async with uow_factory() as uow:
        found = await uow.outbox.owed_of_kind(QUEUE_BOARD)
    assert [row.id for row in found] == [board.id]
    assert steps < 20  # under 2,000 SQLite instructions; reading every copy took 10,000+
