"""The in-memory geocode cache and the in-process LRU: expiry and bounded size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.model import GeocodeCandidate
from bot.geo.cache import InMemoryGeocodeCache, LruCache

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CANDIDATE = GeocodeCandidate(
    lat=-6.98, lon=110.41, display_address="Lawang Sewu", confidence=0.9, source="nominatim"
)


async def test_candidates_returned_when_not_yet_expired() -> None:
    cache = InMemoryGeocodeCache()
    await cache.put("k", [CANDIDATE], T0 + timedelta(days=1))

    assert await cache.get("k", T0 + timedelta(hours=23)) == [CANDIDATE]


async def test_nothing_returned_when_expired() -> None:
    cache = InMemoryGeocodeCache()
    await cache.put("k", [CANDIDATE], T0 + timedelta(days=1))

    assert await cache.get("k", T0 + timedelta(days=1)) is None
    assert len(cache) == 0


async def test_empty_answer_kept_when_nominatim_found_nothing() -> None:
    cache = InMemoryGeocodeCache()
    await cache.put("k", [], T0 + timedelta(days=1))

    assert await cache.get("k", T0) == []


def test_least_recently_used_evicted_when_full() -> None:
    lru = LruCache(2)
    expiry = T0 + timedelta(days=1)
    lru.put("a", (CANDIDATE,), expiry)
    lru.put("b", (CANDIDATE,), expiry)
    assert lru.get("a", T0) is not None  # "a" is now the most recently used

    lru.put("c", (CANDIDATE,), expiry)

    assert lru.get("b", T0) is None
    assert lru.get("a", T0) == (CANDIDATE,)
    assert lru.get("c", T0) == (CANDIDATE,)


def test_error_when_lru_size_is_zero() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        LruCache(0)
