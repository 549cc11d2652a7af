"""Geocoding through Nominatim (a fake server on loopback) with the gazetteer as fallback."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest

from bot.config import PUBLIC_NOMINATIM_URL
from bot.domain.model import GeocodeCandidate
from bot.geo import CompositeGeocoder, Gazetteer, InMemoryGeocodeCache, build_geocoder
from bot.geo.gazetteer import GAZETTEER_SOURCE, KELURAHAN_CONFIDENCE
from bot.geo.nominatim import NOMINATIM_SOURCE
from tests.unit.geo.conftest import USER_AGENT, FakeClock, FakeTime
from tests.unit.geo.fake_nominatim import (
    JALAN_PANDANARAN,
    JALAN_PEMUDA_DEMAK,
    LAWANG_SEWU,
    FakeNominatim,
    Place,
)

MakeGeocoder = Callable[..., CompositeGeocoder]
SEKAYU = "33.74.01.1007"


# -- what is sent ------------------------------------------------------------------------


async def test_polite_bounded_query_sent_when_geocoding(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, gazetteer: Gazetteer
) -> None:
    geocoder = make_geocoder()

    await geocoder.geocode("Jl. Pandanaran No. 12 RT 03/RW 05, Kel. Pekunden", language="id")

    [request] = nominatim.requests
    assert request.path == "/search"
    assert request.headers["User-Agent"] == USER_AGENT
    params = request.params
    assert params["q"] == "Jalan Pandanaran 12, Kelurahan Pekunden"
    assert params["format"] == "json"  # what geopy asks for
    assert params["countrycodes"] == "id"
    assert params["bounded"] == "1"
    assert params["accept-language"] == "id"
    assert params["limit"] == "5"
    west, south, east, north = (float(v) for v in params["viewbox"].split(","))
    min_lon, min_lat, max_lon, max_lat = gazetteer.bounds
    assert min_lon - 0.02 < west < min_lon
    assert min_lat - 0.02 < south < min_lat
    assert max_lon < east < max_lon + 0.02
    assert max_lat < north < max_lat + 0.02


async def test_building_level_reverse_requested_when_reversing(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    geocoder = make_geocoder()

    await geocoder.reverse(-6.98391, 110.4104, language="en")

    [request] = nominatim.requests
    assert request.path == "/reverse"
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.params["zoom"] == "18"
    assert request.params["addressdetails"] == "1"
    assert request.params["format"] == "json"
    assert request.params["accept-language"] == "en"
    assert (float(request.params["lat"]), float(request.params["lon"])) == (-6.98391, 110.4104)


# -- what comes back ---------------------------------------------------------------------


async def test_area_from_polygons_when_nominatim_address_names_another_kelurahan(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    # Coordinates in Sekayu, free-form address fields claiming Pleburan.
    nominatim.search_results = [
        Place(
            lat=LAWANG_SEWU.lat,
            lon=LAWANG_SEWU.lon,
            display_name="Gedung X, Pleburan, Semarang Selatan, Semarang, Indonesia",
            place_rank=30,
        )
    ]

    [candidate] = await make_geocoder().geocode("Gedung X")

    assert candidate.display_address.startswith("Gedung X, Pleburan")  # Nominatim's, kept
    assert candidate.area is not None
    assert candidate.area.kelurahan_code == SEKAYU
    assert candidate.area.kelurahan_name == "Sekayu"
    assert candidate.source == NOMINATIM_SOURCE


@pytest.mark.parametrize("fmt", ["json", "jsonv2"])
async def test_outside_candidate_ranked_last_when_nominatim_lists_it_first(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fmt: str
) -> None:
    nominatim.force_format = fmt
    nominatim.search_results = [JALAN_PEMUDA_DEMAK, LAWANG_SEWU, JALAN_PANDANARAN]

    candidates = await make_geocoder().geocode("Jalan Pemuda")

    assert [c.display_address for c in candidates] == [
        LAWANG_SEWU.display_name,
        JALAN_PANDANARAN.display_name,
        JALAN_PEMUDA_DEMAK.display_name,
    ]
    assert [c.area.kelurahan_name if c.area else None for c in candidates] == [
        "Sekayu",
        "Pekunden",
        None,
    ]
    # A building beats a street; both beat a kelurahan centroid of the gazetteer.
    assert candidates[0].confidence > candidates[1].confidence > KELURAHAN_CONFIDENCE


async def test_same_place_listed_once_when_nominatim_repeats_it(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.search_results = [JALAN_PANDANARAN, JALAN_PANDANARAN]

    candidates = await make_geocoder().geocode("Jalan Pandanaran")

    assert len(candidates) == 1


async def test_rt_rw_on_every_candidate_when_typed(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.search_results = [LAWANG_SEWU, JALAN_PEMUDA_DEMAK]

    candidates = await make_geocoder().geocode("Jl. Pemuda RT 1 RW 9")

    assert [c.rt_rw for c in candidates] == ["RT 001/RW 009", "RT 001/RW 009"]


async def test_gazetteer_offered_when_nominatim_finds_nothing_inside_the_city(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.search_results = [JALAN_PEMUDA_DEMAK]

    candidates = await make_geocoder().geocode("Gg. Mawar, Kel. Sekayu")

    assert [c.source for c in candidates] == [GAZETTEER_SOURCE, NOMINATIM_SOURCE]
    assert candidates[0].area is not None
    assert candidates[0].area.kelurahan_code == SEKAYU
    assert candidates[1].area is None


async def test_nothing_asked_when_text_is_blank(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    assert await make_geocoder().geocode("  ,  ") == []
    assert nominatim.requests == []


# -- rate limit --------------------------------------------------------------------------


async def test_requests_one_second_apart_when_geocoding_in_a_row(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime
) -> None:
    geocoder = make_geocoder()

    for text in ("Jl. Pemuda", "Jl. Pandanaran", "Jl. Pahlawan"):
        await geocoder.geocode(text)

    assert [r.at for r in nominatim.requests] == [0.0, 1.0, 2.0]
    assert fake_time.sleeps == [1.0, 1.0]


async def test_no_wait_when_previous_request_is_more_than_a_second_old(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime
) -> None:
    geocoder = make_geocoder()
    await geocoder.geocode("Jl. Pemuda")
    fake_time.advance(1.5)

    await geocoder.reverse(-6.98391, 110.4104)

    assert len(nominatim.requests) == 2
    assert fake_time.sleeps == []


async def test_shorter_interval_used_when_configured_for_a_self_hosted_server(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime
) -> None:
    geocoder = make_geocoder(min_interval=0.25)

    for text in ("Jl. Pemuda", "Jl. Pandanaran", "Jl. Pahlawan"):
        await geocoder.geocode(text)

    assert fake_time.sleeps == [0.25, 0.25]


async def test_at_least_one_second_when_public_server_configured_faster(
    clock: FakeClock,
) -> None:
    geocoder = build_geocoder(
        "nominatim",
        nominatim_url=PUBLIC_NOMINATIM_URL,
        user_agent=USER_AGENT,
        min_interval=0.1,
        clock=clock,
    )

    assert geocoder.nominatim is not None
    assert geocoder.nominatim.min_interval == 1.0  # type: ignore[attr-defined]
    await geocoder.aclose()


async def test_gazetteer_answers_at_once_when_the_rate_limit_queue_exceeds_the_timeout(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime
) -> None:
    geocoder = make_geocoder(timeout=0.5)
    await geocoder.geocode("Jl. Pemuda")

    candidates = await geocoder.geocode("Jl. Melati, Kel. Sekayu")

    assert len(nominatim.requests) == 1
    assert fake_time.sleeps == []
    assert [c.source for c in candidates] == [GAZETTEER_SOURCE]


# -- cache -------------------------------------------------------------------------------


class CountingCache(InMemoryGeocodeCache):
    """The in-memory cache, counting reads and writes (stands in for the SQL one)."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0
        self.puts = 0

    async def get(self, key: str, now: datetime) -> list[GeocodeCandidate] | None:
        self.gets += 1
        return await super().get(key, now)

    async def put(
        self, key: str, candidates: Sequence[GeocodeCandidate], expires_at: datetime
    ) -> None:
        self.puts += 1
        await super().put(key, candidates, expires_at)


