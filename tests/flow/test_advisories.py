"""Advisories through the real Application and the fake Bot API: a citizen subscribes from
the menu, an admin composes, previews and confirms; the copy and the report arrive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest_asyncio

from bot.config import Settings
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.flow.steps import tap
from tests.harness.fake_bot_api import FakeBotApi
from tests.harness.simulated import SimUser

ADMIN = 9001


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
