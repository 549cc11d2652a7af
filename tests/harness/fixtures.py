"""Pytest fixtures for both tiers. Use them from a conftest.py::

    from tests.harness.fixtures import fake_bot_api, recording_request  # noqa: F401

(or ``pytest_plugins = ["tests.harness.fixtures"]`` in the root conftest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.double.fake_bot_api import FakeBotApi
from bot.double.recording import RecordingRequest


@pytest_asyncio.fixture
async def fake_bot_api() -> AsyncIterator[FakeBotApi]:
    """A started fake Bot API on a free loopback port, stopped (quickly) afterwards."""
    async with FakeBotApi() as fake:
        yield fake


@pytest.fixture
def recording_request() -> RecordingRequest:
    """A fresh recording request for the handler tier."""
    return RecordingRequest()
