"""Telegram's flood control, as the Bot API double applies it once a test switches it on.

Telegram refuses calls beyond about 30 a second overall, 20 a minute into one group, and
(sustained) about one a second into one private chat. The refusal is HTTP 429::

    {"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7",
     "parameters": {"retry_after": 7}}

``FloodControl`` models these limits as sliding windows ("at most ``calls`` accepted calls in
any ``seconds``") over an injected monotonic clock: real time in flow tests, a fake clock in
unit tests. Only sending and editing methods count (``send*``, ``copyMessage(s)``,
``forwardMessage(s)``, ``edit*``, forum topics, pins, deletions, ...); ``getUpdates``,
``get*``, ``answerCallbackQuery`` and ``setMyCommands`` never do. A refused call uses no
budget, and ``retry_after`` is the whole seconds until every full window has a free place
(at least 1), so a client that waits exactly that long is accepted.

``FloodStats`` keeps what tests and benchmarks ask afterwards: calls and 429s per method,
429s per chat, and every call as ``(time, method, chat_id, accepted)``.

Switch it on through ``SimulatedTelegram.flood_control(...)``, ``POST /_control/flood`` or
``python -m bot.double.fake_bot_api --flood-control``; all three build ``FloodLimits``
with ``FloodLimits.of``.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Methods that count against the limits besides send*, edit*, copyMessage(s), forwardMessage(s).
_COUNTED_METHODS = frozenset(
    [
        "createforumtopic",
        "closeforumtopic",
        "reopenforumtopic",
        "deleteforumtopic",
        "closegeneralforumtopic",
        "reopengeneralforumtopic",
        "pinchatmessage",
        "unpinchatmessage",
        "unpinallchatmessages",
        "unpinallforumtopicmessages",
        "deletemessage",
        "deletemessages",
        "stopmessagelivelocation",
        "stoppoll",
        "setmessagereaction",
    ]
)
_COUNTED_PREFIXES = ("send", "edit", "copymessage", "forwardmessage")


def counts_against_limits(method: str) -> bool:
    """Whether a call of ``method`` uses flood-control budget (case-insensitive)."""
    name = method.lower()
    return name in _COUNTED_METHODS or name.startswith(_COUNTED_PREFIXES)


@dataclass(frozen=True)
class Window:
    """At most ``calls`` accepted calls in any ``seconds``."""

    calls: int
    seconds: float

    def __post_init__(self) -> None:
        if self.calls < 1 or self.seconds <= 0:
            raise ValueError(f"a window needs calls >= 1 and seconds > 0, not {self!r}")

    @classmethod
    def parse(cls, text: str) -> Window:
        """``"3/3"``: three calls in three seconds."""
        calls, slash, seconds = text.partition("/")
        if not slash:
            raise ValueError(f"expected CALLS/SECONDS, not {text!r}")
        return cls(int(calls), float(seconds))

    def __str__(self) -> str:
        return f"{self.calls}/{self.seconds:g}"


GROUP_WINDOW = Window(20, 60.0)
"""Telegram's limit into one group or supergroup: 20 messages a minute."""
OVERALL_WINDOW = Window(30, 1.0)
"""Telegram's overall limit for one bot: 30 messages a second."""
PRIVATE_WINDOW = Window(3, 3.0)
"""A private chat: a burst of three, then one a second (off unless asked for)."""


@dataclass(frozen=True)
class FloodLimits:
    """Which windows apply; ``None`` switches one off."""

    group: Window | None = GROUP_WINDOW
    """Per group, supergroup or channel (negative chat ids)."""
    overall: Window | None = OVERALL_WINDOW
    """All counted calls of the bot together."""
    private: Window | None = None
    """Per private chat (positive chat ids); off by default."""

    @classmethod
    def of(
        cls,
        *,
        group_per_minute: int | None = GROUP_WINDOW.calls,
        overall_per_second: int | None = OVERALL_WINDOW.calls,
        private: Window | str | tuple[int, float] | list[Any] | None = None,
    ) -> FloodLimits:
        """The limits from the simple knobs every entry point takes (``None``: that limit
        off; ``private`` as a ``Window``, ``"3/3"`` or ``[3, 3]``)."""
        return cls(
            group=Window(group_per_minute, 60.0) if group_per_minute is not None else None,
            overall=Window(overall_per_second, 1.0) if overall_per_second is not None else None,
            private=_window(private),
        )

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> FloodLimits:
        """From a ``/_control/flood`` body such as ``{"group_per_minute": 20, "private": [3, 3]}``
        (missing keys take Telegram's defaults)."""
        unknown = set(body) - {"group_per_minute", "overall_per_second", "private"}
        if unknown:
            raise ValueError(f"unknown flood-control settings: {sorted(unknown)}")
        group = body.get("group_per_minute", GROUP_WINDOW.calls)
        overall = body.get("overall_per_second", OVERALL_WINDOW.calls)
        return cls.of(
            group_per_minute=int(group) if group is not None else None,
            overall_per_second=int(overall) if overall is not None else None,
            private=body.get("private"),
        )

    @classmethod
    def parse(cls, spec: str) -> FloodLimits:
        """From ``--flood-control`` text: ``""`` for Telegram's defaults, or comma-separated
        settings such as ``group_per_minute=20,overall_per_second=30,private=3/3``
        (``off`` switches one limit off)."""
        body: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, equals, value = item.partition("=")
            if not equals:
                raise ValueError(f"expected KEY=VALUE, not {item!r}")
            body[key.strip()] = None if value.strip() in {"off", "none"} else value.strip()
        return cls.from_json(body)

    def to_json(self) -> dict[str, Any]:
        """As the control API shows it: each window as ``[calls, seconds]`` or ``null``."""
        return {
            name: [window.calls, window.seconds] if window is not None else None
            for name, window in (
                ("group", self.group),
                ("overall", self.overall),
                ("private", self.private),
            )
        }


