"""``build_geocoder``: the one place where the geocoder's parts are put together."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.config import PUBLIC_NOMINATIM_URL
from bot.geo.cache import InMemoryGeocodeCache
from bot.geo.composite import DEFAULT_CACHE_TTL, CompositeGeocoder
from bot.geo.gazetteer import Gazetteer, load_gazetteer
from bot.geo.nominatim import (
    PUBLIC_MIN_INTERVAL,
    NominatimClient,
    is_public_server,
)
from bot.geo.ratelimit import AsyncRateLimiter, Monotonic, Sleep

if TYPE_CHECKING:  # only the port types; importing bot.services would load the use cases
    from bot.services.ports import Clock, GeocodeCache

#: The values of the ``GEOCODER`` setting.
GEOCODER_MODES = ("nominatim", "offline")
#: Degrees added around the city's polygons for Nominatim's viewbox (about 1 km).
VIEWBOX_PADDING_DEG = 0.01


def build_geocoder(
    mode: str,
    *,
    nominatim_url: str = PUBLIC_NOMINATIM_URL,
    user_agent: str | None = None,
    timeout: float = 5.0,
    min_interval: float = PUBLIC_MIN_INTERVAL,
    clock: Clock,
    cache: GeocodeCache | None = None,
    cache_ttl: timedelta = DEFAULT_CACHE_TTL,
    failure_cooldown: float = 30.0,
    monotonic: Monotonic = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    gazetteer: Gazetteer | None = None,
) -> CompositeGeocoder:
    """Builds the application's geocoder (no network activity until the first request).

    ``mode`` is ``GEOCODER``: ``"nominatim"`` (Nominatim with the offline gazetteer as
    fallback) or ``"offline"`` (the gazetteer alone; the Nominatim arguments are ignored).
    ``user_agent`` is required for ``"nominatim"``. ``timeout`` bounds each HTTP request
    and the wait for a rate-limit slot, in seconds. ``min_interval`` is the minimum time
    between two Nominatim requests; for the public server it is never below 1 s.
    ``clock`` dates cache entries; ``cache`` is the durable cache (``None``: an in-memory
    one). ``monotonic``/``sleep`` drive the rate limiter and
    the failure cool-down (tests inject fakes). Raises ``ValueError`` for a bad argument.
    """
    gazetteer = gazetteer or load_gazetteer()
    if mode == "offline":
        return CompositeGeocoder(gazetteer, nominatim=None, cache=None, clock=clock)
    if mode != "nominatim":
        msg = f"GEOCODER must be one of {', '.join(GEOCODER_MODES)}"
        raise ValueError(msg)
    if not user_agent:
        msg = "NOMINATIM_USER_AGENT is required when GEOCODER=nominatim"
        raise ValueError(msg)
    if is_public_server(nominatim_url):
        min_interval = max(min_interval, PUBLIC_MIN_INTERVAL)
    min_lon, min_lat, max_lon, max_lat = gazetteer.bounds
    pad = VIEWBOX_PADDING_DEG
    client = NominatimClient(
        base_url=nominatim_url,
        user_agent=user_agent,
        timeout=timeout,
        limiter=AsyncRateLimiter(min_interval, monotonic=monotonic, sleep=sleep),
        viewbox=(min_lon - pad, min_lat - pad, max_lon + pad, max_lat + pad),
        failure_cooldown=failure_cooldown,
        monotonic=monotonic,
    )
    return CompositeGeocoder(
        gazetteer,
        nominatim=client,
        cache=cache if cache is not None else InMemoryGeocodeCache(),
        clock=clock,
        cache_ttl=cache_ttl,
    )
