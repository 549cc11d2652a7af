"""The rate governor: every Bot API call the bot makes waits here for its turn.

Telegram answers 429 beyond about 30 messages a second overall, about 20 a minute into one
group and about 1 a second sustained into one private chat. The governor keeps the bot under
those limits and decides who goes first when it cannot send everything at once:

* **Budgets.** Overall: ``overall_calls`` per ``overall_window`` (sliding window). Per group,
  supergroup or channel: ``group_calls`` per ``group_window`` (sliding window; Telegram
  counts a trailing window, so a token bucket with a burst of 20 would overrun it). Per private
  chat: likewise a sliding window, ``private_burst`` calls per ``private_burst /
  private_per_second`` seconds (a short burst, then about ``private_per_second`` on average;
  a token bucket refilling during the burst would overrun such a window). Broadcasts (class 5)
  are also capped at ``broadcast_per_second`` so emergencies always find room; paid
  broadcasts (``allow_paid_broadcast``) get their own window when
  ``paid_broadcast_per_second`` is set, instead of the overall one.
* **Order.** Priority classes are :class:`~bot.services.outbox_kinds.Priority` (1 citizen
  reply ... 5 broadcast); within a class an optional ``rank`` (lower first: the outbox passes
  the ticket's priority), then arrival. Among the calls that may go *now*, the first in that
  order goes. A call never waits behind a call of a lower class; a lower-class call to a chat
  with budget left may go while a higher-class call waits for its own chat's budget.
* **Windows count until the answer.** A sliding-window slot is held from the grant until the
  caller releases the call (the answer came back) and then for one more window. Telegram
  counts a call when it arrives, somewhere between the two, so the next call never reaches
  it inside the window of an earlier one, whatever the network delay.
* **Loop lag.** With ``Limits.lag`` set, :class:`RateGovernor` watches its event loop's lag
  (a timer measuring how late it wakes) while broadcasts flow, and :class:`LagThrottle`
  (additive increase, multiplicative decrease) shrinks the broadcast and paid-broadcast
  windows when the loop falls behind: a saturated loop makes every await of a citizen's
  intake wait behind the copies' callbacks, so the broadcast gives way. Classes 1-4 are never
  throttled, and a lane is never pushed below ``lag.min_per_second``.
* **429.** :meth:`Scheduler.penalise` pauses a chat (or everything, for a call without a chat)
  until Telegram's ``retry_after`` has passed; the caller submits the same call again with its
  old sequence number, so it keeps its place.

:class:`Scheduler` is the pure core (time passed in by the caller, no asyncio), driven by
unit tests with explicit times; :class:`RateGovernor` runs it on an event loop with an
injected ``monotonic``/``sleep`` pair. The Telegram adapter is ``handlers/ratelimit.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from bot.services.outbox_kinds import Priority

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
ChatId = int | str

DEFAULT_RANK = 0
"""The rank of a call that gives none: ahead of ranked calls of its class (pins, edits)."""
_MIN_TIMER = 0.001
_PRUNE_AT = 1024


@dataclass(frozen=True, slots=True)
class LagPolicy:
    """How the broadcast lanes give way when the event loop lags (see :class:`LagThrottle`)."""

    max_lag: float = 0.005
    """Seconds a timer may wake late before the broadcast lanes are cut."""
    interval: float = 0.025
    """Seconds between two lag samples."""
    cut: float = 0.5
    """The share left after a cut (multiplicative decrease)."""
    cooldown: float = 0.1
    """The least time between two cuts: a cut shows in the loop only once the calls granted
    before it are answered."""
    recovery: float = 0.1
    """The share regained per second of samples within ``max_lag`` (additive increase)."""
    start: float = 0.1
    """The share a broadcast starts with after a quiet spell (then it rises while the loop
    keeps up): a burst at the full rate would stall the loop before the first cut shows."""
    floor: float = 0.02
    """The least share of a lane's configured rate."""
    min_per_second: int = 20
    """The least calls per second a throttled lane keeps (its configured rate if lower): the
    free broadcast rate (20/s) costs the loop little and is never cut."""
    idle_stop: float = 5.0
    """Seconds without a broadcast call, at full share, after which the watch stops."""

    def __post_init__(self) -> None:
        for name in ("max_lag", "interval", "cooldown", "recovery", "idle_stop"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("cut", "floor", "start"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        if self.min_per_second < 1:
            raise ValueError(f"min_per_second must be >= 1, got {self.min_per_second!r}")


class LagThrottle:
    """The share of their configured rate the broadcast lanes get, from lag samples (AIMD).

    Pure: :meth:`observe` takes a sample and its time. A sample above ``max_lag`` cuts the
    share to ``cut`` of itself (at most once per ``cooldown``, never below ``floor``); calm
    samples raise it by ``recovery`` per second since the previous sample, up to 1.
    """

    def __init__(self, policy: LagPolicy) -> None:
        self.policy = policy
        self.share = 1.0
        self.cuts = 0
        self.lowest = 1.0
        self._last: float | None = None
        self._last_cut = -math.inf

    def restart(self) -> None:
        """A broadcast begins after a quiet spell: back to the ``start`` share."""
        self.share = min(self.share, self.policy.start)
        self.lowest = min(self.lowest, self.share)
        self._last = None

    def observe(self, lag: float, now: float) -> float:
        """Takes the loop's lag measured at ``now``; returns the share to apply."""
        policy = self.policy
        if lag > policy.max_lag:
            if now - self._last_cut >= policy.cooldown:
                self.share = max(policy.floor, self.share * policy.cut)
                self._last_cut = now
                self.cuts += 1
                self.lowest = min(self.lowest, self.share)
        elif self._last is not None and now > self._last:
            self.share = min(1.0, self.share + policy.recovery * (now - self._last))
        self._last = now
        return self.share


@dataclass(frozen=True, slots=True)
class Limits:
    """The budgets the governor keeps (Telegram's documented limits by default)."""

    overall_calls: int = 30
    overall_window: float = 1.0
    group_calls: int = 20
    group_window: float = 60.0
    group_reserve_share: float = 0.5
    """The share of each group's window that ranked calls (topics, cards, relays: rank 1-3)
    may not take: together they hold at most ``group_calls - group_reserve`` slots, so however
    many topics and cards wait, unranked and rank-0 calls (the queue board, the bot's answers
    to operators) still find room. 20 per minute: 10 kept, of which the board takes one every
    ``board_interval`` (7.5 s: eight a minute, plus its pin once) and operators the rest. The
    board is what keeps a surge visible (every ticket on it within 10 s), so it gets its
    slots first; topics and cards follow at 10 a minute, most urgent first."""
    private_burst: int = 3
    private_per_second: float = 1.0
    broadcast_per_second: int = 20
    """Class-5 calls per second: the rest of the overall budget stays free for emergencies."""
    paid_broadcast_per_second: int | None = None
    """Calls with ``allow_paid_broadcast`` per second, counted instead of the overall budget;
    None: paid calls are paced like any other."""
    lag: LagPolicy | None = None
    """How the broadcast lanes give way to a lagging event loop; None: they never do."""

    def __post_init__(self) -> None:
        positive = {
            "overall_calls": self.overall_calls,
            "overall_window": self.overall_window,
            "group_calls": self.group_calls,
            "group_window": self.group_window,
            "private_burst": self.private_burst,
            "private_per_second": self.private_per_second,
            "broadcast_per_second": self.broadcast_per_second,
            "paid_broadcast_per_second": self.paid_broadcast_per_second or 1,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if not 0 <= self.group_reserve_share < 1:
            raise ValueError(
                f"group_reserve_share must be in [0, 1), got {self.group_reserve_share!r}"
            )

    @property
    def group_reserve(self) -> int:
        """Slots of a group's window that ranked calls leave free."""
        return int(self.group_calls * self.group_reserve_share)

    @property
    def board_interval(self) -> float:
        """The least time between two queue-board calls into one group.

        The board may spend all of the reserve but two slots (kept for the pin that follows a
        new board and for the operators' own rank-0 calls), spread evenly over the window:
        bursts would spend the reserve in seconds and leave the board a window behind."""
        return self.group_window / max(1, self.group_reserve - 2)


class TargetKind(StrEnum):
    """Which chat budget a call spends."""

    GROUP = "group"
    """A group, supergroup or channel: the per-group sliding window."""
    PRIVATE = "private"
    """A private chat: its own sliding window."""
    UNMETERED = "unmetered"
    """The overall budget only: no chat (a callback answer) or a call that posts nothing."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a call goes, as far as budgets and 429 pauses are concerned."""

    kind: TargetKind
    chat_id: ChatId | None = None
    """The chat a 429 pauses; None: a 429 pauses every call."""

    @classmethod
    def group(cls, chat_id: ChatId) -> Target:
        """A call posting into a group, supergroup or channel."""
        return cls(TargetKind.GROUP, chat_id)

    @classmethod
    def private(cls, chat_id: ChatId) -> Target:
        """A call posting into a private chat."""
        return cls(TargetKind.PRIVATE, chat_id)

    @classmethod
    def unmetered(cls, chat_id: ChatId | None = None) -> Target:
        """A call that only spends the overall budget (paused with ``chat_id`` on a 429)."""
        return cls(TargetKind.UNMETERED, chat_id)


NO_CHAT = Target.unmetered()


@dataclass(eq=False, slots=True)
class Call:
    """One call waiting for, or holding, a grant. Identity matters: release the very object."""

    priority: Priority
    target: Target
    rank: int
    seq: int
    """Arrival order; a call submitted again after a 429 keeps it."""
    paid: bool
    submitted_at: float
    granted_at: float | None = None
    cancelled: bool = False
    released: bool = False
    windows: list[_Window] = field(default_factory=list, repr=False)
    """The sliding windows this call holds a slot in until released."""

    @property
    def order(self) -> tuple[int, int, int]:
        """The sort key: class, then rank, then arrival."""
        return (int(self.priority), self.rank, self.seq)


@dataclass(frozen=True, slots=True)
class GovernorStats:
    """Counters for benchmarks and ``siaga112 check`` (a snapshot; plain data)."""

    granted: dict[Priority, int]
    """Calls granted per class (a retried call counts once per grant)."""
    waited: dict[Priority, float]
    """Seconds spent waiting for a grant, summed per class."""
    max_wait: dict[Priority, float]
    """The longest single wait per class, in seconds."""
    rate_limited: int
    """429s seen (with the governor on, each one paused a chat or everything)."""
    queued: int
    """Calls waiting for a grant right now."""
    in_flight: int
    """Calls granted and not yet answered."""
    broadcast_share: float = 1.0
    """The share of their configured rates the broadcast lanes get now (loop lag)."""
    lowest_broadcast_share: float = 1.0
    """The lowest share applied so far."""
    lag_cuts: int = 0
    """How many times loop lag cut the broadcast lanes."""

    def mean_wait(self, priority: Priority) -> float:
        """The average wait of a class's granted calls, in seconds (0 when none)."""
        count = self.granted.get(priority, 0)
        return self.waited.get(priority, 0.0) / count if count else 0.0


class _Window:
    """A sliding window: at most ``limit`` slots held within any ``span`` seconds."""

    __slots__ = ("_expiries", "in_flight", "limit", "span")

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self.in_flight = 0
        self._expiries: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._expiries and self._expiries[0] <= now:
            self._expiries.popleft()

    def _held(self) -> int:
        return self.in_flight + len(self._expiries)

    def has_room(self, now: float) -> bool:
        self._expire(now)
        return self._held() < self.limit

    def free_at(self, now: float) -> float | None:
        """When a slot frees by time alone (``now`` if one is free; None: only a release)."""
        self._expire(now)
        excess = self._held() - self.limit
        if excess < 0:
            return now
        if excess < len(self._expiries):  # the slots in flight are counted first
            return self._expiries[excess]
        return None

    def take(self) -> None:
        self.in_flight += 1

    def done(self, now: float) -> None:
        self.in_flight -= 1
        expiry = now + self.span
        if self._expiries and self._expiries[-1] > expiry:
            expiry = self._expiries[-1]  # keep the deque sorted even if a clock stepped back
        self._expiries.append(expiry)

    def idle(self, now: float) -> bool:
        self._expire(now)
        return self._held() == 0


_Order = tuple[int, int, int]


class _Lane(IntEnum):
    """The shared budgets a waiting call needs; one ready heap per lane."""

    NORMAL = 0
    """Classes 1-4: the overall budget."""
    BROADCAST = 1
    """Class 5: the overall budget and the broadcast cap."""
    PAID = 2
    """Paid broadcasts: their own budget."""


class _Where(IntEnum):
    """Where a chat queue waits for its own chat's budget."""

    NOWHERE = 0
    READY = 1
    """Its chat has budget: it waits only for the shared budgets (a ready heap)."""
    TIMED = 2
    """Its chat's budget or pause frees at a known time (the timed heap)."""
    RELEASE = 3
    """Its group's window is full of calls in flight: it waits for an answer."""


@dataclass(eq=False, slots=True)
class _Queue:
    """The calls waiting for one target, best first."""

    target: Target
    calls: list[tuple[_Order, Call]] = field(default_factory=list)
    where: _Where = _Where.NOWHERE
    token: int = -1
    """The token of this queue's one live heap entry (older entries are stale)."""

    def head(self) -> Call | None:
        while self.calls and self.calls[0][1].cancelled:
            heapq.heappop(self.calls)
        return self.calls[0][1] if self.calls else None


class Scheduler:
    """The pure core: submit calls, grant them at a given time, release them when answered.

    Nothing here sleeps or reads a clock; every method takes ``now`` (monotonic seconds).
    Each chat's queue waits in one place: a ready heap per lane (ordered by its best call),
    the timed heap (its chat's budget frees at a known time) or a group's release list, so
    granting and planning the next wake-up cost O(log n) per call, not a scan of every chat.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits = limits or Limits()
        self._seq = itertools.count()
        self._tokens = itertools.count()
        self._queues: dict[Target, _Queue] = {}
        self._ready: dict[_Lane, list[tuple[_Order, int, Target]]] = {lane: [] for lane in _Lane}
        self._timed: list[tuple[float, int, Target]] = []
        self._awaiting_release: dict[ChatId, set[Target]] = {}
        self._groups: dict[ChatId, _Window] = {}
        self._ranked: dict[ChatId, _Window] = {}
        """Per group, the slots ranked calls hold (at most ``group_calls - group_reserve``)."""
        self._privates: dict[ChatId, _Window] = {}
        self._overall = _Window(limits.overall_calls, limits.overall_window)
        self._broadcast = _Window(limits.broadcast_per_second, 1.0)
        self._paid = (
            _Window(limits.paid_broadcast_per_second, 1.0)
            if limits.paid_broadcast_per_second
            else None
        )
        self._broadcast_share = 1.0
        self._pace: dict[_Lane, _Window] = {}
        """With a lag policy: per broadcast lane, a window of about ``lag.interval`` holding
        the lane's share of that span, so a cut rate goes out evenly, not in one burst a
        second that would stall the loop in its turn."""
        if limits.lag is not None:
            self._pace[_Lane.BROADCAST] = _pace_window(limits.broadcast_per_second, limits.lag)
            if limits.paid_broadcast_per_second:
                self._pace[_Lane.PAID] = _pace_window(limits.paid_broadcast_per_second, limits.lag)
        self._paused: dict[ChatId, float] = {}
        self._paused_all = -math.inf
        self._queued = 0
        self._in_flight = 0
        self._granted = dict.fromkeys(Priority, 0)
        self._waited = dict.fromkeys(Priority, 0.0)
        self._max_wait = dict.fromkeys(Priority, 0.0)
        self._rate_limited = 0
        self._prune_at = _PRUNE_AT

    # -- the queue -------------------------------------------------------------------------------
    def submit(
        self,
        priority: Priority,
        target: Target,
        now: float,
        *,
        rank: int | None = None,
        paid: bool = False,
        seq: int | None = None,
    ) -> Call:
        """Queues a call; pass the ``seq`` of an earlier grant to keep its place (after a 429)."""
        call = Call(
            priority=Priority(priority),
            target=target,
            rank=DEFAULT_RANK if rank is None else rank,
            seq=next(self._seq) if seq is None else seq,
            paid=paid and self._paid is not None,
            submitted_at=now,
        )
        queue = self._queues.get(target)
        if queue is None:
            queue = self._queues[target] = _Queue(target)
        heapq.heappush(queue.calls, (call.order, call))
        self._queued += 1
        if queue.where is _Where.NOWHERE or queue.head() is call:
            # A new best call moves the queue up its ready heap, or out of a wait that was
            # only its old head's (a board edit may use the group's reserve, a card may not).
            self._place(queue, now)
        return call

    def cancel(self, call: Call) -> None:
        """Withdraws a call that was not granted (its caller gave up)."""
        if call.granted_at is None and not call.cancelled:
            call.cancelled = True
            self._queued -= 1

    def _place(self, queue: _Queue, now: float) -> None:
        """Puts a queue where it waits now (its chat's budget decides), with a fresh token."""
        queue.token = token = next(self._tokens)
        head = queue.head()
        if head is None:
            queue.where = _Where.NOWHERE
            del self._queues[queue.target]
            return
        target = queue.target
        free = self._chat_free_at(target, now, head)
        if free is None:
            queue.where = _Where.RELEASE
            assert target.chat_id is not None  # noqa: S101 - only a group waits for a release
            self._awaiting_release.setdefault(target.chat_id, set()).add(target)
        elif free <= now:
            queue.where = _Where.READY
            heapq.heappush(self._ready[self._lane(head)], (head.order, token, target))
        else:
            queue.where = _Where.TIMED
            heapq.heappush(self._timed, (free, token, target))

    def _lane(self, call: Call) -> _Lane:
        if call.paid:
            return _Lane.PAID
        return _Lane.BROADCAST if call.priority is Priority.BROADCAST else _Lane.NORMAL

    def _live(self, token: int, target: Target) -> _Queue | None:
        queue = self._queues.get(target)
        return queue if queue is not None and queue.token == token else None

    # -- budgets ---------------------------------------------------------------------------------
    def _group(self, chat_id: ChatId) -> _Window:
        window = self._groups.get(chat_id)
        if window is None:
            window = self._groups[chat_id] = _Window(
                self.limits.group_calls, self.limits.group_window
            )
        return window

    def _ranked_window(self, chat_id: ChatId) -> _Window:
        window = self._ranked.get(chat_id)
        if window is None:
            limits = self.limits
            window = self._ranked[chat_id] = _Window(
                limits.group_calls - limits.group_reserve, limits.group_window
            )
        return window

    def _ranked_call(self, call: Call) -> bool:
        """Whether the call counts against its group's share for ranked calls."""
        return call.rank > DEFAULT_RANK and self.limits.group_reserve > 0

    def _private(self, chat_id: ChatId) -> _Window:
        window = self._privates.get(chat_id)
        if window is None:
            limits = self.limits
            window = self._privates[chat_id] = _Window(
                limits.private_burst, limits.private_burst / limits.private_per_second
            )
        return window

    def _chat_free_at(self, target: Target, now: float, head: Call) -> float | None:
        """When the target's own budget and pause allow its ``head`` call (None: only a
        release). Ranked calls into a group also need room in the group's ranked share."""
        if target.chat_id is None:
            return now
        free: float | None = now
        if target.kind is TargetKind.GROUP:
            free = self._group(target.chat_id).free_at(now)
            if free is not None and self._ranked_call(head):
                ranked = self._ranked_window(target.chat_id).free_at(now)
                free = None if ranked is None else max(free, ranked)
        elif target.kind is TargetKind.PRIVATE:
            free = self._private(target.chat_id).free_at(now)
        pause = self._paused.get(target.chat_id, now)
        return None if free is None else max(free, pause, now)

    def _shared_windows(self, lane: _Lane, now: float) -> list[_Window] | None:
        """The shared windows a call of the lane would hold, or None when one is full."""
        if lane is _Lane.PAID:
            assert self._paid is not None  # noqa: S101 - only paid budgets fill this lane
            windows = [self._paid]
        elif not self._overall.has_room(now):
            return None
        elif lane is _Lane.BROADCAST:
            windows = [self._overall, self._broadcast]
        else:
            return [self._overall]
        pace = self._pace.get(lane)
        if pace is not None:
            windows.append(pace)
        return windows if all(w.has_room(now) for w in windows) else None

    def _shared_free_at(self, lane: _Lane, now: float) -> float | None:
        """When the lane's shared budgets allow a call (None: only a release)."""
        if lane is _Lane.PAID:
            assert self._paid is not None  # noqa: S101 - only paid budgets fill this lane
            windows = [self._paid]
        elif lane is _Lane.BROADCAST:
            windows = [self._overall, self._broadcast]
        else:
            return self._overall.free_at(now)
        pace = self._pace.get(lane)
        if pace is not None:
            windows.append(pace)
        free = now
        for window in windows:
            at = window.free_at(now)
            if at is None:
                return None
            free = max(free, at)
        return free

    # -- granting --------------------------------------------------------------------------------
    def _wake_timed(self, now: float) -> None:
        while self._timed and self._timed[0][0] <= now:
            _, token, target = heapq.heappop(self._timed)
            queue = self._live(token, target)
            if queue is not None:
                self._place(queue, now)

    def _top(self, lane: _Lane, now: float) -> tuple[_Queue, Call] | None:
        """The lane's best queue whose chat may take a call now (others are re-placed)."""
        heap = self._ready[lane]
        while heap:
            order, token, target = heap[0]
            queue = self._live(token, target)
            if queue is None:
                heapq.heappop(heap)
                continue
            head = queue.head()
            if head is None or head.order != order or self._chat_free_at(target, now, head) != now:
                heapq.heappop(heap)  # cancelled, overtaken or paused meanwhile: wait elsewhere
                self._place(queue, now)
                continue
            return queue, head
        return None

    def grant(self, now: float) -> list[Call]:
        """Grants every call that may go at ``now``, best first; the caller sends them."""
        if now < self._paused_all:
            return []
        self._wake_timed(now)
        granted: list[Call] = []
        open_lanes = set(_Lane)
        while open_lanes:
            best: tuple[_Order, _Lane, _Queue, Call] | None = None
            for lane in sorted(open_lanes):
                top = self._top(lane, now)
                if top is not None and (best is None or top[1].order < best[0]):
                    best = (top[1].order, lane, *top)
            if best is None:
                break
            _, lane, queue, call = best
            windows = self._shared_windows(lane, now)
            if windows is None:  # every call of this lane needs the budget that is full
                open_lanes.discard(lane)
                if lane is not _Lane.PAID and not self._overall.has_room(now):
                    open_lanes -= {_Lane.NORMAL, _Lane.BROADCAST}
                continue
            heapq.heappop(self._ready[lane])
            self._take(queue, call, windows, now)
            self._place(queue, now)
            granted.append(call)
        self._prune(now)
        return granted

    def _take(self, queue: _Queue, call: Call, windows: list[_Window], now: float) -> None:
        heapq.heappop(queue.calls)
        target = queue.target
        if target.chat_id is not None and target.kind is TargetKind.GROUP:
            windows = [*windows, self._group(target.chat_id)]
            if self._ranked_call(call):
                windows.append(self._ranked_window(target.chat_id))
        elif target.chat_id is not None and target.kind is TargetKind.PRIVATE:
            windows = [*windows, self._private(target.chat_id)]
        for window in windows:
            window.take()
        call.windows = windows
        call.granted_at = now
        self._queued -= 1
        self._in_flight += 1
        wait = now - call.submitted_at
        self._granted[call.priority] += 1
        self._waited[call.priority] += wait
        self._max_wait[call.priority] = max(self._max_wait[call.priority], wait)

    def release(self, call: Call, now: float) -> None:
        """The call's answer came back (or it failed): its window slots start to expire."""
        if call.granted_at is None or call.released:
            return
        call.released = True
        self._in_flight -= 1
        for window in call.windows:
            window.done(now)
        chat_id = call.target.chat_id
        if call.target.kind in (TargetKind.GROUP, TargetKind.PRIVATE) and chat_id is not None:
            for target in self._awaiting_release.pop(chat_id, ()):
                queue = self._queues.get(target)
                if queue is not None and queue.where is _Where.RELEASE:
                    self._place(queue, now)

    @property
    def broadcast_share(self) -> float:
        """The share of their configured rates the broadcast lanes get now."""
        return self._broadcast_share

    def set_broadcast_share(self, share: float) -> None:
        """Caps the broadcast and paid-broadcast windows at ``share`` of their rates (never
        below ``lag.min_per_second``, or the configured rate if lower; one call at least).

        Classes 1-4 keep their budgets. A smaller cap holds new grants until the lane's
        slots in the last second fall below it; call :meth:`grant` after raising it."""
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        self._broadcast_share = share
        least = self.limits.lag.min_per_second if self.limits.lag is not None else 1
        rates = {_Lane.BROADCAST: self.limits.broadcast_per_second}
        self._broadcast.limit = _capped(self.limits.broadcast_per_second, share, least)
        if self._paid is not None and self.limits.paid_broadcast_per_second is not None:
            self._paid.limit = _capped(self.limits.paid_broadcast_per_second, share, least)
            rates[_Lane.PAID] = self._paid.limit
        rates[_Lane.BROADCAST] = self._broadcast.limit
        if self.limits.lag is not None:
            for lane, rate in rates.items():
                pace = self._pace[lane]
                pace.limit, pace.span = _pace_of(rate, self.limits.lag)

    def penalise(self, target: Target, until: float) -> None:
        """A 429: nothing more goes to the target's chat (or at all, without one) until then."""
        self._rate_limited += 1
        if target.chat_id is None:
            self._paused_all = max(self._paused_all, until)
        else:
            self._paused[target.chat_id] = max(self._paused.get(target.chat_id, until), until)

    def note_rate_limited(self) -> None:
        """Counts a 429 that paused nothing (the governor is switched off)."""
        self._rate_limited += 1

    def next_wakeup(self, now: float) -> float | None:
        """The earliest time a waiting call could be granted (None: nothing waits on time).

        Call it after :meth:`grant` at the same ``now``; it may be early, never late.
        """
        if not self._queued:
            return None
        if now < self._paused_all:
            return self._paused_all
        while self._timed and self._live(self._timed[0][1], self._timed[0][2]) is None:
            heapq.heappop(self._timed)
        times = [self._timed[0][0]] if self._timed else []
        for lane, heap in self._ready.items():
            while heap and self._live(heap[0][1], heap[0][2]) is None:
                heapq.heappop(heap)
            if heap:
                free = self._shared_free_at(lane, now)
                if free is not None:
                    times.append(free)
        return min(times) if times else None

    # -- house-keeping ---------------------------------------------------------------------------
    def _prune(self, now: float) -> None:
        """Forgets idle chats once there are many (a broadcast touches thousands)."""
        if len(self._groups) + len(self._privates) + len(self._paused) <= self._prune_at:
            return
        waiting = {t.chat_id for t in self._queues}
        for chats in (self._groups, self._ranked, self._privates):
            for chat_id in [c for c, b in chats.items() if c not in waiting and b.idle(now)]:
                del chats[chat_id]
        for chat_id in [c for c, until in self._paused.items() if until <= now]:
            del self._paused[chat_id]
        remaining = len(self._groups) + len(self._privates) + len(self._paused)
        self._prune_at = max(_PRUNE_AT, 2 * remaining)

    def stats(self) -> GovernorStats:
        """A snapshot of the counters."""
        return GovernorStats(
            granted=dict(self._granted),
            waited=dict(self._waited),
            max_wait=dict(self._max_wait),
            rate_limited=self._rate_limited,
            queued=self._queued,
            in_flight=self._in_flight,
            broadcast_share=self._broadcast_share,
        )


def _pace_of(rate: int, policy: LagPolicy) -> tuple[int, float]:
    """The pace window's (limit, span) for ``rate`` calls a second."""
    limit = max(1, round(rate * policy.interval))
    return limit, limit / rate


def _pace_window(rate: int, policy: LagPolicy) -> _Window:
    return _Window(*_pace_of(rate, policy))


def _capped(rate: int, share: float, least: int) -> int:
    return max(min(rate, least), round(rate * share), 1)


class RateGovernor:
    """The scheduler on an event loop: ``acquire`` waits for a grant, ``release`` returns it.

    One timer task sleeps (with the injected ``sleep``) until the scheduler's next wake-up;
    submits, releases and 429s re-run the scheduler at once. Use one governor per bot.

    With ``limits.lag`` set, the first broadcast call starts a watch of the event loop's lag
    (its own ``lag_monotonic``/``lag_sleep`` pair: the loop's real time by default, even when
    the governor's clock is a test's) that feeds :class:`LagThrottle` and applies its share to
    the scheduler; it stops after ``lag.idle_stop`` seconds without broadcasts at full share.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        lag_monotonic: Monotonic = time.monotonic,
        lag_sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.scheduler = Scheduler(limits)
        self._monotonic = monotonic
        self._sleep = sleep
        self._waiting: dict[Call, asyncio.Future[None]] = {}
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = math.inf
        self._closed = False
        policy = self.scheduler.limits.lag
        self.throttle = LagThrottle(policy) if policy is not None else None
        self._lag_monotonic = lag_monotonic
        self._lag_sleep = lag_sleep
        self._lag_watch: asyncio.Task[None] | None = None
        self._last_broadcast = -math.inf

    @property
    def limits(self) -> Limits:
        """The budgets this governor keeps."""
        return self.scheduler.limits

    def now(self) -> float:
        """The governor's monotonic time."""
        return self._monotonic()

    async def acquire(
        self,
        priority: Priority,
        target: Target,
        *,
        rank: int | None = None,
        paid: bool = False,
        retry_of: Call | None = None,
    ) -> Call:
        """Waits until the call may be sent; pass the previous grant when sending it again.

        Release the returned call once Telegram answered (``try``/``finally``). After
        :meth:`close` calls are granted at once (nothing is paced while shutting down).
        """
        call = self.scheduler.submit(
            priority,
            target,
            self._monotonic(),
            rank=rank,
            paid=paid,
            seq=None if retry_of is None else retry_of.seq,
        )
        if self.throttle is not None and (call.paid or call.priority is Priority.BROADCAST):
            self._watch_lag()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[call] = future
        if self._closed:
            self._release_all_waiting()
        else:
            self._pump()
        try:
            await future
        except asyncio.CancelledError:
            self._waiting.pop(call, None)
            if call.granted_at is None:
                self.scheduler.cancel(call)
            else:
                self.release(call)
            raise
        return call

    def release(self, call: Call) -> None:
        """Telegram answered the call (or it failed): its slots start to expire."""
        self.scheduler.release(call, self._monotonic())
        self._pump()

    def penalise(self, target: Target, seconds: float) -> None:
        """A 429 with ``retry_after`` = ``seconds``: pause the target's chat (or everything)."""
        self.scheduler.penalise(target, self._monotonic() + max(seconds, 0.0))
        self._pump()

    def note_rate_limited(self) -> None:
        """Counts a 429 seen while the governor is switched off."""
        self.scheduler.note_rate_limited()

    def stats(self) -> GovernorStats:
        """A snapshot of the counters."""
        stats = self.scheduler.stats()
        if self.throttle is None:
            return stats
        return dataclasses.replace(
            stats, lowest_broadcast_share=self.throttle.lowest, lag_cuts=self.throttle.cuts
        )

    @property
    def watching_lag(self) -> bool:
        """Whether the loop-lag watch runs."""
        return self._lag_watch is not None and not self._lag_watch.done()

    def _watch_lag(self) -> None:
        self._last_broadcast = self._lag_monotonic()
        if not self._closed and not self.watching_lag:
            assert self.throttle is not None  # noqa: S101 - watched only with a lag policy
            self.throttle.restart()
            self.scheduler.set_broadcast_share(self.throttle.share)
            self._lag_watch = asyncio.get_running_loop().create_task(self._lag_loop())

    async def _lag_loop(self) -> None:
        """Samples the loop's lag every ``interval`` and applies the throttle's share."""
        throttle = self.throttle
        assert throttle is not None  # noqa: S101 - started only with a lag policy
        policy = throttle.policy
        while not self._closed:
            before = self._lag_monotonic()
            await self._lag_sleep(policy.interval)
            now = self._lag_monotonic()
            share = throttle.observe(now - before - policy.interval, now)
            if share != self.scheduler.broadcast_share:
                raised = share > self.scheduler.broadcast_share
                self.scheduler.set_broadcast_share(share)
                if raised:
                    self._pump()
            if share >= 1.0 and now - self._last_broadcast >= policy.idle_stop:
                return

    def open(self) -> None:
        """Starts pacing (again) after :meth:`close`."""
        self._closed = False

    async def close(self) -> None:
        """Stops the timer and lets every waiting call go (the bot is shutting down)."""
        self._closed = True
        self._release_all_waiting()
        timer, self._timer, self._timer_at = self._timer, None, math.inf
        watch, self._lag_watch = self._lag_watch, None
        for task in (timer, watch):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _release_all_waiting(self) -> None:
        now = self._monotonic()
        while True:
            granted = self.scheduler.grant(now)
            for call in granted:
                self._resolve(call)
            leftover = [c for c in self._waiting if c.granted_at is None]
            if not leftover:
                return
            if not granted:  # budgets are full: let the rest go unpaced
                for call in leftover:
                    self.scheduler.cancel(call)
                    future = self._waiting.pop(call)
                    if not future.done():
                        future.set_result(None)
                return

    def _resolve(self, call: Call) -> None:
        future = self._waiting.pop(call, None)
        if future is None or future.done():
            self.scheduler.release(call, self._monotonic())  # nobody will send it
        else:
            future.set_result(None)

    def _pump(self) -> None:
        if self._closed:
            return
        now = self._monotonic()
        for call in self.scheduler.grant(now):
            self._resolve(call)
        wake = self.scheduler.next_wakeup(now)
        if wake is None or (self._timer is not None and self._timer_at <= wake):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = wake
        self._timer = asyncio.get_running_loop().create_task(self._wake(max(wake - now, 0.0)))

    async def _wake(self, delay: float) -> None:
        await self._sleep(max(delay, _MIN_TIMER))
        self._timer, self._timer_at = None, math.inf
        self._pump()
