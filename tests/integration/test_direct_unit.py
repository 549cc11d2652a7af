"""A SQLite unit of work without a session until an ORM call needs one
(``storage.sqlite_direct.DirectUnit``, issue 11): its transaction, its session when one is
made, its connection, and what it does when things go wrong."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.ports import StorageBusy
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import CitizenRow
from storage.sqlite_direct import DirectUnit
from storage.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.integration import builders as b


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'unit.db'}"
    await upgrade(url)
    engine = create_engine(url, sqlite_driver="inline")
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def uow_factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(session_factory(engine))


def _unit(uow: SqlUnitOfWork) -> DirectUnit:
    active = uow._active()
    assert isinstance(active, DirectUnit)
    return active


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(select(func.count()).select_from(CitizenRow))).scalar_one()
        )


async def test_an_intake_step_makes_no_session(uow_factory: SqlUnitOfWorkFactory) -> None:
    """The hot path's reads and writes are Core statements: the unit never makes a session."""
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen(7_100_000_001))
        assert citizen.id is not None
        draft = await uow.tickets.add(b.draft(citizen.id))
        await uow.commit()
    async with uow_factory() as uow:
        found, in_progress = await uow.citizens.with_draft(citizen.telegram_id)
        assert found == citizen
        assert in_progress is not None
        assert in_progress.id == draft.id
        await uow.tickets.update(dataclasses.replace(in_progress, details="banjir"))
        await uow.commit()
        assert _unit(uow).loaded is None


async def test_each_transaction_is_begun_once_and_the_begin_event_sees_it(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    begun: list[object] = []
    event.listen(engine.sync_engine, "begin", begun.append)
    async with uow_factory() as uow:
        assert begun == []  # nothing before the first statement
        await uow.citizens.add(b.citizen(7_100_000_011))
        await uow.citizens.get_by_telegram_id(7_100_000_011)
        assert len(begun) == 1
        await uow.commit()
        await uow.citizens.add(b.citizen(7_100_000_012))  # a new transaction after a commit
        assert len(begun) == 2
        await uow.commit()
    assert await _count(engine) == 2


async def test_a_session_made_inside_the_transaction_joins_it_and_begins_nothing(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    begun: list[object] = []
    event.listen(engine.sync_engine, "begin", begun.append)
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_100_000_015))
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_100_000_016, language="id"))
        await session.flush()
        assert len(begun) == 1  # one transaction, seen once
        await uow.commit()
        session.add(CitizenRow(telegram_id=7_100_000_017, language="id"))
        await session.flush()  # the session begins the next transaction itself
        await uow.citizens.add(b.citizen(7_100_000_018))  # and the direct statements join it
        assert len(begun) == 2
        await uow.commit()
    assert await _count(engine) == 4


async def test_orm_work_after_direct_statements_joins_their_transaction_and_is_undone_with_it(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_100_000_021))  # straight to sqlite3
        session = _unit(uow).session()  # an ORM call made it, in the same transaction
        session.add(CitizenRow(telegram_id=7_100_000_022, language="id"))
        await session.flush()
        assert await uow.citizens.get_by_telegram_id(7_100_000_022) is not None
    assert await _count(engine) == 0  # left without commit: both undone


async def test_orm_work_after_direct_statements_is_committed_with_them(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_100_000_031))
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_100_000_032, language="id"))
        await uow.commit()  # through the session: its flush, then the one transaction
        assert not session.in_transaction()
        await uow.citizens.add(b.citizen(7_100_000_033))  # goes on in a new transaction
        await uow.rollback()
    assert await _count(engine) == 2


async def test_an_object_added_and_not_flushed_is_written_by_the_commit(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_100_000_035, language="id"))
        await uow.commit()
    async with uow_factory() as uow:
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_100_000_036, language="id"))
        await uow.rollback()
        await uow.commit()  # nothing left to write
    assert await _count(engine) == 1


