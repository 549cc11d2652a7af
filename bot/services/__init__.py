"""Use cases of the application core, wired together by ``bot.app``."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.services.intake import IntakeService
from bot.services.outbox import OutboxWorker
from bot.services.queries import TicketQueries


@dataclass(frozen=True, slots=True)
class Services:
    """What the Telegram edge may call, plus the settings it renders with."""

    settings: Settings
    intake: IntakeService
    queries: TicketQueries
    outbox: OutboxWorker
