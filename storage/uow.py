"""The SQL unit of work: one session, one transaction, every repository.

::

    async with uow_factory() as uow:
        draft = await uow.tickets.active_draft(citizen.id)
        ...
        await uow.commit()      # nothing is written unless the unit of work commits

Leaving the block without ``commit()`` (or by an exception) rolls everything back. After a
commit the same unit of work may go on; the next statement starts a new transaction.

A unit of work holds one pooled connection and makes a SQLAlchemy session, bound to that
connection, only when an ORM call needs one; the hot path's Core statements need none. On the
inline SQLite dialect it is a :class:`storage.sqlite_direct.DirectUnit` (statements and the
transaction straight on ``sqlite3``), on PostgreSQL a
:class:`storage.connection_unit.ConnectionUnit` (statements on SQLAlchemy's connection). The
``thread`` SQLite driver and an engine with ``echo`` keep a session throughout.

On SQLite a unit of work begins with ``BEGIN IMMEDIATE``: it takes the database's single
write lock at its first statement and holds it to the end, so read-modify-write sequences
cannot fail half-way on a lock upgrade. Writers of one process queue on an asyncio lock
first (in arrival order) instead of sleeping in SQLite's busy handler; a read-only unit of
work (``read_only=True``) begins ``DEFERRED`` and never waits for writers (WAL). Units of
work of an ``urgent=True`` factory (the outbox worker's) go before the others; units of
work of a ``background=True`` factory (the outbox's broadcast claims and stores) take their
turn only when no other writer waits, so an intake's write never queues behind a backlog of
them. Keep units
of work short and never wait on the network inside one; never open a second writing unit of
work inside another in the same task (it would wait for itself: a RuntimeError says so).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from datetime import date
from types import TracebackType
from typing import ClassVar, Self

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain.model import Ticket
from bot.services.ports import (
    AdvisoryRepository,
    AgencyRequestRepository,
    AssignmentRepository,
    AuditRepository,
    ChatAliasRepository,
    CitizenRepository,
    EventRepository,
    MessageRepository,
    OperatorRepository,
    OutboxRepository,
    StorageBusy,
    TicketRepository,
)
from storage import sqlite_direct
from storage.connection_unit import ConnectionUnit
from storage.db import SQLITE_BEGIN_OPTION, SQLITE_BUSY_OPTION, sqlite_busy_timeout_ms
from storage.repositories import (
    SqlAdvisoryRepository,
    SqlAgencyRequestRepository,
    SqlAssignmentRepository,
    SqlAuditRepository,
    SqlChatAliasRepository,
    SqlCitizenRepository,
    SqlEventRepository,
    SqlMessageRepository,
    SqlOperatorRepository,
    SqlOutboxRepository,
    SqlTicketRepository,
)
from storage.unit import Unit


class SqlUnitOfWork:
    """One transaction over all repositories. Leaving without commit rolls back."""

    citizens: CitizenRepository
    tickets: TicketRepository
    events: EventRepository
    messages: MessageRepository
    outbox: OutboxRepository
    chat_aliases: ChatAliasRepository
    operators: OperatorRepository
    assignments: AssignmentRepository
    audit: AuditRepository
    advisories: AdvisoryRepository
    agency_requests: AgencyRequestRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        writers: WriterQueue | None = None,
        read_only: bool = False,
        write_wait: float | None = None,
        background: bool = False,
        urgent: bool = False,
        checkout_first: bool = False,
    ) -> None:
        self._session_factory = session_factory
        self._checkout_first = checkout_first
        self._session: AsyncSession | None = None
        self._unit: Unit | None = None
        self._writers = writers
        self._read_only = read_only
        self._write_wait = write_wait
        self._background = background
        self._urgent = urgent

    async def __aenter__(self) -> Self:
        """Begin the transaction (lazily, at the first statement). On PostgreSQL the pool's
        connection is taken here (the driver still sends ``BEGIN`` with the first statement):
        a pool whose connections all stay in use past its timeout gives ``StorageBusy``.

        With ``write_wait``, the turn behind this process's writers and the other process's
        write lock are waited for at most that long in all: then ``StorageBusy``.
        """
        if self._session is not None or self._unit is not None:
            raise RuntimeError("this unit of work is already in progress")
        loop = asyncio.get_running_loop()
        deadline = None if self._write_wait is None else loop.time() + self._write_wait
        if self._writers is not None:
            patience = None if deadline is None else deadline - loop.time()
            await self._writers.acquire(patience, background=self._background, urgent=self._urgent)
        mode = "DEFERRED" if self._read_only else "IMMEDIATE"
        options: dict[str, object] = {SQLITE_BEGIN_OPTION: mode}
        busy_ms: int | None = None
        if deadline is not None and self._writers is not None:
            busy_ms = options[SQLITE_BUSY_OPTION] = max(1, int((deadline - loop.time()) * 1000))
        session: AsyncSession | Unit
        try:
            engine = self._session_factory.kw.get("bind")
            direct = _direct_executor(engine)  # the inline SQLite dialect's, else None
            if direct is not None and isinstance(engine, AsyncEngine):
                # the session is made only if an ORM call needs it
                session = self._unit = await sqlite_direct.DirectUnit.open(
                    self._session_factory, engine, direct, mode=mode,
                    patience_ms=(
                        sqlite_busy_timeout_ms(engine.sync_engine) if busy_ms is None else busy_ms
                    ),
                    options=options,
                )  # fmt: skip
            elif self._checkout_first and isinstance(engine, AsyncEngine):  # PostgreSQL
                session = self._unit = await ConnectionUnit.open(
                    self._session_factory, engine, options
                )
            else:  # the thread driver, an engine with echo
                session = self._session_factory(
                    execution_options=options,
                    close_resets_only=False,  # a repository kept past the block fails loudly
                )
                self._session = session
        except BaseException:
            if self._writers is not None:  # never keep the turn of a writer that did not start
                self._writers.release()
            raise
        self.citizens = SqlCitizenRepository(session)
        self.tickets = SqlTicketRepository(session)
        self.events = SqlEventRepository(session)
        self.messages = SqlMessageRepository(session)
        self.outbox = SqlOutboxRepository(session)
        self.chat_aliases = SqlChatAliasRepository(session)
        self.operators = SqlOperatorRepository(session)
        self.assignments = SqlAssignmentRepository(session)
        self.audit = SqlAuditRepository(session)
        self.advisories = SqlAdvisoryRepository(session)
        self.agency_requests = SqlAgencyRequestRepository(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed and release the connection."""
        session, self._session = self._session, None
        unit, self._unit = self._unit, None
        if session is None and unit is None:
            return
        try:
            if unit is not None:
                await unit.close()  # rolls back what was not committed
            elif session is not None and session.in_transaction():  # else nothing to undo
                await session.rollback()
        finally:
            try:
                if session is not None:
                    await session.close()
            finally:
                if self._writers is not None:
                    self._writers.release()

    async def commit(self) -> None:
        """Commit the transaction."""
        await self._active().commit()

    async def commit_with_next_ref(self, ticket: Ticket, day: date, prefix: str) -> str:
        """The ticket's write with the day's next reference, then the commit (see the port):
        on PostgreSQL the write goes as the unit's last (``ConnectionUnit.last_write``)."""
        self._last_write(carry=True)
        ref = await self.tickets.update_with_next_ref(ticket, day, prefix)
        await self.commit()
        return ref

    async def commit_with_update(self, ticket: Ticket) -> None:
        """The ticket's write, then the commit (see the port): on PostgreSQL the write goes
        as the unit's last (``ConnectionUnit.last_write``), alone only with no rows held
        (the ticket may be gone: ``update`` then fails after its statement ran)."""
        self._last_write(carry=False)
        await self.tickets.update(ticket)
        await self.commit()

    def _last_write(self, *, carry: bool) -> None:
        """Tells a PostgreSQL unit that its next statement is its last write."""
        if isinstance(active := self._active(), ConnectionUnit):
            active.last_write(carry=carry)

    async def rollback(self) -> None:
        """Roll the transaction back."""
        await self._active().rollback()

    def _active(self) -> AsyncSession | Unit:
        active = self._unit or self._session
        if active is None:
            raise RuntimeError("the unit of work is not in progress: use `async with`")
        return active


