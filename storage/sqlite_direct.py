"""The hot path's prebuilt Core statements sent straight to ``sqlite3`` (issue 11).

On the inline SQLite dialect (:mod:`storage.sqlite_inline`) a statement's SQLite work is
about 10 µs; through ``AsyncSession.execute`` the intake's joined read took 95 µs on the
development machine, straight to ``sqlite3`` 17 µs (the session's execution, the greenlet,
the compiled cache's key, the execution context, the cursor result and its metadata), and
SQLAlchemy's execution was about a quarter of the bot's CPU samples at 50 citizens flat out
(py-spy). So the repositories' prebuilt Core
statements (:meth:`storage.repositories._SqlRepository._execute_core`) take a shorter way
here:

* each statement is compiled once by SQLAlchemy itself, for the engine's dialect, into its
  SQL text, the order of its ``?`` parameters with their defaults and bind processors (the
  column types' conversions: times in UTC, JSON…), and its result columns' processors;
* each execution builds the parameter tuple, runs the SQL on the ``sqlite3`` connection of
  the unit of work's transaction, and converts the rows, which keep what the repositories
  read of SQLAlchemy's rows (by position, by column name, ``_mapping``);
* the unit of work itself (:class:`DirectUnit`) holds a pooled connection, begins, commits
  and rolls back on ``sqlite3``, and makes a SQLAlchemy session, bound to that connection
  and its transaction, only when an ORM call needs one; SQLAlchemy's ``begin``,
  ``commit``, ``rollback``, ``before_cursor_execute`` and ``after_cursor_execute`` events
  still see every transaction and statement (the statement-count test counts them), errors
  come as SQLAlchemy's (``IntegrityError``…).

What is not a plain statement takes SQLAlchemy's way, through the unit's session: ORM
statements, parameters computed in Python (column defaults), expanding ``IN`` lists,
``RETURNING`` over many parameter sets, and a transaction SQLAlchemy has marked failed. An
engine with ``echo`` and the ``thread`` driver keep SQLAlchemy's session throughout.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final

from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql import ClauseElement
from sqlalchemy.util.concurrency import greenlet_spawn

from storage import sqlite_inline
from storage.unit import Unit

#: Prepared statements kept at most (the hot path has a few dozen; a statement built anew per
#: call would only take the place of older ones).
MAX_PREPARED: Final = 512

_REQUIRED: Final = object()

#: A transaction's ``sqlite3`` connection and SQLAlchemy's connection.
_Connection = tuple[sqlite3.Connection, Connection]


class DirectRow(tuple[Any, ...]):
    """A result row: a tuple, with each column also by name (``row.id``) and in
    ``row._mapping``, as the repositories read SQLAlchemy's rows."""

    __slots__ = ()
    _keys: ClassVar[tuple[str, ...]] = ()
    _index: ClassVar[dict[str, int]] = {}

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._keys, self, strict=True))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._index[name]]
        except KeyError:
            raise AttributeError(name) from None


