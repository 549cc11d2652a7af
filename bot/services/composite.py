"""The application's deliverer: each outbox row goes to the adapter of its kind's transport.

The kind registry (``outbox_kinds``) says which transport carries a kind; this is the one
place that turns that into a call. Telegram rows go to the Telegram deliverer
(``handlers/delivery.py``), webhook rows to the agency webhook client (``bot/agencies_http``).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.domain.model import OutboxMessage
from bot.services.outbox_kinds import KINDS, Transport
from bot.services.ports import Deliverer, DeliveryError, DeliveryResult, Fault


class CompositeDeliverer:
    """A ``Deliverer`` that hands each row to the deliverer of its kind's transport."""

    def __init__(self, by_transport: Mapping[Transport, Deliverer]) -> None:
        self._by_transport = dict(by_transport)

    async def deliver(self, message: OutboxMessage) -> DeliveryResult | None:
        """Deliver through the row's transport (an unknown kind is retried: a newer process
        may know it; a transport not configured here is a destination fault)."""
        kind = KINDS.get(message.kind)
        if kind is None:
            raise DeliveryError(f"unknown outbox kind {message.kind}")
        deliverer = self._by_transport.get(kind.transport)
        if deliverer is None:
            raise DeliveryError(
                f"no {kind.transport.value} deliverer configured", fault=Fault.DESTINATION
            )
        return await deliverer.deliver(message)
