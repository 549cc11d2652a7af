"""Compare two checkouts with ``bench/intake.py``, one run at a time, alternating.

The development machine's speed drifts within minutes (the bare echo bot's CPU per update
moves by a third), so nine runs of one checkout followed by nine of the other compare two
different machines. This runs single runs in the order before, after, after, before, …
and prints each side's median of each row, with the range of its runs::

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/alternate.py /tmp/before . --runs 10 -- --split

Arguments after ``--`` go to ``bench/intake.py`` (``--repeat 1`` is added). Each checkout
runs its own ``bench/intake.py`` and its own code, with this interpreter.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROWS = (
    "confirm -> committed p95 ms",
    "confirm -> committed p50 ms",
    "intake CPU ms/update",
    "intake CPU ms/update, cards included",
    "echo CPU ms/update",
    "ratio intake/echo",
    "confirm -> citizen ack p95 ms",
    "intake update -> answer p95 ms",
    "intake updates/s",
)
CPU_RATIO = "CPU per update x echo, run by run"


def one_run(checkout: Path, intake_args: list[str]) -> dict[str, float] | None:
    """One ``bench/intake.py --repeat 1`` in ``checkout``; its rows, or None if it failed."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run(  # noqa: S603 - this interpreter, the checkout's own script
        [sys.executable, "bench/intake.py", "--repeat", "1", *intake_args],
        cwd=checkout, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    found: dict[str, float] = {}
    for row in ROWS:
        match = re.search(re.escape(row) + r"\s+([\d.,]+)", done.stdout)
        if match is None:
            print(f"{checkout}: run failed\n{done.stdout[-800:]}{done.stderr[-800:]}")
            return None
        found[row] = float(match.group(1).replace(",", ""))
    found[CPU_RATIO] = found["intake CPU ms/update"] / found["echo CPU ms/update"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="the checkout measured as 'before'")
    parser.add_argument("after", type=Path, help="the checkout measured as 'after'")
    parser.add_argument("--runs", type=int, default=10, help="single runs per side (10)")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.intake_args = argv[cut + 1 :]  # bench/intake.py's arguments
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for n in range(args.runs):
        order = ("before", "after") if n % 2 == 0 else ("after", "before")
        for side in order:
            got = one_run(sides[side], args.intake_args)
            if got is not None:
                results[side].append(got)
                print(
                    f"run {n + 1} {side:6s} committed p95 {got[ROWS[0]]:6.1f} ms, "
                    f"CPU {got['intake CPU ms/update']:.2f} ms (echo "
                    f"{got['echo CPU ms/update']:.2f})",
                    flush=True,
                )
    if not results["before"] or not results["after"]:
        print("no run of one side succeeded")
        return 1
    print(
        f"\n{args.intake_args or ['(defaults)']}: medians of {len(results['before'])} / "
        f"{len(results['after'])} single runs, alternating (before -> after)"
    )
    for row in (*ROWS, CPU_RATIO):
        before = [r[row] for r in results["before"]]
        after = [r[row] for r in results["after"]]
        print(
            f"{row:34s} {statistics.median(before):8.2f} -> {statistics.median(after):8.2f}"
            f"   (runs {min(before):.2f}-{max(before):.2f} -> {min(after):.2f}-{max(after):.2f})"
        )
    failed = 2 * args.runs - len(results["before"]) - len(results["after"])
    if failed:
        print(f"{failed} run(s) failed (not counted)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
