"""The offline gazetteer of Kota Semarang: boundary polygons, area names, landmarks, roads.

It answers these questions without any network:

* ``locate_area(lat, lon)``: which kelurahan (and so which kecamatan) a point is in. Point in
  polygon on the kelurahan layer; a point in no polygon gets the nearest kelurahan within
  500 m with ``inside=False`` and ``distance_m``: the gaps between polygons (simplification
  slivers, the port), and equally a strip just beyond the simplified city boundary and
  coastline, where the data cannot tell in from out. Anything further is outside (None).
  The kecamatan comes from the kelurahan code prefix (``33.74.NN``), never from the
  kecamatan polygons, which cover the city less well.
* ``geocode(text)``: the places named in typed text, best first:

  - landmarks of ``data/semarang_landmarks.csv`` by name or alias, anywhere in the text
    ("kebakaran di pasar johar"), answered at the landmark's own point with the kelurahan
    of that point (from the polygons, never from the CSV) and a confidence from the row's
    quality (see ``bot.geo.landmarks``);
  - kelurahan/kecamatan names (typos, "Kel."/"Kec." prefixes, street names around them),
    answered with the area's centroid and a LOW confidence so the UI can say the pin is
    approximate;
  - the few main roads of ``data/semarang_roads.csv`` ("Jl. Pandanaran 10"), answered at
    the landmark a cited page puts on them, with a lower confidence still.

  A name read with typos gives a candidate with ``fuzzy=True``: a guess to offer, never
  to take silently ("Bandungan", a town outside the city, reads as Kelurahan Bendungan).
* ``find_landmark(text)``: the landmark (or main road) named in free text, for one-message
  reports; offline, so the text never leaves the process.
* ``reverse(lat, lon)``: "Kelurahan X, Kecamatan Y, Kota Semarang".

Geometry is projected once to a local metric plane (equirectangular around the city's
centre; the error over the city's 26 km is far below the data's simplification), so
distances are in metres. ``locate_area`` goes through a 250 m grid: a cell that lies wholly
inside one kelurahan answers at once, a boundary cell tests its few polygons with prepared
``intersects_xy``, and a cell more than 500 m from every polygon answers None at once.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import numpy as np
import shapely
from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.domain.model import Area, GeocodeCandidate
from bot.geo.landmarks import (
    FUZZY_LANDMARK_PENALTY,
    LANDMARK_SOURCE,
    ROAD_CONFIDENCE,
    ROAD_SOURCE,
    Landmark,
    LandmarkRow,
    RoadRow,
    landmark_rows,
    name_key,
    road_rows,
    tokens,
)
from bot.geo.text import ParsedAddress, parse_address

logger = logging.getLogger(__name__)

#: ``GeocodeCandidate.source`` of a kelurahan or kecamatan centroid.
GAZETTEER_SOURCE = "gazetteer"
#: Confidence of a kelurahan centroid found by its exact name (the best a gazetteer gives).
KELURAHAN_CONFIDENCE = 0.4
#: Confidence of a kecamatan centroid found by its exact name.
KECAMATAN_CONFIDENCE = 0.2
_FUZZY_PENALTY = 0.05
_AMBIGUOUS_PENALTY = 0.1

_DATA_PACKAGE = "bot.geo"
_CSV_NAME = "semarang_wilayah.csv"
_GEOJSON_NAME = "semarang_boundaries.geojson"
_LANDMARKS_NAME = "semarang_landmarks.csv"
_ROADS_NAME = "semarang_roads.csv"

_CELL_M = 250.0
_LETTERS = re.compile(r"[^\W\d_]+")
# Words that announce what the next name is. "kel"/"kec" are already expanded by the parser.
_KELURAHAN_WORDS = frozenset({"kelurahan", "kel", "desa", "kalurahan"})
_KECAMATAN_WORDS = frozenset({"kecamatan", "kec"})
# A name followed by this word is a landmark, not the area: Tugu Muda is in Sekayu,
# nowhere near Kecamatan Tugu.
_NOT_AN_AREA: Mapping[str, frozenset[str]] = {"tugu": frozenset({"muda"})}
_MAX_SPAN_WORDS = 3
# Words that make a text an address Nominatim can place better than a landmark near it.
_STREET_WORDS = frozenset({"jalan", "gang", "lorong", "perumahan", "kompleks", "komplek", "blok"})
# Landmark names shorter than this are matched exactly only: a typo of "Johar" is "Johan",
# a man's name, and one of "Tawang" is "tawan" (captive).
_FUZZY_LANDMARK_MIN_LETTERS = 7
# Everyday words one letter from a name, never read as its typo: "sekarang" (now) is
# "Sekaran" (a kelurahan) plus a letter, and "Semarang" with one changed.
_EVERYDAY_WORDS = frozenset({"sekarang"})

AreaKind = Literal["kelurahan", "kecamatan"]
Kind = Literal["kelurahan", "kecamatan", "landmark", "road"]


@dataclass(frozen=True, slots=True)
class Kelurahan:
    """One kelurahan of the city (Kemendagri code ``33.74.NN.NNNN``)."""

    code: str
    name: str
    kecamatan_code: str
    kecamatan_name: str
    lat: float
    lon: float
    postal_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Kecamatan:
    """One kecamatan of the city (Kemendagri code ``33.74.NN``)."""

    code: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Road:
    """A main road answered at a landmark a cited page puts on it (no geometry of its own)."""

    row: RoadRow
    landmark: Landmark
    landmark_index: int  # in ``Gazetteer.landmarks``


@dataclass(frozen=True, slots=True)
class OfflineMatch:
    """Everything the gazetteer reads in one text."""

    candidates: list[GeocodeCandidate]
    """All answers, best first: exact landmarks, then the rest by confidence, then the
    landmarks whose alias is also an area's name."""
    landmarks: list[GeocodeCandidate]
    """The landmark answers among them, exact ones first, without those named by an
    area's name: "banjir di Tanjung Mas" means the kelurahan, not the port."""
    decisive: bool
    """An exact landmark name is in the text and the text names no street or house number
    besides it: the landmark is the answer, no online geocoder can do better."""


