"""Settings: read once from the environment and ``.env`` into a frozen object.

Precedence: process environment > ``.env`` in the working directory > defaults. A missing or
invalid value raises :class:`SettingsError` naming the variable; the token is never shown.
"""

from __future__ import annotations

import difflib
import math
import os
import re
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
DEFAULT_PRIVACY_CONTROLLER = "Pemerintah Kota Semarang (Call Center 112)"
PAID_BROADCAST_MAX = 1000
"""Telegram's ceiling for paid broadcasts (``allow_paid_broadcast``) per second."""


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
    """One agency of the agencies TOML, checked at start (``load_agencies``)."""

    code: str
    name: str
    categories: tuple[str, ...]
    areas: tuple[str, ...] = ()
    """Kecamatan names as written in the file (empty: the whole city)."""
    phone: str | None = None
    telegram_chat_id: int | None = None
    webhook_url: str | None = None
    webhook_secret_env: str | None = None
    ack_deadline_seconds: int | None = None
    area_codes: tuple[str, ...] = ()
    """The Kemendagri codes of ``areas`` (``33.74.NN``), resolved against the gazetteer."""
    members: frozenset[int] = frozenset()
    """Telegram user ids allowed to press the agency card's buttons (empty: anyone in the
    agency's chat)."""
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    """The HMAC key, read once from the variable ``webhook_secret_env`` names."""


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
    uvloop: bool
    """Whether ``run`` uses uvloop's event loop where it is installed (UVLOOP, default on)."""
    sqlite_driver: str
    """SQLITE_DRIVER: ``inline`` (SQLite's calls on the event loop's thread) or ``thread``
    (aiosqlite's worker thread). PostgreSQL ignores it."""
    rate_overall_per_second: int
    rate_group_per_minute: int
    rate_private_per_second: float
    rate_private_burst: int
    rate_broadcast_per_second: int
    telegram_http_client: str = "aiohttp"
    """TELEGRAM_HTTP_CLIENT: the HTTP client of every Bot API call (``getUpdates`` included),
    ``aiohttp`` or PTB's ``httpx``."""
    agency_api_listen: tuple[str, int] | None = None
    """Where the signed agency status endpoint listens (``AGENCY_API_LISTEN``; None: off)."""
    sla_realert_seconds: int = 60
    sla_escalate_seconds: int = 180
    sla_idle_claim_minutes: int = 10
    reopen_window_minutes: int = 30
    telegram_webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    """The secret Telegram sends back with each webhook update (``TELEGRAM_WEBHOOK_SECRET``;
    read from the environment, never from the command line, where ``ps`` shows it)."""
    rate_paid_broadcast_per_second: int | None = None
    """Paid broadcasting (``allow_paid_broadcast``, up to 1000/s, billed in Stars): advisory
    copies are sent as paid broadcasts at this rate; None: off (the broadcast cap applies)."""
    rate_broadcast_max_lag_ms: int = 5
    """Broadcasts give way when the event loop wakes a timer this many milliseconds late
    (``TELEGRAM_RATE_BROADCAST_MAX_LAG_MS``; 0: they never do)."""
    demo_mode: bool = False
    """Exercise mode (``DEMO_MODE``, set by ``siaga112 demo``): every ticket carries the
    disposition ``test`` and a visible "LATIHAN / EXERCISE" mark."""

    retention_days: int = 365
    """Closed tickets' personal fields are anonymised this long after the close."""
    draft_retention_days: int = 30
    """Abandoned and cancelled drafts are anonymised this long after they ended."""
    privacy_controller: str = DEFAULT_PRIVACY_CONTROLLER
    """Who is responsible for the personal data (named in the privacy notice)."""
    privacy_contact: str = ""
    """Where citizens reach the controller about their data (empty: through the bot)."""

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


def city_kecamatan() -> dict[str, str]:
    """Kecamatan name -> Kemendagri code of the city's gazetteer (what ``areas`` may say)."""
    from bot.geo.gazetteer import load_gazetteer  # noqa: PLC0415 - the polygons load on demand

    return {k.name: k.code for k in load_gazetteer().kecamatan}


