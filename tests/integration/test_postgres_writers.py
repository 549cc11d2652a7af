"""PostgreSQL writers of one process take turns for the pool's connections in rank, as
SQLite's take turns for its write lock: the outbox's units of work (operator cards) before
the citizens' queued ones, a broadcast's claims only when no other writer waits. Left to
the pool, they were served in arrival order, so a card waited behind a surge's steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.sizes import DATABASE_CONNECTIONS
from storage.db import create_engine, session_factory
from storage.uow import SqlUnitOfWorkFactory
from tests.integration.conftest import only_postgresql

pytestmark = only_postgresql


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_the_outboxs_writer_goes_before_queued_citizens_when_every_connection_is_taken(
    engine: AsyncEngine,
) -> None:
    sessions = session_factory(engine)
    writers = SqlUnitOfWorkFactory(sessions)
    urgent = SqlUnitOfWorkFactory(sessions, urgent=True)
    background = SqlUnitOfWorkFactory(sessions, background=True)
    entered: asyncio.Queue[str] = asyncio.Queue()
    everyone_in = asyncio.Barrier(DATABASE_CONNECTIONS + 1)
    let_go = [asyncio.Event() for _ in range(DATABASE_CONNECTIONS)]
    done = asyncio.Event()

    async def hold(n: int) -> None:
        async with writers() as uow:
            await uow.citizens.get_by_telegram_id(n)  # a connection of the pool is taken
            await everyone_in.wait()
            await let_go[n].wait()

    async def write(factory: SqlUnitOfWorkFactory, name: str) -> None:
        async with factory() as uow:
            await uow.citizens.get_by_telegram_id(100)
            entered.put_nowait(name)
            await done.wait()  # keeps its connection: the next one needs another let go

    async with asyncio.timeout(30):
        holders = [asyncio.create_task(hold(n)) for n in range(DATABASE_CONNECTIONS)]
        await everyone_in.wait()  # every connection is held
        queued = []
        for factory, name in [
            (background, "claim"), (writers, "intake 1"), (writers, "intake 2"),
            (urgent, "card"),  # the outbox's, last to come: first served
        ]:  # fmt: skip
            queued.append(asyncio.create_task(write(factory, name)))
            await asyncio.sleep(0.01)  # in this order
        assert entered.empty()
        order = []
        for n in range(len(queued)):  # one connection freed at a time
            let_go[n].set()
            order.append(await entered.get())
        done.set()
        for event in let_go:
            event.set()
        await asyncio.gather(*holders, *queued)
    assert order == ["card", "intake 1", "intake 2", "claim"]


async def test_units_of_work_nested_in_one_task_each_take_a_connection(
    engine: AsyncEngine,
) -> None:
    """Two workers' overlapping transactions, as the outbox's lease tests stage them: on
    PostgreSQL a writer inside another waits for nothing of its own."""
    writers = SqlUnitOfWorkFactory(session_factory(engine))
    async with asyncio.timeout(10), writers() as first, writers() as second:
        assert await first.citizens.get_by_telegram_id(1) is None
        assert await second.citizens.get_by_telegram_id(1) is None
