"""A PostgreSQL unit of work on one pooled connection, its session made only when an ORM
call needs one (issue 11).

What :class:`storage.sqlite_direct.DirectUnit` does for SQLite, without going around
SQLAlchemy's execution: the repositories' prebuilt Core statements run on the unit's
:class:`~sqlalchemy.ext.asyncio.AsyncConnection` (``Connection.execute``: the compiled cache,
asyncpg's prepared statements, the engine's events and error handling as before), and no
``AsyncSession`` is made, begun, committed and closed around them: about 200 µs a unit of
work on the development machine (a unit with the intake's joined read and its commit, 1.28
against 1.04–1.08 ms of wall time with the server's round trips).

No ``BEGIN`` is sent until a statement needs the unit's transaction: SQLAlchemy's asyncpg
adapter is told to send none (its ``autocommit`` flag), and a listener on the engine, which
sees every statement on the connection, turns that off before any statement but two kinds,
which then go in no transaction of their own: a read marked :data:`READ_ALONE` (the
intake's joined read, an outbox kind's owed rows: plain reads, which under READ COMMITTED
see what they would see in a transaction), and the unit's last write when nothing was begun
before it (:meth:`last_write`: the submission's ``commit_with_next_ref``, with the rows it
carries; an intake step's ``commit_with_update``, only with none held; or the held inserts
at a commit), atomic on its own. Every other statement (a write, a read that locks rows,
anything from the session) begins the transaction as before, and the unit commits or rolls
back through SQLAlchemy as before. So a submission is its joined read and one statement,
with no ``BEGIN`` or ``COMMIT`` round trip, and the day counter's row, which every report of
the city waits for, is held only while the server runs that statement. The flag is set back
when the connection returns to the pool. An ORM call makes the session, bound to the
connection: it joins the transaction begun, or begins one itself when there is none; the
unit commits or rolls back through it first, so its pending objects are flushed, or
dropped, as before.

Inserts nobody reads back (a ticket's timeline event, its outbox rows: :meth:`insert_later`)
are held and sent with the unit's next write, as ``WITH``-clauses of that statement
(PostgreSQL runs a data-modifying ``WITH`` as part of the statement), or with its commit:
each round trip to the server waits for the event loop's turn, which under a surge is
many other updates' work, and a submission's ticket, timeline event and outbox rows (board,
topic, card) then go in one statement instead of one each. The held inserts go first, in a
statement of their own, before any other statement on the unit's connection that could
read their tables (a listener on the engine sends them, before the statements of the unit's
session too), so nothing the unit reads misses a row it wrote; a read of other tables lets
them wait. Rows of one table go in one INSERT, in the order they were held (their ids keep
that order). A row the database refuses (a ticket that does not exist) fails the statement
that carries it, or the commit, with ``ValueError`` as the repositories' own writes do.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, event, insert, select, union_all
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.sql.util import find_tables

from bot.services.ports import StorageBusy
from storage.unit import Unit, Unless, constraint_error, guarded_row


class ConnectionUnit(Unit):
    """A unit of work's connection, transaction and, when needed, session (PostgreSQL)."""

    __slots__ = ("_connection", "_last_write", "_later")

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        connection: AsyncConnection,
        options: Mapping[str, object],
    ) -> None:
        """Use :meth:`open`."""
        super().__init__(factory, options)
        self._connection: AsyncConnection | None = connection
        sync = cast(Connection, connection.sync_connection)
        self._later = _Held(_driver_of(sync))
        self._last_write: bool | None = None  # None: not the last; True: it may carry rows
        _HELD[sync] = self._later

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
        _send_later_first(engine.sync_engine)  # before the connection is made: it sees it
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
        last, self._last_write = self._last_write, None  # for this statement only
        if self._session_failed() or not _is_core(statement):
            return None
        later = self._later
        if last is False and later:
            last = None  # it may not carry rows: it goes in a transaction, with them
        if later and not _reads_any(statement, later):
            if isinstance(statement, UpdateBase) and isinstance(params, dict):
                statement, params = _with_later(later, statement, params)
                later.clear()
            elif isinstance(statement, Select):
                later.passing = True  # a read of other tables: the rows wait for a write
        # Otherwise the held inserts go first, in a statement of their own (_send_first).
        driver = later.driver
        if driver is not None and driver.autocommit:  # nothing begun yet
            marked = getattr(statement, "_execution_options", {}).get(READ_ALONE, False)
            later.alone = marked or (
                last is not None and isinstance(statement, UpdateBase) and not later
            )
        try:
            return await connection.execute(cast(Executable, statement), params)
        finally:
            later.passing = later.alone = False

    def last_write(self, *, carry: bool = True) -> None:
        """The unit's next statement is a write, its last before the commit: with nothing
        begun (reads only so far, see the module), it goes without a transaction, atomic
        on its own (with the inserts it carries), and the commit sends nothing more. With
        ``carry`` False it goes so only when no insert is held: a write that may match no
        row (and so fail the unit after it ran) must not leave rows it carried; with rows
        held it begins the transaction as any write does."""
        self._open_connection()
        self._last_write = carry

    def insert_later(
        self, table: Table, columns: Mapping[str, Any], unless: Unless | None = None
    ) -> bool:
        """Holds the insert until the unit's next write or its commit (see the module). A
        row with a condition (``unless``) that repeats one held already is dropped: the
        held one's clause cannot see it, nor it the held one (one statement's snapshot),
        and either goes in exactly when the other would."""
        self._open_connection()
        names = tuple(columns)
        if not _names_defaults(table, names) or any(
            held is table and held_names != names for held, held_names, _, _ in self._later
        ):
            return False  # one INSERT a table, of every column with a default: this goes now
        row = tuple(columns.values())
        if unless is not None and any(
            held is table and held_unless == unless and _same(names, held_row, row, unless)
            for held, _, held_row, held_unless in self._later
        ):
            return True
        self._later.append((table, names, row, unless))
        return True

    async def _send_later(self) -> None:
        later = self._later
        if later and not self._session_failed():
            statement, params, tables = later.take()
            driver = later.driver
            later.alone = driver is not None and driver.autocommit  # one statement: atomic
            try:
                await self._open_connection().execute(statement, params)
            except IntegrityError as err:
                raise constraint_error(err, tables) from None
            finally:
                later.alone = False

    def _bind(self) -> AsyncConnection:
        return self._open_connection()

    async def _end(self, commit: bool) -> None:
        connection = self._open_connection()
        self._later.clear()  # a rollback drops them (a commit sent them: Unit.commit)
        if not connection.in_transaction():  # the session's own, ended with it
            return
        if commit:
            await connection.commit()
        else:
            await connection.rollback()

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        self._later.clear()
        if (driver := self._later.driver) is not None:
            driver.autocommit = False  # as the pool's other users expect it
        if connection is not None:
            _HELD.pop(cast(Connection, connection.sync_connection), None)
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


