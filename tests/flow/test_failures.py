"""Dependencies fail: the citizen is told (with 112), nothing collected is lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import pytest_asyncio

from bot.config import Settings
from bot.double.fake_bot_api import FakeBotApi
from handlers.context import SERVICES_KEY
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.flow.steps import own_contact_and_name, start_report, submit, tap, wait_button


class BrokenDatabase(Exception):
    """What the database driver raises when the server is gone."""


async def test_citizen_is_told_to_call_112_and_resumes_after_when_the_database_fails(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user, "FIRE")
    intake = harness.app.bot_data[SERVICES_KEY].intake
    working = intake._uow_factory

    def broken() -> object:
        raise BrokenDatabase("connection refused")

    intake._uow_factory = intake._read_uow_factory = broken
    await user.share_location()
    error = await user.wait_reply()
    assert "something went wrong on our side" in (error.text or "")
    assert "112" in (error.text or "")
    await harness.telegram.wait_for(lambda: harness.errors)
    assert [type(e) for e in harness.errors] == [BrokenDatabase]
    harness.errors.clear()

    intake._uow_factory = intake._read_uow_factory = working  # the database is back
    await user.share_location()
    await tap(user, "locok")
    await own_contact_and_name(user)
    ref = await submit(user)
    card = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and "📋" not in (m.text or "")
    )
    assert "Kebakaran" in (card.text or "")  # the category chosen before the failure was kept


@pytest_asyncio.fixture
async def dead_nominatim(fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]):  # type: ignore[no-untyped-def]
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    settings = make_settings(
        fake_bot_api,
        GEOCODER="nominatim",
        NOMINATIM_URL="http://127.0.0.1:9",  # nothing listens on the discard port
        NOMINATIM_MIN_INTERVAL="0",
    )
    h = Harness(fake_bot_api, settings, FakeClock())
    await h.start()
    try:
        yield h
    finally:
        if h.application is not None:
            await h.stop()
    assert not h.errors


@pytest.mark.parametrize("language", ["id", "en"])
async def test_typed_address_is_still_found_offline_when_nominatim_is_unreachable(
    dead_nominatim: Harness, language: str
) -> None:
    user = dead_nominatim.telegram.add_user(language_code=language)
    await start_report(user, "MEDICAL")
    await user.send_text("Jl. Pandanaran, Kel. Pekunden")
    message, _ = await wait_button(user, "locok")
    assert message.raw["venue"]["title"] == "Jl. Pandanaran"  # as typed, the kelurahan once
    assert "Pekunden" in message.raw["venue"]["address"]
    await tap(user, "locok")
    await own_contact_and_name(user)
    ref = await submit(user)
    card = await dead_nominatim.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and "📋" not in (m.text or "")
    )
    assert "Pekunden" in (card.text or "")


async def test_gps_share_is_placed_from_the_polygons_when_nominatim_is_unreachable(
    dead_nominatim: Harness,
) -> None:
    user = dead_nominatim.telegram.add_user(language_code="en")
    await start_report(user, "FIRE")
    await user.share_location()
    message, _ = await wait_button(user, "locok")
    assert "Kel. Pleburan" in (message.text or "")
