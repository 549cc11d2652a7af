"""Engines and sessions: SQLite (embedded default) or PostgreSQL (production).

SQLite connections are tuned for a small always-on service: write-ahead log (readers never
wait for the writer), ``synchronous=NORMAL`` (durable at checkpoints, safe with WAL), foreign
keys enforced, and a busy timeout so concurrent writers queue instead of failing. SQLAlchemy,
not the ``sqlite3`` driver, emits ``BEGIN`` so transactions really start at the first
statement (reads included), savepoints work and DDL is transactional; a unit of work asks for
``BEGIN IMMEDIATE`` (see :data:`SQLITE_BEGIN_OPTION`).

PostgreSQL connections can be confined to one schema (``?schema=NAME`` in the URL or the
``schema`` argument): the schema becomes the connection's ``search_path``, so tables,
migrations and queries all live there. Tests use it to give every run its own namespace.
"""

from __future__ import annotations

import re
import sqlite3
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from bot.services.ports import StorageBusy
from bot.sizes import DATABASE_CONNECTIONS
from storage import sqlite_inline

#: Connection execution option choosing how SQLite transactions begin: ``"DEFERRED"``
#: (the default: the write lock is taken at the first write) or ``"IMMEDIATE"`` (taken at
#: ``BEGIN``, so a read-then-write transaction can never fail with ``SQLITE_BUSY`` half-way).
SQLITE_BEGIN_OPTION = "siaga112_sqlite_begin"
_SQLITE_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})

#: Connection execution option: milliseconds this transaction's ``BEGIN`` may wait for
#: another process's write lock (default: the engine's busy timeout). A unit of work with a
#: deadline passes what is left of it, so queued writers never each wait the full timeout.
SQLITE_BUSY_OPTION = "siaga112_sqlite_busy_ms"

#: How long a SQLite connection waits for another writer before giving up.
DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 10_000

#: Seconds a PostgreSQL unit of work waits for one of the pool's connections (SQLAlchemy's
#: default); past it the unit of work fails with ``StorageBusy`` (storage.uow).
DEFAULT_POSTGRES_POOL_TIMEOUT = 30.0

#: The SQLite drivers :func:`create_engine` knows (``SQLITE_DRIVER``).
SQLITE_DRIVERS = ("inline", "thread")

#: Each SQLite engine's busy timeout (milliseconds), for BEGINs sent without SQLAlchemy.
_BUSY_TIMEOUTS: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_MIN_SQLITE = (3, 35, 0)  # INSERT … ON CONFLICT … RETURNING


def split_schema(url: str | URL, schema: str | None = None) -> tuple[URL, str | None]:
    """Return the URL without its ``schema`` query option, and the schema to use.

    The ``schema`` argument and the URL option may both be given only if they agree.
    """
    parsed = make_url(url)
    from_url = parsed.query.get("schema")
    if isinstance(from_url, tuple):
        raise ValueError("DATABASE_URL names more than one schema")
    if from_url is not None and schema is not None and from_url != schema:
        raise ValueError("the schema argument and the URL's ?schema= option disagree")
    chosen = schema if schema is not None else from_url
    if chosen is not None:
        if parsed.get_backend_name() != "postgresql":
            raise ValueError("a database schema is only supported on PostgreSQL")
        if not _SCHEMA_NAME.fullmatch(chosen):
            raise ValueError("schema names are lower-case letters, digits and _ (max 63)")
    return parsed.difference_update_query(["schema"]), chosen


def missing_sqlite_file(url: str | URL) -> str | None:
    """The path of a SQLite database file that does not exist yet (opening it would create
    an empty one), else None (another database, in memory, or the file is there)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or Path(database).exists():
        return None
    return database


def create_engine(
    url: str | URL,
    *,
    schema: str | None = None,
    echo: bool = False,
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    sqlite_driver: str = "inline",
    postgres_pool_timeout: float = DEFAULT_POSTGRES_POOL_TIMEOUT,
) -> AsyncEngine:
    """Create the async engine for ``url`` (``sqlite+aiosqlite`` or ``postgresql+asyncpg``).

    ``schema`` (or ``?schema=NAME`` in the URL) confines a PostgreSQL engine to that schema.
    ``postgres_pool_timeout``: seconds a unit of work waits for a pooled connection.
    ``sqlite_driver``: ``"inline"`` runs SQLite's calls on the event loop's thread
    (:mod:`storage.sqlite_inline`, the default), ``"thread"`` through aiosqlite's worker
    thread, a hop per call (kept to measure against and as a fallback).
    """
    parsed, schema = split_schema(url, schema)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if sqlite_driver not in SQLITE_DRIVERS:
            raise ValueError(f"unknown SQLite driver {sqlite_driver!r}: inline or thread")
        return _create_sqlite_engine(
            parsed, echo=echo, busy_timeout_ms=sqlite_busy_timeout_ms,
            inline=sqlite_driver == "inline",
        )  # fmt: skip
    if backend == "postgresql":
        return _create_postgresql_engine(
            parsed, schema=schema, echo=echo, pool_timeout=postgres_pool_timeout
        )
    raise ValueError(f"unsupported database backend {backend!r}: use SQLite or PostgreSQL")


def sqlite_busy_timeout_ms(engine: Engine) -> int:
    """The busy timeout a SQLite engine was made with (:func:`create_engine`): how long a
    ``BEGIN`` waits for another process's write lock unless told otherwise."""
    return _BUSY_TIMEOUTS.get(engine, DEFAULT_SQLITE_BUSY_TIMEOUT_MS)


