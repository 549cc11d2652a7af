"""The app's deliverer hands each row to its kind's transport, and only there."""

from __future__ import annotations

import pytest

from bot.domain.model import OutboxMessage
from bot.services.composite import CompositeDeliverer
from bot.services.outbox_kinds import AGENCY_CARD, AGENCY_WEBHOOK, KINDS, Transport
from bot.services.ports import DeliveryError, DeliveryResult, Fault
from handlers.delivery import SENDERS
from tests.unit.console_support import T0


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.kinds: list[str] = []

    async def deliver(self, message: OutboxMessage) -> DeliveryResult | None:
        self.kinds.append(message.kind)
        return DeliveryResult(extra={"by": self.name})


def _row(kind: str) -> OutboxMessage:
    return OutboxMessage(kind=kind, payload={}, created_at=T0, next_attempt_at=T0)


async def test_rows_go_to_the_deliverer_of_their_transport_when_delivered() -> None:
    telegram, webhook = Recorder("telegram"), Recorder("webhook")
    composite = CompositeDeliverer({Transport.TELEGRAM: telegram, Transport.WEBHOOK: webhook})
    await composite.deliver(_row(AGENCY_CARD))
    await composite.deliver(_row(AGENCY_WEBHOOK))
    assert (telegram.kinds, webhook.kinds) == ([AGENCY_CARD], [AGENCY_WEBHOOK])


async def test_a_transport_without_deliverer_is_a_destination_fault_when_asked() -> None:
    composite = CompositeDeliverer({Transport.TELEGRAM: Recorder("telegram")})
    with pytest.raises(DeliveryError) as caught:
        await composite.deliver(_row(AGENCY_WEBHOOK))
    assert caught.value.fault is Fault.DESTINATION
    with pytest.raises(DeliveryError) as unknown:
        await composite.deliver(_row("from_a_newer_version"))
    assert unknown.value.fault is Fault.TRANSIENT


def test_webhook_kinds_have_no_telegram_sender_and_agency_kinds_have_one_when_registered() -> None:
    webhook = {n for n, k in KINDS.items() if k.transport is Transport.WEBHOOK}
    assert webhook == {AGENCY_WEBHOOK}
    assert not webhook & set(SENDERS)
    assert {"agency_card", "agency_card_edit", "agency_reminder"} <= set(SENDERS)
