"""Landmarks and main roads for the offline gazetteer: the CSV rows, their quality, name keys.

``semarang_landmarks.csv`` lists places people name in an emergency ("Simpang Lima",
"Stasiun Tawang", "RSUP Kariadi") with aliases and the page each coordinate came from;
``semarang_roads.csv`` ties a few main roads to a landmark a cited page puts on them (see
``data/README.md``). This module reads both and decides how far a row can be trusted; the
``Gazetteer`` derives each landmark's kelurahan from the polygons and does the matching.

Names are compared as *keys*: the text after the address parser's abbreviation expansion
("Jl." → "Jalan", "Smg" → "Semarang", "Kel." → "Kelurahan"), case folded, with every run of
letters and digits kept and everything else (spaces, dots, hyphens) dropped. So "St. Tawang",
"st tawang" and "ST-TAWANG" are one key, "Simpang 5" keeps its digit, and "Lawangsewu" is
"Lawang Sewu". Other variants ("Stasiun"/"St", "Psr"/"Pasar") count only where the CSV's
aliases spell them out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from bot.domain.model import Area
from bot.geo.text import expand_abbreviations

Quality = Literal["reference", "coarse", "pin"]
Relation = Literal["end", "frontage"]

#: ``GeocodeCandidate.source`` of an answer at a landmark's own point.
LANDMARK_SOURCE = "landmark"
#: ``GeocodeCandidate.source`` of a main road answered at a landmark on it.
ROAD_SOURCE = "road"
#: Confidence of a landmark found by its exact name or alias, by the quality of its row:
#: a coordinate from a reference page, one with only ~100 m precision, a bare map pin from
#: a code repository. All above the intake's 0.5 "approximate" line, below Nominatim's
#: building answers (0.9).
LANDMARK_CONFIDENCE: Mapping[Quality, float] = {"reference": 0.8, "coarse": 0.7, "pin": 0.6}
#: Subtracted from a landmark's confidence when its name was read with typos.
FUZZY_LANDMARK_PENALTY = 0.1
#: Confidence of a road answered at a landmark on it: the house may be the road's length
#: away and in another kelurahan. Below a kelurahan centroid (0.4), above a kecamatan's.
ROAD_CONFIDENCE = 0.3
#: Hosts of code repositories: a coordinate found there is a pin in someone's project.
CODE_HOSTS = ("github.com", "gitlab.com", "bitbucket.org")
#: A coordinate with at most this many significant decimals is only good to ~100 m.
COARSE_MAX_DECIMALS = 3

_TOKEN = re.compile(r"[^\W_]+")
_PARENTHESES = re.compile(r"\s*\([^)]*\)")


@dataclass(frozen=True, slots=True)
class LandmarkRow:
    """One row of the landmarks CSV, as written (its kelurahan is only a claim)."""

    name: str
    aliases: tuple[str, ...]
    kind: str
    lat: float
    lon: float
    kelurahan: str
    kecamatan: str
    source: str
    quality: Quality

    @property
    def names(self) -> tuple[str, ...]:
        """The name, the name without its parenthesised part, and every alias (no repeats)."""
        short = _PARENTHESES.sub("", self.name).strip()
        return tuple(dict.fromkeys(n for n in (self.name, short, *self.aliases) if n))


@dataclass(frozen=True, slots=True)
class Landmark:
    """A landmark of the city, with its kelurahan/kecamatan derived from the polygons."""

    row: LandmarkRow
    area: Area

    @property
    def name(self) -> str:
        """The landmark's name (its display address)."""
        return self.row.name

    @property
    def confidence(self) -> float:
        """How far the point can be trusted, from the row's quality."""
        return LANDMARK_CONFIDENCE[self.row.quality]

    @property
    def matches_listed_area(self) -> bool:
        """Whether the CSV's kelurahan and kecamatan columns agree with the polygons."""
        return _same(self.area.kelurahan_name, self.row.kelurahan) and _same(
            self.area.kecamatan_name, self.row.kecamatan
        )


@dataclass(frozen=True, slots=True)
class RoadRow:
    """One row of the roads CSV: a road, and a landmark a cited page puts on it."""

    road: str
    aliases: tuple[str, ...]
    landmark: str
    relation: Relation
    source: str

    @property
    def names(self) -> tuple[str, ...]:
        """The road's name and its aliases (no repeats)."""
        return tuple(dict.fromkeys(n for n in (self.road, *self.aliases) if n))


def landmark_rows(rows: Iterable[Mapping[str, str]]) -> list[LandmarkRow]:
    """Parses landmarks CSV rows; raises ``ValueError`` naming the row when one is malformed."""
    parsed: list[LandmarkRow] = []
    for number, row in enumerate(rows, start=2):
        try:
            parsed.append(
                LandmarkRow(
                    name=row["name"].strip(),
                    aliases=_split(row["aliases"]),
                    kind=row["kind"].strip(),
                    lat=float(row["lat"]),
                    lon=float(row["lon"]),
                    kelurahan=row["kelurahan"].strip(),
                    kecamatan=row["kecamatan"].strip(),
                    source=row["source"].strip(),
                    quality=quality_of(row["source"], row["lat"], row["lon"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"landmarks CSV line {number}: {type(exc).__name__} {exc}"
            raise ValueError(msg) from exc
    return parsed


def road_rows(rows: Iterable[Mapping[str, str]]) -> list[RoadRow]:
    """Parses roads CSV rows; raises ``ValueError`` naming the row when one is malformed."""
    parsed: list[RoadRow] = []
    for number, row in enumerate(rows, start=2):
        relation = row.get("relation", "").strip()
        if relation not in ("end", "frontage") or not row.get("road") or not row.get("landmark"):
            msg = f"roads CSV line {number}: needs road, landmark and relation end|frontage"
            raise ValueError(msg)
        parsed.append(
            RoadRow(
                road=row["road"].strip(),
                aliases=_split(row.get("aliases", "")),
                landmark=row["landmark"].strip(),
                relation="end" if relation == "end" else "frontage",
                source=row.get("source", "").strip(),
            )
        )
    return parsed


def quality_of(source: str, lat: str, lon: str) -> Quality:
    """How good a row's coordinate is, from where it came from and how precise it is.

    A source on a code host is a ``pin`` (a marker in someone's project); otherwise fewer
    than four significant decimals (``-6.947000``) make it ``coarse``; else ``reference``.
    """
    host = (urlsplit(source.strip()).hostname or "").casefold()
    if any(host == h or host.endswith(f".{h}") for h in CODE_HOSTS):
        return "pin"
    if min(_decimals(lat), _decimals(lon)) <= COARSE_MAX_DECIMALS:
        return "coarse"
    return "reference"


def tokens(text: str) -> list[tuple[str, int, int]]:
    """The case-folded runs of letters and digits of already expanded text, with offsets."""
    return [(m.group().casefold(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def name_key(name: str) -> str:
    """The key a landmark or road name is matched by (see the module docstring)."""
    expanded = expand_abbreviations(unicodedata.normalize("NFKC", name))
    return "".join(token for token, _, _ in tokens(expanded))


def _split(aliases: str | None) -> tuple[str, ...]:
    return tuple(a.strip() for a in (aliases or "").split(";") if a.strip())


def _decimals(number: str) -> int:
    """Significant decimals as written: ``-6.947000`` has 3, ``110.4`` has 1, ``7`` none."""
    _, _, fraction = number.strip().partition(".")
    return len(fraction.rstrip("0"))


def _same(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())
