"""Fixtures for the harness's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from telegram import Bot

from bot.double.fake_bot_api import FakeBotApi
from tests.harness.fixtures import fake_bot_api, recording_request

__all__ = ["bot", "fake_bot_api", "ptb_timedelta", "recording_request"]


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Durations as PTB 23 will return them (timedelta), without PTB 22's deprecation noise."""
    monkeypatch.setenv("PTB_TIMEDELTA", "1")


@pytest_asyncio.fixture
async def bot(fake_bot_api: FakeBotApi) -> AsyncIterator[Bot]:
    """A plain PTB Bot talking to the fake over loopback."""
    async with Bot(
        fake_bot_api.token,
        base_url=fake_bot_api.base_url,
        base_file_url=fake_bot_api.base_file_url,
    ) as ptb_bot:
        yield ptb_bot
