"""SQLite on the event loop's own thread: no thread hop per statement.

aiosqlite runs every call (execute, fetch, commit, even ``cursor()``) in a worker thread and
wakes the event loop for each answer: about 34 hops per intake update, which cost more CPU
than the SQLite work itself (about 0.1 ms an update) and, because every hop is a trip round
the busy loop, kept SQLite's single write lock held for about 11 ms per unit of work.

This dialect hands SQLAlchemy's asyncio layer the standard ``sqlite3`` module directly. The
statements of a unit of work run synchronously where the unit runs, so a unit of work that
does not wait on anything else (the house rule) holds the write lock only for its own CPU
time, a millisecond or two, and the services see the same async ports as before.

What would block the loop, and why it does not:

* **Waiting for another process's write lock.** Connections use ``busy_timeout = 0``; a
  ``BEGIN IMMEDIATE`` that finds the lock taken is retried after short *asyncio* sleeps
  (2 ms doubling to 50 ms) until the unit of work's deadline (see
  :func:`begin_with_retries`). Writers of one process already queue on the writer queue in
  :mod:`storage.uow`, so this only happens while another process (a CLI command, a second
  bot) writes.
* **Checkpoints.** SQLite folds the write-ahead log back into the database file from the
  connection that commits when the log passes 1,000 pages, with two ``fsync`` calls. Here
  automatic checkpoints are off and a :class:`Checkpointer` thread runs a ``PASSIVE``
  checkpoint (never waiting for readers or writers) every second instead.
* **Ordinary reads and writes** hit the page cache and the log's ``write()``:
  ``synchronous = NORMAL`` in WAL mode does not ``fsync`` on commit.

``DATABASE_URL`` stays ``sqlite+aiosqlite://…`` (the operating contract): the engine factory
picks this dialect unless ``SQLITE_DRIVER=thread`` asks for aiosqlite.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Self

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util.concurrency import await_, in_greenlet

from bot.services.ports import StorageBusy

log = logging.getLogger(__name__)

#: The registered name of the dialect: ``sqlite+siaga112_inline://``.
DRIVER = "siaga112_inline"

#: Seconds between two checkpoints of the write-ahead log.
CHECKPOINT_INTERVAL = 1.0

_FIRST_RETRY = 0.002
_LAST_RETRY = 0.05


class _Cursor:
    """A ``sqlite3`` cursor behind aiosqlite's awaitable cursor API; every call completes
    at once, so awaiting it never gives the event loop a turn."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Self:
        return self

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, operation: str, parameters: Any = ()) -> Self:
        self._cursor.execute(operation, parameters)
        return self

    async def executemany(self, operation: str, seq_of_parameters: Any) -> Self:
        self._cursor.executemany(operation, seq_of_parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def nextset(self) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()


class InlineConnection:
    """A ``sqlite3`` connection behind aiosqlite's awaitable connection API."""

    __slots__ = ("_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection: sqlite3.Connection | None = connection

    def raw(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    @property
    def isolation_level(self) -> str | None:
        return self.raw().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self.raw().isolation_level = value  # type: ignore[assignment]  # sqlite3's own check

    def cursor(self) -> _Cursor:
        return _Cursor(self.raw().cursor())

    async def commit(self) -> None:
        self.raw().commit()

    async def rollback(self) -> None:
        self.raw().rollback()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self.raw().create_function(*args, **kw)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class _InlineCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's adapted cursor with its calls made directly. Every call of a ``sqlite3``
    cursor completes at once, so passing each through ``await_`` (a coroutine and two
    greenlet switches, several times a statement) only cost time: about 75 µs a statement
    on the development machine, more than most statements' own SQLite work."""

    __slots__ = ()

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor  # _Cursor.__aenter__ returns the cursor itself

    @property
    def _sqlite(self) -> sqlite3.Cursor:
        cursor: sqlite3.Cursor = self._cursor._cursor  # type: ignore[attr-defined]
        return cursor

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._awaited(self._execute_now(operation, parameters))

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._awaited(self._executemany_now(operation, seq_of_parameters))

    def _awaited(self, call: Coroutine[Any, Any, Any]) -> Any:
        try:
            # One await_ a statement all the same: SQLAlchemy's AsyncConnection.execute
            # checks that its call awaited something (AwaitRequired otherwise).
            return await_(call)
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _execute_now(self, operation: Any, parameters: Any) -> Any:
        cursor = self._sqlite
        result = cursor.execute(operation, () if parameters is None else parameters)
        if cursor.description is not None:
            self._rows = collections.deque(cursor.fetchall())
        return result

    async def _executemany_now(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._sqlite.executemany(operation, seq_of_parameters)

    def close(self) -> None:
        self._rows.clear()
        if not self._soft_closed_memoized:  # else _async_soft_close closed it
            self._sqlite.close()


class _AdaptedConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    _cursor_cls = _InlineCursor

    def commit(self) -> None:
        self._end(sqlite3.Connection.commit)

    def rollback(self) -> None:
        self._end(sqlite3.Connection.rollback)

    def _end(self, end: Callable[[sqlite3.Connection], None]) -> None:
        connection = self._connection._connection
        if connection is not None:  # as aiosqlite's adapter: a closed one has nothing to do
            try:
                end(connection)
            except Exception as error:
                self._handle_exception(error)

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level  # type: ignore[no-any-return]

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value  # on this thread: no queue needed


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    """``sqlite3`` as the async DBAPI module SQLAlchemy's asyncio layer expects."""

    def __init__(self) -> None:
        super().__init__(sqlite3, sqlite3)
        self.has_stop = True

    def connect(self, *arg: Any, **kw: Any) -> _AdaptedConnection:
        kw.pop("async_creator_fn", None)
        kw["check_same_thread"] = False  # the checkpointer's and the collector's threads
        connection: Any = InlineConnection(sqlite3.connect(*arg, **kw))  # aiosqlite's duck type
        return _AdaptedConnection(self, connection)


class SQLiteDialect_inline(SQLiteDialect_aiosqlite):
    """SQLAlchemy's aiosqlite dialect over :class:`_Dbapi`: same SQL, no worker thread."""

    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _Dbapi()

    def retrieve_dbapi_version(self, dbapi: Any) -> Any:
        return sqlite3.sqlite_version_info


def register() -> None:
    """Make ``sqlite+siaga112_inline`` known to SQLAlchemy (idempotent)."""
    from sqlalchemy.dialects import registry  # noqa: PLC0415

    registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inline")


def is_locked(error: BaseException) -> bool:
    """Whether a driver error is SQLite's "database is locked" (or "busy"): by its result
    code where ``sqlite3`` gives one (``SQLITE_BUSY``, ``SQLITE_LOCKED`` and their extended
    codes), else by its words (aiosqlite's adapter re-raises the error without the code)."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
    text = str(error).lower()
    return type(error).__name__ == "OperationalError" and (
        "database is locked" in text or "database is busy" in text
    )


def raw_of(connection: Connection) -> sqlite3.Connection:
    """The ``sqlite3`` connection under a SQLAlchemy connection of this dialect."""
    raw: sqlite3.Connection = connection.connection.driver_connection.raw()  # type: ignore[union-attr]
    return raw


def begin_with_retries(connection: Connection, mode: str, patience_ms: int) -> None:
    """``BEGIN <mode>`` on a connection whose busy timeout is 0, retried after asyncio sleeps
    while another process holds the write lock, for at most ``patience_ms``; then
    ``StorageBusy``. Runs inside SQLAlchemy's greenlet, where ``await_`` yields to the loop.

    Nothing is sent when the connection is in a transaction already: a unit of work of
    :mod:`storage.sqlite_direct` began it on ``sqlite3`` before its session was made, and the
    session's transaction joins it."""
    # Straight to sqlite3, as SQLAlchemy's own BEGIN for its sqlite3 dialect would be: a
    # statement through SQLAlchemy's execution costs more than the BEGIN (one per unit).
    raw = raw_of(connection)
    if raw.in_transaction:
        return
    retries = _Retries(patience_ms)
    while (pause := retries.begin(raw, mode)) is not None:
        if in_greenlet():
            await_(asyncio.sleep(pause))
        else:  # pragma: no cover - the async engine always runs statements in a greenlet
            time.sleep(pause)


async def begin_raw(raw: sqlite3.Connection, mode: str, patience_ms: int) -> None:
    """:func:`begin_with_retries` on a ``sqlite3`` connection, from a coroutine."""
    retries = _Retries(patience_ms)
    while True:
        pause = retries.begin(raw, mode)
        if pause is None:
            return
        await asyncio.sleep(pause)


class _Retries:
    """One ``BEGIN`` tried, and how long to sleep before the next try (None: begun)."""

    __slots__ = ("_deadline", "_delay")

    def __init__(self, patience_ms: int) -> None:
        self._deadline = time.monotonic() + patience_ms / 1000
        self._delay = _FIRST_RETRY

    def begin(self, raw: sqlite3.Connection, mode: str) -> float | None:
        try:
            raw.execute(f"BEGIN {mode}")
            return None
        except sqlite3.OperationalError as error:
            if not is_locked(error):
                raise
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise StorageBusy(str(error)) from error
        pause = min(self._delay, left)
        self._delay = min(self._delay * 2, _LAST_RETRY)
        return pause


class Checkpointer:
    """Folds a database's write-ahead log into the file from a thread of its own, so no
    commit on the event loop's thread pays for the ``fsync`` calls of a checkpoint."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self.checkpoints = 0  # how many ran (tests and curiosity)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Run a last checkpoint and end the thread."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self._path, check_same_thread=False)
        except sqlite3.Error:
            log.exception("the checkpointer could not open %s", self._path)
            return
        try:
            connection.execute("PRAGMA busy_timeout = 1000")
            while True:
                stopping = self._stop.wait(self._interval)
                self._checkpoint(connection)
                if stopping:
                    return
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # e.g. the file went away under a test: try again
            log.warning("checkpoint of %s failed: %s", self._path, exc)


_checkpointers: weakref.WeakKeyDictionary[object, Checkpointer] = weakref.WeakKeyDictionary()
_checkpointers_lock = threading.Lock()


def ensure_checkpointer(owner: object, path: str) -> Checkpointer:
    """The checkpointer of ``owner`` (an engine), started at the first call; it stops when
    :func:`stop_checkpointer` is called or the owner is collected."""
    with _checkpointers_lock:
        found = _checkpointers.get(owner)
        if found is None:
            found = Checkpointer(path)
            _checkpointers[owner] = found
            weakref.finalize(owner, found.stop)
            found.start()
        return found


def stop_checkpointer(owner: object) -> None:
    """Stop ``owner``'s checkpointer (after a last checkpoint), if it has one."""
    with _checkpointers_lock:
        found = _checkpointers.pop(owner, None)
    if found is not None:
        found.stop()
