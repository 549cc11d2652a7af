"""Database migrations, programmatically: no ``alembic.ini`` on disk is needed.

The Alembic scripts ship inside the package (``storage/migrations``), so this works the same
from a checkout, after ``pip install -e .`` and after ``pip install .``::

    await upgrade("sqlite+aiosqlite:///siaga112.db")          # create or bring up to date
    await upgrade("postgresql+asyncpg://…/siaga112", schema="semarang")

Upgrading is idempotent and safe to run at every start-up. On PostgreSQL concurrent upgrades
of the same schema queue on an advisory lock and the schema is created when missing; on
SQLite foreign keys are suspended while tables are rebuilt and checked before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from storage.db import SQLITE_BEGIN_OPTION, create_engine, split_schema

#: The Alembic script directory inside the installed package.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """Return an Alembic configuration built in code, pointing at the packaged scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    """Return the newest revision of the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


async def upgrade(url: str, *, schema: str | None = None, revision: str = "head") -> None:
    """Create or migrate the database at ``url`` (in ``schema`` on PostgreSQL) to ``revision``."""
    await _migrate(url, schema, command.upgrade, revision)


async def downgrade(url: str, *, schema: str | None, revision: str) -> None:
    """Take the database back to ``revision`` (``"base"``: drop everything). Destroys data."""
    await _migrate(url, schema, command.downgrade, revision)


async def _migrate(
    url: str, schema: str | None, step: Callable[[Config, str], None], revision: str
) -> None:
    _, schema = split_schema(url, schema)
    config = alembic_config()
    engine = create_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_locked, config, schema, step, revision)
    finally:
        await engine.dispose()


async def current_revision(url: str, *, schema: str | None = None) -> str | None:
    """Return the revision the database is at, or None when it was never migrated."""
    engine = create_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_revision)
    finally:
        await engine.dispose()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _run_locked(
    connection: Connection,
    config: Config,
    schema: str | None,
    step: Callable[[Config, str], None],
    revision: str,
) -> None:
    """Run one Alembic command in one transaction, alone (other migrators wait)."""
    is_sqlite = connection.dialect.name == "sqlite"
    if is_sqlite:
        # Take the write lock at BEGIN: a second migrator waits instead of failing later.
        connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        # Only effective outside a transaction, hence before BEGIN.
        _sqlite_pragma(connection, "PRAGMA foreign_keys = OFF")
    try:
        with connection.begin():
            if connection.dialect.name == "postgresql":
                lock_name = f"siaga112:migrate:{schema or ''}"
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": lock_name}
                )
                if schema is not None:
                    quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
                    connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
            config.attributes["connection"] = connection
            step(config, revision)
            if is_sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("the migration left rows with dangling foreign keys")
    finally:
        config.attributes.pop("connection", None)
        if is_sqlite:
            _sqlite_pragma(connection, "PRAGMA foreign_keys = ON")


def _sqlite_pragma(connection: Connection, statement: str) -> None:
    """Run a PRAGMA on the driver connection, bypassing SQLAlchemy's transaction."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()
