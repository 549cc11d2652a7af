"""The console script as deployments use it: a separate process, configured by environment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.double.fake_bot_api import FakeBotApi
from tests.flow.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
OPERATORS = -1009876543210


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env["GEOCODER"] = "offline"
    env.update(values)
    return env


async def _siaga(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args,
        cwd=tmp_path, env=_env(tmp_path, **env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_run_stops_with_one_line_naming_the_token_when_it_is_missing(tmp_path: Path) -> None:
    code, out, err = await _siaga(tmp_path, "run")
    assert code == 2
    assert err.strip().splitlines() == [
        "siaga112: TELEGRAM_BOT_TOKEN: is required to talk to Telegram"
    ]
    assert "Traceback" not in err + out


async def test_invalid_setting_is_named_and_the_token_hidden_when_start_up_fails(
    tmp_path: Path,
) -> None:
    token = "987654:AAH-do-not-print-me"
    code, out, err = await _siaga(
        tmp_path, "run", TELEGRAM_BOT_TOKEN=token, OPERATOR_CHAT_ID="operators"
    )
    assert code == 2
    assert "OPERATOR_CHAT_ID" in err
    assert len(err.strip().splitlines()) == 1
    assert token not in err + out


async def test_version_and_help_are_printed_when_asked(tmp_path: Path) -> None:
    code, out, _ = await _siaga(tmp_path, "--version")
    assert code == 0
    assert out.startswith("siaga112 ")
    code, out, _ = await _siaga(tmp_path, "--help")
    assert code == 0
    assert "run" in out
    assert "check" in out
    assert "db" in out


async def test_db_upgrade_creates_the_schema_and_check_reports_it_when_run(tmp_path: Path) -> None:
    code, out, err = await _siaga(tmp_path, "db", "upgrade")
    assert code == 0, err
    assert (tmp_path / "cli.db").exists()
    code, out, err = await _siaga(tmp_path, "check")
    assert code == 0, out + err
    assert "database reachable" in out
    assert "FAIL" not in out


async def test_check_verifies_bot_and_operator_forum_when_a_token_is_set(tmp_path: Path) -> None:
    async with FakeBotApi() as fake:
        fake.register_forum(OPERATORS, "Operator 112")
        assert (await _siaga(tmp_path, "db", "upgrade"))[0] == 0
        code, out, err = await _siaga(
            tmp_path, "check", TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE_URL=fake.base_url, TELEGRAM_API_FILE_URL=fake.base_file_url,
            OPERATOR_CHAT_ID=str(OPERATORS),
        )  # fmt: skip
    assert "ok    bot @siaga112_test_bot answers getMe" in out, out + err
    assert "ok    operators' chat is a forum (topics on)" in out
    assert "ok    bot may manage topics in the operators' chat" in out
    assert "ok    console mode: one forum topic per ticket" in out
    assert code == 0, out
    assert fake.token not in out + err


@pytest.mark.parametrize(("language", "expected"), [("id", "Laporkan"), ("en", "Report")])
async def test_running_bot_answers_start_and_exits_on_sigterm_when_pointed_at_a_bot_api_double(
    tmp_path: Path, language: str, expected: str
) -> None:
    async with FakeBotApi() as fake:
        fake.register_forum(OPERATORS, "Operator 112")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=tmp_path,
            env=_env(
                tmp_path, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE_URL=fake.base_url,
                TELEGRAM_API_FILE_URL=fake.base_file_url, OPERATOR_CHAT_ID=str(OPERATORS),
            ),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            user = fake.add_user(language_code=language)
            await user.send_command("start")
            reply = await user.wait_reply(timeout=30)
            assert any(expected in label for label in reply.button_texts), reply.button_texts
            await fake.wait_for(lambda: fake.poll_count > 1, timeout=10)  # polling again
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 10)
            elapsed = time.monotonic() - started
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        _, err = await process.communicate()
    assert code == 0, err.decode()
    assert elapsed < 5.0
    assert fake.token not in err.decode()
    assert "objects of the start frozen out of garbage collection" in err.decode()


async def test_check_fails_and_says_what_to_do_without_creating_the_database_file(
    tmp_path: Path,
) -> None:
    code, out, _ = await _siaga(tmp_path, "check")
    assert code == 1
    db = tmp_path / "cli.db"
    assert f"FAIL  database file {db} does not exist: run `siaga112 db upgrade`" in out
    assert not db.exists()  # checking never creates an empty database


async def test_check_names_telegrams_reason_when_the_operators_chat_is_unknown(
    tmp_path: Path,
) -> None:
    async with FakeBotApi() as fake:  # no chat registered: Telegram says "chat not found"
        assert (await _siaga(tmp_path, "db", "upgrade"))[0] == 0
        code, out, err = await _siaga(
            tmp_path, "check", TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE_URL=fake.base_url, TELEGRAM_API_FILE_URL=fake.base_file_url,
            OPERATOR_CHAT_ID=str(OPERATORS),
        )  # fmt: skip
    assert code == 1, out + err
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, out
    assert str(OPERATORS) in failed[0]
    assert "chat not found" in failed[0].lower()


async def test_run_without_a_reachable_bot_api_ends_with_one_line_naming_the_host(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there: connection refused, on loopback
    code, out, err = await _siaga(
        tmp_path, "run", TELEGRAM_BOT_TOKEN="123456:AAH-offline-token",
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{port}/bot",
    )  # fmt: skip
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("siaga112: run failed: cannot reach 127.0.0.1 (")
    assert "TELEGRAM_API_BASE_URL" in lines[0]
    assert "Traceback" not in err + out
    assert "AAH-offline-token" not in err + out


async def test_webhook_secret_on_the_command_line_is_refused_with_one_line(
    tmp_path: Path,
) -> None:
    code, _, err = await _siaga(
        tmp_path, "run", "--webhook-url", "https://bot.example/hook", "--secret", "s3cret",
        TELEGRAM_BOT_TOKEN="123456:AAH-token",
    )  # fmt: skip
    assert code == 2
    assert err.strip().splitlines() == [
        "siaga112: --secret: is not read from the command line (every user can see it with "
        "ps): set TELEGRAM_WEBHOOK_SECRET instead"
    ]
    assert not (tmp_path / "cli.db").exists()  # refused before anything started


async def test_webhook_secret_that_telegram_would_refuse_is_named_at_start(
    tmp_path: Path,
) -> None:
    code, _, err = await _siaga(
        tmp_path, "run", TELEGRAM_BOT_TOKEN="123456:AAH-token",
        TELEGRAM_WEBHOOK_SECRET="has spaces and ü",
    )  # fmt: skip
    assert code == 2
    assert err.strip().splitlines() == [
        "siaga112: TELEGRAM_WEBHOOK_SECRET: must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
    ]


async def _listening(port: int, within: float = 20.0) -> None:
    """Waits until something accepts connections on the port (the webhook server)."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


