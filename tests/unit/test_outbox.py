"""The outbox worker on the in-memory store with a controlled clock.

Fault classes and their next attempt, the 30 s caps, lanes and rank order, per-ticket order,
leases (a live worker's rows stay its own, a dead one's come back as repeats), results and
the record hook in the unit of work that marks the row sent, chat migrations, admin alerts
and the delivery health.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.model import Citizen, OutboxMessage, Ticket, TicketStatus
from bot.services.alerts import AdminAlerts
from bot.services.chats import ChatDirectory
from bot.services.health import DeliveryHealth
from bot.services.outbox import (
    DESTINATION_BACKOFF,
    EMERGENCY_BACKOFF,
    MAX_BACKOFF,
    OutboxWorker,
    Pacing,
    backoff,
    next_wait,
)
from bot.services.outbox_kinds import (
    ADMIN_ALERT,
    KINDS,
    Audience,
    Lane,
    Priority,
    register,
    set_recorder,
)
from bot.services.ports import DeliveryError, DeliveryResult, Fault, UnitOfWork
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
OPERATORS = -1001234567890


class Clock:
    def __init__(self) -> None:
        self.current = T0

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class Deliverer:
    """Fails with the queued errors, then succeeds; records what it delivered."""

    def __init__(self, *errors: DeliveryError | Exception, only: str | None = None) -> None:
        self.errors = list(errors)
        self.only = only  # the kind the errors are for (all kinds when None)
        self.delivered: list[str] = []
        self.repeats: list[str] = []
        self.attempts = 0
        self.shuffle = False

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        self.attempts += 1
        if self.shuffle:
            await asyncio.sleep((message.id or 0) * 7919 % 13 / 10_000)  # out of step
        if self.errors and self.only in (None, message.kind, message.payload.get("name")):
            raise self.errors.pop(0)
        name = str(message.payload.get("name", message.kind))
        self.delivered.append(name)
        if message.repeat:
            self.repeats.append(name)
        return DeliveryResult(chat_id=OPERATORS, message_id=self.attempts, thread_id=7)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def uow_factory(clock: Clock) -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory(clock=clock)


@pytest.fixture
def lanes() -> Iterator[tuple[str, str]]:
    """Two kinds on the agency and broadcast lanes (removed again after the test)."""
    agency = register(
        "test_agency_card", lane=Lane.AGENCY, audience=Audience.AGENCY,
        priority=Priority.AGENCY, must_deliver=True,
    )  # fmt: skip
    broadcast = register(
        "test_advisory", lane=Lane.BROADCAST, audience=Audience.CITIZEN,
        priority=Priority.BROADCAST, must_deliver=False,
    )  # fmt: skip
    yield agency, broadcast
    del KINDS[agency], KINDS[broadcast]


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
                   kind: str = "operator_card", ticket: int | None = None,
                   rank: int = 3) -> list[int]:  # fmt: skip
    ids = []
    async with uow_factory() as uow:
        for name in names:
            row_kind = kind if name != "pin" else "operator_pin"
            stored = await uow.outbox.add(
                OutboxMessage(
                    kind=row_kind,
                    payload={"name": name},
                    created_at=clock.now(),
                    next_attempt_at=clock.now(),
                    ticket_id=ticket,
                    lane=KINDS[row_kind].lane.value,
                    rank=rank,
                )
            )
            ids.append(stored.id or 0)
        await uow.commit()
    return ids


async def _row(uow_factory: InMemoryUnitOfWorkFactory, row_id: int) -> OutboxMessage:
    async with uow_factory() as uow:
        found = await uow.outbox.get(row_id)
    assert found is not None
    return found


async def _pending(uow_factory: InMemoryUnitOfWorkFactory) -> int:
    async with uow_factory() as uow:
        return await uow.outbox.pending_count()


def _worker(uow_factory: InMemoryUnitOfWorkFactory, deliverer: Deliverer, clock: Clock,
            **options: object) -> OutboxWorker:  # fmt: skip
    return OutboxWorker(uow_factory, deliverer, clock, **options)  # type: ignore[arg-type]


# -- delivery and order -------------------------------------------------------------------


async def test_rows_are_delivered_in_order_when_telegram_is_up(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer()
    ticket = await _ticket(uow_factory, 1)
    await _enqueue(uow_factory, clock, "card", "pin", "photo", ticket=ticket)
    worker = _worker(uow_factory, deliverer, clock)
    assert await worker.run_once() == 3
    assert deliverer.delivered == ["card", "pin", "photo"]
    assert await _pending(uow_factory) == 0


async def test_lanes_are_served_emergency_first_when_all_are_due(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, lanes: tuple[str, str]
) -> None:
    agency, broadcast = lanes
    await _enqueue(uow_factory, clock, "advisory", kind=broadcast)
    await _enqueue(uow_factory, clock, "agency", kind=agency)
    await _enqueue(uow_factory, clock, "card")
    deliverer = Deliverer()
    worker = _worker(uow_factory, deliverer, clock, parallel=1)
    assert await worker.run_once() == 3
    assert deliverer.delivered == ["card", "agency", "advisory"]


async def test_urgent_tickets_go_first_when_a_lane_is_busy(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    tickets = [await _ticket(uow_factory, n) for n in (1, 2, 3)]
    await _enqueue(uow_factory, clock, "other", ticket=tickets[0], rank=3)
    await _enqueue(uow_factory, clock, "medical", ticket=tickets[1], rank=2)
    await _enqueue(uow_factory, clock, "silent", ticket=tickets[2], rank=1)
    deliverer = Deliverer()
    assert await _worker(uow_factory, deliverer, clock, parallel=1, batch=2).run_once() == 2
    assert deliverer.delivered == ["silent", "medical"]


async def test_each_tickets_rows_keep_their_order_when_many_tickets_are_served_at_once(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    for n in range(20):
        ticket = await _ticket(uow_factory, 100 + n)
        await _enqueue(uow_factory, clock, *(f"{n}:{i}" for i in range(5)), ticket=ticket)
    deliverer = Deliverer()
    deliverer.shuffle = True
    worker = _worker(uow_factory, deliverer, clock, batch=30)
    while await _pending(uow_factory):
        await worker.run_once()
    assert len(deliverer.delivered) == 100
    for n in range(20):
        mine = [name for name in deliverer.delivered if name.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(5)]


async def test_rows_without_a_ticket_are_delivered_when_enqueued_alone(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    await _enqueue(uow_factory, clock, "alert-1", "alert-2", kind=ADMIN_ALERT)
    deliverer = Deliverer(DeliveryError("admin never started the bot", fault=Fault.RECIPIENT_GONE))
    assert await _worker(uow_factory, deliverer, clock).run_once() == 1
    assert deliverer.delivered == ["alert-2"]  # one admin's refusal holds nothing back


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "wait"),
    [
        (DeliveryError("429", fault=Fault.RATE_LIMITED, retry_after=7), timedelta(seconds=7)),
        (DeliveryError("502 Bad Gateway", fault=Fault.TRANSIENT), timedelta(seconds=1)),
        (DeliveryError("bot is not a member", fault=Fault.DESTINATION), timedelta(seconds=1)),
        (DeliveryError("blocked", fault=Fault.RECIPIENT_GONE), None),
        (DeliveryError("message is too long", fault=Fault.REJECTED), None),
        (RuntimeError("a bug"), timedelta(seconds=1)),
    ],
    ids=["rate_limited", "transient", "destination", "recipient_gone", "rejected", "bug"],
)
async def test_next_attempt_follows_the_fault_when_a_delivery_fails(
    uow_factory: InMemoryUnitOfWorkFactory,
    clock: Clock,
    error: Exception,
    wait: timedelta | None,
) -> None:
    (row_id,) = await _enqueue(uow_factory, clock, "card")
    assert await _worker(uow_factory, Deliverer(error), clock).run_once() == 0
    row = await _row(uow_factory, row_id)
    assert row.attempts == 1
    assert row.claimed_by is None
    if wait is None:
        assert row.failed_at == T0
    else:
        assert row.failed_at is None
        assert row.next_attempt_at == T0 + wait


async def test_retry_waits_for_retry_after_when_telegram_rate_limits(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer(DeliveryError("429", fault=Fault.RATE_LIMITED, retry_after=30))
    await _enqueue(uow_factory, clock, "card")
    worker = _worker(uow_factory, deliverer, clock)
    assert await worker.run_once() == 0
    clock.advance(29)
    assert await worker.run_once() == 0
    assert deliverer.attempts == 1
    clock.advance(1)
    assert await worker.run_once() == 1
    assert deliverer.delivered == ["card"]


async def test_backoff_grows_and_is_capped_when_failures_repeat() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff(30) == MAX_BACKOFF
    assert backoff(10_000) == MAX_BACKOFF


@pytest.mark.parametrize(
    ("fault", "lane", "cap"),
    [
        (Fault.TRANSIENT, "emergency", EMERGENCY_BACKOFF),
        (Fault.TRANSIENT, "agency", MAX_BACKOFF),
        (Fault.TRANSIENT, "broadcast", MAX_BACKOFF),
        (Fault.DESTINATION, "emergency", DESTINATION_BACKOFF),
        (Fault.DESTINATION, "agency", DESTINATION_BACKOFF),
        (Fault.RATE_LIMITED, "emergency", EMERGENCY_BACKOFF),  # without retry_after
    ],
)
async def test_backoff_is_capped_per_lane_when_a_fault_repeats(
    fault: Fault, lane: str, cap: timedelta
) -> None:
    assert EMERGENCY_BACKOFF == DESTINATION_BACKOFF == timedelta(seconds=30)
    waits = [next_wait(fault, attempts, lane) for attempts in range(1, 40)]
    assert waits[0] == timedelta(seconds=1)
    assert max(w for w in waits if w is not None) == cap


async def test_operator_card_is_retried_every_30_seconds_at_most_when_the_chat_refuses_it(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    refusals = [DeliveryError("bot is not a member", fault=Fault.DESTINATION)] * 12
    deliverer = Deliverer(*refusals, only="card")
    first = await _ticket(uow_factory, 1)
    card, _pin = await _enqueue(uow_factory, clock, "card", "pin", ticket=first)
    await _enqueue(uow_factory, clock, "other", ticket=await _ticket(uow_factory, 2))
    worker = _worker(uow_factory, deliverer, clock)
    await worker.run_once()
    assert "other" in deliverer.delivered  # another ticket is not held back
    waits = []
    for _ in range(20):
        row = await _row(uow_factory, card)
        if row.sent_at is not None:
            break
        assert row.failed_at is None  # never given up
        waits.append(row.next_attempt_at - clock.now())
        clock.current = row.next_attempt_at
        await worker.run_once()
    assert len(waits) == 12
    assert max(waits) == timedelta(seconds=30)
    assert deliverer.delivered == ["other", "card", "pin"]  # the pin never overtook its card


async def test_citizen_notice_is_dropped_when_the_citizen_blocked_the_bot(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer(DeliveryError("blocked", fault=Fault.RECIPIENT_GONE))
    await _enqueue(uow_factory, clock, "notice", kind="citizen_notice")
    worker = _worker(uow_factory, deliverer, clock)
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
    worker = _worker(uow_factory, deliverer, clock)
    assert await worker.run_once() == 0
    clock.advance(1)
    assert await worker.run_once() == 1


async def test_chat_migration_is_followed_and_sent_at_once_when_the_group_became_a_supergroup(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    moved = DeliveryError("migrated", fault=Fault.DESTINATION, migrated_to=-1009, chat_id=-55)
    deliverer = Deliverer(moved)
    chats = ChatDirectory(uow_factory, clock)
    (row_id,) = await _enqueue(uow_factory, clock, "card")
    worker = _worker(uow_factory, deliverer, clock, chats=chats)
    assert await worker.run_once() == 1
    assert deliverer.attempts == 2
    assert (await _row(uow_factory, row_id)).attempts == 1
    assert await chats.resolve(-55) == -1009
    assert await ChatDirectory(uow_factory, clock).resolve(-55) == -1009  # stored durably
    assert not worker.health.outages()  # a move is no outage


# -- results and the record hook -----------------------------------------------------------


async def test_result_is_stored_on_the_row_when_sent(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    (row_id,) = await _enqueue(uow_factory, clock, "card")
    await _worker(uow_factory, Deliverer(), clock).run_once()
    row = await _row(uow_factory, row_id)
    assert row.sent_at == T0
    assert row.result == {"chat_id": OPERATORS, "message_id": 1, "thread_id": 7}
    assert (row.claimed_by, row.claimed_until) == (None, None)


async def test_record_hook_runs_in_the_unit_of_work_that_marks_the_row_sent_when_delivered(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    seen: list[tuple[bool, bool, DeliveryResult]] = []

    async def record(uow: UnitOfWork, message: OutboxMessage, result: DeliveryResult) -> None:
        inside = await uow.outbox.get(message.id or 0)
        async with uow_factory() as other:
            outside = await other.outbox.get(message.id or 0)
        assert inside is not None
        assert outside is not None
        seen.append((inside.sent_at is not None, outside.sent_at is not None, result))

    kind = register(
        "test_recorded", lane=Lane.EMERGENCY, audience=Audience.OPERATORS,
        priority=Priority.OPERATOR, must_deliver=True,
    )  # fmt: skip
    try:
        set_recorder(kind, record)
        await _enqueue(uow_factory, clock, "card", kind=kind)
        assert await _worker(uow_factory, Deliverer(), clock).run_once() == 1
    finally:
        del KINDS[kind]
    # Sent inside the hook's unit of work, not yet committed for anyone else.
    assert seen == [(True, False, DeliveryResult(OPERATORS, 1, 7))]


async def test_row_stays_sent_when_its_record_hook_fails(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    async def broken(uow: UnitOfWork, message: OutboxMessage, result: DeliveryResult) -> None:
        raise RuntimeError("bug in the hook")

    kind = register(
        "test_broken_hook", lane=Lane.EMERGENCY, audience=Audience.OPERATORS,
        priority=Priority.OPERATOR, must_deliver=True, record=broken,
    )  # fmt: skip
    deliverer = Deliverer()
    try:
        (row_id,) = await _enqueue(uow_factory, clock, "card", kind=kind)
        worker = _worker(uow_factory, deliverer, clock)
        assert await worker.run_once() == 1
        clock.advance(60)
        await worker.run_once()
    finally:
        del KINDS[kind]
    assert deliverer.delivered == ["card"]  # never sent twice because recording failed
    assert (await _row(uow_factory, row_id)).sent_at == T0


# -- leases ---------------------------------------------------------------------------------


async def test_dead_workers_rows_are_sent_as_repeats_when_its_lease_expired(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await _ticket(uow_factory, 1)
    await _enqueue(uow_factory, clock, "card", "pin", ticket=ticket)
    await _enqueue(uow_factory, clock, "later")
    async with uow_factory() as uow:  # a worker claims the card and the pin, then dies
        await uow.outbox.claim("dead", clock.now(), clock.now() + timedelta(seconds=30), 2)
        await uow.commit()
    deliverer = Deliverer()
    worker = _worker(uow_factory, deliverer, clock)
    assert await worker.run_once() == 1
    assert deliverer.delivered == ["later"]  # the dead worker's lease still runs
    clock.advance(30)
    assert await worker.run_once() == 2
    assert deliverer.delivered == ["later", "card", "pin"]
    assert deliverer.repeats == ["card", "pin"]


async def test_live_workers_rows_are_left_alone_when_it_sends_slowly(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    gate = asyncio.Event()

    class Slow(Deliverer):
        async def deliver(self, message: OutboxMessage) -> DeliveryResult:
            await gate.wait()
            return await super().deliver(message)

    await _enqueue(uow_factory, clock, "card")
    slow = Slow()
    lease = timedelta(seconds=30)
    busy = asyncio.create_task(
        _worker(uow_factory, slow, clock, lease=lease, heartbeat=0.005).run_once()
    )
    other = Deliverer()
    for _ in range(6):  # long past the first lease on the test's clock
        await asyncio.sleep(0.03)  # the busy worker prolongs its lease meanwhile
        clock.advance(10)
        assert await _worker(uow_factory, other, clock).run_once() == 0
    gate.set()
    assert await busy == 1
    assert slow.delivered == ["card"]
    assert other.attempts == 0


async def test_unattempted_rows_are_released_when_their_ticket_is_held(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await _ticket(uow_factory, 1)
    _card, pin = await _enqueue(uow_factory, clock, "card", "pin", ticket=ticket)
    deliverer = Deliverer(DeliveryError("chat not found", fault=Fault.DESTINATION))
    await _worker(uow_factory, deliverer, clock).run_once()
    held = await _row(uow_factory, pin)
    assert (held.claimed_by, held.attempts, held.sent_at) == (None, 0, None)


async def test_sole_worker_resends_a_crashed_runs_rows_at_once_when_it_takes_over(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    await _enqueue(uow_factory, clock, "card")
    async with uow_factory() as uow:
        await uow.outbox.claim("crashed", clock.now(), clock.now() + timedelta(minutes=1), 5)
        await uow.commit()
    deliverer = Deliverer()
    worker = _worker(uow_factory, deliverer, clock)
    assert await worker.take_over() == 1
    assert await worker.run_once() == 1
    assert deliverer.repeats == ["card"]


# -- health and admin alerts ---------------------------------------------------------------


async def _alerts(uow_factory: InMemoryUnitOfWorkFactory) -> list[OutboxMessage]:
    return [m for m in uow_factory.store.outbox.values() if m.kind == ADMIN_ALERT]


async def test_admins_are_alerted_once_per_admin_when_a_destination_goes_down(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    alerts = AdminAlerts(uow_factory, clock, [11, 22, 11])
    assert await alerts.destination_down(Audience.OPERATORS, OPERATORS, "chat not found")
    rows = await _alerts(uow_factory)
    assert sorted(int(str(m.payload["admin_id"])) for m in rows) == [11, 22]
    assert all(m.ticket_id is None and m.lane == "emergency" for m in rows)
    assert rows[0].payload == {
        "admin_id": 11, "event": "destination_down", "audience": "operators",
        "chat_id": OPERATORS, "reason": "chat not found",
    }  # fmt: skip


async def test_admin_alert_is_not_repeated_within_ten_minutes_when_the_fault_persists(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    first = AdminAlerts(uow_factory, clock, [11])
    restarted = AdminAlerts(uow_factory, clock, [11])  # another process, or after a restart
    assert await first.destination_down(Audience.OPERATORS, OPERATORS, "chat not found")
    clock.advance(9 * 60)
    assert not await restarted.destination_down(Audience.OPERATORS, OPERATORS, "kicked")
    assert await restarted.destination_down(Audience.AGENCY, -77, "kicked")  # another fault
    assert await restarted.destination_recovered(Audience.OPERATORS, OPERATORS)
    clock.advance(61)
    assert await restarted.destination_down(Audience.OPERATORS, OPERATORS, "chat not found")
    assert len(await _alerts(uow_factory)) == 4


async def test_admin_alert_is_sent_once_when_two_processes_race(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    racing = [AdminAlerts(uow_factory, clock, [11, 22]) for _ in range(5)]
    down = [a.destination_down(Audience.OPERATORS, OPERATORS, "x") for a in racing]
    assert sum(await asyncio.gather(*down)) == 1
    assert len(await _alerts(uow_factory)) == 2


async def test_no_alert_is_queued_when_no_admin_is_configured(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    alerts = AdminAlerts(uow_factory, clock, [])
    assert not await alerts.destination_down(Audience.OPERATORS, OPERATORS, "chat not found")
    assert await _alerts(uow_factory) == []


async def test_health_flips_and_admins_hear_once_when_the_operators_chat_fails_and_recovers(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    refusal = DeliveryError("Forbidden: bot is not a member", fault=Fault.DESTINATION,
                            chat_id=OPERATORS)  # fmt: skip
    deliverer = Deliverer(*[refusal] * 5, only="operator_card")
    health = DeliveryHealth()
    alerts = AdminAlerts(uow_factory, clock, [11])
    worker = _worker(uow_factory, deliverer, clock, health=health, alerts=alerts)
    (card,) = await _enqueue(uow_factory, clock, "card")
    assert health.operators_reachable
    for _ in range(5):
        await worker.run_once()
        assert not health.operators_reachable
        clock.current = (await _row(uow_factory, card)).next_attempt_at
    assert [m.payload["event"] for m in await _alerts(uow_factory)] == ["destination_down"]
    (outage,) = health.outages()
    assert (outage.audience, outage.chat_id) == (Audience.OPERATORS, OPERATORS)
    assert "not a member" in outage.reason
    # The chat is back: the card goes out (then the alerts), health is up, admins hear it.
    for _ in range(3):
        await worker.run_once()
    assert await _pending(uow_factory) == 0
    assert health.operators_reachable
    events = [m.payload["event"] for m in await _alerts(uow_factory)]
    assert events == ["destination_down", "destination_recovered"]


async def test_citizen_refusals_leave_the_health_alone_when_a_citizen_blocked_the_bot(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Deliverer(DeliveryError("blocked", fault=Fault.RECIPIENT_GONE))
    health = DeliveryHealth()
    alerts = AdminAlerts(uow_factory, clock, [11])
    await _enqueue(uow_factory, clock, "notice", kind="citizen_notice")
    await _worker(uow_factory, deliverer, clock, health=health, alerts=alerts).run_once()
    assert health.operators_reachable
    assert await _alerts(uow_factory) == []


# -- the continuous loop ------------------------------------------------------------------


class Gated(Deliverer):
    """Blocks each delivery of a gated name on its own event; counts what is in flight."""

    def __init__(self, *gated: str, errors: tuple[DeliveryError, ...] = (),
                 only: str | None = None) -> None:  # fmt: skip
        super().__init__(*errors, only=only)
        self.gates = {name: asyncio.Event() for name in gated}
        self.started: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.changed = asyncio.Event()

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        name = str(message.payload.get("name", message.kind))
        self.started.append(name)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.changed.set()
        try:
            if name in self.gates:
                await self.gates[name].wait()
            return await super().deliver(message)
        finally:
            self.in_flight -= 1
            self.changed.set()


async def _until(deliverer: Gated, condition: Callable[[], bool], what: str) -> None:
    """Waits (on the deliverer's progress, at most 2 s) until ``condition`` holds."""

    async def wait() -> None:
        while not condition():
            deliverer.changed.clear()
            await deliverer.changed.wait()

    try:
        await asyncio.wait_for(wait(), 2)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


def _loop(uow_factory: InMemoryUnitOfWorkFactory, deliverer: Deliverer, clock: Clock,
          **options: object) -> OutboxWorker:  # fmt: skip
    """A started worker that claims only when woken (the poll is an hour)."""
    worker = _worker(uow_factory, deliverer, clock, poll_interval=3600, **options)
    worker.start()
    return worker


async def test_new_tickets_row_is_delivered_when_another_tickets_delivery_is_slow(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Gated("slow card")
    await _enqueue(uow_factory, clock, "slow card", ticket=await _ticket(uow_factory, 1))
    worker = _loop(uow_factory, deliverer, clock)
    try:
        await _until(deliverer, lambda: "slow card" in deliverer.started, "the slow send")
        await _enqueue(uow_factory, clock, "notice", kind="citizen_notice",
                       ticket=await _ticket(uow_factory, 2))  # fmt: skip
        worker.wake()  # a commit
        await _until(deliverer, lambda: deliverer.delivered == ["notice"], "the new row")
        assert deliverer.in_flight == 1  # the slow card is still under way
    finally:
        deliverer.gates["slow card"].set()
        await worker.stop()
    assert deliverer.delivered == ["notice", "slow card"]
    assert await _pending(uow_factory) == 0


async def test_tickets_later_row_waits_when_its_earlier_row_is_in_flight(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Gated("card")
    ticket = await _ticket(uow_factory, 1)
    await _enqueue(uow_factory, clock, "card", ticket=ticket)
    worker = _loop(uow_factory, deliverer, clock)
    try:
        await _until(deliverer, lambda: deliverer.started == ["card"], "the card's send")
        (pin,) = await _enqueue(uow_factory, clock, "pin", ticket=ticket)
        await _enqueue(uow_factory, clock, "other", ticket=await _ticket(uow_factory, 2))
        worker.wake()
        # "other" was committed after the pin: the claim that took it saw the pin too.
        await _until(deliverer, lambda: "other" in deliverer.delivered, "the other ticket")
        assert "pin" not in deliverer.started
        assert (await _row(uow_factory, pin)).claimed_by is None  # not even claimed
        deliverer.gates["card"].set()
        await _until(deliverer, lambda: "pin" in deliverer.delivered, "the pin")
    finally:
        deliverer.gates["card"].set()
        await worker.stop()
    assert deliverer.delivered == ["other", "card", "pin"]


async def test_worker_holds_at_most_its_capacity_when_more_rows_are_due(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    names = [f"card {n}" for n in range(10)]
    deliverer = Gated(*names)
    for n, name in enumerate(names):
        await _enqueue(uow_factory, clock, name, kind="citizen_notice",
                       ticket=await _ticket(uow_factory, n + 1))  # fmt: skip
    worker = _loop(uow_factory, deliverer, clock, parallel=3)
    try:
        await _until(deliverer, lambda: deliverer.in_flight == 3, "three sends under way")
        for _ in range(5):  # the loop gets every chance to claim more
            await asyncio.sleep(0)
        assert worker.holding == 3
        for n, name in enumerate(names):  # each finished send makes room for one more
            deliverer.gates[name].set()
            await _until(deliverer, lambda n=n: len(deliverer.delivered) == n + 1, name)
            assert worker.holding <= 3
        await _until(deliverer, lambda: deliverer.in_flight == 0, "the last send")
    finally:
        for gate in deliverer.gates.values():
            gate.set()
        await worker.stop()
    assert deliverer.most_in_flight == 3
    assert sorted(deliverer.delivered) == sorted(names)
    assert await _pending(uow_factory) == 0


async def test_rows_behind_a_held_card_are_released_when_its_ticket_stops_and_others_go_on(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    refusal = DeliveryError("chat not found", fault=Fault.DESTINATION)
    deliverer = Gated("slow", errors=(refusal,), only="card")
    await _enqueue(uow_factory, clock, "slow", ticket=await _ticket(uow_factory, 1))
    worker = _loop(uow_factory, deliverer, clock)
    try:
        await _until(deliverer, lambda: deliverer.started == ["slow"], "the slow send")
        ticket = await _ticket(uow_factory, 2)
        card, pin = await _enqueue(uow_factory, clock, "card", "pin", ticket=ticket)
        worker.wake()
        await _until(deliverer, lambda: "card" in deliverer.started, "the card's attempt")
        for _ in range(5):
            await asyncio.sleep(0)  # its task ends and releases the pin
        # Released at once, while another ticket is still under way (no pass to end).
        held = await _row(uow_factory, pin)
        assert (held.claimed_by, held.attempts, held.sent_at) == (None, 0, None)
        assert (await _row(uow_factory, card)).next_attempt_at == T0 + timedelta(seconds=1)
        assert worker.holding == 1
    finally:
        deliverer.gates["slow"].set()
        await worker.stop()
    assert deliverer.delivered == ["slow"]


async def test_stop_releases_the_rows_not_sent_when_a_delivery_outlasts_the_grace(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Gated("card")
    ids = await _enqueue(uow_factory, clock, "card", "pin", "photo",
                         ticket=await _ticket(uow_factory, 1))  # fmt: skip
    worker = _loop(uow_factory, deliverer, clock)
    await _until(deliverer, lambda: deliverer.started == ["card"], "the card's send")
    assert worker.holding == 3
    await worker.stop(grace=0.01)
    assert worker.holding == 0
    for row_id in ids:
        row = await _row(uow_factory, row_id)
        assert (row.claimed_by, row.attempts, row.sent_at) == (None, 0, None)
    assert deliverer.delivered == []


async def test_delivery_under_way_finishes_and_the_rest_is_released_when_stopped_within_grace(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Gated("card")
    card, pin = await _enqueue(uow_factory, clock, "card", "pin",
                               ticket=await _ticket(uow_factory, 1))  # fmt: skip
    worker = _loop(uow_factory, deliverer, clock)
    await _until(deliverer, lambda: deliverer.started == ["card"], "the card's send")
    stopping = asyncio.create_task(worker.stop(grace=5))
    await asyncio.sleep(0)
    deliverer.gates["card"].set()
    await stopping
    assert deliverer.delivered == ["card"]
    assert (await _row(uow_factory, card)).sent_at == T0
    left = await _row(uow_factory, pin)
    assert (left.claimed_by, left.attempts, left.sent_at) == (None, 0, None)


class Paced(Deliverer):
    """Waits a minute for its turn (through the worker's pacing) before each delivery."""

    def __init__(self, pacing: Pacing) -> None:
        super().__init__()
        self.pacing = pacing
        self.waiting = asyncio.Event()

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        self.waiting.set()
        await self.pacing.sleep(60)
        return await super().deliver(message)


async def test_stop_ends_a_delivery_waiting_for_its_turn_at_once_and_releases_its_rows(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    pacing = Pacing()
    deliverer = Paced(pacing)
    ids = await _enqueue(uow_factory, clock, "card", "pin", ticket=await _ticket(uow_factory, 1))
    worker = _loop(uow_factory, deliverer, clock, pacing=pacing)
    await asyncio.wait_for(deliverer.waiting.wait(), 2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await worker.stop(grace=30)
    assert loop.time() - started < 5  # not the grace: nothing was being sent
    assert worker.holding == 0
    for row_id in ids:
        row = await _row(uow_factory, row_id)
        assert (row.claimed_by, row.attempts, row.sent_at) == (None, 0, None)
    assert deliverer.delivered == []


async def test_pacing_cuts_waits_only_between_stop_and_resume() -> None:
    pacing = Pacing()
    asleep = asyncio.create_task(pacing.sleep(60))
    await asyncio.sleep(0)
    pacing.stop()
    with pytest.raises(asyncio.CancelledError):
        await asleep
    late = asyncio.create_task(pacing.sleep(60))  # comes to sleep while stopped
    with pytest.raises(asyncio.CancelledError):
        await late
    pacing.resume()
    kept = asyncio.create_task(pacing.sleep(0.01))
    await kept
    assert not kept.cancelled()


async def test_citizen_rows_are_claimed_when_group_rows_fill_their_share_of_the_capacity(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    cards = [f"card {n}" for n in range(6)]
    deliverer = Gated(*cards)
    for n, name in enumerate(cards):  # older and more urgent than the notice (not priority 1)
        await _enqueue(uow_factory, clock, name, ticket=await _ticket(uow_factory, n + 1), rank=2)
    await _enqueue(uow_factory, clock, "notice", kind="citizen_notice",
                   ticket=await _ticket(uow_factory, 99), rank=3)  # fmt: skip
    worker = _loop(uow_factory, deliverer, clock, parallel=4, group_share=2)
    try:
        await _until(deliverer, lambda: deliverer.delivered == ["notice"], "the notice")
        await _until(deliverer, lambda: deliverer.in_flight == 2, "two cards under way")
        for _ in range(5):
            await asyncio.sleep(0)
        assert worker.holding == 2  # the group's share; the rest waits for the group
        assert sorted(deliverer.started) == ["card 0", "card 1", "notice"]
    finally:
        for gate in deliverer.gates.values():
            gate.set()
        await worker.stop()


async def test_citizens_notice_is_delivered_when_its_tickets_card_waits_for_the_group(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    deliverer = Gated("card")  # the operators' group has no budget left for the card
    ticket = await _ticket(uow_factory, 1)
    await _enqueue(uow_factory, clock, "card", ticket=ticket)
    worker = _loop(uow_factory, deliverer, clock)
    try:
        await _until(deliverer, lambda: deliverer.started == ["card"], "the card's send")
        await _enqueue(uow_factory, clock, "being handled", kind="citizen_status", ticket=ticket)
        await _enqueue(uow_factory, clock, "operator says", kind="citizen_relay", ticket=ticket)
        worker.wake()
        await _until(
            deliverer,
            lambda: deliverer.delivered == ["being handled", "operator says"],
            "the citizen's rows, in their order",
        )
        assert deliverer.in_flight == 1  # the card is still waiting
    finally:
        deliverer.gates["card"].set()
        await worker.stop()
    assert deliverer.delivered == ["being handled", "operator says", "card"]


async def test_life_threatening_card_is_claimed_when_less_urgent_cards_fill_the_groups_share(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    cards = [f"card {n}" for n in range(4)]
    deliverer = Gated(*cards, "urgent card")
    for n, name in enumerate(cards):  # priority 3, waiting for the group's budget
        await _enqueue(uow_factory, clock, name, ticket=await _ticket(uow_factory, n + 1), rank=3)
    worker = _loop(uow_factory, deliverer, clock, parallel=8, group_share=2)
    try:
        await _until(deliverer, lambda: deliverer.in_flight == 2, "the share under way")
        await _enqueue(uow_factory, clock, "urgent card", ticket=await _ticket(uow_factory, 9),
                       rank=1)  # fmt: skip
        worker.wake()
        await _until(
            deliverer, lambda: "urgent card" in deliverer.started, "the priority-1 card's send"
        )
        assert worker.holding == 3  # beyond the share: the governor puts it ahead
        assert sorted(deliverer.started) == ["card 0", "card 1", "urgent card"]
    finally:
        for gate in deliverer.gates.values():
            gate.set()
        await worker.stop()


# -- the broadcast lane: batches, streams --------------------------------------------------------


async def test_broadcast_rows_are_claimed_a_batch_at_a_time_when_a_batch_of_slots_is_free(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, lanes: tuple[str, str]
) -> None:
    _, broadcast = lanes
    names = [f"copy {n}" for n in range(12)]
    deliverer = Gated(*names)
    await _enqueue(uow_factory, clock, *names, kind=broadcast)
    worker = _loop(uow_factory, deliverer, clock, broadcast_parallel=4, broadcast_batch=2,
                   broadcast_streams=4)  # fmt: skip
    try:
        await _until(deliverer, lambda: deliverer.in_flight == 4, "four copies under way")
        for _ in range(5):  # the loop gets every chance to claim more
            await asyncio.sleep(0)
        claims = worker.claims
        assert worker.holding == 4
        deliverer.gates["copy 0"].set()
        await _until(deliverer, lambda: deliverer.delivered == ["copy 0"], "one copy")
        for _ in range(5):
            await asyncio.sleep(0)
        assert (worker.claims, worker.holding) == (claims, 3)  # one free slot: no claim
        deliverer.gates["copy 1"].set()
        await _until(deliverer, lambda: deliverer.in_flight == 4, "the next batch under way")
        assert (worker.claims, worker.holding) == (claims + 1, 4)  # one claim for two slots
        assert sorted(deliverer.started) == sorted(names[:6])
        for gate in deliverer.gates.values():
            gate.set()
        await _until(deliverer, lambda: len(deliverer.delivered) == 12, "every copy")
    finally:
        for gate in deliverer.gates.values():
            gate.set()
        await worker.stop()
    assert sorted(deliverer.delivered) == sorted(names)
    assert await _pending(uow_factory) == 0


async def test_held_broadcast_rows_go_out_through_a_few_streams_when_many_are_claimed(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, lanes: tuple[str, str]
) -> None:
    _, broadcast = lanes
    names = [f"copy {n}" for n in range(8)]
    deliverer = Gated(*names)
    await _enqueue(uow_factory, clock, *names, kind=broadcast)
    worker = _loop(uow_factory, deliverer, clock, broadcast_parallel=8, broadcast_streams=2)
    try:
        await _until(deliverer, lambda: deliverer.in_flight == 2, "two streams under way")
        for _ in range(5):
            await asyncio.sleep(0)
        assert (worker.holding, deliverer.in_flight) == (8, 2)
        for name in names:
            deliverer.gates[name].set()
        await _until(deliverer, lambda: len(deliverer.delivered) == 8, "every copy")
    finally:
        for gate in deliverer.gates.values():
            gate.set()
        await worker.stop()
    assert deliverer.most_in_flight == 2
    assert await _pending(uow_factory) == 0


async def test_citizens_row_is_claimed_and_sent_at_once_when_broadcast_slots_are_full(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, lanes: tuple[str, str]
) -> None:
    _, broadcast = lanes
    names = [f"copy {n}" for n in range(10)]
    deliverer = Gated(*names)
    await _enqueue(uow_factory, clock, *names, kind=broadcast)
    worker = _loop(uow_factory, deliverer, clock, parallel=1, broadcast_parallel=4)
    try:
        await _until(deliverer, lambda: deliverer.in_flight == 4, "the broadcast's slots full")
        await _enqueue(uow_factory, clock, "notice", kind="citizen_notice",
                       ticket=await _ticket(uow_factory, 1))  # fmt: skip
        worker.wake()  # a commit
        await _until(deliverer, lambda: deliverer.delivered == ["notice"], "the citizen's row")
        assert worker.holding == 4
    finally:
        for gate in deliverer.gates.values():
            gate.set()
        await worker.stop()


async def test_broadcast_waits_for_the_other_lanes_when_their_due_rows_fill_the_capacity(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, lanes: tuple[str, str]
) -> None:
    _, broadcast = lanes
    deliverer = Gated("notice 0", "notice 1")
    await _enqueue(uow_factory, clock, "copy", kind=broadcast)
    for n in range(2):
        await _enqueue(uow_factory, clock, f"notice {n}", kind="citizen_notice",
                       ticket=await _ticket(uow_factory, n + 1))  # fmt: skip
    worker = _loop(uow_factory, deliverer, clock, parallel=1)
    try:
        await _until(deliverer, lambda: deliverer.started == ["notice 0"], "the first notice")
        for _ in range(5):
            await asyncio.sleep(0)
        assert deliverer.started == ["notice 0"]  # the copy waits: a notice is unclaimed
        deliverer.gates["notice 0"].set()
        deliverer.gates["notice 1"].set()
        await _until(deliverer, lambda: len(deliverer.delivered) == 3, "every row")
    finally:
        for gate in deliverer.gates.values():
            gate.set()
        await worker.stop()
    assert deliverer.delivered == ["notice 0", "notice 1", "copy"]


class Counting:
    """A unit-of-work factory that counts the units of work opened."""

    def __init__(self, inner: InMemoryUnitOfWorkFactory) -> None:
        self.inner = inner
        self.opened = 0

    def __call__(self) -> object:
        self.opened += 1
        return self.inner()


async def test_sent_copies_are_stored_in_the_next_claims_unit_of_work_when_a_backlog_is_claimed(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    batched = register(
        "test_batched_advisory", lane=Lane.BROADCAST, audience=Audience.CITIZEN,
        priority=Priority.BROADCAST, must_deliver=False, batched=True,
    )  # fmt: skip
    names = [f"copy {n}" for n in range(8)]
    deliverer = Gated(*names)
    ids = await _enqueue(uow_factory, clock, *names, kind=batched)
    counting = Counting(uow_factory)
    worker = _loop(uow_factory, deliverer, clock, broadcast_parallel=4, broadcast_batch=2,
                   broadcast_streams=4, background_uow_factory=counting)  # fmt: skip
    try:
        await _until(deliverer, lambda: deliverer.in_flight == 4, "four copies under way")
        opened = counting.opened
        deliverer.gates["copy 0"].set()
        deliverer.gates["copy 1"].set()
        await _until(deliverer, lambda: "copy 5" in deliverer.started, "the next batch")
        assert counting.opened == opened + 1  # one unit of work: the claim and the store
        assert [(await _row(uow_factory, i)).sent_at is not None for i in ids[:2]] == [True] * 2
        for gate in deliverer.gates.values():
            gate.set()
        await _until(deliverer, lambda: len(deliverer.delivered) == 8, "every copy")
    finally:
        for gate in deliverer.gates.values():
            gate.set()
        await worker.stop()
        del KINDS[batched]
    assert await _pending(uow_factory) == 0
