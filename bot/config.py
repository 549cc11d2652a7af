"""Settings: read once from the environment and ``.env`` into a frozen object.

Precedence: process environment > ``.env`` in the working directory > defaults. A missing or
invalid value raises :class:`SettingsError` naming the variable; the token is never shown.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from bot import __version__
from bot.domain.model import Category

T = TypeVar("T")

LANGUAGES = ("id", "en")
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///siaga112.db"
#: The OSM Foundation's public server (at most 1 request/second, see its usage policy).
PUBLIC_NOMINATIM_URL = "https://nominatim.openstreetmap.org"


class SettingsError(Exception):
    """A setting is missing or invalid; ``variable`` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that never shows itself in a repr, a log or an error."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('**********')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True, slots=True)
class AgencyConfig:
    """One agency of the agencies TOML (routing and delivery come in a later issue)."""

    code: str
    name: str
    categories: tuple[str, ...]
    areas: tuple[str, ...] = ()
    phone: str | None = None
    telegram_chat_id: int | None = None
    webhook_url: str | None = None
    webhook_secret_env: str | None = None
    ack_deadline_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot is configured with (ARCHITECTURE.md section 4)."""

    telegram_bot_token: Secret
    telegram_api_base_url: str
    telegram_api_file_url: str
    database_url: str
    operator_chat_id: int | None
    operator_user_ids: frozenset[int]
    admin_user_ids: frozenset[int]
    agencies_file: Path
    agencies: tuple[AgencyConfig, ...]
    geocoder: Literal["nominatim", "offline"]
    nominatim_url: str
    nominatim_user_agent: str
    nominatim_min_interval: float
    default_language: str
    timezone: ZoneInfo
    emergency_phone: str
    intake_timeout_minutes: int
    max_open_tickets: int
    flood_limit_per_minute: int
    log_level: str
    rate_governor: bool
    """Whether every Bot API call is paced by the rate governor (off: only for comparisons)."""
    rate_overall_per_second: int
    rate_group_per_minute: int
    rate_private_per_second: float
    rate_private_burst: int
    rate_broadcast_per_second: int
    sla_realert_seconds: int = 60
    sla_escalate_seconds: int = 180
    sla_idle_claim_minutes: int = 10
    reopen_window_minutes: int = 30

    def require_token(self) -> str:
        """Return the bot token or raise SettingsError naming TELEGRAM_BOT_TOKEN."""
        if not self.telegram_bot_token:
            raise SettingsError("TELEGRAM_BOT_TOKEN", "is required to talk to Telegram")
        return self.telegram_bot_token.value

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"Settings({shown})"


def _int_list(variable: str, raw: str) -> frozenset[int]:
    try:
        return frozenset(int(part) for part in raw.replace(" ", "").split(",") if part)
    except ValueError:
        raise SettingsError(variable, "must be comma-separated Telegram user ids") from None


def _number(variable: str, raw: str, cast: Callable[[str], T], minimum: float) -> T:
    try:
        value = cast(raw)
    except ValueError:
        raise SettingsError(variable, f"must be a number, got {raw!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(variable, f"must be a finite number, got {raw!r}")
    if value < minimum:  # type: ignore[operator]
        raise SettingsError(variable, f"must be at least {minimum}")
    return value


def _switch(variable: str, raw: str) -> bool:
    value = raw.lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise SettingsError(variable, f"must be on or off, got {raw!r}")


def _url(variable: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(variable, "must be an http:// or https:// URL")
    return raw.rstrip("/") if variable == "NOMINATIM_URL" else raw


def _database_url(raw: str) -> str:
    if not raw.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise SettingsError(
            "DATABASE_URL",
            "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (async drivers)",
        )
    return raw


def bundled_agencies_file() -> Path:
    """Return the path of the bundled Semarang agencies file."""
    return Path(str(resources.files("bot") / "agencies" / "semarang.toml"))


def load_agencies(path: Path) -> tuple[AgencyConfig, ...]:
    """Parse and validate an agencies TOML file."""
    variable = "AGENCIES_FILE"
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(variable, f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(variable, f"is not valid TOML ({exc})") from None
    raw_agencies = data.get("agency")
    if not isinstance(raw_agencies, list) or not raw_agencies:
        raise SettingsError(variable, "needs at least one [[agency]] table")
    agencies: list[AgencyConfig] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_agencies):
        agencies.append(_agency(variable, index, raw))
        if agencies[-1].code in seen:
            raise SettingsError(variable, f"agency code {agencies[-1].code!r} appears twice")
        seen.add(agencies[-1].code)
    return tuple(agencies)


def _agency(variable: str, index: int, raw: Any) -> AgencyConfig:
    where = f"[[agency]] #{index + 1}"
    if not isinstance(raw, dict):
        raise SettingsError(variable, f"{where} is not a table")
    for key in ("code", "name"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SettingsError(variable, f"{where} needs a non-empty {key!r}")
    categories = raw.get("categories")
    if not isinstance(categories, list) or not categories:
        raise SettingsError(variable, f"{where} ({raw['code']}) needs a list of categories")
    unknown = [c for c in categories if c not in Category.__members__]
    if unknown:
        raise SettingsError(variable, f"{where} ({raw['code']}) has unknown categories {unknown}")
    chat_id = raw.get("telegram_chat_id")
    if chat_id is not None and not isinstance(chat_id, int):
        raise SettingsError(variable, f"{where} ({raw['code']}) telegram_chat_id must be an int")
    deadline = raw.get("ack_deadline_seconds")
    if deadline is not None and (not isinstance(deadline, int) or deadline <= 0):
        raise SettingsError(variable, f"{where} ({raw['code']}) ack_deadline_seconds must be > 0")
    return AgencyConfig(
        code=raw["code"],
        name=raw["name"],
        categories=tuple(categories),
        areas=tuple(raw.get("areas", ())),
        phone=raw.get("phone"),
        telegram_chat_id=chat_id,
        webhook_url=raw.get("webhook_url"),
        webhook_secret_env=raw.get("webhook_secret_env"),
        ack_deadline_seconds=deadline,
    )


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Read settings once: environment > ``.env`` > defaults."""
    merged: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)

    def get(name: str, default: str = "") -> str:
        return merged.get(name, "").strip() or default

    operator_chat = get("OPERATOR_CHAT_ID")
    try:
        operator_chat_id = int(operator_chat) if operator_chat else None
    except ValueError:
        raise SettingsError("OPERATOR_CHAT_ID", "must be a Telegram chat id (an integer)") from None

    geocoder = get("GEOCODER", "nominatim")
    if geocoder not in ("nominatim", "offline"):
        raise SettingsError("GEOCODER", "must be 'nominatim' or 'offline'")
    language = get("DEFAULT_LANGUAGE", "id")
    if language not in LANGUAGES:
        raise SettingsError("DEFAULT_LANGUAGE", f"must be one of {', '.join(LANGUAGES)}")
    try:
        timezone = ZoneInfo(get("TIMEZONE", "Asia/Jakarta"))
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError("TIMEZONE", "must be an IANA time zone like Asia/Jakarta") from None
    phone = get("EMERGENCY_PHONE", "112")
    if not phone.replace("-", "").replace(" ", "").isdigit():
        raise SettingsError("EMERGENCY_PHONE", "must be a phone number")
    agencies_path = Path(get("AGENCIES_FILE")) if get("AGENCIES_FILE") else bundled_agencies_file()
    nominatim_url = _url("NOMINATIM_URL", get("NOMINATIM_URL", PUBLIC_NOMINATIM_URL))
    default_interval = "1.0" if nominatim_url == PUBLIC_NOMINATIM_URL else "0"
    log_level = get("LOG_LEVEL", "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError("LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")
    interval = _number(
        "NOMINATIM_MIN_INTERVAL", get("NOMINATIM_MIN_INTERVAL", default_interval), float, 0
    )
    if nominatim_url == PUBLIC_NOMINATIM_URL and interval < 1.0:
        raise SettingsError("NOMINATIM_MIN_INTERVAL", "must be >= 1 for the public server")
    overall = _number(
        "TELEGRAM_RATE_OVERALL_PER_SECOND", get("TELEGRAM_RATE_OVERALL_PER_SECOND", "30"), int, 1
    )
    broadcast = _number(
        "TELEGRAM_RATE_BROADCAST_PER_SECOND",
        get("TELEGRAM_RATE_BROADCAST_PER_SECOND", str(min(20, overall))),
        int,
        1,
    )
    if broadcast > overall:
        raise SettingsError(
            "TELEGRAM_RATE_BROADCAST_PER_SECOND",
            f"must not exceed TELEGRAM_RATE_OVERALL_PER_SECOND ({overall})",
        )

    return Settings(
        telegram_bot_token=Secret(get("TELEGRAM_BOT_TOKEN")),
        telegram_api_base_url=_url(
            "TELEGRAM_API_BASE_URL", get("TELEGRAM_API_BASE_URL", "https://api.telegram.org/bot")
        ),
        telegram_api_file_url=_url(
            "TELEGRAM_API_FILE_URL",
            get("TELEGRAM_API_FILE_URL", "https://api.telegram.org/file/bot"),
        ),
        database_url=_database_url(get("DATABASE_URL", DEFAULT_DATABASE_URL)),
        operator_chat_id=operator_chat_id,
        operator_user_ids=_int_list("OPERATOR_USER_IDS", get("OPERATOR_USER_IDS")),
        admin_user_ids=_int_list("ADMIN_USER_IDS", get("ADMIN_USER_IDS")),
        agencies_file=agencies_path,
        agencies=load_agencies(agencies_path),
        geocoder=geocoder,  # type: ignore[arg-type]  # checked against both literals above
        nominatim_url=nominatim_url,
        nominatim_user_agent=get("NOMINATIM_USER_AGENT", f"siaga112/{__version__}"),
        nominatim_min_interval=interval,
        default_language=language,
        timezone=timezone,
        emergency_phone=phone,
        intake_timeout_minutes=_number(
            "INTAKE_TIMEOUT_MINUTES", get("INTAKE_TIMEOUT_MINUTES", "15"), int, 1
        ),
        max_open_tickets=_number("MAX_OPEN_TICKETS", get("MAX_OPEN_TICKETS", "3"), int, 1),
        flood_limit_per_minute=_number(
            "FLOOD_LIMIT_PER_MINUTE", get("FLOOD_LIMIT_PER_MINUTE", "20"), int, 1
        ),
        log_level=log_level,
        rate_governor=_switch("TELEGRAM_RATE_GOVERNOR", get("TELEGRAM_RATE_GOVERNOR", "on")),
        rate_overall_per_second=overall,
        rate_group_per_minute=_number(
            "TELEGRAM_RATE_GROUP_PER_MINUTE", get("TELEGRAM_RATE_GROUP_PER_MINUTE", "20"), int, 1
        ),
        rate_private_per_second=_number(
            "TELEGRAM_RATE_PRIVATE_PER_SECOND",
            get("TELEGRAM_RATE_PRIVATE_PER_SECOND", "1"),
            float,
            0.01,
        ),
        rate_private_burst=_number(
            "TELEGRAM_RATE_PRIVATE_BURST", get("TELEGRAM_RATE_PRIVATE_BURST", "3"), int, 1
        ),
        rate_broadcast_per_second=broadcast,
        sla_realert_seconds=_number(
            "SLA_REALERT_SECONDS", get("SLA_REALERT_SECONDS", "60"), int, 1
        ),
        sla_escalate_seconds=_number(
            "SLA_ESCALATE_SECONDS", get("SLA_ESCALATE_SECONDS", "180"), int, 1
        ),
        sla_idle_claim_minutes=_number(
            "SLA_IDLE_CLAIM_MINUTES", get("SLA_IDLE_CLAIM_MINUTES", "10"), int, 1
        ),
        reopen_window_minutes=_number(
            "REOPEN_WINDOW_MINUTES", get("REOPEN_WINDOW_MINUTES", "30"), int, 0
        ),
    )