class DirectResult:
    """The rows of one statement, fetched at once (the part of SQLAlchemy's ``Result`` the
    repositories use)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[DirectRow], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[DirectRow]:
        return iter(self._rows)

    def all(self) -> list[DirectRow]:
        return list(self._rows)

    def first(self) -> DirectRow | None:
        return self._rows[0] if self._rows else None

    def one_or_none(self) -> DirectRow | None:
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def one(self) -> DirectRow:
        row = self.one_or_none()
        if row is None:
            raise NoResultFound("No row was found when one was required")
        return row

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]


class Prepared:
    """One statement compiled for the dialect: SQL, parameters, result conversion."""

    __slots__ = ("converted", "params", "row_type", "sql")

    def __init__(
        self,
        sql: str,
        params: tuple[tuple[str, Any, Any], ...],
        processors: tuple[Any, ...] = (),
        row_type: type[DirectRow] | None = None,
    ) -> None:
        self.sql = sql
        self.params = params  # (name, default or _REQUIRED, bind processor or None)
        #: (index, processor) of the result columns whose values are converted (a row of the
        #: intake's joined read has about 90 columns; most are kept as SQLite gives them)
        self.converted = tuple((i, p) for i, p in enumerate(processors) if p is not None)
        self.row_type = row_type  # None: the statement returns no rows


def prepare(statement: ClauseElement, dialect: Dialect, keys: Sequence[str]) -> Prepared | None:
    """Compiles ``statement`` for ``dialect`` as SQLAlchemy's execution would with
    parameters of these ``keys``; None when it is not a plain statement (see the module)."""
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
    state = getattr(compiled, "compile_state", None)
    if type(state).__module__.startswith("sqlalchemy.orm"):
        return None  # ORM rows or ORM-enabled DML: SQLAlchemy's way
    if compiled.positiontup is None or compiled.escaped_bind_names:
        return None
    if getattr(compiled, "insert_prefetch", ()) or getattr(compiled, "update_prefetch", ()):
        return None  # a column default computed in Python
    binds = compiled.binds
    processors = compiled._bind_processors
    params: list[tuple[str, Any, Any]] = []
    for name in compiled.positiontup:
        bind = binds[name]
        if bind.expanding or bind.literal_execute or bind.callable is not None:
            return None
        default = _REQUIRED if bind.required else bind.value
        processor = processors.get(name)
        if isinstance(processor, tuple):
            return None  # a tuple type's parameter
        params.append((bind.key, default, processor))
    columns = compiled._result_columns
    if not columns:  # an INSERT, UPDATE or DELETE without RETURNING; else textual SQL
        crud = compiled.isinsert or compiled.isupdate or compiled.isdelete
        return Prepared(compiled.string, tuple(params)) if crud else None
    keys_out = tuple(column[0] for column in columns)
    if len(set(keys_out)) != len(keys_out):
        return None
    result_processors = tuple(
        column[3]._cached_result_processor(dialect, None) for column in columns
    )
    row_type = type(
        "Row",
        (DirectRow,),
        {"__slots__": (), "_keys": keys_out, "_index": {k: i for i, k in enumerate(keys_out)}},
    )
    return Prepared(compiled.string, tuple(params), result_processors, row_type)


class DirectExecutor:
    """Runs plain Core statements on the ``sqlite3`` connection of a session's transaction
    (one per engine: it keeps the statements it prepared)."""

    def __init__(self, dialect: Dialect, *, echo: bool = False) -> None:
        self._dialect = dialect
        self._echo = echo
        self._prepared: dict[tuple[object, tuple[str, ...]], Prepared | None] = {}

    def prepared(self, statement: ClauseElement, keys: tuple[str, ...]) -> Prepared | None:
        """The statement compiled for these parameter names (kept, at most ``MAX_PREPARED``)."""
        key = (statement, keys)
        try:
            return self._prepared[key]
        except KeyError:
            pass
        found = prepare(statement, self._dialect, keys)
        if len(self._prepared) >= MAX_PREPARED:  # drop the oldest: insertion order
            del self._prepared[next(iter(self._prepared))]
        self._prepared[key] = found
        return found

    async def execute(
        self, unit: DirectUnit, statement: ClauseElement, params: Any
    ) -> DirectResult | None:
        """Runs ``statement`` with ``params`` (a mapping, or a list of them without rows
        returned) in the unit's transaction, beginning it if need be; None when the
        statement must take SQLAlchemy's way (the unit's session)."""
        if self._echo:
            return None
        many = isinstance(params, list)
        first: Mapping[str, Any] = (params[0] if params else {}) if many else (params or {})
        prepared = self.prepared(statement, tuple(first))
        if prepared is None or (many and (not params or prepared.row_type is not None)):
            return None
        found = await unit.connection()
        if found is None:
            return None
        raw, sync = found
        events = sync._has_events or sync.engine._has_events  # as SQLAlchemy checks, each time
        dispatch = sync.dispatch if events else None
        values: Any = [_values(prepared, p) for p in params] if many else _values(prepared, first)
        sql = prepared.sql
        cursor = raw.cursor()
        try:
            if dispatch is not None:
                for fn in dispatch.before_cursor_execute:
                    sql, values = fn(sync, cursor, sql, values, None, many)
            if many:
                cursor.executemany(sql, values)
            else:
                cursor.execute(sql, values)
            rows = cursor.fetchall() if prepared.row_type is not None else []
            rowcount = cursor.rowcount
            if dispatch is not None:
                for fn in dispatch.after_cursor_execute:
                    fn(sync, cursor, sql, values, None, many)
        except sqlite3.Error as error:
            raise DBAPIError.instance(
                sql, values, error, sqlite3.Error, dialect=self._dialect, ismulti=many
            ) from error
        finally:
            cursor.close()
        if prepared.row_type is None:
            return DirectResult([], rowcount)
        return DirectResult(
            _rows(prepared.row_type, prepared.converted, rows),
            len(rows) if rowcount < 0 else rowcount,
        )


def _values(prepared: Prepared, params: Mapping[str, Any]) -> tuple[Any, ...]:
    values = []
    for name, default, processor in prepared.params:
        value = params.get(name, default)
        if value is _REQUIRED:
            raise DBAPIError.instance(
                prepared.sql,
                dict(params),
                KeyError(f"a value is required for bind parameter {name!r}"),
                KeyError,
            )
        values.append(value if processor is None else processor(value))
    return tuple(values)


def _rows(
    make: type[DirectRow], converted: tuple[tuple[int, Any], ...], rows: list[Any]
) -> list[DirectRow]:
    if not converted:
        return [make(row) for row in rows]
    made = []
    for row in rows:
        values = list(row)
        for i, processor in converted:
            values[i] = processor(values[i])
        made.append(make(values))
    return made


_EXECUTORS: weakref.WeakKeyDictionary[Engine, DirectExecutor | None] = weakref.WeakKeyDictionary()


def executor_for_engine(bind: AsyncEngine) -> DirectExecutor | None:
    """The engine's executor on the inline SQLite dialect without ``echo``, else None."""
    engine = bind.sync_engine
    try:
        return _EXECUTORS[engine]
    except KeyError:
        pass
    direct = engine.dialect.driver == sqlite_inline.DRIVER
    executor = DirectExecutor(engine.dialect, echo=bool(engine.echo)) if direct else None
    _EXECUTORS[engine] = executor
    return executor


