"""Landmarks and main roads in the offline gazetteer, and landmarks before Nominatim."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from importlib import resources

import pytest

from bot.domain.model import GeocodeCandidate
from bot.geo import CompositeGeocoder, Gazetteer, build_geocoder
from bot.geo.gazetteer import GAZETTEER_SOURCE, KELURAHAN_CONFIDENCE
from bot.geo.landmarks import (
    LANDMARK_CONFIDENCE,
    LANDMARK_SOURCE,
    ROAD_CONFIDENCE,
    ROAD_SOURCE,
    landmark_rows,
    name_key,
    quality_of,
    road_rows,
)
from bot.geo.nominatim import NOMINATIM_SOURCE
from tests.unit.geo.conftest import FakeClock, FakeTime
from tests.unit.geo.fake_nominatim import JALAN_PANDANARAN, FakeNominatim

MakeGeocoder = Callable[..., CompositeGeocoder]


def data_rows(name: str) -> list[dict[str, str]]:
    text = resources.files("bot.geo").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


LANDMARKS = data_rows("semarang_landmarks.csv")
ROADS = data_rows("semarang_roads.csv")
WILAYAH = data_rows("semarang_wilayah.csv")
TYPED = [
    (row, text)
    for row in LANDMARKS
    for text in dict.fromkeys([row["name"], *row["aliases"].split(";")])
    if text
]
# Aliases spelled exactly like a kelurahan or kecamatan: the area is answered first, the
# landmark after it. Kelurahan Bubakan is in Mijen, the Bubakan roundabout in the centre.
AREA_NAMED_ALIASES = {"Tanjung Mas", "Bubakan", "Kecamatan Candisari", "Kelurahan Banjardowo"}


def row_named(name: str) -> dict[str, str]:
    return next(row for row in LANDMARKS if row["name"] == name)


def at_landmark(candidate: GeocodeCandidate, row: dict[str, str]) -> bool:
    return (candidate.lat, candidate.lon) == (float(row["lat"]), float(row["lon"]))


@pytest.fixture
def offline(clock: FakeClock) -> CompositeGeocoder:
    return build_geocoder("offline", clock=clock)


# -- the data ----------------------------------------------------------------------------


def test_every_row_loaded_when_the_package_data_is_read(gazetteer: Gazetteer) -> None:
    assert len(LANDMARKS) == 48
    assert [lm.name for lm in gazetteer.landmarks] == [row["name"] for row in LANDMARKS]
    assert [(r.row.road, r.landmark.name) for r in gazetteer.roads] == [
        (row["road"], row["landmark"]) for row in ROADS
    ]


def test_polygons_agree_with_every_listed_kelurahan_when_landmarks_load(
    gazetteer: Gazetteer,
) -> None:
    mismatches = [
        f"{lm.name}: polygons {lm.area.kelurahan_name}/{lm.area.kecamatan_name}, "
        f"CSV {lm.row.kelurahan}/{lm.row.kecamatan}"
        for lm in gazetteer.landmark_mismatches()
    ]

    assert mismatches == []
    assert all(lm.area.inside for lm in gazetteer.landmarks)


def test_no_name_or_alias_shared_by_two_landmarks_when_keys_are_compared() -> None:
    owners: dict[str, set[str]] = {}
    for row, text in TYPED:
        owners.setdefault(name_key(text), set()).add(row["name"])

    assert {key: names for key, names in owners.items() if len(names) > 1} == {}


def test_area_named_aliases_are_the_listed_ones_when_compared_with_area_names() -> None:
    areas = {name_key(r["name"]) for r in WILAYAH if r["level"] in ("kelurahan", "kecamatan")}
    areas |= {name_key(f"{r['level']} {r['name']}") for r in WILAYAH}

    assert {text for _, text in TYPED if name_key(text) in areas} == AREA_NAMED_ALIASES


@pytest.mark.parametrize(
    ("name", "quality"),
    [
        ("Lawang Sewu", "reference"),  # a Wikipedia mirror, 6 decimals
        ("Stasiun Semarang Tawang", "reference"),
        ("Pelabuhan Tanjung Emas", "coarse"),  # Wikipedia, but -6.947000: ~100 m
        ("Universitas Diponegoro (Kampus Tembalang)", "coarse"),
        ("Kawasan Simpang Lima", "pin"),  # a student's folium map on GitHub
        ("RSUP Dr. Kariadi", "pin"),
    ],
)
def test_confidence_follows_the_row_quality_when_a_landmark_is_loaded(
    gazetteer: Gazetteer, name: str, quality: str
) -> None:
    landmark = next(lm for lm in gazetteer.landmarks if lm.name == name)

    assert landmark.row.quality == quality
    assert landmark.confidence == LANDMARK_CONFIDENCE[landmark.row.quality]
    assert (
        LANDMARK_CONFIDENCE["reference"]
        > LANDMARK_CONFIDENCE["coarse"]
        > LANDMARK_CONFIDENCE["pin"]
        > KELURAHAN_CONFIDENCE
    )


def test_pin_quality_when_source_is_a_code_host_whatever_the_precision() -> None:
    assert quality_of("https://gitlab.com/x/y/-/blob/main/map.js", "-6.9", "110.4") == "pin"
    assert quality_of("https://en.wikipedia.org/wiki/X", "-6.9471", "110.4243") == "reference"
    assert quality_of("Dinas Kominfo GIS 2026", "-6.947", "110.424") == "coarse"


def test_polygon_kelurahan_answered_and_mismatch_listed_when_csv_row_is_wrong(
    caplog: pytest.LogCaptureFixture,
) -> None:
    row = {**row_named("Lawang Sewu"), "kelurahan": "Pleburan"}  # it is in Sekayu
    outside = {**row_named("Pasar Johar"), "name": "Monas", "lat": "-6.1754", "lon": "106.8272"}
    caplog.set_level(logging.WARNING)

    built = Gazetteer.from_records(
        WILAYAH,
        json.loads(
            resources.files("bot.geo").joinpath("data", "semarang_boundaries.geojson").read_text()
        ),
        landmarks=landmark_rows([row, outside]),
        roads=road_rows(
            [
                {"road": "Jalan Pemuda", "landmark": "Lawang Sewu", "relation": "end"},
                {"road": "Jalan Medan Merdeka", "landmark": "Monas", "relation": "end"},
            ]
        ),
    )

    [landmark] = built.landmarks  # Monas is in Jakarta: left out
    assert [road.row.road for road in built.roads] == ["Jalan Pemuda"]
    assert landmark.area.kelurahan_name == "Sekayu"
    assert built.landmark_mismatches() == [landmark]
    assert built.find_landmark("Lawang Sewu") is not None
    assert "Lawang Sewu" in caplog.text
    assert "Monas" in caplog.text


def test_error_naming_the_line_when_a_landmark_row_is_malformed() -> None:
    with pytest.raises(ValueError, match="line 3"):
        landmark_rows([row_named("Lawang Sewu"), {**row_named("Pasar Johar"), "lat": "x"}])


# -- names and aliases -------------------------------------------------------------------


@pytest.mark.parametrize(("row", "text"), TYPED, ids=[text for _, text in TYPED])
async def test_landmark_resolves_offline_to_its_own_kelurahan_when_name_or_alias_typed(
    offline: CompositeGeocoder, row: dict[str, str], text: str
) -> None:
    for typed in (text, text.upper(), f" {text.lower()}. "):
        candidates = await offline.geocode(typed)

        landmark = next(c for c in candidates if c.source == LANDMARK_SOURCE)
        assert at_landmark(landmark, row), typed
        assert landmark.display_address == row["name"]
        assert landmark.area is not None
        assert (landmark.area.kelurahan_name, landmark.area.kecamatan_name) == (
            row["kelurahan"],
            row["kecamatan"],
        )
        assert not landmark.fuzzy
        if text in AREA_NAMED_ALIASES:
            assert candidates[0].source == GAZETTEER_SOURCE  # the area first
        else:
            assert candidates[0] == landmark, typed


@pytest.mark.parametrize(
    ("text", "name", "kelurahan"),
    [
        ("Simpang Lima", "Kawasan Simpang Lima", "Pleburan"),
        ("simpang 5", "Kawasan Simpang Lima", "Pleburan"),
        ("Lawang Sewu", "Lawang Sewu", "Sekayu"),
        ("Stasiun Tawang", "Stasiun Semarang Tawang", "Tanjung Mas"),
        ("St. Tawang", "Stasiun Semarang Tawang", "Tanjung Mas"),
        ("RSUP Kariadi", "RSUP Dr. Kariadi", "Randusari"),
        ("RSUP Dr. Kariadi", "RSUP Dr. Kariadi", "Randusari"),
        ("Polsek Smg Selatan", "Polsek Semarang Selatan", "Lamper Tengah"),
    ],
)
async def test_landmark_answered_offline_when_a_well_known_place_is_typed(
    offline: CompositeGeocoder, text: str, name: str, kelurahan: str
) -> None:
    [best, *_] = await offline.geocode(text)

    assert best.display_address == name
    assert best.source == LANDMARK_SOURCE
    assert best.area is not None
    assert best.area.kelurahan_name == kelurahan
    assert best.confidence >= 0.5  # the intake shows it as a place, not an approximate area


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("ada kebakaran di pasar johar!!", "Pasar Johar"),
        ("Tolong, kecelakaan motor depan RSUP Dr. Kariadi barusan", "RSUP Dr. Kariadi"),
        ("banjir setinggi lutut dekat stasiun tawang, kereta berhenti", "Stasiun Semarang Tawang"),
        ("there is a fire near Lawang Sewu", "Lawang Sewu"),
        ("ada orang tenggelam di pantai marina rt 3 rw 2", "Pantai Marina"),
        ("kebakaran di pasar johar sekarang", "Pasar Johar"),  # not "Pasar Johar Semarang"
        ("tolong ke kota lama sekarang juga", "Kota Lama Semarang"),
        ("kebakaran di pasar johar semarng", "Pasar Johar"),  # a typo in the city's name
    ],
)
async def test_landmark_found_when_named_inside_a_sentence(
    offline: CompositeGeocoder, text: str, name: str
) -> None:
    found = offline.find_landmark(text)
    [best, *_] = await offline.geocode(text)

    assert found is not None
    assert found.display_address == name
    assert at_landmark(found, row_named(name))
    assert not found.fuzzy
    assert best.display_address == name


async def test_everyday_word_not_read_as_a_typo_when_it_is_one_letter_from_a_name(
    offline: CompositeGeocoder,
) -> None:
    assert await offline.geocode("tolong datang sekarang") == []  # not Kelurahan Sekaran


@pytest.mark.parametrize(
    "text",
    [
        "tolong ada kebakaran",
        "rumah pak johan terbakar",  # one letter from Johar: short names are read exactly only
        "banjir di tanjung mas",  # the kelurahan, not the port
        "Kelurahan Sekayu",
    ],
)
def test_no_landmark_when_a_sentence_names_none(gazetteer: Gazetteer, text: str) -> None:
    assert gazetteer.find_landmark(text) is None


async def test_landmark_before_the_area_when_both_are_typed(offline: CompositeGeocoder) -> None:
    candidates = await offline.geocode("Pasar Johar, Kel. Kauman")

    assert [c.source for c in candidates] == [LANDMARK_SOURCE, GAZETTEER_SOURCE]
    assert [c.area.kelurahan_name for c in candidates if c.area] == ["Kauman", "Kauman"]


async def test_longer_kelurahan_name_wins_when_a_landmark_alias_is_inside_it(
    offline: CompositeGeocoder,
) -> None:
    candidates = await offline.geocode("Terboyo Wetan")  # "Terboyo" is the bus terminal

    assert [c.display_address for c in candidates] == [
        "Kelurahan Terboyo Wetan, Kecamatan Genuk, Kota Semarang"
    ]


@pytest.mark.parametrize("alias", sorted(AREA_NAMED_ALIASES))
async def test_area_first_and_landmark_offered_when_an_alias_is_an_area_name(
    offline: CompositeGeocoder, alias: str
) -> None:
    row = next(row for row, text in TYPED if text == alias)

    candidates = await offline.geocode(alias)

    assert candidates[0].source == GAZETTEER_SOURCE
    assert not candidates[0].fuzzy
    assert any(at_landmark(c, row) and c.source == LANDMARK_SOURCE for c in candidates[1:])


async def test_rt_rw_kept_when_a_landmark_is_typed(offline: CompositeGeocoder) -> None:
    [best, *_] = await offline.geocode("Pasar Johar RT 3 RW 7")

    assert best.rt_rw == "RT 003/RW 007"


# -- fuzzy matches -----------------------------------------------------------------------


async def test_flagged_fuzzy_when_a_town_outside_the_city_reads_like_a_kelurahan(
    offline: CompositeGeocoder,
) -> None:
    [guess] = await offline.geocode("Bandungan")
    [exact] = await offline.geocode("Bendungan")

    assert guess.fuzzy
    assert guess.display_address.startswith("Kelurahan Bendungan")
    assert not exact.fuzzy


async def test_flagged_fuzzy_when_a_landmark_is_typed_with_a_typo(
    offline: CompositeGeocoder,
) -> None:
    [guess, *_] = await offline.geocode("Lawang Sewo")
    found = offline.find_landmark("kebakaran dekat lawang sewo")

    assert guess.source == LANDMARK_SOURCE
    assert guess.display_address == "Lawang Sewu"
    assert guess.fuzzy
    assert guess.confidence < LANDMARK_CONFIDENCE["reference"]
    assert found is not None
    assert found.fuzzy


# -- main roads --------------------------------------------------------------------------


async def test_both_ends_offered_with_low_confidence_when_jalan_pandanaran_typed(
    offline: CompositeGeocoder,
) -> None:
    candidates = await offline.geocode("Jl. Pandanaran 10")

    assert [c.source for c in candidates] == [ROAD_SOURCE, ROAD_SOURCE]
    assert {c.area.kelurahan_name for c in candidates if c.area} == {"Pleburan", "Sekayu"}
    assert {(c.lat, c.lon) for c in candidates} == {
        (float(row_named(n)["lat"]), float(row_named(n)["lon"]))
        for n in ("Kawasan Simpang Lima", "Lawang Sewu")
    }
    assert all(c.confidence == ROAD_CONFIDENCE < KELURAHAN_CONFIDENCE for c in candidates)
    assert all(c.display_address.startswith("Jalan Pandanaran (sekitar ") for c in candidates)


@pytest.mark.parametrize("row", ROADS, ids=lambda r: f"{r['road']} {r['landmark']}")
async def test_road_answered_at_its_cited_landmark_when_typed_with_a_house_number(
    offline: CompositeGeocoder, row: dict[str, str]
) -> None:
    typed = row["road"].replace("Jalan ", "Jl. ") + " No. 7"

    candidates = await offline.geocode(typed)

    road = next(c for c in candidates if at_landmark(c, row_named(row["landmark"])))
    assert road.source == ROAD_SOURCE
    assert road.area is not None
    assert road.area.kelurahan_name == row_named(row["landmark"])["kelurahan"]


async def test_no_road_when_its_name_is_typed_without_jalan(offline: CompositeGeocoder) -> None:
    assert await offline.geocode("pahlawan") == []  # a hero, not Jalan Pahlawan


async def test_landmark_not_repeated_as_a_road_when_both_are_typed(
    offline: CompositeGeocoder,
) -> None:
    candidates = await offline.geocode("Jl. Pemuda dekat Lawang Sewu")

    assert [c.source for c in candidates] == [LANDMARK_SOURCE]


async def test_prompt_examples_resolve_offline_when_typed(offline: CompositeGeocoder) -> None:
    # The location prompt says: e.g. «Jl. Pandanaran 10» or «Simpang Lima».
    for example in ("Jl. Pandanaran 10", "Simpang Lima"):
        candidates = await offline.geocode(example)

        assert candidates, example
        assert candidates[0].area is not None


# -- before Nominatim --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["Simpang Lima", "kebakaran di pasar johar", "RSUP Kariadi RT 2 RW 3", "simpang 5"]
)
async def test_no_nominatim_request_when_a_landmark_is_named(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime, text: str
) -> None:
    candidates = await make_geocoder().geocode(text)

    assert nominatim.requests == []
    assert fake_time.sleeps == []
    assert candidates[0].source == LANDMARK_SOURCE


async def test_no_rate_limit_wait_when_a_surge_names_landmarks(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime
) -> None:
    geocoder = make_geocoder()

    for row, text in TYPED:
        if text not in AREA_NAMED_ALIASES:
            [best, *_] = await geocoder.geocode(f"tolong ada kebakaran di {text} sekarang")
            assert at_landmark(best, row), text

    assert nominatim.requests == []
    assert fake_time.sleeps == []


async def test_nominatim_asked_and_landmark_offered_when_text_names_a_street_too(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.search_results = [JALAN_PANDANARAN]

    candidates = await make_geocoder().geocode("Jl. Pandanaran 10 dekat Simpang Lima")

    assert len(nominatim.requests) == 1
    assert [c.source for c in candidates] == [NOMINATIM_SOURCE, LANDMARK_SOURCE]
    assert candidates[1].display_address == "Kawasan Simpang Lima"


async def test_landmark_answers_when_nominatim_finds_nothing_for_a_house_number(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.search_results = []

    candidates = await make_geocoder().geocode("Toko Sinar 5 depan Pasar Johar")

    assert len(nominatim.requests) == 1
    assert candidates[0].source == LANDMARK_SOURCE
    assert candidates[0].display_address == "Pasar Johar"


async def test_nominatim_asked_when_a_fuzzy_name_is_all_the_gazetteer_has(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.search_results = []

    candidates = await make_geocoder().geocode("Bandungan")

    assert len(nominatim.requests) == 1
    assert [c.fuzzy for c in candidates] == [True]


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("ada kebakaran di pasar johar!!", "Pasar Johar"),  # a landmark first
        ("kecelakaan di jl pandanaran", "Jalan Pandanaran (sekitar Kawasan Simpang Lima)"),
        ("banjir di tlogosari kulon", "Kelurahan Tlogosari Kulon, Kecamatan Pedurungan"),
        ("pohon tumbang di sampangan", "Kelurahan Sampangan, Kecamatan Gajahmungkur"),
        ("my house is on fire in tembalang", "Kelurahan Tembalang, Kecamatan Tembalang"),
        ("kebakaran gudang di genuk", "Kecamatan Genuk"),
    ],
)
def test_place_in_a_sentence_is_a_landmark_road_or_area(
    gazetteer: Gazetteer, text: str, place: str
) -> None:
    found = gazetteer.find_place(text)
    assert found is not None
    assert found.display_address.startswith(place)
    assert found.area is not None
    assert not found.fuzzy


@pytest.mark.parametrize(
    "text",
    [
        "ada kebakaran di rumah saya",
        "tolong ada maling",
        "kecelakaan di jalan raya dekat pasar",
        "tolong datang sekarang",  # one letter from Kelurahan Sekaran: not read as it
    ],
)
def test_no_place_when_a_sentence_names_none(gazetteer: Gazetteer, text: str) -> None:
    assert gazetteer.find_place(text) is None


def test_place_with_typos_is_only_a_landmark_and_marked_fuzzy(gazetteer: Gazetteer) -> None:
    found = gazetteer.find_place("kebakaran dekat lawang sewo")
    assert found is not None
    assert found.fuzzy
    assert gazetteer.find_place("banjir di tlogosori kulon") is None  # an area: read exactly
