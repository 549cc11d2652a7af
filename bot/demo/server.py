"""``siaga112 demo``: the real bot against the Bot API double, and a browser console.

One process, loopback only:

* the Bot API double (``bot.double.fake_bot_api.FakeBotApi``) on a free port;
* the unmodified bot (``bot.app.build_application``) polling it, configured through its
  settings alone (``bot.demo.world``): a demo SQLite file, ``DEMO_MODE=on``;
* the console (:class:`DemoConsole`): static HTML/CSS/JS shipped in ``bot/demo/static`` and
  a small JSON API on top of the double's control API, in which one person plays a citizen,
  a roster operator and an agency member.

``reset`` stops the bot and the double, deletes the demo database and starts both afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from aiohttp import web

from bot.app import build_application, start_application, stop_application
from bot.config import Settings
from bot.demo import world as w
from bot.demo.citymap import city_map
from bot.double.botapi_model import StoredMessage
from bot.double.fake_bot_api import FakeBotApi
from bot.double.simulated import SimUser
from bot.double.updates import JSON
from handlers.context import SERVICES_KEY, SiagaApplication
from storage.db import create_engine, session_factory
from storage.uow import SqlUnitOfWorkFactory

log = logging.getLogger(__name__)

MAX_PHOTO_BYTES = 10 * 1024 * 1024
LANGUAGES = ("id", "en")
STATIC = "static"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]


class DemoError(Exception):
    """A console request that cannot be done; ``message`` is shown to the person."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class World:
    """One running demo: the double, the bot and a read-only view of the demo database."""

    fake: FakeBotApi
    settings: Settings
    application: SiagaApplication
    generation: int
    citizen: SimUser
    operators: dict[int, SimUser]
    agency_member: SimUser
    tickets: SqlUnitOfWorkFactory
    dispose: Callable[[], Awaitable[None]]
    presses: dict[str, str] = field(default_factory=dict)
    """Callback query id -> pane, so the bot's answer shows as a toast in that pane."""

    async def stop(self) -> None:
        """Stops the bot like SIGTERM (post_shutdown included), then the double."""
        try:
            await stop_application(self.application)
        finally:
            await self.dispose()
            await self.fake.stop()


async def start_world(
    database: Path, agencies_file: Path, generation: int, environ: Mapping[str, str]
) -> World:
    """Starts the double, then the bot pointed at it (``post_init`` migrates the database)."""
    fake = FakeBotApi(strict_ampersand=False)  # a bare "&" is kept literally, as Telegram does
    await fake.start()
    application: SiagaApplication | None = None
    try:
        fake.register_forum(w.OPERATORS_CHAT, w.OPERATORS_TITLE)
        fake.register_forum(w.AGENCY_CHAT, "Agency (LATIHAN)", is_forum=False)
        settings = w.demo_settings(
            token=fake.token, base_url=fake.base_url, file_url=fake.base_file_url,
            database=database, agencies_file=agencies_file, environ=environ,
        )  # fmt: skip
        agency = next(a for a in settings.agencies if a.telegram_chat_id == w.AGENCY_CHAT)
        fake.model.chats[w.AGENCY_CHAT].raw["title"] = f"{agency.name} (LATIHAN)"
        language = settings.default_language
        citizen = fake.add_user(
            w.CITIZEN_ID, w.CITIZEN_NAME, language_code=language, phone_number=w.CITIZEN_PHONE
        )
        operators = {
            p.id: fake.add_user(p.id, p.first_name, last_name=p.last_name) for p in w.OPERATORS
        }
        member = w.AGENCY_MEMBER
        agency_member = fake.add_user(member.id, member.first_name, last_name=member.last_name)
        application = build_application(settings)
        await start_application(
            application, poll_timeout=dtm.timedelta(seconds=5), allowed_updates=ALLOWED_UPDATES
        )
    except BaseException:
        if application is not None:  # a failed start closes what it opened (HTTP pools…)
            with contextlib.suppress(Exception):
                await stop_application(application)
        await fake.stop()
        raise
    engine = create_engine(settings.database_url)
    return World(
        fake, settings, application, generation, citizen, operators, agency_member,
        SqlUnitOfWorkFactory(session_factory(engine), read_only=True), engine.dispose,
    )  # fmt: skip


