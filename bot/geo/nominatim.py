"""The Nominatim adapter: geopy's ``Nominatim`` on its asynchronous aiohttp adapter.

Polite by construction (usage policy of the public server): one identifying User-Agent,
an explicit timeout, at most one request per ``min_interval`` (never under 1 s for the
public server), searches restricted to Indonesia and to the city's viewbox. Every failure
(network, timeout, HTTP status, bad JSON, rate limit) becomes ``NominatimUnavailableError``
carrying only the error class name, and the client then stays quiet for a cool-down so a
dead server does not make every citizen wait for the timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from geopy.adapters import AioHTTPAdapter
from geopy.exc import GeocoderQueryError, GeocoderRateLimited, GeopyError
from geopy.geocoders import Nominatim

from bot.geo.ratelimit import AsyncRateLimiter, Monotonic

logger = logging.getLogger(__name__)

PUBLIC_NOMINATIM_HOST = "nominatim.openstreetmap.org"
#: The public server's minimum interval between requests, in seconds.
PUBLIC_MIN_INTERVAL = 1.0
#: ``GeocodeCandidate.source`` of answers that came from Nominatim.
NOMINATIM_SOURCE = "nominatim"
#: Nominatim's reverse zoom for building-level addresses.
REVERSE_ZOOM = 18


class NominatimUnavailableError(Exception):
    """Nominatim gave no usable answer now; the reason is an error class name, nothing more."""


@dataclass(frozen=True, slots=True)
class NominatimPlace:
    """One place of a Nominatim answer (``format=json`` or ``format=jsonv2`` shape)."""

    lat: float
    lon: float
    display_name: str
    place_rank: int | None = None
    category: str | None = None
    type: str | None = None
    importance: float | None = None

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> NominatimPlace | None:
        """Parses one place; None when it has no usable coordinates or name."""
        try:
            lat, lon = float(raw["lat"]), float(raw["lon"])
            display_name = str(raw["display_name"])
        except (KeyError, TypeError, ValueError):
            return None
        rank = raw.get("place_rank")
        importance = raw.get("importance")
        category = raw.get("category", raw.get("class"))  # jsonv2 renamed "class"
        kind = raw.get("type")
        return cls(
            lat=lat,
            lon=lon,
            display_name=display_name,
            place_rank=_to_int(rank),
            category=None if category is None else str(category),
            type=None if kind is None else str(kind),
            importance=_to_float(importance),
        )


def is_public_server(base_url: str) -> bool:
    """Whether ``base_url`` is the OSM Foundation's public Nominatim."""
    return (urlsplit(base_url).hostname or "").lower() == PUBLIC_NOMINATIM_HOST


class NominatimClient:
    """Searches and reverse-geocodes through Nominatim, rate limited and bounded in time."""

    def __init__(
        self,
        *,
        base_url: str,
        user_agent: str,
        timeout: float,
        limiter: AsyncRateLimiter,
        viewbox: tuple[float, float, float, float],
        country_codes: str = "id",
        max_results: int = 5,
        max_queue_wait: float | None = None,
        failure_cooldown: float = 30.0,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        """Creates the client; nothing is connected until the first request.

        ``viewbox`` is (min_lon, min_lat, max_lon, max_lat). ``max_queue_wait`` (default:
        ``timeout``) bounds how long a request may queue behind the rate limit before the
        caller is answered from elsewhere; ``failure_cooldown`` is how long the client
        refuses to call a server that just failed (a 429's Retry-After extends it).
        """
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            msg = "NOMINATIM_URL must be an http(s) URL"
            raise ValueError(msg)
        if not user_agent.strip():
            msg = "a User-Agent identifying the application is required"
            raise ValueError(msg)
        if timeout <= 0:
            msg = "timeout must be positive"
            raise ValueError(msg)
        if is_public_server(base_url) and limiter.min_interval < PUBLIC_MIN_INTERVAL:
            msg = "the public Nominatim allows at most one request per second"
            raise ValueError(msg)
        _quiet_library_logs()
        self.base_url = base_url
        self._timeout = timeout
        self._limiter = limiter
        self._viewbox = [(viewbox[1], viewbox[0]), (viewbox[3], viewbox[2])]  # (lat, lon)
        self._country_codes = country_codes
        self._max_results = max_results
        self._max_queue_wait = timeout if max_queue_wait is None else max_queue_wait
        self._failure_cooldown = failure_cooldown
        self._monotonic = monotonic
        self._quiet_until = -float("inf")
        self._geopy = Nominatim(
            domain=parts.netloc + parts.path.rstrip("/"),
            scheme=parts.scheme,
            user_agent=user_agent,
            timeout=timeout,
            adapter_factory=AioHTTPAdapter,
        )

    @property
    def min_interval(self) -> float:
        """The minimum time between two requests, in seconds."""
        return self._limiter.min_interval

    async def search(self, query: str, *, language: str) -> list[NominatimPlace]:
        """Returns the places Nominatim finds for a free-form query (may be empty)."""
        found = await self._call(
            lambda: self._geopy.geocode(
                query,
                exactly_one=False,
                limit=self._max_results,
                language=language,
                country_codes=self._country_codes,
                viewbox=self._viewbox,
                bounded=True,
                timeout=self._timeout,
            )
        )
        places = (NominatimPlace.from_raw(location.raw) for location in found or ())
        return [place for place in places if place is not None]

    async def reverse(self, lat: float, lon: float, *, language: str) -> NominatimPlace | None:
        """Returns the address Nominatim gives a point, or None when it knows none."""
        found = await self._call(
            lambda: self._geopy.reverse(
                (lat, lon),
                exactly_one=True,
                language=language,
                addressdetails=True,
                zoom=REVERSE_ZOOM,
                timeout=self._timeout,
            )
        )
        return None if found is None else NominatimPlace.from_raw(found.raw)

    async def aclose(self) -> None:
        """Closes the HTTP session."""
        await self._geopy.adapter.__aexit__(None, None, None)

    async def _call(self, request: Callable[[], Awaitable[Any]]) -> Any:
        if self._monotonic() < self._quiet_until:
            raise NominatimUnavailableError("CoolingDown")
        if not await self._limiter.acquire(max_wait=self._max_queue_wait):
            raise NominatimUnavailableError("RateLimitQueueFull")
        try:
            return await request()
        except GeocoderQueryError as exc:  # this query was refused; the server is fine
            raise NominatimUnavailableError(type(exc).__name__) from exc
        except (GeopyError, OSError, TimeoutError, ValueError) as exc:
            cooldown = self._failure_cooldown
            if isinstance(exc, GeocoderRateLimited) and exc.retry_after:
                cooldown = max(cooldown, float(exc.retry_after))
            self._quiet_until = self._monotonic() + cooldown
            raise NominatimUnavailableError(type(exc).__name__) from exc


def _quiet_library_logs() -> None:
    """Keeps geopy's request log lines (full URLs: the typed address) out of the logs."""
    geopy_logger = logging.getLogger("geopy")
    if geopy_logger.level < logging.WARNING:
        geopy_logger.setLevel(logging.WARNING)


def _to_int(value: object) -> int | None:
    try:
        return None if value is None else int(str(value))
    except ValueError:
        return None


def _to_float(value: object) -> float | None:
    try:
        return None if value is None else float(str(value))
    except ValueError:
        return None
