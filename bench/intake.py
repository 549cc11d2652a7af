"""Intake benchmark: concurrent citizens through full reports vs. a bare PTB echo bot.

Run from the repo root::

    .venv/bin/python bench/intake.py [--citizens 50] [--db sqlite|postgres] [--repeat 3]
                                     [--think 0] [--postgres-url URL] [--loop uvloop|asyncio]
                                     [--split]

Each run starts the real ``build_application`` (SQLite file in a temp dir, or a fresh
PostgreSQL schema that is dropped afterwards) polling the in-process fake Bot API over
loopback, and drives N simulated citizens concurrently through a full GPS intake (7 updates
each: /start, report, group, GPS, location ok, contact, submit), each waiting for
the bot's answer as a person would. In the same run a bare PTB echo bot (same concurrency
settings, its own fake) gets the same number of updates in the same pattern (N users x 9
texts, each waiting for the echo). Targets (measured here, never asserted in tests):
intake/echo updates/s ratio >= 0.4 and intake CPU per update <= 2x the echo bot's (issue #11);
p95 confirm -> committed <= 50 ms on SQLite.

With ``--split`` the fake Bot API and the simulated people run in a second process (spawned,
linked by a pipe), as Telegram and its users are elsewhere in production: each bot's event
loop and CPU are its own, and the people's process's CPU is reported to show it kept up.
Stamps of both processes are ``time.perf_counter`` (CLOCK_MONOTONIC, one clock).

Nothing leaves loopback: the fake Bot API listens on 127.0.0.1, the geocoder is offline,
PostgreSQL (``--db postgres``) is the local server of ``--postgres-url`` / BENCH_POSTGRES_URL.
The harness is observed, never changed: ``model.call`` of each fake instance and
``IntakeService.submit`` of the running application are wrapped to take timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import logging
import multiprocessing
import os
import platform
import random
import re
import resource
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import sqlalchemy
import telegram
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot.app import Webhook, build_application, start_application, stop_application
from bot.config import load_settings
from bot.double.botapi_model import BotApiModel, StoredMessage
from bot.double.fake_bot_api import FakeBotApi, builder_for
from bot.double.simulated import SimUser
from bot.loop import new_event_loop
from bot.services.intake import Notice
from handlers.context import SERVICES_KEY
from storage.db import create_engine

OPERATOR_CHAT = -1001234567890
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REF = re.compile(r"SMG-\d{6}-\d{4}")
UPDATES_PER_CITIZEN = 7  # /start, report, group, GPS, locok, contact, submit
Mark = tuple[int, float]  # a chat's last message id and the fake's clock at an action
WAIT_TIMEOUT = 120.0  # seconds a simulated person waits for an answer before the run fails
POLL_TIMEOUT = timedelta(seconds=1)  # each bot's long poll, as in the flow tests' harness
# The echo bot (the baseline) keeps the settings the issue measured it with: 64 updates at
# once and PTB's httpx pool of 32. The intake bot's are in bot/sizes.py.
WARM_UP = 50
"""People of the unmeasured warm-up crowd (never more than the measured crowd), all at once
and flat out whatever ``--think`` says: a bot that has run a while has opened its HTTP
connections and, on PostgreSQL, has each pooled connection's statements prepared (asyncpg
prepares a statement once per connection and keeps it). With one warm-up person, most of
the bot's ~480 prepares of a 50-citizen PostgreSQL run fell in the measured window; with this
crowd, 45-58 do (counted with a scratch hook on asyncpg's ``prepare``, 2026-11-30)."""
CONCURRENT_UPDATES = 64
CONNECTION_POOL = 32

perf_counter = time.perf_counter
AnyApp = Application[Any, Any, Any, Any, Any, Any]


# -- observing the fake Bot API ------------------------------------------------------------------
class Observer:
    """Timestamps every Bot API call the bot makes and wakes the person waiting in that chat.

    Wraps ``model.call`` of this fake instance only (the harness files are not touched): the
    stamp is taken when the fake starts answering, i.e. when the request has been handed to the
    Bot API. Waiting is per chat (one wake-up per call to that chat), so the simulated people
    cost the same per call in both bots and do not grow with N.
    """

    def __init__(self, fake: FakeBotApi, operator_chat: int | None = None) -> None:
        self.model: BotApiModel = fake.model
        self.operator_chat = operator_chat
        self.count_refused = True
        """Whether a call the double refused (a 429, an injected failure) counts as seen."""
        self.calls = 0
        self.card_at: dict[str, float] = {}  # ref -> operator card sendMessage
        self.ack_at: dict[str, float] = {}  # ref -> first citizen message showing the ref
        self.chat_calls: dict[int, list[float]] = {}  # chat -> stamps of calls to that chat
        self.failure: str | None = None
        self._waiters: dict[int, asyncio.Event] = {}
        original = self.model.call

        def call(method: str, params: dict[str, Any], files: Any = None) -> Any:
            stamp = perf_counter()
            try:
                result = original(method, params, files)
            except Exception:
                if self.count_refused:
                    self._seen(method, params, stamp)
                raise
            self._seen(method, params, stamp)
            return result

        self.model.call = call  # type: ignore[method-assign]
        self.taken_at: dict[int, float] = {}  # user -> their "send report" update polled
        take = self.model.take_updates

        def take_updates(params: dict[str, Any]) -> Any:
            updates = take(params)
            self._taken(updates, perf_counter())
            return updates

        self.model.take_updates = take_updates  # type: ignore[method-assign]
        fake.webhook.on_push = lambda update: self._taken([update], perf_counter())

    def _taken(self, updates: list[dict[str, Any]], stamp: float) -> None:
        for update in updates:
            query = update.get("callback_query") or {}
            if str(query.get("data", "")).endswith("|submit"):
                self.taken_at.setdefault(query["from"]["id"], stamp)

    def _seen(self, method: str, params: dict[str, Any], stamp: float) -> None:
        self.calls += 1
        try:
            chat_id = int(params.get("chat_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        self.chat_calls.setdefault(chat_id, []).append(stamp)
        if method.lower() == "sendmessage":
            found = REF.search(str(params.get("text") or ""))
            if found is not None:
                stamps = self.card_at if chat_id == self.operator_chat else self.ack_at
                stamps.setdefault(found.group(0), stamp)
        waiter = self._waiters.pop(chat_id, None)
        if waiter is not None:
            waiter.set()

    def fail(self, reason: str) -> None:
        """A handler crashed: every waiting person gives up at once."""
        self.failure = self.failure or reason
        for waiter in self._waiters.values():
            waiter.set()
        self._waiters.clear()

    def response_times(self, chat_id: int, sent: list[float]) -> list[float]:
        """For each update sent at ``sent[i]``, the delay until the bot's next call to the
        chat (its first answer: a message, venue, edit...) reached the Bot API."""
        stamps = self.chat_calls.get(chat_id, [])
        result = []
        for at in sent:
            index = bisect.bisect_right(stamps, at)
            if index < len(stamps):
                result.append(stamps[index] - at)
        return result

    def fresh(self, chat_id: int, after: Mark) -> Iterator[StoredMessage]:
        """The bot's visible messages in a chat sent after ``after`` (an id above its id) or
        edited since its time (menus are edited in place), newest first."""
        chat = self.model.chats.get(chat_id)
        if chat is None:
            return
        last, since = after
        for message_id in range(chat.last_message_id, 0, -1):
            message = chat.messages.get(message_id)
            if message is None or not message.outgoing or message.deleted:
                continue
            if message_id > last or (message.times and message.times[-1] >= since):
                yield message

    def mark(self, chat_id: int) -> Mark:
        """Where the chat stands now: its last message id and the model's clock."""
        chat = self.model.chats.get(chat_id)
        return (chat.last_message_id if chat is not None else 0, self.model.monotonic())

    async def wait(self, chat_id: int, find: Callable[[], Any], what: str) -> Any:
        """Waits (without polling) until ``find()`` returns something for this chat."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_TIMEOUT
        while True:
            if self.failure is not None:
                raise RunFailed(self.failure)
            found = find()
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"chat {chat_id}: no {what} after {WAIT_TIMEOUT:.0f} s")
            event = self._waiters.setdefault(chat_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()

    async def wait_button(
        self, user: SimUser, after: Mark, action: str
    ) -> tuple[StoredMessage, str]:
        """The newest fresh message offering the button whose callback data ends in action."""

        def find() -> tuple[StoredMessage, str] | None:
            for message in self.fresh(user.id, after):
                for button in message.inline_buttons:
                    data = str(button.get("callback_data", ""))
                    if data.endswith(f"|{action}"):
                        return message, data
            return None

        found: tuple[StoredMessage, str] = await self.wait(user.id, find, f"button {action!r}")
        return found

    async def wait_message(
        self, user: SimUser, after: Mark, predicate: Callable[[StoredMessage], bool] | None = None
    ) -> StoredMessage:
        """The first fresh bot message (matching ``predicate``) in the user's chat."""

        def find() -> StoredMessage | None:
            return next(
                (m for m in self.fresh(user.id, after) if predicate is None or predicate(m)),
                None,
            )

        found: StoredMessage = await self.wait(user.id, find, "reply")
        return found

    async def wait_cards(self, refs: list[str]) -> None:
        def find() -> bool | None:
            return True if all(ref in self.card_at for ref in refs) else None

        await self.wait(OPERATOR_CHAT, find, "operator cards")


class RunFailed(Exception):
    """A handler of the bot crashed (the run's numbers would be meaningless)."""


# -- one citizen -----------------------------------------------------------------------------------
@dataclass
class Citizen:
    """What one simulated person measured."""

    user_id: int
    ref: str = ""
    confirm_at: float = 0.0  # the submit button's callback update handed to the fake
    done_at: float = 0.0  # the answer to their last update seen
    sent: list[float] = field(default_factory=list)  # each update handed to the fake

    @property
    def updates(self) -> int:
        return len(self.sent)


class Person:
    """A simulated person: waits for the bot's answer, thinks, then acts."""

    def __init__(self, user: SimUser, obs: Observer, think: float) -> None:
        self.user = user
        self.obs = obs
        self.think = think
        self.rng = random.Random(user.id)
        self.result = Citizen(user.id)

    async def _pause(self) -> None:
        if self.think > 0:  # 0.5x to 1.5x the mean, so people drift apart
            await asyncio.sleep(self.think * self.rng.uniform(0.5, 1.5))

    async def send(self, action: Callable[[], Awaitable[Any]]) -> Mark:
        """Does ``action`` (a message); returns the chat position before it."""
        await self._pause()
        mark = self.obs.mark(self.user.id)
        self.result.sent.append(perf_counter())
        await action()
        return mark

    async def tap(self, action: str, after: Mark) -> Mark:
        """Waits for the button with this action code, then presses it."""
        message, data = await self.obs.wait_button(self.user, after, action)
        await self._pause()
        mark = self.obs.mark(self.user.id)
        now = perf_counter()
        self.result.sent.append(now)
        if action == "submit":
            self.result.confirm_at = now
        await self.user.press(data, on=message)
        return mark


async def full_intake(user: SimUser, obs: Observer, think: float = 0.0) -> Citizen:
    """A GPS report as a person taps it, waiting for each answer (the flow tests' steps:
    start_report, gps_location, own_contact_and_name, submit)."""
    person = Person(user, obs, think)
    mark = await person.send(lambda: user.send_command("start"))
    mark = await person.tap("report", mark)
    mark = await person.tap("grp|MEDICAL", mark)
    await obs.wait_message(user, mark)  # "where is the emergency?"
    mark = await person.send(user.share_location)
    mark = await person.tap("locok", mark)
    await obs.wait_message(user, mark)  # "share your number"
    mark = await person.send(lambda: user.share_contact(own=True))
    mark = await person.tap("submit", mark)  # the contact's name is taken: the details screen
    reply = await obs.wait_message(user, mark, lambda m: bool(REF.search(m.text or "")))
    person.result.done_at = perf_counter()
    found = REF.search(reply.text or "")
    assert found is not None
    person.result.ref = found.group(0)
    assert person.result.updates == UPDATES_PER_CITIZEN
    return person.result


async def echo_user(user: SimUser, obs: Observer, count: int, think: float = 0.0) -> Citizen:
    """Sends ``count`` texts, each after the previous one was echoed."""
    person = Person(user, obs, think)
    for i in range(count):
        mark = await person.send(lambda i=i: user.send_text(f"pesan {i}"))
        await obs.wait_message(user, mark)
    person.result.done_at = perf_counter()
    return person.result


# -- measuring a run ------------------------------------------------------------------------------
def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


WARM_PHONES = 900_000
"""The warm-up crowd's phone numbers start here: nobody shares a number with a measured person."""


def new_users(fake: FakeBotApi, count: int, prefix: str, first: int = 0) -> list[SimUser]:
    return [
        fake.add_user(first_name=f"{prefix} {i}", phone_number=f"6281390{first + i:06d}")
        for i in range(count)
    ]


@dataclass
class Run:
    """One measured run of one bot."""

    updates: int
    wall: float
    cpu: float
    citizens: list[Citizen]
    response: list[float]  # each update -> the bot's first answer in that chat (seconds)
    calls: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)  # seconds
    cpu_from: float = 0.0  # the process's CPU seconds when the window opened
    cpu_all: float = 0.0  # intake: CPU from the window's start until the outbox had drained
    harness_cpu: float | None = None  # --split: the people's process's CPU in the window

    @property
    def rate(self) -> float:
        return self.updates / self.wall


async def measure(
    users: list[SimUser],
    drive: Callable[[SimUser], Awaitable[Citizen]],
    obs: Observer,
    checkpoint: Checkpoint,
) -> Run:
    """Drives every user at once; the window runs from the first update to the last answer
    (then ``checkpoint("measured")``)."""
    calls = obs.calls
    cpu = cpu_seconds()
    first = perf_counter()
    citizens = list(await asyncio.gather(*(drive(user) for user in users)))
    last = max(c.done_at for c in citizens)
    run = Run(
        updates=sum(c.updates for c in citizens),
        wall=last - first,
        cpu=cpu_seconds() - cpu,
        citizens=citizens,
        response=[t for c in citizens for t in obs.response_times(c.user_id, c.sent)],
        calls=obs.calls - calls,
        cpu_from=cpu,
    )
    await checkpoint("measured")
    return run


# -- the people's side: the fake Bot API, its observer and the simulated people -------------------
Checkpoint = Callable[[str], Awaitable[None]]
"""What the people's side awaits at each stage of a run: "warmed" (the unmeasured warm-up
crowd is done; the bot settles before the window opens), "measured" (the last person saw
their last answer) and, for the intake, "carded" (every operator card reached the fake)."""


async def echo_people(
    fake: FakeBotApi,
    obs: Observer,
    users: int,
    per_user: int,
    *,
    think: float,
    checkpoint: Checkpoint,
) -> Run:
    """A warm-up crowd, then ``users`` people sending ``per_user`` texts each."""
    warm = new_users(fake, min(users, WARM_UP), "Warm", WARM_PHONES)
    await asyncio.gather(*(echo_user(user, obs, per_user) for user in warm))  # not measured
    await checkpoint("warmed")
    people = new_users(fake, users, "Echo")
    return await measure(
        people, lambda user: echo_user(user, obs, per_user, think), obs, checkpoint
    )


async def intake_people(
    fake: FakeBotApi, obs: Observer, citizens: int, *, think: float, checkpoint: Checkpoint
) -> Run:
    """A warm-up crowd, then ``citizens`` people through full intakes, then their cards;
    the citizen ack and operator card latencies (the bot's side adds its own)."""
    warm = new_users(fake, min(citizens, WARM_UP), "Warm", WARM_PHONES)
    warmed = await asyncio.gather(*(full_intake(user, obs) for user in warm))  # not measured
    await obs.wait_cards([citizen.ref for citizen in warmed])
    await checkpoint("warmed")
    people = new_users(fake, citizens, "Warga")
    run = await measure(people, lambda user: full_intake(user, obs, think), obs, checkpoint)
    await obs.wait_cards([c.ref for c in run.citizens])
    await checkpoint("carded")
    run.latencies["taken"] = [obs.taken_at[c.user_id] - c.confirm_at for c in run.citizens]
    run.latencies["ack"] = [obs.ack_at[c.ref] - c.confirm_at for c in run.citizens]
    run.latencies["card"] = [obs.card_at[c.ref] - c.confirm_at for c in run.citizens]
    return run


@contextlib.asynccontextmanager
async def database(kind: str, postgres_url: str) -> AsyncIterator[str]:
    """A fresh database URL: a SQLite file in a temp dir, or a PostgreSQL schema (dropped)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="siaga112-bench-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        return
    schema = f"bench_{secrets.token_hex(4)}"
    separator = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{separator}schema={schema}"
    finally:
        engine = create_engine(postgres_url)
        try:
            async with engine.begin() as connection:
                await connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await engine.dispose()


async def outbox_drained(services: Any) -> None:
    """Waits until the outbox owes nothing, so stopping never cuts a delivery short."""
    deadline = perf_counter() + WAIT_TIMEOUT
    while await services.queries.pending_deliveries():
        if perf_counter() > deadline:
            raise RunFailed("the outbox did not drain")
        services.outbox.wake()
        await asyncio.sleep(0.01)


# -- the bots' side --------------------------------------------------------------------------------
class Window:
    """The bot process's CPU seconds at each checkpoint of the people's side (``warmed`` is
    stamped after ``settle``: the bot has finished the warm-up's work)."""

    def __init__(self, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.cpu: dict[str, float] = {}
        self._settle = settle

    async def __call__(self, stage: str) -> None:
        if self._settle is not None and stage in ("warmed", "carded"):
            await self._settle()
        self.cpu[stage] = cpu_seconds()


@contextlib.asynccontextmanager
async def echo_bot(
    api: tuple[str, str, str], on_error: Callable[[str], None], *, webhook: bool = False
) -> AsyncIterator[dict[int, list[float]]]:
    """A bare PTB echo bot with the intake's concurrency settings, polling the fake Bot API at
    ``api`` (its token, base URL and file URL), started; yields when each user's updates
    reached the handler."""
    entered: dict[int, list[float]] = {}

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        assert update.effective_user is not None
        entered.setdefault(update.effective_user.id, []).append(perf_counter())
        await update.effective_message.reply_text(update.effective_message.text or "")

    async def record(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        on_error(f"echo bot handler error: {context.error!r}")

    application = (
        builder_for(*api)
        .concurrent_updates(CONCURRENT_UPDATES)
        .connection_pool_size(CONNECTION_POOL)
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    application.add_error_handler(record)
    await start_application(application, poll_timeout=POLL_TIMEOUT, webhook=webhook_of(webhook))
    try:
        yield entered
    finally:
        await stop_application(application)


def echo_entered(run: Run, entered: dict[int, list[float]]) -> None:
    """Each person sends the next text only after the echo: their i-th update is the i-th
    entry."""
    run.latencies["entered"] = [
        at - sent for c in run.citizens for sent, at in zip(c.sent, entered[c.user_id], strict=True)
    ]


@dataclass
class IntakeBot:
    """The running application's services and ``IntakeService.submit`` observed on this
    instance: entered, and returned with the ticket committed as submitted (the unit of work
    committed and closed), by Telegram user id."""

    services: Any
    entered: dict[int, float] = field(default_factory=dict)
    committed: dict[int, float] = field(default_factory=dict)

    async def settle(self) -> None:
        await outbox_drained(self.services)

    def stamp(self, run: Run) -> None:
        run.latencies["entered"] = [self.entered[c.user_id] - c.confirm_at for c in run.citizens]
        run.latencies["commit"] = [self.committed[c.user_id] - c.confirm_at for c in run.citizens]


@contextlib.asynccontextmanager
async def intake_bot(
    url: str,
    api: tuple[str, str, str],
    on_error: Callable[[str], None],
    *,
    sqlite_driver: str,
    http_client: str,
    webhook: bool = False,
) -> AsyncIterator[IntakeBot]:
    """The real application (build_application) on ``url``, polling the fake Bot API at
    ``api`` (its token, base URL and file URL), started."""
    token, base_url, base_file_url = api
    settings = load_settings(
        {
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_BASE_URL": base_url,
            "TELEGRAM_API_FILE_URL": base_file_url,
            "DATABASE_URL": url,
            "SQLITE_DRIVER": sqlite_driver,
            "TELEGRAM_HTTP_CLIENT": http_client,
            "OPERATOR_CHAT_ID": str(OPERATOR_CHAT),
            "GEOCODER": "offline",
            # The echo bot is not paced: compare the work per update, not Telegram's
            # limits (50 citizens at a human pace already offer more than 30 calls/s).
            "TELEGRAM_RATE_GOVERNOR": "off",
        },
        env_file=None,
    )
    # As `siaga112 run` builds it: what the start made is frozen out of the collector's
    # walks and the young generation collected less often (bot.loop.freeze_startup_heap);
    # both undone after the run, so the next echo bot runs with the interpreter's defaults.
    thresholds = gc.get_threshold()
    application = build_application(settings, freeze_heap=True)

    async def record(update: object, context: Any) -> None:
        on_error(f"intake bot handler error: {context.error!r}")

    application.add_error_handler(record)  # besides the bot's own, which tells the citizen
    await start_application(application, poll_timeout=POLL_TIMEOUT, webhook=webhook_of(webhook))
    try:
        bot = IntakeBot(application.bot_data[SERVICES_KEY])
        intake = bot.services.intake
        original_submit = intake.submit

        async def observed_submit(actor: Any, ticket_id: int) -> Any:
            bot.entered[actor.telegram_id] = perf_counter()
            outcome = await original_submit(actor, ticket_id)
            if Notice.SUBMITTED in outcome.notices:
                bot.committed[actor.telegram_id] = perf_counter()
            return outcome

        intake.submit = observed_submit
        yield bot
    finally:
        await stop_application(application)
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def webhook_of(wanted: bool) -> Webhook | None:
    """With ``--webhook``: PTB's webhook server on a free loopback port (the fake pushes each
    update to it, as Telegram does once the bot sets it); else None (long polling)."""
    if not wanted:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    return Webhook(url=f"http://127.0.0.1:{port}/telegram", secret=secrets.token_urlsafe(16))


def api_of(fake: FakeBotApi) -> tuple[str, str, str]:
    return fake.token, fake.base_url, fake.base_file_url


# -- one process: bot, fake Bot API and people share one event loop -------------------------------
async def run_echo(users: int, per_user: int, think: float = 0.0, webhook: bool = False) -> Run:
    """The echo bot and its fake in this process."""
    async with FakeBotApi() as fake:
        obs = Observer(fake)
        async with echo_bot(api_of(fake), obs.fail, webhook=webhook) as entered:
            run = await echo_people(fake, obs, users, per_user, think=think, checkpoint=Window())
    echo_entered(run, entered)
    return run


async def run_intake(
    citizens: int,
    db: str,
    postgres_url: str,
    think: float = 0.0,
    *,
    sqlite_driver: str = "inline",
    http_client: str = "aiohttp",
    webhook: bool = False,
) -> Run:
    """The real application (build_application), N citizens at once through full intakes."""
    async with database(db, postgres_url) as url, FakeBotApi() as fake:
        fake.register_forum(OPERATOR_CHAT, "Operator 112")
        obs = Observer(fake, OPERATOR_CHAT)
        async with intake_bot(
            url,
            api_of(fake),
            obs.fail,
            sqlite_driver=sqlite_driver,
            http_client=http_client,
            webhook=webhook,
        ) as bot:
            window = Window(bot.settle)
            run = await intake_people(fake, obs, citizens, think=think, checkpoint=window)
            run.cpu_all = window.cpu["carded"] - run.cpu_from
    bot.stamp(run)
    return run


# -- two processes: the fake Bot API and the people in a second one, as Telegram is -------------
@dataclass(frozen=True)
class Job:
    """What the people's process runs: ``bot`` "echo" or "intake"."""

    bot: str
    people: int
    per_user: int
    think: float
    uvloop: bool


class Link:
    """One end of the pipe between the bot's process and the people's: messages in order.
    A thread reads the pipe (the pipe stays blocking: an event loop's reader would make it
    non-blocking, and a message larger than the pipe's buffer would then be cut short) and
    hands each message to the loop. ``("failed", reason)`` from the other side raises
    :class:`RunFailed` in :meth:`receive`, and calls ``on_failure`` at once (the people's
    side gives up waiting)."""

    def __init__(self, conn: Connection, on_failure: Callable[[str], None] | None = None) -> None:
        self._conn = conn
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._on_failure = on_failure
        self._loop = asyncio.get_running_loop()
        self._reader = threading.Thread(target=self._read, name="bench-link", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                item = self._conn.recv()
            except (EOFError, OSError):
                self._hand(("failed", "the other process ended"))
                return
            self._hand(item)

    def _hand(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(self._arrived, item)

    def _arrived(self, item: object) -> None:
        if isinstance(item, tuple) and item[0] == "failed" and self._on_failure is not None:
            self._on_failure(str(item[1]))
        self._inbox.put_nowait(item)

    def send(self, item: object) -> None:
        with contextlib.suppress(OSError):  # the other side is gone: its end says why
            self._conn.send(item)

    def fail(self, reason: str) -> None:
        self.send(("failed", reason))

    async def ended(self) -> None:
        """Waits (10 s at most) until the reader has seen the other end close: only then may
        this end be closed (closed under a reader in ``recv``, it failed with a traceback)."""
        await asyncio.to_thread(self._reader.join, 10)

    async def receive(self) -> Any:
        async with asyncio.timeout(WAIT_TIMEOUT * 2):
            item = await self._inbox.get()
        if isinstance(item, tuple) and item and item[0] == "failed":
            raise RunFailed(str(item[1]))
        return item


def people_process(conn: Connection, job: Job) -> None:
    """The people's process: a fake Bot API, its observer and ``job.people`` people, their
    checkpoints awaited by the bot's process; the run's numbers sent back at the end."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    loop, _ = new_event_loop(job.uvloop)
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        runner.run(_people_side(conn, job))


async def _people_side(conn: Connection, job: Job) -> None:
    async with FakeBotApi() as fake:
        intake = job.bot == "intake"
        if intake:
            fake.register_forum(OPERATOR_CHAT, "Operator 112")
        obs = Observer(fake, OPERATOR_CHAT if intake else None)
        link = Link(conn, on_failure=obs.fail)

        async def checkpoint(stage: str) -> None:
            link.send(stage)
            await link.receive()  # "go"

        try:
            link.send(api_of(fake))
            await link.receive()  # the bot started
            run = await (
                intake_people(fake, obs, job.people, think=job.think, checkpoint=checkpoint)
                if intake
                else echo_people(
                    fake, obs, job.people, job.per_user, think=job.think, checkpoint=checkpoint
                )
            )
            link.send(run)
            await link.receive()  # the bot stopped: the fake may go
        except (RunFailed, TimeoutError) as exc:
            link.fail(str(exc) or type(exc).__name__)
        # The pipe is left open: its reader may be in ``recv`` still (closed under it, it
        # failed with a traceback); it closes as this process ends, and the bot's side
        # reads the end there.


@contextlib.asynccontextmanager
async def people_elsewhere(job: Job) -> AsyncIterator[tuple[Link, tuple[str, str, str]]]:
    """Starts the people's process (spawned: nothing of this loop is copied into it);
    yields the link to it and its fake Bot API's token and URLs."""
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    process = context.Process(target=people_process, args=(theirs, job), daemon=True)
    process.start()
    theirs.close()
    link = Link(mine)
    try:
        api = await link.receive()
        yield link, api
    finally:
        link.fail("the bot's side ended")  # after a failure here the people stop waiting
        await asyncio.to_thread(process.join, 10)
        if process.is_alive():
            process.terminate()
            await asyncio.to_thread(process.join, 10)
        await link.ended()  # the other end is closed now: the reader ends at EOF
        mine.close()


async def follow(link: Link, window: Window) -> Run:
    """The bot's side of a split run: stamps each checkpoint (settling first), lets the
    people go on, and returns their run with this process's CPU as the bot's."""
    link.send("go")  # the bot started
    while True:
        item = await link.receive()
        if isinstance(item, Run):
            break
        await window(str(item))
        link.send("go")
    item.harness_cpu = item.cpu  # the people's process: the fake Bot API and the people
    item.cpu = window.cpu["measured"] - window.cpu["warmed"]
    if "carded" in window.cpu:
        item.cpu_all = window.cpu["carded"] - window.cpu["warmed"]
    return item


async def run_echo_split(
    users: int, per_user: int, think: float, uvloop: bool, webhook: bool = False
) -> Run:
    """The echo bot in this process, its fake Bot API and people in another."""
    async with people_elsewhere(Job("echo", users, per_user, think, uvloop)) as (link, api):
        async with echo_bot(api, link.fail, webhook=webhook) as entered:
            run = await follow(link, Window())
        link.send("stopped")
    echo_entered(run, entered)
    return run


async def run_intake_split(
    citizens: int,
    db: str,
    postgres_url: str,
    think: float,
    uvloop: bool,
    *,
    sqlite_driver: str,
    http_client: str,
    webhook: bool = False,
) -> Run:
    """The real application in this process, its fake Bot API and citizens in another."""
    job = Job("intake", citizens, UPDATES_PER_CITIZEN, think, uvloop)
    async with database(db, postgres_url) as url, people_elsewhere(job) as (link, api):
        async with intake_bot(
            url,
            api,
            link.fail,
            sqlite_driver=sqlite_driver,
            http_client=http_client,
            webhook=webhook,
        ) as bot:
            run = await follow(link, Window(bot.settle))
        link.send("stopped")
    bot.stamp(run)
    return run


# -- reporting -------------------------------------------------------------------------------------
def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def machine(split: bool = False) -> str:
    where = (
        "the bot in one process, the fake API and users in another (--split)"
        if split
        else "one asyncio loop (bot, fake API and users share it)"
    )
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores; "
        f"python-telegram-bot {telegram.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
        f"SQLite {sqlite3.sqlite_version}; {where}"
    )


EXPLAIN = """\
What the rows measure (time.perf_counter, CLOCK_MONOTONIC: one clock for both processes with
--split; else bot, fake Bot API and people share one event loop):
  updates/s          updates handed to the fake / time from the first one until the last
                     person saw the answer to their last update
  ratio              intake updates/s / echo updates/s (target >= 0.40)
  update -> answer   each update handed to the fake -> the bot's first call into that chat
                     (a message, venue...) reached the Bot API: what a person waits per step
  confirm -> ...     from the "send report" (submit) button update handed to the fake:
    taken by the bot   the fake handed it to the bot in a getUpdates answer (the wait for
                       the bot's next long poll), or with --webhook began pushing it
    submit() entered   IntakeService.submit called (long poll, PTB dispatch, per-chat queue);
                       compare "echo update -> handler entered": the same path in a bare
                       PTB bot, each update handed to the fake -> its handler called
    committed          IntakeService.submit returned with the ticket committed as submitted
                       (target p95 <= 50 ms on SQLite)
    citizen ack        the sendMessage showing the citizen the reference reached the Bot API
    operator card      the outbox worker's card sendMessage to the operators' chat reached
                       the Bot API (the operator notification handed to Telegram)
  CPU ms/update      process CPU (user+sys, all threads) in the measured window / updates;
                     with --split the bot's process only (the fake Bot API and the people
                     run in a second one, whose CPU is shown as a share of the wall time:
                     near 100 % it, not the bot, set the pace)
    cards included     intake: from the window's start until the outbox had sent every card
                       (the topics, cards and board edits still owed when the last person
                       saw their last answer are done then)
  Bot API calls/upd  the bot's calls in the measured window / updates (getUpdates excluded)
Each run: a fresh fake Bot API and database, an unmeasured warm-up crowd first (as many
people as measured, at most 50, flat out: HTTP connections open, PostgreSQL statements
prepared on each pooled connection). With --think 0 every person acts the instant the
answer arrives, so about N updates are always in flight and each waits behind the
others: latency ~ N / throughput (Little's law), even for the echo bot. --think S makes
people pause 0.5-1.5 x S before each action (updates/s then shows the offered load rather
than capacity)."""


def summarise(args: argparse.Namespace, echoes: list[Run], intakes: list[Run]) -> None:
    rows: list[tuple[str, list[str], str, str]] = []

    def add(label: str, per_run: list[float], fmt: str, target: str = "") -> None:
        cells = [format(v, fmt) for v in per_run]
        rows.append((label, cells, format(statistics.median(per_run), fmt), target))

    pairs = list(zip(echoes, intakes, strict=True))
    add("echo updates/s", [e.rate for e, _ in pairs], ",.0f")
    add("intake updates/s", [i.rate for _, i in pairs], ",.0f")
    paced = args.think > 0  # updates/s is then the offered load, not capacity
    ratio_target = "n/a (--think)" if paced else ">= 0.40"
    add("ratio intake/echo", [i.rate / e.rate for e, i in pairs], ".2f", ratio_target)
    for name, runs in (("echo", echoes), ("intake", intakes)):
        for q in (50, 95):
            add(
                f"{name} update -> answer p{q} ms",
                [percentile(r.response, q) * 1000 for r in runs],
                ".1f",
            )
    for q in (50, 95):  # PTB's own path from the fake to a handler: long poll, dispatch
        add(
            f"echo update -> handler entered p{q} ms",
            [percentile(r.latencies["entered"], q) * 1000 for r in echoes],
            ".1f",
        )
    names = {
        "taken": "confirm -> taken by the bot",
        "entered": "confirm -> submit() entered",
        "commit": "confirm -> committed",
        "ack": "confirm -> citizen ack",
        "card": "confirm -> operator card",
    }
    for key, label in names.items():
        for q in (50, 95):
            target = "<= 50" if key == "commit" and q == 95 and args.db == "sqlite" else ""
            add(
                f"{label} p{q} ms",
                [percentile(r.latencies[key], q) * 1000 for r in intakes],
                ".1f",
                target,
            )
    add("echo CPU ms/update", [r.cpu / r.updates * 1000 for r in echoes], ".2f")
    add("intake CPU ms/update", [r.cpu / r.updates * 1000 for r in intakes], ".2f")
    add(
        "intake CPU ms/update, cards included",
        [r.cpu_all / r.updates * 1000 for r in intakes],
        ".2f",
    )
    if args.split:  # the second process's share: whether the harness kept up
        for name, runs in (("echo", echoes), ("intake", intakes)):
            add(
                f"{name} people's process CPU % of wall",
                [(r.harness_cpu or 0.0) / r.wall * 100 for r in runs],
                ".0f",
            )
    add("echo Bot API calls/update", [r.calls / r.updates for r in echoes], ".2f")
    add("intake Bot API calls/update", [r.calls / r.updates for r in intakes], ".2f")
    add("echo wall s", [r.wall for r in echoes], ".2f")
    add("intake wall s", [r.wall for r in intakes], ".2f")

    driver = args.sqlite_driver if args.db == "sqlite" else "asyncpg"
    print()
    print(
        f"Siaga112 intake benchmark: {args.citizens} concurrent citizens x "
        f"{UPDATES_PER_CITIZEN} updates = {args.citizens * UPDATES_PER_CITIZEN} updates per bot, "
        f"database {args.db} ({driver}), think {args.think:g} s, {len(pairs)} run(s), "
        f"median reported; Bot API client: intake {args.http_client}, echo httpx (PTB's default); "
        f"updates by {'webhook (--webhook)' if args.webhook else 'long polling'}"
    )
    print(f"machine: {machine(args.split)}")
    heads = [*(f"run {i + 1}" for i in range(len(pairs))), "median"]
    width = max(len(r[0]) for r in rows)
    cell = max(8, *(len(c) for r in rows for c in [*r[1], r[2]]))
    print(f"{'':{width}}  " + "  ".join(f"{h:>{cell}}" for h in heads) + "  target")
    for label, cells, median, target in rows:
        values = "  ".join(f"{c:>{cell}}" for c in [*cells, median])
        print(f"{label:{width}}  {values}  {target}".rstrip())
    whole = "the bots' process" if args.split else "whole process, both bots and the fake"
    print(f"peak RSS ({whole}): {peak_rss_mib():.0f} MiB")
    ratio = statistics.median(i.rate / e.rate for e, i in pairs)
    verdicts = (
        ["ratio not judged with --think (both bots just keep up with the people)"]
        if paced
        else [f"ratio {ratio:.2f} {'meets' if ratio >= 0.4 else 'MISSES'} >= 0.40"]
    )
    cpu = statistics.median(i.cpu / i.updates for i in intakes) / statistics.median(
        e.cpu / e.updates for e in echoes
    )
    verdicts.append(f"CPU per update {cpu:.1f}x echo {'meets' if cpu <= 2 else 'MISSES'} <= 2x")
    if args.db == "sqlite":
        p95 = statistics.median(percentile(r.latencies["commit"], 95) * 1000 for r in intakes)
        verdicts.append(
            f"p95 confirm -> committed {p95:.1f} ms {'meets' if p95 <= 50 else 'MISSES'} <= 50 ms"
        )
    print("targets: " + "; ".join(verdicts))
    print()
    print(EXPLAIN)


async def main_async(args: argparse.Namespace) -> int:
    echoes: list[Run] = []
    intakes: list[Run] = []
    failed = 0
    for i in range(args.repeat):
        try:
            if args.split:
                uvloop = args.loop == "uvloop"
                echo = await run_echo_split(
                    args.citizens, UPDATES_PER_CITIZEN, args.think, uvloop, args.webhook
                )
                intake = await run_intake_split(
                    args.citizens, args.db, args.postgres_url, args.think, uvloop,
                    sqlite_driver=args.sqlite_driver, http_client=args.http_client,
                    webhook=args.webhook,
                )  # fmt: skip
            else:
                echo = await run_echo(args.citizens, UPDATES_PER_CITIZEN, args.think, args.webhook)
                intake = await run_intake(
                    args.citizens, args.db, args.postgres_url, args.think,
                    sqlite_driver=args.sqlite_driver, http_client=args.http_client,
                    webhook=args.webhook,
                )  # fmt: skip
        except (RunFailed, TimeoutError) as exc:
            failed += 1
            print(f"run {i + 1}/{args.repeat} FAILED: {exc}", flush=True)
            continue
        echoes.append(echo)
        intakes.append(intake)
        print(
            f"run {i + 1}/{args.repeat}: echo {echo.rate:,.0f} updates/s, intake "
            f"{intake.rate:,.0f} updates/s, p95 confirm -> committed "
            f"{percentile(intake.latencies['commit'], 95) * 1000:.1f} ms",
            flush=True,
        )
    if intakes:
        summarise(args, echoes, intakes)
    if failed:
        print(f"{failed} of {args.repeat} run(s) failed (not in the table)")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=50, help="concurrent citizens (50)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported (3)")
    parser.add_argument(
        "--think", type=float, default=0.0, help="mean seconds a person pauses per action (0)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
        help="server for --db postgres (a bench_<random> schema is created and dropped)",
    )
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop",
        help="event loop, as `siaga112 run` picks it with UVLOOP=on/off (uvloop)",
    )  # fmt: skip
    parser.add_argument(
        "--sqlite-driver", choices=("inline", "thread"), default="inline",
        help="SQLITE_DRIVER: SQLite on the loop's thread, or aiosqlite's worker (inline)",
    )  # fmt: skip
    parser.add_argument(
        "--http-client", choices=("aiohttp", "httpx"), default="aiohttp",
        help="the intake bot's TELEGRAM_HTTP_CLIENT (aiohttp); the echo bot is PTB's default "
        "(httpx) either way",
    )  # fmt: skip
    parser.add_argument(
        "--split", action="store_true",
        help="the fake Bot API and the people in a second process, as Telegram is in "
        "production: each bot's loop and CPU are its own",
    )  # fmt: skip
    parser.add_argument(
        "--webhook", action="store_true",
        help="both bots take their updates on a webhook (siaga112 run --webhook-url: PTB's "
        "webhook server, the fake pushing each update), not by long polling",
    )  # fmt: skip
    args = parser.parse_args()
    if args.citizens < 1 or args.repeat < 1 or args.think < 0:
        parser.error("--citizens and --repeat must be at least 1, --think not negative")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    loop, name = new_event_loop(args.loop == "uvloop")
    print(f"event loop: {name}")
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        sys.exit(runner.run(main_async(args)))


if __name__ == "__main__":
    main()
