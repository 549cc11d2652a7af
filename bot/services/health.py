"""Whether deliveries currently get through: what this process may promise a citizen.

The outbox worker reports each outcome on the operators' and the agencies' chats, and the
start-up check reports whether the operators' chat answers. While the operators' chat is
down the citizen's confirmation must not say that an operator is reading the report.
One object per process: another process learns the same from its own deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.services.outbox_kinds import Audience

#: Audiences whose chat is ours to configure: a refusal there is a configuration fault.
CONFIGURED = (Audience.OPERATORS, Audience.AGENCY)


@dataclass(frozen=True, slots=True)
class Outage:
    """A destination that refuses deliveries, since when and why (Telegram's words)."""

    audience: Audience
    chat_id: int | None
    reason: str
    since: datetime


class DeliveryHealth:
    """The destinations that currently refuse deliveries (per process)."""

    def __init__(self) -> None:
        self._outages: dict[tuple[Audience, int | None], Outage] = {}

    @staticmethod
    def _key(audience: Audience, chat_id: int | None) -> tuple[Audience, int | None]:
        # There is one operators' chat, whatever id it had (it may have migrated).
        return (audience, None if audience is Audience.OPERATORS else chat_id)

    def down(self, audience: Audience, chat_id: int | None, reason: str, now: datetime) -> bool:
        """Records a refusal; True when this starts an outage (the moment to alert)."""
        key = self._key(audience, chat_id)
        started = key not in self._outages
        if started:
            self._outages[key] = Outage(audience, chat_id, reason, now)
        return started

    def up(self, audience: Audience, chat_id: int | None) -> Outage | None:
        """Records a delivery that got through; returns the outage it ended, if any."""
        return self._outages.pop(self._key(audience, chat_id), None)

    @property
    def operators_reachable(self) -> bool:
        """Whether operator cards are deliverable as far as this process knows."""
        return (Audience.OPERATORS, None) not in self._outages

    def outages(self) -> list[Outage]:
        """The current outages, oldest first."""
        return sorted(self._outages.values(), key=lambda outage: outage.since)
