"""Scripted scenarios for training operators on the queue board.

``flood``: 40 reports in two minutes from the northern kecamatan (rob and river floods hit
Semarang Utara, Genuk, Tugu, Semarang Barat, Semarang Timur and Gayamsari first). Each
report is a simulated citizen going through the real conversation (start, category, a GPS
share inside a kelurahan of those kecamatan, confirm, own number, name, details, send) by
pressing the buttons the bot shows, so the bot does exactly what it does for real citizens.
Reproducible: the places, people and categories come from a seeded generator.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shapely.geometry import Point, shape

from bot.demo.citymap import boundary_features
from bot.demo.server import World
from bot.double.botapi_model import StoredMessage
from bot.double.simulated import SimUser
from bot.double.updates import JSON

log = logging.getLogger(__name__)

NORTHERN_KECAMATAN = (
    "Semarang Utara", "Genuk", "Tugu", "Semarang Barat", "Semarang Timur", "Gayamsari",
)  # fmt: skip
FIRST_CITIZEN_ID = 6300001
STEP_TIMEOUT = 60.0
"""Seconds a scripted citizen waits for the bot's next button (the rate governor paces)."""

NAMES = (
    "Agus", "Rina", "Slamet", "Wati", "Joko", "Sri", "Bambang", "Yuni", "Hendra", "Lestari",
    "Eko", "Ani", "Teguh", "Dewi", "Rudi", "Ningsih", "Budi", "Endang", "Wahyu", "Tuti",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Report:
    """One scripted report: who, what (group, category), where, and what they write."""

    user_id: int
    name: str
    group: str
    category: str | None
    """None: the group has one category (no second tap)."""
    lat: float
    lon: float
    details: str


#: (weight, group, category, details) of a flood night's reports.
FLOOD_MIX: tuple[tuple[int, str, str | None, str], ...] = (
    (24, "DISASTER", "FLOOD", "Air masuk rumah, sudah selutut dan terus naik."),
    (5, "DISASTER", "SAR", "Keluarga terjebak di lantai dua, ada lansia dan anak kecil."),
    (4, "MEDICAL", None, "Tetangga sesak napas, jalan tergenang, ambulans sulit masuk."),
    (4, "DISASTER", "TREE", "Pohon tumbang menutup jalan karena hujan deras."),
    (3, "UTILITY", "UTIL", "Kabel listrik putus jatuh ke genangan air."),
)


def flood_reports(count: int = 40, seed: int = 112) -> list[Report]:
    """The flood's reports: random points inside kelurahan of the northern kecamatan."""
    rng = random.Random(seed)  # noqa: S311 - a training script, not cryptography
    features = boundary_features()
    codes = {
        f["properties"]["code"]
        for f in features
        if f["properties"]["level"] == "kecamatan" and f["properties"]["name"] in NORTHERN_KECAMATAN
    }
    kelurahan = [
        shape(f["geometry"])
        for f in features
        if f["properties"]["level"] == "kelurahan" and f["properties"]["code"][:8] in codes
    ]
    kinds = [kind for kind in FLOOD_MIX for _ in range(kind[0])]
    reports = []
    for n in range(count):
        place = rng.choice(kelurahan)
        west, south, east, north = place.bounds
        while True:
            lon, lat = rng.uniform(west, east), rng.uniform(south, north)
            if place.contains(Point(lon, lat)):
                break
        _, group, category, details = rng.choice(kinds)
        reports.append(
            Report(
                FIRST_CITIZEN_ID + n, rng.choice(NAMES), group, category,
                round(lat, 6), round(lon, 6), details,
            )
        )  # fmt: skip
    return reports


def _keyboard(user: SimUser, request: str, after: int) -> bool:
    """Whether a bot message after ``after`` brought a reply keyboard with a ``request``
    (``request_location``/``request_contact``) button."""
    for message in reversed(user.messages):
        if message.message_id <= after:
            return False
        for row in (message.reply_markup or {}).get("keyboard", []):
            if any(isinstance(key, dict) and key.get(request) for key in row):
                return True
    return False


def _button(user: SimUser, action: str, after: int) -> tuple[StoredMessage, str] | None:
    """The newest bot message offering a button whose data ends in ``action``: one sent after
    ``after``, or an older one edited since (the bot edits its menus in place)."""
    for message in reversed(user.messages):
        if message.message_id <= after and len(message.times) < 2:
            break
        for button in message.inline_buttons:
            data = str(button.get("callback_data", ""))
            if data.endswith(f"|{action}"):
                return message, data
    return None


async def _tap(world: World, user: SimUser, action: str, after: int) -> int:
    """Waits for the button (in a bot message after ``after``) and presses it; returns where
    the bot's answer to the press begins."""
    found: tuple[StoredMessage, str] = await world.fake.wait_for(
        lambda: _button(user, action, after), timeout=STEP_TIMEOUT
    )
    message, data = found
    mark = world.fake.model.chats[user.id].last_message_id
    await user.press(data, message)
    return mark


async def _wait_keyboard(world: World, user: SimUser, request: str, after: int) -> None:
    await world.fake.wait_for(lambda: _keyboard(user, request, after), timeout=STEP_TIMEOUT)


async def report(world: World, script: Report) -> None:
    """One citizen's whole report, as a person taps it."""
    fake = world.fake
    user = fake.users.get(script.user_id) or fake.add_user(
        script.user_id, script.name, phone_number=f"628139{script.user_id % 10**7:07d}"
    )
    mark = int((await user.send_command("start"))["message_id"])
    mark = await _tap(world, user, "report", mark)
    mark = await _tap(world, user, f"grp|{script.group}", mark)
    if script.category is not None:
        mark = await _tap(world, user, f"cat|{script.category}", mark)
    await _wait_keyboard(world, user, "request_location", mark)
    shared = await user.share_location(script.lat, script.lon, 15.0)
    mark = await _tap(world, user, "locok", int(shared["message_id"]))
    await _wait_keyboard(world, user, "request_contact", mark)
    contact = await user.share_contact(own=True)  # its name is taken: the details screen
    mark = int(contact["message_id"])
    await world.fake.wait_for(lambda: _button(user, "submit", mark), timeout=STEP_TIMEOUT)
    await user.send_text(script.details)  # acknowledged with a reaction
    await _tap(world, user, "submit", mark)


async def flood(world: World, progress: JSON, *, count: int = 40, seconds: float = 120.0) -> None:
    """The surge: ``count`` reports started evenly over ``seconds``, running side by side."""
    reports = flood_reports(count)
    progress["total"] = len(reports)

    async def one(script: Report) -> None:
        try:
            await report(world, script)
            progress["sent"] = progress.get("sent", 0) + 1
        except Exception as failure:  # one stuck citizen must not stop the drill
            progress["failed"] = progress.get("failed", 0) + 1
            log.warning("scripted report of %s failed: %r", script.user_id, failure)

    tasks = []
    for n, script in enumerate(reports):
        tasks.append(asyncio.create_task(one(script)))
        if n < len(reports) - 1:
            await asyncio.sleep(seconds / len(reports))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


SCENARIOS: dict[str, Callable[[World, JSON], Awaitable[None]]] = {"flood": flood}
