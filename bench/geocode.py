"""Geocoding benchmark: ``locate_area`` throughput and cached ``geocode`` latency.

Run: ``.venv/bin/python bench/geocode.py [--points 200000] [--seed 112]``. One core, no
network (Nominatim is a stub answering from memory). Targets: locate_area >= 20,000
points/s; cached geocode p95 <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

CACHED_QUERIES = 500
CACHED_CALLS = 20_000


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


def main() -> None:
    """Runs both benchmarks and prints the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=112)
    args = parser.parse_args()
    bench_locate_area(args.points, args.seed)
    asyncio.run(bench_cached_geocode())


if __name__ == "__main__":
    main()
