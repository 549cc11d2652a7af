"""The outbox worker: delivers what the units of work committed, with retries and backoff.

A row is written in the same transaction as the ticket change that caused it, so a Telegram
outage delays a delivery but never loses it. The worker wakes up at once when told that
something was committed (``wake()``) and otherwise polls every ``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from datetime import timedelta

from bot.domain.model import OutboxMessage
from bot.services.ports import Clock, Deliverer, DeliveryError, UnitOfWorkFactory

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    """Return the wait before attempt ``attempts + 1``: 1 s, 2 s, 4 s … capped at 5 min."""
    return min(timedelta(seconds=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


class OutboxWorker:
    """Sends due outbox rows one by one, oldest first."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        deliverer: Deliverer,
        clock: Clock,
        *,
        must_deliver: Collection[str] = (),
        on_permanent_failure: Callable[[OutboxMessage, DeliveryError], object] | None = None,
        batch: int = 50,
        poll_interval: float = 1.0,
    ) -> None:
        self._uow_factory = uow_factory
        self._deliverer = deliverer
        self._clock = clock
        self._must_deliver = frozenset(must_deliver)
        self._on_permanent_failure = on_permanent_failure
        self._batch = batch
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Tells the worker that new rows were committed."""
        self._wakeup.set()

    async def run_once(self) -> int:
        """Delivers every due row once, in written order; returns how many were sent.

        Order is kept per ticket: while a must-deliver row of a ticket (its operator card) is
        waiting for a retry, the later rows of that ticket wait too; other tickets go on, so
        one broken card can never hold back every other report.
        """
        async with self._uow_factory() as uow:
            owed = await uow.outbox.owed(self._batch)
            await uow.commit()
        sent = 0
        held: set[int] = set()
        now = self._clock.now()
        for message in owed:
            ticket = message.ticket_id
            if ticket is not None and ticket in held:
                continue
            ok = message.next_attempt_at <= now and await self._deliver(message)
            sent += ok
            if not ok and message.kind in self._must_deliver and ticket is not None:
                held.add(ticket)
        return sent

    async def _deliver(self, message: OutboxMessage) -> bool:
        now = self._clock.now()
        message.attempts += 1
        try:
            await self._deliverer.deliver(message)
        except DeliveryError as exc:
            message.last_error = exc.reason[:500]
            if exc.permanent and message.kind not in self._must_deliver:
                message.failed_at = now
                log.warning("outbox %s (%s) failed for good: %s", message.id, message.kind,
                            exc.reason[:200])  # fmt: skip
                if self._on_permanent_failure is not None:
                    self._on_permanent_failure(message, exc)
            else:
                wait = backoff(message.attempts)
                if exc.permanent:  # an operator card is never given up: retry slowly
                    wait = MAX_BACKOFF
                if exc.retry_after is not None:
                    wait = max(wait, timedelta(seconds=exc.retry_after))
                message.next_attempt_at = now + wait
                log.warning("outbox %s (%s) attempt %d failed, retry in %.0fs: %s", message.id,
                            message.kind, message.attempts, wait.total_seconds(),
                            exc.reason[:200])  # fmt: skip
            ok = False
        except Exception as exc:  # a bug must not stop the worker: retry with backoff
            log.exception("outbox %s (%s) crashed: %s", message.id, message.kind,
                          type(exc).__name__)  # fmt: skip
            message.last_error = type(exc).__name__
            message.next_attempt_at = now + backoff(message.attempts)
            ok = False
        else:
            message.sent_at = self._clock.now()
            ok = True
        async with self._uow_factory() as uow:
            await uow.outbox.update(message)
            await uow.commit()
        return ok

    async def run_forever(self) -> None:
        """Delivers until cancelled; survives database and delivery errors."""
        while True:
            self._wakeup.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("outbox pass failed: %s", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)

    def start(self) -> None:
        """Starts the background loop on the running event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run_forever(), name="outbox-worker"
            )

    async def stop(self) -> None:
        """Stops the background loop (what is not sent stays in the outbox)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