def load_agencies(
    path: Path,
    environ: Mapping[str, str] | None = None,
    kecamatan: Mapping[str, str] | None = None,
) -> tuple[AgencyConfig, ...]:
    """Parse and validate an agencies TOML file.

    ``kecamatan`` maps the city's kecamatan names to codes (default: the gazetteer's);
    ``environ`` holds the webhook secrets (default: the process environment). Any problem
    raises SettingsError with one line naming the agency and the value.
    """
    variable = "AGENCIES_FILE"
    environ = os.environ if environ is None else environ
    known = {_folded(name): code for name, code in (kecamatan or city_kecamatan()).items()}
    names = {_folded(name): name for name in (kecamatan or city_kecamatan())}
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
        agencies.append(_agency(variable, index, raw, environ=environ, known=known, names=names))
        if agencies[-1].code in seen:
            raise SettingsError(variable, f"agency code {agencies[-1].code!r} appears twice")
        seen.add(agencies[-1].code)
    return tuple(agencies)


AGENCY_KEYS = frozenset(
    {
        "code", "name", "categories", "areas", "phone", "telegram_chat_id", "webhook_url",
        "webhook_secret_env", "ack_deadline_seconds", "members",
    }
)  # fmt: skip
AGENCY_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _folded(name: str) -> str:
    return " ".join(name.casefold().split())


