"""Geocoding for the intake and the operators: Nominatim (via geopy) plus an offline gazetteer.

The composition root calls::

    build_geocoder(
        mode: str,                         # GEOCODER: "nominatim" | "offline"
        *,
        nominatim_url: str = PUBLIC_NOMINATIM_URL,   # NOMINATIM_URL
        user_agent: str | None = None,     # NOMINATIM_USER_AGENT (required for "nominatim")
        timeout: float = 5.0,              # seconds per request (and max rate-limit queueing)
        min_interval: float = 1.0,         # seconds between requests (>= 1 on the public server)
        clock: Clock,                      # dates cache entries (bot.services.clock.SystemClock)
        cache: GeocodeCache | None = None, # the durable cache from storage/ (None: in memory)
        cache_ttl: timedelta = 7 days,
        failure_cooldown: float = 30.0,    # seconds Nominatim is left alone after a failure
        monotonic=time.monotonic, sleep=asyncio.sleep,  # rate limiter time (tests: fakes)
        gazetteer: Gazetteer | None = None,  # None: the packaged Semarang data, loaded once
    ) -> CompositeGeocoder                 # satisfies bot.services.ports.Geocoder

and closes it with ``await geocoder.aclose()`` on shutdown.

A text naming a landmark of ``data/semarang_landmarks.csv`` exactly is answered offline at
once (no Nominatim request); ``geocoder.find_landmark(text)`` reads the landmark (or main
road) in a whole free-text message without any request; ``geocoder.find_place(text)`` also
reads a kelurahan or kecamatan named exactly (one-message reports). A candidate with ``fuzzy=True``
came from a name typed with typos and must be confirmed by the citizen.

Modules: ``factory`` (build_geocoder), ``composite`` (CompositeGeocoder: landmarks first,
cache, fallback, ranking), ``nominatim`` (the geopy adapter), ``gazetteer`` (polygons,
area names, landmarks and roads; also a ``Geocoder`` on its own), ``landmarks`` (the
landmark and road rows, their quality and name keys), ``text`` (abbreviations, RT/RW),
``cache`` (in-memory cache, LRU), ``ratelimit``.
"""

from typing import TYPE_CHECKING

from bot.config import PUBLIC_NOMINATIM_URL
from bot.geo.cache import InMemoryGeocodeCache
from bot.geo.composite import CompositeGeocoder
from bot.geo.factory import GEOCODER_MODES, build_geocoder
from bot.geo.gazetteer import Gazetteer, load_gazetteer

if TYPE_CHECKING:
    from bot.services.ports import Geocoder

    def _satisfy_the_port(composite: CompositeGeocoder, gazetteer: Gazetteer) -> list[Geocoder]:
        """Never called: mypy checks here that both implement the ``Geocoder`` port."""
        return [composite, gazetteer]


__all__ = [
    "GEOCODER_MODES",
    "PUBLIC_NOMINATIM_URL",
    "CompositeGeocoder",
    "Gazetteer",
    "InMemoryGeocodeCache",
    "build_geocoder",
    "load_gazetteer",
]
