"""The application's geocoder: landmarks first, Nominatim when it answers, the gazetteer always.

A text naming a landmark exactly ("Simpang Lima", "kebakaran di pasar johar") is answered
from the gazetteer at once, without a Nominatim request (no 1-second slot per request in a
surge); one that also names a street or a house number still goes to Nominatim, with the
landmark offered after Nominatim's answers.

``geocode`` and ``reverse`` never raise for a network, server or cache problem and never
wait longer than the Nominatim timeout (plus the bounded rate-limit queue): every failure
falls back to the offline gazetteer, because a failed geocode must never block a report.
Kelurahan and kecamatan always come from the local polygons, whatever Nominatim says.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from bot.domain.model import Area, GeocodeCandidate
from bot.geo.cache import LruCache
from bot.geo.gazetteer import Gazetteer
from bot.geo.nominatim import NOMINATIM_SOURCE, NominatimPlace, NominatimUnavailableError
from bot.geo.text import parse_address

if TYPE_CHECKING:  # only the port types; importing bot.services would load the use cases
    from bot.services.ports import Clock, GeocodeCache

logger = logging.getLogger(__name__)

#: How long a Nominatim answer is reused (OSM changes slowly; addresses do not move).
DEFAULT_CACHE_TTL = timedelta(days=7)
#: How long "Nominatim found nothing" is reused (the map may be fixed meanwhile).
DEFAULT_EMPTY_TTL = timedelta(days=1)
#: How many answers the in-process LRU keeps in front of the durable cache.
DEFAULT_LRU_SIZE = 4096


class PlaceSource(Protocol):
    """What the composite needs from a Nominatim client (a fake in tests and benchmarks)."""

    async def search(self, query: str, *, language: str) -> list[NominatimPlace]:
        """Returns places for a query or raises ``NominatimUnavailableError``."""
        ...

    async def reverse(self, lat: float, lon: float, *, language: str) -> NominatimPlace | None:
        """Returns the place at a point, None, or raises ``NominatimUnavailableError``."""
        ...

    async def aclose(self) -> None:
        """Releases network resources."""
        ...


class CompositeGeocoder:
    """Nominatim (cached, rate limited) with the offline gazetteer as fallback and area source.

    With ``nominatim=None`` it is the offline geocoder (``GEOCODER=offline``).
    """

    def __init__(
        self,
        gazetteer: Gazetteer,
        *,
        nominatim: PlaceSource | None,
        cache: GeocodeCache | None,
        clock: Clock,
        cache_ttl: timedelta = DEFAULT_CACHE_TTL,
        empty_ttl: timedelta = DEFAULT_EMPTY_TTL,
        lru_size: int = DEFAULT_LRU_SIZE,
    ) -> None:
        """Wires the parts; ``cache`` is the durable cache behind the in-process LRU."""
        self.gazetteer = gazetteer
        self._nominatim = nominatim
        self._cache = cache
        self._clock = clock
        self._ttl = cache_ttl
        self._empty_ttl = empty_ttl
        self._lru = LruCache(lru_size)

    @property
    def nominatim(self) -> PlaceSource | None:
        """The Nominatim client, None when offline."""
        return self._nominatim

    async def geocode(self, text: str, *, language: str = "id") -> list[GeocodeCandidate]:
        """Returns ranked candidates: an exact landmark at once, else Nominatim's, else offline.

        Order: when the text names a landmark exactly and no street or house number, the
        gazetteer's answers only (no request). Otherwise Nominatim answers inside the city
        (Nominatim's order) followed by the landmarks named exactly in the text, or, only
        when Nominatim has none inside, the gazetteer's answers (landmarks, kelurahan/
        kecamatan centroids, roads); then Nominatim answers outside the city. The typed
        RT/RW is on every candidate's ``rt_rw``.
        """
        parsed = parse_address(text)
        if not parsed.key:
            return []
        if self._nominatim is None:
            return self.gazetteer.candidates(parsed)
        # Most addresses name no landmark: then the full offline reading waits for a fallback.
        offline = self.gazetteer.match(parsed) if self.gazetteer.mentions_landmark(parsed) else None
        if offline is not None and offline.decisive:
            return offline.candidates
        found = await self._cached(f"search:{language}:{parsed.key}", parsed.query, language)
        inside = [c for c in found or () if c.area is not None]
        outside = [c for c in found or () if c.area is None]
        if inside:
            named = [c for c in offline.landmarks if not c.fuzzy] if offline else []
            ranked = [*inside, *named, *outside]
        else:
            ranked = [*(offline or self.gazetteer.match(parsed)).candidates, *outside]
        if parsed.rt_rw is None:
            return ranked
        return [dataclasses.replace(c, rt_rw=parsed.rt_rw) for c in ranked]

    async def reverse(self, lat: float, lon: float, *, language: str = "id") -> str | None:
        """Returns Nominatim's address of a point, else the gazetteer's, else None."""
        if self._nominatim is not None:
            key = f"reverse:{language}:{lat:.5f},{lon:.5f}"
            found = await self._cached(key, None, language, point=(lat, lon))
            if found:
                return found[0].display_address
        area = self.gazetteer.locate_area(lat, lon)
        return None if area is None else self.gazetteer.address_of(area)

    def find_landmark(self, text: str) -> GeocodeCandidate | None:
        """Returns the landmark (else main road) named in free text; offline, never a request."""
        return self.gazetteer.find_landmark(text)

    def find_place(self, text: str) -> GeocodeCandidate | None:
        """Returns the landmark, main road or area named in free text; never a request."""
        return self.gazetteer.find_place(text)

    def locate_area(self, lat: float, lon: float) -> Area | None:
        """Returns the kelurahan/kecamatan of a point from the polygons, None outside."""
        return self.gazetteer.locate_area(lat, lon)

    async def aclose(self) -> None:
        """Closes Nominatim's HTTP session."""
        if self._nominatim is not None:
            await self._nominatim.aclose()

    async def _cached(
        self,
        key: str,
        query: str | None,
        language: str,
        *,
        point: tuple[float, float] | None = None,
    ) -> tuple[GeocodeCandidate, ...] | None:
        """Returns the answer for ``key`` from the LRU, the durable cache or Nominatim.

        None means Nominatim could not answer (nothing is cached then).
        """
        now = self._clock.now()
        hit = self._lru.get(key, now)
        if hit is not None:
            return hit
        if self._cache is not None:
            try:
                stored = await self._cache.get(key, now)
            except Exception as exc:  # a broken cache must not stop a geocode
                logger.warning("Geocode cache read failed: %s", type(exc).__name__)
                stored = None
            if stored is not None:
                # The durable cache does not tell its expiry; keep it briefly in process.
                self._lru.put(key, tuple(stored), now + min(self._empty_ttl, self._ttl))
                return tuple(stored)
        answer = await self._ask_nominatim(query, language, point)
        if answer is None:
            return None
        expires_at = now + (self._ttl if answer else self._empty_ttl)
        self._lru.put(key, answer, expires_at)
        if self._cache is not None:
            try:
                await self._cache.put(key, answer, expires_at)
            except Exception as exc:  # the answer is still good for this citizen
                logger.warning("Geocode cache write failed: %s", type(exc).__name__)
        return answer

    async def _ask_nominatim(
        self, query: str | None, language: str, point: tuple[float, float] | None
    ) -> tuple[GeocodeCandidate, ...] | None:
        assert self._nominatim is not None  # noqa: S101 -- callers check; narrows the type
        try:
            if point is not None:
                place = await self._nominatim.reverse(*point, language=language)
                places = [] if place is None else [place]
            else:
                places = await self._nominatim.search(query or "", language=language)
        except NominatimUnavailableError as exc:
            logger.warning("Nominatim unavailable (%s); using the offline gazetteer", exc)
            return None
        except Exception as exc:  # fail safe: a geocode never breaks a report
            # The class only, no traceback: its messages may hold the address.
            logger.error("Nominatim call failed unexpectedly: %s", type(exc).__name__)
            return None
        return self._rank(places)

    def _rank(self, places: Sequence[NominatimPlace]) -> tuple[GeocodeCandidate, ...]:
        """Turns places into candidates with local areas, in Nominatim's order, deduplicated."""
        seen: set[str] = set()
        candidates: list[GeocodeCandidate] = []
        for position, place in enumerate(places):
            if place.display_name in seen:
                continue
            seen.add(place.display_name)
            candidates.append(
                GeocodeCandidate(
                    lat=place.lat,
                    lon=place.lon,
                    display_address=place.display_name,
                    confidence=_confidence(place, position),
                    source=NOMINATIM_SOURCE,
                    area=self.gazetteer.locate_area(place.lat, place.lon),
                )
            )
        return tuple(candidates)


def _confidence(place: NominatimPlace, position: int) -> float:
    """How precise a Nominatim answer is (its place rank), a little less for later answers.

    Building or POI 0.9, street 0.75, neighbourhood 0.55, village/kelurahan 0.45, wider
    0.3; 0.5 when Nominatim gave no rank. Each later position costs 0.05.
    """
    rank = place.place_rank
    if rank is None:
        base = 0.5
    elif rank >= 28:
        base = 0.9
    elif rank >= 26:
        base = 0.75
    elif rank >= 20:
        base = 0.55
    elif rank >= 16:
        base = 0.45
    else:
        base = 0.3
    return round(max(0.1, base - 0.05 * position), 2)
