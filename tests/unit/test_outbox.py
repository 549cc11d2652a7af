"""The outbox worker: retries with backoff, honours retry_after, never drops an operator card."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.model import Citizen, OutboxMessage, Ticket, TicketStatus
from bot.services.outbox import MAX_BACKOFF, OutboxWorker, backoff
from bot.services.ports import DeliveryError, Fault
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        return self.current


class Deliverer:
    """Fails with the queued errors, then succeeds; records what it delivered."""

    def __init__(self, *errors: DeliveryError | Exception) -> None:
        self.errors = list(errors)
        self.delivered: list[str] = []
        self.attempts = 0

    async def deliver(self, message: OutboxMessage) -> None:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        self.delivered.append(str(message.payload["name"]))


async def _ticket(uow_factory: InMemoryUnitOfWorkFactory, telegram_id: int) -> int:
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(Citizen(telegram_id=telegram_id, language="id"))
        ticket = await uow.tickets.add(
            Ticket(
                citizen_id=citizen.id or 0,
                chat_id=telegram_id,
                status=TicketStatus.SUBMITTED,
                created_at=T0,
                updated_at=T0,
            )
        )
        await uow.commit()
    return ticket.id or 0


async def _enqueue(uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, *names: str,
                   kind: str = "operator_card", ticket: int | None = None) -> None:  # fmt: skip
    async with uow_factory() as uow:
        for name in names:
            await uow.outbox.add(
                OutboxMessage(
                    kind=kind if name != "pin" else "operator_pin",
                    payload={"name": name},
                    created_at=clock.now(),
                    next_attempt_at=clock.now(),
                    ticket_id=ticket,
                )
            )
        await uow.commit()


async def _pending(uow_factory: InMemoryUnitOfWorkFactory) -> int:
    async with uow_factory() as uow:
        return await uow.outbox.pending_count()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uow_factory() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


async def test_rows_are_delivered_in_order_when_telegram_is_up(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer()
    await _enqueue(uow_factory, clock, "card", "pin", "photo")
    worker = OutboxWorker(uow_factory, deliverer, clock)
    assert await worker.run_once() == 3
    assert deliverer.delivered == ["card", "pin", "photo"]
    assert await _pending(uow_factory) == 0


async def test_retry_waits_for_retry_after_when_telegram_rate_limits(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer(DeliveryError("429", retry_after=30))
    await _enqueue(uow_factory, clock, "card")
    worker = OutboxWorker(uow_factory, deliverer, clock, must_deliver={"operator_card"})
    assert await worker.run_once() == 0
    clock.current += timedelta(seconds=29)
    assert await worker.run_once() == 0
    assert deliverer.attempts == 1
    clock.current += timedelta(seconds=1)
    assert await worker.run_once() == 1
    assert deliverer.delivered == ["card"]


async def test_backoff_grows_and_is_capped_when_failures_repeat() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff(30) == MAX_BACKOFF


async def test_operator_card_is_never_given_up_when_the_error_looks_permanent(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer(DeliveryError("chat not found", fault=Fault.DESTINATION))
    first = await _ticket(uow_factory, 1)
    await _enqueue(uow_factory, clock, "card", "pin", ticket=first)
    await _enqueue(uow_factory, clock, "other", ticket=await _ticket(uow_factory, 2))
    worker = OutboxWorker(
        uow_factory, deliverer, clock, must_deliver={"operator_card", "operator_pin"}
    )
    assert await worker.run_once() == 1
    assert deliverer.delivered == ["other"]  # another ticket is not held back
    clock.current += timedelta(seconds=10)
    assert await worker.run_once() == 0  # the pin does not overtake its waiting card
    assert await _pending(uow_factory) == 2
    clock.current += MAX_BACKOFF
    assert await worker.run_once() == 2
    assert deliverer.delivered == ["other", "card", "pin"]


async def test_citizen_notice_is_dropped_when_the_citizen_blocked_the_bot(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer(DeliveryError("blocked", fault=Fault.RECIPIENT_GONE))
    await _enqueue(uow_factory, clock, "notice", kind="citizen_notice")
    worker = OutboxWorker(uow_factory, deliverer, clock, must_deliver={"operator_card"})
    assert await worker.run_once() == 0
    assert await _pending(uow_factory) == 0  # failed for good, not retried forever
    clock.current += MAX_BACKOFF
    assert await worker.run_once() == 0
    assert deliverer.attempts == 1


async def test_worker_survives_a_crashing_deliverer_when_a_bug_raises(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer(RuntimeError("bug"))
    await _enqueue(uow_factory, clock, "card")
    worker = OutboxWorker(uow_factory, deliverer, clock)
    assert await worker.run_once() == 0
    clock.current += timedelta(seconds=1)
    assert await worker.run_once() == 1
