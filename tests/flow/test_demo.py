"""``siaga112 demo``: the console's HTTP API over loopback, with the real bot behind it.

Each test starts a whole demo (the double, the unmodified bot with ``DEMO_MODE``, the console
on a free port) and acts only through the console's JSON API, as the browser does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.demo import world as w
from bot.demo.citymap import Projection, city_map
from bot.demo.run import run_demo
from bot.demo.scenarios import NORTHERN_KECAMATAN, flood, flood_reports
from bot.demo.server import DemoConsole
from bot.domain.model import EXERCISE_MARK, Disposition
from bot.geo import load_gazetteer
from storage.db import create_engine, session_factory
from storage.uow import SqlUnitOfWorkFactory
from tests.flow.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]
FAST = {"TELEGRAM_RATE_PRIVATE_BURST": "100", "TELEGRAM_RATE_PRIVATE_PER_SECOND": "100"}
"""Machine-speed taps: the private-chat pace would only slow the test (the demo's default
keeps Telegram's)."""
PLEBURAN = (-6.99025, 110.42293)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000" "1f15c4890000000d49444154789c6360"
    "f8cfc0f01f0005000201a1d8e6b30000000049454e44ae426082"
)  # fmt: skip


class Console:
    """The browser's side: the JSON API of one running demo."""

    def __init__(self, demo: DemoConsole, session: aiohttp.ClientSession) -> None:
        self.demo = demo
        self.session = session

    async def post(self, path: str, body: JSON | None = None, status: int = 200) -> JSON:
        async with self.session.post(f"{self.demo.url}api/{path}", json=body or {}) as response:
            answer: JSON = await response.json()
            assert response.status == status, answer
            return answer

    async def state(self) -> JSON:
        async with self.session.get(f"{self.demo.url}api/state") as response:
            assert response.status == 200
            body: JSON = await response.json()
            return body

    async def until(self, predicate: Callable[[JSON], Any], within: float = 20.0) -> Any:
        """Polls the state like the page does until ``predicate(state)`` is truthy."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            state = await self.state()
            found = predicate(state)
            if found:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; last state: {state}")
            await asyncio.sleep(0.1)

    async def press(self, pane: str, action: str, **extra: object) -> JSON:
        """Presses the newest button of ``pane`` whose callback data contains ``action``."""
        message, data = await self.until(lambda s: _button(s, pane, action))
        api = "operator" if pane == "operators" else pane
        return await self.post(f"{api}/press", {"message_id": message["id"], "data": data, **extra})


def _messages(state: JSON, pane: str) -> list[JSON]:
    messages: list[JSON] = state[pane]["messages"]
    return messages


def _button(state: JSON, pane: str, action: str) -> tuple[JSON, str] | None:
    for message in reversed(_messages(state, pane)):
        for row in message["buttons"]:
            for button in row:
                if button["data"] and action in button["data"]:
                    return message, button["data"]
    return None


def _texts(state: JSON, pane: str) -> list[str]:
    return [m["text"] for m in _messages(state, pane)]


@pytest_asyncio.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    demo = DemoConsole(database=tmp_path / "demo.db", port=0, environ=FAST)
    await demo.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Console(demo, session)
    finally:
        await demo.stop()


async def report_by_api(console: Console, lat: float, lon: float) -> str:
    """A citizen's whole report through the console (GPS from the map); returns the ref."""
    await console.post("citizen/send", {"text": "/start"})
    await console.press("citizen", "m|report")
    await console.press("citizen", "grp|FIRE")
    await console.until(lambda s: s["citizen"]["keyboard"])  # the location button
    await console.post("citizen/location", {"lat": lat, "lon": lon})
    await console.press("citizen", "|locok")
    await console.until(
        lambda s: any(
            isinstance(k, dict) and k.get("request_contact")
            for row in (s["citizen"]["keyboard"] or {}).get("keyboard", [])
            for k in row
        )
    )
    await console.post("citizen/contact")  # the contact's name is taken: the details screen
    await console.until(lambda s: _button(s, "citizen", "|submit"))
    await console.post("citizen/send", {"text": "Api di dapur, asap tebal"})
    await console.press("citizen", "|submit")
    state = await console.until(lambda s: s["tickets"] and s)
    ref: str = state["tickets"][0]["ref"]
    return ref


