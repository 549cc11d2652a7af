"""Advisories through the real Application and the fake Bot API: a citizen subscribes from
the menu, an admin composes, previews and confirms; the copy and the report arrive."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest_asyncio

from bot.config import Settings
from bot.double.fake_bot_api import FakeBotApi
from bot.double.simulated import SimUser
from handlers.context import SERVICES_KEY
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.flow.steps import tap

ADMIN = 9001
ROOT = Path(__file__).resolve().parents[2]
CAP = ROOT / "tests" / "fixtures" / "cap"


@pytest_asyncio.fixture
async def with_admin(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Harness, SimUser]]:
    """A bot with one admin (whose chat with the bot is open)."""
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    admin = fake_bot_api.add_user(ADMIN, "Admin")
    h = Harness(fake_bot_api, make_settings(fake_bot_api, ADMIN_USER_IDS=str(ADMIN)), FakeClock())
    await h.start()
    try:
        yield h, admin
    finally:
        if h.application is not None:
            await h.stop()
    assert not h.errors, f"handler errors: {h.errors!r}"


async def subscribe_whole_city(citizen: SimUser) -> None:
    await citizen.send_command("start")
    await citizen.wait_reply()
    shown = await tap(citizen, "advisories")
    assert "belum menerima imbauan" in (shown.text or "")
    saved = await tap(citizen, "sub|city")
    assert "Tersimpan" in (saved.text or "")
    assert "seluruh kota" in (saved.text or "")


async def test_subscriber_receives_the_advisory_and_the_admin_a_report_when_confirmed(
    with_admin: tuple[Harness, SimUser],
) -> None:
    harness, admin = with_admin
    citizen = harness.telegram.add_user()
    bystander = harness.telegram.add_user()
    await subscribe_whole_city(citizen)
    await bystander.send_command("start")  # known to the bot, never subscribed
    await bystander.wait_reply()

    await admin.send_command("broadcast")
    assert "Imbauan baru" in ((await admin.wait_reply()).text or "")
    await admin.send_text("Waspada banjir rob di Semarang Utara malam ini.")
    await admin.wait_reply()
    await tap(admin, "all")
    preview = await admin.wait_reply(lambda m: "Pratinjau" in (m.text or ""))
    assert "Penerima saat ini: 1" in (preview.text or "")
    await tap(admin, "ok")

    copy = await citizen.wait_reply(lambda m: "Imbauan dari" in (m.text or ""))
    assert "Waspada banjir rob" in (copy.text or "")
    assert "112" in (copy.text or "")
    report = await admin.wait_reply(lambda m: "selesai" in (m.text or ""), timeout=10)
    assert "terkirim 1 · diblokir 0 · gagal 0" in (report.text or "")
    assert not [m for m in bystander.messages if "Imbauan dari" in (m.text or "")]


async def test_admin_targets_a_radius_around_a_shared_location_when_composing(
    with_admin: tuple[Harness, SimUser],
) -> None:
    harness, admin = with_admin
    await subscribe_whole_city(harness.telegram.add_user())

    await admin.send_command("broadcast")
    await admin.wait_reply()
    await admin.send_text("Pohon tumbang di Jl. Sisingamangaraja.")
    await admin.wait_reply()
    await tap(admin, "rad")
    await admin.share_location(-7.0, 110.41)
    await admin.wait_reply(lambda m: bool(m.inline_buttons))
    await tap(admin, "r|500")
    preview = await admin.wait_reply(lambda m: "Pratinjau" in (m.text or ""))
    assert "500 m di sekitar -7.00000, 110.41000" in (preview.text or "")
    assert "Penerima saat ini: 1" in (preview.text or "")
    discarded = await tap(admin, "no")

    assert "dibuang" in (discarded.text or "")


async def test_non_admin_is_refused_and_keeps_the_citizen_menu_when_sending_broadcast(
    with_admin: tuple[Harness, SimUser],
) -> None:
    harness, _admin = with_admin
    citizen = harness.telegram.add_user()

    await citizen.send_command("broadcast")
    refused = await citizen.wait_reply()
    await citizen.send_command("broadcast_cancel")
    again = await citizen.wait_reply()
    await citizen.send_text("halo")
    after = await citizen.wait_reply()

    assert "Hanya admin" in (refused.text or "")
    assert "Hanya admin" in (again.text or "")
    assert "Hanya admin" not in (after.text or "")


async def cap_import(harness: Harness, fixture: str) -> tuple[int, str]:
    """``siaga112 cap import`` in its own process, on the running bot's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env.update(
        PYTHONPATH=str(ROOT), DATABASE_URL=harness.settings.database_url, GEOCODER="offline",
        ADMIN_USER_IDS=str(ADMIN),
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "cap", "import", str(CAP / fixture), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode() + err.decode()


