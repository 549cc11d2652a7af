"""Rate governor benchmark: what scheduling costs per Bot API call, with many calls queued.

Run: ``.venv/bin/python bench/governor.py [--calls 10000] [--repeat 3]``. One core, no
network, no event loop: the pure scheduler is driven from wake-up to wake-up (every call is
answered at once), so the figure is the governor's own CPU per call. Three queue shapes:
a broadcast to N private chats (paced at 20/s), N operator cards into one group (20 per
minute) and a mix of all classes over 500 private chats and 7 groups.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bot.services.governor import Limits, Scheduler, Target
from bot.services.outbox_kinds import Priority


def fill(scheduler: Scheduler, shape: str, calls: int) -> None:
    """Queues ``calls`` calls of one shape at time 0."""
    for n in range(calls):
        if shape == "broadcast":
            scheduler.submit(Priority.BROADCAST, Target.private(10_000 + n), 0.0)
        elif shape == "one group":
            scheduler.submit(Priority.OPERATOR, Target.group(-100), 0.0, rank=1 + n % 3)
        else:
            target = Target.private(10_000 + n % 500) if n % 3 else Target.group(-1 - n % 7)
            scheduler.submit(Priority(1 + n % 5), target, 0.0)


def drain(shape: str, calls: int) -> tuple[float, float]:
    """Seconds of CPU per call and the virtual time of the last grant."""
    scheduler = Scheduler(Limits())
    fill(scheduler, shape, calls)
    started, now, granted = time.perf_counter(), 0.0, 0
    while True:
        for call in scheduler.grant(now):
            scheduler.release(call, now)
            granted += 1
        wake = scheduler.next_wakeup(now)
        if wake is None:
            break
        now = wake
    assert granted == calls
    return (time.perf_counter() - started) / calls, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=10_000, help="calls queued at once")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    args = parser.parse_args()
    print(f"rate governor, {args.calls} calls queued at once, median of {args.repeat} runs")
    for shape in ("broadcast", "one group", "mixed"):
        runs = [drain(shape, args.calls) for _ in range(args.repeat)]
        per_call = statistics.median(cost for cost, _ in runs)
        print(f"  {shape:10s} {per_call * 1e6:6.1f} us/call   last grant at {runs[0][1]:,.0f} s")


if __name__ == "__main__":
    main()