async def test_console_page_assets_map_and_an_empty_demo_are_served_when_started(
    console: Console,
) -> None:
    session, url = console.session, console.demo.url
    async with session.get(url) as page:
        html = await page.text()
    assert page.status == 200
    assert "LATIHAN / EXERCISE" in html
    assert "http" not in html.replace(url, "").split("<body>", 1)[1]  # no CDN, no link out
    for asset in ("static/console.js", "static/console.css"):
        async with session.get(url + asset) as response:
            assert response.status == 200
            assert "http://" not in (await response.text()).replace("http://www.w3.org", "")
    async with session.get(url + "api/map") as response:
        drawn = await response.json()
    levels = [a["level"] for a in drawn["areas"]]
    assert (levels.count("kelurahan"), levels.count("kecamatan")) == (177, 16)
    state = await console.state()
    assert state["operators"]["title"] == w.OPERATORS_TITLE
    assert state["agency"]["title"] == "BPBD Kota Semarang (LATIHAN)"
    assert [p["id"] for p in state["operators"]["people"]] == [p.id for p in w.OPERATORS]
    assert state["tickets"] == []
    again = await console.session.get(f"{url}api/state?since={state['etag']}")
    assert (await again.json())["unchanged"] is True


def test_a_click_on_the_map_maps_back_to_the_point_it_was_drawn_from() -> None:
    projection = city_map()["projection"]
    p = Projection(*(projection[k] for k in ("west", "north", "scale", "aspect")))
    x, y = p.to_svg(PLEBURAN[1], PLEBURAN[0])
    assert 0 < x < city_map()["width"]
    assert 0 < y < city_map()["height"]
    lon, lat = p.to_lonlat(x, y)
    assert abs(lat - PLEBURAN[0]) < 1e-3
    assert abs(lon - PLEBURAN[1]) < 1e-3


async def test_a_report_claimed_and_answered_in_the_console_reaches_the_citizen_as_an_exercise(
    console: Console,
) -> None:
    ref = await report_by_api(console, *PLEBURAN)
    # The ticket is stored before the citizen's confirmation is sent: wait for the latter.
    state = await console.until(
        lambda s: any(ref in t and "✅" in t for t in _texts(s, "citizen")) and s
    )
    ticket = state["tickets"][0]
    assert (ticket["priority"], ticket["kecamatan"]) == (1, "Semarang Selatan")
    assert abs(ticket["lat"] - PLEBURAN[0]) < 1e-6
    confirmation = next(t for t in _texts(state, "citizen") if ref in t and "✅" in t)
    assert EXERCISE_MARK in confirmation
    # The operators' forum: a topic marked LATIHAN, its card, the pinned board.
    state = await console.until(lambda s: _button(s, "operators", "o|claim|") and s)
    topic = state["operators"]["topics"][0]
    assert "LATIHAN" in topic["name"]
    assert ref in topic["name"]
    card = _button(state, "operators", "o|claim|")
    assert card is not None
    assert card[0]["thread"] == topic["thread"]
    assert EXERCISE_MARK in card[0]["text"]
    await console.until(
        lambda s: any(m["pinned"] and EXERCISE_MARK in m["text"] for m in _messages(s, "operators"))
    )
    await console.press("operators", "o|claim|", operator=w.OPERATORS[1].id)
    await console.post(
        "operator/send",
        {"text": "Damkar sedang menuju lokasi", "thread": topic["thread"],
         "operator": w.OPERATORS[1].id},
    )  # fmt: skip
    await console.post(
        "operator/send", {"text": "penelepon tenang", "thread": topic["thread"], "note": True}
    )
    state = await console.until(
        lambda s: any("Damkar sedang menuju lokasi" in t for t in _texts(s, "citizen")) and s
    )
    citizen = _texts(state, "citizen")
    assert any(ref in t and EXERCISE_MARK in t for t in citizen if "👮" in t)  # claimed notice
    assert not any("penelepon tenang" in t for t in citizen)  # the note stays internal
    assert state["tickets"][0]["status"] == "claimed"
    assert state["tickets"][0]["claimed_by"] == "Budi (operator)"
    # A command in General: the queue as a reply, naming the claimer.
    await console.post("operator/send", {"text": "/queue"})
    await console.until(
        lambda s: any(
            m["thread"] is None
            and m["bot"]
            and not m["pinned"]
            and ref in m["text"]
            and "Budi" in m["text"]
            for m in _messages(s, "operators")
        )
    )
    # Resolved with "emergency handled": an exercise is stored as a test all the same.
    await console.press("operators", "o|resolve|")
    await console.press("operators", f"|{Disposition.EMERGENCY.value}")
    await console.until(lambda s: not s["tickets"])
    engine = create_engine(console.demo.world.settings.database_url)  # type: ignore[union-attr]
    try:
        async with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
            stored = await uow.tickets.get_by_ref(ref)
    finally:
        await engine.dispose()
    assert stored is not None
    assert stored.disposition is Disposition.TEST


