"""Every Bot API call the bot makes passes the rate governor: PTB's ``BaseRateLimiter`` seam.

``ExtBot._do_post`` hands each call (replies included; ``getUpdates`` never) to
:meth:`GovernedRateLimiter.process_request`, which reads where it goes and how urgent it is,
waits for the governor's grant, sends it and answers Telegram's 429 by waiting
``retry_after`` and sending the same call again.

**Which budget a call spends** (from ``data["chat_id"]``):

* calls that post into a chat spend that chat's budget and the overall one: ``send*``,
  ``copy*``, ``forward*``, ``edit*`` (``editForumTopic`` included), ``createForumTopic``,
  ``pin*``, ``unpin*``, ``deleteMessage(s)``, ``stopPoll``, ``stopMessageLiveLocation``. A
  negative id or an ``@username`` is a group, supergroup or channel (20 a minute); a positive
  id is a private chat (a short burst, then 1 a second);
* other calls spend only the overall budget: those without a chat (``answerCallbackQuery``,
  ``setMyCommands``, an inline ``editMessageText``) and chat administration such as
  ``closeForumTopic``. A 429 on a call with a chat pauses that chat; without one, everything;
* read-only calls bypass the budgets: every method named ``get*`` (``getMe``, ``getChat``,
  ``getChatMember``, ``getChatAdministrators``, ``getFile``, ``getMyCommands``, ...).
  Telegram's flood control counts messages, and a slow ``getChat`` must never queue behind a
  surge.

**How urgent** (``rate_limit_args={"priority": Priority.RELAY, "rank": 1}``, see
:class:`RateLimitArgs`): without it, a private chat is a citizen reply (class 1), a group is
operator traffic (class 3), no chat (a callback answer) is class 1. Classes 1 and 2 are
retried until Telegram takes them (a citizen's reply is never dropped for a 429); classes
3 to 5 are retried ``max_retries`` times and then RetryAfter reaches the caller, so the
durable outbox reschedules the row. Other errors pass through untouched.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any, TypedDict

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter, ExtBot

from bot.services.governor import NO_CHAT, Call, ChatId, RateGovernor, Target
from bot.services.outbox_kinds import Priority
from handlers.http import bulk_calls

log = logging.getLogger(__name__)

_CHAT_PREFIXES = ("send", "copy", "forward", "edit", "pin", "unpin")
_CHAT_METHODS = frozenset(
    m.lower()
    for m in (
        "createForumTopic",
        "deleteMessage",
        "deleteMessages",
        "stopPoll",
        "stopMessageLiveLocation",
    )
)


class RateLimitArgs(TypedDict, total=False):
    """What a caller may tell the governor: ``bot.send_message(..., rate_limit_args=...)``."""

    priority: int
    """A :class:`~bot.services.outbox_kinds.Priority` (1 citizen reply ... 5 broadcast)."""
    rank: int
    """Order within the class, lower first (the outbox passes the ticket's priority)."""


Answer = bool | dict[str, Any] | list[dict[str, Any]]
"""What a Bot API call returns (PTB's JSONDict is private)."""


def is_read_only(endpoint: str) -> bool:
    """Whether a Bot API method only reads (it bypasses the budgets)."""
    return endpoint.lower().startswith("get")


def posts_into_chat(endpoint: str) -> bool:
    """Whether a Bot API method posts into (or changes a message of) its ``chat_id``."""
    method = endpoint.lower()
    return method.startswith(_CHAT_PREFIXES) or method in _CHAT_METHODS


def _chat_id(data: Mapping[str, Any]) -> ChatId | None:
    value = data.get("chat_id")
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    try:
        return int(text)
    except ValueError:
        return text  # an @username: a channel or supergroup


def _is_group(chat_id: ChatId) -> bool:
    return isinstance(chat_id, str) or chat_id < 0


def target_of(endpoint: str, data: Mapping[str, Any]) -> Target:
    """Which budget a call spends and what a 429 on it pauses."""
    chat_id = _chat_id(data)
    if chat_id is None:
        return NO_CHAT
    if not posts_into_chat(endpoint):
        return Target.unmetered(chat_id)
    return Target.group(chat_id) if _is_group(chat_id) else Target.private(chat_id)


def priority_of(target: Target, args: RateLimitArgs | None) -> tuple[Priority, int | None]:
    """The class and rank of a call: the caller's, else a default from its chat."""
    rank = args.get("rank") if args else None
    if args and "priority" in args:
        return Priority(args["priority"]), rank
    chat_id = target.chat_id
    if chat_id is not None and _is_group(chat_id):
        return Priority.OPERATOR, rank
    return Priority.CITIZEN_REPLY, rank


def _seconds(retry_after: float | timedelta) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after


class GovernedRateLimiter(BaseRateLimiter[RateLimitArgs]):
    """Paces every call through one :class:`RateGovernor` (``enabled=False``: straight through,
    no pacing and no 429 retry; 429s are still counted)."""

    __slots__ = ("enabled", "governor", "max_retries")

    def __init__(
        self, governor: RateGovernor, *, enabled: bool = True, max_retries: int = 2
    ) -> None:
        self.governor = governor
        self.enabled = enabled
        self.max_retries = max_retries
        """429 retries of classes 3-5 before RetryAfter reaches the caller."""

    async def initialize(self) -> None:
        """Starts pacing."""
        self.governor.open()

    async def shutdown(self) -> None:
        """Stops the governor's timer; calls still waiting go at once."""
        await self.governor.close()

    async def process_request(  # noqa: PLR0917 - the signature of BaseRateLimiter's method
        self,
        callback: Callable[..., Coroutine[Any, Any, Answer]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: RateLimitArgs | None,
    ) -> Answer:
        """Waits for the governor's grant, sends, and rides out 429s (see the module).
        Broadcast copies go through the HTTP client's broadcast pool (``bulk_calls``)."""
        bulk = bool(rate_limit_args and rate_limit_args.get("priority") == Priority.BROADCAST)
        with bulk_calls() if bulk else contextlib.nullcontext():
            if not self.enabled:
                try:
                    return await callback(*args, **kwargs)
                except RetryAfter:
                    self.governor.note_rate_limited()
                    raise
            if is_read_only(endpoint):
                return await callback(*args, **kwargs)
            target = target_of(endpoint, data)
            priority, rank = priority_of(target, rate_limit_args)
            paid = bool(data.get("allow_paid_broadcast"))
            previous: Call | None = None
            for attempt in itertools.count(1):
                call = await self.governor.acquire(
                    priority, target, rank=rank, paid=paid, retry_of=previous
                )
                try:
                    return await callback(*args, **kwargs)
                except RetryAfter as exc:
                    seconds = _seconds(exc.retry_after)
                    self.governor.penalise(target, seconds)
                    if priority > Priority.RELAY and attempt > self.max_retries:
                        log.warning(
                            "%s (class %d, %s) drew 429 %d times; handing it back to the caller",
                            endpoint, priority, target.kind, attempt,
                        )  # fmt: skip
                        raise
                    log.warning(
                        "%s (class %d, %s) drew 429: sending it again in %.1f s",
                        endpoint, priority, target.kind, seconds,
                    )  # fmt: skip
                    previous = call
                finally:
                    self.governor.release(call)
        raise AssertionError("unreachable")  # pragma: no cover


def governor_of(bot: ExtBot[Any]) -> RateGovernor | None:
    """The governor pacing ``bot`` (read its ``stats()``), or None when the bot has none."""
    limiter = bot.rate_limiter
    return limiter.governor if isinstance(limiter, GovernedRateLimiter) else None
