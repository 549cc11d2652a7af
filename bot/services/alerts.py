"""Admin alerts: a direct message to each id in ``ADMIN_USER_IDS`` when a chat we deliver to
refuses deliveries (a configuration fault), and a note when it works again.

Alerts are outbox rows of kind ``ADMIN_ALERT`` (no ticket), rate-limited per fault: a row
with the same ``dedup_key`` enqueued within ``every`` (10 minutes) means the admins were
told already. The check and the enqueue share one unit of work that holds the key, so two
processes and restarts do not repeat an alert. The payload names the chat and Telegram's
reason, never personal data; the text is rendered in the admins' (default) language by the
deliverer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import timedelta

from bot.domain.model import OutboxMessage
from bot.services.outbox_kinds import ADMIN_ALERT, Audience, kind_of
from bot.services.ports import Clock, UnitOfWorkFactory

log = logging.getLogger(__name__)

ALERT_EVERY = timedelta(minutes=10)
DOWN = "destination_down"
RECOVERED = "destination_recovered"
MAX_REASON = 300


class AdminAlerts:
    """Queues alerts for the admins, at most one per fault and window."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        admin_ids: Collection[int],
        *,
        every: timedelta = ALERT_EVERY,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._admin_ids = tuple(dict.fromkeys(admin_ids))
        self._every = every
        self._wake = wake

    def on_enqueue(self, wake: Callable[[], None]) -> None:
        """Sets what to call after alerts were committed (the outbox worker's ``wake``)."""
        self._wake = wake

    async def destination_down(self, audience: Audience, chat_id: int | None, reason: str) -> bool:
        """Tells the admins that a chat refuses deliveries; False when they already know
        (or there is no admin to tell)."""
        return await self._alert(DOWN, audience, chat_id, reason)

    async def destination_recovered(self, audience: Audience, chat_id: int | None) -> bool:
        """Tells the admins that the chat works again."""
        return await self._alert(RECOVERED, audience, chat_id, "")

    async def _alert(
        self, event: str, audience: Audience, chat_id: int | None, reason: str
    ) -> bool:
        if not self._admin_ids:
            return False
        key = f"{event}:{audience.value}:{'' if chat_id is None else chat_id}"
        now = self._clock.now()
        kind = kind_of(ADMIN_ALERT)
        async with self._uow_factory() as uow:
            if await uow.outbox.exists_since(key, now - self._every):
                return False
            for admin_id in self._admin_ids:
                await uow.outbox.add(
                    OutboxMessage(
                        kind=ADMIN_ALERT,
                        payload={
                            "admin_id": admin_id,
                            "event": event,
                            "audience": audience.value,
                            "chat_id": chat_id,
                            "reason": reason[:MAX_REASON],
                        },
                        created_at=now,
                        next_attempt_at=now,
                        lane=kind.lane.value,
                        rank=1,
                        dedup_key=key,
                    )
                )
            await uow.commit()
        log.info("admins alerted: %s (%s chat %s)", event, audience.value, chat_id)
        if self._wake is not None:
            self._wake()
        return True
