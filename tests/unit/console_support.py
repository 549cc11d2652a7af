"""Shared set-up of the console service tests: a hand-moved clock, a geocoder, tickets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.lifecycle import Staff
from bot.domain.model import (
    Area,
    Category,
    CategoryGroup,
    Citizen,
    GeocodeCandidate,
    Location,
    LocationSource,
    Operator,
    OutboxMessage,
    Ticket,
    TicketStatus,
)
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
OPERATORS_CHAT = -1001234567890
ADMIN = Staff(1000, "Admin Rina")
DEWI = Staff(1001, "Dewi")
BUDI = Staff(1002, "Budi")
STRANGER = Staff(666, "Someone")
PLEBURAN = Area("33.74.11.1005", "Pleburan", "33.74.11", "Semarang Selatan")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


class Geocoder:
    """Places points north of -6.9 outside the city, everything else in Pleburan."""

    async def geocode(self, text: str, *, language: str = "id") -> list[GeocodeCandidate]:
        return []

    async def reverse(self, lat: float, lon: float, *, language: str = "id") -> str | None:
        return None

    def locate_area(self, lat: float, lon: float) -> Area | None:
        return None if lat > -6.9 else PLEBURAN

    async def aclose(self) -> None:
        return None


async def add_staff(
    uow_factory: InMemoryUnitOfWorkFactory, *members: Staff, admin: Staff | None = ADMIN
) -> None:
    async with uow_factory() as uow:
        for member in (*members, *([admin] if admin else [])):
            await uow.operators.add(
                Operator(
                    telegram_id=member.telegram_id or 0, display_name=member.name,
                    is_admin=member is admin, active=True, added_by="settings", added_at=T0,
                )
            )  # fmt: skip
        await uow.commit()


async def add_ticket(
    uow_factory: InMemoryUnitOfWorkFactory,
    *,
    telegram_id: int = 5001,
    status: TicketStatus = TicketStatus.SUBMITTED,
    priority: int = 1,
    at: datetime = T0,
    category: Category = Category.FIRE,
    **changes: object,
) -> Ticket:
    """A submitted ticket of a citizen (registered on first use), queued at ``at``."""
    async with uow_factory() as uow:
        citizen = await uow.citizens.get_by_telegram_id(telegram_id)
        if citizen is None:
            citizen = await uow.citizens.add(
                Citizen(telegram_id=telegram_id, language="id", created_at=at, updated_at=at)
            )
        number = len(uow_factory.store.tickets) + 1
        ticket = Ticket(
            citizen_id=citizen.id or 0, chat_id=telegram_id, status=status, created_at=at,
            updated_at=at, step=None, ref=f"SMG-261127-{number:04d}",
            category_group=CategoryGroup.FIRE, category=category, priority=priority,
            incident_location=Location(-6.99, 110.42, LocationSource.GPS, at, area=PLEBURAN),
            submitted_at=at, queued_at=at, operator_chat_id=OPERATORS_CHAT,
            operator_thread_id=100 + number, operator_card_message_id=200 + number,
        )  # fmt: skip
        for name, value in changes.items():
            setattr(ticket, name, value)
        stored = await uow.tickets.add(ticket)
        await uow.commit()
    return stored


async def ticket_of(uow_factory: InMemoryUnitOfWorkFactory, ticket_id: int) -> Ticket:
    async with uow_factory() as uow:
        ticket = await uow.tickets.get(ticket_id)
    assert ticket is not None
    return ticket


def rows(uow_factory: InMemoryUnitOfWorkFactory, kind: str | None = None) -> list[OutboxMessage]:
    """Committed outbox rows (of one kind), in written order."""
    found = sorted(uow_factory.store.outbox.values(), key=lambda m: m.id or 0)
    return [m for m in found if kind is None or m.kind == kind]


def kinds(uow_factory: InMemoryUnitOfWorkFactory) -> list[str]:
    return [m.kind for m in rows(uow_factory)]


async def deliver_all(uow_factory: InMemoryUnitOfWorkFactory, at: datetime = T0) -> None:
    """Marks every owed row sent, as the outbox worker would."""
    async with uow_factory() as uow:
        for message in await uow.outbox.owed(10_000):
            message.sent_at = at
            await uow.outbox.update(message)
        await uow.commit()