def _direct_executor(engine: object) -> sqlite_direct.DirectExecutor | None:
    """The engine's direct executor when units of work take :class:`DirectUnit`'s way (the
    inline SQLite dialect, no ``echo``), else None."""
    if not isinstance(engine, AsyncEngine) or engine.sync_engine.echo:
        return None  # an engine with echo shows every statement, BEGIN and COMMIT included
    return sqlite_direct.executor_for_engine(engine)


class WriterQueue:
    """Lets one SQLite writer of this process in at a time, first come first served within
    three ranks: urgent writers (the outbox's deliveries: operator cards must not queue
    behind citizens' steps) before the others, background writers (a broadcast's claims)
    only while no other writer waits."""

    def __init__(self) -> None:
        self._busy = False
        self._owner: asyncio.Task[object] | None = None
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (
            deque(),  # urgent writers
            deque(),  # writers
            deque(),  # background writers
        )

    async def acquire(
        self, patience: float | None = None, *, background: bool = False, urgent: bool = False
    ) -> None:
        """Waits for the turn of the current task (at most ``patience`` seconds, else
        ``StorageBusy``: the writers ahead are stuck behind another process's lock)."""
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            raise RuntimeError("a writing unit of work was opened inside another one")
        if self._busy:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting[0 if urgent else 2 if background else 1].append(turn)
            try:
                if patience is None:
                    await turn
                else:  # on time-out wait_for cancels the turn: the hand-over skips it
                    await asyncio.wait_for(turn, max(patience, 0.0))
            except TimeoutError:
                if turn.done() and not turn.cancelled():  # handed the turn at the deadline
                    self._hand_over()
                raise StorageBusy("the writers ahead did not finish in time") from None
            except BaseException:
                if turn.done() and not turn.cancelled():  # handed the turn, then cancelled
                    self._hand_over()
                raise
        self._busy = True
        self._owner = task

    def release(self) -> None:
        """Hands the turn to the next writer: an urgent one first, a background one only when
        none other waits."""
        self._owner = None
        self._hand_over()

    def _hand_over(self) -> None:
        for waiting in self._waiting:
            while waiting:
                turn = waiting.popleft()
                if not turn.done():  # skipped: a writer cancelled while it waited
                    turn.set_result(None)  # still busy: the turn passes directly
                    return
        self._busy = False