_Later = tuple[Table, tuple[str, ...], tuple[Any, ...], Unless | None]
"""A held insert: table, column names, values, and the condition it goes in on, if any."""


class _Held(list[_Later]):
    """The inserts a unit holds, in order, and what the next statement on its connection
    may do: ``passing``, it reads none of their tables and they wait for the next write;
    ``alone``, it goes without a transaction (nothing begun yet: see the module).
    ``driver``: SQLAlchemy's adapted asyncpg connection (None for another driver)."""

    __slots__ = ("alone", "driver", "passing")

    def __init__(self, driver: AsyncAdapt_asyncpg_connection | None) -> None:
        super().__init__()
        self.passing = self.alone = False
        self.driver = driver

    def take(self) -> tuple[UpdateBase, dict[str, Any], str]:
        """The held inserts as one statement (:func:`_with_later`), its parameters and
        their tables (for an error's message); none is held after."""
        statement, params = _with_later(self)
        tables = ", ".join(dict.fromkeys(table.name for table, _, _, _ in self))
        self.clear()
        return statement, params, tables


READ_ALONE = "siaga112_read_alone"
"""The execution option that marks a plain read (no row lock) that a unit of work with
nothing begun may send without ``BEGIN``: under READ COMMITTED it sees what it would see in
the unit's transaction."""