async def test_bad_requests_get_a_polite_answer_and_change_nothing(console: Console) -> None:
    async with console.session.post(f"{console.demo.url}api/citizen/send", data="{") as response:
        assert response.status == 400
        assert (await response.json())["error"] == "the request is not JSON"
    assert (await console.post("citizen/send", {"text": "  "}, 400))["error"] == (
        "write something first"
    )
    assert (
        "language must be one of"
        in (await console.post("citizen/language", {"language": "fr"}, 400))["error"]
    )
    assert (
        "not a place"
        in (await console.post("citizen/location", {"lat": 99, "lon": 0}, 400))["error"]
    )
    gone = await console.post("citizen/press", {"message_id": 999, "data": "m|report"}, 409)
    assert gone["error"] == "that button is no longer on screen"
    assert (await console.post("operator/send", {"text": "x", "operator": 1}, 400))["error"] == (
        "not an operator of the demo roster"
    )
    form = aiohttp.FormData()
    form.add_field("photo", b"plain text", filename="a.txt", content_type="text/plain")
    async with console.session.post(f"{console.demo.url}api/citizen/photo", data=form) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "that file is not a picture"
    assert (await console.post("scenario", {"name": "earthquake"}, 400))["error"].startswith(
        "unknown scenario"
    )
    state = await console.state()
    assert _messages(state, "citizen") == []
    assert state["tickets"] == []


async def test_photo_upload_and_language_switch_work_as_in_a_telegram_client(
    console: Console,
) -> None:
    await console.post("citizen/send", {"text": "/start"})
    await console.post("citizen/language", {"language": "en"})
    state = await console.until(lambda s: s["citizen"]["language"] == "en" and s)
    await console.press("citizen", "m|report")
    await console.press("citizen", "grp|FIRE")
    form = aiohttp.FormData()
    form.add_field("photo", PNG, filename="api.png", content_type="image/png")
    form.add_field("caption", "asap dari dapur")
    async with console.session.post(f"{console.demo.url}api/citizen/photo", data=form) as response:
        assert response.status == 200
    state = await console.until(
        lambda s: next((m for m in _messages(s, "citizen") if m["kind"] == "photo"), None) and s
    )
    photo = next(m for m in _messages(state, "citizen") if m["kind"] == "photo")
    assert photo["text"] == "asap dari dapur"
    assert photo["bot"] is False
    async with console.session.get(f"{console.demo.url}api/file/{photo['file']}") as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        assert await response.read() == PNG


async def test_reset_starts_over_with_an_empty_demo_database(console: Console) -> None:
    await report_by_api(console, *PLEBURAN)
    before = await console.state()
    answer = await console.post("reset")
    assert answer["generation"] == before["generation"] + 1
    state = await console.state()
    assert state["generation"] == answer["generation"]
    assert state["tickets"] == []
    assert _messages(state, "citizen") == []
    assert state["operators"]["topics"] == []
    await console.post("citizen/send", {"text": "/start"})
    await console.until(lambda s: _button(s, "citizen", "m|report"))


async def test_flood_scenario_reports_from_the_northern_kecamatan_when_replayed(
    console: Console,
) -> None:
    demo = console.demo
    assert demo.world is not None
    progress: JSON = {}
    await flood(demo.world, progress, count=3, seconds=0.3)
    assert (progress["sent"], progress.get("failed", 0)) == (3, 0)
    state = await console.until(lambda s: len(s["tickets"]) == 3 and s)
    assert {t["kecamatan"] for t in state["tickets"]} <= set(NORTHERN_KECAMATAN)


def test_flood_script_is_forty_reports_inside_the_northern_kecamatan_and_reproducible() -> None:
    reports = flood_reports()
    assert len(reports) == 40
    assert len({r.user_id for r in reports}) == 40
    gazetteer = load_gazetteer()
    for report in reports:
        area = gazetteer.locate_area(report.lat, report.lon)
        assert area is not None
        assert area.kecamatan_name in NORTHERN_KECAMATAN
    assert flood_reports() == reports
    assert sum(r.category == "FLOOD" for r in reports) > len(reports) / 3