async def test_direct_statements_after_orm_work_share_the_sessions_transaction(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_100_000_041, language="id"))
        await session.flush()  # the session began the transaction
        await uow.citizens.add(b.citizen(7_100_000_042))
        await uow.commit()
    assert await _count(engine) == 2


async def test_the_connection_goes_back_to_the_pool_however_the_unit_ends(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    pool: Any = engine.sync_engine.pool
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_100_000_051))
        await uow.commit()
    assert pool.checkedout() == 0
    with pytest.raises(ZeroDivisionError):
        await _fail_after_work(uow_factory)
    assert pool.checkedout() == 0
    async with uow_factory():
        pass  # nothing done
    assert pool.checkedout() == 0
    assert await _count(engine) == 1


async def test_a_repository_kept_past_its_unit_fails_loudly(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        citizens = uow.citizens
    with pytest.raises(RuntimeError, match="not in progress"):
        await citizens.get_by_telegram_id(7_100_000_061)
    with pytest.raises(RuntimeError, match="not in progress"):
        await uow.commit()


async def test_a_failed_flush_stops_direct_statements_until_the_rollback(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_100_000_071))
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_100_000_071, language="id"))  # a duplicate
        with pytest.raises(IntegrityError):
            await session.flush()
        with pytest.raises(PendingRollbackError):
            await uow.citizens.get_by_telegram_id(7_100_000_071)
        await uow.rollback()
        await uow.citizens.add(b.citizen(7_100_000_072))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(7_100_000_071) is None
        assert await uow.citizens.get_by_telegram_id(7_100_000_072) is not None


async def test_a_reader_does_not_take_the_write_lock(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    """A read-only unit begins DEFERRED: it reads while another process holds the lock."""
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_100_000_081))
        await uow.commit()
    other = sqlite3.connect(tmp_path / "unit.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        readers = SqlUnitOfWorkFactory(session_factory(engine), read_only=True)
        async with readers() as uow:
            assert await uow.citizens.get_by_telegram_id(7_100_000_081) is not None
    finally:
        other.rollback()
        other.close()


async def test_a_writer_waits_for_another_process_on_the_loop_then_is_busy(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "unit.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        writers = SqlUnitOfWorkFactory(session_factory(engine), write_wait=0.2)
        ticks = 0

        async def ticking() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(ticking())
        try:
            with pytest.raises(StorageBusy):
                async with writers() as uow:
                    await uow.citizens.add(b.citizen(7_100_000_091))
        finally:
            ticker.cancel()
        assert ticks >= 5  # the loop ran while the BEGIN was retried
    finally:
        other.rollback()
        other.close()
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_unit_waits_on_the_loop_for_a_connection_when_the_pool_is_in_use(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    pool: Any = engine.sync_engine.pool
    held = [await engine.connect() for _ in range(pool.size() + pool._max_overflow)]
    try:
        waiting = asyncio.create_task(_add(uow_factory, 7_100_000_101))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # waits for a connection, and the loop runs meanwhile
        await held.pop().close()
        await asyncio.wait_for(waiting, 5)
    finally:
        for connection in held:
            await connection.close()
    assert await _count(engine) == 1


async def _add(uow_factory: SqlUnitOfWorkFactory, telegram_id: int) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(telegram_id))
        await uow.commit()


async def _fail_after_work(uow_factory: SqlUnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_100_000_052))
        _unit(uow).session()
        raise ZeroDivisionError


async def test_a_writer_cancelled_while_it_waits_for_the_lock_gives_everything_back(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    """Cancelled in its BEGIN's retries (another process writes): its connection goes back
    to the pool and the next writer of this process gets its turn."""
    other = sqlite3.connect(tmp_path / "unit.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(_add(uow_factory, 7_100_000_111))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        other.rollback()
        other.close()
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await asyncio.wait_for(_add(uow_factory, 7_100_000_112), 5)  # the turn was released
    assert await _count(engine) == 1
