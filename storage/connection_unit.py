"""A PostgreSQL unit of work on one pooled connection, its session made only when an ORM
call needs one (issue 11).

What :class:`storage.sqlite_direct.DirectUnit` does for SQLite, without going around
SQLAlchemy's execution: the repositories' prebuilt Core statements run on the unit's
:class:`~sqlalchemy.ext.asyncio.AsyncConnection` (``Connection.execute``: the compiled cache,
asyncpg's prepared statements, the engine's events and error handling as before), and no
``AsyncSession`` is made, begun, committed and closed around them: about 200 µs a unit of
work on the development machine (a unit with the intake's joined read and its commit, 1.28
against 1.04–1.08 ms of wall time with the server's round trips).

The connection's transaction begins at its first statement (SQLAlchemy's autobegin; asyncpg
sends ``BEGIN`` with it). An ORM call makes the session, bound to the connection: it joins
the transaction begun, or begins one itself when there is none; the unit commits or rolls
back through it first, so its pending objects are flushed, or dropped, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql import ClauseElement, Executable

from bot.services.ports import StorageBusy


class ConnectionUnit:
    """A unit of work's connection, transaction and, when needed, session (PostgreSQL)."""

    __slots__ = ("_closed", "_connection", "_factory", "_options", "_session", "info")

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        connection: AsyncConnection,
        options: Mapping[str, object],
    ) -> None:
        """Use :meth:`open`."""
        self._factory = factory
        self._connection: AsyncConnection | None = connection
        self._options = dict(options)
        self._session: AsyncSession | None = None
        self._closed = False
        #: What the unit's repositories keep while it lasts (a session's ``info``).
        self.info: dict[str, Any] = {}

    @classmethod
    async def open(
        cls,
        factory: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        options: Mapping[str, object],
    ) -> ConnectionUnit:
        """Takes a connection from the pool now: a pool whose connections all stay in use
        past its timeout is a busy database, and the citizen is asked to send the step
        again (``StorageBusy``), not told of an error."""
        try:
            connection = await engine.connect()
        except PoolTimeout as exc:
            raise StorageBusy(f"every database connection is in use: {exc}") from exc
        return cls(factory, connection, options)

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return self._open_connection().dialect.name

    @property
    def loaded(self) -> AsyncSession | None:
        """The session, if an ORM call made one (None: no ORM object exists in this unit)."""
        return self._session

    def session(self) -> AsyncSession:
        """The unit's session, made at the first call, bound to the unit's connection."""
        session = self._session
        if session is None:
            session = self._factory(
                bind=self._open_connection(),
                execution_options=self._options,
                close_resets_only=False,  # a repository kept past the block fails loudly
            )
            self._session = session
        return session

    async def execute(self, statement: ClauseElement, params: Any) -> Any:
        """A plain Core statement on the unit's connection, in its transaction (begun at
        the first one); None when it takes the session's way: an ORM-enabled statement, or
        a session whose transaction failed (SQLAlchemy then says why)."""
        connection = self._open_connection()
        session = self._session
        if session is not None:
            transaction = session.sync_session.get_transaction()
            if transaction is not None and not transaction.is_active:
                return None
        if not _is_core(statement):
            return None
        return await connection.execute(cast(Executable, statement), params)

    async def commit(self) -> None:
        """Commit what was begun, through the session if one was made (its pending objects
        are flushed first)."""
        connection = self._open_connection()
        if (session := self._session) is not None:
            await session.commit()
        if connection.in_transaction():  # else the session's own, committed with it
            await connection.commit()

    async def rollback(self) -> None:
        """Roll back what was begun, through the session if one was made (its pending
        objects are dropped)."""
        connection = self._open_connection()
        if (session := self._session) is not None:
            await session.rollback()
        if connection.in_transaction():
            await connection.rollback()

    async def close(self) -> None:
        """Roll back whatever was not committed, close the session, hand the connection
        back to the pool. The unit cannot be used again."""
        if self._closed:
            return
        try:
            await self.rollback()
        finally:
            self._closed = True
            session, self._session = self._session, None
            try:
                if session is not None:
                    await session.close()
            finally:
                connection, self._connection = self._connection, None
                if connection is not None:
                    await connection.close()

    def _open_connection(self) -> AsyncConnection:
        connection = self._connection
        if connection is None or self._closed:
            raise RuntimeError("the unit of work is not in progress: use `async with`")
        return connection


def _is_core(statement: ClauseElement) -> bool:
    """Whether ``statement`` is plain Core: no ORM entity or attribute in it (SQLAlchemy
    marks a statement built with one for its ORM plugin, as it decides its own execution)."""
    attrs: Mapping[str, object] = getattr(statement, "_propagate_attrs", {})
    return attrs.get("compile_state_plugin") != "orm"
