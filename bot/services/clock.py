"""Clock adapters."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        """Return the current aware UTC time."""
        return datetime.now(UTC)
