"""An in-memory ``GeocodeCache`` with the same contract as ``storage.geocode_cache``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.model import GeocodeCandidate


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime refused: storage keeps aware UTC times only")
    return value


class InMemoryGeocodeCache:
    """Normalised query -> candidates, kept until their expiry time."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[tuple[GeocodeCandidate, ...], datetime]] = {}

    async def get(self, key: str, now: datetime) -> list[GeocodeCandidate] | None:
        """Return the unexpired candidates stored for ``key`` or None."""
        _require_aware(now)
        entry = self.entries.get(key)
        if entry is None or entry[1] <= now:
            return None
        return list(entry[0])

    async def put(
        self, key: str, candidates: Sequence[GeocodeCandidate], expires_at: datetime
    ) -> None:
        """Store (or replace) the candidates for ``key``."""
        self.entries[key] = (tuple(candidates), _require_aware(expires_at))
