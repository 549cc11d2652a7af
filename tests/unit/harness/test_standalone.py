"""The fake Bot API as a separate process, driven over its control endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from telegram import Bot
from telegram.error import RetryAfter

REPO_ROOT = Path(__file__).resolve().parents[3]


@contextlib.asynccontextmanager
async def _standalone(*flags: str) -> AsyncIterator[dict[str, str]]:
    """Starts ``python -m bot.double.fake_bot_api --port 0 ...`` and reads its settings."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.double.fake_bot_api",
        "--port",
        "0",
        "--forum",
        "-1001234567890:Operator 112",
        *flags,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    settings: dict[str, str] = {}
    try:
        while "TELEGRAM_BOT_TOKEN" not in settings:
            line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
            assert line, "the standalone server exited before printing its settings"
            key, _, value = line.partition("=")
            settings[key] = value
        yield settings
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        settings["exit"] = str(await asyncio.wait_for(process.wait(), 10))


@pytest_asyncio.fixture
async def standalone() -> AsyncIterator[dict[str, str]]:
    """The standalone server with its defaults."""
    async with _standalone() as settings:
        yield settings


async def test_black_box_run_is_driven_by_curl_style_requests_when_standalone(
    standalone: dict[str, str],
) -> None:
    base = standalone["TELEGRAM_API_BASE_URL"].removesuffix("/bot")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/_control/updates", json={"user_id": 42, "text": "/start"}
        ) as r:
            assert r.status == 200
        async with Bot(
            standalone["TELEGRAM_BOT_TOKEN"],
            base_url=standalone["TELEGRAM_API_BASE_URL"],
            base_file_url=standalone["TELEGRAM_API_FILE_URL"],
        ) as bot:
            updates = await bot.get_updates(timeout=1)
            assert updates[0].message is not None
            assert updates[0].message.text == "/start"
            await bot.send_message(42, "Halo, ada yang bisa dibantu?")
            topic = await bot.create_forum_topic(-1001234567890, "SMG-0001")
        async with http.get(f"{base}/_control/messages", params={"chat_id": "42"}) as r:
            messages = json.loads(await r.text())["result"]
    assert [m["text"] for m in messages] == ["Halo, ada yang bisa dibantu?"]
    assert topic.name == "SMG-0001"


async def test_standalone_answers_429_beyond_the_limits_when_started_with_flood_control() -> None:
    async with _standalone("--flood-control", "group_per_minute=2") as settings:
        base = settings["TELEGRAM_API_BASE_URL"].removesuffix("/bot")
        async with Bot(
            settings["TELEGRAM_BOT_TOKEN"],
            base_url=settings["TELEGRAM_API_BASE_URL"],
            base_file_url=settings["TELEGRAM_API_FILE_URL"],
        ) as bot:
            await bot.send_message(-1001234567890, "kartu 1")
            await bot.send_message(-1001234567890, "kartu 2")
            with pytest.raises(RetryAfter):
                await bot.send_message(-1001234567890, "kartu 3")
        async with aiohttp.ClientSession() as http, http.get(f"{base}/_control/flood") as r:
            flood = json.loads(await r.text())["result"]
    assert flood["limits"] == {"group": [2, 60.0], "overall": [30, 1.0], "private": None}
    assert flood["stats"]["refused"] == {"sendMessage": 1}
