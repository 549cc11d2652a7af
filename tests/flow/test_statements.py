"""SQL statements and transactions per intake step (issue 11), counted on the real database
of a running bot, SQLite and PostgreSQL, so the cost per update cannot creep back up
unnoticed.

Only the work of the citizen's own updates is counted: statements run inside PTB's update
tasks (``…:process_concurrent_update``); the outbox worker and the job queue run in tasks of
their own. The ceilings are what the code does today (2026-11-29): lower them when the hot
path gets cheaper, never raise them without saying why in the commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from tests.flow.conftest import Harness
from tests.flow.steps import reacted, submit, tap

UPDATE_TASK = "process_concurrent_update"

#: step -> (statements, transactions) at most, as measured on 2026-11-30 (SQLite, the inline
#: driver). Each step is one unit of work that reads the citizen and their draft in one joined
#: SELECT; a message goes straight to the action of the step its chat last saw (which checks
#: it), without a read-only peek first; a new citizen or draft is one ``INSERT … ON CONFLICT
#: DO NOTHING RETURNING`` (no SAVEPOINT, on either database), and a citizen's change is one UPDATE
#: (no ORM read of the row first). The unit's BEGIN goes to sqlite3 directly, so SQLAlchemy's
#: cursor events (what is counted here) no longer see it: it is in the transactions. Before,
#: BEGIN included: 6/7/3/3/4/5/3/9 with the SAVEPOINT, its RELEASE and the ORM's read;
#: earlier the same day 7/8/4/7/5/9/7/10 statements and two transactions per message (GPS,
#: contact, detail); 2026-11-29, with a PRAGMA in every BEGIN, 8/9/6/10/7/12/10/12.
CEILINGS: dict[str, tuple[int, int]] = {
    "/start": (3, 1),
    "report": (4, 1),
    "group": (2, 1),
    "GPS": (2, 1),
    "location ok": (3, 1),
    "contact": (3, 1),
    "detail": (2, 1),
    "submit": (7, 1),
}
#: The same on PostgreSQL. asyncpg's ``BEGIN`` is not a cursor statement either (it is in the
#: transactions). The submission takes its reference in the statement that writes the
#: ticket, and the rows nobody reads back (timeline events, outbox rows) go with a unit's
#: next write as ``WITH``-clauses (storage.connection_unit): the submission's ticket, event,
#: board, topic and card in one statement, after its joined read (2026-12-01; the day
#: before 7 statements: each of those rows its own). The board's row checks for a waiting
#: one itself (``put_unless_waiting``: ``INSERT … SELECT … WHERE NOT EXISTS``): no read of
#: the outbox for it, on either database (SQLite's submit 8 before, PostgreSQL's 3).
POSTGRESQL_CEILINGS: dict[str, tuple[int, int]] = {
    **CEILINGS,
    "location ok": (2, 1),
    "submit": (2, 1),
}
#: step -> BEGINs asyncpg sends at most (2026-12-01): none where the unit reads and then
#: writes its draft alone (group, GPS, detail: ``commit_with_update``; submit:
#: ``commit_with_next_ref``); one where a write comes first (/start, report, contact: a
#: citizen's or a new draft's row) or the draft's write carries a row (location ok: its
#: timeline event, which must not outlive a write that found no ticket). Before: one for
#: every step but submit.
POSTGRESQL_BEGINS: dict[str, int] = {
    "/start": 1, "report": 1, "group": 0, "GPS": 0, "location ok": 1, "contact": 1,
    "detail": 0, "submit": 0,
}  # fmt: skip


@dataclass
class Counter:
    """Statements and transactions (BEGINs) of update tasks since the last ``reset``."""

    statements: int = 0
    transactions: int = 0
    seen: list[str] = field(default_factory=list)
    orm: list[str] = field(default_factory=list)
    """Statements the ORM compiled (loading ORM objects or flushing them)."""
    sessions: int = 0
    """ORM sessions that took a connection (a unit of work makes its session only when an
    ORM call needs one: storage.sqlite_direct.DirectUnit, storage.connection_unit)."""
    begun: int = 0
    """PostgreSQL: the ``BEGIN`` asyncpg sent (a unit that only reads, or whose one write is
    its last, sends none: storage.connection_unit)."""

    def reset(self) -> None:
        self.statements, self.transactions, self.seen, self.orm = 0, 0, [], []
        self.sessions = self.begun = 0


def _in_update_task() -> bool:
    try:
        task = asyncio.current_task()
    except RuntimeError:  # not in the event loop's thread
        return False
    return task is not None and task.get_name().endswith(UPDATE_TASK)


@contextmanager
def counting() -> Iterator[Counter]:
    """Counts what update tasks run on every engine (SQLAlchemy's sync core runs in the
    task's own context under asyncio, so the task is known at each statement)."""
    counter = Counter()

    def statement(*args: Any) -> None:
        if _in_update_task():
            counter.statements += 1
            counter.seen.append(str(args[2]).split(None, 1)[0])
            compiled = getattr(args[4], "compiled", None)
            state = getattr(compiled, "compile_state", None)
            if type(state).__module__.startswith("sqlalchemy.orm"):
                counter.orm.append(" ".join(str(args[2]).split())[:60])

    def begin(*_: Any) -> None:  # reads and writes alike (a read is a transaction too)
        if _in_update_task():
            counter.transactions += 1

    def session_begun(*_: Any) -> None:
        if _in_update_task():
            counter.sessions += 1

    start = AsyncAdapt_asyncpg_connection._start_transaction

    async def server_begin(adapted: Any) -> None:
        if adapted.isolation_level != "autocommit" and _in_update_task():
            counter.begun += 1
        await start(adapted)

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "begin", begin)
    event.listen(Session, "after_begin", session_begun)
    AsyncAdapt_asyncpg_connection._start_transaction = server_begin  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "begin", begin)
        event.remove(Session, "after_begin", session_begun)
        AsyncAdapt_asyncpg_connection._start_transaction = start  # type: ignore[method-assign]