class BrokenCache:
    """A durable cache whose database is down."""

    async def get(self, key: str, now: datetime) -> list[GeocodeCandidate] | None:
        raise ConnectionError("database is down")

    async def put(
        self, key: str, candidates: Sequence[GeocodeCandidate], expires_at: datetime
    ) -> None:
        raise ConnectionError("database is down")


async def test_served_from_cache_when_the_same_address_is_typed_again_differently(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    geocoder = make_geocoder()

    first = await geocoder.geocode("Jl. Pemuda, Kel. Sekayu")
    second = await geocoder.geocode("jalan PEMUDA   kelurahan sekayu RT 4 RW 1")

    assert len(nominatim.requests) == 1
    assert first[0].rt_rw is None
    assert second[0].rt_rw == "RT 004/RW 001"
    assert second[0].display_address == first[0].display_address


async def test_asked_again_when_language_differs(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    geocoder = make_geocoder()

    await geocoder.geocode("Jl. Pemuda", language="id")
    await geocoder.geocode("Jl. Pemuda", language="en")

    assert [r.params["accept-language"] for r in nominatim.requests] == ["id", "en"]


async def test_asked_again_when_the_cached_answer_expired(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, clock: FakeClock
) -> None:
    geocoder = make_geocoder(cache_ttl=timedelta(days=7))
    await geocoder.geocode("Jl. Pemuda")
    clock.advance(timedelta(days=6))
    await geocoder.geocode("Jl. Pemuda")
    assert len(nominatim.requests) == 1

    clock.advance(timedelta(days=2))
    await geocoder.geocode("Jl. Pemuda")

    assert len(nominatim.requests) == 2


async def test_durable_cache_answers_when_the_process_restarted(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    durable = CountingCache()
    await make_geocoder(cache=durable).geocode("Jl. Pemuda")

    candidates = await make_geocoder(cache=durable).geocode("Jl. Pemuda")

    assert len(nominatim.requests) == 1
    assert candidates[0].display_address == LAWANG_SEWU.display_name
    assert candidates[0].area is not None
    assert candidates[0].area.kelurahan_code == SEKAYU


async def test_durable_cache_not_read_when_the_in_process_lru_has_the_answer(
    make_geocoder: MakeGeocoder,
) -> None:
    durable = CountingCache()
    geocoder = make_geocoder(cache=durable)

    await geocoder.geocode("Jl. Pemuda")
    await geocoder.geocode("Jl. Pemuda")
    await geocoder.geocode("Jl. Pemuda")

    assert (durable.gets, durable.puts) == (1, 1)


async def test_nominatim_answer_given_when_the_durable_cache_is_down(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    geocoder = make_geocoder(cache=BrokenCache())

    candidates = await geocoder.geocode("Jl. Pemuda")
    again = await geocoder.geocode("Jl. Pemuda")

    assert candidates[0].source == NOMINATIM_SOURCE
    assert again == candidates
    assert len(nominatim.requests) == 1


async def test_empty_answer_cached_when_nominatim_finds_nothing(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.search_results = []
    geocoder = make_geocoder()

    assert await geocoder.geocode("Jl. Tidak Ada") == []
    assert await geocoder.geocode("Jl. Tidak Ada") == []
    assert len(nominatim.requests) == 1


# -- failures ----------------------------------------------------------------------------


async def test_gazetteer_answers_when_nominatim_returns_http_500(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.status = 500

    candidates = await make_geocoder().geocode("Jl. Melati 3, Kel. Sekayu")

    assert len(nominatim.requests) == 1
    assert [c.source for c in candidates] == [GAZETTEER_SOURCE]
    assert candidates[0].area is not None
    assert candidates[0].area.kelurahan_code == SEKAYU


async def test_gazetteer_answers_when_nominatim_times_out(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.hang = True

    candidates = await make_geocoder(timeout=0.05).geocode("Jl. Melati 3, Kel. Sekayu")

    assert len(nominatim.requests) == 1
    assert [c.source for c in candidates] == [GAZETTEER_SOURCE]
    assert candidates[0].area is not None
    assert candidates[0].area.kelurahan_code == SEKAYU


async def test_gazetteer_answers_when_nominatim_is_unreachable(
    make_geocoder: MakeGeocoder,
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    geocoder = make_geocoder(nominatim_url=f"http://127.0.0.1:{port}")

    candidates = await geocoder.geocode("Kel. Sekayu")
    address = await geocoder.reverse(-6.98391, 110.4104)

    assert [c.source for c in candidates] == [GAZETTEER_SOURCE]
    assert address == "Kelurahan Sekayu, Kecamatan Semarang Tengah, Kota Semarang"


async def test_nominatim_left_alone_during_cooldown_when_it_just_failed(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime
) -> None:
    geocoder = make_geocoder(failure_cooldown=30.0)
    nominatim.status = 500
    await geocoder.geocode("Jl. Pemuda")
    nominatim.status = 200

    fake_time.advance(29)
    during = await geocoder.geocode("Jl. Pemuda, Kel. Sekayu")
    fake_time.advance(2)
    after = await geocoder.geocode("Jl. Pemuda, Kel. Sekayu")

    assert len(nominatim.requests) == 2
    assert during[0].source == GAZETTEER_SOURCE
    assert after[0].source == NOMINATIM_SOURCE


async def test_cooldown_extended_when_nominatim_says_retry_after(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime
) -> None:
    geocoder = make_geocoder(failure_cooldown=30.0)
    nominatim.status = 429
    nominatim.retry_after = 120
    await geocoder.geocode("Jl. Pemuda")
    nominatim.status = 200

    fake_time.advance(60)
    await geocoder.geocode("Jl. Pandanaran")
    assert len(nominatim.requests) == 1
    fake_time.advance(61)
    await geocoder.geocode("Jl. Pandanaran")

    assert len(nominatim.requests) == 2


async def test_failure_not_cached_when_nominatim_failed(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, fake_time: FakeTime
) -> None:
    geocoder = make_geocoder(failure_cooldown=30.0)
    nominatim.status = 500
    await geocoder.geocode("Jl. Pemuda")
    nominatim.status = 200
    fake_time.advance(31)

    candidates = await geocoder.geocode("Jl. Pemuda")

    assert len(nominatim.requests) == 2
    assert candidates[0].source == NOMINATIM_SOURCE


class ExplodingSource:
    """A Nominatim client with a bug in it."""

    async def search(self, query: str, *, language: str) -> list[object]:
        raise KeyError("bug")

    async def reverse(self, lat: float, lon: float, *, language: str) -> object:
        raise KeyError("bug")

    async def aclose(self) -> None:
        return None


async def test_gazetteer_answers_when_the_nominatim_client_has_a_bug(
    gazetteer: Gazetteer, clock: FakeClock
) -> None:
    geocoder = CompositeGeocoder(
        gazetteer,
        nominatim=ExplodingSource(),  # type: ignore[arg-type]
        cache=None,
        clock=clock,
    )

    candidates = await geocoder.geocode("Kel. Sekayu")
    address = await geocoder.reverse(-6.98391, 110.4104)

    assert [c.source for c in candidates] == [GAZETTEER_SOURCE]
    assert address == "Kelurahan Sekayu, Kecamatan Semarang Tengah, Kota Semarang"


# -- reverse -----------------------------------------------------------------------------


async def test_nominatim_address_given_when_reversing_a_point(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    geocoder = make_geocoder()

    address = await geocoder.reverse(-6.98391, 110.4104)
    again = await geocoder.reverse(-6.98391, 110.4104)

    assert address == LAWANG_SEWU.display_name
    assert again == address
    assert len(nominatim.requests) == 1


async def test_area_address_given_when_reverse_fails(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.status = 500

    address = await make_geocoder().reverse(-6.99037, 110.42291)

    assert address == "Kelurahan Pleburan, Kecamatan Semarang Selatan, Kota Semarang"


async def test_area_address_given_when_nominatim_knows_no_address_in_the_city(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.reverse_result = None

    address = await make_geocoder().reverse(-6.99037, 110.42291)

    assert address == "Kelurahan Pleburan, Kecamatan Semarang Selatan, Kota Semarang"


async def test_no_address_when_point_is_outside_and_nominatim_knows_none(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.reverse_result = None

    assert await make_geocoder().reverse(-6.85, 110.40) is None  # the Java Sea
    assert len(nominatim.requests) == 1


async def test_nominatim_address_given_when_point_is_outside_the_city(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
) -> None:
    nominatim.reverse_result = JALAN_PEMUDA_DEMAK

    address = await make_geocoder().reverse(JALAN_PEMUDA_DEMAK.lat, JALAN_PEMUDA_DEMAK.lon)

    assert address == JALAN_PEMUDA_DEMAK.display_name


# -- logs ---------------------------------------------------------------------------------


async def test_no_address_or_coordinates_logged_when_nominatim_fails(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    geocoder = make_geocoder(failure_cooldown=0.0)
    nominatim.status = 500

    await geocoder.geocode("Jl. Rahasiaku 77 RT 5 RW 6, Kel. Sekayu")
    await geocoder.reverse(-6.98391, 110.4104)
    nominatim.status = 200
    await geocoder.geocode("Jl. Rahasiaku 78")

    logged = "\n".join(
        [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    )
    assert "GeocoderServiceError" in logged  # the failure is logged, by class
    for secret in ("Rahasiaku", "rahasiaku", "77", "78", "-6.98", "110.41", "6.98391"):
        assert secret not in logged
    assert all(r.exc_info is None for r in caplog.records)


# -- modes and wiring ----------------------------------------------------------------------


async def test_gazetteer_alone_answers_when_geocoder_is_offline(clock: FakeClock) -> None:
    geocoder = build_geocoder("offline", clock=clock)

    candidates = await geocoder.geocode("Jl. Melati RT 1 RW 2, Kel. Sekayu")
    address = await geocoder.reverse(-6.99037, 110.42291)

    assert geocoder.nominatim is None
    assert [c.source for c in candidates] == [GAZETTEER_SOURCE]
    assert candidates[0].rt_rw == "RT 001/RW 002"
    assert address == "Kelurahan Pleburan, Kecamatan Semarang Selatan, Kota Semarang"
    assert geocoder.locate_area(-6.2088, 106.8456) is None
    await geocoder.aclose()


@pytest.mark.parametrize(
    ("mode", "arguments", "message"),
    [
        ("google", {"user_agent": USER_AGENT}, "GEOCODER"),
        ("nominatim", {}, "NOMINATIM_USER_AGENT"),
        ("nominatim", {"user_agent": USER_AGENT, "nominatim_url": "ftp://x"}, "NOMINATIM_URL"),
        ("nominatim", {"user_agent": USER_AGENT, "timeout": 0}, "timeout"),
    ],
)
def test_error_naming_the_setting_when_configuration_is_wrong(
    clock: FakeClock, mode: str, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_geocoder(mode, clock=clock, **arguments)  # type: ignore[arg-type]
