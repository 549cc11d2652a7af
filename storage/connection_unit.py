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
from storage.unit import Unit


class ConnectionUnit(Unit):
    """A unit of work's connection, transaction and, when needed, session (PostgreSQL)."""

    __slots__ = ("_connection",)

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        connection: AsyncConnection,
        options: Mapping[str, object],
    ) -> None:
        """Use :meth:`open`."""
        super().__init__(factory, options)
        self._connection: AsyncConnection | None = connection

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

    async def execute(self, statement: ClauseElement, params: Any) -> Any:
        """A plain Core statement on the unit's connection, in its transaction (begun at
        the first one); None when it takes the session's way: an ORM-enabled statement, or
        a session whose transaction failed (SQLAlchemy then says why)."""
        connection = self._open_connection()
        if self._session_failed() or not _is_core(statement):
            return None
        return await connection.execute(cast(Executable, statement), params)

    def _bind(self) -> AsyncConnection:
        return self._open_connection()

    async def _end(self, commit: bool) -> None:
        connection = self._open_connection()
        if not connection.in_transaction():  # the session's own, ended with it
            return
        if commit:
            await connection.commit()
        else:
            await connection.rollback()

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    def _open_connection(self) -> AsyncConnection:
        self._check_open()
        connection = self._connection
        if connection is None:
            raise RuntimeError("the unit of work is not in progress: use `async with`")
        return connection


def _is_core(statement: ClauseElement) -> bool:
    """Whether ``statement`` is plain Core: no ORM entity or attribute in it (SQLAlchemy
    marks a statement built with one for its ORM plugin, as it decides its own execution)."""
    attrs: Mapping[str, object] = getattr(statement, "_propagate_attrs", {})
    return attrs.get("compile_state_plugin") != "orm"
