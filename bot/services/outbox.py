"""The outbox worker: delivers what the units of work committed, with retries and backoff.

A row is written in the same transaction as the ticket change that caused it, so a Telegram
outage delays a delivery but never loses it. The worker wakes up at once when told that
something was committed (``wake()``) and otherwise polls every ``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from datetime import datetime, timedelta

from bot.domain.model import OutboxMessage
from bot.services.ports import Clock, Deliverer, DeliveryError, Fault, UnitOfWorkFactory

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
        batch: int = 50,
        poll_interval: float = 1.0,
        parallel: int = 8,
        read_uow_factory: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._read_uow_factory = read_uow_factory or uow_factory
        self._parallel = asyncio.Semaphore(parallel)
        self._stopping = False
        self._deliverer = deliverer
        self._clock = clock
        self._must_deliver = frozenset(must_deliver)
        self._batch = batch
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Tells the worker that new rows were committed."""
        self._wakeup.set()

    async def run_once(self) -> int:
        """Delivers every due row once; returns how many were sent.

        Tickets are served concurrently, each in written order: while a must-deliver row
        of a ticket (its operator card) waits for a retry, the later rows of that ticket
        wait too; other tickets go on, so one broken card never holds back other reports.
        """
        async with self._read_uow_factory() as uow:
            owed = await uow.outbox.owed(self._batch)
        queues: dict[object, list[OutboxMessage]] = {}
        for message in owed:
            key = message.ticket_id if message.ticket_id is not None else ("row", message.id)
            queues.setdefault(key, []).append(message)
        now = self._clock.now()
        sent = await asyncio.gather(*(self._drain(rows, now) for rows in queues.values()))
        return sum(sent)

    async def _drain(self, rows: list[OutboxMessage], now: datetime) -> int:
        """Delivers one ticket's due rows in order, stopping at a held must-deliver row."""
        sent = 0
        async with self._parallel:
            for message in rows:
                if self._stopping:
                    break
                ok = message.next_attempt_at <= now and await self._deliver(message)
                sent += ok
                if not ok and message.kind in self._must_deliver:
                    break
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
            else:
                wait = backoff(message.attempts)
                if exc.permanent or exc.fault is Fault.DESTINATION:  # never given up: retry slowly
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
        """Delivers until stopped; survives database and delivery errors."""
        while not self._stopping:
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
        self._stopping = False
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run_forever(), name="outbox-worker"
            )

    async def stop(self, grace: float = 5.0) -> None:
        """Lets the deliveries under way finish (within ``grace`` seconds), then stops.

        What is not sent stays in the outbox for the next start.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self.wake()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            self._stopping = False
