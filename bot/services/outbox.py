"""The outbox worker: delivers what the units of work committed, with retries and backoff.

A row is written in the same transaction as the change that caused it, so a Telegram outage
delays a delivery but never loses it. The worker wakes up at once when told that something
was committed (``wake()``) and otherwise polls every ``poll_interval`` seconds.

The worker is continuous: whenever woken (a commit, a finished delivery, the poll interval)
it claims due rows in one query, up to its free capacity (lane by lane: emergency, agency,
broadcast; then the ticket's priority; then age), with a lease for this worker committed
before anything is sent, and hands each ticket's rows (per lane) to one task that sends them
in order. It never waits for earlier tasks to finish before claiming more: in a surge a
citizen's notice or a queue-board edit does not wait behind minutes of group-bound rows (the
rate governor paces the calls and orders them by class and rank). A ticket's later row is
not claimed while an earlier one is in flight. While the worker holds rows their leases are
prolonged, so no other process sends them; rows a task did not attempt are released when
that task ends. If the worker dies, its rows are claimed again once the lease ends and go
out marked as possible repeats.

The broadcast lane (advisory copies: thousands of independent rows) is claimed apart, with a
capacity of its own, in batches: only once a batch of its slots is free, in one statement
(``claim_lane``), and sent by a few streams instead of a task per row. A delivery that ends
frees its slot without a claim of its own, so the database's writer (SQLite has one) serves
the copies with one claim per batch and one store per batch of sent rows, and an intake's
writes interleave with them; citizens' and emergency rows are still claimed whenever a
commit wakes the worker. Safe with several processes on one PostgreSQL database; on
SQLite run one process.

What a failure means comes from its :class:`~bot.services.ports.Fault`: a 429 waits
``retry_after``; a network error or 5xx backs off (1, 2, 4 … s, capped at 30 s on the
emergency lane and 5 min elsewhere); a chat of ours refusing deliveries (the operators' or
an agency's: not found, bot not a member) is a configuration fault, retried with a 30 s cap
and never given up, logged once as an error and told to the admins; a citizen who blocked
the bot, or a message Telegram rejects, is final for that row. A group that became a
supergroup is followed to its new id and the row is sent again at once.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.model import OutboxMessage
from bot.services.alerts import AdminAlerts
from bot.services.chats import ChatDirectory
from bot.services.health import CONFIGURED, DeliveryHealth
from bot.services.outbox_kinds import KINDS, Lane, OutboxKind
from bot.services.ports import (
    Clock,
    Deliverer,
    DeliveryError,
    DeliveryResult,
    Fault,
    UnitOfWork,
    UnitOfWorkFactory,
)
from bot.sizes import BROADCAST_ROWS_HELD, BROADCAST_STREAMS, OUTBOX_ROWS_HELD

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=5)
EMERGENCY_BACKOFF = timedelta(seconds=30)
DESTINATION_BACKOFF = timedelta(seconds=30)
LEASE = timedelta(seconds=30)
URGENT_RANK = 1
"""Rows of life-threatening tickets (priority 1): claimed beyond the groups' share."""
PARALLEL = OUTBOX_ROWS_HELD  # rows held at most: the governor paces and orders the calls
BROADCAST_PARALLEL = BROADCAST_ROWS_HELD  # and BROADCAST_STREAMS: see bot/sizes.py
FINISH_BATCH = 64  # sent rows of a batched kind stored in one unit of work …
FINISH_DELAY = 0.05  # … or this many seconds after the first of them; while a broadcast's
# backlog is claimed they ride on its next claim instead (one unit of work for both)


def group_kinds() -> frozenset[str]:
    """The kinds sent to our groups (operators, agencies), paced at 20 messages a minute."""
    return frozenset(kind.name for kind in KINDS.values() if kind.audience in CONFIGURED)


MAX_MIGRATIONS = 3  # chat moves followed for one row in a row


def backoff(attempts: int, cap: timedelta = MAX_BACKOFF) -> timedelta:
    """Return the wait before attempt ``attempts + 1``: 1 s, 2 s, 4 s … capped at ``cap``."""
    exponent = min(max(attempts - 1, 0), 30)
    return min(timedelta(seconds=2**exponent), cap)