def test_demo_settings_never_take_the_database_or_chats_from_the_environment(
    tmp_path: Path,
) -> None:
    production = {
        "DATABASE_URL": "postgresql+asyncpg://prod@db.example/siaga112",
        "OPERATOR_CHAT_ID": "-100999",
        "TELEGRAM_BOT_TOKEN": "123:real",
        "DEFAULT_LANGUAGE": "en",
    }
    agencies = w.demo_agencies_file(tmp_path, "BPBD")
    settings = w.demo_settings(
        token="5550001112:x", base_url="http://127.0.0.1:1/bot", file_url="http://127.0.0.1:1/f",
        database=tmp_path / "d.db", agencies_file=agencies, environ=production,
    )  # fmt: skip
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"
    assert settings.operator_chat_id == w.OPERATORS_CHAT
    assert settings.telegram_bot_token.value == "5550001112:x"
    assert settings.demo_mode is True
    assert settings.geocoder == "offline"
    assert settings.default_language == "en"
    bpbd = next(a for a in settings.agencies if a.code == "BPBD")
    assert bpbd.telegram_chat_id == w.AGENCY_CHAT
    assert [a.code for a in settings.agencies if a.telegram_chat_id] == ["BPBD"]
    with pytest.raises(ValueError, match="no agency 'NOPE'"):
        w.demo_agencies_file(tmp_path, "NOPE")


async def test_demo_says_so_in_one_line_when_the_port_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = await run_demo(port=port, scenario=None, database=tmp_path / "demo.db")
    assert code == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err
    assert "--port" in err
    assert "Traceback" not in err
    assert not (tmp_path / "demo.db").exists()  # nothing started


async def test_a_bot_that_does_not_answer_or_an_action_that_crashes_gets_a_json_error(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo = console.demo
    assert demo.world is not None
    await console.post("citizen/send", {"text": "/start"})
    await console.until(lambda s: _button(s, "citizen", "m|report"))
    demo.answer_timeout = 0.5
    demo.world.fake.fail_next("sendMessage", 400, description="Bad Request: injected", count=3)
    timeout = await console.post("citizen/language", {"language": "en"}, 504)
    assert timeout["error"] == "the bot did not answer in time; try again"

    async def boom(**_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(demo.world.citizen, "share_contact", boom)
    crashed = await console.post("citizen/contact", {}, 500)
    assert crashed["error"] == "the demo failed: RuntimeError"
    await console.post("citizen/send", {"text": "/start"})  # and the demo goes on
    await console.until(lambda s: len([m for m in _messages(s, "citizen") if m["bot"]]) >= 2)


async def test_scenario_starts_from_the_console_once_at_a_time_and_shows_progress(
    console: Console,
) -> None:
    await console.post("scenario", {"name": "flood"})
    again = await console.post("scenario", {"name": "flood"}, 409)
    assert again["error"] == "a scenario is already running"
    state = await console.until(lambda s: s["scenario"].get("total") and s)
    assert state["scenario"]["name"] == "flood"
    assert state["scenario"]["total"] == 40
    assert state["scenario"]["running"] is True
    await console.until(lambda s: s["tickets"], within=30)  # the first reports arrive
    await console.post("reset")  # stops the scenario and starts over
    state = await console.state()
    assert state["scenario"]["running"] is False
    assert state["tickets"] == []


async def test_console_script_runs_the_demo_until_sigterm_in_its_own_database(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["DATABASE_URL"] = "postgresql+asyncpg://nobody@127.0.0.1:1/never"  # must not be used
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "demo", "--port", str(port), cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert f"http://127.0.0.1:{port}/" in line
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/api/state") as response,
        ):
            state = await response.json()
        assert state["operators"]["title"] == w.OPERATORS_TITLE
        assert (tmp_path / "siaga112-demo.db").exists()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 15)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    _, err = await process.communicate()
    assert code == 0, err.decode()
    assert "Traceback" not in err.decode()


async def test_demo_says_why_in_one_line_when_its_database_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "no-such-directory" / "demo.db"
    code = await run_demo(port=0, scenario=None, database=database)
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("siaga112: demo: could not start: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
