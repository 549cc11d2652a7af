"""Shared fixtures: the harness of both tiers is available to every test."""

import os

# PTB 22 warns that time spans become timedelta; opt in now (the code handles both).
os.environ.setdefault("PTB_TIMEDELTA", "1")

from tests.harness.fixtures import fake_bot_api, recording_request

__all__ = ["fake_bot_api", "recording_request"]


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Says how many storage tests really ran on PostgreSQL (CI must never skip them)."""
    counts = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        reports = terminalreporter.stats.get(outcome, [])
        counts[outcome] = sum(1 for r in reports if "postgres" in getattr(r, "keywords", {}))
    if any(counts.values()):
        summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
        terminalreporter.write_line(f"PostgreSQL storage tests: {summary}")
