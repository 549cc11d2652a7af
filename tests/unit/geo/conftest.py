"""Fixtures of the geocoding tests: controlled time, the gazetteer, a fake Nominatim."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.geo import CompositeGeocoder, Gazetteer, build_geocoder, load_gazetteer
from tests.unit.geo.fake_nominatim import FakeNominatim

USER_AGENT = "siaga112-tests/0.1 (ops@example.invalid)"


class FakeTime:
    """A monotonic clock that only moves when someone sleeps or the test advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeClock:
    """The ``Clock`` port at a fixed, advanceable UTC time."""

    def __init__(self) -> None:
        self.current = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    return load_gazetteer()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def nominatim() -> AsyncIterator[FakeNominatim]:
    server = FakeNominatim()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def make_geocoder(
    nominatim: FakeNominatim, fake_time: FakeTime, clock: FakeClock
) -> AsyncIterator[Callable[..., CompositeGeocoder]]:
    """Builds geocoders against the fake server (closed after the test)."""
    nominatim.now = fake_time.monotonic
    built: list[CompositeGeocoder] = []

    def make(**overrides: Any) -> CompositeGeocoder:
        arguments: dict[str, Any] = {
            "nominatim_url": nominatim.url,
            "user_agent": USER_AGENT,
            "timeout": 2.0,
            "min_interval": 1.0,
            "clock": clock,
            "monotonic": fake_time.monotonic,
            "sleep": fake_time.sleep,
        }
        arguments.update(overrides)
        geocoder = build_geocoder("nominatim", **arguments)
        built.append(geocoder)
        return geocoder

    yield make
    for geocoder in built:
        await geocoder.aclose()
