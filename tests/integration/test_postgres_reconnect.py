"""PostgreSQL connections the server ended while they sat in the pool are never handed to a
unit of work: a restart of the server, a failover or an administrator's
``pg_terminate_backend`` costs a citizen's step nothing.

The pool checks at checkout whether the driver has seen its connection close (no round trip:
asyncpg learns of the server's goodbye while the connection is idle), and connects afresh
when it has. A connection that dies between that check and its first statement fails that
one unit of work with ``StorageBusy`` (the citizen is asked to send that step again); the
pool is then renewed, and the next unit of work runs.

The pool keeps what it opened: a surge's connections serve the next one (bot/sizes.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from bot.services.ports import StorageBusy
from bot.sizes import DATABASE_CONNECTIONS
from storage.db import create_engine, session_factory
from storage.uow import SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.conftest import only_postgresql
from tests.integration.test_uow_contract import add_citizen

pytestmark = only_postgresql

POOLED = 3  # connections held at once, so the pool keeps several


@pytest.fixture
async def pooled(database_url: str) -> AsyncIterator[tuple[AsyncEngine, list[int]]]:
    """An engine whose pool holds ``POOLED`` idle connections, and their server pids."""
    engine = create_engine(database_url)
    pids: list[int] = []
    gate = asyncio.Event()

    async def hold() -> None:
        async with engine.connect() as connection:
            pids.append((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            if len(pids) == POOLED:
                gate.set()
            await gate.wait()

    await asyncio.gather(*(hold() for _ in range(POOLED)))
    try:
        yield engine, pids
    finally:
        await engine.dispose()


async def terminate(database_url: str, pids: list[int]) -> None:
    """Ends the server processes of ``pids`` as an administrator would, from elsewhere."""
    admin = create_engine(database_url)
    try:
        async with admin.connect() as connection:
            ended = await connection.execute(
                text("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                     "FROM pg_stat_activity WHERE pid = ANY(CAST(:pids AS int[]))"),
                {"pids": pids},
            )  # fmt: skip
            assert ended.scalar_one() == len(pids)
    finally:
        await admin.dispose()
    await asyncio.sleep(0.2)  # the connections sit idle in the pool a moment, as they would


def round_trips(engine: AsyncEngine) -> list[str]:
    """The statements the engine sends from now on."""
    sent: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *a, **_: sent.append(a[2]))
    return sent


async def test_units_of_work_run_after_the_server_ended_the_pooled_connections(
    pooled: tuple[AsyncEngine, list[int]], database_url: str
) -> None:
    engine, pids = pooled
    uows = SqlUnitOfWorkFactory(session_factory(engine))
    await terminate(database_url, pids)

    # As many units of work at once as the pool holds dead connections.
    await asyncio.gather(*(add_citizen(uows, 1000 + n) for n in range(POOLED)))

    async with uows() as uow:
        stored = [await uow.citizens.get_by_telegram_id(1000 + n) for n in range(POOLED)]
    assert all(citizen is not None for citizen in stored)
    async with engine.connect() as connection:
        now = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    assert now not in pids


async def test_a_connection_ended_after_the_check_fails_one_unit_of_work_then_the_pool_renews(
    pooled: tuple[AsyncEngine, list[int]], database_url: str
) -> None:
    engine, pids = pooled
    uows = SqlUnitOfWorkFactory(session_factory(engine))
    ended = False

    @event.listens_for(engine.sync_engine, "checkout")
    def end_once(*_: object) -> None:
        # The server ends the connections just after the pool's own check passed one.
        nonlocal ended
        if not ended:
            ended = True
            await_(terminate(database_url, pids))  # inside SQLAlchemy's greenlet

    with pytest.raises(StorageBusy) as failed:  # the citizen is asked to send it again
        async with uows() as uow:
            await uow.citizens.add(b.citizen(2000))
    assert "connection" in str(failed.value.__cause__)  # asyncpg: "connection is closed"

    await add_citizen(uows, 2001)  # the other pooled connections died too: all are renewed
    async with uows() as uow:
        assert await uow.citizens.get_by_telegram_id(2001) is not None


async def test_a_live_pooled_connection_is_handed_out_without_a_ping(
    pooled: tuple[AsyncEngine, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = pooled
    dialect = engine.sync_engine.dialect
    pings: list[object] = []
    ping = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)  # a round trip (three on asyncpg)
    for _ in range(POOLED):
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 41"))).scalar_one() == 41
    assert pings == []


async def test_a_burst_of_units_of_work_keeps_its_connections_for_the_next_one(
    database_url: str,
) -> None:
    """SQLAlchemy's default pool keeps 5 connections and closes the 10 more it lets open
    as soon as they are given back: every surge connected and disconnected again."""
    engine = create_engine(database_url)
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))
    uows = SqlUnitOfWorkFactory(session_factory(engine))
    at_once = DATABASE_CONNECTIONS

    async def burst() -> None:
        together = asyncio.Barrier(at_once)

        async def unit(n: int) -> None:
            async with uows() as uow:
                await uow.citizens.get_by_telegram_id(3000 + n)  # holds a connection
                await together.wait()  # until every unit of the burst holds one

        async with asyncio.timeout(30):
            await asyncio.gather(*(unit(n) for n in range(at_once)))

    try:
        await burst()
        assert len(opened) == at_once
        await burst()
        assert len(opened) == at_once  # the second surge connects no more
    finally:
        await engine.dispose()


async def test_a_unit_of_work_that_finds_every_connection_in_use_past_the_timeout_is_busy(
    database_url: str,
) -> None:
    """A surge that holds the whole pool past its timeout is a busy database: the citizen
    is asked to send the step again, as on SQLite, not told of an error."""
    engine = create_engine(database_url, postgres_pool_timeout=0.2)
    uows = SqlUnitOfWorkFactory(session_factory(engine))
    all_held = asyncio.Barrier(DATABASE_CONNECTIONS + 1)
    let_go = asyncio.Event()

    async def hold() -> None:
        async with uows() as uow:
            await uow.citizens.get_by_telegram_id(4000)
            await all_held.wait()
            await let_go.wait()

    holders = [asyncio.create_task(hold()) for _ in range(DATABASE_CONNECTIONS)]
    try:
        async with asyncio.timeout(30):
            await all_held.wait()
            with pytest.raises(StorageBusy, match="in use"):
                async with uows() as uow:
                    await uow.citizens.get_by_telegram_id(4001)
            let_go.set()
            await asyncio.gather(*holders)
            async with uows() as uow:  # the pool serves again
                assert await uow.citizens.get_by_telegram_id(4001) is None
    finally:
        let_go.set()
        await asyncio.gather(*holders, return_exceptions=True)
        await engine.dispose()