async def test_admin_sends_a_cap_draft_after_review_when_an_alert_touches_the_city(
    with_admin: tuple[Harness, SimUser],
) -> None:
    harness, admin = with_admin
    await admin.send_command("start")  # the admin's chat with the bot is open
    await admin.wait_reply()
    tugu = harness.telegram.add_user()
    await tugu.send_command("start")
    await tugu.wait_reply()
    await tap(tugu, "advisories")
    await tap(tugu, "sub|pick")
    await tap(tugu, "sub|kec|33.74.16")  # Tugu

    code, output = await cap_import(harness, "inside.xml")
    assert code == 0, output
    harness.clock.advance(timedelta(minutes=1))  # the import's rows are due on the real clock
    harness.app.bot_data[SERVICES_KEY].outbox.wake()
    offer = await admin.wait_reply(lambda m: "Draf imbauan" in (m.text or ""), timeout=10)
    assert not [m for m in tugu.messages if "Imbauan dari" in (m.text or "")]
    await tap(admin, f"take|{offer.inline_buttons[0]['callback_data'].split('|')[-1]}")
    await admin.wait_reply(lambda m: "Pratinjau" in (m.text or ""))
    await tap(admin, "ok")
    copy = await tugu.wait_reply(lambda m: "Imbauan dari" in (m.text or ""), timeout=10)

    assert "offered to the admins" in output
    assert "Peringatan Dini Cuaca Jawa Tengah" in (copy.text or "")


async def test_cap_import_skips_the_alert_with_a_line_when_it_is_outside_the_city(
    with_admin: tuple[Harness, SimUser],
) -> None:
    harness, _admin = with_admin

    code, output = await cap_import(harness, "outside.xml")

    assert code == 0, output
    assert "skipped: its areas do not touch the city" in output
    assert "CJH20261129163000 skipped: outside" in output


async def test_admin_gets_statistics_as_text_and_a_chart_when_asking_for_stats(
    with_admin: tuple[Harness, SimUser],
) -> None:
    harness, admin = with_admin

    await admin.send_command("stats", "30")
    text = await admin.wait_reply()
    await harness.telegram.wait_for(lambda: harness.telegram.calls_to("sendPhoto"))

    assert "Statistik" in (text.text or "")
    assert "Laporan: 0" in (text.text or "")
    photo = harness.telegram.calls_to("sendPhoto")[-1]
    assert photo.ok


async def siaga(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
               GEOCODER="offline")  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_export_writes_the_csv_header_and_personal_columns_only_when_asked(
    tmp_path: Path,
) -> None:
    code, plain, plain_err = await siaga(tmp_path, "export", "--since", "2026-11-01")
    code_personal, _, err = await siaga(
        tmp_path, "export", "--since", "2026-11-01", "--with-personal-data", "-o", "out.csv"
    )
    bad, _, bad_err = await siaga(tmp_path, "export", "--since", "yesterday")

    assert code == 0, plain_err
    assert plain.splitlines()[0].startswith("ref,status,category,")
    assert "caller_phone" not in plain
    assert code_personal == 0
    assert "caller_phone" in (tmp_path / "out.csv").read_text().splitlines()[0]
    assert "0 tickets written" in err
    assert bad == 2
    assert "must be a date" in bad_err
