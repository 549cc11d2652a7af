"""Every Bot API call passes the governor through PTB's rate-limiter seam (handler tier).

The bot talks to a ``RecordingRequest``; the governor runs on ``VirtualTime``, so waits are
measured in controlled seconds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import CallbackContext, CommandHandler

from bot.double.recording import HandlerHarness
from bot.services.governor import NO_CHAT, Limits, RateGovernor, Target
from bot.services.outbox_kinds import Priority
from handlers.ratelimit import (
    GovernedRateLimiter,
    RateLimitArgs,
    governor_of,
    is_read_only,
    priority_of,
    target_of,
)
from tests.fakes.virtual_time import VirtualTime

OPERATORS = -1001234567890
Context = CallbackContext[Any, Any, Any, Any]


# -- which budget, how urgent --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("endpoint", "data", "target", "priority"),
    [
        ("sendMessage", {"chat_id": 42}, Target.private(42), Priority.CITIZEN_REPLY),
        ("sendMessage", {"chat_id": OPERATORS}, Target.group(OPERATORS), Priority.OPERATOR),
        ("createForumTopic", {"chat_id": str(OPERATORS)}, Target.group(OPERATORS), 3),
        ("editForumTopic", {"chat_id": OPERATORS}, Target.group(OPERATORS), Priority.OPERATOR),
        ("pinChatMessage", {"chat_id": OPERATORS}, Target.group(OPERATORS), Priority.OPERATOR),
        ("deleteMessage", {"chat_id": 42}, Target.private(42), Priority.CITIZEN_REPLY),
        ("copyMessage", {"chat_id": 42, "from_chat_id": -5}, Target.private(42), 1),
        ("sendMessage", {"chat_id": "@siaga_info"}, Target.group("@siaga_info"), 3),
        ("answerCallbackQuery", {"callback_query_id": "7"}, NO_CHAT, Priority.CITIZEN_REPLY),
        ("editMessageText", {"inline_message_id": "x"}, NO_CHAT, Priority.CITIZEN_REPLY),
        ("closeForumTopic", {"chat_id": OPERATORS}, Target.unmetered(OPERATORS), 3),
    ],
)
def test_call_spends_its_chats_budget_with_a_default_class_when_no_args_are_given(
    endpoint: str, data: dict[str, Any], target: Target, priority: int
) -> None:
    assert target_of(endpoint, data) == target
    assert priority_of(target, None) == (priority, None)


def test_caller_sets_class_and_rank_when_rate_limit_args_are_given() -> None:
    args: RateLimitArgs = {"priority": 2, "rank": 1}
    assert priority_of(Target.group(OPERATORS), args) == (Priority.RELAY, 1)
    assert priority_of(Target.private(42), {"rank": 3}) == (Priority.CITIZEN_REPLY, 3)


@pytest.mark.parametrize(
    ("endpoint", "read_only"),
    [
        ("getMe", True),
        ("getChat", True),
        ("getChatMember", True),
        ("getFile", True),
        ("sendMessage", False),
        ("answerCallbackQuery", False),
    ],
)
def test_only_get_methods_bypass_the_budgets_when_classified(
    endpoint: str, read_only: bool
) -> None:
    assert is_read_only(endpoint) is read_only


# -- through PTB ---------------------------------------------------------------------------------
def governed_harness(
    time: VirtualTime, *, limits: Limits | None = None, enabled: bool = True
) -> HandlerHarness:
    governor = RateGovernor(limits, monotonic=time.monotonic, sleep=time.sleep)
    limiter = GovernedRateLimiter(governor, enabled=enabled)
    return HandlerHarness.build(lambda builder: builder.rate_limiter(limiter))


def governor(harness: HandlerHarness) -> RateGovernor:
    found = governor_of(harness.app.bot)
    assert found is not None
    return found


async def test_citizen_reply_arrives_once_after_the_wait_when_it_draws_a_429() -> None:
    time = VirtualTime()
    answered_at: list[float] = []

    async def start(update: Update, context: Context) -> None:
        """Greets the citizen."""
        assert update.effective_message is not None
        await update.effective_message.reply_text("Halo, ini Siaga112.")
        answered_at.append(time.now)

    harness = governed_harness(time)
    harness.app.add_handler(CommandHandler("start", start))
    async with harness:
        budi = harness.add_user(first_name="Budi")
        harness.request.fail_next("sendMessage", 429, retry_after=3)

        async def citizen_writes() -> None:
            await budi.send_command("start")  # raises if the handler let an error escape

        await time.run(citizen_writes())

    sends = harness.request.calls_to("sendMessage")
    assert [call.ok for call in sends] == [False, True]  # the same call, sent again
    assert harness.request.sent_texts(budi.id) == ["Halo, ini Siaga112."]  # exactly once
    assert answered_at == [3.0]  # after Telegram's retry_after, not before
    stats = governor(harness).stats()
    assert stats.rate_limited == 1
    assert stats.granted[Priority.CITIZEN_REPLY] == 2


async def test_relay_is_sent_however_often_it_draws_429_when_its_class_is_2() -> None:
    time = VirtualTime()
    harness = governed_harness(time)
    async with harness:
        harness.request.fail_next("sendMessage", 429, retry_after=2, count=5)

        async def relay() -> None:
            await harness.app.bot.send_message(
                OPERATORS, "Warga: tolong cepat", rate_limit_args={"priority": Priority.RELAY}
            )

        await time.run(relay())

    assert [call.ok for call in harness.request.calls_to("sendMessage")] == [False] * 5 + [True]
    assert time.now == 10.0


async def test_operator_card_reaches_the_caller_as_429_when_retries_are_used_up() -> None:
    time = VirtualTime()
    harness = governed_harness(time)
    async with harness:
        harness.request.fail_next("sendMessage", 429, retry_after=5, count=3)
        raised: list[BaseException] = []

        async def card() -> None:
            try:
                await harness.app.bot.send_message(OPERATORS, "SMG-261127-0001 FIRE")
            except RetryAfter as exc:
                raised.append(exc)

        await time.run(card())

    assert len(raised) == 1  # the outbox gets it back and reschedules the row
    assert len(harness.request.calls_to("sendMessage")) == 3  # once, then max_retries = 2
    assert time.now == 10.0
    assert governor(harness).stats().rate_limited == 3


async def test_citizen_reply_goes_before_a_broadcast_when_both_wait_for_the_overall_budget() -> (
    None
):
    time = VirtualTime()
    harness = governed_harness(time, limits=Limits(overall_calls=1))
    async with harness:
        bot = harness.app.bot
        await bot.send_message(OPERATORS, "filler")  # takes the only slot of this second

        async def broadcast() -> None:
            await bot.send_message(
                501, "Peringatan banjir", rate_limit_args={"priority": Priority.BROADCAST}
            )

        async def reply() -> None:
            await time.sleep(0.5)  # asks later than the broadcast
            await bot.send_message(42, "Laporan diterima")

        await time.run(broadcast(), reply())

    texts = [call.params["text"] for call in harness.request.calls_to("sendMessage")]
    assert texts == ["filler", "Laporan diterima", "Peringatan banjir"]
    assert time.now == 2.0


async def test_read_only_call_is_answered_at_once_when_everything_is_paused() -> None:
    time = VirtualTime()
    harness = governed_harness(time)
    async with harness:
        governor(harness).penalise(NO_CHAT, 100.0)

        me = await asyncio.wait_for(harness.app.bot.get_me(), timeout=1)
        chat = await asyncio.wait_for(harness.app.bot.get_chat(42), timeout=1)

    assert me.is_bot
    assert chat.id == 42
    assert time.now == 0.0


@pytest.mark.parametrize(("enabled", "last_sent_at"), [(True, 60.0), (False, 0.0)])
async def test_group_messages_are_paced_only_when_the_governor_is_on(
    enabled: bool, last_sent_at: float
) -> None:
    time = VirtualTime()
    harness = governed_harness(time, enabled=enabled)
    async with harness:
        sent_at: list[float] = []

        async def card(n: int) -> None:
            await harness.app.bot.send_message(OPERATORS, f"card {n}")
            sent_at.append(time.now)

        await time.run(*(card(n) for n in range(21)))

    assert len(harness.request.calls_to("sendMessage")) == 21
    assert max(sent_at) == last_sent_at


async def test_429_reaches_the_caller_at_once_when_the_governor_is_off() -> None:
    time = VirtualTime()
    harness = governed_harness(time, enabled=False)
    async with harness:
        harness.request.fail_next("sendMessage", 429, retry_after=3)
        with pytest.raises(RetryAfter):
            await harness.app.bot.send_message(42, "Halo")

    assert len(harness.request.calls_to("sendMessage")) == 1
    assert time.now == 0.0
    assert governor(harness).stats().rate_limited == 1