@dataclass(frozen=True, slots=True)
class _Name:
    compact: str
    kind: Kind
    index: int
    is_area_name: bool = False  # a landmark alias spelled like an area ("Tanjung Mas")


@dataclass(frozen=True, slots=True)
class _Reading:
    start: int  # character offsets in the parsed query; an area's "Kel."/"Kec." included
    end: int
    name: _Name
    edits: int
    hint: AreaKind | None


class Gazetteer:
    """Offline kelurahan/kecamatan lookup for one city; satisfies the ``Geocoder`` port."""

    #: A point in a gap between kelurahan polygons is given the nearest one up to this far.
    nearest_max_m = 500.0

    def __init__(
        self,
        kelurahan: Sequence[Kelurahan],
        kecamatan: Sequence[Kecamatan],
        polygons: Mapping[str, Any],
        *,
        city_name: str = "Kota Semarang",
        max_results: int = 5,
        landmarks: Sequence[LandmarkRow] = (),
        roads: Sequence[RoadRow] = (),
    ) -> None:
        """Builds the spatial and name indexes; ``polygons`` maps kelurahan code to geometry.

        Each landmark's kelurahan is derived from the polygons; one outside the city is left
        out, one whose CSV columns disagree is kept (the polygons win) and listed by
        ``landmark_mismatches()``. A road naming an unknown landmark is left out. Both are
        logged as warnings.
        """
        missing = [k.code for k in kelurahan if k.code not in polygons]
        if missing:
            msg = f"no polygon for kelurahan {', '.join(missing)}"
            raise ValueError(msg)
        self.city_name = city_name
        self.kelurahan: tuple[Kelurahan, ...] = tuple(kelurahan)
        self.kecamatan: tuple[Kecamatan, ...] = tuple(kecamatan)
        self._max_results = max_results
        self._kecamatan_by_code = {k.code: k for k in self.kecamatan}
        self._areas: tuple[Area, ...] = tuple(
            Area(
                kelurahan_code=k.code,
                kelurahan_name=k.name,
                kecamatan_code=k.code[:8],
                kecamatan_name=self._kecamatan_by_code[k.code[:8]].name,
            )
            for k in self.kelurahan
        )
        geoms = [polygons[k.code] for k in self.kelurahan]
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in shapely.total_bounds(geoms))
        #: (min_lon, min_lat, max_lon, max_lat) of the kelurahan layer, in degrees.
        self.bounds: tuple[float, float, float, float] = (min_lon, min_lat, max_lon, max_lat)
        self._lat0 = (min_lat + max_lat) / 2
        self._lon0 = (min_lon + max_lon) / 2
        phi = math.radians(self._lat0)
        self._ky = 111_132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
        self._kx = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)
        origin = np.array([self._lon0, self._lat0])
        scale = np.array([self._kx, self._ky])
        self._geoms = [shapely.transform(g, lambda c: (c - origin) * scale) for g in geoms]
        for geom in self._geoms:
            shapely.prepare(geom)
        self._tree = shapely.STRtree(self._geoms)
        self._build_grid()
        #: The landmarks inside the city, with their areas from the polygons.
        self.landmarks: tuple[Landmark, ...] = self._place_landmarks(landmarks)
        #: The main roads known by a landmark on them.
        self.roads: tuple[Road, ...] = self._place_roads(roads)
        self._names = self._build_names()
        self._name_strings = [n.compact for n in self._names]
        self._exact, self._exact_max_len = self._build_exact_names()

    @classmethod
    def from_package_data(cls) -> Gazetteer:
        """Loads the Semarang CSVs and GeoJSON shipped in ``bot/geo/data``."""
        data = resources.files(_DATA_PACKAGE).joinpath("data")

        def rows(name: str) -> csv.DictReader[str]:
            return csv.DictReader(io.StringIO(data.joinpath(name).read_text(encoding="utf-8")))

        geojson = json.loads(data.joinpath(_GEOJSON_NAME).read_text(encoding="utf-8"))
        return cls.from_records(
            rows(_CSV_NAME),
            geojson,
            landmarks=landmark_rows(rows(_LANDMARKS_NAME)),
            roads=road_rows(rows(_ROADS_NAME)),
        )

    @classmethod
    def from_records(
        cls,
        rows: Iterable[Mapping[str, str]],
        geojson: Mapping[str, Any],
        *,
        landmarks: Sequence[LandmarkRow] = (),
        roads: Sequence[RoadRow] = (),
    ) -> Gazetteer:
        """Builds a gazetteer from wilayah CSV rows and a boundaries FeatureCollection."""
        kelurahan: list[Kelurahan] = []
        kecamatan: list[Kecamatan] = []
        city_name = "Kota Semarang"
        for row in rows:
            level = row["level"]
            if level == "kota":
                city_name = row["name"]
            elif level == "kecamatan":
                kecamatan.append(
                    Kecamatan(row["code"], row["name"], float(row["lat"]), float(row["lng"]))
                )
            elif level == "kelurahan":
                kelurahan.append(
                    Kelurahan(
                        code=row["code"],
                        name=row["name"],
                        kecamatan_code=row["code"][:8],
                        kecamatan_name=row["kecamatan"],
                        lat=float(row["lat"]),
                        lon=float(row["lng"]),
                        postal_codes=tuple(row["postal_codes"].split()),
                    )
                )
        polygons = {
            feature["properties"]["code"]: shapely.geometry.shape(feature["geometry"])
            for feature in geojson["features"]
            if feature["properties"]["level"] == "kelurahan"
        }
        return cls(
            kelurahan, kecamatan, polygons, city_name=city_name, landmarks=landmarks, roads=roads
        )

    # -- points -> areas -------------------------------------------------------------------

    def locate_area(self, lat: float, lon: float) -> Area | None:
        """Returns the kelurahan/kecamatan of a point, or None when outside the city."""
        x = (lon - self._lon0) * self._kx
        y = (lat - self._lat0) * self._ky
        ix = math.floor((x - self._grid_x0) / _CELL_M) if math.isfinite(x) else -1
        iy = math.floor((y - self._grid_y0) / _CELL_M) if math.isfinite(y) else -1
        if not (0 <= ix < self._grid_nx and 0 <= iy < self._grid_ny):
            return None
        cell = iy * self._grid_nx + ix
        whole = self._cell_whole[cell]
        if whole >= 0:
            return self._areas[whole]
        geoms = self._geoms
        for index in self._cell_parts[cell]:
            if shapely.intersects_xy(geoms[index], x, y):
                return self._areas[index]
        if not self._cell_near[cell]:
            return None
        found, distances = self._tree.query_nearest(
            shapely.Point(x, y), max_distance=self.nearest_max_m, return_distance=True
        )
        if len(found) == 0:
            return None
        best = min(zip(distances.tolist(), found.tolist(), strict=True))
        area = self._areas[best[1]]
        return Area(
            kelurahan_code=area.kelurahan_code,
            kelurahan_name=area.kelurahan_name,
            kecamatan_code=area.kecamatan_code,
            kecamatan_name=area.kecamatan_name,
            inside=False,
            distance_m=round(best[0], 1),
        )

    # -- shapes -> areas (advisory targets, CAP alert areas) --------------------------------

    def kecamatan_within(self, lat: float, lon: float, radius_m: float) -> tuple[str, ...]:
        """Codes of the kecamatan whose ground is within ``radius_m`` of a point, sorted."""
        x = (lon - self._lon0) * self._kx
        y = (lat - self._lat0) * self._ky
        circle = shapely.Point(x, y).buffer(radius_m, quad_segs=16)
        return self._kecamatan_touching(circle)

    def kecamatan_in_polygons(
        self, polygons: Sequence[Sequence[tuple[float, float]]]
    ) -> tuple[str, ...]:
        """Codes of the kecamatan any of ``polygons`` (rings of ``(lat, lon)``) overlaps."""
        shapes = []
        for ring in polygons:
            points = [((lon - self._lon0) * self._kx, (lat - self._lat0) * self._ky)
                      for lat, lon in ring]  # fmt: skip
            if len(points) >= 3:  # a polygon needs three corners
                shapes.append(shapely.make_valid(shapely.Polygon(points)))
        if not shapes:
            return ()
        return self._kecamatan_touching(shapely.union_all(shapes))

    def _kecamatan_touching(self, shape: Any) -> tuple[str, ...]:
        found = self._tree.query(shape, predicate="intersects")
        return tuple(sorted({self._areas[int(i)].kecamatan_code for i in found.tolist()}))

    def kecamatan_named(self, name: str) -> Kecamatan | None:
        """The kecamatan called ``name`` (case and spacing ignored), if any."""
        wanted = " ".join(name.lower().replace("kecamatan", " ").split())
        for kecamatan in self.kecamatan:
            if kecamatan.name.lower() == wanted:
                return kecamatan
        return None

    def kelurahan_named(self, name: str) -> list[Kelurahan]:
        """The kelurahan called ``name`` (case and spacing ignored; some names repeat)."""
        wanted = " ".join(name.lower().replace("kelurahan", " ").split())
        return [k for k in self.kelurahan if k.name.lower() == wanted]

    def address_of(self, area: Area) -> str:
        """Returns "Kelurahan X, Kecamatan Y, Kota Semarang" for an area."""
        return f"Kelurahan {area.kelurahan_name}, Kecamatan {area.kecamatan_name}, {self.city_name}"

    # -- the Geocoder port -----------------------------------------------------------------

    async def geocode(self, text: str, *, language: str = "id") -> list[GeocodeCandidate]:
        """Returns the landmarks, roads and areas named in the text (best first, may be empty)."""
        del language  # names are the same in every language
        return self.candidates(parse_address(text))

    async def reverse(self, lat: float, lon: float, *, language: str = "id") -> str | None:
        """Returns the area's address of a point, or None outside the city."""
        del language
        area = self.locate_area(lat, lon)
        return None if area is None else self.address_of(area)

    async def aclose(self) -> None:
        """Nothing to release: the gazetteer holds no network resources."""

    # -- names -> points -------------------------------------------------------------------

    def find_landmark(self, text: str) -> GeocodeCandidate | None:
        """Returns the landmark named anywhere in free text, else a main road, else None.

        For one-message reports ("ada kebakaran di pasar johar!!" → Pasar Johar): an exact
        name or alias wins over a name read with typos (then ``fuzzy=True``); a main road
        ("di jl pandanaran") comes only when no landmark is named. Kelurahan names are left
        to ``geocode``. Offline and instant: the text never leaves the process.
        """
        match = self.match(parse_address(text))
        if match.landmarks:
            return match.landmarks[0]
        return next((c for c in match.candidates if c.source == ROAD_SOURCE), None)

    def find_place(self, text: str) -> GeocodeCandidate | None:
        """Returns the place named anywhere in free text: a landmark, else a main road (as
        ``find_landmark``), else a kelurahan or kecamatan named exactly ("banjir di
        tlogosari kulon"); None when the text names none. A name read with typos is only
        taken for a landmark (``fuzzy=True``): area names are everyday words too often.
        Offline and instant."""
        match = self.match(parse_address(text))
        if match.landmarks:
            return match.landmarks[0]
        road = next((c for c in match.candidates if c.source == ROAD_SOURCE), None)
        if road is not None:
            return road
        return next((c for c in match.candidates if not c.fuzzy and c.area is not None), None)

    def mentions_landmark(self, parsed: ParsedAddress) -> bool:
        """Whether a landmark's exact name or alias occurs in the text (a quick key scan).

        False means ``match`` would find no exactly named landmark: callers may skip it.
        """
        return any(r.name.kind == "landmark" for r in self._exact_readings(parsed.query))

    def landmark_mismatches(self) -> list[Landmark]:
        """The landmarks whose CSV kelurahan/kecamatan differ from the polygons' (expect none)."""
        return [landmark for landmark in self.landmarks if not landmark.matches_listed_area]

    def candidates(self, parsed: ParsedAddress) -> list[GeocodeCandidate]:
        """Returns the candidates for an already parsed address (see ``match``)."""
        return self.match(parsed).candidates

    def match(self, parsed: ParsedAddress) -> OfflineMatch:
        """Reads landmarks, roads and areas in a parsed address; answers best first.

        Exact landmark hits come first (best quality first), then everything else by
        confidence: landmarks read with typos, kelurahan centroids, roads, kecamatan
        centroids. A landmark named by an alias that is also an area's name ("Tanjung Mas"
        for the port, "Bubakan" for the roundabout while Kelurahan Bubakan is in Mijen,
        "Kecamatan Candisari" for its office) comes last: the area is what such words name
        first. A road is left out when its landmark is itself named in the text.
        """
        readings = self._readings(parsed.query)
        areas = [r for r in readings if r.name.kind in ("kelurahan", "kecamatan")]
        scored: list[tuple[int, float, int, GeocodeCandidate]] = [
            (1, -confidence, start, candidate)
            for confidence, start, candidate in self._area_candidates(areas)
        ]
        named: set[int] = set()
        exact_spans: list[tuple[int, int]] = []
        for reading in sorted(
            (r for r in readings if r.name.kind == "landmark"),
            key=lambda r: (r.name.is_area_name, r.edits, r.start),
        ):
            if reading.name.index in named:
                continue
            named.add(reading.name.index)
            candidate = self._landmark_candidate(self.landmarks[reading.name.index], reading)
            if reading.name.is_area_name:
                group = 2
            elif reading.edits == 0:
                exact_spans.append((reading.start, reading.end))
                group = 0
            else:
                group = 1
            scored.append((group, -candidate.confidence, reading.start, candidate))
        for reading in (r for r in readings if r.name.kind == "road"):
            road = self.roads[reading.name.index]
            if road.landmark_index in named:
                continue
            named.add(road.landmark_index)
            scored.append((1, -ROAD_CONFIDENCE, reading.start, self._road_candidate(road)))
        scored.sort(key=lambda item: item[:3])
        ranked = [(group, _with_rt_rw(c, parsed.rt_rw)) for group, _, _, c in scored]
        return OfflineMatch(
            candidates=[c for _, c in ranked[: self._max_results]],
            landmarks=[c for group, c in ranked if c.source == LANDMARK_SOURCE and group < 2],
            decisive=bool(exact_spans) and not _names_street_or_number(parsed.query, exact_spans),
        )

    def _area_candidates(
        self, readings: list[_Reading]
    ) -> list[tuple[float, int, GeocodeCandidate]]:
        """Kelurahan and kecamatan centroids for the area readings, with their confidences."""
        if not readings:
            return []
        kelurahan = [r for r in readings if r.name.kind == "kelurahan"]
        kecamatan = [r for r in readings if r.name.kind == "kecamatan"]
        kecamatan_spans = {(r.start, r.end): r for r in kecamatan}
        # A word read both as a kelurahan and as a kecamatan ("Tembalang") is the
        # kecamatan when it situates another kelurahan of the text, or when typed "Kec.".
        context_codes = {
            self.kelurahan[r.name.index].kecamatan_code
            for r in kelurahan
            if (r.start, r.end) not in kecamatan_spans
        }
        kept: list[_Reading] = []
        for reading in kelurahan:
            span_kecamatan = kecamatan_spans.get((reading.start, reading.end))
            if span_kecamatan is not None and (
                reading.hint == "kecamatan"
                or self.kecamatan[span_kecamatan.name.index].code in context_codes
            ):
                continue
            kept.append(reading)
        mentioned = {self.kecamatan[r.name.index].code for r in kecamatan}
        per_span: dict[tuple[int, int], int] = {}
        for reading in kept:
            per_span[reading.start, reading.end] = per_span.get((reading.start, reading.end), 0) + 1

        scored: list[tuple[float, int, GeocodeCandidate]] = []
        covered: set[str] = set()
        for reading in kept:
            kel = self.kelurahan[reading.name.index]
            confidence = KELURAHAN_CONFIDENCE - (_FUZZY_PENALTY if reading.edits else 0.0)
            ambiguous = per_span[reading.start, reading.end] > 1
            if ambiguous and kel.kecamatan_code not in mentioned:
                confidence -= _AMBIGUOUS_PENALTY
            covered.add(kel.kecamatan_code)
            candidate = self._kelurahan_candidate(kel, confidence, fuzzy=reading.edits > 0)
            scored.append((candidate.confidence, reading.start, candidate))
        for reading in kecamatan:
            kec = self.kecamatan[reading.name.index]
            if kec.code in covered:
                continue
            covered.add(kec.code)
            confidence = KECAMATAN_CONFIDENCE - (_FUZZY_PENALTY if reading.edits else 0.0)
            candidate = self._kecamatan_candidate(kec, confidence, fuzzy=reading.edits > 0)
            scored.append((candidate.confidence, reading.start, candidate))
        return scored

    def _kelurahan_candidate(
        self, kel: Kelurahan, confidence: float, *, fuzzy: bool = False
    ) -> GeocodeCandidate:
        return GeocodeCandidate(
            lat=kel.lat,
            lon=kel.lon,
            display_address=(
                f"Kelurahan {kel.name}, Kecamatan {kel.kecamatan_name}, {self.city_name}"
            ),
            confidence=round(confidence, 2),
            source=GAZETTEER_SOURCE,
            area=self.locate_area(kel.lat, kel.lon),
            fuzzy=fuzzy,
        )

    def _kecamatan_candidate(
        self, kec: Kecamatan, confidence: float, *, fuzzy: bool = False
    ) -> GeocodeCandidate:
        return GeocodeCandidate(
            lat=kec.lat,
            lon=kec.lon,
            display_address=f"Kecamatan {kec.name}, {self.city_name}",
            confidence=round(confidence, 2),
            source=GAZETTEER_SOURCE,
            area=self.locate_area(kec.lat, kec.lon),
            fuzzy=fuzzy,
        )

    def _landmark_candidate(self, landmark: Landmark, reading: _Reading) -> GeocodeCandidate:
        penalty = FUZZY_LANDMARK_PENALTY if reading.edits else 0.0
        return GeocodeCandidate(
            lat=landmark.row.lat,
            lon=landmark.row.lon,
            display_address=landmark.name,
            confidence=round(landmark.confidence - penalty, 2),
            source=LANDMARK_SOURCE,
            area=landmark.area,
            fuzzy=reading.edits > 0,
        )

    def _road_candidate(self, road: Road) -> GeocodeCandidate:
        return GeocodeCandidate(
            lat=road.landmark.row.lat,
            lon=road.landmark.row.lon,
            display_address=f"{road.row.road} (sekitar {road.landmark.name})",
            confidence=ROAD_CONFIDENCE,
            source=ROAD_SOURCE,
            area=road.landmark.area,
        )

    def _readings(self, query: str) -> list[_Reading]:
        """Finds the names in the text, longest first, overlapping readings dropped.

        Areas and longer landmark names are read with typos too; landmarks and roads also
        exactly by key, over any number of words and with digits ("Simpang 5").
        """
        found = [*self._fuzzy_readings(query), *self._exact_readings(query)]
        # Prefer the reading explaining most text; an edit costs three letters.
        found.sort(key=lambda r: (-(len(r.name.compact) - 3 * r.edits), r.start))
        accepted: list[_Reading] = []
        for reading in found:
            if all(_compatible(reading, other) for other in accepted):
                accepted.append(reading)
        return accepted

    def _fuzzy_readings(self, query: str) -> list[_Reading]:
        """Area names (exact or with typos) and landmark names with typos, 1-3 words."""
        words, hints, offsets = _words(query)
        spans = _spans(words, hints)
        if not spans:
            return []
        distances = process.cdist(
            [s[2] for s in spans], self._name_strings, scorer=OSA.distance, score_cutoff=2
        )
        found: list[_Reading] = []
        for span_index, name_index in zip(*np.nonzero(distances <= 2), strict=True):
            start, end, typed = spans[int(span_index)]
            name = self._names[int(name_index)]
            edits = int(distances[span_index, name_index])
            if name.kind == "landmark" and edits == 0:
                continue  # exact landmark names are read by key, with the words between
            if edits and (
                not _plausible_typo(typed, name.compact, edits)
                or not _EVERYDAY_WORDS.isdisjoint(words[start:end])
            ):
                continue
            first = offsets[start][0] if name.kind == "landmark" else offsets[start][2]
            found.append(_Reading(first, offsets[end - 1][1], name, edits, hints[start]))
        return found

    def _exact_readings(self, query: str) -> list[_Reading]:
        """Landmark and road names by key: every run of words whose key is a known name."""
        words = tokens(query)
        found: list[_Reading] = []
        for first in range(len(words)):
            key = ""
            for last in range(first, len(words)):
                key += words[last][0]
                if len(key) > self._exact_max_len:
                    break
                for name in self._exact.get(key, ()):
                    found.append(_Reading(words[first][1], words[last][2], name, 0, None))
        return found

    def _build_names(self) -> list[_Name]:
        """The names read with typos: areas, and landmark names of 7+ letters in 1-3 words.

        A landmark alias spelled like an area is left to the area: a typo of "Tanjung Mas"
        is a typo of the kelurahan. Names ending in the city's name ("Pasar Johar Semarang")
        are read exactly only: "di pasar johar sekarang" would read as a typo of them.
        """
        names = [_Name(_compact(k.name), "kelurahan", i) for i, k in enumerate(self.kelurahan)]
        names += [_Name(_compact(k.name), "kecamatan", i) for i, k in enumerate(self.kecamatan)]
        area_keys = self._area_keys()
        city_words = _LETTERS.findall(self.city_name.casefold())[-1:]
        seen: set[tuple[str, int]] = set()
        for index, landmark in enumerate(self.landmarks):
            for text in landmark.row.names:
                words = _LETTERS.findall(text.casefold())
                compact = "".join(words)
                if (
                    len(words) <= _MAX_SPAN_WORDS
                    and words[-len(city_words) :] != city_words
                    and compact == name_key(text)  # letters only, no abbreviation
                    and len(compact) >= _FUZZY_LANDMARK_MIN_LETTERS
                    and compact not in area_keys
                    and (compact, index) not in seen
                ):
                    seen.add((compact, index))
                    names.append(_Name(compact, "landmark", index))
        return names

    def _build_exact_names(self) -> tuple[dict[str, tuple[_Name, ...]], int]:
        """Landmark and road keys, each with the names it stands for."""
        area_keys = self._area_keys()
        exact: dict[str, list[_Name]] = {}
        for index, landmark in enumerate(self.landmarks):
            for text in landmark.row.names:
                key = name_key(text)
                name = _Name(key, "landmark", index, is_area_name=key in area_keys)
                if key and name not in exact.setdefault(key, []):
                    exact[key].append(name)
        for index, road in enumerate(self.roads):
            for text in road.row.names:
                key = name_key(text)
                name = _Name(key, "road", index)
                if key and name not in exact.setdefault(key, []):
                    exact[key].append(name)
        longest = max((len(key) for key in exact), default=0)
        return {key: tuple(names) for key, names in exact.items()}, longest

    def _area_keys(self) -> set[str]:
        """Every way a kelurahan or kecamatan is named: "tanjungmas", "kelurahantanjungmas"."""
        keys: set[str] = set()
        for names, words in (
            ([k.name for k in self.kelurahan], _KELURAHAN_WORDS),
            ([k.name for k in self.kecamatan], _KECAMATAN_WORDS),
        ):
            for name in names:
                compact = _compact(name)
                keys.add(compact)
                keys.update(word + compact for word in words)
        return keys

    def _place_landmarks(self, rows: Sequence[LandmarkRow]) -> tuple[Landmark, ...]:
        placed: list[Landmark] = []
        for row in rows:
            area = self.locate_area(row.lat, row.lon)
            if area is None:
                logger.warning("Landmark %r lies outside the city; left out", row.name)
                continue
            landmark = Landmark(row, area)
            if not landmark.matches_listed_area:
                logger.warning(
                    "Landmark %r: the polygons put it in %s, %s; its CSV row says %s, %s",
                    row.name,
                    area.kelurahan_name,
                    area.kecamatan_name,
                    row.kelurahan,
                    row.kecamatan,
                )
            placed.append(landmark)
        return tuple(placed)

    def _place_roads(self, rows: Sequence[RoadRow]) -> tuple[Road, ...]:
        by_name = {lm.name.casefold(): i for i, lm in enumerate(self.landmarks)}
        roads: list[Road] = []
        for row in rows:
            index = by_name.get(row.landmark.casefold())
            if index is None:
                logger.warning(
                    "Road %r names no known landmark %r; left out", row.road, row.landmark
                )
                continue
            roads.append(Road(row, self.landmarks[index], index))
        return tuple(roads)

    def _build_grid(self) -> None:
        min_x, min_y, max_x, max_y = (float(v) for v in shapely.total_bounds(self._geoms))
        pad = self.nearest_max_m
        self._grid_x0: float = min_x - pad
        self._grid_y0: float = min_y - pad
        self._grid_nx: int = math.ceil((max_x + pad - self._grid_x0) / _CELL_M)
        self._grid_ny: int = math.ceil((max_y + pad - self._grid_y0) / _CELL_M)
        ix, iy = np.meshgrid(np.arange(self._grid_nx), np.arange(self._grid_ny))
        x0 = self._grid_x0 + ix.ravel() * _CELL_M
        y0 = self._grid_y0 + iy.ravel() * _CELL_M
        cells = shapely.box(x0, y0, x0 + _CELL_M, y0 + _CELL_M)
        count = len(cells)
        whole = [-1] * count
        for cell, geom in zip(*self._tree.query(cells, predicate="within").tolist(), strict=True):
            whole[cell] = geom
        # Boundary cells test their polygons largest share first.
        pair_cells, pair_geoms = self._tree.query(cells, predicate="intersects")
        shared = np.bincount(pair_cells, minlength=count)[pair_cells] > 1
        shares = np.zeros(len(pair_cells))
        shares[shared] = shapely.area(
            shapely.intersection(
                np.asarray(self._geoms, dtype=object)[pair_geoms[shared]],
                cells[pair_cells[shared]],
            )
        )
        parts: list[list[int]] = [[] for _ in range(count)]
        for _, cell, geom in sorted(
            zip((-shares).tolist(), pair_cells.tolist(), pair_geoms.tolist(), strict=True)
        ):
            parts[cell].append(geom)
        # Conservative: a cell whose centre is within 500 m + half its diagonal of a polygon.
        centres = shapely.points(x0 + _CELL_M / 2, y0 + _CELL_M / 2)
        reach = self.nearest_max_m + _CELL_M * math.sqrt(2) / 2
        near = [False] * count
        for cell in self._tree.query(centres, predicate="dwithin", distance=reach)[0].tolist():
            near[cell] = True
        self._cell_whole: list[int] = whole
        self._cell_parts: list[tuple[int, ...]] = [tuple(p) for p in parts]
        self._cell_near: list[bool] = near


