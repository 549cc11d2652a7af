"""Webhooks out, end to end through the outbox worker to a receiver on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.agencies_http.client import WebhookDeliverer
from bot.agencies_http.eido import incident_document
from bot.domain.model import (
    Category,
    Location,
    LocationSource,
    OutboxMessage,
    Ticket,
    TicketStatus,
)
from bot.services.composite import CompositeDeliverer
from bot.services.outbox import OutboxWorker
from bot.services.outbox_kinds import (
    ADMIN_ALERT,
    AGENCY_WEBHOOK,
    OPERATOR_NOTICE,
    WEBHOOK_ATTEMPTS,
    Transport,
)
from bot.services.ports import DeliveryResult
from bot.services.queries import TicketQueries
from tests.unit.agency_support import AGENCIES, SECRET, Desk, desk
from tests.unit.console_support import ADMIN, DEWI, PLEBURAN, T0, add_ticket, rows
from tests.webhook_receiver import WebhookReceiver


class TelegramDouble:
    """Accepts every Telegram row (the citizen's and operators' notices are not tested here)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def deliver(self, message: OutboxMessage) -> DeliveryResult | None:
        self.sent.append(message.kind)
        return DeliveryResult()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SECRET) as running:
        yield running


async def _desk(receiver: WebhookReceiver) -> Desk:
    agencies = tuple(
        dataclasses.replace(a, webhook_url=receiver.url) if a.code == "DINKES" else a
        for a in AGENCIES
    )
    return await desk(agencies)


def _worker(d: Desk, *, timeout: float = 0.3) -> tuple[OutboxWorker, WebhookDeliverer]:
    webhooks = WebhookDeliverer(
        TicketQueries(d.uow_factory), d.directory, d.clock, total_timeout=timeout
    )
    deliverer = CompositeDeliverer(
        {Transport.TELEGRAM: TelegramDouble(), Transport.WEBHOOK: webhooks}
    )
    return OutboxWorker(d.uow_factory, deliverer, d.clock, owner="test"), webhooks


async def _drain(d: Desk, worker: OutboxWorker, passes: int = 12) -> OutboxMessage:
    """Runs the worker, moving the clock past each backoff, until the webhook row is done."""
    for _ in range(passes):
        await worker.run_once()
        [row] = rows(d.uow_factory, AGENCY_WEBHOOK)
        if row.sent_at is not None or row.failed_at is not None:
            return row
        d.clock.advance(seconds=400)
    raise AssertionError("the webhook row never finished")


async def test_receiver_sees_the_delivery_once_after_500s_and_a_timeout_when_it_recovers(
    receiver: WebhookReceiver,
) -> None:
    d = await _desk(receiver)
    ticket = await add_ticket(d.uow_factory)
    assert (await d.console.dispatch(DEWI, ticket.id or 0, ["DINKES"])).ok
    receiver.answer([500, 500, "timeout", 200])
    worker, webhooks = _worker(d)
    try:
        row = await _drain(d, worker)
    finally:
        await webhooks.aclose()
    assert row.sent_at is not None
    assert row.attempts == 4
    assert [r.answered for r in receiver.requests] == [500, 500, "timeout", 200]
    assert all(r.signature_ok for r in receiver.requests)
    key = row.payload["idempotency_key"]
    assert {r.key for r in receiver.requests} == {key}  # every retry carries the same key
    assert list(receiver.accepted) == [key]  # accepted exactly once
    document = receiver.accepted[str(key)]
    assert document["incident"]["reference"] == ticket.ref
    assert document["location"]["geometry"]["type"] == "Circle"
    assert document["location"]["civicAddress"]["A3"] == "Semarang Selatan"
    assert document["agency"]["code"] == "DINKES"


