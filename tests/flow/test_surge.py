"""Surges under Telegram's flood control (issues 7 and 8): the real Application against the
double with its limits switched on and the bot's default governor budgets.

Telegram allows 20 calls a minute into one group. A surge of 30-40 tickets needs 80+ calls
into the operators' forum (topic, card, board edits), which at the real pace takes minutes.
So these tests shrink the group window twentyfold IN BOTH the double (20 calls per 3 s) and
the governor (``Limits.group_window`` 3 s, ``TELEGRAM_RATE_GROUP_PER_MINUTE`` unchanged at 20):
the same shape (a budget of 20, spent and refilled by a sliding window), 1/20 of the time.
The overall window (30 a second) and the private chats' window (3 per 3 s, the bot's default
pace of a burst of 3 then 1 a second) are Telegram's. ``bench/operators.py`` runs the
40-ticket surge at Telegram's real limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest_asyncio

from bot.app import Webhook
from bot.config import Settings
from bot.double.botapi_model import StoredMessage
from bot.double.fake_bot_api import FakeBotApi
from bot.double.simulated import SimUser
from tests.flow.conftest import (
    OPERATOR_CHAT,
    TELEGRAM_SHRUNK,
    FakeClock,
    Harness,
    free_port,
    shrunk_governor,
)
from tests.flow.steps import REF, full_gps_report, gps_location, own_contact_and_name, start_report
from tests.flow.steps import tap as tap_step

BOARD_WITHIN = 10.0
"""Issue 8: every submitted ticket is on the queue board within 10 s."""
THINK = 0.5
"""Seconds a citizen of the 40-ticket surge pauses between the parts of a report. At machine
speed 40 overlapping citizens ask for more than Telegram's 30 calls a second overall (each is
paced at 1 a second), and the governor's strict priority then starves the board, topics and
cards (class 3) until the replies (class 1) are done: measured 13.9 s to the board. People
read and tap; with the pauses the replies leave room and the board's target is measured."""
PRIORITY = {"MEDICAL": 1, "FIRE": 1, "SOCIAL": 2, "OTHER": 3}
"""Groups with a single category (no second tap) and the priority of that category."""


async def surge_harness(
    telegram: FakeBotApi,
    make_settings: Callable[..., Settings],
    webhook: Webhook | None = None,
    **overrides: str,
) -> Harness:
    """A running bot with the governor's default budgets (the flow tests' raised private
    budget undone) and the double's flood control on as Telegram's (group window shrunk)."""
    telegram.register_forum(OPERATOR_CHAT, "Operator 112")
    settings = make_settings(
        telegram,
        TELEGRAM_RATE_PRIVATE_BURST="3",
        TELEGRAM_RATE_PRIVATE_PER_SECOND="1",
        **overrides,
    )
    assert settings.rate_group_per_minute == 20
    assert settings.rate_overall_per_second == 30
    h = Harness(telegram, settings, FakeClock(), rate_limiter=shrunk_governor, webhook=webhook)
    await h.start()
    telegram.flood_control(TELEGRAM_SHRUNK)
    return h


