"""What only the SQL stores do: engine settings, UTC storage, locking, schema isolation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, date

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.model import TicketStatus
from bot.domain.rules import format_ref
from storage.db import create_engine, session_factory, split_schema
from storage.uow import SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.conftest import only_postgresql, only_sqlite
from tests.integration.test_uow_contract import add_citizen, add_ticket


def factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(session_factory(engine))


@only_sqlite
@pytest.mark.parametrize(
    ("driver", "busy_timeout", "autocheckpoint"),
    [("inline", 0, 0), ("thread", 10_000, 1000)],  # inline: waits and checkpoints off-loop
)
async def test_sqlite_connections_use_wal_and_enforce_foreign_keys_when_opened(
    database_url: str, driver: str, busy_timeout: int, autocheckpoint: int
) -> None:
    engine = create_engine(database_url, sqlite_driver=driver)
    try:
        async with engine.connect() as connection:
            pragmas = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar()
                for name in (
                    "journal_mode", "foreign_keys", "synchronous", "busy_timeout",
                    "wal_autocheckpoint",
                )
            }  # fmt: skip
    finally:
        await engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,  # NORMAL
        "busy_timeout": busy_timeout,
        "wal_autocheckpoint": autocheckpoint,
    }


@only_sqlite
@pytest.mark.parametrize("driver", ["inline", "thread"])
async def test_many_rows_in_one_execute_are_written_when_on_a_plain_connection(
    database_url: str, driver: str
) -> None:
    """``executemany`` through SQLAlchemy's AsyncConnection (bulk seeds, bench/broadcast.py),
    which refuses a call that awaited nothing."""
    engine = create_engine(database_url, sqlite_driver=driver)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql("CREATE TEMP TABLE many (n INTEGER)")
            await connection.execute(
                text("INSERT INTO many VALUES (:n)"), [{"n": n} for n in range(5)]
            )
            total = (await connection.exec_driver_sql("SELECT sum(n) FROM many")).scalar()
    finally:
        await engine.dispose()
    assert total == 10


def test_an_unknown_sqlite_driver_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown SQLite driver 'greenlet'"):
        create_engine("sqlite+aiosqlite:///x.db", sqlite_driver="greenlet")


async def test_datetimes_are_stored_in_utc_when_given_in_another_zone(
    engine: AsyncEngine,
) -> None:
    uow_factory = factory(engine)
    async with uow_factory() as uow:
        await uow.outbox.add(b.outbox(created_at=b.at(0).astimezone(b.WIB)))
        await uow.commit()
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql("SET TIME ZONE 'UTC'")
        raw = await connection.scalar(text("SELECT CAST(created_at AS TEXT) FROM outbox"))
    assert str(raw).startswith("2026-05-27 03:00:00.123456")
    async with uow_factory() as uow:
        (loaded,) = await uow.outbox.due(b.at(1), 1)
    assert loaded.created_at.tzinfo is UTC
    assert loaded.created_at == b.at(0)


@only_sqlite
async def test_read_modify_write_units_never_lose_updates_when_run_concurrently_on_sqlite(
    engine: AsyncEngine,
) -> None:
    """A unit of work holds SQLite's write lock from its first statement (BEGIN IMMEDIATE).

    Not so on PostgreSQL (READ COMMITTED): services must not rely on it there.
    """
    uow_factory = factory(engine)
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(1, strikes=0))
        await uow.commit()

    async def strike() -> None:
        async with uow_factory() as uow:
            citizen = await uow.citizens.get_by_telegram_id(1)
            assert citizen is not None
            await asyncio.sleep(0.001)  # let the others try to interleave
            citizen.strikes += 1
            await uow.citizens.update(citizen)
            await uow.commit()

    await asyncio.gather(*(strike() for _ in range(20)))
    async with uow_factory() as uow:
        citizen = await uow.citizens.get_by_telegram_id(1)
    assert citizen is not None
    assert citizen.strikes == 20


@only_postgresql
async def test_outbox_claim_skips_rows_locked_by_another_worker_when_on_postgresql(
    engine: AsyncEngine,
) -> None:
    uow_factory = factory(engine)
    async with uow_factory() as uow:
        for minute in range(4):
            await uow.outbox.add(b.outbox(minutes=minute, kind=f"m{minute}"))
        await uow.commit()
    now, until = b.at(10), b.at(11)
    async with uow_factory() as first:
        taken = await first.outbox.claim("first", now, until, 2)  # locked, not yet committed
        async with uow_factory() as second:
            others = await second.outbox.claim("second", now, until, 10)
    assert [m.kind for m in taken] == ["m0", "m1"]
    assert [m.kind for m in others] == ["m2", "m3"]


@pytest.mark.postgres
async def test_runs_never_see_each_others_rows_when_in_different_schemas(
    postgres_schema_url: str, postgres_url: str
) -> None:
    from storage.migrate import upgrade
    from tests.integration.conftest import drop_schema, unique_schema, with_schema

    other_schema = unique_schema("o")
    other_url = with_schema(postgres_url, other_schema)
    await upgrade(other_url)
    ours, theirs = create_engine(postgres_schema_url), create_engine(other_url)
    try:
        async with factory(theirs)() as uow:
            await uow.tickets.next_ref_number(date(2030, 1, 1))
            await uow.citizens.add(b.citizen(31337))
            await uow.commit()
        async with factory(ours)() as uow:
            assert await uow.citizens.get_by_telegram_id(31337) is None
            assert await uow.tickets.next_ref_number(date(2030, 1, 1)) == 1
        _, schema = split_schema(postgres_schema_url)
        async with ours.connect() as connection:
            assert await connection.scalar(text("SELECT current_schema()")) == schema
    finally:
        await ours.dispose()
        await theirs.dispose()
        await drop_schema(postgres_url, other_schema)


@pytest.mark.parametrize(
    ("url", "schema", "message"),
    [
        ("sqlite+aiosqlite:///x.db", "s", "only supported on PostgreSQL"),
        ("postgresql+asyncpg://h/db?schema=a", "b", "disagree"),
        ("postgresql+asyncpg://h/db", "Robert'); DROP TABLE", "schema names"),
        ("mysql+aiomysql://h/db", None, "unsupported"),
    ],
)
def test_create_engine_refuses_the_url_when_schema_or_backend_is_wrong(
    url: str, schema: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_engine(url, schema=schema)


def test_split_schema_takes_the_schema_out_of_the_url_when_given_there() -> None:
    url, schema = split_schema("postgresql+asyncpg://u@h:5432/db?schema=t_1&ssl=disable")
    assert schema == "t_1"
    assert url.render_as_string() == "postgresql+asyncpg://u@h:5432/db?ssl=disable"


async def _citizen_with_draft(uow_factory: SqlUnitOfWorkFactory, telegram_id: int) -> int:
    """The id of a new draft of a new citizen."""
    draft = await add_ticket(uow_factory, b.draft(await add_citizen(uow_factory, telegram_id)))
    assert draft.id is not None
    return draft.id


@contextlib.contextmanager
def _statements(engine: AsyncEngine, starting: str = "") -> Iterator[list[str]]:
    """Every statement (``starting`` so, in any case) the engine runs inside the block."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith(starting):
            sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


