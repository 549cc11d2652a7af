"""Agency webhooks owed when the process dies go out after the restart (SQLite, PostgreSQL)."""

from __future__ import annotations

import dataclasses

from bot.agencies_http.client import WebhookDeliverer
from bot.domain.lifecycle import Staff
from bot.domain.model import OutboxMessage
from bot.services.agencies import AgencyDirectory
from bot.services.composite import CompositeDeliverer
from bot.services.console import ConsolePolicy, ConsoleService
from bot.services.outbox import OutboxWorker
from bot.services.outbox_kinds import AGENCY_WEBHOOK, Transport
from bot.services.queries import TicketQueries
from storage.db import create_engine, session_factory
from storage.uow import SqlUnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.conftest import empty_tables
from tests.unit.agency_support import AGENCIES, SECRET
from tests.unit.console_support import Clock, Geocoder
from tests.webhook_receiver import WebhookReceiver

DEWI = Staff(4_200_000_042, "Dewi")


class _Clock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.current = b.at(10)


async def _webhook_rows(uow_factory: SqlUnitOfWorkFactory) -> list[OutboxMessage]:
    async with uow_factory() as uow:
        return [m for m in await uow.outbox.owed(100) if m.kind == AGENCY_WEBHOOK]


async def test_pending_webhook_is_delivered_once_after_a_restart_when_it_was_owed(
    database_url: str,
) -> None:
    clock = _Clock()
    async with WebhookReceiver(SECRET) as receiver:
        agencies = tuple(
            dataclasses.replace(a, webhook_url=receiver.url) if a.code == "DINKES" else a
            for a in AGENCIES
        )
        directory = AgencyDirectory(agencies)
        engine = create_engine(database_url)
        await empty_tables(engine)
        uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
        async with uow_factory() as uow:
            await uow.operators.add(b.operator(DEWI.telegram_id or 0, active=True))
            citizen = await uow.citizens.add(b.citizen())
            ticket = await uow.tickets.add(b.ticket(citizen.id or 0))
            await uow.commit()
        console = ConsoleService(
            uow_factory, Geocoder(), clock, ConsolePolicy(directory.names(), None, directory)
        )
        assert (await console.dispatch(DEWI, ticket.id or 0, ["DINKES"])).ok
        receiver.answer([500, 200])
        webhooks = WebhookDeliverer(TicketQueries(uow_factory), directory, clock)
        worker = OutboxWorker(
            uow_factory, CompositeDeliverer({Transport.WEBHOOK: webhooks}), clock, owner="one"
        )
        await worker.run_once()  # the agency answers 500 …
        await webhooks.aclose()
        await engine.dispose()  # … and the process dies

        engine = create_engine(database_url)
        uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
        try:
            [owed] = await _webhook_rows(uow_factory)
            clock.advance(seconds=10)
            webhooks = WebhookDeliverer(TicketQueries(uow_factory), directory, clock)
            worker = OutboxWorker(
                uow_factory, CompositeDeliverer({Transport.WEBHOOK: webhooks}), clock,
                owner="two",
            )  # fmt: skip
            await worker.run_once()
            await webhooks.aclose()
            assert await _webhook_rows(uow_factory) == []
        finally:
            await engine.dispose()
    assert [r.answered for r in receiver.requests] == [500, 200]
    key = str(owed.payload["idempotency_key"])
    assert list(receiver.accepted) == [key]
    assert receiver.accepted[key]["incident"]["reference"] == ticket.ref