@pytest_asyncio.fixture
async def surge(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> AsyncIterator[Harness]:
    async with surging(fake_bot_api, make_settings) as h:
        yield h


@contextlib.asynccontextmanager
async def surging(
    telegram: FakeBotApi, make_settings: Callable[..., Settings], webhook: Webhook | None = None
) -> AsyncIterator[Harness]:
    """:func:`surge_harness`, stopped afterwards, with no handler error."""
    h = await surge_harness(telegram, make_settings, webhook)
    try:
        yield h
    finally:
        if h.application is not None:
            await h.stop()
    assert not h.errors, f"handler errors: {h.errors!r}"


def cards_of(h: Harness, ref: str) -> list[StoredMessage]:
    """The messages inside ticket topics that carry ``ref`` (its card, and any repeat)."""
    topics = h.telegram.topics(OPERATOR_CHAT)
    return [
        m
        for m in h.operator_messages()
        if m.thread_id in topics and m.method == "sendMessage" and ref in (m.text or "")
    ]


def topic_of(h: Harness, ref: str) -> StoredMessage | None:
    """The service message that created ``ref``'s topic (its time is the topic's)."""
    chat = h.telegram.model.chats[OPERATOR_CHAT]
    for thread_id, topic in chat.topics.items():
        if ref in topic.name:
            return chat.messages[thread_id]
    return None


def the_board(h: Harness) -> StoredMessage:
    boards = [
        m for m in h.operator_messages() if m.thread_id is None and "Antrean" in (m.text or "")
    ]
    assert len(boards) == 1, [m.text for m in boards]
    return boards[0]


def on_board_at(board: StoredMessage, ref: str) -> float | None:
    """When ``ref`` first showed on the board (the double's time of that send or edit)."""
    for at, raw in board.versions:
        if ref in str(raw.get("text") or ""):
            return at
    return None


def refused_into(h: Harness, private: bool) -> int:
    stats = h.telegram.flood_stats
    assert stats is not None
    return sum(n for chat, n in stats.refused_by_chat.items() if ((chat or 0) > 0) == private)


async def test_every_citizen_gets_every_reply_and_every_card_arrives_once_when_30_report_at_once(
    surge: Harness,
) -> None:
    await thirty_at_once(surge)


async def test_nothing_is_lost_when_30_report_at_once_through_the_webhook(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> None:
    """The same surge with the updates pushed to PTB's webhook server, as ``siaga112 run
    --webhook-url`` takes them in production (the double pushes 40 at once at most)."""
    webhook = Webhook(url=f"http://127.0.0.1:{free_port()}/telegram", secret="surge-secret-1")
    async with surging(fake_bot_api, make_settings, webhook) as h:
        await thirty_at_once(h)
        assert not fake_bot_api.pending_updates  # every update was taken by the bot's server
        assert fake_bot_api.webhook.pushed >= 30 * 4  # start, location, contact, send: each
        assert fake_bot_api.webhook.refused == 0


async def thirty_at_once(h: Harness) -> None:
    """30 citizens report at once: every reply, one card per ticket, few 429s."""
    telegram = h.telegram
    citizens = [telegram.add_user(language_code="en", first_name=f"Warga {n}") for n in range(30)]

    # Each awaits the bot's answer to every step (5 s each) and the reference at the end.
    refs = await asyncio.gather(*(full_gps_report(c) for c in citizens))

    assert len(set(refs)) == 30
    await telegram.wait_for(lambda: all(cards_of(h, ref) for ref in refs), timeout=40)
    await h.outbox_drained(within=30)
    stats = telegram.flood_stats
    assert stats is not None
    drawn = (
        f"429s drawn: {stats.total_refused} of {stats.total_calls} counted calls "
        f"(into private chats {refused_into(h, True)}, into the group {refused_into(h, False)})"
    )
    per_ref = {ref: len(cards_of(h, ref)) for ref in refs}
    assert set(per_ref.values()) == {1}, f"cards per reference {per_ref}; {drawn}"
    for citizen in citizens:
        said = [m.text or "" for m in citizen.messages]
        assert not [text for text in said if "went wrong" in text], f"{citizen.id}: {drawn}"
        assert any(REF.search(text) for text in said), drawn
    # A refused reply is waited out and sent again: the citizen never sees a hole.
    assert stats.total_refused < stats.total_calls * 0.05, drawn
    print(drawn)


@dataclass
class Submitted:
    citizen: SimUser
    group: str
    ref: str
    at: float
    """The double's clock when the citizen pressed «send»."""

    @property
    def priority(self) -> int:
        return PRIORITY[self.group]


async def report_timed(h: Harness, citizen: SimUser, group: str) -> Submitted:
    """A full GPS report with a short pause between its parts (a person reads the screen);
    the submit moment is read on the double's clock."""
    await start_report(citizen, group)
    await asyncio.sleep(THINK)
    await gps_location(citizen)
    await asyncio.sleep(THINK)
    await own_contact_and_name(citizen)
    await asyncio.sleep(THINK)
    await tap_step(citizen, "done")
    at = h.telegram.model.monotonic()
    await tap_step(citizen, "submit")
    reply = await citizen.wait_reply(lambda m: bool(REF.search(m.text or "")))
    found = REF.search(reply.text or "")
    assert found is not None
    return Submitted(citizen, group, found.group(0), at)


async def test_each_ticket_on_board_within_10_s_and_topics_by_priority_when_40_in_a_minute(
    surge: Harness,
) -> None:
    h, telegram = surge, surge.telegram
    groups = list(itertools.islice(itertools.cycle(["OTHER", "SOCIAL", "MEDICAL", "OTHER",
                                                    "FIRE"]), 40))  # fmt: skip
    citizens = [telegram.add_user(language_code="id") for _ in groups]

    async def citizen(n: int) -> Submitted:
        await asyncio.sleep(n * 0.6)  # 40 reports start within 24 s, submits within ~35 s
        return await report_timed(h, citizens[n], groups[n])

    tickets = await asyncio.gather(*(citizen(n) for n in range(40)))
    refs = [t.ref for t in tickets]
    await telegram.wait_for(lambda: all(cards_of(h, ref) for ref in refs), timeout=60)
    await h.outbox_drained(within=30)

    # Nothing lost: every ticket has its topic and exactly one card.
    assert all(topic_of(h, ref) is not None for ref in refs)
    assert {ref: len(cards_of(h, ref)) for ref in refs} == dict.fromkeys(refs, 1)

    # On the pinned board within 10 s of its submit (times of the board's edits at the double).
    board = the_board(h)
    assert telegram.model.chats[OPERATOR_CHAT].pinned == [board.message_id]
    late = {}
    for t in tickets:
        seen = on_board_at(board, t.ref)
        assert seen is not None, f"{t.ref} never on the board"
        if seen - t.at > BOARD_WITHIN:
            late[t.ref] = round(seen - t.at, 2)
    assert not late, f"on the board later than {BOARD_WITHIN} s after submit: {late}"

    # Topics in priority order: whenever a topic was created for a priority-3 ticket, no
    # priority-1 ticket that had been submitted before that topic call was
    # granted still waited for its own topic; i.e. a priority-1 ticket waiting at that moment
    # always got its topic first. "Waiting" counts from the submit plus the calls already in
    # flight (a topic call granted before the other ticket existed) and the outbox's claim of
    # the new row after the submit's commit: two seconds of slack (one was exceeded once in a
    # whole-suite run on a loaded two-core machine: 1 of ~6 runs).
    created = {t.ref: topic_of(h, t.ref).times[0] for t in tickets}  # type: ignore[union-attr]
    jumped = [
        (low.ref, low.priority, high.ref, high.priority)
        for low in tickets
        for high in tickets
        if (high.priority, low.priority) == (1, 3)
        and high.at + 2.0 < created[low.ref]
        and created[high.ref] > created[low.ref]
    ]
    assert not jumped, f"topics created before a waiting ticket of higher priority: {jumped}"
