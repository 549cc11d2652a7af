"""The geocode cache on SQLite, PostgreSQL and its in-memory fake (same contract)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from bot.services.ports import GeocodeCache
from storage.db import create_engine, session_factory
from storage.geocode_cache import SqlGeocodeCache, storage_key
from tests.fakes.memory_geocode_cache import InMemoryGeocodeCache
from tests.integration import builders as b
from tests.integration.conftest import empty_tables

HOUR = timedelta(hours=1)


@pytest.fixture
async def cache(store_url: str | None) -> AsyncIterator[GeocodeCache]:
    """A geocode cache over an empty store: in memory, SQLite or PostgreSQL."""
    if store_url is None:
        yield InMemoryGeocodeCache()
        return
    engine = create_engine(store_url)
    await empty_tables(engine)
    try:
        yield SqlGeocodeCache(session_factory(engine))
    finally:
        await engine.dispose()


async def test_cache_returns_candidates_with_their_areas_when_fresh(cache: GeocodeCache) -> None:
    candidates = [b.candidate("1"), b.candidate("2", with_area=False)]
    await cache.put("simpang lima", candidates, b.T0 + HOUR)
    assert await cache.get("simpang lima", b.T0) == candidates


async def test_cache_misses_when_key_is_unknown(cache: GeocodeCache) -> None:
    await cache.put("simpang lima", [b.candidate()], b.T0 + HOUR)
    assert await cache.get("tugu muda", b.T0) is None


async def test_cache_misses_when_entry_has_expired(cache: GeocodeCache) -> None:
    await cache.put("simpang lima", [b.candidate()], (b.T0 + HOUR).astimezone(b.WIB))
    assert await cache.get("simpang lima", b.T0 + HOUR - timedelta(seconds=1)) is not None
    assert await cache.get("simpang lima", b.T0 + HOUR) is None
    assert await cache.get("simpang lima", b.T0 + 2 * HOUR) is None


async def test_cache_keeps_nothing_found_apart_from_a_miss_when_answer_was_empty(
    cache: GeocodeCache,
) -> None:
    await cache.put("nowhere", [], b.T0 + HOUR)
    assert await cache.get("nowhere", b.T0) == []


async def test_cache_replaces_the_entry_when_put_again(cache: GeocodeCache) -> None:
    await cache.put("simpang lima", [b.candidate("1")], b.T0 + HOUR)
    await cache.put("simpang lima", [b.candidate("2")], b.T0 + 2 * HOUR)
    assert await cache.get("simpang lima", b.T0 + HOUR) == [b.candidate("2")]
    await cache.put("simpang lima", [b.candidate("3")], b.T0 - HOUR)  # replaced by an expired one
    assert await cache.get("simpang lima", b.T0) is None


async def test_cache_stores_a_long_query_when_longer_than_the_key_column(
    cache: GeocodeCache,
) -> None:
    long_query = "jalan " * 200
    await cache.put(long_query, [b.candidate()], b.T0 + HOUR)
    assert await cache.get(long_query, b.T0) == [b.candidate()]
    assert await cache.get(long_query + "x", b.T0) is None


async def test_cache_refuses_naive_times_when_given(cache: GeocodeCache) -> None:
    with pytest.raises(ValueError, match="naive"):
        await cache.put("x", [], (b.T0 + HOUR).replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        await cache.get("x", b.T0.replace(tzinfo=None))


def test_storage_key_is_the_query_when_short_and_a_digest_when_long() -> None:
    assert storage_key("simpang lima") == "simpang lima"
    digest = storage_key("x" * 201)
    assert digest.startswith("sha256:")
    assert len(digest) <= 255
    assert storage_key(digest) != digest  # a query cannot pose as another's digest


async def test_cache_treats_an_unreadable_entry_as_a_miss_when_written_by_other_code(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await empty_tables(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO geocode_cache (key, payload, expires_at)"
                    " VALUES ('k', '{\"v\": 99}', :expires)"
                ),
                {"expires": (b.T0 + HOUR).replace(tzinfo=None)},
            )
        cache = SqlGeocodeCache(session_factory(engine))
        assert await cache.get("k", b.T0 - 100 * HOUR) is None
    finally:
        await engine.dispose()


async def test_purge_expired_deletes_only_expired_entries_when_called(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await empty_tables(engine)
        cache = SqlGeocodeCache(session_factory(engine))
        await cache.put("old", [b.candidate()], b.T0)
        await cache.put("new", [b.candidate()], b.T0 + HOUR)
        assert await cache.purge_expired(b.T0) == 1
        assert await cache.get("new", b.T0) == [b.candidate()]
        assert await cache.get("old", b.T0 - HOUR) is None
    finally:
        await engine.dispose()
