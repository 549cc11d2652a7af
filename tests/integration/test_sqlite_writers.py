"""SQLite writers of one process queue in order; readers never wait for them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain.model import Citizen
from bot.services.ports import StorageBusy
from storage import sqlite_inline
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.sqlite_inline import Checkpointer
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


async def test_urgent_writers_go_first_and_background_ones_give_way_when_others_wait(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'writers.db'}"
    await upgrade(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    writers = SqlUnitOfWorkFactory(sessions)
    background = SqlUnitOfWorkFactory(sessions, background=True)
    urgent = SqlUnitOfWorkFactory(sessions, urgent=True)
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
                asyncio.create_task(write(urgent, "card", 17)),  # the outbox's: first
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
    assert order == ["card", "intake 1", "intake 2", "claim 1", "store 1", "claim 2"]


@pytest.mark.parametrize(("driver", "yields"), [("inline", False), ("thread", True)])
async def test_a_unit_of_work_gives_the_loop_no_turn_inside_its_transaction_only_when_inline(
    tmp_path: Path, driver: str, yields: bool
) -> None:
    # Inline, the write lock is held for the unit's own CPU time: nothing else runs between
    # BEGIN and COMMIT. Through aiosqlite's thread every statement is a trip round the loop.
    url = f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}"
    await upgrade(url)
    engine = create_engine(url, sqlite_driver=driver)
    writers = SqlUnitOfWorkFactory(session_factory(engine))
    ran: list[str] = []
    try:
        async with writers() as uow:
            await uow.citizens.add(Citizen(telegram_id=1, language="id"))  # BEGIN IMMEDIATE
            asyncio.get_running_loop().call_soon(ran.append, "other")
            for n in range(2, 6):
                await uow.citizens.add(Citizen(telegram_id=n, language="id"))
            assert await uow.citizens.get_by_telegram_id(5) is not None
            ran.append("commit")
            await uow.commit()
    finally:
        await engine.dispose()
    await asyncio.sleep(0)  # the loop's turn, if nothing gave it one before
    assert ran == (["other", "commit"] if yields else ["commit", "other"])


async def test_an_inline_writer_waiting_for_another_process_leaves_the_loop_running(
    tmp_path: Path,
) -> None:
    path = tmp_path / "writers.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    engine = create_engine(url)  # inline: busy timeout 0, the wait is asyncio sleeps
    writers = SqlUnitOfWorkFactory(session_factory(engine))
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    gc.disable()  # a full collection late in a long session stalled the loop 0.6 s once
    try:
        with _other_process_writing(path) as other:
            loop.call_later(0.8, other.execute, "ROLLBACK")
            started = loop.time()
            async with writers() as uow:
                await uow.citizens.add(Citizen(telegram_id=4100, language="id"))
                await uow.commit()
            finished = loop.time()
            other.execute("BEGIN IMMEDIATE")  # for the context manager's own ROLLBACK
    finally:
        gc.enable()
        ticker.cancel()
        await engine.dispose()
    assert finished - started >= 0.75  # it did wait for the other process
    during = [t for t in ticks if started <= t <= finished]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) >= 20, during  # the loop ticked all along (every 10 ms asked) …
    # … never stalled for the lock's whole 0.8 s in SQLite's busy handler (no collection
    # ran in the window: the slack is for a busy machine)
    assert max(gaps) < 0.4, gaps


def test_the_checkpointer_folds_the_log_into_the_file_from_its_own_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wal.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # as the inline driver's connections
    writer.execute("CREATE TABLE t (b BLOB)")
    writer.executemany("INSERT INTO t VALUES (?)", [(bytes(10_000),) for _ in range(30)])
    before = path.stat().st_size
    checkpointer = Checkpointer(str(path), interval=0.02)
    checkpointer.start()
    try:
        deadline = time.monotonic() + 5
        while path.stat().st_size < 300_000 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        checkpointer.stop()
        writer.close()
    assert before < 100_000  # the rows were only in the log
    assert path.stat().st_size >= 300_000  # now they are in the database file
    assert checkpointer.checkpoints >= 1
    assert not checkpointer._thread.is_alive()  # stop() ends it


async def test_an_engine_stops_its_checkpointer_when_disposed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ck.db'}"
    await upgrade(url)
    engine = create_engine(url)
    async with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
        await uow.citizens.add(Citizen(telegram_id=1, language="id"))
        await uow.commit()
    checkpointer = sqlite_inline._checkpointers[engine.sync_engine]
    await engine.dispose()
    assert engine.sync_engine not in sqlite_inline._checkpointers
    assert not checkpointer._thread.is_alive()


def test_a_lock_is_told_by_sqlites_code_and_by_the_words_of_an_adapted_error() -> None:
    def error(text: str, code: int | None = None) -> sqlite3.OperationalError:
        made = sqlite3.OperationalError(text)
        if code is not None:
            made.sqlite_errorcode = code  # type: ignore[attr-defined]
        return made

    assert sqlite_inline.is_locked(error("database is locked", sqlite3.SQLITE_BUSY))
    assert sqlite_inline.is_locked(error("database table is locked", sqlite3.SQLITE_LOCKED))
    assert sqlite_inline.is_locked(error("database is locked", 517))  # SQLITE_BUSY_SNAPSHOT
    assert sqlite_inline.is_locked(error("database is locked"))  # adapted: no code, its words
    assert not sqlite_inline.is_locked(error("disk I/O error", sqlite3.SQLITE_IOERR))
    assert not sqlite_inline.is_locked(error("no such table: citizens"))
    assert not sqlite_inline.is_locked(ValueError("database is locked"))