def _driver_of(connection: Connection) -> AsyncAdapt_asyncpg_connection | None:
    """The unit's asyncpg connection, as SQLAlchemy adapts it, set to send no ``BEGIN``
    until :func:`_send_first` says so (None for another driver: every statement then goes
    in the unit's transaction, as SQLAlchemy begins it)."""
    driver = connection.connection.dbapi_connection  # just checked out: no IO
    if not isinstance(driver, AsyncAdapt_asyncpg_connection):
        return None
    driver.autocommit = True
    return driver


_HELD: weakref.WeakKeyDictionary[Connection, _Held] = weakref.WeakKeyDictionary()
"""The inserts held by the unit of work on each connection."""

_LISTENING: weakref.WeakSet[Engine] = weakref.WeakSet()


def _send_later_first(engine: Engine) -> None:
    """Makes every statement on ``engine``'s connections send its unit's held inserts first
    (once per engine): a statement of the unit's session, or one that could read their
    table, must see the rows."""
    if engine not in _LISTENING:
        event.listen(engine, "before_execute", _send_first)
        _LISTENING.add(engine)


def _send_first(connection: Connection, *_: Any) -> None:
    """Before every statement on a unit's connection: its held inserts first (unless the
    statement reads none of their tables), and a transaction begun with the statement
    unless it may go alone (a marked read, or the unit's last write, with nothing begun)."""
    later = _HELD.get(connection)
    if later is None:
        return
    if later and not later.passing:
        statement, params, tables = later.take()  # first: the next before_execute sees none
        later.alone = False  # the rows, then the statement, in one transaction
        try:
            connection.execute(statement, params)
        except IntegrityError as err:
            raise constraint_error(err, tables) from None
    later.passing = False
    driver = later.driver
    if driver is not None and driver.autocommit and not later.alone:
        driver.autocommit = False  # SQLAlchemy's adapter sends BEGIN with this statement
    later.alone = False


_MOST_KEPT = 512
"""Statements built or looked into once and kept (the prebuilt ones: a few dozen)."""


def _reads_any(statement: ClauseElement, later: list[_Later]) -> bool:
    """Whether ``statement`` reads or writes a table of the held inserts: they go first,
    in a statement of their own. Else a write takes them as ``WITH``-clauses, and a read
    runs without them (the rows of a statement's ``WITH``-clauses are not visible to the
    statement itself, and the order of rows inserted into one table by two clauses of one
    statement is the server's)."""
    tables = _tables_of(statement)
    return any(table.name in tables for table, _, _, _ in later)


@functools.lru_cache(maxsize=_MOST_KEPT)
def _tables_of(statement: ClauseElement) -> frozenset[str]:
    """The names of the tables ``statement`` reads or writes."""
    found = find_tables(
        statement, check_columns=True, include_aliases=True, include_joins=True,
        include_selects=True, include_crud=True,
    )  # fmt: skip
    return frozenset(getattr(t, "name", str(t)) for t in found)