async def _idle(harness: Harness) -> None:
    """Waits until no update task of the bot is running any more."""

    def busy() -> bool:
        return any(t.get_name().endswith(UPDATE_TASK) and not t.done() for t in asyncio.all_tasks())

    await harness.telegram.wait_for(lambda: not busy())


@pytest.fixture(params=["sqlite", "postgresql"])
def counted(request: pytest.FixtureRequest) -> tuple[str, Harness]:
    """The running bot on each database, and the database's name."""
    fixture = "harness" if request.param == "sqlite" else "pg_harness"
    harness: Harness = request.getfixturevalue(fixture)
    return request.param, harness


async def test_each_intake_step_stays_within_its_statements_and_transactions(
    counted: tuple[str, Harness],
) -> None:
    database, harness = counted
    ceilings = CEILINGS if database == "sqlite" else POSTGRESQL_CEILINGS
    user = harness.telegram.add_user()

    async def answered(sent: Awaitable[object]) -> None:  # a message: the bot answers anew
        await sent
        await user.wait_reply()

    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("/start", lambda: answered(user.send_command("start"))),
        ("report", lambda: tap(user, "report")),  # a tap waits for its answer (an edit)
        ("group", lambda: tap(user, "grp|FIRE")),
        ("GPS", lambda: answered(user.share_location())),
        ("location ok", lambda: tap(user, "locok")),
        ("contact", lambda: answered(user.share_contact(own=True))),
    ]
    measured: dict[str, tuple[int, int]] = {}
    orm: dict[str, list[str]] = {}
    sessions: dict[str, int] = {}
    begun: dict[str, int] = {}
    with counting() as counter:
        for name, act in steps:
            await _idle(harness)
            counter.reset()
            await act()
            await _idle(harness)
            measured[name] = (counter.statements, counter.transactions)
            orm[name] = counter.orm
            sessions[name] = counter.sessions
            begun[name] = counter.begun
        await _idle(harness)
        counter.reset()
        assert await reacted(user, await user.send_text("asap tebal dari dapur"))
        await _idle(harness)
        measured["detail"] = (counter.statements, counter.transactions)
        orm["detail"] = counter.orm
        sessions["detail"] = counter.sessions
        begun["detail"] = counter.begun
        counter.reset()
        await submit(user)
        await _idle(harness)
        measured["submit"] = (counter.statements, counter.transactions)
        orm["submit"] = counter.orm
        sessions["submit"] = counter.sessions
        begun["submit"] = counter.begun
    # Prebuilt Core statements only: the ORM's loading and flushing cost more than SQLite.
    assert not any(orm.values()), orm
    # No session is made around the steps' units of work either (storage.sqlite_direct,
    # storage.connection_unit: a unit makes one only for an ORM call).
    assert not any(sessions.values()), sessions
    over = {
        step: (got, ceilings[step])
        for step, got in measured.items()
        if got[0] > ceilings[step][0] or got[1] > ceilings[step][1]
    }
    assert not over, f"steps over their ceilings (measured, ceiling): {over}; all: {measured}"
    assert all(statements > 0 for statements, _ in measured.values()), measured  # counted
    if database == "postgresql":
        # The submission reads, then writes its ticket with its reference, event and outbox
        # rows in one statement as its last: no BEGIN, so the day counter's row is held for
        # no round trip. A step that reads and then writes only its draft
        # (UnitOfWork.commit_with_update) sends that write alone too; a step with another
        # write first, or rows to carry, begins its one transaction.
        over_begun = {step: n for step, n in begun.items() if n > POSTGRESQL_BEGINS[step]}
        assert not over_begun, f"BEGINs over their ceilings: {over_begun}; all: {begun}"
    print(database, "statements, transactions per step:", measured, "BEGIN sent:", begun)
