"""The privacy notice, the welcome and the data screens, as a citizen reads them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from telegram import InlineKeyboardMarkup

from bot.config import Settings, SettingsError, load_settings
from bot.domain.model import Citizen, Location, LocationSource, Ticket, TicketStatus
from bot.services.privacy import EraseStatus, Erasure, HeldTicket, MyData
from handlers.privacy_views import PrivacyViews
from handlers.views import Text, Views

T = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def views(**environ: str) -> PrivacyViews:
    settings = load_settings(environ, env_file=None)
    return PrivacyViews(Views(settings), settings)


def text_of(screen_reply: object) -> str:
    assert isinstance(screen_reply, Text)
    return screen_reply.text


@pytest.mark.parametrize(
    ("language", "see", "delete"),
    [("id", "/datasaya", "/hapusdata"), ("en", "/mydata", "/deletemydata")],
)
def test_notice_states_the_configured_periods_and_controller_when_settings_change(
    language: str, see: str, delete: str
) -> None:
    default = text_of(views().notice(language).replies[0])
    changed = text_of(
        views(
            RETENTION_DAYS="90", DRAFT_RETENTION_DAYS="7",
            PRIVACY_CONTROLLER="Diskominfo Kota Semarang", PRIVACY_CONTACT="data@kota.example",
        ).notice(language).replies[0]
    )  # fmt: skip
    assert "365" in default
    assert "30" in default
    assert "Pemerintah Kota Semarang (Call Center 112)" in default
    assert " 90 " in changed
    assert " 7 " in changed
    assert "365" not in changed
    assert "Diskominfo Kota Semarang" in changed
    assert "data@kota.example" in changed
    assert see in changed
    assert delete in changed
    assert "27" in changed  # UU No. 27/2022


@pytest.mark.parametrize("language", ["id", "en"])
def test_welcome_is_short_with_a_privacy_button_when_a_citizen_starts(language: str) -> None:
    settings: Settings = load_settings({}, env_file=None)
    screen = Views(settings).welcome(Citizen(1, language))
    reply = screen.replies[0]
    assert isinstance(reply, Text)
    assert len(reply.text) <= 300
    assert len(re.sub(r"<[^>]+>", "", reply.text)) <= 300
    assert "112" in reply.text
    assert isinstance(reply.markup, InlineKeyboardMarkup)
    buttons = {b.callback_data: b.text for row in reply.markup.inline_keyboard for b in row}
    assert buttons["p|notice"] == ("🔒 Privasi" if language == "id" else "🔒 Privacy")
    assert "m|report" in buttons


def test_my_data_shows_what_is_held_when_the_citizen_is_known() -> None:
    citizen = Citizen(42, "en", name="Siti <b>R</b>", phone_e164="+6281234", phone_verified=True)
    text = text_of(views().my_data(MyData("en", citizen, ())).replies[0])
    assert "Siti &lt;b&gt;R&lt;/b&gt;" in text
    assert "+6281234 (verified)" in text
    assert "Telegram account: 42" in text
    assert "/deletemydata" in text


def test_erasure_question_names_the_open_reports_kept_when_some_are_open() -> None:
    screen = views().erase_confirm(Erasure("id", EraseStatus.CONFIRM, ("SMG-261129-0001",), 2))
    reply = screen.replies[0]
    assert isinstance(reply, Text)
    assert "SMG-261129-0001" in reply.text
    assert isinstance(reply.markup, InlineKeyboardMarkup)
    assert [b.callback_data for b in reply.markup.inline_keyboard[0]] == [
        "p|erase|yes",
        "p|erase|no",
    ]


@pytest.mark.parametrize("variable", ["RETENTION_DAYS", "DRAFT_RETENTION_DAYS"])
def test_retention_setting_is_refused_when_not_a_positive_number(variable: str) -> None:
    for raw in ("0", "-3", "a year"):
        with pytest.raises(SettingsError) as error:
            load_settings({variable: raw}, env_file=None)
        assert error.value.variable == variable


def test_privacy_settings_have_documented_defaults_when_unset() -> None:
    settings = load_settings({}, env_file=None)
    assert (settings.retention_days, settings.draft_retention_days) == (365, 30)
    assert settings.privacy_controller == "Pemerintah Kota Semarang (Call Center 112)"
    assert settings.privacy_contact == ""


def test_my_data_stays_one_telegram_message_when_many_long_reports_are_held() -> None:
    citizen = Citizen(42, "id", name="Siti", phone_e164="+6281234")
    tickets = tuple(
        HeldTicket(
            Ticket(
                1, 42, TicketStatus.RESOLVED, T, T, ref=f"SMG-261129-{n:04d}",
                caller_name="Siti " * 20, caller_phone_e164="+6281234", details="x" * 3000,
                incident_location=Location(-6.99, 110.42, LocationSource.GPS, T,
                                           address_text="Jalan " * 100),
            )
        )
        for n in range(30)
    )  # fmt: skip
    text = text_of(views().my_data(MyData("id", citizen, tickets)).replies[0])
    assert len(text) <= 4096
    assert "SMG-261129-0000" in text
    assert "laporan yang lebih lama" in text
    assert "/hapusdata" in text