def _agency(  # noqa: PLR0912, PLR0915 - one check per key reads best
    variable: str,
    index: int,
    raw: Any,
    *,
    environ: Mapping[str, str],
    known: Mapping[str, str],
    names: Mapping[str, str],
) -> AgencyConfig:
    where = f"[[agency]] #{index + 1}"
    if not isinstance(raw, dict):
        raise SettingsError(variable, f"{where} is not a table")
    for key in ("code", "name"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SettingsError(variable, f"{where} needs a non-empty {key!r}")
    code = raw["code"]
    if not set(code) <= AGENCY_CODE_CHARS or len(code) > 32:
        raise SettingsError(
            variable, f"{where} code {code!r} must be up to 32 of A-Z, 0-9, '_' and '-'"
        )
    where = f"agency {code}"
    unknown_keys = sorted(set(raw) - AGENCY_KEYS)
    if unknown_keys:
        raise SettingsError(variable, f"{where}: unknown key {unknown_keys[0]!r}")
    categories = raw.get("categories")
    if not isinstance(categories, list) or not categories:
        raise SettingsError(variable, f"{where} needs a list of categories")
    unknown = [c for c in categories if c not in Category.__members__]
    if unknown:
        raise SettingsError(variable, f"{where}: unknown categories {unknown}")
    if len(set(categories)) != len(categories):
        raise SettingsError(variable, f"{where}: a category appears twice in categories")
    areas = raw.get("areas", [])
    if not isinstance(areas, list) or not all(isinstance(a, str) for a in areas):
        raise SettingsError(variable, f"{where}: areas must be a list of kecamatan names")
    codes: list[str] = []
    for area in areas:
        found = known.get(_folded(area)) or (area if area in known.values() else None)
        if found is None:
            guess = difflib.get_close_matches(_folded(area), list(names), n=1, cutoff=0.6)
            hint = f" (did you mean {names[guess[0]]!r}?)" if guess else ""
            raise SettingsError(variable, f"{where}: unknown kecamatan {area!r} in areas{hint}")
        codes.append(found)
    chat_id = raw.get("telegram_chat_id")
    if chat_id is not None and (not isinstance(chat_id, int) or isinstance(chat_id, bool)):
        raise SettingsError(variable, f"{where}: telegram_chat_id must be an integer chat id")
    deadline = raw.get("ack_deadline_seconds")
    if deadline is not None and (
        not isinstance(deadline, int) or isinstance(deadline, bool) or deadline <= 0
    ):
        raise SettingsError(variable, f"{where}: ack_deadline_seconds must be > 0")
    phone = raw.get("phone")
    if phone is not None and not (
        isinstance(phone, str) and phone.replace("-", "").replace(" ", "").lstrip("+").isdigit()
    ):
        raise SettingsError(variable, f"{where}: phone {phone!r} is not a phone number")
    url, secret_env = raw.get("webhook_url"), raw.get("webhook_secret_env")
    secret = Secret("")
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SettingsError(variable, f"{where}: webhook_url {url!r} must be an http(s) URL")
        if not isinstance(secret_env, str) or not secret_env:
            raise SettingsError(variable, f"{where}: webhook_url needs webhook_secret_env")
    if secret_env is not None:
        if not isinstance(secret_env, str) or not secret_env:
            raise SettingsError(variable, f"{where}: webhook_secret_env must name a variable")
        secret = Secret(environ.get(secret_env, "").strip())
        if not secret:
            raise SettingsError(
                variable, f"{where}: the variable {secret_env} (webhook_secret_env) is not set"
            )
    members = raw.get("members", [])
    if not isinstance(members, list) or not all(
        isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in members
    ):
        raise SettingsError(variable, f"{where}: members must be a list of Telegram user ids")
    return AgencyConfig(
        code=code,
        name=raw["name"],
        categories=tuple(categories),
        areas=tuple(areas),
        phone=phone,
        telegram_chat_id=chat_id,
        webhook_url=url,
        webhook_secret_env=secret_env,
        ack_deadline_seconds=deadline,
        area_codes=tuple(dict.fromkeys(codes)),
        members=frozenset(members),
        webhook_secret=secret,
    )


def _listen(variable: str, raw: str) -> tuple[str, int] | None:
    """``host:port`` (or ``off``/empty) of a server we start."""
    if raw.lower() in ("", "off"):
        return None
    host, _, port = raw.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(variable, f"must be host:port like 127.0.0.1:8088, got {raw!r}")
    return host.strip("[]"), int(port)


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

    sqlite_driver = get("SQLITE_DRIVER", "inline")
    if sqlite_driver not in ("inline", "thread"):
        raise SettingsError("SQLITE_DRIVER", "must be 'inline' or 'thread'")
    http_client = get("TELEGRAM_HTTP_CLIENT", "aiohttp")
    if http_client not in ("aiohttp", "httpx"):
        raise SettingsError("TELEGRAM_HTTP_CLIENT", "must be 'aiohttp' or 'httpx'")
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
    raw_paid = get("TELEGRAM_RATE_PAID_BROADCAST_PER_SECOND")
    paid = (
        _number("TELEGRAM_RATE_PAID_BROADCAST_PER_SECOND", raw_paid, int, 1) if raw_paid else None
    )
    if paid is not None and paid > PAID_BROADCAST_MAX:
        raise SettingsError(
            "TELEGRAM_RATE_PAID_BROADCAST_PER_SECOND",
            f"must not exceed Telegram's {PAID_BROADCAST_MAX} paid broadcasts a second",
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
        agencies=load_agencies(agencies_path, merged),
        agency_api_listen=_listen("AGENCY_API_LISTEN", get("AGENCY_API_LISTEN")),
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
        uvloop=_switch("UVLOOP", get("UVLOOP", "on")),
        sqlite_driver=sqlite_driver,
        telegram_http_client=http_client,
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
        rate_paid_broadcast_per_second=paid,
        rate_broadcast_max_lag_ms=_number(
            "TELEGRAM_RATE_BROADCAST_MAX_LAG_MS",
            get("TELEGRAM_RATE_BROADCAST_MAX_LAG_MS", "5"),
            int,
            0,
        ),
        telegram_webhook_secret=_webhook_secret(get("TELEGRAM_WEBHOOK_SECRET")),
        demo_mode=_switch("DEMO_MODE", get("DEMO_MODE", "off")),
        retention_days=_number("RETENTION_DAYS", get("RETENTION_DAYS", "365"), int, 1),
        draft_retention_days=_number(
            "DRAFT_RETENTION_DAYS", get("DRAFT_RETENTION_DAYS", "30"), int, 1
        ),
        privacy_controller=get("PRIVACY_CONTROLLER", DEFAULT_PRIVACY_CONTROLLER),
        privacy_contact=get("PRIVACY_CONTACT"),
    )


_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _webhook_secret(raw: str) -> Secret:
    """Telegram's rule for ``secret_token``: 1-256 of A-Z, a-z, 0-9, _ and -."""
    if raw and not _WEBHOOK_SECRET.fullmatch(raw):
        raise SettingsError(
            "TELEGRAM_WEBHOOK_SECRET", "must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
        )
    return Secret(raw)
