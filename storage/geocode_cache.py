"""A durable geocoding cache in the ``geocode_cache`` table (the ``GeocodeCache`` port).

Each call uses its own short session and transaction, independent of any unit of work, so a
cache write never rides on (or blocks) a report's transaction. An empty candidate list is a
valid cached answer ("nothing found"), distinct from a miss (``None``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.domain.model import GeocodeCandidate
from storage.codec import candidate_from_json, candidate_to_json, ensure_utc
from storage.db import dialect_insert
from storage.models import GeocodeCacheRow

logger = logging.getLogger(__name__)

_PAYLOAD_VERSION = 1
_MAX_KEY_LENGTH = 200  # the column holds 255; longer queries are stored by their digest
_DIGEST_PREFIX = "sha256:"


def storage_key(key: str) -> str:
    """Return the primary key under which ``key`` is stored (long keys by their digest)."""
    if len(key) <= _MAX_KEY_LENGTH and not key.startswith(_DIGEST_PREFIX):
        return key
    return _DIGEST_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _encode(candidates: Sequence[GeocodeCandidate]) -> dict[str, Any]:
    return {"v": _PAYLOAD_VERSION, "candidates": [candidate_to_json(c) for c in candidates]}


def _decode(payload: Any) -> list[GeocodeCandidate] | None:
    if not isinstance(payload, dict) or payload.get("v") != _PAYLOAD_VERSION:
        return None
    try:
        return [candidate_from_json(item) for item in payload["candidates"]]
    except (KeyError, TypeError, ValueError):
        return None


class SqlGeocodeCache:
    """Normalised query -> geocoding candidates, kept until their expiry time."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def get(self, key: str, now: datetime) -> list[GeocodeCandidate] | None:
        """Return the unexpired candidates stored for ``key`` or None."""
        async with self._session_factory() as session:
            payload = await session.scalar(
                select(GeocodeCacheRow.payload).where(
                    GeocodeCacheRow.key == storage_key(key),
                    GeocodeCacheRow.expires_at > ensure_utc(now),
                )
            )
        if payload is None:
            return None
        candidates = _decode(payload)
        if candidates is None:
            # An entry written by another version of the code: treat it as a miss.
            logger.warning("geocode cache entry with an unreadable payload ignored")
        return candidates

    async def put(
        self, key: str, candidates: Sequence[GeocodeCandidate], expires_at: datetime
    ) -> None:
        """Store (or replace) the candidates for ``key``."""
        values = {
            "key": storage_key(key),
            "payload": _encode(candidates),
            "expires_at": ensure_utc(expires_at),
        }
        async with self._session_factory() as session, session.begin():
            dialect = session.get_bind().dialect.name
            statement = dialect_insert(dialect, GeocodeCacheRow).values(**values)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[GeocodeCacheRow.key],
                    set_={
                        "payload": statement.excluded.payload,
                        "expires_at": statement.excluded.expires_at,
                        "created_at": func.now(),
                    },
                )
            )

    async def purge_expired(self, now: datetime) -> int:
        """Delete entries expired at ``now``; return how many went."""
        async with self._session_factory() as session, session.begin():
            result = await session.execute(
                delete(GeocodeCacheRow).where(GeocodeCacheRow.expires_at <= ensure_utc(now))
            )
        return int(getattr(result, "rowcount", 0) or 0)