def delete_database(database: Path) -> None:
    """Deletes the demo SQLite file and its journal files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)


# -- what the console shows ---------------------------------------------------------------------


def _sender_name(user: JSON) -> str:
    return " ".join(str(user[k]) for k in ("first_name", "last_name") if user.get(k))


def _buttons(raw: JSON) -> list[list[JSON]]:
    markup = raw.get("reply_markup") or {}
    return [
        [
            {"text": b.get("text", ""), "data": b.get("callback_data"), "url": b.get("url")}
            for b in row
        ]
        for row in markup.get("inline_keyboard", [])
    ]


def message_view(message: StoredMessage, pinned: frozenset[int]) -> JSON | None:
    """One message as the console draws it (None: a service message, not drawn)."""
    raw = message.raw
    if message.kind == "service":
        return None
    sender = raw.get("from") or {}
    reply = raw.get("reply_to_message") or {}
    view: JSON = {
        "id": message.message_id,
        "thread": message.thread_id if raw.get("is_topic_message") else None,
        "from": _sender_name(sender),
        "sender": sender.get("id"),
        "bot": message.outgoing,
        "kind": message.kind,
        "text": message.text or "",
        "entities": raw.get("entities") or raw.get("caption_entities") or [],
        "buttons": _buttons(raw),
        "edited": bool(message.history),
        "date": raw.get("date"),
        "pinned": message.message_id in pinned,
        "reply_to": None if "forum_topic_created" in reply else reply.get("message_id"),
    }
    if "photo" in raw:
        view["file"] = raw["photo"][-1]["file_id"]
    for kind in ("document", "voice", "video", "audio", "sticker"):
        if kind in raw:
            view["file"] = raw[kind].get("file_id")
    if "location" in raw:
        view["location"] = {"lat": raw["location"]["latitude"], "lon": raw["location"]["longitude"]}
    if "venue" in raw:
        view["venue"] = {"title": raw["venue"].get("title"), "address": raw["venue"].get("address")}
    if "contact" in raw:
        view["contact"] = raw["contact"].get("phone_number")
    return view


def _people(users: Mapping[int, SimUser]) -> list[JSON]:
    return [{"id": uid, "name": _sender_name(user.user)} for uid, user in users.items()]


class DemoConsole:
    """The console's web server and the demo it drives (see the module docstring)."""

    def __init__(
        self,
        *,
        database: Path,
        agency: str = w.DEFAULT_AGENCY,
        environ: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
    ) -> None:
        self.database = database
        self.agency = agency
        self.environ = dict(os.environ if environ is None else environ)
        self.host = host
        self.port = port
        self.answer_timeout = 10.0
        """Seconds the console waits for the bot's answer it needs (the language menu)."""
        self.world: World | None = None
        self.scenario: asyncio.Task[None] | None = None
        self.scenario_progress: JSON = {}
        self._generation = 0
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="siaga112-demo-")
        self._agencies_file = w.demo_agencies_file(Path(self._tmp.name), agency)

    @property
    def url(self) -> str:
        """Where the console is (``http://127.0.0.1:PORT/``)."""
        return f"http://{self.host}:{self.port}/"

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Starts the console's port first (a taken port fails before anything else runs:
        ``OSError``), then the double and the bot."""
        self._runner = web.AppRunner(self.web_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = int(self._runner.addresses[0][1])
        await self._start_world()

    async def stop(self) -> None:
        """Stops the scenario, the bot, the double and the console."""
        await self._stop_scenario()
        if self.world is not None:
            world, self.world = self.world, None
            await world.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._tmp.cleanup()

    async def _start_world(self) -> None:
        self._generation += 1
        self.world = await start_world(
            self.database, self._agencies_file, self._generation, self.environ
        )

    async def reset(self) -> None:
        """Starts over: no scenario, a new double, an empty demo database."""
        async with self._lock:
            await self._stop_scenario()
            if self.world is not None:
                world, self.world = self.world, None
                await world.stop()
            await asyncio.to_thread(delete_database, self.database)
            await self._start_world()

    async def _stop_scenario(self) -> None:
        if self.scenario is not None and not self.scenario.done():
            self.scenario.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.scenario
        self.scenario = None

    def start_scenario(self, name: str) -> None:
        """Starts a scripted scenario in the background (one at a time)."""
        from bot.demo.scenarios import SCENARIOS  # noqa: PLC0415 - scenarios import this module

        if name not in SCENARIOS:
            raise DemoError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
        if self.scenario is not None and not self.scenario.done():
            raise DemoError("a scenario is already running", 409)
        world = self._world()
        self.scenario_progress = {"name": name, "sent": 0, "failed": 0, "running": True}
        self.scenario = asyncio.create_task(self._run_scenario(SCENARIOS[name], world))

    async def _run_scenario(
        self, scenario: Callable[[World, JSON], Awaitable[None]], world: World
    ) -> None:
        try:
            await scenario(world, self.scenario_progress)
        except Exception:
            log.exception("the demo scenario failed")
        finally:
            self.scenario_progress["running"] = False

    def _world(self) -> World:
        if self.world is None:
            raise DemoError("the demo is starting over; try again in a moment", 503)
        return self.world

    # -- HTTP ------------------------------------------------------------------------------------
    def web_app(self) -> web.Application:
        """The console: the page, its assets, the JSON API."""
        app = web.Application(client_max_size=MAX_PHOTO_BYTES + 1024 * 1024)
        app.router.add_get("/", self._index)
        static = Path(str(resources.files("bot.demo") / STATIC))
        app.router.add_static("/static/", static)
        app.router.add_get("/api/map", self._map)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/file/{file_id}", self._file)
        actions: dict[str, Callable[[World, JSON], Awaitable[JSON]]] = {
            "citizen/send": self._citizen_send,
            "citizen/press": self._citizen_press,
            "citizen/contact": self._citizen_contact,
            "citizen/location": self._citizen_location,
            "citizen/language": self._citizen_language,
            "operator/send": self._operator_send,
            "operator/press": self._operator_press,
            "agency/send": self._agency_send,
            "agency/press": self._agency_press,
        }
        for path, action in actions.items():
            app.router.add_post(f"/api/{path}", self._json_action(action))
        app.router.add_post("/api/citizen/photo", self._citizen_photo)
        app.router.add_post("/api/reset", self._reset)
        app.router.add_post("/api/scenario", self._scenario)
        return app

    @staticmethod
    def _error(message: str, status: int = 400) -> web.Response:
        return web.json_response({"ok": False, "error": message}, status=status)

    def _json_action(
        self, action: Callable[[World, JSON], Awaitable[JSON]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            try:
                body = await request.json()
            except ValueError:
                return self._error("the request is not JSON")
            if not isinstance(body, dict):
                return self._error("expected a JSON object")
            try:
                result = await action(self._world(), body)
            except DemoError as error:
                return self._error(error.message, error.status)
            except LookupError as gone:
                log.info("console press refused: %s", gone)
                return self._error("that button is no longer on screen", 409)
            except (KeyError, TypeError, ValueError) as bad:
                return self._error(f"bad request: {bad}")
            except TimeoutError:
                return self._error("the bot did not answer in time; try again", 504)
            except Exception as failure:  # the page must get an answer it can show
                log.exception("console action failed")
                return self._error(f"the demo failed: {type(failure).__name__}", 500)
            return web.json_response({"ok": True, **result})

        return handle

    async def _index(self, request: web.Request) -> web.StreamResponse:
        page = resources.files("bot.demo") / STATIC / "index.html"
        return web.Response(text=page.read_text(encoding="utf-8"), content_type="text/html")

    async def _map(self, request: web.Request) -> web.Response:
        return web.json_response(city_map())

    async def _file(self, request: web.Request) -> web.Response:
        record = self._world().fake.model.files.get(request.match_info["file_id"])
        if record is None:
            return self._error("no such file", 404)
        mime = record.mime_type or ("image/jpeg" if record.kind == "photo" else None)
        return web.Response(body=record.content, content_type=mime or "application/octet-stream")

    async def _reset(self, request: web.Request) -> web.Response:
        await self.reset()
        return web.json_response({"ok": True, "generation": self._generation})

    async def _scenario(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            self.start_scenario(str(body.get("name", "")))
        except (ValueError, AttributeError):
            return self._error('expected {"name": "flood"}')
        except DemoError as error:
            return self._error(error.message, error.status)
        return web.json_response({"ok": True})

    # -- the state the console polls --------------------------------------------------------------
    def _etag(self, world: World) -> str:
        model = world.fake.model
        seen = sum(chat.last_message_id for chat in model.chats.values())
        progress = self.scenario_progress.get("sent", 0), self.scenario_progress.get("running")
        return f"{world.generation}.{len(model.calls)}.{seen}.{progress}"

    def _chat_messages(self, world: World, chat_id: int) -> list[JSON]:
        chat = world.fake.model.chats.get(chat_id)
        pinned = frozenset(chat.pinned) if chat else frozenset()
        views = (message_view(m, pinned) for m in world.fake.messages_for(chat_id, incoming=True))
        return [v for v in views if v is not None]

    def _toasts(self, world: World) -> list[JSON]:
        toasts = []
        for query_id, answer in world.fake.model.callback_answers.items():
            pane = world.presses.pop(query_id, None)
            if pane is not None and answer.get("text"):
                toasts.append({"pane": pane, "text": answer["text"]})
        return toasts

    async def _tickets(self, world: World) -> list[JSON]:
        try:
            async with world.tickets() as uow:
                tickets = await uow.tickets.queue()
        except Exception as failure:  # the database is being created or reset
            log.debug("reading the open tickets failed: %s", type(failure).__name__)
            return []
        points = []
        for t in tickets:
            where = t.incident_location or t.reporter_location
            if where is None:
                continue
            area = where.area
            points.append(
                {
                    "ref": t.ref, "priority": t.priority, "status": t.status.value,
                    "lat": where.lat, "lon": where.lon, "thread": t.operator_thread_id,
                    "category": t.category.value if t.category else None,
                    "kecamatan": area.kecamatan_name if area else None,
                    "claimed_by": t.claimed_by_name,
                }
            )  # fmt: skip
        return points

    async def _state(self, request: web.Request) -> web.Response:
        try:
            world = self._world()
        except DemoError as error:
            return self._error(error.message, error.status)
        etag = self._etag(world)
        toasts = self._toasts(world)
        if request.query.get("since") == etag and not toasts:
            return web.json_response({"ok": True, "etag": etag, "unchanged": True})
        model = world.fake.model
        forum = model.chats[w.OPERATORS_CHAT]
        citizen_chat = model.chats.get(w.CITIZEN_ID)
        topics = [
            {"thread": t.thread_id, "name": t.name, "color": t.icon_color, "closed": t.closed}
            for t in forum.topics.values()
        ]
        services = world.application.bot_data.get(SERVICES_KEY)
        citizen_language = await services.queries.language_of(w.CITIZEN_ID) if services else None
        agency_chat = model.chats[w.AGENCY_CHAT]
        body: JSON = {
            "ok": True,
            "etag": etag,
            "generation": world.generation,
            "citizen": {
                "id": w.CITIZEN_ID,
                "name": _sender_name(world.citizen.user),
                "language": citizen_language or world.settings.default_language,
                "messages": self._chat_messages(world, w.CITIZEN_ID),
                "keyboard": citizen_chat.reply_keyboard if citizen_chat else None,
            },
            "operators": {
                "title": forum.raw.get("title"),
                "people": _people(world.operators),
                "topics": topics,
                "messages": self._chat_messages(world, w.OPERATORS_CHAT),
            },
            "agency": {
                "title": agency_chat.raw.get("title"),
                "people": _people({world.agency_member.id: world.agency_member}),
                "messages": self._chat_messages(world, w.AGENCY_CHAT),
            },
            "tickets": await self._tickets(world),
            "toasts": toasts,
            "scenario": self.scenario_progress,
        }
        return web.json_response(body)

    # -- actions -----------------------------------------------------------------------------------
    @staticmethod
    def _text(body: JSON) -> str:
        text = str(body.get("text", "")).strip()
        if not text:
            raise DemoError("write something first")
        if len(text) > 4096:
            raise DemoError("a Telegram message holds at most 4096 characters")
        return text

    @staticmethod
    async def _press(world: World, user: SimUser, pane: str, chat_id: int, body: JSON) -> JSON:
        message_id = body.get("message_id")
        if message_id is None:  # a reply-keyboard button: its text is sent
            sent = await user.press(str(body["text"]), chat_id=chat_id)
            return {"message_id": sent.get("message_id")}
        query = await user.press(str(body["data"]), int(message_id), chat_id=chat_id)
        world.presses[str(query["id"])] = pane
        return {}

    @staticmethod
    async def _type(
        user: SimUser, text: str, chat_id: int | None = None, thread: int | None = None
    ) -> None:
        """Sends what a person typed as a Telegram client does: ``/word`` as a command."""
        if text.startswith("/"):
            command, _, args = text[1:].partition(" ")
            await user.send_command(command, args, chat_id=chat_id, thread_id=thread)
        else:
            await user.send_text(text, chat_id=chat_id, thread_id=thread)

    async def _citizen_send(self, world: World, body: JSON) -> JSON:
        await self._type(world.citizen, self._text(body))
        return {}

    async def _citizen_press(self, world: World, body: JSON) -> JSON:
        return await self._press(world, world.citizen, "citizen", w.CITIZEN_ID, body)

    async def _citizen_contact(self, world: World, body: JSON) -> JSON:
        await world.citizen.share_contact(own=True)
        self._hide_one_time_keyboard(world)
        return {}

    async def _citizen_location(self, world: World, body: JSON) -> JSON:
        lat, lon = float(body["lat"]), float(body["lon"])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise DemoError("that is not a place on Earth")
        await world.citizen.share_location(lat, lon, float(body.get("accuracy", 10)))
        self._hide_one_time_keyboard(world)
        return {}

    @staticmethod
    def _hide_one_time_keyboard(world: World) -> None:
        """A tap on a one-time keyboard's contact/location button hides it, as in Telegram."""
        chat = world.fake.model.chats.get(w.CITIZEN_ID)
        if (
            chat is not None
            and chat.reply_keyboard
            and chat.reply_keyboard.get("one_time_keyboard")
        ):
            chat.reply_keyboard = None

    async def _citizen_language(self, world: World, body: JSON) -> JSON:
        """The citizen's language, chosen as a citizen does: /language, then the flag."""
        language = str(body.get("language", ""))
        if language not in LANGUAGES:
            raise DemoError(f"language must be one of {', '.join(LANGUAGES)}")
        citizen = world.citizen
        world.citizen.user["language_code"] = language
        sent = await citizen.send_command("language")
        data = f"m|lang|{language}"
        menu = await world.fake.wait_for_message(
            w.CITIZEN_ID,
            lambda m: any(b.get("callback_data") == data for b in m.inline_buttons),
            after=int(sent["message_id"]),
            timeout=self.answer_timeout,
        )
        query = await citizen.press(data, menu)
        world.presses[str(query["id"])] = "citizen"
        return {}

    async def _citizen_photo(self, request: web.Request) -> web.Response:
        try:
            world = self._world()
            form = await request.post()
        except DemoError as error:
            return self._error(error.message, error.status)
        except ValueError:
            return self._error("the photo could not be read")
        upload = form.get("photo")
        if not isinstance(upload, web.FileField):
            return self._error("choose a photo first")
        mime = upload.content_type or ""
        if not mime.startswith("image/"):
            return self._error("that file is not a picture")
        content = upload.file.read(MAX_PHOTO_BYTES + 1)
        if len(content) > MAX_PHOTO_BYTES:
            return self._error("the photo is larger than 10 MB")
        file_id, unique_id = world.fake.model.new_file(
            "photo", len(content), content, mime_type=mime
        )
        size: JSON = {"file_id": file_id, "file_unique_id": unique_id, "width": 1280,
                      "height": 960, "file_size": len(content)}  # fmt: skip
        photo: JSON = {"photo": [size]}
        caption = str(form.get("caption") or "").strip()
        if caption:
            photo["caption"] = caption[:1024]
        await world.citizen.send_content(photo)
        return web.json_response({"ok": True})

    def _operator(self, world: World, body: JSON) -> SimUser:
        operator_id = int(body.get("operator") or w.OPERATORS[0].id)
        if operator_id not in world.operators:
            raise DemoError("not an operator of the demo roster")
        return world.operators[operator_id]

    async def _operator_send(self, world: World, body: JSON) -> JSON:
        text = self._text(body)
        if body.get("note") and not text.startswith("!"):
            text = f"!{text}"  # an internal note: operators only
        thread = body.get("thread")
        operator = self._operator(world, body)
        await self._type(operator, text, w.OPERATORS_CHAT, int(thread) if thread else None)
        return {}

    async def _operator_press(self, world: World, body: JSON) -> JSON:
        operator = self._operator(world, body)
        return await self._press(world, operator, "operators", w.OPERATORS_CHAT, body)

    async def _agency_send(self, world: World, body: JSON) -> JSON:
        await self._type(world.agency_member, self._text(body), w.AGENCY_CHAT)
        return {}

    async def _agency_press(self, world: World, body: JSON) -> JSON:
        return await self._press(world, world.agency_member, "agency", w.AGENCY_CHAT, body)