def _with_later(
    later: list[_Later], statement: UpdateBase | None = None, params: dict[str, Any] | None = None
) -> tuple[UpdateBase, dict[str, Any]]:
    """``statement`` (or the held inserts' last table's) with the held inserts before it as
    ``WITH``-clauses, and the parameters of all. The rows of one table go in one INSERT, in
    the order they were held (rows inserted by two clauses of one statement take their ids
    in an order of the server's: a ticket's card must keep an id below its pin's)."""
    groups: dict[Table, tuple[tuple[str, ...], list[tuple[Any, ...]], list[Unless | None]]] = {}
    for table, names, row, unless in later:
        group = groups.setdefault(table, (names, [], []))
        if group[0] != names:  # ConnectionUnit.insert_later holds no such row
            raise ValueError(f"held inserts into {table.name} name different columns")
        group[1].append(row)
        group[2].append(unless)
    shape = tuple((table, names, tuple(unlesses)) for table, (names, _, unlesses) in groups.items())
    values = dict(params or {})
    for slot, (names, rows, _) in enumerate(groups.values()):
        for index, row in enumerate(rows):
            values.update(zip(_slot_names(names, slot, index), row, strict=True))
    return _combined(statement, shape), values


@functools.lru_cache(maxsize=_MOST_KEPT)
def _combined(
    statement: UpdateBase | None,
    shape: tuple[tuple[Table, tuple[str, ...], tuple[Unless | None, ...]], ...],
) -> UpdateBase:
    """``statement`` with the inserts of ``shape`` (table, columns, each row's condition)
    as ``WITH``-clauses; without a statement, the last table's insert with the others'.
    Built once per shape: building a statement and its cache key costs more than running
    it."""
    inserts = [
        _slot_insert(table, names, slot, rows) for slot, (table, names, rows) in enumerate(shape)
    ]
    main = statement if statement is not None else inserts.pop()
    clauses = [held.cte(f"later_{slot}") for slot, held in enumerate(inserts)]
    return main.add_cte(*clauses) if clauses else main


@functools.lru_cache(maxsize=_MOST_KEPT)
def _slot_insert(
    table: Table, names: tuple[str, ...], slot: int, rows: tuple[Unless | None, ...]
) -> Insert:
    """The INSERT of held rows of one table (``rows``: each one's condition) in the place
    ``slot`` of a statement, each value bound under a name of its own (:func:`_slot_names`),
    nothing returned. Several rows, or a row with a condition: ``INSERT … SELECT … UNION
    ALL SELECT …`` (a row's condition its ``SELECT``'s ``WHERE``: :func:`guarded_row`),
    which the server inserts in that order, and which SQLAlchemy compiles once (it compiles
    a multi-row ``VALUES`` anew for every execution: such a statement has no cache key)."""
    binds = [
        [
            bindparam(b, type_=table.c[n].type)
            for n, b in zip(names, _slot_names(names, slot, index), strict=True)
        ]
        for index in range(len(rows))
    ]
    if rows == (None,):
        return insert(table).values(dict(zip((table.c[n] for n in names), binds[0], strict=True)))
    selects = [
        select(*row) if unless is None else guarded_row(table, names, row, unless)
        for row, unless in zip(binds, rows, strict=True)
    ]
    each = selects[0] if len(selects) == 1 else union_all(*selects)
    columns = [table.c[n] for n in names]  # every default in them: _names_defaults
    return insert(table).from_select(columns, each, include_defaults=False)


@functools.cache
def _names_defaults(table: Table, names: tuple[str, ...]) -> bool:
    """Whether ``names`` include every column of ``table`` with a default of SQLAlchemy's
    (a held insert of several rows is an ``INSERT … SELECT``, which leaves them out)."""
    return all(c.name in names for c in table.c if c.default is not None)


def _same(
    names: tuple[str, ...], held: tuple[Any, ...], row: tuple[Any, ...], unless: Unless
) -> bool:
    """Whether two rows of ``names`` agree in the columns ``unless`` compares."""
    index = {name: n for n, name in enumerate(names)}
    return all(held[index[name]] == row[index[name]] for name in unless.same)


def _slot_names(names: tuple[str, ...], slot: int, index: int) -> list[str]:
    return [f"l{slot}_{index}_{name}" for name in names]