def next_wait(
    fault: Fault, attempts: int, lane: str, retry_after: float | None = None
) -> timedelta | None:
    """Return how long a row waits after a failure of ``fault``, or None when it is final."""
    cap = EMERGENCY_BACKOFF if lane in (Lane.CITIZEN, Lane.EMERGENCY) else MAX_BACKOFF
    if fault is Fault.RATE_LIMITED and retry_after is not None:
        return timedelta(seconds=retry_after)
    if fault is Fault.DESTINATION:
        return backoff(attempts, DESTINATION_BACKOFF)
    if fault in (Fault.RECIPIENT_GONE, Fault.REJECTED):
        return None
    return backoff(attempts, cap)


def default_owner() -> str:
    """A name no other living worker has: host, process id and a random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Pacing:
    """The waits of our own a delivery makes before its call (a queue board waiting for its
    turn under the group's budget), which a stopping worker ends at once.

    Nothing has been sent during such a wait, so the row goes back unattempted and is
    delivered after the restart; a SIGTERM no longer waits out the worker's grace (5 s) for
    a board edit asleep in its 7.5 s spacing. A wait for Telegram's answer is not one of
    these: the grace is for those.
    """

    def __init__(self) -> None:
        self._sleeping: set[asyncio.Task[object]] = set()
        self._stopped = False

    async def sleep(self, seconds: float) -> None:
        """Sleeps ``seconds``; the task is cancelled, at once or while asleep, when the
        worker stops."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a task
            await asyncio.sleep(seconds)
            return
        if self._stopped:
            task.cancel()
        self._sleeping.add(task)
        try:
            await asyncio.sleep(seconds)
        finally:
            self._sleeping.discard(task)

    def stop(self) -> None:
        """Cancels the tasks asleep here, and those that come to sleep until :meth:`resume`."""
        self._stopped = True
        for task in self._sleeping:
            task.cancel()

    def resume(self) -> None:
        """Waits are kept again (the worker started)."""
        self._stopped = False


@dataclass(eq=False)
class _Group:
    """The claimed rows of one ticket and lane (or one row of no ticket), sent in order by
    one task; rows claimed later for the same ticket and lane join it while it runs."""

    key: tuple[object, object]
    rows: list[OutboxMessage] = field(default_factory=list)
    task: asyncio.Task[int] | None = None

    def add(self, message: OutboxMessage) -> None:
        bisect.insort(self.rows, message, key=lambda m: m.id or 0)


class OutboxWorker:
    """Claims due outbox rows continuously and sends them, each ticket's rows in order.

    Whenever it is woken (a commit, a finished delivery, the poll interval) it claims up to
    its free capacity: ``parallel`` rows held (claimed and not yet finished) at most, at
    most ``batch`` per claim. Each ticket and lane gets one task that sends its rows in
    order; the worker never waits for earlier tasks before claiming more, so a citizen's
    notice or a fresh board edit is not held behind a slow group-bound backlog (the rate
    governor paces and orders the calls themselves).
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        deliverer: Deliverer,
        clock: Clock,
        *,
        owner: str | None = None,
        lease: timedelta = LEASE,
        heartbeat: float | None = None,
        batch: int = 50,
        poll_interval: float = 1.0,
        parallel: int = PARALLEL,
        group_share: int | None = None,
        broadcast_parallel: int = BROADCAST_PARALLEL,
        broadcast_batch: int | None = None,
        broadcast_streams: int = BROADCAST_STREAMS,
        health: DeliveryHealth | None = None,
        alerts: AdminAlerts | None = None,
        chats: ChatDirectory | None = None,
        take_over_on_start: bool = False,
        background_uow_factory: UnitOfWorkFactory | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        if parallel < 1 or batch < 1 or broadcast_parallel < 1 or broadcast_streams < 1:
            raise ValueError("the outbox worker needs parallel, batch and streams >= 1")
        self._uow_factory = uow_factory
        self._background_uow_factory = background_uow_factory
        self._deliverer = deliverer
        self._clock = clock
        self.owner = owner or default_owner()
        self._lease = lease
        self._heartbeat_every = heartbeat or max(lease.total_seconds() / 3, 0.01)
        self._batch = batch
        self._poll_interval = poll_interval
        self._capacity = parallel
        self._group_share = max(1, min(parallel, group_share or parallel // 2))
        self._broadcast_capacity = broadcast_parallel
        self._broadcast_batch = max(1, min(broadcast_parallel, broadcast_batch or
                                           max(1, broadcast_parallel // 2)))  # fmt: skip
        self._broadcast_streams = broadcast_streams
        self.health = health or DeliveryHealth()
        self._alerts = alerts
        self._chats = chats
        self._take_over = take_over_on_start
        self.pacing = pacing or Pacing()
        """Shared with the deliverer: its own waits end when this worker stops."""
        self._held: set[int] = set()  # claimed by this worker, not yet finished or released
        self._held_group: set[int] = set()  # of those, rows for our groups
        self._held_broadcast: set[int] = set()  # of those, broadcast-lane rows
        # Sent rows of batched kinds waiting to be stored together (leases still prolonged).
        self._finished: list[tuple[OutboxMessage, OutboxKind, DeliveryResult]] = []
        self._finishing: set[int] = set()
        self._flush_task: asyncio.Task[None] | None = None
        self._groups: dict[tuple[object, object], _Group] = {}  # running, by ticket and lane
        self._stopping = False
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._starved = False  # the last claim was cut by the capacity: more may be due
        self._broadcast_starved = False  # the same for the broadcast lane
        self._fresh = True  # woken by a commit or the poll: every lane may have due rows
        self.sent_total = 0
        self.claims = 0

    @property
    def capacity(self) -> int:
        """How many rows the worker holds at most (claimed and not yet finished)."""
        return self._capacity

    @property
    def holding(self) -> int:
        """How many rows the worker holds now."""
        return len(self._held)

    def wake(self) -> None:
        """Tells the worker that new rows were committed."""
        self._fresh = True
        self._wakeup.set()

    def _nudge(self) -> None:
        """Wakes the loop when a finished delivery made room a claim should fill: a slot
        while the last claim of the other lanes was cut short, a batch of broadcast slots
        while the last broadcast claim was."""
        others = len(self._held) - len(self._held_broadcast)
        if (self._starved and others < self._capacity) or (
            self._broadcast_starved
            and self._broadcast_capacity - len(self._held_broadcast) >= self._broadcast_batch
        ):
            self._wakeup.set()

    def _background(self) -> UnitOfWorkFactory:
        """Units of work for the broadcast's claims and stores: they give way to every other
        writer waiting (SQLite has one writer), so an intake never queues behind them."""
        return self._background_uow_factory or self._uow_factory

    def _forget(self, message_id: int) -> None:
        """The row's slot is free (it was sent, failed or released)."""
        self._held.discard(message_id)
        self._held_group.discard(message_id)
        self._held_broadcast.discard(message_id)

    # -- claiming ---------------------------------------------------------------------------

    async def _claim(self, limit: int) -> int:
        """Claims up to ``limit`` due rows and starts (or feeds) their groups.

        Rows for our groups (the operators', agencies') take at most ``group_share`` of the
        capacity: a group takes 20 messages a minute, so a backlog for it must not fill
        every slot while citizens' rows (private chats, higher classes) wait unclaimed.
        First a claim in the usual order up to the group share left, then, if that was
        cut short, one that skips the group kinds for the rest.
        """
        group_free = self._group_share - len(self._held_group)
        claimed = await self._claim_rows(min(limit, group_free)) if group_free > 0 else []

        if len(claimed) < limit and (group_free <= 0 or len(claimed) == group_free):
            # The share is spent: life-threatening tickets' rows are still claimed (the
            # governor then sends them ahead of the less urgent ones already waiting), the
            # other group rows wait for the share.
            claimed += await self._claim_rows(limit - len(claimed), max_rank=URGENT_RANK)
        if len(claimed) < limit and (group_free <= 0 or len(claimed) >= group_free):
            claimed += await self._claim_rows(limit - len(claimed), skip=group_kinds())
        self._held.update(message.id or 0 for message in claimed)
        self._held_group.update(
            message.id or 0 for message in claimed if message.kind in group_kinds()
        )
        self._start(claimed)
        return len(claimed)

    async def _claim_broadcast(self, limit: int) -> int:
        """Claims up to ``limit`` broadcast-lane rows in one statement, in the unit of work
        that stores the sent rows waiting (one writer's turn for both); the held ones are
        sent by ``broadcast_streams`` tasks, each in claim order."""
        finished, self._finished = self._finished, []
        now = self._clock.now()
        try:
            async with self._background()() as uow:
                if finished:
                    await self._store(uow, finished)
                claimed = await uow.outbox.claim_lane(
                    self.owner, now, now + self._lease, limit, Lane.BROADCAST.value
                )
                await uow.commit()
        except BaseException:
            self._finished[:0] = finished  # stored with the next claim or store
            raise
        self._finishing.difference_update(message.id or 0 for message, _, _ in finished)
        self.claims += 1
        ids = [message.id or 0 for message in claimed]
        self._held.update(ids)
        self._held_broadcast.update(ids)
        self._start(claimed)
        return len(claimed)

    def _start(self, claimed: list[OutboxMessage]) -> None:
        """Hands each claimed row to its group's task, starting the task if none runs."""
        for message in claimed:
            key: tuple[object, object]
            if message.ticket_id:
                key = (message.ticket_id, message.lane)
            elif message.lane == Lane.BROADCAST:
                key = (Lane.BROADCAST.value, (message.id or 0) % self._broadcast_streams)
            else:
                key = ("row", message.id)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(key)
                group.add(message)
                group.task = asyncio.get_running_loop().create_task(
                    self._drain(group), name=f"outbox-{key}"
                )
            else:  # its ticket's task is still running: the row waits its turn there
                group.add(message)
        if claimed:
            self._ensure_heartbeat()

    async def _claim_rows(
        self, limit: int, skip: Collection[str] = (), max_rank: int | None = None
    ) -> list[OutboxMessage]:
        now = self._clock.now()
        holding = [kind.name for kind in KINDS.values() if kind.must_deliver]
        async with self._uow_factory() as uow:
            claimed = await uow.outbox.claim(
                self.owner, now, now + self._lease, limit, holding=holding, skip=skip,
                max_rank=max_rank, skip_lanes=(Lane.BROADCAST.value,),
            )  # fmt: skip
            await uow.commit()
        self.claims += 1
        return claimed

    async def _pump(self, budget: int | None) -> None:
        """Claims whenever woken, up to the free capacity, until stopped; with a ``budget``
        (rows to claim at most) it returns once nothing more is due and every group ended."""
        self._fresh = True
        while True:
            self._wakeup.clear()
            fresh, self._fresh = self._fresh or budget is not None, False
            if not self._stopping and (budget is None or budget > 0):
                try:
                    got, again = await self._claim_due(fresh, budget)
                except Exception as exc:
                    if budget is not None:
                        raise
                    log.exception("outbox claim failed: %s", type(exc).__name__)
                    got, again = 0, False
                if budget is not None:
                    budget -= got
                if again and budget != 0:
                    continue  # more may be due and there is room: claim again at once
            if self._stopping or (budget is not None and not self._groups):
                return
            if budget is not None:
                await self._wakeup.wait()  # a group's end always wakes the loop
            else:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self._poll_interval)
                except TimeoutError:
                    self._fresh = True  # rows may have come due meanwhile

    async def _claim_due(self, fresh: bool, budget: int | None) -> tuple[int, bool]:
        """One round of claims: the other lanes' rows up to their free capacity (when
        ``fresh`` or the last such claim was cut short), then, once none of theirs is left
        unclaimed, broadcast rows when a batch of their slots is free. Returns how many
        rows were claimed and whether to claim again at once (a claim was cut by its limit
        and there is room for more)."""
        got, again = 0, False
        others = self._capacity - (len(self._held) - len(self._held_broadcast))
        if others > 0 and (fresh or self._starved):
            limit = min(others, self._batch, budget if budget is not None else others)
            n = await self._claim(limit)
            self._starved = n == limit
            again = self._starved and others > n
            got += n
        left = None if budget is None else budget - got
        free = self._broadcast_capacity - len(self._held_broadcast)
        batch = self._broadcast_batch if left is None else min(self._broadcast_batch, left)
        want = min(free, batch)
        if (
            want > 0
            and want == batch  # a whole batch of slots is free (or the budget's rest)
            and not self._starved  # the other lanes' due rows are all claimed: they go first
            and (fresh or self._broadcast_starved)
        ):
            n = await self._claim_broadcast(want)
            self._broadcast_starved = n == want
            again = again or (self._broadcast_starved and free - n >= self._broadcast_batch)
            got += n
        return got, again

    # -- one ticket's rows ------------------------------------------------------------------

    async def _drain(self, group: _Group) -> int:
        """Delivers one ticket's rows in order, stopping at a held must-deliver row; the
        rows it did not attempt are released when it ends."""
        sent = 0
        cancelled = False
        try:
            while group.rows and not self._stopping:
                message = group.rows.pop(0)
                ok = await self._deliver(message)
                sent += ok
                self._nudge()  # its slot is free: a claim may be due
                kind = KINDS.get(message.kind)
                owed = message.sent_at is None and message.failed_at is None
                if not ok and owed and (kind is None or kind.must_deliver):
                    break
        except asyncio.CancelledError:
            cancelled = True
            raise
        except Exception as exc:
            log.error("outbox: a ticket's deliveries stopped: %s", type(exc).__name__)
        finally:
            del self._groups[group.key]  # rows claimed from now on start a new task
            rest, group.rows = group.rows, []
            if rest and not cancelled:  # when cancelled, stop() releases what is held
                await self._release([m.id or 0 for m in rest])
            if group.key[0] == Lane.BROADCAST.value:  # a stream: the next batch is claimed
                self._wakeup.set()  # when its slots are free (``_nudge``); run_once ends
            else:
                self.wake()  # rows behind this ticket's may be claimable now
        return sent

    # -- leases -----------------------------------------------------------------------------

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat_task is None or self._heartbeat_task.done():
            self._heartbeat_task = asyncio.get_running_loop().create_task(
                self._heartbeat(), name="outbox-lease"
            )

    async def _stop_heartbeat(self) -> None:
        task, self._heartbeat_task = self._heartbeat_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _heartbeat(self) -> None:
        """Prolongs the leases of the rows this worker still holds while it works on them."""
        while True:
            await asyncio.sleep(self._heartbeat_every)
            held = self._held | self._finishing
            if not held:
                continue
            try:
                async with self._uow_factory() as uow:
                    await uow.outbox.extend(self.owner, held, self._clock.now() + self._lease)
                    await uow.commit()
            except Exception as exc:  # the lease may lapse: another worker then repeats rows
                log.warning("outbox: prolonging leases failed: %s", type(exc).__name__)

    async def _release(self, ids: Collection[int] | None = None) -> None:
        """Ends the leases on ``ids`` (every row still held when None), unattempted."""
        release = set(self._held if ids is None else ids) & self._held
        self._held -= release
        self._held_group -= release
        self._held_broadcast -= release
        if not release:
            return
        try:
            async with self._uow_factory() as uow:
                await uow.outbox.release(self.owner, release)
                await uow.commit()
        except Exception as exc:  # they come back when the lease ends
            log.warning("outbox: releasing %d rows failed: %s", len(release),
                        type(exc).__name__)  # fmt: skip

    async def _shutdown(self) -> None:
        """Cancels the groups still running and releases every row still held."""
        tasks = [g.task for g in self._groups.values() if g.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._store_finished()
        await self._release()
        await self._stop_heartbeat()

    # -- for tests and tools ----------------------------------------------------------------

    async def run_once(self) -> int:
        """Claims and delivers what is due now (``batch`` rows at most); returns how many
        were sent.

        The same engine as the loop: tickets are served concurrently, each in written
        order; while a must-deliver row of a ticket (its operator card) waits for a retry,
        the later rows of that ticket and lane wait too (released at once); other tickets go
        on, so one broken card never holds back other reports. Returns when nothing more is
        due and every ticket's task has ended.
        """
        before = self.sent_total
        try:
            await self._pump(self._batch)
            await self._store_finished()
        except BaseException:
            await self._shutdown()
            raise
        if not self._groups:
            await self._stop_heartbeat()
        return self.sent_total - before

    # -- one row ----------------------------------------------------------------------------

    async def _deliver(self, message: OutboxMessage) -> bool:
        started = self._clock.now()  # a wait (retry_after) counts from the call
        kind = KINDS.get(message.kind)
        if kind is None:  # written by a newer version, perhaps: another process may know it
            log.error("outbox %s: unknown kind %r, retried later", message.id, message.kind)
            error = DeliveryError(f"unknown outbox kind {message.kind}")
            return await self._failed(message, None, error, started, wait=MAX_BACKOFF)
        for _ in range(MAX_MIGRATIONS + 1):
            try:
                result = await self._deliverer.deliver(message)
            except DeliveryError as exc:
                if exc.migrated_to is not None and exc.chat_id is not None and self._chats:
                    await self._chats.moved(exc.chat_id, exc.migrated_to)
                    continue  # sent again at once, to the new id
                return await self._failed(message, kind, exc, started)
            except Exception as exc:  # a bug must not stop the worker: retry with backoff
                log.exception("outbox %s (%s) crashed: %s", message.id, message.kind,
                              type(exc).__name__)  # fmt: skip
                error = DeliveryError(type(exc).__name__)
                return await self._failed(message, kind, error, started)
            return await self._sent(message, kind, result or DeliveryResult())
        error = DeliveryError("the chat keeps moving", fault=Fault.DESTINATION)
        return await self._failed(message, kind, error, started)

    async def _sent(self, message: OutboxMessage, kind: OutboxKind, result: DeliveryResult) -> bool:
        self.sent_total += 1
        message.sent_at = self._clock.now()
        message.result = result.to_json()
        if kind.batched:
            self._finish_later(message, kind, result)
            return True
        self._forget(message.id or 0)  # from now on the lease only lapses
        try:
            async with self._uow_factory() as uow:
                await uow.outbox.finish(message, self.owner)
                if kind.record is not None:
                    await kind.record(uow, message, result)
                await uow.commit()
        except Exception as exc:
            if kind.record is None:
                raise
            # The row went out: never send it again because storing its result failed.
            log.exception("outbox %s (%s): recording the result failed: %s", message.id,
                          message.kind, type(exc).__name__)  # fmt: skip
            async with self._uow_factory() as uow:
                await uow.outbox.finish(message, self.owner)
                await uow.commit()
        if kind.audience in CONFIGURED:
            ended = self.health.up(kind.audience, result.chat_id)
            if ended is not None:
                log.info("%s chat %s receives deliveries again", kind.audience.value,
                         result.chat_id)  # fmt: skip
                if self._alerts is not None:
                    chat = ended.chat_id if ended.chat_id is not None else result.chat_id
                    await self._quietly(self._alerts.destination_recovered(kind.audience, chat))
        return True

    def _finish_later(
        self, message: OutboxMessage, kind: OutboxKind, result: DeliveryResult
    ) -> None:
        """Keeps a sent row of a batched kind to be stored with others (at most
        ``FINISH_BATCH`` rows or ``FINISH_DELAY`` seconds later)."""
        self._forget(message.id or 0)  # its slot is free; its lease is still prolonged
        self._finishing.add(message.id or 0)
        self._finished.append((message, kind, result))
        if len(self._finished) >= FINISH_BATCH and not self._carried():
            asyncio.get_running_loop().create_task(self._store_finished(), name="outbox-store")
        elif self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(
                self._store_soon(), name="outbox-store-soon"
            )

    def _carried(self) -> bool:
        """Whether the next broadcast claim will store the sent rows waiting: a backlog is
        being claimed, and fewer than two batches wait."""
        return (
            self._broadcast_starved
            and not self._stopping
            and len(self._finished) < 2 * FINISH_BATCH
        )

    async def _store_soon(self) -> None:
        while True:
            await asyncio.sleep(FINISH_DELAY)
            if not self._finished:
                return
            if not self._carried():
                await self._store_finished()
                return

    async def _store_finished(self) -> None:
        """Stores the sent rows of batched kinds (and their results) in one unit of work.

        A crash before this store sends those rows again once their leases end (as repeats):
        about ``FINISH_BATCH`` copies (two batches at most), the price of not writing the
        database per copy."""
        finished, self._finished = self._finished, []
        if not finished:
            return
        try:
            async with self._background()() as uow:
                await self._store(uow, finished)
                await uow.commit()
        except Exception as exc:  # they went out: their leases lapse and they are repeats
            log.exception("outbox: storing %d sent rows failed: %s", len(finished),
                          type(exc).__name__)  # fmt: skip
        finally:
            self._finishing.difference_update(message.id or 0 for message, _, _ in finished)

    async def _store(
        self, uow: UnitOfWork, finished: list[tuple[OutboxMessage, OutboxKind, DeliveryResult]]
    ) -> None:
        await uow.outbox.finish_sent([message for message, _, _ in finished], self.owner)
        for message, kind, result in finished:
            if kind.record is not None:
                await kind.record(uow, message, result)

    async def _failed(
        self,
        message: OutboxMessage,
        kind: OutboxKind | None,
        error: DeliveryError,
        now: datetime,
        *,
        wait: timedelta | None = None,
    ) -> bool:
        self._forget(message.id or 0)
        message.last_error = error.reason[:500]
        if wait is None:
            wait = next_wait(error.fault, message.attempts, message.lane, error.retry_after)
        if (
            kind is not None and kind.max_attempts is not None
            and message.attempts >= kind.max_attempts and error.fault is not Fault.RATE_LIMITED
        ):  # fmt: skip
            wait = None  # dead-lettered
        if wait is None:
            message.failed_at = now
            log.warning("outbox %s (%s) failed for good (%s): %s", message.id, message.kind,
                        error.fault.value, error.reason[:200])  # fmt: skip
        else:
            message.next_attempt_at = now + wait
            log.info("outbox %s (%s) attempt %d failed (%s), retry in %.0fs: %s", message.id,
                     message.kind, message.attempts, error.fault.value, wait.total_seconds(),
                     error.reason[:200])  # fmt: skip
        async with self._uow_factory() as uow:
            finished = await uow.outbox.finish(message, self.owner)
            if finished and message.failed_at is not None and kind and kind.dead_letter:
                await kind.dead_letter(uow, message)
            await uow.commit()
        if kind is not None and error.fault is Fault.DESTINATION and kind.audience in CONFIGURED:
            await self._destination_down(kind, error, now)
        return False

    async def _destination_down(
        self, kind: OutboxKind, error: DeliveryError, now: datetime
    ) -> None:
        if not self.health.down(kind.audience, error.chat_id, error.reason, now):
            return
        log.error(
            "%s chat %s refuses deliveries: %s. Its messages wait in the outbox and are retried "
            "every %d s at most; admins are alerted.", kind.audience.value, error.chat_id,
            error.reason[:200], DESTINATION_BACKOFF.total_seconds(),
        )  # fmt: skip
        if self._alerts is not None:
            await self._quietly(
                self._alerts.destination_down(kind.audience, error.chat_id, error.reason)
            )

    @staticmethod
    async def _quietly(alert: Awaitable[bool]) -> None:
        """Runs an alert; a failing alert must not fail the delivery it reports on."""
        try:
            await alert
        except Exception as exc:
            log.warning("queueing an admin alert failed: %s", type(exc).__name__)

    # -- the loop ---------------------------------------------------------------------------

    async def take_over(self) -> int:
        """Ends every other worker's leases (their rows go out again at once, as repeats).

        Only where this is the one process using the database (SQLite): after a crash the
        previous process's rows need not wait for their leases to end."""
        async with self._uow_factory() as uow:
            taken = await uow.outbox.expire_leases(self.owner, self._clock.now())
            await uow.commit()
        if taken:
            log.warning("outbox: %d rows claimed by a previous run are sent again", taken)
        return taken

    async def run_forever(self) -> None:
        """Delivers until stopped; survives database and delivery errors.

        When stopping it claims nothing more and lets the groups under way end (each stops
        before its next row); cancelled, it cancels them. Either way every row it still
        holds is released."""
        if self._take_over:
            try:
                await self.take_over()
            except Exception as exc:
                log.warning("outbox: taking over old leases failed: %s", type(exc).__name__)
        try:
            await self._pump(None)
            running = [g.task for g in self._groups.values() if g.task is not None]
            await asyncio.gather(*running, return_exceptions=True)
        finally:
            await self._shutdown()

    def start(self) -> None:
        """Starts the background loop on the running event loop."""
        self._stopping = False
        self.pacing.resume()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run_forever(), name="outbox-worker"
            )

    async def stop(self, grace: float = 5.0) -> None:
        """Lets the deliveries under way finish (within ``grace`` seconds), then stops.

        A delivery that is only waiting for its turn (:class:`Pacing`) ends at once. What is
        not sent stays in the outbox for the next start (released at once).
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self.pacing.stop()
        self.wake()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            self._stopping = False
