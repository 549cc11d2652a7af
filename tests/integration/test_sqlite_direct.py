"""The hot path's prebuilt statements sent straight to sqlite3 (``storage.sqlite_direct``).

What the repositories store and read must not depend on the way a statement takes: rows
written one way are read back equal the other way, in the same transaction as the session's
own statements, with SQLAlchemy's errors and cursor events; whatever is not a plain statement
keeps SQLAlchemy's way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Insert, bindparam, event, insert, select, text
from sqlalchemy.exc import IntegrityError, MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.domain.model import LocationSource, Ticket
from bot.services.ports import StorageBusy
from storage import repositories, sqlite_direct
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import ChatAliasRow, CitizenRow, OutboxRow, TicketRow
from storage.sqlite_direct import (
    DirectResult,
    DirectRow,
    DirectUnit,
    executor_for_engine,
    prepare,
)
from storage.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.conftest import citizen_count


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'direct.db'}"
    await upgrade(url)
    engine = create_engine(url, sqlite_driver="inline")
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def uow_factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(session_factory(engine))


class Ways:
    """Which way the repositories' prebuilt statements take: ``sqlalchemy`` set sends them
    all through SQLAlchemy; ``direct`` counts those that went straight to sqlite3."""

    def __init__(self) -> None:
        self.sqlalchemy = False
        self.direct = 0


@pytest.fixture
def ways(monkeypatch: pytest.MonkeyPatch) -> Ways:
    ways = Ways()
    executor_for_engine = sqlite_direct.executor_for_engine
    original = sqlite_direct.DirectExecutor.execute

    def chosen(engine: Any) -> Any:
        return None if ways.sqlalchemy else executor_for_engine(engine)

    async def execute(self: Any, unit: Any, statement: Any, params: Any) -> Any:
        result = await original(self, unit, statement, params)
        ways.direct += result is not None
        return result

    monkeypatch.setattr(sqlite_direct, "executor_for_engine", chosen)
    monkeypatch.setattr(sqlite_direct.DirectExecutor, "execute", execute)
    return ways


def _unit(uow: SqlUnitOfWork) -> DirectUnit:
    """The unit of work's DirectUnit (the inline dialect's way)."""
    active = uow._active()
    assert isinstance(active, DirectUnit)
    return active


def _alias_insert() -> Insert:
    """A plain INSERT of a table without Python-side defaults."""
    table = ChatAliasRow.__table__
    return insert(table).values(  # type: ignore[arg-type]
        old_id=bindparam("old"), new_id=bindparam("new"), created_at=bindparam("at")
    )


def _alias(old_id: int) -> dict[str, Any]:
    return {"old": old_id, "new": old_id + 100, "at": b.at(0)}


def _full_ticket(citizen_id: int) -> Ticket:
    return b.ticket(citizen_id, anonymised_at=b.at(120).astimezone(b.WIB))


@pytest.mark.parametrize("writer", ["direct", "sqlalchemy"])
async def test_rows_written_one_way_read_back_equal_the_other_way(
    uow_factory: SqlUnitOfWorkFactory, ways: Ways, writer: str
) -> None:
    """Every column type of a citizen and a ticket (times in UTC, JSON media and
    locations, booleans, enums) converts alike both ways."""
    ways.sqlalchemy = writer == "sqlalchemy"
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen())
        assert citizen.id is not None
        ticket = await uow.tickets.add(_full_ticket(citizen.id))
        draft = await uow.tickets.add(b.draft(citizen.id, chat_id=citizen.telegram_id))
        await uow.commit()
    assert ways.direct == (3 if writer == "direct" else 0)
    assert ticket.id is not None
    assert draft.id is not None
    ways.sqlalchemy = writer == "direct"
    ways.direct = 0
    async with uow_factory() as uow:
        assert await uow.citizens.get(citizen.id) == citizen
        assert await uow.citizens.get_by_telegram_id(citizen.telegram_id) == citizen
        assert await uow.citizens.with_draft(citizen.telegram_id) == (citizen, draft)
        assert await uow.tickets.get(ticket.id) == ticket
        assert await uow.tickets.active_draft(citizen.id) == draft
    assert ways.direct == (5 if writer == "sqlalchemy" else 0)  # the other way


async def test_a_ticket_change_written_directly_reads_back_through_sqlalchemy(
    uow_factory: SqlUnitOfWorkFactory, ways: Ways
) -> None:
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen())
        assert citizen.id is not None
        draft = await uow.tickets.add(b.draft(citizen.id))
        await uow.commit()
    assert draft.id is not None
    changed = dataclasses.replace(
        draft,
        incident_location=b.location(LocationSource.GPS, shift=0.01),
        media=b.ticket(citizen.id).media,
        silent=True,
    )
    async with uow_factory() as uow:
        await uow.tickets.update(changed)
        await uow.commit()
    assert ways.direct == 3  # the citizen, the draft, the change
    ways.sqlalchemy = True
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft.id)
    assert stored is not None
    assert stored.incident_location == changed.incident_location
    assert stored.media == changed.media
    assert stored.media
    assert stored.silent is True
    assert stored.version == draft.version + 1


async def test_a_direct_write_is_rolled_back_with_the_unit_of_work(
    uow_factory: SqlUnitOfWorkFactory, ways: Ways
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_000_000_101))  # never committed
    async with uow_factory() as uow:
        kept = await uow.citizens.add(b.citizen(7_000_000_102))
        await uow.commit()
    assert ways.direct == 2
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(7_000_000_101) is None
        assert await uow.citizens.get_by_telegram_id(7_000_000_102) == kept


async def test_a_unit_of_work_goes_on_after_a_commit_in_a_new_transaction(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine
) -> None:
    """After ``commit()`` the next direct statement begins again (the write lock is taken
    anew) and is undone on its own when the unit of work ends without a second commit."""
    async with uow_factory() as uow:
        first = await uow.citizens.add(b.citizen(7_000_000_201))
        await uow.commit()
        await uow.citizens.add(b.citizen(7_000_000_202))
        unit = _unit(uow)
        async with engine.connect() as other:  # a second connection cannot write now
            raw = (await other.get_raw_connection()).driver_connection.raw()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                raw.execute("BEGIN IMMEDIATE")
        assert unit.loaded is None  # Core statements only: no session was made
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(7_000_000_201) == first
        assert await uow.citizens.get_by_telegram_id(7_000_000_202) is None


async def test_direct_statements_share_the_transaction_with_the_sessions_own(
    uow_factory: SqlUnitOfWorkFactory, ways: Ways
) -> None:
    """An ORM row flushed by the session and a direct statement see each other before the
    commit (one connection, one transaction)."""
    async with uow_factory() as uow:
        session = _unit(uow).session()
        session.add(CitizenRow(telegram_id=7_000_000_301, language="id"))
        citizen = await uow.citizens.get_by_telegram_id(7_000_000_301)  # flushes first
        assert citizen is not None
        assert ways.direct == 1
        count = await session.scalar(
            text("SELECT count(*) FROM citizens WHERE telegram_id = 7000000301")
        )
        assert count == 1
        await uow.commit()


async def test_a_constraint_violation_is_sqlalchemys_error_and_the_transaction_goes_on(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    statement = _alias_insert()
    async with uow_factory() as uow:
        unit = _unit(uow)
        assert await unit.execute(statement, _alias(1)) is not None
        with pytest.raises(IntegrityError) as raised:
            await unit.execute(statement, _alias(1))
        assert isinstance(raised.value.orig, sqlite3.IntegrityError)
        assert await unit.execute(statement, _alias(2)) is not None
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.chat_aliases.get(1) == 101
        assert await uow.chat_aliases.get(2) == 102


async def test_the_repositories_still_translate_a_violation(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_000_000_401))
        with pytest.raises(ValueError, match="unique"):
            await uow.citizens.add(b.citizen(7_000_000_401))


async def test_cursor_events_see_each_direct_statement(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory, ways: Ways
) -> None:
    before: list[str] = []
    after: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: before.append(a[2]))
    event.listen(engine.sync_engine, "after_cursor_execute", lambda *a: after.append(a[2]))
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen())
        assert citizen.id is not None
        await uow.citizens.with_draft(citizen.telegram_id)
        await uow.commit()
    assert ways.direct == 2
    assert [s.split(None, 1)[0] for s in before] == ["INSERT", "SELECT"]
    assert after == before


async def test_an_echoing_engine_keeps_sqlalchemys_way(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'echo.db'}"
    await upgrade(url)
    engine = create_engine(url, sqlite_driver="inline", echo=True)
    try:
        factory = SqlUnitOfWorkFactory(session_factory(engine))
        async with factory() as uow:
            assert isinstance(uow._active(), AsyncSession)  # SQLAlchemy's session throughout
            assert await uow.citizens.get_by_telegram_id(1) is None
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite+aiosqlite:///{tmp}/thread.db", "thread"),
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/test", "inline"),
    ],
    ids=["sqlite-thread", "postgresql"],
)
async def test_the_thread_driver_and_postgresql_have_no_direct_way(
    tmp_path: Path, url: str, driver: str
) -> None:
    engine = create_engine(url.format(tmp=tmp_path), sqlite_driver=driver)
    try:
        assert executor_for_engine(engine) is None
        async with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
            assert not isinstance(uow._active(), DirectUnit)  # a session, or its connection
    finally:
        await engine.dispose()


def test_what_is_not_a_plain_statement_is_not_prepared(engine: AsyncEngine) -> None:
    dialect = engine.sync_engine.dialect
    tickets = TicketRow.__table__
    assert prepare(select(TicketRow), dialect, ()) is None  # ORM rows
    expanding = select(tickets.c.id).where(tickets.c.id.in_(bindparam("ids", expanding=True)))
    assert prepare(expanding, dialect, ("ids",)) is None
    assert prepare(text("SELECT 1"), dialect, ()) is None  # textual: columns matched by name
    prefetched = insert(OutboxRow.__table__).values(kind=bindparam("k"))  # type: ignore[arg-type]
    assert prepare(prefetched, dialect, ("k",)) is None  # Python-side column defaults
    plain = select(tickets.c.id, tickets.c.ref).where(tickets.c.id == bindparam("i"))
    prepared = prepare(plain, dialect, ("i",))
    assert prepared is not None
    assert prepared.sql.startswith("SELECT tickets.id, tickets.ref")
    assert [name for name, _default, _processor in prepared.params] == ["i"]


async def test_many_parameter_sets_go_direct_unless_rows_come_back(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    plain = _alias_insert()
    returning = plain.returning(ChatAliasRow.__table__.c.old_id)
    async with uow_factory() as uow:
        unit = _unit(uow)
        done = await unit.execute(plain, [_alias(11), _alias(12), _alias(13)])
        assert done is not None
        assert done.rowcount == 3
        assert await unit.execute(returning, [_alias(14)]) is None
        assert await unit.execute(plain, []) is None
        await uow.commit()
    async with uow_factory() as uow:
        for old_id in (11, 12, 13):
            assert await uow.chat_aliases.get(old_id) == old_id + 100


async def test_a_missing_parameter_is_an_error_not_a_null(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    tickets = TicketRow.__table__
    statement = select(tickets.c.id).where(tickets.c.id == bindparam("i"))
    async with uow_factory() as uow:
        with pytest.raises(Exception, match="required for bind parameter 'i'"):
            await _unit(uow).execute(statement, {})


def test_prepared_statements_are_kept_up_to_a_bound(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_direct, "MAX_PREPARED", 4)
    executor = sqlite_direct.DirectExecutor(engine.sync_engine.dialect)
    tickets = TicketRow.__table__
    statements = [select(tickets.c.id).where(tickets.c.id == n) for n in range(10)]
    for statement in statements:
        assert executor.prepared(statement, ()) is not None
    assert len(executor._prepared) == 4
    assert executor.prepared(statements[-1], ()) is executor.prepared(statements[-1], ())


def test_a_result_reads_as_sqlalchemys_does() -> None:
    row_type = type("Row", (DirectRow,), {"_keys": ("id", "ref"), "_index": {"id": 0, "ref": 1}})
    rows = [row_type((1, "SMG-1")), row_type((2, "SMG-2"))]
    result = DirectResult(rows, 2)
    assert result.first() == (1, "SMG-1")
    assert result.first().ref == "SMG-1"  # type: ignore[union-attr]
    assert result.first()._mapping == {"id": 1, "ref": "SMG-1"}  # type: ignore[union-attr]
    assert [tuple(r) for r in result] == [(1, "SMG-1"), (2, "SMG-2")]
    assert result.scalar() == 1
    with pytest.raises(MultipleResultsFound):
        result.one_or_none()
    with pytest.raises(AttributeError):
        _ = rows[0].missing
    empty = DirectResult([], 0)
    assert empty.first() is None
    assert empty.scalar() is None
    assert empty.one_or_none() is None
    with pytest.raises(NoResultFound):
        empty.one()
    assert DirectResult(rows[:1], 1).scalar_one() == 1


def test_the_repositories_statements_are_prepared_for_the_direct_way(
    engine: AsyncEngine,
) -> None:
    """The intake's reads and writes are plain statements (a change that made them fall
    back to SQLAlchemy's way would cost about a tenth of the bot's CPU again)."""
    dialect = engine.sync_engine.dialect
    for statement, keys in (
        (repositories._CITIZEN_AND_DRAFT, ("telegram_id",)),
        (repositories._CITIZEN_BY_TELEGRAM_ID, ("telegram_id",)),
        (repositories._TICKET_BY_ID, ("ticket_id",)),
        (repositories._ACTIVE_DRAFT, ("citizen_id",)),
        (repositories._TICKET_ASSIGNMENTS, ("ticket_id",)),
    ):
        assert prepare(statement, dialect, keys) is not None, statement


async def test_the_outbox_claim_goes_straight_to_sqlite3_whatever_its_lists(
    uow_factory: SqlUnitOfWorkFactory, engine: AsyncEngine, ways: Ways
) -> None:
    """The claim's kinds, lanes and ids go as one JSON array each (``json_each``), not as
    an expanding parameter: the same SQL for every list, prepared once, no session made."""
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen(7_000_000_501))
        ticket = await uow.tickets.add(b.ticket(citizen.id))
        assert ticket.id is not None
        for n in range(3):
            await uow.outbox.add(b.outbox(ticket.id, minutes=n, kind=f"kind_{n}"))
        await uow.outbox.add(b.outbox(None, kind="elsewhere", lane="broadcast"))
        await uow.commit()
    executor = sqlite_direct.executor_for_engine(engine)
    assert executor is not None
    shapes: list[int] = []
    for holding, skip in ((["a"], ["b", "c"]), (["x", "y", "z"], ["kind_9"]), ([], ["q"])):
        before = ways.direct
        async with uow_factory() as uow:
            claimed = await uow.outbox.claim(
                "worker-1", b.at(10), b.at(11), 10, holding=holding, skip=skip,
                skip_lanes=["broadcast"],
            )  # fmt: skip
            assert _unit(uow).loaded is None  # no session
            await uow.rollback()
        assert [m.kind for m in claimed] == ["kind_0", "kind_1", "kind_2"]
        assert all(m.claimed_by == "worker-1" and m.attempts == 2 for m in claimed)
        assert ways.direct - before == 3  # the candidates, the earlier rows, the leases
        shapes.append(len(executor._prepared))
    assert shapes[0] == shapes[1] == shapes[2]  # other lists, the same statements


async def test_a_reader_does_not_take_the_write_lock(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    """A read-only unit begins DEFERRED: it reads while another process holds the lock."""
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(7_100_000_081))
        await uow.commit()
    other = sqlite3.connect(tmp_path / "direct.db", isolation_level=None)
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
    other = sqlite3.connect(tmp_path / "direct.db", isolation_level=None)
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
    assert await citizen_count(engine) == 1


async def test_a_writer_cancelled_while_it_waits_for_the_lock_gives_everything_back(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory, tmp_path: Path
) -> None:
    """Cancelled in its BEGIN's retries (another process writes): its connection goes back
    to the pool and the next writer of this process gets its turn."""
    other = sqlite3.connect(tmp_path / "direct.db", isolation_level=None)
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
    assert await citizen_count(engine) == 1


async def _add(uow_factory: SqlUnitOfWorkFactory, telegram_id: int) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(telegram_id))
        await uow.commit()