class DirectUnit(Unit):
    """A unit of work's connection and transaction on the inline SQLite dialect, its
    SQLAlchemy session made only when an ORM call needs one.

    The session around a unit of work was the last large piece of SQLAlchemy on the hot
    path: its making, its transaction's begin and commit and its closing cost about 250 µs
    a unit (measured alone on the development machine), where ``sqlite3``'s own ``BEGIN``
    and ``COMMIT`` cost a few. Here the unit takes a pooled connection (SQLAlchemy's
    :class:`~sqlalchemy.engine.Connection`, so the pool, its ``connect`` event and SQLAlchemy's
    events stay as they are). At its first statement it sends ``BEGIN`` to ``sqlite3``
    (:func:`storage.sqlite_inline.begin_raw`: the mode and the wait for another process's
    lock that the engine's ``begin`` listener gives a session, on asyncio) and begins
    SQLAlchemy's transaction on the connection over it (the listener then sends nothing);
    the unit commits or rolls back that transaction.

    An ORM call (a repository's ``self._session``) makes the session, bound to this very
    connection: it joins the transaction begun, or begins one itself when the unit has none;
    committing or rolling back the unit goes through the session first (its pending objects
    are flushed, or dropped), so its objects end with the transaction as before.
    """

    __slots__ = ("_engine", "_executor", "_mode", "_patience_ms", "_raw", "_sync")

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        executor: DirectExecutor,
        sync: Connection,
        *,
        mode: str,
        patience_ms: int,
        options: Mapping[str, object],
    ) -> None:
        """Use :meth:`open`."""
        super().__init__(factory, options)
        self._engine = engine
        self._executor = executor
        self._sync: Connection | None = sync
        self._raw: sqlite3.Connection = sqlite_inline.raw_of(sync)
        self._mode = mode
        self._patience_ms = patience_ms

    @classmethod
    async def open(
        cls,
        factory: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        executor: DirectExecutor,
        *,
        mode: str,
        patience_ms: int,
        options: Mapping[str, object],
    ) -> DirectUnit:
        """Takes a connection from the engine's pool (in SQLAlchemy's greenlet, where a
        full pool is waited for on asyncio and a new connection is opened); nothing begins
        before the first statement. ``mode`` and ``patience_ms``: the ``BEGIN``'s, as the
        engine's ``begin`` event takes them from ``options`` (which the session gets)."""
        sync = await greenlet_spawn(Connection, engine.sync_engine)
        try:
            return cls(
                factory, engine, executor, sync,
                mode=mode, patience_ms=patience_ms, options=options,
            )  # fmt: skip
        except BaseException:
            sync.close()
            raise

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return "sqlite"

    async def execute(self, statement: ClauseElement, params: Any) -> DirectResult | None:
        """A plain statement straight to ``sqlite3`` in this unit's transaction
        (:meth:`DirectExecutor.execute`); None: it takes SQLAlchemy's way, the session's."""
        return await self._executor.execute(self, statement, params)

    async def connection(self) -> _Connection | None:
        """The ``sqlite3`` connection in a transaction (begun here if need be) and
        SQLAlchemy's connection; None if the session's transaction failed (SQLAlchemy then
        says why)."""
        sync = self._open_connection()
        if self._session_failed():
            return None
        raw = self._raw
        if not raw.in_transaction:
            try:
                await sqlite_inline.begin_raw(raw, self._mode, self._patience_ms)
            except sqlite3.Error as error:
                raise _wrapped(f"BEGIN {self._mode}", error) from error
        if not sync.in_transaction():
            # SQLAlchemy's transaction over it, as a session's would be: the engine's begin
            # event (its listener sends nothing, sqlite3 is in a transaction), and a session
            # made later joins it instead of beginning its own.
            sync.begin()
        return raw, sync

    def _bind(self) -> AsyncConnection:
        return AsyncConnection(self._engine, self._open_connection())

    async def _end(self, commit: bool) -> None:
        """Ends SQLAlchemy's transaction on the connection, if one is left, and with it
        ``sqlite3``'s (SQLAlchemy's events and error handling as for any transaction of its
        own)."""
        transaction = self._open_connection().get_transaction()
        if transaction is None:
            return
        if commit:
            transaction.commit()
        else:
            transaction.rollback()

    async def _release(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None:
            sync.close()  # the pool's reset rolls back on sqlite3 if anything is left

    def _open_connection(self) -> Connection:
        self._check_open()
        sync = self._sync
        if sync is None:
            raise RuntimeError("the unit of work is not in progress: use `async with`")
        return sync


def _wrapped(sql: str, error: sqlite3.Error) -> StatementError:
    """A ``sqlite3`` error as SQLAlchemy raises it (``OperationalError``…)."""
    return DBAPIError.instance(sql, (), error, sqlite3.Error)
