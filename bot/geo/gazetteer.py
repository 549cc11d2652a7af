"""The offline gazetteer of Kota Semarang: boundary polygons and kelurahan/kecamatan names.

It answers three questions without any network:

* ``locate_area(lat, lon)``: which kelurahan (and so which kecamatan) a point is in. Point in
  polygon on the kelurahan layer; a point in no polygon gets the nearest kelurahan within
  500 m with ``inside=False`` and ``distance_m``: the gaps between polygons (simplification
  slivers, the port), and equally a strip just beyond the simplified city boundary and
  coastline, where the data cannot tell in from out. Anything further is outside (None).
  The kecamatan comes from the kelurahan code prefix (``33.74.NN``), never from the
  kecamatan polygons, which cover the city less well.
* ``geocode(text)``: kelurahan/kecamatan names found in typed text (typos, "Kel."/"Kec."
  prefixes, street names around them), answered with the area's centroid and a LOW
  confidence so the UI can say the pin is approximate.
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
from bot.geo.text import ParsedAddress, parse_address

#: ``GeocodeCandidate.source`` of every gazetteer answer.
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

_CELL_M = 250.0
_LETTERS = re.compile(r"[^\W\d_]+")
# Words that announce what the next name is. "kel"/"kec" are already expanded by the parser.
_KELURAHAN_WORDS = frozenset({"kelurahan", "kel", "desa", "kalurahan"})
_KECAMATAN_WORDS = frozenset({"kecamatan", "kec"})
# A name followed by this word is a landmark, not the area: Tugu Muda is in Sekayu,
# nowhere near Kecamatan Tugu.
_NOT_AN_AREA: Mapping[str, frozenset[str]] = {"tugu": frozenset({"muda"})}
_MAX_SPAN_WORDS = 3

Kind = Literal["kelurahan", "kecamatan"]


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
class _Name:
    compact: str
    kind: Kind
    index: int


@dataclass(frozen=True, slots=True)
class _Reading:
    start: int
    end: int
    name: _Name
    edits: int
    hint: Kind | None


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
    ) -> None:
        """Builds the spatial and name indexes; ``polygons`` maps kelurahan code to geometry."""
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
        self._names = self._build_names()
        self._name_strings = [n.compact for n in self._names]

    @classmethod
    def from_package_data(cls) -> Gazetteer:
        """Loads the Semarang CSV and GeoJSON shipped in ``bot/geo/data``."""
        data = resources.files(_DATA_PACKAGE).joinpath("data")
        csv_text = data.joinpath(_CSV_NAME).read_text(encoding="utf-8")
        geojson = json.loads(data.joinpath(_GEOJSON_NAME).read_text(encoding="utf-8"))
        return cls.from_records(csv.DictReader(io.StringIO(csv_text)), geojson)

    @classmethod
    def from_records(
        cls, rows: Iterable[Mapping[str, str]], geojson: Mapping[str, Any]
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
        return cls(kelurahan, kecamatan, polygons, city_name=city_name)

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

    def address_of(self, area: Area) -> str:
        """Returns "Kelurahan X, Kecamatan Y, Kota Semarang" for an area."""
        return f"Kelurahan {area.kelurahan_name}, Kecamatan {area.kecamatan_name}, {self.city_name}"

    # -- the Geocoder port -----------------------------------------------------------------

    async def geocode(self, text: str, *, language: str = "id") -> list[GeocodeCandidate]:
        """Returns kelurahan/kecamatan centroids named in the text (best first, may be empty)."""
        del language  # names are the same in every language
        return self.candidates(parse_address(text))

    async def reverse(self, lat: float, lon: float, *, language: str = "id") -> str | None:
        """Returns the area's address of a point, or None outside the city."""
        del language
        area = self.locate_area(lat, lon)
        return None if area is None else self.address_of(area)

    async def aclose(self) -> None:
        """Nothing to release: the gazetteer holds no network resources."""

    # -- names -> centroids ----------------------------------------------------------------

    def candidates(self, parsed: ParsedAddress) -> list[GeocodeCandidate]:
        """Returns centroid candidates for the areas named in an already parsed address."""
        readings = self._readings(parsed.query)
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
            scored.append((confidence, reading.start, self._kelurahan_candidate(kel, confidence)))
        for reading in kecamatan:
            kec = self.kecamatan[reading.name.index]
            if kec.code in covered:
                continue
            covered.add(kec.code)
            confidence = KECAMATAN_CONFIDENCE - (_FUZZY_PENALTY if reading.edits else 0.0)
            scored.append((confidence, reading.start, self._kecamatan_candidate(kec, confidence)))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [
            _with_rt_rw(candidate, parsed.rt_rw) for _, _, candidate in scored[: self._max_results]
        ]

    def _kelurahan_candidate(self, kel: Kelurahan, confidence: float) -> GeocodeCandidate:
        return GeocodeCandidate(
            lat=kel.lat,
            lon=kel.lon,
            display_address=(
                f"Kelurahan {kel.name}, Kecamatan {kel.kecamatan_name}, {self.city_name}"
            ),
            confidence=round(confidence, 2),
            source=GAZETTEER_SOURCE,
            area=self.locate_area(kel.lat, kel.lon),
        )

    def _kecamatan_candidate(self, kec: Kecamatan, confidence: float) -> GeocodeCandidate:
        return GeocodeCandidate(
            lat=kec.lat,
            lon=kec.lon,
            display_address=f"Kecamatan {kec.name}, {self.city_name}",
            confidence=round(confidence, 2),
            source=GAZETTEER_SOURCE,
            area=self.locate_area(kec.lat, kec.lon),
        )

    def _readings(self, query: str) -> list[_Reading]:
        """Finds the names in the text: fuzzy, longest first, overlapping readings dropped."""
        words, hints = _words(query)
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
            if edits and not _plausible_typo(typed, name.compact, edits):
                continue
            found.append(_Reading(start, end, name, edits, hints[start]))
        # Prefer the reading explaining most text; an edit costs three letters.
        found.sort(key=lambda r: (-(len(r.name.compact) - 3 * r.edits), r.start))
        accepted: list[_Reading] = []
        for reading in found:
            if all(_compatible(reading, other) for other in accepted):
                accepted.append(reading)
        return accepted

    def _build_names(self) -> list[_Name]:
        names = [_Name(_compact(k.name), "kelurahan", i) for i, k in enumerate(self.kelurahan)]
        names += [_Name(_compact(k.name), "kecamatan", i) for i, k in enumerate(self.kecamatan)]
        return names

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


def _words(query: str) -> tuple[list[str], list[Kind | None]]:
    """Splits text into words, dropping "Kelurahan"/"Kecamatan" but noting them as hints."""
    words: list[str] = []
    hints: list[Kind | None] = []
    hint: Kind | None = None
    for word in _LETTERS.findall(query.casefold()):
        if word in _KELURAHAN_WORDS:
            hint = "kelurahan"
        elif word in _KECAMATAN_WORDS:
            hint = "kecamatan"
        else:
            words.append(word)
            hints.append(hint)
            hint = None
    return words, hints


def _spans(words: Sequence[str], hints: Sequence[Kind | None]) -> list[tuple[int, int, str]]:
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