async def test_a_second_sending_of_the_same_row_is_recognised_by_its_key_when_repeated(
    receiver: WebhookReceiver,
) -> None:
    d = await _desk(receiver)
    ticket = await add_ticket(d.uow_factory)
    assert (await d.console.dispatch(DEWI, ticket.id or 0, ["DINKES"])).ok
    [row] = rows(d.uow_factory, AGENCY_WEBHOOK)
    _, webhooks = _worker(d)
    try:
        first = await webhooks.deliver(row)
        again = await webhooks.deliver(dataclasses.replace(row, repeat=True))
    finally:
        await webhooks.aclose()
    assert (first or DeliveryResult()).extra["http_status"] == 200
    assert (again or DeliveryResult()).extra["http_status"] == 409
    assert len(receiver.requests) == 2
    assert len(receiver.accepted) == 1


async def test_webhook_is_dead_lettered_with_topic_notice_and_admin_alert_after_n_failures(
    receiver: WebhookReceiver,
) -> None:
    d = await _desk(receiver)
    ticket = await add_ticket(d.uow_factory)
    assert (await d.console.dispatch(DEWI, ticket.id or 0, ["DINKES"])).ok
    receiver.answer([503])
    worker, webhooks = _worker(d)
    try:
        row = await _drain(d, worker, passes=WEBHOOK_ATTEMPTS + 2)
    finally:
        await webhooks.aclose()
    assert row.failed_at is not None
    assert row.attempts == WEBHOOK_ATTEMPTS
    assert len(receiver.requests) == WEBHOOK_ATTEMPTS
    assert not receiver.accepted
    [notice] = rows(d.uow_factory, OPERATOR_NOTICE)
    assert notice.payload["notice"] == "agency_webhook_failed"
    assert notice.ticket_id == ticket.id
    [alert] = rows(d.uow_factory, ADMIN_ALERT)
    assert alert.payload["admin_id"] == ADMIN.telegram_id


async def test_webhook_rejected_by_the_receiver_is_dead_lettered_at_once_when_it_answers_400(
    receiver: WebhookReceiver,
) -> None:
    d = await _desk(receiver)
    ticket = await add_ticket(d.uow_factory)
    assert (await d.console.dispatch(DEWI, ticket.id or 0, ["DINKES"])).ok
    receiver.answer([400])
    worker, webhooks = _worker(d)
    try:
        row = await _drain(d, worker)
    finally:
        await webhooks.aclose()
    assert (row.failed_at is not None, row.attempts) == (True, 1)
    assert [m.payload["notice"] for m in rows(d.uow_factory, OPERATOR_NOTICE)] == [
        "agency_webhook_failed"
    ]


async def test_webhook_signed_with_a_wrong_secret_is_retried_as_a_configuration_fault(
    receiver: WebhookReceiver,
) -> None:
    receiver.secret = "the agency has another secret"
    d = await _desk(receiver)
    ticket = await add_ticket(d.uow_factory)
    assert (await d.console.dispatch(DEWI, ticket.id or 0, ["DINKES"])).ok
    worker, webhooks = _worker(d)
    try:
        await worker.run_once()
    finally:
        await webhooks.aclose()
    [row] = rows(d.uow_factory, AGENCY_WEBHOOK)
    assert receiver.requests[0].answered == 401
    assert row.failed_at is None
    assert row.sent_at is None
    assert "HTTP 401" in (row.last_error or "")


def test_documented_example_has_the_shape_the_webhook_sends_when_compared() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "agency-webhook.md").read_text(encoding="utf-8")
    example = json.loads(re.findall(r"```json\n(\{\n.*?\n\})\n```", doc, re.DOTALL)[0])
    location = Location(-6.99, 110.42, LocationSource.GPS, T0, accuracy_m=12.0, area=PLEBURAN)
    ticket = Ticket(
        citizen_id=1, chat_id=1, status=TicketStatus.DISPATCHED, created_at=T0, updated_at=T0,
        ref="SMG-261127-0001", category=Category.FIRE, incident_location=location,
        details="Asap", persons_affected="2-5", submitted_at=T0,
    )  # fmt: skip
    sent = incident_document(ticket, None, AGENCIES[0], None, event="dispatch", key="k",
                             sent_at=T0)  # fmt: skip

    def shape(value: object) -> object:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(v) for v in value[:1]]
        return None

    assert shape(example) == shape(sent)
