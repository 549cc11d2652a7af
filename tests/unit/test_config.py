"""Settings: environment > .env > defaults; one clear error naming the variable."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.config import PUBLIC_NOMINATIM_URL, SettingsError, load_settings

TOKEN = "123456:AAH-super-secret-token"


def test_defaults_match_the_operating_contract_when_nothing_is_set() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///siaga112.db"
    assert settings.geocoder == "nominatim"
    assert settings.nominatim_url == PUBLIC_NOMINATIM_URL
    assert settings.nominatim_user_agent.startswith("siaga112/")
    assert settings.nominatim_min_interval == 1.0
    assert settings.default_language == "id"
    assert settings.timezone == ZoneInfo("Asia/Jakarta")
    assert settings.emergency_phone == "112"
    assert settings.operator_chat_id is None
    assert settings.operator_user_ids == frozenset()
    assert settings.telegram_api_base_url == "https://api.telegram.org/bot"
    assert {a.code for a in settings.agencies} >= {"DINKES", "DAMKAR", "BPBD", "POLRESTABES"}


def test_environment_wins_over_dotenv_when_both_set_a_value(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("EMERGENCY_PHONE=110\nDEFAULT_LANGUAGE=en\nOPERATOR_CHAT_ID=-100\n")
    settings = load_settings({"EMERGENCY_PHONE": "112"}, env_file=env_file)
    assert settings.emergency_phone == "112"
    assert settings.default_language == "en"
    assert settings.operator_chat_id == -100


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "sqlite:///sync-driver.db"),
        ("OPERATOR_CHAT_ID", "operators"),
        ("OPERATOR_USER_IDS", "1,two,3"),
        ("ADMIN_USER_IDS", "x"),
        ("GEOCODER", "google"),
        ("DEFAULT_LANGUAGE", "fr"),
        ("TIMEZONE", "Mars/Olympus"),
        ("EMERGENCY_PHONE", "call us"),
        ("TELEGRAM_API_BASE_URL", "ftp://example"),
        ("NOMINATIM_URL", "nominatim.local"),
        ("NOMINATIM_MIN_INTERVAL", "0.2"),
        ("INTAKE_TIMEOUT_MINUTES", "0"),
        ("MAX_OPEN_TICKETS", "many"),
        ("AGENCIES_FILE", "/nonexistent/agencies.toml"),
        ("LOG_LEVEL", "LOUD"),
        ("TELEGRAM_RATE_GOVERNOR", "maybe"),
        ("TELEGRAM_RATE_OVERALL_PER_SECOND", "0"),
        ("TELEGRAM_RATE_GROUP_PER_MINUTE", "twenty"),
        ("TELEGRAM_RATE_PRIVATE_PER_SECOND", "nan"),
        ("TELEGRAM_RATE_PRIVATE_PER_SECOND", "0"),
        ("TELEGRAM_RATE_PRIVATE_BURST", "1.5"),
        ("TELEGRAM_RATE_BROADCAST_PER_SECOND", "31"),
        ("TELEGRAM_RATE_BROADCAST_MAX_LAG_MS", "-1"),
        ("TELEGRAM_RATE_BROADCAST_MAX_LAG_MS", "2.5"),
        ("TELEGRAM_WEBHOOK_SECRET", "with space"),
        ("TELEGRAM_WEBHOOK_SECRET", "x" * 257),
        ("SQLITE_DRIVER", "aiosqlite"),
        ("TELEGRAM_HTTP_CLIENT", "requests"),
    ],
)
def test_invalid_value_names_its_variable_when_loading(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({variable: value, "TELEGRAM_BOT_TOKEN": TOKEN}, env_file=None)
    assert caught.value.variable == variable
    assert TOKEN not in str(caught.value)


def test_missing_token_names_the_variable_when_the_bot_needs_it() -> None:
    settings = load_settings({}, env_file=None)
    with pytest.raises(SettingsError) as caught:
        settings.require_token()
    assert caught.value.variable == "TELEGRAM_BOT_TOKEN"


def test_token_never_shows_in_repr_when_settings_are_printed() -> None:
    settings = load_settings({"TELEGRAM_BOT_TOKEN": TOKEN}, env_file=None)
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.telegram_bot_token)
    assert settings.require_token() == TOKEN


def test_webhook_secret_comes_from_the_environment_and_never_shows_in_repr() -> None:
    secret = "s3cret-Token_1"
    settings = load_settings(
        {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": secret}, env_file=None
    )
    assert settings.telegram_webhook_secret.value == secret
    assert secret not in repr(settings)
    assert not load_settings({}, env_file=None).telegram_webhook_secret  # unset: no secret


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ("[[agency]]\nname = 'X'\ncategories = ['MED']\n", "code"),
        ("[[agency]]\ncode = 'X'\nname = 'X'\ncategories = ['NOPE']\n", "unknown categories"),
        ("[[agency]]\ncode='A'\nname='A'\ncategories=['MED']\n" * 2, "twice"),
        ("agency = 3\n", "at least one"),
        ("[[agency]\n", "not valid TOML"),
    ],
)
def test_invalid_agencies_file_is_refused_when_loading(
    tmp_path: Path, toml: str, problem: str
) -> None:
    path = tmp_path / "agencies.toml"
    path.write_text(toml)
    with pytest.raises(SettingsError) as caught:
        load_settings({"AGENCIES_FILE": str(path)}, env_file=None)
    assert caught.value.variable == "AGENCIES_FILE"
    assert problem in caught.value.problem


def test_self_hosted_nominatim_is_not_throttled_when_no_interval_is_set() -> None:
    settings = load_settings({"NOMINATIM_URL": "http://nominatim.internal:8080/"}, env_file=None)
    assert settings.nominatim_url == "http://nominatim.internal:8080"
    assert settings.nominatim_min_interval == 0


def test_rate_governor_is_on_with_telegrams_limits_when_nothing_is_set() -> None:
    settings = load_settings({}, env_file=None)
    assert settings.rate_governor is True
    assert settings.rate_overall_per_second == 30
    assert settings.rate_group_per_minute == 20
    assert settings.rate_private_per_second == 1.0
    assert settings.rate_private_burst == 3
    assert settings.rate_broadcast_per_second == 20


def test_rate_budgets_follow_the_environment_when_set() -> None:
    settings = load_settings(
        {
            "TELEGRAM_RATE_GOVERNOR": "off",
            "TELEGRAM_RATE_OVERALL_PER_SECOND": "10",
            "TELEGRAM_RATE_GROUP_PER_MINUTE": "15",
            "TELEGRAM_RATE_PRIVATE_PER_SECOND": "0.5",
            "TELEGRAM_RATE_PRIVATE_BURST": "2",
        },
        env_file=None,
    )
    assert settings.rate_governor is False
    assert settings.rate_overall_per_second == 10
    assert settings.rate_group_per_minute == 15
    assert settings.rate_private_per_second == 0.5
    assert settings.rate_private_burst == 2
    assert settings.rate_broadcast_per_second == 10  # the default never exceeds the overall rate


def test_broadcast_rate_names_the_overall_rate_when_it_exceeds_it() -> None:
    with pytest.raises(SettingsError, match="TELEGRAM_RATE_OVERALL_PER_SECOND") as caught:
        load_settings(
            {"TELEGRAM_RATE_OVERALL_PER_SECOND": "25", "TELEGRAM_RATE_BROADCAST_PER_SECOND": "26"},
            env_file=None,
        )
    assert caught.value.variable == "TELEGRAM_RATE_BROADCAST_PER_SECOND"


@pytest.mark.parametrize(("raw", "expected"), [(None, "inline"), ("thread", "thread")])
def test_sqlite_driver_defaults_to_inline_when_unset(raw: str | None, expected: str) -> None:
    env = {"SQLITE_DRIVER": raw} if raw is not None else {}
    assert load_settings(env, env_file=None).sqlite_driver == expected


@pytest.mark.parametrize(("raw", "expected"), [(None, "aiohttp"), ("httpx", "httpx")])
def test_http_client_defaults_to_aiohttp_when_unset(raw: str | None, expected: str) -> None:
    env = {"TELEGRAM_HTTP_CLIENT": raw} if raw is not None else {}
    assert load_settings(env, env_file=None).telegram_http_client == expected
