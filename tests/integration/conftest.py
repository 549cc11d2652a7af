"""Storage fixtures: every storage test runs on SQLite and on PostgreSQL.

* SQLite: a database file under pytest's temporary directory.
* PostgreSQL: ``DATABASE_URL_TEST`` (default: the local ``test`` database), in a schema of
  this run's own (``t_<pid>_<random>``) that is dropped at the end, so concurrent or
  earlier runs never see each other's rows. Those tests carry the ``postgres`` marker.
  When the server cannot be reached they are skipped, except under CI (``CI`` set), where
  that is an error: in CI the PostgreSQL tests must run.

``database_url`` is a migrated database emptied before each test; ``empty_database_url`` a
database never migrated (for the migration tests); ``uow_factory`` adds the in-memory fake
to the two SQL stores for the contract suite.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.services.ports import UnitOfWorkFactory
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.models import Base, CitizenRow
from storage.uow import SqlUnitOfWorkFactory
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory

T = TypeVar("T")

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"

SQL_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
#: The storage contract runs on every store, and on SQLite through both drivers: the default
#: one on the event loop's thread and aiosqlite's worker thread (SQLITE_DRIVER=thread).
ALL_BACKENDS = [
    pytest.param("memory", id="memory"),
    *SQL_BACKENDS,
    pytest.param("sqlite-thread", id="sqlite-thread"),
]

#: Run a test using ``backend`` (``database_url``, ``engine``…) on one SQL backend only.
only_sqlite = pytest.mark.parametrize("backend", [SQL_BACKENDS[0]], indirect=True)
only_postgresql = pytest.mark.parametrize("backend", [SQL_BACKENDS[1]], indirect=True)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a loop of its own (safe inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def in_ci() -> bool:
    """Whether we run under CI, where the PostgreSQL tests must not be skipped."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def with_schema(url: str, schema: str) -> str:
    """Return ``url`` confined to ``schema``."""
    return make_url(url).update_query_dict({"schema": schema}).render_as_string(False)


def unique_schema(prefix: str = "t") -> str:
    """Return a schema name no other run uses."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


async def _ping(url: str) -> None:
    engine = create_engine(url)
    try:
        async with asyncio.timeout(10), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await engine.dispose()


async def empty_tables(engine: AsyncEngine) -> None:
    """Delete every row of every table (the schema stays)."""
    tables = Base.metadata.sorted_tables
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(table.name for table in tables)
            await connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            for table in reversed(tables):
                await connection.execute(table.delete())


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server for this run (skipped, or failed under CI, when unreachable)."""
    url = os.environ.get("DATABASE_URL_TEST", DEFAULT_POSTGRES_URL)
    try:
        run_sync(_ping(url))
    except Exception as exc:  # any failure to connect means "no server for us"
        reason = f"PostgreSQL at DATABASE_URL_TEST is unreachable ({type(exc).__name__})"
        if in_ci():
            pytest.fail(f"{reason}: CI must run the PostgreSQL tests", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A migrated schema of this run's own, dropped at the end."""
    schema = unique_schema()
    url = with_schema(postgres_url, schema)
    run_sync(upgrade(url))
    try:
        yield url
    finally:
        run_sync(drop_schema(postgres_url, schema))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database file for this run."""
    path = tmp_path_factory.mktemp("sqlite") / "siaga112.db"
    url = f"sqlite+aiosqlite:///{path}"
    run_sync(upgrade(url))
    return url


@pytest.fixture(params=SQL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The SQL backend of this test."""
    name: str = request.param
    return name


@pytest.fixture
def database_url(request: pytest.FixtureRequest, backend: str) -> str:
    """The URL of a migrated database of ``backend``."""
    name = "sqlite_url" if backend == "sqlite" else "postgres_schema_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database, emptied before the test."""
    engine = create_engine(database_url)
    await empty_tables(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def empty_database_url(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> Iterator[str]:
    """The URL of a database never migrated (a new file, or a schema not yet created)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    server: str = request.getfixturevalue("postgres_url")
    schema = unique_schema("f")
    try:
        yield with_schema(server, schema)
    finally:
        run_sync(drop_schema(server, schema))


@pytest.fixture(params=ALL_BACKENDS)
def store_url(request: pytest.FixtureRequest) -> str | None:
    """The URL of a migrated SQL database, or None for the in-memory fake."""
    if request.param == "memory":
        return None
    name = "postgres_schema_url" if request.param == "postgresql" else "sqlite_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def uow_factory(
    request: pytest.FixtureRequest, store_url: str | None
) -> AsyncIterator[UnitOfWorkFactory]:
    """A unit-of-work factory over an empty store: in memory, SQLite or PostgreSQL."""
    if store_url is None:
        yield InMemoryUnitOfWorkFactory()
        return
    threaded = request.node.callspec.params.get("store_url") == "sqlite-thread"
    engine = create_engine(store_url, sqlite_driver="thread" if threaded else "inline")
    await empty_tables(engine)
    try:
        yield SqlUnitOfWorkFactory(session_factory(engine))
    finally:
        await engine.dispose()


async def citizen_count(engine: AsyncEngine) -> int:
    """How many citizens the database holds (read on a connection of its own)."""
    async with engine.connect() as connection:
        counted = await connection.execute(select(func.count()).select_from(CitizenRow))
        return int(counted.scalar_one())
