"""Shared set-up of the advisory tests: the real city data, a Bot double, the real worker."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from functools import cache
from typing import Any

from telegram import Chat, Message
from telegram.error import Forbidden

from bot.config import load_settings
from bot.domain.model import Citizen, Location, LocationSource, Ticket, TicketStatus
from bot.geo import Gazetteer, load_gazetteer
from bot.services.advisories import AdvisoryService
from bot.services.governor import RateGovernor, Target
from bot.services.intake import IntakePolicy, IntakeService
from bot.services.outbox import OutboxWorker
from bot.services.outbox_kinds import Priority
from bot.services.queries import TicketQueries
from bot.services.subscriptions import SubscriptionService
from handlers.advisory_views import AdvisoryViews
from handlers.delivery import TelegramDeliverer
from handlers.views import Views
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import T0, Clock

ADMIN = 1000
SEMARANG_SELATAN = "33.74.07"
GAJAHMUNGKUR = "33.74.09"
SEMARANG_TENGAH = "33.74.01"
TUGU = "33.74.16"
PLEBURAN = "33.74.07.1005"  # kelurahan in Semarang Selatan
BENDUNGAN = (-7.0, 110.41)
"""A point in Kelurahan Bendungan (Gajahmungkur), 427.5 m from Semarang Selatan's ground."""


@cache
def gazetteer() -> Gazetteer:
    return load_gazetteer()


class Admins:
    """The roster's admin check: only ``ADMIN``."""

    async def is_admin(self, telegram_id: int) -> bool:
        return telegram_id == ADMIN


class Bot:
    """The Bot API double: records what reached Telegram, refuses blocked chats, and may hold
    calls at a gate (as the rate governor holds them) or pace them through a governor."""

    def __init__(self, governor: RateGovernor | None = None, now: Any = None) -> None:
        self.rate_limiter: object | None = governor
        self.governor = governor
        self.now = now
        self.sent: list[tuple[int, str]] = []
        self.granted: list[tuple[float, int]] = []
        self.edits: list[tuple[int, int, str]] = []
        self.blocked: set[int] = set()
        self.gate: asyncio.Event | None = None
        self.paid: list[bool] = []
        self._ids = 100

    async def _governed(self, chat_id: int, kwargs: dict[str, Any]) -> None:
        if self.gate is not None:
            await self.gate.wait()
        args = kwargs.pop("rate_limit_args", None)
        if self.governor is not None and args is not None:
            call = await self.governor.acquire(
                Priority(args["priority"]), Target.private(chat_id), rank=args.get("rank"),
                paid=bool(kwargs.get("allow_paid_broadcast")),
            )  # fmt: skip
            self.granted.append((self.governor.now(), chat_id))
            self.governor.release(call)

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> Message:
        await self._governed(chat_id, kwargs)
        if chat_id in self.blocked:
            raise Forbidden("Forbidden: bot was blocked by the user")
        self.paid.append(bool(kwargs.get("allow_paid_broadcast")))
        self.sent.append((chat_id, text))
        self._ids += 1
        return Message(self._ids, T0, Chat(chat_id, "private"))

    async def send_photo(self, chat_id: int, photo: str, **kwargs: Any) -> Message:
        return await self.send_message(chat_id, f"[photo {photo}] {kwargs.pop('caption')}",
                                       **kwargs)  # fmt: skip

    async def edit_message_text(self, text: str, **kwargs: Any) -> bool:
        self.edits.append((int(kwargs["chat_id"]), int(kwargs["message_id"]), text))
        return True

    def copies_to(self, chat_id: int) -> int:
        return sum(1 for chat, text in self.sent if chat == chat_id and "Imbauan dari" in text)


@dataclasses.dataclass
class World:
    clock: Clock
    uow_factory: InMemoryUnitOfWorkFactory
    advisories: AdvisoryService
    subscriptions: SubscriptionService
    views: AdvisoryViews

    def worker(self, bot: Bot, **options: Any) -> OutboxWorker:
        settings = load_settings({"DEFAULT_LANGUAGE": "id"}, env_file=None)
        intake = IntakeService(self.uow_factory, None, self.clock, IntakePolicy())  # type: ignore[arg-type]
        deliverer = TelegramDeliverer(
            bot, TicketQueries(self.uow_factory), intake, Views(settings), None,  # type: ignore[arg-type]
            advisories=self.advisories, advisory_views=self.views,
        )  # fmt: skip
        return OutboxWorker(self.uow_factory, deliverer, self.clock, **options)  # type: ignore[arg-type]


def world(*, paid: bool = False) -> World:
    clock = Clock()
    uow_factory = InMemoryUnitOfWorkFactory(clock=clock)
    city = gazetteer()
    kecamatan = {k.code: k.name for k in city.kecamatan}
    settings = load_settings({"DEFAULT_LANGUAGE": "id"}, env_file=None)
    advisories = AdvisoryService(
        uow_factory, clock, city, Admins(), kecamatan=kecamatan,
        kelurahan={k.code: k.name for k in city.kelurahan}, paid=paid,
    )  # fmt: skip
    subscriptions = SubscriptionService(uow_factory, clock, kecamatan)
    views = AdvisoryViews(Views(settings), kecamatan)
    return World(clock, uow_factory, advisories, subscriptions, views)


async def add_subscriber(
    uow_factory: InMemoryUnitOfWorkFactory,
    telegram_id: int,
    kecamatan: str | None = None,
    *,
    subscribed: bool = True,
    blocked: bool = False,
    language: str = "id",
) -> int:
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(
            Citizen(
                telegram_id=telegram_id, language=language, subscribed=subscribed,
                subscription_kecamatan_code=kecamatan, subscribed_at=T0 if subscribed else None,
                blocked_bot=blocked, created_at=T0, updated_at=T0,
            )
        )  # fmt: skip
        await uow.commit()
    return citizen.id or 0


async def add_report(
    uow_factory: InMemoryUnitOfWorkFactory, telegram_id: int, lat: float, lon: float
) -> None:
    """A submitted report of the citizen at a point (its area from the real polygons)."""
    area = gazetteer().locate_area(lat, lon)
    async with uow_factory() as uow:
        citizen = await uow.citizens.get_by_telegram_id(telegram_id)
        assert citizen is not None
        await uow.tickets.add(
            Ticket(
                citizen_id=citizen.id or 0, chat_id=telegram_id, status=TicketStatus.SUBMITTED,
                created_at=T0, updated_at=T0, step=None, ref="SMG-261127-0001",
                incident_location=Location(lat, lon, LocationSource.GPS, T0, area=area),
                submitted_at=T0,
            )
        )  # fmt: skip
        await uow.commit()


async def drain(
    worker: OutboxWorker, clock: Clock, uow_factory: InMemoryUnitOfWorkFactory, rounds: int = 200
) -> None:
    """Runs the worker pass after pass (time moving on) until nothing is owed."""
    for _ in range(rounds):
        await worker.run_once()
        async with uow_factory() as uow:
            if not await uow.outbox.owed(1):
                return
        clock.advance(seconds=1)
    raise AssertionError("the outbox did not drain")


LEASE_PAST = timedelta(seconds=31)
