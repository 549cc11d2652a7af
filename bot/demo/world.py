"""Who and what exists in the demo: the chats, the people the console plays, the settings.

The bot is the real one, configured only through its settings (``load_settings``) like any
deployment: the Bot API double's URLs, a demo SQLite file, the operators' forum, a roster
operator, one agency with a Telegram group (a copy of the agencies file with that agency's
``telegram_chat_id`` set), the offline geocoder and ``DEMO_MODE=on``. Nothing of the
process environment or a ``.env`` reaches it except the display settings in
:data:`PASSED_THROUGH`: a production ``DATABASE_URL`` must never be touched by a demo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings, bundled_agencies_file, load_settings

OPERATORS_CHAT = -1001000000112
OPERATORS_TITLE = "Operator 112 Kota Semarang (LATIHAN)"
AGENCY_CHAT = -1001000000201
DEFAULT_AGENCY = "BPBD"
CITIZEN_ID = 6200001
CITIZEN_NAME = "Siti"
CITIZEN_PHONE = "6281390001234"


@dataclass(frozen=True, slots=True)
class Person:
    """Someone the console plays: a Telegram user id and a name."""

    id: int
    first_name: str
    last_name: str | None = None


OPERATORS = (Person(9100001, "Dewi", "(operator)"), Person(9100002, "Budi", "(operator)"))
"""The roster (``OPERATOR_USER_IDS``); the console types as either."""
AGENCY_MEMBER = Person(9200001, "Petugas", "(agency)")

PASSED_THROUGH = (
    "DEFAULT_LANGUAGE", "TIMEZONE", "LOG_LEVEL", "EMERGENCY_PHONE",
    "TELEGRAM_RATE_PRIVATE_BURST", "TELEGRAM_RATE_PRIVATE_PER_SECOND",
    "SLA_REALERT_SECONDS", "SLA_ESCALATE_SECONDS",
)  # fmt: skip
"""Settings a demo takes from the environment: display and pace, never where data goes."""


def demo_agencies_file(directory: Path, agency: str) -> Path:
    """A copy of the bundled agencies file where ``agency`` has the demo's Telegram group.

    Raises ValueError when the bundled file has no such agency."""
    text = bundled_agencies_file().read_text(encoding="utf-8")
    code_line = re.compile(rf'^code = "{re.escape(agency)}"$', re.MULTILINE)
    if code_line.search(text) is None:
        raise ValueError(f"no agency {agency!r} in {bundled_agencies_file().name}")
    text = code_line.sub(f'code = "{agency}"\ntelegram_chat_id = {AGENCY_CHAT}', text, count=1)
    path = directory / "agencies-demo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def demo_settings(
    *,
    token: str,
    base_url: str,
    file_url: str,
    database: Path,
    agencies_file: Path,
    environ: Mapping[str, str],
) -> Settings:
    """The bot's settings in the demo (see the module docstring)."""
    env = {name: environ[name] for name in PASSED_THROUGH if environ.get(name)}
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": token,
            "TELEGRAM_API_BASE_URL": base_url,
            "TELEGRAM_API_FILE_URL": file_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "OPERATOR_CHAT_ID": str(OPERATORS_CHAT),
            "OPERATOR_USER_IDS": ",".join(str(p.id) for p in OPERATORS),
            "AGENCIES_FILE": str(agencies_file),
            "GEOCODER": "offline",
            "DEMO_MODE": "on",
        }
    )
    return load_settings(env, env_file=None)
