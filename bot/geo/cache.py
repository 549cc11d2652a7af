"""Geocode caches: an in-memory ``GeocodeCache`` and the in-process LRU put in front of one.

The durable implementation of the ``GeocodeCache`` port lives in ``storage/``; the in-memory
one here serves tests and deployments without a database (``GEOCODER=offline``, local runs).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

from bot.domain.model import GeocodeCandidate


class InMemoryGeocodeCache:
    """A ``GeocodeCache`` held in a dict (bounded: the oldest entries go first)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        """Creates an empty cache keeping at most ``max_entries`` queries."""
        self._lru = LruCache(max_entries)

    async def get(self, key: str, now: datetime) -> list[GeocodeCandidate] | None:
        """Returns the unexpired candidates stored for ``key`` or None."""
        found = self._lru.get(key, now)
        return None if found is None else list(found)

    async def put(
        self, key: str, candidates: Sequence[GeocodeCandidate], expires_at: datetime
    ) -> None:
        """Stores (or replaces) the candidates for ``key``."""
        self._lru.put(key, tuple(candidates), expires_at)

    def __len__(self) -> int:
        """Returns how many entries are held (expired ones included until touched)."""
        return len(self._lru)


class LruCache:
    """A synchronous, size-bounded LRU of key -> candidates with an expiry per entry."""

    def __init__(self, max_entries: int) -> None:
        """Creates an empty LRU keeping at most ``max_entries`` keys."""
        if max_entries < 1:
            msg = "max_entries must be at least 1"
            raise ValueError(msg)
        self._max = max_entries
        self._items: OrderedDict[str, tuple[datetime, tuple[GeocodeCandidate, ...]]] = OrderedDict()

    def get(self, key: str, now: datetime) -> tuple[GeocodeCandidate, ...] | None:
        """Returns the candidates for ``key`` unless absent or expired at ``now``."""
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= now:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: str, candidates: tuple[GeocodeCandidate, ...], expires_at: datetime) -> None:
        """Stores the candidates for ``key`` until ``expires_at``, evicting the least used."""
        self._items[key] = (expires_at, candidates)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        """Returns how many entries are held."""
        return len(self._items)