def _words(
    query: str,
) -> tuple[list[str], list[AreaKind | None], list[tuple[int, int, int]]]:
    """Splits text into words, dropping "Kelurahan"/"Kecamatan" but noting them as hints.

    Returns the words, their hints and their character offsets ``(start, end, start of
    the hint word before it or start)``.
    """
    words: list[str] = []
    hints: list[AreaKind | None] = []
    offsets: list[tuple[int, int, int]] = []
    hint: AreaKind | None = None
    hint_start = 0
    for match in _LETTERS.finditer(query):
        word = match.group().casefold()
        if word in _KELURAHAN_WORDS or word in _KECAMATAN_WORDS:
            hint = "kelurahan" if word in _KELURAHAN_WORDS else "kecamatan"
            hint_start = match.start()
        else:
            words.append(word)
            hints.append(hint)
            offsets.append(
                (match.start(), match.end(), match.start() if hint is None else hint_start)
            )
            hint = None
    return words, hints, offsets


def _spans(words: Sequence[str], hints: Sequence[AreaKind | None]) -> list[tuple[int, int, str]]:
    """Returns (start, end, joined letters) of every run of 1-3 words that could be a name."""
    spans: list[tuple[int, int, str]] = []
    for start in range(len(words)):
        for end in range(start + 1, min(start + _MAX_SPAN_WORDS, len(words)) + 1):
            if end > start + 1 and hints[end - 1] is not None:
                break  # a "Kel."/"Kec." starts a new name
            if (
                end == start + 1
                and end < len(words)
                and words[end] in _NOT_AN_AREA.get(words[start], ())
            ):
                continue
            spans.append((start, end, "".join(words[start:end])))
    return spans