async def test_webhook_mode_accepts_only_updates_with_the_secret_from_the_environment(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    async with FakeBotApi() as fake:
        fake.register_forum(OPERATORS, "Operator 112")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--webhook-url", url,
            "--listen", "127.0.0.1", "--port", str(port),
            cwd=tmp_path,
            env=_env(
                tmp_path, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_BASE_URL=fake.base_url,
                TELEGRAM_API_FILE_URL=fake.base_file_url, OPERATOR_CHAT_ID=str(OPERATORS),
                TELEGRAM_WEBHOOK_SECRET="s3cret-Token_1", LOG_LEVEL="DEBUG",
            ),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            registered = await fake.wait_for_call("setWebhook", timeout=30)
            assert registered.params["url"] == url
            assert registered.params["secret_token"] == "s3cret-Token_1"
            user = fake.add_user(language_code="en")
            forged = fake.updates.command(user.user, "start")
            forged["update_id"] = 10_000
            fake.model.accept_update(forged)  # the fake learns the chat (nobody pushes this)
            await _listening(port)
            async with aiohttp.ClientSession() as session:
                refused = await session.post(url, json=forged)  # without the secret
                assert refused.status == 403
            await user.send_command("start")  # pushed by the fake, with the bot's secret
            reply = await fake.wait_for_message(user.id, timeout=10)
            assert "112" in (reply.text or "")
            assert len(fake.messages_for(user.id)) == 1  # the forged update did nothing
            assert fake.webhook.pushed == 1
            assert not fake.pending_updates
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 10)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        out, err = await process.communicate()
    assert code == 0
    logged = (out + err).decode()
    assert "DEBUG bot.loop" in logged  # the bot's own DEBUG lines are logged, but PTB's are
    assert "setWebhook" not in logged  # not: they echo every call and update in full
    assert "s3cret-Token_1" not in logged  # (citizens' phones and names; here the secret)
    assert fake.token not in logged
