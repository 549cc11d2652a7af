"""Alembic migrations: fresh databases, re-runs, and the models matching the migrated schema."""

from __future__ import annotations

import asyncio
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from storage.db import create_engine, split_schema
from storage.migrate import MIGRATIONS_DIR, current_revision, downgrade, head_revision, upgrade
from storage.models import Base

TABLES = {
    "alembic_version",
    "citizens",
    "tickets",
    "ticket_events",
    "messages",
    "outbox",
    "ref_counters",
    "geocode_cache",
    "chat_aliases",
    "assignments",
    "operators",
    "audit_log",
    "advisories",
    "advisory_deliveries",
    "agency_requests",
}


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_creates_every_table_when_database_is_empty(
    empty_database_url: str,
) -> None:
    assert await current_revision(empty_database_url) is None
    await upgrade(empty_database_url)
    assert await table_names(empty_database_url) == TABLES
    assert await current_revision(empty_database_url) == head_revision()


async def test_upgrade_keeps_data_and_revision_when_run_again(empty_database_url: str) -> None:
    await upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO ref_counters (day, last_value) VALUES ('2026-05-27', 7)")
            )
        await upgrade(empty_database_url)
        async with engine.connect() as connection:
            kept = await connection.scalar(text("SELECT last_value FROM ref_counters"))
    finally:
        await engine.dispose()
    assert kept == 7
    assert await current_revision(empty_database_url) == head_revision()


async def test_models_match_migrations_when_upgraded_to_head(empty_database_url: str) -> None:
    await upgrade(empty_database_url)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == []


async def test_concurrent_upgrades_both_succeed_when_racing_on_a_fresh_database(
    empty_database_url: str,
) -> None:
    await asyncio.gather(upgrade(empty_database_url), upgrade(empty_database_url))
    assert await current_revision(empty_database_url) == head_revision()


async def test_downgrade_to_base_removes_every_table_when_asked(empty_database_url: str) -> None:
    await upgrade(empty_database_url)
    _, schema = split_schema(empty_database_url)
    await downgrade(empty_database_url, schema=schema, revision="base")
    assert await table_names(empty_database_url) == {"alembic_version"}
    assert await current_revision(empty_database_url) is None
    await upgrade(empty_database_url)
    assert await table_names(empty_database_url) == TABLES


async def test_upgrade_needs_no_alembic_ini_when_run_from_another_directory(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await upgrade(empty_database_url)
    assert await current_revision(empty_database_url) == head_revision()


@pytest.mark.postgres
async def test_upgrade_creates_tables_only_inside_the_schema_when_one_is_given(
    postgres_url: str,
) -> None:
    from tests.integration.conftest import drop_schema, unique_schema

    schema = unique_schema("s")
    try:
        await upgrade(postgres_url, schema=schema)
        engine = create_engine(postgres_url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    text(
                        "SELECT table_schema, table_name FROM information_schema.tables"
                        " WHERE table_schema = :schema"
                    ),
                    {"schema": schema},
                )
                found = {name for _, name in rows}
        finally:
            await engine.dispose()
        assert found == TABLES
        assert await current_revision(postgres_url, schema=schema) == head_revision()
    finally:
        await drop_schema(postgres_url, schema)


def test_migration_scripts_ship_with_the_package_when_installed() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["storage"]
    package = MIGRATIONS_DIR.parent
    files = [
        path.relative_to(package).as_posix()
        for path in MIGRATIONS_DIR.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert "migrations/env.py" in files
    assert "migrations/script.py.mako" in files
    assert any(f.startswith("migrations/versions/") for f in files)
    unshipped = [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)]
    assert unshipped == []


async def test_0006_keeps_tickets_and_citizens_unmarked_when_upgrading_from_0005(
    empty_database_url: str,
) -> None:
    await upgrade(empty_database_url, revision="0005")
    _, schema = split_schema(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO citizens (id, telegram_id, name, language, created_at, updated_at)"
                    " VALUES (1, 42, 'Siti', 'id', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO tickets (id, citizen_id, chat_id, status, priority, language,"
                    " media, caller_name, created_at, updated_at) VALUES (1, 1, 42, 'closed', 1,"
                    " 'id', '[]', 'Siti', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        await upgrade(empty_database_url)
        async with engine.connect() as connection:
            ticket = (
                await connection.execute(text("SELECT caller_name, anonymised_at FROM tickets"))
            ).one()
            citizen = (
                await connection.execute(
                    text("SELECT name, erase_requested_at, erased_at FROM citizens")
                )
            ).one()
        await downgrade(empty_database_url, schema=schema, revision="0005")
        async with engine.connect() as connection:
            kept = await connection.scalar(text("SELECT caller_name FROM tickets"))
    finally:
        await engine.dispose()
    assert tuple(ticket) == ("Siti", None)
    assert tuple(citizen) == ("Siti", None, None)
    assert kept == "Siti"
    assert await current_revision(empty_database_url) == "0005"
