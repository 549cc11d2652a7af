"""The city map of the demo console: the shipped kelurahan polygons as SVG paths.

No tile server and no internet: the boundaries in ``bot/geo/data`` are projected once
(equirectangular, longitude scaled by cos(latitude), good to metres over one city) onto an
SVG canvas. The console turns a click back into latitude/longitude with the same numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

WIDTH = 1000.0
"""SVG units across the city (the height follows the city's shape)."""
MARGIN = 10.0


@dataclass(frozen=True, slots=True)
class Projection:
    """Longitude/latitude <-> SVG coordinates (y grows southwards)."""

    west: float
    north: float
    scale: float
    """SVG units per degree of latitude."""
    aspect: float
    """cos(latitude of the city's middle): a degree of longitude is this much shorter."""

    def to_svg(self, lon: float, lat: float) -> tuple[float, float]:
        """The point on the canvas."""
        x = MARGIN + (lon - self.west) * self.scale * self.aspect
        y = MARGIN + (self.north - lat) * self.scale
        return round(x, 1), round(y, 1)

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        """The inverse of :meth:`to_svg`."""
        return (
            self.west + (x - MARGIN) / (self.scale * self.aspect),
            self.north - (y - MARGIN) / self.scale,
        )

    def to_json(self) -> dict[str, float]:
        """What the console needs to invert a click."""
        return {
            "west": self.west,
            "north": self.north,
            "scale": self.scale,
            "aspect": self.aspect,
            "margin": MARGIN,
        }


def _rings(geometry: dict[str, Any]) -> list[list[list[float]]]:
    if geometry["type"] == "Polygon":
        return list(geometry["coordinates"])
    return [ring for polygon in geometry["coordinates"] for ring in polygon]


def boundary_features() -> list[dict[str, Any]]:
    """The shipped GeoJSON features: the city, its kecamatan and kelurahan."""
    data = resources.files("bot.geo") / "data" / "semarang_boundaries.geojson"
    features: list[dict[str, Any]] = json.loads(data.read_text(encoding="utf-8"))["features"]
    return features


@cache
def city_map() -> dict[str, Any]:
    """The map as the console draws it: view box, projection, kelurahan and kecamatan paths."""
    features = boundary_features()
    points = [
        point
        for feature in features
        if feature["properties"]["level"] == "kota"
        for ring in _rings(feature["geometry"])
        for point in ring
    ]
    west = min(p[0] for p in points)
    east = max(p[0] for p in points)
    south = min(p[1] for p in points)
    north = max(p[1] for p in points)
    aspect = math.cos(math.radians((north + south) / 2))
    scale = (WIDTH - 2 * MARGIN) / ((east - west) * aspect)
    projection = Projection(west, north, scale, aspect)
    height = round((north - south) * scale + 2 * MARGIN, 1)

    def path(geometry: dict[str, Any]) -> str:
        parts = []
        for ring in _rings(geometry):
            xy = [projection.to_svg(lon, lat) for lon, lat in ring]
            parts.append("M" + "L".join(f"{x},{y}" for x, y in xy) + "Z")
        return "".join(parts)

    areas = []
    for feature in features:
        props = feature["properties"]
        if props["level"] in ("kelurahan", "kecamatan"):
            areas.append(
                {
                    "level": props["level"],
                    "code": props["code"],
                    "name": props["name"],
                    "d": path(feature["geometry"]),
                    "label": projection.to_svg(props["centroid_lng"], props["centroid_lat"]),
                }
            )
    return {
        "width": WIDTH,
        "height": height,
        "projection": projection.to_json(),
        "areas": areas,
    }
