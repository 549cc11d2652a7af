"""Use cases of the application core, wired together by ``bot.app``."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.services.advisories import AdvisoryService
from bot.services.agencies import AgencyService
from bot.services.console import ConsoleService
from bot.services.intake import IntakeService
from bot.services.outbox import OutboxWorker
from bot.services.queries import TicketQueries
from bot.services.queue import QueueService
from bot.services.quick_report import QuickReportService
from bot.services.relay import RelayService
from bot.services.roster import RosterService
from bot.services.sla import SlaService
from bot.services.stats import StatsService
from bot.services.subscriptions import SubscriptionService


@dataclass(frozen=True, slots=True)
class Services:
    """What the Telegram edge may call, plus the settings it renders with."""

    settings: Settings
    intake: IntakeService
    queries: TicketQueries
    outbox: OutboxWorker
    roster: RosterService
    console: ConsoleService
    relay: RelayService
    queue: QueueService
    sla: SlaService
    agencies: AgencyService
    subscriptions: SubscriptionService
    advisories: AdvisoryService
    stats: StatsService
    quick: QuickReportService
    """One-message reports: a message outside a report starts a draft pre-filled from it."""
