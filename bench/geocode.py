"""Geocoding benchmark: ``locate_area`` throughput, cached ``geocode`` latency, landmarks.

Run: ``.venv/bin/python bench/geocode.py [--points 200000] [--seed 112]``. One core, no
network (Nominatim is a stub answering from memory). Targets: locate_area >= 20,000
points/s; cached geocode p95 <= 1 ms. The landmark part types every name and alias of
``bot/geo/data/semarang_landmarks.csv`` alone and inside a sentence, offline, and counts
what a surge of such reports costs a rate-limited Nominatim (1 request/s, simulated time).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

CACHED_QUERIES = 500
CACHED_CALLS = 20_000
LANDMARKS_CSV = Path(__file__).resolve().parents[1] / "bot/geo/data/semarang_landmarks.csv"
SENTENCES = (
    "tolong ada kebakaran di {} sekarang",
    "kecelakaan motor depan {}!!",
    "ada orang pingsan dekat {}, cepat",
)
PROMPT_EXAMPLES = ("Simpang Lima", "Jl. Pandanaran 10")


def percentile(samples: list[float], q: float) -> float:
    """Returns the q-th percentile (0-100) of the samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_locate_area(points: int, seed: int) -> None:
    """Times locate_area over random points in the city's bounding box."""
    import shapely

    from bot.geo import load_gazetteer

    started = time.perf_counter()
    gazetteer = load_gazetteer()
    print(f"gazetteer load (data + indexes): {(time.perf_counter() - started) * 1000:.0f} ms")
    rnd = random.Random(seed)
    min_lon, min_lat, max_lon, max_lat = gazetteer.bounds
    sample = [(rnd.uniform(min_lat, max_lat), rnd.uniform(min_lon, max_lon)) for _ in range(points)]
    locate = gazetteer.locate_area
    started = time.perf_counter()
    results = [locate(lat, lon) for lat, lon in sample]
    elapsed = time.perf_counter() - started
    inside = sum(1 for a in results if a is not None and a.inside)
    gap = sum(1 for a in results if a is not None and not a.inside)
    print(
        f"locate_area: {points:,} random points in the city bbox in {elapsed:.3f} s "
        f"= {points / elapsed:,.0f} points/s ({elapsed / points * 1e6:.2f} us/point); "
        f"inside {inside:,}, gap<=500 m {gap:,}, outside {points - inside - gap:,}"
    )

    # Baseline for comparison: a plain STRtree predicate query per point (+ nearest).
    geoms = gazetteer._geoms  # the projected polygons, for the baseline only
    tree = shapely.STRtree(geoms)
    kx, ky = gazetteer._kx, gazetteer._ky
    lon0, lat0 = gazetteer._lon0, gazetteer._lat0
    subset = sample[: min(points, 50_000)]
    started = time.perf_counter()
    for lat, lon in subset:
        point = shapely.Point((lon - lon0) * kx, (lat - lat0) * ky)
        hits = tree.query(point, predicate="intersects")
        if len(hits) == 0:
            tree.query_nearest(point, max_distance=500.0)
    elapsed = time.perf_counter() - started
    print(f"  baseline (STRtree query per point + nearest): {len(subset) / elapsed:,.0f} points/s")


async def bench_cached_geocode() -> None:
    """Times geocode answered by the in-process LRU, and by the durable cache behind it."""
    from bot.geo import CompositeGeocoder, InMemoryGeocodeCache, load_gazetteer
    from bot.geo.nominatim import NominatimPlace
    from bot.services.clock import SystemClock

    class StubNominatim:
        """Answers every search with two places in the city, from memory."""

        calls = 0

        async def search(self, query: str, *, language: str) -> list[NominatimPlace]:
            self.calls += 1
            return [
                NominatimPlace(-6.98391, 110.4104, f"{query}, Sekayu, Semarang", 30),
                NominatimPlace(-6.9866, 110.4160, f"{query}, Pekunden, Semarang", 26),
            ]

        async def reverse(self, lat: float, lon: float, *, language: str) -> None:
            return None

        async def aclose(self) -> None:
            return None

    queries = [f"Jl. Jalan Nomor {i} RT 0{i % 9 + 1}/RW 02, Kel. Sekayu" for i in range(500)]
    durable = InMemoryGeocodeCache()
    stub = StubNominatim()
    for label, lru_size in (("LRU hit", 4096), ("durable-cache hit (LRU miss)", 1)):
        geocoder = CompositeGeocoder(
            load_gazetteer(), nominatim=stub, cache=durable, clock=SystemClock(), lru_size=lru_size
        )
        for query in queries:  # warm
            await geocoder.geocode(query)
        samples: list[float] = []
        for i in range(CACHED_CALLS):
            query = queries[i % len(queries)]
            started = time.perf_counter_ns()
            candidates = await geocoder.geocode(query)
            samples.append((time.perf_counter_ns() - started) / 1000)
            assert candidates
        print(
            f"cached geocode, {label}: {CACHED_CALLS:,} calls, "
            f"p50 {statistics.median(samples):.1f} us, p95 {percentile(samples, 95):.1f} us, "
            f"p99 {percentile(samples, 99):.1f} us, max {max(samples):.0f} us"
        )
    print(f"  (Nominatim stub asked {stub.calls} times for {len(queries)} distinct queries)")

    offline = CompositeGeocoder(load_gazetteer(), nominatim=None, cache=None, clock=SystemClock())
    samples = []
    texts = ["Gg. Kenari 4 RT 3 RW 7 Kel. Sekayu", "mangunharjo tembalang", "pedurungn kidul"]
    for i in range(5_000):
        started = time.perf_counter_ns()
        await offline.geocode(texts[i % len(texts)])
        samples.append((time.perf_counter_ns() - started) / 1000)
    print(
        f"offline (gazetteer fuzzy) geocode: p50 {statistics.median(samples):.1f} us, "
        f"p95 {percentile(samples, 95):.1f} us"
    )


