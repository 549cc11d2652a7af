"""SQLite writers of one process queue in order; readers never wait for them."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain.model import Citizen
from bot.services.ports import StorageBusy
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


@contextlib.contextmanager
def _other_process_writing(path: Path) -> Iterator[sqlite3.Connection]:
    """Holds SQLite's write lock the way another process would (its own connection)."""
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_queued_writers_with_a_deadline_give_up_together_while_another_process_writes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "writers.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    engine = create_engine(url)  # busy timeout 10 s: each writer would wait it in turn
    writers = SqlUnitOfWorkFactory(session_factory(engine), write_wait=1.0)

    async def add(n: int) -> None:
        async with writers() as uow:
            await uow.citizens.add(Citizen(telegram_id=2000 + n, language="id"))
            await uow.commit()

    async def write(n: int) -> float:
        started = asyncio.get_running_loop().time()
        with pytest.raises(StorageBusy):
            await add(n)
        return asyncio.get_running_loop().time() - started

    try:
        with _other_process_writing(path):
            waited = await asyncio.gather(*(write(n) for n in range(5)))
        # every one is told within its own deadline, not 5 x the busy timeout one after another
        assert max(waited) < 2.0, waited
        assert min(waited) > 0.5, waited  # and each did wait for the lock, not fail at once
        async with writers() as uow:  # the lock is free again: writing works, nothing stuck
            await uow.citizens.add(Citizen(telegram_id=3000, language="id"))
            await uow.commit()
        async with SqlUnitOfWorkFactory(session_factory(engine), read_only=True)() as uow:
            assert await uow.citizens.get_by_telegram_id(3000) is not None
            assert await uow.citizens.get_by_telegram_id(2000) is None  # refused, not half-kept
    finally:
        await engine.dispose()


async def test_writer_without_a_deadline_still_waits_out_a_short_lock(tmp_path: Path) -> None:
    path = tmp_path / "writers.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    engine = create_engine(url)
    writers = SqlUnitOfWorkFactory(session_factory(engine))
    try:
        with _other_process_writing(path) as other:
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, other.execute, "ROLLBACK")  # the other process finishes
            async with writers() as uow:
                await uow.citizens.add(Citizen(telegram_id=4000, language="id"))
                await uow.commit()
            other.execute("BEGIN IMMEDIATE")  # for the context manager's own ROLLBACK
        async with writers() as uow:
            assert await uow.citizens.get_by_telegram_id(4000) is not None
    finally:
        await engine.dispose()


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