@contextlib.contextmanager
def _ticket_updates(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SET part of every ``UPDATE tickets`` the engine runs inside the block."""
    with _statements(engine, "UPDATE TICKETS") as sent:
        written: list[str] = []
        yield written
    written.extend(statement.split(" WHERE ", maxsplit=1)[0] for statement in sent)


async def test_a_draft_read_with_its_citizen_is_written_back_by_its_changed_columns_only(
    engine: AsyncEngine,
) -> None:
    uow_factory = factory(engine)
    draft_id = await _citizen_with_draft(uow_factory, 611)
    with _ticket_updates(engine) as written:
        async with uow_factory() as uow:
            _, draft = await uow.citizens.with_draft(611)
            assert draft is not None
            draft.details = "asap tebal dari dapur"
            await uow.tickets.update(draft)
            draft.persons_affected = "3"  # the second write of the unit: from what was written
            await uow.tickets.update(draft)
            await uow.commit()
    first, second = written[:2]
    assert "details" in first
    assert "persons_affected" not in first
    assert "persons_affected" in second
    assert "details" not in second
    assert "citizen_id" not in first + second  # unchanged: not written
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft_id)
    assert stored is not None
    assert (stored.details, stored.persons_affected) == ("asap tebal dari dapur", "3")
    assert stored.version == draft.version + 2


@only_postgresql
async def test_a_draft_write_keeps_a_status_another_writer_changed_meanwhile_on_postgresql(
    engine: AsyncEngine,
) -> None:
    """PostgreSQL reads committed rows: the citizen's step read the draft, the idle-draft
    job abandoned it, then the step wrote its own columns only; the draft stays abandoned."""
    uow_factory = factory(engine)
    draft_id = await _citizen_with_draft(uow_factory, 612)
    async with uow_factory() as citizen_step:
        _, draft = await citizen_step.citizens.with_draft(612)
        assert draft is not None
        async with uow_factory() as idle_job:
            abandoned = await idle_job.tickets.get(draft_id)
            assert abandoned is not None
            abandoned.status = TicketStatus.ABANDONED
            await idle_job.tickets.update(abandoned)
            await idle_job.commit()
        draft.details = "asap tebal dari dapur"
        await citizen_step.tickets.update(draft)
        await citizen_step.commit()
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft_id)
    assert stored is not None
    assert stored.status is TicketStatus.ABANDONED
    assert stored.details == "asap tebal dari dapur"


async def test_a_ticket_read_by_id_is_patched_by_its_changed_columns_only(
    engine: AsyncEngine,
) -> None:
    """The outbox worker's pattern (rows.patch_ticket): read by id, compare-and-set."""
    uow_factory = factory(engine)
    ticket_id = await _citizen_with_draft(uow_factory, 613)
    with _ticket_updates(engine) as written:
        async with uow_factory() as uow:
            ticket = await uow.tickets.get(ticket_id)
            assert ticket is not None
            ticket.operator_card_message_id = 4242
            assert await uow.tickets.update_if_unchanged(ticket)
            await uow.commit()
    assert len(written) == 1
    assert "operator_card_message_id" in written[0]
    assert "status" not in written[0]
    async with uow_factory() as uow:
        stored = await uow.tickets.get(ticket_id)
    assert stored is not None
    assert stored.operator_card_message_id == 4242


async def test_a_racing_insert_is_one_statement_when_it_wins_and_when_it_loses(
    engine: AsyncEngine,
) -> None:
    """A citizen's first message and a new draft may race another writer: the loser is
    refused in the same one statement (no SAVEPOINT round trips on PostgreSQL), and the unit
    of work goes on."""
    uow_factory = factory(engine)
    taken = await add_citizen(uow_factory, 700)
    await add_ticket(uow_factory, b.draft(taken))
    async with uow_factory() as uow:
        await uow.citizens.get(taken)  # the transaction has begun
        with _statements(engine) as sent:
            new = await uow.citizens.add(b.citizen(701))
            with pytest.raises(ValueError, match="unique"):
                await uow.citizens.add(b.citizen(700))
            assert new.id is not None
            await uow.tickets.add(b.draft(new.id))
            with pytest.raises(ValueError, match="unique"):
                await uow.tickets.add(b.draft(taken))  # it has a draft already
        await uow.commit()
    assert [statement.split()[:3] for statement in sent] == [
        ["INSERT", "INTO", "citizens"],
        ["INSERT", "INTO", "citizens"],
        ["INSERT", "INTO", "tickets"],
        ["INSERT", "INTO", "tickets"],
    ]
    async with uow_factory() as uow:
        stored = await uow.citizens.get_by_telegram_id(701)
        assert stored is not None
        assert await uow.tickets.active_draft(stored.id) is not None


async def test_a_reference_is_taken_and_written_with_the_ticket_in_one_statement_on_postgresql(
    engine: AsyncEngine,
) -> None:
    """The day counter's row is locked until the commit and every submission of the city
    waits for it: on PostgreSQL nothing but the commit follows the statement that takes it.
    SQLite (one writer at a time anyway) takes the number, then writes the ticket."""
    uow_factory = factory(engine)
    draft_id = await _citizen_with_draft(uow_factory, 614)
    async with uow_factory() as uow:
        draft = await uow.tickets.get(draft_id)
        assert draft is not None
        draft.status = TicketStatus.SUBMITTED
        with _statements(engine) as sent:
            ref = await uow.tickets.update_with_next_ref(draft, date(2026, 5, 27), "SMG")
        await uow.commit()
    assert ref == "SMG-260527-0001"
    if engine.dialect.name == "postgresql":
        assert len(sent) == 1
        assert sent[0].startswith("WITH")
        assert "INSERT INTO ref_counters" in sent[0]
        assert "UPDATE tickets" in sent[0]
    else:
        assert [statement.split()[:3] for statement in sent] == [
            ["INSERT", "INTO", "ref_counters"],
            ["UPDATE", "tickets", "SET"],
        ]


@pytest.mark.parametrize("last", [8, 9_998, 99_999, 1_234_567])
async def test_a_reference_past_four_digits_is_written_as_format_ref_writes_it(
    engine: AsyncEngine, last: int
) -> None:
    """PostgreSQL pads the number in SQL (``lpad`` to at least four digits, never cutting
    one off): the reference is the one :func:`format_ref` gives, on both databases."""
    uow_factory = factory(engine)
    draft_id = await _citizen_with_draft(uow_factory, 615)
    day = date(2026, 5, 27)
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO ref_counters (day, last_value) VALUES (:day, :last)"),
            {"day": day.isoformat(), "last": last},
        )
    async with uow_factory() as uow:
        draft = await uow.tickets.get(draft_id)
        assert draft is not None
        ref = await uow.tickets.update_with_next_ref(draft, day, "SMG")
        await uow.commit()
    assert ref == format_ref("SMG", day, last + 1)
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft_id)
    assert stored is not None
    assert stored.ref == ref
