"""End to end in a real headless browser: Debian's chromium driven by Selenium through
chromedriver, against a whole ``siaga112 demo`` (double, unmodified bot, console).

One person plays all three roles, as the issue asks: a citizen reports a flood (the
location picked by clicking the SVG map), an operator claims the ticket in its topic and
replies, the citizen sees the reply and the status; the operator dispatches BPBD, whose
member acknowledges and reports "on scene" from the agency pane, and the citizen sees that
too. A screenshot of each pane is saved under ``test-artifacts/demo/`` (``TEST_ARTIFACTS``).

Skipped only when chromium or chromedriver is missing locally; under CI (``CI`` set) that is
a failure: ``.ci/run`` installs them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from bot.demo.server import DemoConsole

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts")) / "demo"
SIMPANG_LIMA = (-6.99025, 110.42293)
WAIT = 45.0
"""Seconds for one step: the rate governor paces the operators' group like Telegram."""


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def _browser_missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is not installed (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


class DemoThread:
    """A whole demo on its own event loop in a thread (Selenium's calls block)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._console: DemoConsole | None = None

    def _run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=120)

    def __enter__(self) -> DemoThread:
        self._thread.start()
        environ = {"TELEGRAM_RATE_PRIVATE_BURST": "100", "TELEGRAM_RATE_PRIVATE_PER_SECOND": "100"}

        async def start() -> DemoConsole:
            console = DemoConsole(database=self.database, port=0, environ=environ)
            await console.start()
            return console

        self._console = self._run(start())
        self.url = self._console.url
        return self

    def __exit__(self, *exc: object) -> None:
        if self._console is not None:
            self._run(self._console.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = _browser_missing()
    if missing is not None:
        if _under_ci():
            pytest.fail(f"{missing}: CI must run the browser test", pytrace=False)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    for argument in [*arguments, "--window-size=1600,1800", "--lang=en"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _until(condition: Callable[[], Any], what: str, within: float = WAIT) -> Any:
    """Polls ``condition`` (retrying while the page re-renders under it) until truthy."""
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )

    deadline = time.monotonic() + within
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = condition()
            if found:
                return found
        except (
            StaleElementReferenceException,
            NoSuchElementException,
            ElementClickInterceptedException,
        ) as error:
            last = error
        time.sleep(0.15)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


class Page:
    """The console as a person sees it."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def click(self, selector: str) -> None:
        """Clicks the newest element matching ``selector`` once it is on screen."""

        def attempt() -> bool:
            found = self.css(selector)
            if not found:
                return False
            element = found[-1]
            self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
            element.click()
            return True

        _until(attempt, selector)

    def type(self, selector: str, text: str) -> None:
        from selenium.webdriver.common.keys import Keys

        field = self.css(selector)[0]
        field.clear()
        field.send_keys(text, Keys.ENTER)

    def text(self, selector: str) -> str:
        return "\n".join(e.text for e in self.css(selector))

    def wait_text(self, selector: str, needle: str) -> str:
        return str(_until(lambda: needle in self.text(selector) and self.text(selector), needle))

    def click_map(self, lat: float, lon: float) -> None:
        """A real mouse click on the SVG map where (lat, lon) is drawn."""
        from selenium.webdriver.common.action_chains import ActionChains

        svg = self.css("#citymap")[0]
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", svg)
        x, y = self.driver.execute_script(
            """
            const [lat, lon] = [arguments[0], arguments[1]];
            const svg = document.getElementById('citymap');
            const box = svg.getBoundingClientRect();
            const [sx, sy] = project(lon, lat);
            const point = svg.createSVGPoint();
            point.x = sx; point.y = sy;
            const screen = point.matrixTransform(svg.getScreenCTM());
            return [screen.x - box.left - box.width / 2, screen.y - box.top - box.height / 2];
            """,
            lat,
            lon,
        )
        ActionChains(self.driver).move_to_element_with_offset(svg, int(x), int(y)).click().perform()

    def shot(self, selector: str, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.css(selector)[0].screenshot(str(path))
        return path


def test_one_person_plays_citizen_operator_and_agency_from_first_tap_to_help_on_scene(
    browser: Any, tmp_path: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with DemoThread(tmp_path / "demo.db") as demo:
        browser.get(demo.url)
        page = Page(browser)
        page.wait_text("#citizen-name", "Siti")
        _until(lambda: page.css("#citymap path.kel"), "the map")
        # The citizen: /start, report, disaster → flood, a click on the map, own number.
        page.type("#citizen-input", "/start")
        page.click('#citizen-messages button[data-data="m|report"]')
        page.click('#citizen-messages button[data-data$="|grp|DISASTER"]')
        page.click('#citizen-messages button[data-data$="|cat|FLOOD"]')
        _until(lambda: page.css("#citizen-keyboard button"), "the location keyboard")
        page.click("#citizen-location")
        page.click_map(*SIMPANG_LIMA)
        page.wait_text("#citizen-messages", "📍")
        page.click('#citizen-messages button[data-data$="|locok"]')
        _until(lambda: page.css("#citizen-keyboard button"), "the contact keyboard")
        page.click("#citizen-phone")  # the contact's name is taken: the details screen
        _until(lambda: page.css('#citizen-messages button[data-data$="|submit"]'), "submit")
        page.type("#citizen-input", "Air masuk rumah setinggi lutut")
        page.click('#citizen-messages button[data-data$="|submit"]')
        confirmation = page.wait_text("#citizen-messages", "SMG-")
        assert "LATIHAN / EXERCISE" in confirmation
        # The map shows the open ticket where the citizen clicked.
        _until(lambda: page.css("#ticket-points circle[data-ref^='SMG-']"), "the ticket's point")
        ref = page.css("#ticket-points circle")[0].get_attribute("data-ref")
        # The operator: the ticket's topic, claim, reply.
        page.click("#operators-topics a[data-thread]:not([data-thread=''])")
        page.wait_text("#operators-messages", ref)
        assert "LATIHAN" in page.text("#operators-topics")
        page.click('#operators-messages button[data-data^="o|claim|"]')
        page.wait_text("#operators-messages", "Dewi")
        page.type("#operators-input", "Tim BPBD kami kirim, tetap di lantai atas")
        page.wait_text("#citizen-messages", "Tim BPBD kami kirim, tetap di lantai atas")
        page.wait_text("#citizen-messages", "👮")  # the status: an operator handles it
        assert ref in page.text("#citizen-messages")
        # Dispatch to BPBD (suggested for floods), whose member acknowledges and arrives.
        page.click('#operators-messages button[data-data^="o|dispatch|"]')
        page.click('#operators-messages button[data-data^="o|dgo|"]')
        page.wait_text("#agency-messages", ref)
        assert "LATIHAN / EXERCISE" in page.text("#agency-messages")
        page.click('#agency-messages button[data-data^="a|ack|"]')
        page.click('#agency-messages button[data-data^="a|os|"]')
        page.wait_text("#citizen-messages", "📍 Bantuan telah tiba")
        shots = [
            page.shot("#citizen", "citizen"),
            page.shot("#operators", "operators"),
            page.shot("#agency", "agency"),
            page.shot("#mappane", "map"),
        ]
        browser.save_screenshot(str(ARTIFACTS / "console.png"))
    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 2_000
