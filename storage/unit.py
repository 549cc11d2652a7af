"""What a unit of work that makes its session only when an ORM call needs one does on
every database (issue 11): :class:`storage.sqlite_direct.DirectUnit` on SQLite,
:class:`storage.connection_unit.ConnectionUnit` on PostgreSQL.

The unit holds one pooled connection. Its Core statements run on that connection in the
database's own way (:meth:`Unit.execute`); an ORM call makes the session, bound to the
connection: it joins the transaction begun, or begins one itself when there is none. The
unit commits and rolls back through the session first, so its pending objects are flushed,
or dropped, as before, then ends what is left of the connection's own transaction
(:meth:`Unit._end`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.selectable import NamedFromClause


@dataclass(frozen=True)
class Unless:
    """An insert's condition: the row goes in unless its table has a row with the same
    values in the columns ``same`` of which ``where`` holds (a row already waiting that the
    new one would only repeat). ``where`` is a module-level function of the table's alias,
    so that equal conditions are equal (statements are built once per condition)."""

    same: tuple[str, ...]
    where: Callable[[NamedFromClause], ColumnElement[bool]]


def guarded_row(
    table: Table, names: Sequence[str], binds: Sequence[BindParameter[Any]], unless: Unless
) -> Select[Any]:
    """``SELECT`` of one row's bound values (``binds``, in the order of ``names``) ``WHERE
    NOT EXISTS`` a row ``unless`` names: the row an ``INSERT … SELECT`` writes only then
    (the check and the write in one statement)."""
    other = table.alias("waiting")
    bound = dict(zip(names, binds, strict=True))
    same = [other.c[name] == bound[name] for name in unless.same]
    return select(*binds).where(~exists().where(*same, unless.where(other)))


def constraint_error(err: IntegrityError, table: str) -> ValueError:
    """Translate a driver's integrity error into a ValueError without the offending values."""
    detail = str(err.orig).lower()
    if "unique" in detail or "duplicate" in detail:
        kind = "a unique constraint"
    elif "foreign key" in detail:
        kind = "a foreign key (a referenced row does not exist)"
    elif "null" in detail:
        kind = "a NOT NULL constraint"
    else:
        kind = "a constraint"
    return ValueError(f"{table}: the write violates {kind}")


class Unit:
    """A unit of work's connection, transaction and, when an ORM call needs one, session."""

    __slots__ = ("_closed", "_factory", "_options", "_session", "info")

    def __init__(
        self, factory: async_sessionmaker[AsyncSession], options: Mapping[str, object]
    ) -> None:
        self._factory = factory
        self._options = dict(options)
        self._session: AsyncSession | None = None
        self._closed = False
        #: What the unit's repositories keep while it lasts (a session's ``info``).
        self.info: dict[str, Any] = {}

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        raise NotImplementedError

    @property
    def loaded(self) -> AsyncSession | None:
        """The session, if an ORM call made one (None: no ORM object exists in this unit)."""
        return self._session

    def session(self) -> AsyncSession:
        """The unit's session, made at the first call, bound to the unit's connection."""
        session = self._session
        if session is None:
            session = self._factory(
                bind=self._bind(),
                execution_options=self._options,
                close_resets_only=False,  # a repository kept past the block fails loudly
            )
            self._session = session
        return session

    async def execute(self, statement: ClauseElement, params: Any) -> Any:
        """A Core statement on the unit's connection, in its transaction; None when it
        takes the session's way."""
        raise NotImplementedError

    def insert_later(
        self, table: Table, columns: Mapping[str, Any], unless: Unless | None = None
    ) -> bool:
        """Takes an INSERT of ``columns`` into ``table`` whose result nobody reads (only if
        no row ``unless`` names exists then, when given), to send with the unit's next write
        or its commit (never later, never after a statement that could see the row); False
        when this database sends it now (the caller does)."""
        return False

    async def commit(self) -> None:
        """Commit what was begun, through the session if one was made (its pending objects
        are flushed first)."""
        self._check_open()
        await self._send_later()
        if (session := self._session) is not None:
            await session.commit()
        await self._end(commit=True)

    async def rollback(self) -> None:
        """Roll back what was begun, through the session if one was made (its pending
        objects are dropped)."""
        self._check_open()
        if (session := self._session) is not None:
            await session.rollback()
        await self._end(commit=False)

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
                await self._release()

    def _session_failed(self) -> bool:
        """Whether the session's transaction failed: a statement then takes the session's
        way, and SQLAlchemy says why (``PendingRollbackError``) until the rollback."""
        session = self._session
        if session is None:
            return False
        transaction = session.sync_session.get_transaction()
        return transaction is not None and not transaction.is_active

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the unit of work is not in progress: use `async with`")

    # -- the database's own ------------------------------------------------------------------
    async def _send_later(self) -> None:
        """Sends the inserts :meth:`insert_later` took and still holds."""

    def _bind(self) -> AsyncConnection:
        """The connection a session is bound to."""
        raise NotImplementedError

    async def _end(self, commit: bool) -> None:
        """Ends what is left of the connection's transaction (a session that joined it does
        not end it; one that began it ended it)."""
        raise NotImplementedError

    async def _release(self) -> None:
        """Hands the connection back to the pool."""
        raise NotImplementedError
