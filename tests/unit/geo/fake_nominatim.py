"""An in-process fake of the Nominatim HTTP API (``/search`` and ``/reverse``) on loopback.

It answers the real server's JSON shapes for ``format=json`` (what geopy sends: OSM-style
``class``) and ``format=jsonv2`` (``category`` instead of ``class``), records every request
(path, query parameters, headers, and the test's fake time) and can be told to fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"


@dataclass(frozen=True)
class Place:
    """What the fake knows about one OSM object."""

    lat: float
    lon: float
    display_name: str
    category: str = "highway"
    type: str = "residential"
    place_rank: int = 26
    importance: float = 0.1
    addresstype: str = "road"
    name: str = ""
    address: Mapping[str, str] = field(default_factory=dict)
    osm_id: int = 1


# Real places with their real Semarang addresses (coordinates approximate).
LAWANG_SEWU = Place(
    lat=-6.98391,
    lon=110.41040,
    display_name=(
        "Lawang Sewu, Jalan Pemuda, Sekayu, Semarang Tengah, Semarang, Jawa Tengah, "
        "50132, Indonesia"
    ),
    category="tourism",
    type="attraction",
    place_rank=30,
    importance=0.35,
    addresstype="tourism",
    name="Lawang Sewu",
    address={
        "tourism": "Lawang Sewu",
        "road": "Jalan Pemuda",
        "village": "Sekayu",
        "city_district": "Semarang Tengah",
        "city": "Semarang",
        "state": "Jawa Tengah",
        "postcode": "50132",
        "country": "Indonesia",
        "country_code": "id",
    },
    osm_id=41234567,
)
JALAN_PANDANARAN = Place(
    lat=-6.98660,  # the north side of the street, which bounds Pekunden and Mugasari
    lon=110.41600,
    display_name=(
        "Jalan Pandanaran, Pekunden, Semarang Tengah, Semarang, Jawa Tengah, 50134, Indonesia"
    ),
    name="Jalan Pandanaran",
    type="primary",
    osm_id=23456789,
)
# A same-named street in Demak, outside the city.
JALAN_PEMUDA_DEMAK = Place(
    lat=-6.89430,
    lon=110.63860,
    display_name="Jalan Pemuda, Bintoro, Demak, Jawa Tengah, 59511, Indonesia",
    name="Jalan Pemuda",
    osm_id=34567890,
)


def place_json(place: Place, fmt: str, *, address: bool) -> dict[str, Any]:
    """Renders a place the way Nominatim does for ``format=json`` / ``format=jsonv2``."""
    out: dict[str, Any] = {
        "place_id": 100000 + place.osm_id % 100000,
        "licence": LICENCE,
        "osm_type": "way",
        "osm_id": place.osm_id,
        "lat": f"{place.lat:.7f}",
        "lon": f"{place.lon:.7f}",
    }
    out["category" if fmt == "jsonv2" else "class"] = place.category
    out |= {
        "type": place.type,
        "place_rank": place.place_rank,
        "importance": place.importance,
        "addresstype": place.addresstype,
        "name": place.name,
        "display_name": place.display_name,
    }
    if address:
        out["address"] = dict(place.address)
    out["boundingbox"] = [
        f"{place.lat - 0.001:.7f}",
        f"{place.lat + 0.001:.7f}",
        f"{place.lon - 0.001:.7f}",
        f"{place.lon + 0.001:.7f}",
    ]
    return out


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]
    at: float


class FakeNominatim:
    """The fake server; ``url`` is set once started."""

    def __init__(self, now: Callable[[], float] = lambda: 0.0) -> None:
        self.now = now
        self.requests: list[Recorded] = []
        self.search_results: list[Place] = [LAWANG_SEWU]
        self.reverse_result: Place | None = LAWANG_SEWU
        self.status = 200
        self.hang = False
        self.retry_after: int | None = None
        self.force_format: str | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/search", self._search)
        app.router.add_get("/reverse", self._reverse)
        # No access log: its request lines would carry the test addresses.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def _answer(self, request: web.Request) -> tuple[str, web.Response | None]:
        self.requests.append(
            Recorded(request.path, dict(request.query), dict(request.headers), self.now())
        )
        if self.hang:
            await asyncio.sleep(3600)
        if self.status != 200:
            headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
            return "", web.Response(status=self.status, text="Error", headers=headers)
        fmt = self.force_format or request.query.get("format", "xml")
        if fmt not in {"json", "jsonv2"}:
            return "", web.Response(status=400, text="only json formats in this fake")
        return fmt, None

    async def _search(self, request: web.Request) -> web.Response:
        fmt, failure = await self._answer(request)
        if failure is not None:
            return failure
        address = request.query.get("addressdetails") == "1"
        limit = int(request.query.get("limit", "10"))
        body = [place_json(p, fmt, address=address) for p in self.search_results[:limit]]
        return web.json_response(body)

    async def _reverse(self, request: web.Request) -> web.Response:
        fmt, failure = await self._answer(request)
        if failure is not None:
            return failure
        if self.reverse_result is None:
            return web.json_response({"error": "Unable to geocode"})
        address = request.query.get("addressdetails", "1") == "1"
        return web.json_response(place_json(self.reverse_result, fmt, address=address))
