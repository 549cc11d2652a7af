"""SQLite writers of one process queue in order; readers never wait for them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.domain.model import Citizen
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory


@pytest.fixture
async def factories(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}"
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    yield SqlUnitOfWorkFactory(sessions), SqlUnitOfWorkFactory(sessions, read_only=True)
    await engine.dispose()


async def test_writers_take_turns_in_arrival_order_when_many_write_at_once(factories) -> None:  # type: ignore[no-untyped-def]
    writers, _ = factories
    order: list[int] = []

    async def write(n: int) -> None:
        async with writers() as uow:
            await uow.citizens.add(Citizen(telegram_id=1000 + n, language="id"))
            order.append(n)  # after the first statement: the transaction has begun
            await asyncio.sleep(0)  # give the others every chance to barge in
            await uow.commit()

    await asyncio.gather(*(write(n) for n in range(40)))
    assert order == list(range(40))
    async with writers() as uow:
        assert await uow.citizens.get_by_telegram_id(1039) is not None


async def test_reader_is_not_blocked_when_a_writer_holds_its_turn(factories) -> None:  # type: ignore[no-untyped-def]
    writers, readers = factories
    async with writers() as uow:
        await uow.citizens.add(Citizen(telegram_id=7, language="id"))
        async with readers() as reader:  # would wait forever if readers queued too
            assert await asyncio.wait_for(reader.citizens.get_by_telegram_id(7), 5) is None
        await uow.commit()


async def test_nested_writer_fails_loudly_when_opened_inside_another(factories) -> None:  # type: ignore[no-untyped-def]
    writers, _ = factories
    async with writers():
        with pytest.raises(RuntimeError, match="inside another"):
            async with writers():
                pass


async def test_background_writers_give_way_when_other_writers_wait(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}"
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    writers = SqlUnitOfWorkFactory(sessions)
    background = SqlUnitOfWorkFactory(sessions, background=True)
    order: list[str] = []

    async def write(factory: SqlUnitOfWorkFactory, name: str, telegram_id: int) -> None:
        async with factory() as uow:
            await uow.citizens.add(Citizen(telegram_id=telegram_id, language="id"))
            order.append(name)
            await asyncio.sleep(0)
            await uow.commit()

    try:
        async with writers() as uow:  # the turn is taken: everyone below queues
            await uow.citizens.add(Citizen(telegram_id=1, language="id"))
            queued = [
                asyncio.create_task(write(background, "claim 1", 11)),
                asyncio.create_task(write(background, "store 1", 12)),
                asyncio.create_task(write(writers, "intake 1", 13)),
                asyncio.create_task(write(background, "claim 2", 14)),
                asyncio.create_task(write(writers, "intake 2", 15)),
            ]
            await asyncio.sleep(0.01)  # all of them wait for the turn
            await uow.commit()
        cancelled = asyncio.create_task(write(writers, "gone", 16))
        await asyncio.sleep(0)
        cancelled.cancel()  # a writer cancelled while waiting never takes or blocks a turn
        await asyncio.gather(*queued)
        async with writers() as uow:
            assert await uow.citizens.get_by_telegram_id(16) is None
    finally:
        await engine.dispose()
    assert order == ["intake 1", "intake 2", "claim 1", "store 1", "claim 2"]
