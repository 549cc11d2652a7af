"""The agencies file is checked at start: one clear line naming the agency and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import AgencyConfig, SettingsError, load_agencies, load_settings

KECAMATAN = {"Semarang Tengah": "33.74.01", "Tugu": "33.74.16", "Genuk": "33.74.05"}
GOOD = """
[[agency]]
code = "POLSEK_TUGU"
name = "Polsek Tugu"
categories = ["CRIME", "TRAF"]
areas = ["Tugu", "semarang  tengah"]
telegram_chat_id = -1001111
members = [42, 43]
webhook_url = "https://polsek.example/112"
webhook_secret_env = "POLSEK_SECRET"
ack_deadline_seconds = 120
phone = "+62 24 123-456"
"""


def _load(
    tmp_path: Path, toml: str, environ: dict[str, str] | None = None
) -> tuple[AgencyConfig, ...]:
    path = tmp_path / "agencies.toml"
    path.write_text(toml)
    return load_agencies(path, {"POLSEK_SECRET": "s3cret"} if environ is None else environ,
                         KECAMATAN)  # fmt: skip


def test_agencies_file_resolves_kecamatan_names_to_codes_when_valid(tmp_path: Path) -> None:
    (agency,) = _load(tmp_path, GOOD)
    assert agency.area_codes == ("33.74.16", "33.74.01")
    assert agency.members == frozenset({42, 43})
    assert agency.webhook_secret.value == "s3cret"
    assert "s3cret" not in repr(agency)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('"Tugu"', '"Tuguu"'), "unknown kecamatan 'Tuguu' in areas (did you mean 'Tugu'?)"),
        (('"TRAF"]', '"TRAFFIC"]'), "agency POLSEK_TUGU: unknown categories ['TRAFFIC']"),
        (('"TRAF"]', '"CRIME"]'), "agency POLSEK_TUGU: a category appears twice"),
        (("https://polsek.example/112", "ftp://x"), "webhook_url 'ftp://x' must be an http(s) URL"),
        (('webhook_secret_env = "POLSEK_SECRET"', ""), "webhook_url needs webhook_secret_env"),
        (('"POLSEK_SECRET"', '"NOT_SET"'), "the variable NOT_SET (webhook_secret_env) is not set"),
        (("[42, 43]", '["budi"]'), "members must be a list of Telegram user ids"),
        (("_seconds = 120", "_seconds = 0"), "ack_deadline_seconds must be > 0"),
        (("ack_deadline_seconds", "ack_deadline"), "unknown key 'ack_deadline'"),
        (("-1001111", '"-1001111"'), "telegram_chat_id must be an integer chat id"),
        (('"+62 24 123-456"', '"call us"'), "phone 'call us' is not a phone number"),
        (('"POLSEK_TUGU"', '"polsek tugu"'), "code 'polsek tugu' must be"),
    ],
)  # fmt: skip
def test_agencies_file_is_refused_with_one_line_naming_agency_and_value_when_invalid(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, GOOD.replace(*change))
    assert caught.value.variable == "AGENCIES_FILE"
    assert problem in caught.value.problem
    assert "\n" not in str(caught.value)


def test_agencies_file_is_refused_when_two_agencies_share_a_code(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="'POLSEK_TUGU' appears twice"):
        _load(tmp_path, GOOD + GOOD)


def test_secret_is_read_from_the_env_file_too_when_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "agencies.toml"
    path.write_text(GOOD.replace('areas = ["Tugu", "semarang  tengah"]', 'areas = ["Tugu"]'))
    env = tmp_path / ".env"
    env.write_text("POLSEK_SECRET=from-dotenv\n")
    settings = load_settings({"AGENCIES_FILE": str(path)}, env_file=env)
    assert settings.agencies[0].webhook_secret.value == "from-dotenv"
    assert settings.agencies[0].area_codes == ("33.74.16",)  # the real gazetteer's code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", None), ("off", None), ("127.0.0.1:8088", ("127.0.0.1", 8088)), ("[::1]:9", ("::1", 9))],
)
def test_agency_api_listen_is_parsed_when_set(raw: str, expected: object) -> None:
    settings = load_settings({"AGENCY_API_LISTEN": raw}, env_file=None)
    assert settings.agency_api_listen == expected


@pytest.mark.parametrize("raw", ["8088", "localhost:http", "host:70000"])
def test_agency_api_listen_is_refused_when_not_host_and_port(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"AGENCY_API_LISTEN": raw}, env_file=None)
    assert caught.value.variable == "AGENCY_API_LISTEN"