async def bench_landmarks() -> None:
    """Types every landmark name and alias (alone, in sentences) into the offline geocoder."""
    from bot.geo import CompositeGeocoder, load_gazetteer
    from bot.geo.nominatim import NominatimPlace
    from bot.geo.ratelimit import AsyncRateLimiter
    from bot.services.clock import SystemClock

    with LANDMARKS_CSV.open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    typed = [
        (text, row)
        for row in rows
        for text in dict.fromkeys([row["name"], *row["aliases"].split(";")])
        if text
    ]
    offline = CompositeGeocoder(load_gazetteer(), nominatim=None, cache=None, clock=SystemClock())

    async def score(texts: list[tuple[str, dict[str, str]]]) -> tuple[int, int, list[float]]:
        in_kelurahan = at_point = 0
        samples: list[float] = []
        for text, row in texts:
            started = time.perf_counter_ns()
            candidates = await offline.geocode(text)
            samples.append((time.perf_counter_ns() - started) / 1000)
            best = candidates[0] if candidates else None
            if best is not None and best.area is not None:
                in_kelurahan += best.area.kelurahan_name == row["kelurahan"]
                at_point += (best.lat, best.lon) == (float(row["lat"]), float(row["lon"]))
        return in_kelurahan, at_point, samples

    for label, texts in (
        ("typed alone", typed),
        (
            "inside a sentence",
            [(s.format(text), row) for text, row in typed for s in SENTENCES[:1]]
            + [(s.format(row["name"]), row) for row in rows for s in SENTENCES[1:]],
        ),
    ):
        kelurahan, point, samples = await score(texts)
        print(
            f"landmarks {label}: {len(texts)} texts, first answer in the landmark's kelurahan "
            f"{kelurahan} ({kelurahan / len(texts):.0%}), at its point {point} "
            f"({point / len(texts):.0%}); p50 {statistics.median(samples):.1f} us, "
            f"p95 {percentile(samples, 95):.1f} us"
        )
    for example in PROMPT_EXAMPLES:
        found = await offline.geocode(example)
        answer = (
            f"{found[0].display_address} ({found[0].source}, {found[0].confidence})"
            if found
            else "nothing"
        )
        print(f"  prompt example {example!r} offline: {answer}")

    class FakeTime:
        now = 0.0

        def monotonic(self) -> float:
            return self.now

        async def sleep(self, seconds: float) -> None:
            self.now += seconds

    fake = FakeTime()

    class LimitedStub:
        """Answers from memory, one request per simulated second like the public server."""

        calls = 0
        limiter = AsyncRateLimiter(1.0, monotonic=fake.monotonic, sleep=fake.sleep)

        async def search(self, query: str, *, language: str) -> list[NominatimPlace]:
            await self.limiter.acquire()
            self.calls += 1
            return [NominatimPlace(-6.98391, 110.4104, f"{query}, Sekayu, Semarang", 30)]

        async def reverse(self, lat: float, lon: float, *, language: str) -> None:
            return None

        async def aclose(self) -> None:
            return None

    stub = LimitedStub()
    online = CompositeGeocoder(load_gazetteer(), nominatim=stub, cache=None, clock=SystemClock())
    surge = [f"{s.format(text)}" for text, _ in typed for s in SENTENCES[:1]]
    for text in surge:
        await online.geocode(text)
    print(
        f"surge of {len(surge)} one-line reports naming a landmark, Nominatim at 1 request/s: "
        f"{stub.calls} Nominatim requests, the last answered after {fake.now:.0f} s (simulated)"
    )


def main() -> None:
    """Runs the benchmarks and prints the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=112)
    args = parser.parse_args()
    bench_locate_area(args.points, args.seed)
    asyncio.run(bench_cached_geocode())
    asyncio.run(bench_landmarks())


if __name__ == "__main__":
    main()