def _window(value: Window | str | tuple[int, float] | list[Any] | None) -> Window | None:
    if value is None or isinstance(value, Window):
        return value
    if isinstance(value, str):
        return Window.parse(value)
    calls, seconds = value
    return Window(int(calls), float(seconds))


@dataclass(frozen=True)
class FloodEvent:
    """One call as flood control saw it (``time`` on the flood clock, in seconds)."""

    time: float
    method: str
    chat_id: int | None
    accepted: bool


@dataclass
class FloodStats:
    """What flood control saw: every call the bot made while it was on."""

    events: list[FloodEvent] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    """Calls per method (accepted and refused)."""
    refused: Counter[str] = field(default_factory=Counter)
    """429s per method."""
    refused_by_chat: Counter[int | None] = field(default_factory=Counter)
    """429s per chat id (``None``: a call without a chat)."""

    def record(self, event: FloodEvent) -> None:
        self.events.append(event)
        self.calls[event.method] += 1
        if not event.accepted:
            self.refused[event.method] += 1
            self.refused_by_chat[event.chat_id] += 1

    @property
    def total_calls(self) -> int:
        return len(self.events)

    @property
    def total_refused(self) -> int:
        return sum(self.refused.values())

    @property
    def refused_share(self) -> float:
        """429s as a share of all calls (0.0 without calls)."""
        return self.total_refused / self.total_calls if self.events else 0.0

    def last_accepted(
        self, method: str | None = None, chat_id: int | None = None
    ) -> FloodEvent | None:
        """The newest accepted call (of ``method``, into ``chat_id``), e.g. the moment the
        last operator card arrived."""
        return next(
            (
                event
                for event in reversed(self.events)
                if event.accepted
                and (method is None or event.method.lower() == method.lower())
                and (chat_id is None or event.chat_id == chat_id)
            ),
            None,
        )

    def to_json(self) -> dict[str, Any]:
        """As ``GET /_control/flood`` shows it (events as ``[time, method, chat_id, accepted]``)."""
        return {
            "total_calls": self.total_calls,
            "total_refused": self.total_refused,
            "refused_share": self.refused_share,
            "calls": dict(self.calls),
            "refused": dict(self.refused),
            "refused_by_chat": {str(chat): n for chat, n in self.refused_by_chat.items()},
            "events": [[e.time, e.method, e.chat_id, e.accepted] for e in self.events],
        }


class _SlidingWindow:
    """The accepted calls of one scope within its window."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.times: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until this window has room (0 if it has room now)."""
        while self.times and self.times[0] <= now - self.window.seconds:
            self.times.popleft()
        if len(self.times) < self.window.calls:
            return 0.0
        return self.times[0] + self.window.seconds - now

    def take(self, now: float) -> None:
        self.times.append(now)


class FloodControl:
    """Admits or refuses calls under ``FloodLimits`` (see the module docstring)."""

    def __init__(self, limits: FloodLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self.stats = FloodStats()
        self._overall = _SlidingWindow(limits.overall) if limits.overall else None
        self._chats: dict[int, _SlidingWindow] = {}

    def _windows(self, chat_id: int | None) -> list[_SlidingWindow]:
        windows = [self._overall] if self._overall is not None else []
        limit = None
        if chat_id is not None:
            limit = self.limits.private if chat_id > 0 else self.limits.group
        if chat_id is not None and limit is not None:
            scope = self._chats.get(chat_id)
            if scope is None:
                scope = self._chats[chat_id] = _SlidingWindow(limit)
            windows.append(scope)
        return windows

    def admit(self, method: str, chat_id: int | None) -> int | None:
        """Records a call of ``method`` into ``chat_id``: ``None`` if accepted (its budget is
        used), else the ``retry_after`` seconds of the 429 (no budget used)."""
        now = self.clock()
        windows = self._windows(chat_id) if counts_against_limits(method) else []
        wait = max((window.wait(now) for window in windows), default=0.0)
        accepted = wait <= 0
        if accepted:
            for window in windows:
                window.take(now)
        self.stats.record(FloodEvent(now, method, chat_id, accepted))
        return None if accepted else max(1, math.ceil(round(wait, 6)))