def _compatible(reading: _Reading, other: _Reading) -> bool:
    """Two readings can both stand unless they overlap; the same words may have two meanings."""
    if reading.end <= other.start or other.end <= reading.start:
        return True
    return (reading.start, reading.end, reading.edits) == (other.start, other.end, other.edits)


def _names_street_or_number(query: str, landmark_spans: Sequence[tuple[int, int]]) -> bool:
    """Whether the text outside the landmark names has a street word or a number in it."""
    for word, start, end in tokens(query):
        if any(s <= start and end <= e for s, e in landmark_spans):
            continue
        if word in _STREET_WORDS or any(ch.isdigit() for ch in word):
            return True
    return False


def _compact(name: str) -> str:
    return "".join(_LETTERS.findall(name.casefold()))


def _plausible_typo(typed: str, name: str, edits: int) -> bool:
    """Whether ``typed`` reads as ``name`` with ``edits`` typos.

    One typo in names of 4 to 9 letters, two in longer ones, none in shorter ones; the first
    letter must be right. In names under 5 letters only a dropped, doubled or swapped letter
    counts: a changed letter turns "Kudu" into "kuda" (horse), another word altogether.
    """
    if len(name) < 4 or typed[0] != name[0]:
        return False
    if edits > (1 if len(name) < 10 else 2):
        return False
    return len(name) >= 5 or len(typed) != len(name) or sorted(typed) == sorted(name)


def _with_rt_rw(candidate: GeocodeCandidate, rt_rw: str | None) -> GeocodeCandidate:
    return candidate if rt_rw is None else dataclasses.replace(candidate, rt_rw=rt_rw)


@functools.cache
def load_gazetteer() -> Gazetteer:
    """Returns the process-wide gazetteer of the packaged Semarang data (built once)."""
    return Gazetteer.from_package_data()
