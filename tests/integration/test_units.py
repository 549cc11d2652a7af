"""A unit of work without a session until an ORM call needs one, on both databases
(``storage.sqlite_direct.DirectUnit`` on SQLite, ``storage.connection_unit.ConnectionUnit``
on PostgreSQL; issue 11): one transaction whichever way a statement goes, the connection
back to the pool however the unit ends, and what a failed flush does."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.connection_unit import ConnectionUnit
from storage.db import session_factory
from storage.models import CitizenRow, TicketRow
from storage.sqlite_direct import DirectUnit
from storage.unit import Unit
from storage.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.conftest import citizen_count


@pytest.fixture
def uow_factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(session_factory(engine))


def _unit(uow: SqlUnitOfWork) -> Unit:
    active = uow._active()
    assert isinstance(active, Unit)
    return active


async def test_the_unit_is_the_databases_own(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    kind = DirectUnit if engine.dialect.name == "sqlite" else ConnectionUnit
    async with uow_factory() as uow:
        assert isinstance(uow._active(), kind)


async def test_an_intake_step_makes_no_session(uow_factory: SqlUnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen(7_200_000_001))
        assert citizen.id is not None
        added = await uow.tickets.add(b.draft(citizen.id))
        await uow.commit()
    async with uow_factory() as uow:
        found, draft = await uow.citizens.with_draft(citizen.telegram_id)
        assert found == citizen
        assert draft is not None
        assert draft.id == added.id
        await uow.tickets.update(dataclasses.replace(draft, details="banjir"))
        await uow.commit()
        assert _unit(uow).loaded is None


async def test_each_transaction_is_begun_once(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    begun: list[object] = []
    event.listen(engine.sync_engine, "begin", begun.append)
    async with uow_factory() as uow:
        assert begun == []  # nothing before the first statement
        await uow.citizens.add(b.citizen(7_200_000_011))
        await uow.citizens.get_by_telegram_id(7_200_000_011)
        assert len(begun) == 1
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_200_000_012, language="id"))
        await session.flush()  # joins the transaction begun
        assert len(begun) == 1
        await uow.commit()
        session.add(CitizenRow(telegram_id=7_200_000_013, language="id"))
        await session.flush()  # begins the next one itself
        await uow.citizens.add(b.citizen(7_200_000_014))  # which the statements join
        assert len(begun) == 2
        await uow.commit()
    assert await citizen_count(engine) == 4


async def test_orm_work_and_core_statements_are_undone_together(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_200_000_021))
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_200_000_022, language="id"))
        await session.flush()
        assert await uow.citizens.get_by_telegram_id(7_200_000_022) is not None
    assert await citizen_count(engine) == 0


async def test_orm_work_and_core_statements_are_committed_together(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_200_000_131))
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_200_000_132, language="id"))
        await uow.commit()  # through the session: its flush, then the one transaction
        assert not session.in_transaction()
        await uow.citizens.add(b.citizen(7_200_000_133))  # goes on in a new transaction
        await uow.rollback()
    assert await citizen_count(engine) == 2


async def test_an_object_added_and_not_flushed_is_written_by_the_commit(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_200_000_135, language="id"))
        await uow.commit()
    async with uow_factory() as uow:
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_200_000_136, language="id"))
        await uow.rollback()
        await uow.commit()  # nothing left to write
    assert await citizen_count(engine) == 1


async def test_core_statements_after_orm_work_share_the_sessions_transaction(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    async with uow_factory() as uow:
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_200_000_141, language="id"))
        await session.flush()  # the session began the transaction
        await uow.citizens.add(b.citizen(7_200_000_142))
        await uow.commit()
    assert await citizen_count(engine) == 2


async def test_a_failed_flush_stops_core_statements_until_the_rollback(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_200_000_031))
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_200_000_031, language="id"))  # a duplicate
        with pytest.raises(IntegrityError):
            await session.flush()
        with pytest.raises(PendingRollbackError):
            await uow.citizens.get_by_telegram_id(7_200_000_031)
        await uow.rollback()
        await uow.citizens.add(b.citizen(7_200_000_032))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(7_200_000_031) is None
        assert await uow.citizens.get_by_telegram_id(7_200_000_032) is not None


async def test_an_orm_statement_takes_the_sessions_way(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    """A statement of ORM entities is not run on the unit's connection (its rows would be
    tuples, not objects): the unit declines it, the session runs it."""
    async with uow_factory() as uow:
        unit = _unit(uow)
        assert await unit.execute(select(TicketRow), {}) is None
        assert await unit.execute(select(CitizenRow.id), {}) is None
        assert unit.loaded is None
        rows = await uow.tickets.queue()  # an ORM read: the session is made for it
        assert rows == []
        assert isinstance(unit.loaded, AsyncSession)


async def test_the_connection_goes_back_to_the_pool_however_the_unit_ends(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    pool: Any = engine.sync_engine.pool
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_200_000_041))
        await uow.commit()
    assert pool.checkedout() == 0
    with pytest.raises(ZeroDivisionError):
        await _fail_after_work(uow_factory)
    assert pool.checkedout() == 0
    async with uow_factory() as uow:
        citizens = uow.citizens  # nothing done
    assert pool.checkedout() == 0
    with pytest.raises(RuntimeError, match="not in progress"):
        await citizens.get_by_telegram_id(7_200_000_041)  # kept past its unit: fails loudly
    with pytest.raises(RuntimeError, match="not in progress"):
        await uow.commit()
    assert await citizen_count(engine) == 1


async def _fail_after_work(uow_factory: SqlUnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_200_000_042))
        _unit(uow).session()
        raise ZeroDivisionError