class SqlUnitOfWorkFactory:
    """Makes a fresh :class:`SqlUnitOfWork` per use (a ``UnitOfWorkFactory``).

    ``read_only=True`` makes units of work for reading: on SQLite they begin ``DEFERRED``
    and do not queue behind writers. ``background=True`` makes writers that give way to
    every other writer waiting, ``urgent=True`` writers that go before the others.
    Factories of one engine share its writer queue.
    """

    _queues: ClassVar[weakref.WeakKeyDictionary[object, WriterQueue]] = weakref.WeakKeyDictionary()

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        read_only: bool = False,
        write_wait: float | None = None,
        background: bool = False,
        urgent: bool = False,
    ) -> None:
        """``write_wait``: seconds a writer waits in all for its turn and SQLite's write
        lock before ``StorageBusy`` (None: the engine's busy timeout after the queue)."""
        self._session_factory = session_factory
        self._read_only = read_only
        self._write_wait = write_wait
        self._background = background
        self._urgent = urgent
        engine = session_factory.kw.get("bind")
        sqlite = engine is not None and engine.dialect.name == "sqlite"
        self._writers = (
            self._queues.setdefault(engine, WriterQueue()) if sqlite and not read_only else None
        )
        self._checkout_first = engine is not None and not sqlite

    def __call__(self) -> SqlUnitOfWork:
        """Return a new unit of work; enter it with ``async with``."""
        return SqlUnitOfWork(
            self._session_factory, writers=self._writers, read_only=self._read_only,
            write_wait=self._write_wait,
            background=self._background, urgent=self._urgent,
            checkout_first=self._checkout_first,
        )  # fmt: skip
