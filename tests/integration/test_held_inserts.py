"""Inserts nobody reads back, held by the unit of work and sent with its next write or its
commit (``storage.connection_unit``, PostgreSQL; issue 11), on both databases: SQLite sends
them at once, PostgreSQL holds them, and what a unit reads, writes, commits and rolls back
is the same either way. The statements are counted where the two differ."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.model import OutboxMessage, Ticket, TicketStatus
from storage.connection_unit import _slot_insert, _with_later
from storage.db import session_factory
from storage.repositories import _EVENTS, _OUTBOX, _WAITING, _ticket_write_with_next_ref
from storage.uow import SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.conftest import empty_tables
from tests.integration.test_uow_contract import add_draft


@pytest.fixture
async def uow_factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    await empty_tables(engine)
    return SqlUnitOfWorkFactory(session_factory(engine))


@dataclasses.dataclass
class Sent:
    """The statements sent to the database (their first word), and whether SQLAlchemy
    compiled each from its cache."""

    words: list[str] = dataclasses.field(default_factory=list)
    uncached: list[str] = dataclasses.field(default_factory=list)

    def writes(self) -> int:
        return sum(w in ("INSERT", "UPDATE", "DELETE", "WITH") for w in self.words)


@contextmanager
def sent(engine: AsyncEngine) -> Iterator[Sent]:
    seen = Sent()

    def before(_conn: Any, _cursor: Any, statement: str, _p: Any, context: Any, _m: Any) -> None:
        seen.words.append(statement.split(None, 1)[0].upper())
        # No context: SQLite's direct path (storage.sqlite_direct), with a cache of its own.
        if context is not None and context.cache_hit == context.dialect.NO_CACHE_KEY:
            seen.uncached.append(" ".join(statement.split())[:80])

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


def _row(ticket: Ticket, kind: str) -> OutboxMessage:
    return b.outbox(ticket.id, kind=kind, attempts=0, last_error=None)


async def _only_a_later_event_is_stored(uow_factory: SqlUnitOfWorkFactory, draft: Ticket) -> None:
    """A later unit's event is stored, and nothing that earlier units held (the connection's
    next unit sends none of it either)."""
    async with uow_factory() as uow:
        await uow.events.add(b.event(draft.id or 0, kind="kept"))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.owed(10) == []
        assert [e.kind for e in await uow.events.for_ticket(draft.id or 0)] == ["kept"]


async def test_a_tickets_rows_go_with_its_write_in_the_order_they_were_queued(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    draft = await add_draft(uow_factory, 7_300_000_001)
    with sent(engine) as seen:
        async with uow_factory() as uow:
            _, loaded = await uow.citizens.with_draft(7_300_000_001)
            assert loaded is not None
            await uow.events.add(b.event(draft.id or 0, kind="submitted"))
            for kind in ("operator_topic", "operator_card", "operator_pin"):
                await uow.outbox.put(_row(draft, kind))
            submitted = dataclasses.replace(loaded, status=TicketStatus.SUBMITTED)
            await uow.tickets.update(submitted)
            await uow.commit()
    # PostgreSQL: the event and the three rows are WITH-clauses of the ticket's UPDATE.
    assert seen.writes() == (1 if engine.dialect.name == "postgresql" else 5), seen.words
    async with uow_factory() as uow:
        rows = await uow.outbox.owed(10)
        events = await uow.events.for_ticket(draft.id or 0)
        stored = await uow.tickets.get(draft.id or 0)
    assert [r.kind for r in sorted(rows, key=lambda r: r.id or 0)] == [
        "operator_topic",
        "operator_card",
        "operator_pin",
    ]  # fmt: skip: in the order queued, by id (the card is sent before its pin)
    assert [e.kind for e in events] == ["submitted"]
    assert stored is not None
    assert stored.status is TicketStatus.SUBMITTED


async def test_a_read_of_their_table_sees_the_rows_held(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    draft = await add_draft(uow_factory, 7_300_000_002)
    async with uow_factory() as uow:
        await uow.outbox.put(_row(draft, "operator_card"))
        assert [r.kind for r in await uow.outbox.owed_of_kind("operator_card")] == [
            "operator_card"
        ]  # a prebuilt statement
        await uow.events.add(b.event(draft.id or 0, kind="note"))
        assert [e.kind for e in await uow.events.for_ticket(draft.id or 0)] == ["note"]  # ORM
        await uow.outbox.put(_row(draft, "operator_pin"))
        assert await uow.outbox.pending_count() == 2  # the session's read sees it too
        await uow.commit()


async def test_a_read_of_other_tables_leaves_them_held_until_the_commit(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    draft = await add_draft(uow_factory, 7_300_000_003)
    with sent(engine) as seen:
        async with uow_factory() as uow:
            await uow.outbox.put(_row(draft, "operator_card"))
            assert await uow.citizens.get_by_telegram_id(7_300_000_003) is not None
            held = seen.writes()
            await uow.commit()
    assert held == (0 if engine.dialect.name == "postgresql" else 1), seen.words
    assert seen.writes() == 1
    async with uow_factory() as uow:
        assert [r.kind for r in await uow.outbox.owed(10)] == ["operator_card"]


async def test_a_rollback_drops_them_and_the_connections_next_unit_starts_clean(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    draft = await add_draft(uow_factory, 7_300_000_004)
    for _ in range(3):  # the pool hands the same connection back
        async with uow_factory() as uow:
            await uow.outbox.put(_row(draft, "operator_card"))
            await uow.events.add(b.event(draft.id or 0))
            # no commit: the unit rolls back
    await _only_a_later_event_is_stored(uow_factory, draft)


async def test_a_refused_row_fails_the_commit_and_leaves_nothing_behind(
    uow_factory: SqlUnitOfWorkFactory,
) -> None:
    draft = await add_draft(uow_factory, 7_300_000_005)

    async def refused() -> None:
        async with uow_factory() as uow:
            await uow.outbox.put(_row(draft, "operator_card"))
            await uow.events.add(b.event(999_999))  # no such ticket
            await uow.commit()

    with pytest.raises(ValueError, match="foreign key"):
        await refused()
    await _only_a_later_event_is_stored(uow_factory, draft)


async def test_a_unit_with_held_rows_is_compiled_from_the_cache(
    engine: AsyncEngine, uow_factory: SqlUnitOfWorkFactory
) -> None:
    drafts = [await add_draft(uow_factory, 7_300_000_010 + n) for n in range(3)]
    with sent(engine) as seen:
        for draft in drafts:
            async with uow_factory() as uow:
                await uow.events.add(b.event(draft.id or 0))
                for kind in ("operator_card", "operator_pin"):
                    await uow.outbox.put(_row(draft, kind))
                await uow.tickets.update(dataclasses.replace(draft, details="asap"))
                await uow.outbox.put(_row(draft, "operator_media"))  # held to the commit
                await uow.commit()
    assert seen.uncached == []


def test_held_statements_have_a_cache_key_whatever_their_rows() -> None:
    names = ("kind", "payload", "attempts", "rank", "repeat", "lane", "dedup_key")
    shapes = [(None,), (None, None), (None,) * 5, (_WAITING,), (None, _WAITING, None)]
    for rows in shapes:  # a multi-row VALUES has none: SQLAlchemy compiles it each time
        assert _slot_insert(_OUTBOX, names, 0, rows)._generate_cache_key() is not None
    held = [
        (_EVENTS, ("ticket_id",), (1,), None),
        (_OUTBOX, names, ("k", {}, 0, 1, False, "emergency", "k:1"), _WAITING),
    ]
    statement, params = _with_later(held, _ticket_write_with_next_ref(("status",)), {})
    assert statement._generate_cache_key() is not None
    assert params == {
        "l0_0_ticket_id": 1, "l1_0_kind": "k", "l1_0_payload": {}, "l1_0_attempts": 0,
        "l1_0_rank": 1, "l1_0_repeat": False, "l1_0_lane": "emergency", "l1_0_dedup_key": "k:1",
    }  # fmt: skip
