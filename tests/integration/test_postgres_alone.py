"""PostgreSQL units of work that send no ``BEGIN`` until they must (``storage.connection_unit``,
issue 11): the intake's marked reads (``READ_ALONE``) go without a transaction, every other
statement begins one, and a submission's last write (``commit_with_next_ref``) after reads
only is one statement in no transaction, atomic on its own, so the day counter's row is held
for no round trip. The server's ``BEGIN`` are counted at SQLAlchemy's asyncpg adapter, where
they are sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.model import TicketStatus
from storage.db import session_factory
from storage.models import CitizenRow
from storage.uow import SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.conftest import empty_tables, only_postgresql
from tests.integration.test_uow_contract import add_draft

pytestmark = only_postgresql

DAY = date(2026, 12, 1)


@pytest.fixture
async def uow_factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    await empty_tables(engine)
    return SqlUnitOfWorkFactory(session_factory(engine))


@contextmanager
def begins(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The ``BEGIN`` the adapter sends (one entry each)."""
    sent: list[str] = []
    start = AsyncAdapt_asyncpg_connection._start_transaction

    async def counted(self: Any) -> None:
        if self.isolation_level != "autocommit":
            sent.append("BEGIN")
        await start(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "_start_transaction", counted)
    yield sent


async def test_the_intakes_reads_send_no_begin_and_other_statements_do(
    uow_factory: SqlUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = await add_draft(uow_factory, 7_400_000_001)
    with begins(monkeypatch) as sent:
        async with uow_factory() as uow:
            await uow.citizens.with_draft(7_400_000_001)
            await uow.outbox.owed_of_kind("queue_board")
            await uow.commit()
        assert sent == []
        async with uow_factory() as uow:
            await uow.citizens.with_draft(7_400_000_001)
            assert await uow.tickets.get(draft.id or 0) is not None  # a read not marked
            await uow.commit()
        assert sent == ["BEGIN"]


async def test_a_submission_after_reads_is_one_statement_in_no_transaction(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = await add_draft(uow_factory, 7_400_000_002)
    with begins(monkeypatch) as sent:
        async with uow_factory() as uow:
            _, loaded = await uow.citizens.with_draft(7_400_000_002)
            assert loaded is not None
            await uow.outbox.owed_of_kind("queue_board")
            await uow.events.add(b.event(draft.id or 0, kind="submitted"))
            await uow.outbox.put(b.outbox(draft.id, kind="operator_card", attempts=0))
            submitted = dataclasses.replace(loaded, status=TicketStatus.SUBMITTED)
            ref = await uow.commit_with_next_ref(submitted, DAY, "SMG")
    assert sent == []
    assert ref == "SMG-261201-0001"
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft.id or 0)
        assert stored is not None
        assert (stored.ref, stored.status) == (ref, TicketStatus.SUBMITTED)
        assert [e.kind for e in await uow.events.for_ticket(draft.id or 0)] == ["submitted"]
        assert [m.kind for m in await uow.outbox.owed(10)] == ["operator_card"]


async def test_a_step_after_reads_writes_its_draft_in_no_transaction(
    uow_factory: SqlUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = await add_draft(uow_factory, 7_400_000_005)
    with begins(monkeypatch) as sent:
        async with uow_factory() as uow:
            _, loaded = await uow.citizens.with_draft(7_400_000_005)
            assert loaded is not None
            await uow.commit_with_update(dataclasses.replace(loaded, details="asap"))
    assert sent == []
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft.id or 0)
    assert stored is not None
    assert stored.details == "asap"


async def test_a_step_with_rows_to_write_sends_them_with_its_draft_in_a_transaction(
    uow_factory: SqlUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held row rides the draft's write, and that write may miss (a ticket gone): the
    rows must not be written then, so this write is not sent alone."""
    draft = await add_draft(uow_factory, 7_400_000_006)
    with begins(monkeypatch) as sent:
        async with uow_factory() as uow:
            _, loaded = await uow.citizens.with_draft(7_400_000_006)
            assert loaded is not None
            await uow.events.add(b.event(draft.id or 0, kind="location_confirmed"))
            await uow.commit_with_update(dataclasses.replace(loaded, details="asap"))
    assert sent == ["BEGIN"]

    async def write_a_ticket_gone() -> None:
        async with uow_factory() as uow:
            await uow.citizens.with_draft(7_400_000_006)
            await uow.events.add(b.event(draft.id or 0, kind="never"))
            await uow.commit_with_update(dataclasses.replace(draft, id=999_999))

    with pytest.raises(LookupError):
        await write_a_ticket_gone()
    async with uow_factory() as uow:
        events = await uow.events.for_ticket(draft.id or 0)
        stored = await uow.tickets.get(draft.id or 0)
    assert [e.kind for e in events] == ["location_confirmed"]
    assert stored is not None
    assert stored.details == "asap"


async def test_a_submission_after_a_write_commits_in_the_units_transaction(
    uow_factory: SqlUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = await add_draft(uow_factory, 7_400_000_003)
    with begins(monkeypatch) as sent:
        async with uow_factory() as uow:
            await uow.citizens.add(b.citizen(7_400_000_099))  # a write: the unit begins
            ref = await uow.commit_with_next_ref(draft, DAY, "SMG")
    assert sent == ["BEGIN"]
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(7_400_000_099) is not None
        stored = await uow.tickets.get(draft.id or 0)
        assert stored is not None
        assert stored.ref == ref


async def test_a_refused_submission_writes_nothing_and_takes_no_number(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    draft = await add_draft(uow_factory, 7_400_000_004)

    async def submit_with_a_bad_row() -> None:
        async with uow_factory() as uow:
            await uow.citizens.with_draft(7_400_000_004)
            await uow.events.add(b.event(999_999))  # no such ticket: the statement fails
            await uow.commit_with_next_ref(draft, DAY, "SMG")

    with pytest.raises(ValueError, match="foreign key"):
        await submit_with_a_bad_row()
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft.id or 0)
        assert stored is not None
        assert stored.ref != "SMG-261201-0001"
        ref = await uow.commit_with_next_ref(draft, DAY, "SMG")
    assert ref == "SMG-261201-0001"  # the number was not taken: references stay gapless


async def test_the_pools_next_user_gets_a_connection_that_begins_transactions(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    for _ in range(3):  # units that only read leave their connection to the pool
        async with uow_factory() as uow:
            await uow.citizens.with_draft(7_400_000_005)
    async with session_factory(engine)() as session:  # a plain session, not a unit
        session.add(CitizenRow(telegram_id=7_400_000_005, language="id"))
        await session.flush()
        await session.rollback()
    async with session_factory(engine)() as session:
        found = await session.scalar(
            select(CitizenRow).where(CitizenRow.telegram_id == 7_400_000_005)
        )
    assert found is None  # rolled back: the flush ran in a transaction


async def test_an_orm_write_after_the_reads_begins_the_units_transaction(
    uow_factory: SqlUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with begins(monkeypatch) as sent:
        async with uow_factory() as uow:
            await uow.citizens.with_draft(7_400_000_006)
            session = uow._active().session()  # type: ignore[union-attr]
            session.add(CitizenRow(telegram_id=7_400_000_006, language="id"))
            await session.flush()
            # no commit: the unit rolls back
    assert sent == ["BEGIN"]
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(7_400_000_006) is None