def dialect_insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` into ``table`` in the dialect's own form, the one that has
    ``ON CONFLICT`` (both databases spell it alike)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return the session factory: objects stay usable after commit (no lazy reloads)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def _create_sqlite_engine(
    url: URL, *, echo: bool, busy_timeout_ms: int, inline: bool
) -> AsyncEngine:
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: Siaga112 needs 3.35 or later"
        )
    if inline:
        sqlite_inline.register()
        url = url.set(drivername=f"sqlite+{sqlite_inline.DRIVER}")
    engine = _create_async_engine(url, echo=echo)
    _BUSY_TIMEOUTS[engine.sync_engine] = int(busy_timeout_ms)
    database = url.database or ""
    file_backed = database not in ("", ":memory:") and not database.startswith("file:")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN (see _on_begin) instead of the driver's legacy mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _use_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            if inline:
                if file_backed:  # checkpoints run in the checkpointer's thread
                    cursor.execute("PRAGMA wal_autocheckpoint = 0")
                # From now on a busy handler would stall the event loop: _on_begin waits
                # instead (opening a connection, rare, may still wait in it above).
                cursor.execute("PRAGMA busy_timeout = 0")
        finally:
            cursor.close()
        if inline and file_backed:
            sqlite_inline.ensure_checkpointer(engine.sync_engine, database)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        mode = options.get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode not in _SQLITE_BEGIN_MODES:
            raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
        busy_ms = max(1, int(options.get(SQLITE_BUSY_OPTION, busy_timeout_ms)))
        if inline:  # a deferred BEGIN takes no lock; a writer's waits on asyncio
            sqlite_inline.begin_with_retries(connection, mode, busy_ms)
            return
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {busy_ms}")  # this turn's wait
        connection.exec_driver_sql(f"BEGIN {mode}")

    @event.listens_for(engine.sync_engine, "engine_disposed")
    def _on_dispose(disposed: Any) -> None:
        sqlite_inline.stop_checkpointer(disposed)

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # Another process held the write lock past the busy timeout: a state to tell the
        # citizen about ("send it again"), not a crash.
        if sqlite_inline.is_locked(context.original_exception):
            raise StorageBusy(str(context.original_exception)) from context.original_exception

    return engine


def _use_wal(cursor: Any) -> None:
    """Switch the database file to write-ahead logging (a lasting property of the file)."""
    cursor.execute("PRAGMA journal_mode")
    if cursor.fetchone()[0] in {"wal", "memory"}:
        return
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as exc:
        # Switching needs the file to itself and does not wait for it. Only a connection
        # opened while another one switches gets here: that one leaves the file in WAL.
        if "locked" not in str(exc):
            raise


def _create_postgresql_engine(
    url: URL, *, schema: str | None, echo: bool, pool_timeout: float
) -> AsyncEngine:
    server_settings = {"application_name": "siaga112"}
    if schema is not None:
        server_settings["search_path"] = schema
    engine = _create_async_engine(
        url, echo=echo, connect_args={"server_settings": server_settings},
        pool_size=DATABASE_CONNECTIONS, max_overflow=0,  # kept open: see bot/sizes.py
        pool_timeout=pool_timeout,
    )  # fmt: skip
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    event.listen(engine.sync_engine, "handle_error", _lost_is_busy)
    return engine


def _lost_is_busy(context: ExceptionContext) -> None:
    """A connection lost in the middle of a unit of work is a state of the database, as a
    held lock is on SQLite: the citizen is asked to send the step again, and SQLAlchemy
    renews the pool for the next one (it does so whatever this hook raises)."""
    if context.is_disconnect:
        raise StorageBusy(str(context.original_exception)) from context.original_exception


def _refuse_closed(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """Hand out no pooled connection the server has ended (restart, failover, an
    administrator's ``pg_terminate_backend``): the pool connects afresh instead.

    asyncpg reads the server's goodbye while its connection sits idle in the pool, so this
    costs no round trip, unlike SQLAlchemy's ``pool_pre_ping`` (three on asyncpg: a
    transaction around an empty query, for every unit of work). A connection lost silently
    (no goodbye) or just after this check fails its unit of work; SQLAlchemy then renews the
    whole pool, and the next unit of work runs (tests/integration/test_postgres_reconnect.py).
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")
