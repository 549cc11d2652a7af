"""The SQL unit of work: one session, one transaction, every repository.

::

    async with uow_factory() as uow:
        draft = await uow.tickets.active_draft(citizen.id)
        ...
        await uow.commit()      # nothing is written unless the unit of work commits

Leaving the block without ``commit()`` (or by an exception) rolls everything back. After a
commit the same unit of work may go on; the next statement starts a new transaction.

On SQLite a unit of work begins with ``BEGIN IMMEDIATE``: it takes the database's single
write lock at its first statement and holds it to the end, so read-modify-write sequences
cannot fail half-way on a lock upgrade. Keep units of work short and never wait on the
network inside one (another unit of work waits up to the busy timeout, then fails).
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.ports import (
    CitizenRepository,
    EventRepository,
    MessageRepository,
    OutboxRepository,
    TicketRepository,
)
from storage.db import SQLITE_BEGIN_OPTION
from storage.repositories import (
    SqlCitizenRepository,
    SqlEventRepository,
    SqlMessageRepository,
    SqlOutboxRepository,
    SqlTicketRepository,
)


class SqlUnitOfWork:
    """One transaction over all repositories. Leaving without commit rolls back."""

    citizens: CitizenRepository
    tickets: TicketRepository
    events: EventRepository
    messages: MessageRepository
    outbox: OutboxRepository

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        """Begin the transaction (lazily, at the first statement)."""
        if self._session is not None:
            raise RuntimeError("this unit of work is already in progress")
        session = self._session_factory(
            execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"},
            close_resets_only=False,  # a repository kept past the block fails loudly
        )
        self._session = session
        self.citizens = SqlCitizenRepository(session)
        self.tickets = SqlTicketRepository(session)
        self.events = SqlEventRepository(session)
        self.messages = SqlMessageRepository(session)
        self.outbox = SqlOutboxRepository(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed and release the connection."""
        session, self._session = self._session, None
        if session is None:
            return
        try:
            await session.rollback()
        finally:
            await session.close()

    async def commit(self) -> None:
        """Commit the transaction."""
        await self._active().commit()

    async def rollback(self) -> None:
        """Roll the transaction back."""
        await self._active().rollback()

    def _active(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is not in progress: use `async with`")
        return self._session


class SqlUnitOfWorkFactory:
    """Makes a fresh :class:`SqlUnitOfWork` per use (a ``UnitOfWorkFactory``)."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    def __call__(self) -> SqlUnitOfWork:
        """Return a new unit of work; enter it with ``async with``."""
        return SqlUnitOfWork(self._session_factory)
