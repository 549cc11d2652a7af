"""The offline gazetteer: points to kelurahan/kecamatan, typed names to centroids."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from importlib import resources

import pytest
from rapidfuzz.distance import OSA

from bot.geo import Gazetteer
from bot.geo.gazetteer import GAZETTEER_SOURCE, KELURAHAN_CONFIDENCE

ROWS = list(
    csv.DictReader(
        resources.files("bot.geo")
        .joinpath("data", "semarang_wilayah.csv")
        .read_text(encoding="utf-8")
        .splitlines()
    )
)
KELURAHAN = [r for r in ROWS if r["level"] == "kelurahan"]
KECAMATAN = [r for r in ROWS if r["level"] == "kecamatan"]
NAME_COUNTS = Counter(r["name"] for r in KELURAHAN)
CENTROIDS_OUTSIDE_OWN_POLYGON = {"33.74.05.1012", "33.74.16.1006"}  # data README


def one_typo(name: str, variant: int) -> str:
    """Drops (even variants) or swaps (odd variants) one inner letter of the longest word."""
    words = name.split()
    i = max(range(len(words)), key=lambda k: len(words[k]))
    word = words[i]
    middle = len(word) // 2
    if variant % 2 == 0:
        typo = word[:middle] + word[middle + 1 :]
    else:
        # The first adjacent inner pair, from the middle on, whose letters differ.
        p = next(
            p
            for p in [*range(middle - 1, len(word) - 2), *range(1, middle - 1)]
            if word[p] != word[p + 1]
        )
        typo = word[:p] + word[p + 1] + word[p] + word[p + 2 :]
    assert typo != word
    return " ".join([*words[:i], typo, *words[i + 1 :]])


def typed_address(typo: str, variant: int) -> str:
    """Puts the name among the words a citizen types around it."""
    if variant % 3 == 0:
        return f"Jl. Mawar No. 3 RT 02 RW 04, Kel. {typo}"
    if variant % 3 == 1:
        return f"gang kenanga 5 {typo} semarang"
    return typo.upper()


def test_data_has_177_kelurahan_with_two_names_used_twice() -> None:
    assert len(KELURAHAN) == 177
    assert {n for n, c in NAME_COUNTS.items() if c > 1} == {"Mangunharjo", "Purwosari"}


@pytest.mark.parametrize("row", KELURAHAN, ids=lambda r: f"{r['code']} {r['name']}")
def test_centroid_resolves_to_its_own_kelurahan_when_located(
    gazetteer: Gazetteer, row: dict[str, str]
) -> None:
    area = gazetteer.locate_area(float(row["lat"]), float(row["lng"]))

    assert area is not None
    assert area.kelurahan_code == row["code"]
    assert area.kelurahan_name == row["name"]
    assert area.kecamatan_code == row["code"][:8]
    assert area.kecamatan_name == row["kecamatan"]
    assert area.inside is (row["code"] not in CENTROIDS_OUTSIDE_OWN_POLYGON)


@pytest.mark.parametrize(("code", "max_m"), [("33.74.05.1012", 20.0), ("33.74.16.1006", 120.0)])
def test_nearest_kelurahan_with_distance_when_centroid_falls_in_a_gap(
    gazetteer: Gazetteer, code: str, max_m: float
) -> None:
    row = next(r for r in KELURAHAN if r["code"] == code)

    area = gazetteer.locate_area(float(row["lat"]), float(row["lng"]))

    assert area is not None
    assert area.kelurahan_code == code
    assert area.inside is False
    assert 0 < area.distance_m <= max_m


@pytest.mark.parametrize("row", KECAMATAN, ids=lambda r: r["name"])
def test_kecamatan_derived_from_kelurahan_code_when_kecamatan_centroid_located(
    gazetteer: Gazetteer, row: dict[str, str]
) -> None:
    area = gazetteer.locate_area(float(row["lat"]), float(row["lng"]))

    assert area is not None
    assert area.kecamatan_code == row["code"]
    assert area.kelurahan_code.startswith(row["code"] + ".")
    assert area.kecamatan_name == row["name"]


@pytest.mark.parametrize(
    ("lat", "lon", "kelurahan"),
    [
        (-6.99037, 110.42291, "Pleburan"),  # Simpang Lima
        (-6.98391, 110.41040, "Sekayu"),  # Lawang Sewu
        (-6.96400, 110.42780, "Tanjung Mas"),  # Stasiun Tawang
        (-6.99609, 110.39837, "Bongsari"),  # Sam Poo Kong
    ],
)
def test_landmark_in_its_kelurahan_when_located(
    gazetteer: Gazetteer, lat: float, lon: float, kelurahan: str
) -> None:
    area = gazetteer.locate_area(lat, lon)

    assert area is not None
    assert area.kelurahan_name == kelurahan
    assert area.inside


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (-6.2088, 106.8456),  # Jakarta
        (-6.8500, 110.4000),  # Java Sea, 9 km north of the coast
        (-7.2500, 110.4000),  # Ungaran, south of the city
        (0.0, 0.0),
        (math.nan, 110.4),
        (-6.99, math.inf),
    ],
)
def test_none_when_point_is_far_outside_the_city(
    gazetteer: Gazetteer, lat: float, lon: float
) -> None:
    assert gazetteer.locate_area(lat, lon) is None


def test_nearest_within_500_m_and_none_beyond_when_point_is_south_of_the_city(
    gazetteer: Gazetteer,
) -> None:
    lon, lat = southmost_vertex()
    metres_per_degree_lat = 110_574.0  # at 7 degrees south

    near = gazetteer.locate_area(lat - 300 / metres_per_degree_lat, lon)
    far = gazetteer.locate_area(lat - 700 / metres_per_degree_lat, lon)

    assert near is not None
    assert near.inside is False
    assert 295 <= near.distance_m <= 305
    assert far is None


def southmost_vertex() -> tuple[float, float]:
    """The (lon, lat) of the southernmost vertex of all kelurahan polygons."""
    geojson = json.loads(
        resources.files("bot.geo").joinpath("data", "semarang_boundaries.geojson").read_text()
    )
    vertices = [
        (lon, lat)
        for feature in geojson["features"]
        if feature["properties"]["level"] == "kelurahan"
        for polygon in (
            [feature["geometry"]["coordinates"]]
            if feature["geometry"]["type"] == "Polygon"
            else feature["geometry"]["coordinates"]
        )
        for ring in polygon
        for lon, lat in ring
    ]
    return min(vertices, key=lambda v: v[1])


@pytest.mark.parametrize("variant", range(3))
@pytest.mark.parametrize("row", KELURAHAN, ids=lambda r: f"{r['code']} {r['name']}")
async def test_kelurahan_found_when_name_typed_with_one_typo(
    gazetteer: Gazetteer, row: dict[str, str], variant: int
) -> None:
    index = KELURAHAN.index(row)
    typo = one_typo(row["name"], index + variant)

    candidates = await gazetteer.geocode(typed_address(typo, index + variant))

    assert candidates, typo
    assert all(c.source == GAZETTEER_SOURCE for c in candidates)
    assert candidates[0].confidence <= KELURAHAN_CONFIDENCE
    assert candidates[0].fuzzy, typo  # a guess the citizen must confirm
    tied = tied_kelurahan(typo, row["name"])
    if tied == {row["code"]}:
        assert candidates[0].area is not None
        assert candidates[0].area.kelurahan_code == row["code"], typo
        assert (candidates[0].lat, candidates[0].lon) == (float(row["lat"]), float(row["lng"]))
    else:  # a homonym, or a typo as close to another name: all offered, none preferred
        top = [c for c in candidates if c.confidence == candidates[0].confidence]
        assert {c.area.kelurahan_code for c in top if c.area} == tied, typo


def tied_kelurahan(typo: str, name: str) -> set[str]:
    """The kelurahan whose name is at least as close to the typo as the intended one."""
    own = OSA.distance(compact(typo), compact(name))
    return {r["code"] for r in KELURAHAN if OSA.distance(compact(typo), compact(r["name"])) <= own}


def compact(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalpha())


@pytest.mark.parametrize("name", ["Mangunharjo", "Purwosari"])
async def test_homonym_resolved_by_kecamatan_when_kecamatan_typed_too(
    gazetteer: Gazetteer, name: str
) -> None:
    for row in (r for r in KELURAHAN if r["name"] == name):
        candidates = await gazetteer.geocode(f"Kel. {name}, Kec. {row['kecamatan']}")

        assert candidates[0].area is not None
        assert candidates[0].area.kelurahan_code == row["code"]
        assert candidates[0].confidence > candidates[1].confidence


@pytest.mark.parametrize("row", KECAMATAN, ids=lambda r: r["name"])
async def test_kecamatan_centroid_with_lower_confidence_when_only_kecamatan_typed(
    gazetteer: Gazetteer, row: dict[str, str]
) -> None:
    candidates = await gazetteer.geocode(f"kec. {row['name'].lower()}")

    assert candidates[0].display_address == f"Kecamatan {row['name']}, Kota Semarang"
    assert (candidates[0].lat, candidates[0].lon) == (float(row["lat"]), float(row["lng"]))
    assert candidates[0].area is not None
    assert candidates[0].area.kecamatan_code == row["code"]
    assert candidates[0].confidence < KELURAHAN_CONFIDENCE - 0.1
    assert not candidates[0].fuzzy


async def test_kelurahan_preferred_when_a_name_is_both_kelurahan_and_kecamatan(
    gazetteer: Gazetteer,
) -> None:
    candidates = await gazetteer.geocode("Tembalang")

    assert candidates[0].display_address == (
        "Kelurahan Tembalang, Kecamatan Tembalang, Kota Semarang"
    )


async def test_longer_name_wins_when_a_shorter_kelurahan_name_is_inside_it(
    gazetteer: Gazetteer,
) -> None:
    candidates = await gazetteer.geocode("Jl. Dr. Wahidin, Karanganyar Gunung")

    assert [c.area.kelurahan_name for c in candidates if c.area] == ["Karanganyar Gunung"]


async def test_rt_rw_on_candidate_when_typed(gazetteer: Gazetteer) -> None:
    candidates = await gazetteer.geocode("Gg. Kenari 4 RT 3 RW 7 Kel. Sekayu")

    assert candidates[0].rt_rw == "RT 003/RW 007"
    assert candidates[0].display_address == (
        "Kelurahan Sekayu, Kecamatan Semarang Tengah, Kota Semarang"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tolong ada kebakaran",
        "Jl. Mawar 12",  # "Jl. Pandanaran 12" is a main road now: see test_landmarks.py
        "dekat Tugu Muda",  # a monument in Sekayu, not Kecamatan Tugu
        "jalan kuda",  # one letter from Kudu, but a different word
        "RT 03 RW 05",
    ],
)
async def test_no_candidate_when_text_names_no_area(gazetteer: Gazetteer, text: str) -> None:
    assert await gazetteer.geocode(text) == []


async def test_area_address_when_reversing_a_point_in_the_city(gazetteer: Gazetteer) -> None:
    assert await gazetteer.reverse(-6.99037, 110.42291) == (
        "Kelurahan Pleburan, Kecamatan Semarang Selatan, Kota Semarang"
    )


async def test_no_address_when_reversing_a_point_outside(gazetteer: Gazetteer) -> None:
    assert await gazetteer.reverse(-6.2088, 106.8456) is None
