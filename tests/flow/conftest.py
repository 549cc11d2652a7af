"""Flow tier: the real, unmodified Application polls the fake Bot API over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.app import (
    Webhook,
    build_application,
    build_rate_limiter,
    start_application,
    stop_application,
)
from bot.config import Settings, load_settings
from bot.double.fake_bot_api import FakeBotApi
from bot.double.flood import OVERALL_WINDOW, PRIVATE_WINDOW, FloodLimits, Window
from bot.services.governor import RateGovernor
from handlers.context import SERVICES_KEY, SiagaApplication
from handlers.ratelimit import GovernedRateLimiter
from tests.integration.conftest import (
    drop_schema,
    postgres_url,  # noqa: F401 (the PostgreSQL tests' fixture, for pg_harness)
    unique_schema,
    with_schema,
)

OPERATOR_CHAT = -1001234567890
GROUP_SECONDS = 3.0
"""Telegram's per-group window (60 s) shrunk twentyfold, in the double and the governor alike."""
TELEGRAM_SHRUNK = FloodLimits(
    group=Window(20, GROUP_SECONDS), overall=OVERALL_WINDOW, private=PRIVATE_WINDOW
)


def free_port() -> int:
    """A loopback port that was free a moment ago (nothing listens there now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def shrunk_governor(settings: Settings) -> GovernedRateLimiter:
    """The settings' governor with the per-group window shrunk like the double's."""
    limits = build_rate_limiter(settings).governor.limits
    governor = RateGovernor(replace(limits, group_window=GROUP_SECONDS))
    return GovernedRateLimiter(governor, enabled=settings.rate_governor)


class FakeClock:
    """A clock the test moves by hand (starts at the real time so Telegram dates agree)."""

    def __init__(self) -> None:
        self.current = datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@dataclass
class Harness:
    """A running bot and the fake Telegram around it."""

    telegram: FakeBotApi
    settings: Settings
    clock: FakeClock
    errors: list[BaseException] = field(default_factory=list)
    application: SiagaApplication | None = None
    rate_limiter: Callable[[Settings], GovernedRateLimiter] | None = None
    """Builds the governor for each start (default: the settings' ``TELEGRAM_RATE_*``)."""
    outbox_poll_interval: float = 0.05
    """Seconds between the outbox worker's polls (the bot's default is 1; tests go faster)."""
    webhook: Webhook | None = None
    """Updates pushed to PTB's webhook server there (``siaga112 run --webhook-url``), the
    double pushing them; None: long polling."""

    @property
    def app(self) -> SiagaApplication:
        assert self.application is not None
        return self.application

    def operator_messages(self) -> list[Any]:
        return self.telegram.messages_for(OPERATOR_CHAT)

    async def start(self) -> None:
        """Starts the bot exactly as ``run_polling`` (or, with a ``webhook``, ``run_webhook``)
        does (post_init included)."""
        limiter = self.rate_limiter(self.settings) if self.rate_limiter is not None else None
        application = build_application(
            self.settings,
            clock=self.clock,
            outbox_poll_interval=self.outbox_poll_interval,
            rate_limiter=limiter,
        )

        async def record(update: object, context: Any) -> None:
            self.errors.append(context.error)

        application.add_error_handler(record)
        await start_application(
            application, poll_timeout=timedelta(seconds=1), webhook=self.webhook
        )
        self.application = application

    async def stop(self) -> None:
        """Stops the bot like a SIGTERM would."""
        await stop_application(self.app)
        self.application = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def kill(self) -> None:
        """Drops the bot without any shutdown (like ``kill -9``): nothing is flushed."""
        application = self.app
        worker = application.bot_data[SERVICES_KEY].outbox
        await worker.stop()
        assert application.updater is not None
        await application.updater.stop()
        with contextlib.suppress(Exception):
            await application.stop()
        # A dead process's sockets are closed by the kernel: close the Bot API pools (nothing
        # of the bot's own is flushed), or aiohttp reports them unclosed at exit.
        await application.bot.shutdown()
        self.application = None

    async def outbox_drained(self, within: float = 5.0) -> None:
        """Waits until the outbox owes nothing (the worker is woken while waiting)."""
        services = self.app.bot_data[SERVICES_KEY]
        deadline = asyncio.get_running_loop().time() + within
        while await services.queries.pending_deliveries():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the outbox did not drain")
            services.outbox.wake()
            await asyncio.sleep(0.01)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(telegram: FakeBotApi, **overrides: str) -> Settings:
        env = {
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_BASE_URL": telegram.base_url,
            "TELEGRAM_API_FILE_URL": telegram.base_file_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'flow.db'}",
            "OPERATOR_CHAT_ID": str(OPERATOR_CHAT),
            "GEOCODER": "offline",
            # Simulated citizens tap at machine speed; a person takes seconds per step, so the
            # private-chat pace (3, then 1/s) never bites in life but would slow every test.
            # The double enforces no private limit; tests of pacing set their own values.
            "TELEGRAM_RATE_PRIVATE_BURST": "100",
            "TELEGRAM_RATE_PRIVATE_PER_SECOND": "100",
            **overrides,
        }
        return load_settings(env, env_file=None)

    return make


@pytest_asyncio.fixture
async def harness(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> AsyncIterator[Harness]:
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    h = Harness(fake_bot_api, make_settings(fake_bot_api), FakeClock())
    await h.start()
    try:
        yield h
    finally:
        if h.application is not None:
            await h.stop()
    assert not h.errors, f"handler errors: {h.errors!r}"


@contextlib.asynccontextmanager
async def postgres_harness(
    telegram: FakeBotApi, make_settings: Callable[..., Settings], server: str, **overrides: str
) -> AsyncIterator[Harness]:
    """A running bot whose database is a fresh schema of the PostgreSQL test server
    (migrated by the bot's own start, as ``siaga112 run`` does), dropped afterwards."""
    schema = unique_schema("flow")
    telegram.register_forum(OPERATOR_CHAT, "Operator 112")
    url = with_schema(server, schema)
    h = Harness(telegram, make_settings(telegram, DATABASE_URL=url, **overrides), FakeClock())
    try:
        await h.start()
        yield h
    finally:
        if h.application is not None:
            await h.stop()
        await drop_schema(server, schema)
    assert not h.errors, f"handler errors: {h.errors!r}"  # the stop's included, as `harness`


@pytest_asyncio.fixture
async def pg_harness(
    fake_bot_api: FakeBotApi,
    make_settings: Callable[..., Settings],
    postgres_url: str,  # noqa: F811 (the fixture imported above)
) -> AsyncIterator[Harness]:
    """:func:`harness` on PostgreSQL (the rest of the flow tier runs on SQLite)."""
    async with postgres_harness(fake_bot_api, make_settings, postgres_url) as h:
        yield h
