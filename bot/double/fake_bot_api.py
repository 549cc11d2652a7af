"""Flow tier: a fake Telegram Bot API server that the real, unmodified ``Application`` polls.

``FakeBotApi`` serves ``/bot{token}/{method}`` and ``/file/bot{token}/{path}`` on 127.0.0.1
(a free port) from a ``BotApiModel``, with real long polling for ``getUpdates``, or, once
the bot sets a webhook, each update pushed to it (:mod:`bot.double.webhook`). Point PTB at
it with ``base_url``/``base_file_url`` (or ``TELEGRAM_API_BASE_URL``/``TELEGRAM_API_FILE_URL``
for a ``siaga112 run`` process) and drive it through the test-control API of
``SimulatedTelegram`` (users, forums, failures, what each chat shows, waiting).

In a test::

    async with FakeBotApi() as fake:
        app = fake.application_builder().build()
        app.add_handler(...)
        async with polling(app):
            budi = fake.add_user(first_name="Budi")
            await budi.send_command("start")
            reply = await budi.wait_reply()

Standalone, for black-box runs (control endpoints under ``/_control/``)::

    python -m bot.double.fake_bot_api --port 8081 --forum -1001234567890:"Operator 112"
    curl -s localhost:8081/_control/updates -d '{"user_id": 42, "text": "/start"}'
    curl -s 'localhost:8081/_control/messages?chat_id=42'

Lessons built in: ``handler_cancellation=True`` (teardown never waits for a long poll), real
long polling (no busy loop in PTB), form/multipart parameters decoded like Telegram does
(numbers and objects from strings, ``text``/``data``/``caption`` kept as strings), Unix-second
dates, ``is_bot`` in ``getMe``, ``chat_instance`` in callback queries, unknown methods -> 400
(a 404 would make PTB raise ``InvalidToken``), a wrong token -> 401.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dtm
import json
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from telegram.ext import Application, ApplicationBuilder

from bot.double.botapi_model import (
    CONFLICT_OTHER_POLL,
    ApiError,
    BotApiModel,
    StoredMessage,
    UploadedFile,
)
from bot.double.errors import raise_if_any, record_errors
from bot.double.flood import FloodLimits
from bot.double.simulated import SimulatedTelegram
from bot.double.updates import JSON, TEST_TOKEN
from bot.double.webhook import WebhookPusher

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

MAX_LONG_POLL_SECONDS = 50.0
_LOGGER = logging.getLogger(__name__)

# Parameters Telegram reads as strings even when they look like numbers or JSON.
_STRING_PARAMS = frozenset(
    [
        "text",
        "caption",
        "data",
        "parse_mode",
        "title",
        "name",
        "address",
        "callback_query_id",
        "url",
        "action",
        "emoji",
        "file_id",
        "photo",
        "voice",
        "document",
        "sticker",
        "video",
        "audio",
        "animation",
        "description",
        "short_description",
        "first_name",
        "last_name",
        "phone_number",
        "vcard",
        "language_code",
        "inline_message_id",
        "foursquare_id",
        "foursquare_type",
        "google_place_id",
        "google_place_type",
        "icon_custom_emoji_id",
        "secret_token",
        "message_effect_id",
        "business_connection_id",
        "query",
        "custom_title",
        "question",
        "explanation",
        "payload",
        "ip_address",
    ]
)
_UPDATE_KINDS = frozenset(
    [
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "callback_query",
        "my_chat_member",
        "chat_member",
        "inline_query",
        "chosen_inline_result",
    ]
)


def decode_param(key: str, value: str) -> Any:
    """One form/query field as Telegram reads it: JSON numbers, booleans, objects and arrays
    are decoded (PTB sends them as strings), string parameters stay strings."""
    if key in _STRING_PARAMS:
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, dict | list | int | float) else value


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(
        body, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
    )


def message_view(message: StoredMessage) -> JSON:
    """A stored message as the control API shows it."""
    return {
        "chat_id": message.chat_id,
        "message_id": message.message_id,
        "outgoing": message.outgoing,
        "kind": message.kind,
        "text": message.text,
        "html": message.html,
        "buttons": message.button_texts,
        "thread_id": message.thread_id,
        "deleted": message.deleted,
        "edited": bool(message.history),
        "reaction": message.reaction,
        "raw": message.raw,
    }


def builder_for(
    token: str, base_url: str, base_file_url: str
) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
    """An ``ApplicationBuilder`` for a fake Bot API known by its token and URLs only (one
    running in another process: ``bench/intake.py --split``)."""
    return ApplicationBuilder().token(token).base_url(base_url).base_file_url(base_file_url)


class FakeBotApi(SimulatedTelegram):
    """The fake Bot API server (see the module docstring)."""

    def __init__(
        self,
        model: BotApiModel | None = None,
        *,
        token: str = TEST_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        strict_ampersand: bool = True,
        latency: float = 0.0,
    ) -> None:
        super().__init__(model or BotApiModel(token=token, strict_ampersand=strict_ampersand))
        self.host = host
        self.port = port
        self.latency = latency
        """Seconds added before answering each method (long polls excepted)."""
        self.poll_count = 0
        """How many ``getUpdates`` requests have started (counted on arrival, so a test can
        wait for "polling again" without waiting for a long poll to end)."""
        self.webhook = WebhookPusher(self.model)
        """Pushes updates to the bot's webhook once it sets one (:mod:`bot.double.webhook`)."""
        self._pusher: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._poll_generation = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def token(self) -> str:
        return self.model.token

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """PTB ``base_url`` (the token is appended): ``http://127.0.0.1:PORT/bot``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """PTB ``base_file_url``: ``http://127.0.0.1:PORT/file/bot``."""
        return f"{self.url}/file/bot"

    def application_builder(self) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
        """An ``ApplicationBuilder`` with this server's token and URLs."""
        return builder_for(self.token, self.base_url, self.base_file_url)

    def web_app(self) -> web.Application:
        """The aiohttp application (Bot API, file and control routes)."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_get("/_control/health", self._control_health)
        app.router.add_post("/_control/updates", self._control_updates)
        app.router.add_get("/_control/messages", self._control_messages)
        app.router.add_get("/_control/calls", self._control_calls)
        app.router.add_post("/_control/fail", self._control_fail)
        app.router.add_post("/_control/block", self._control_block)
        app.router.add_post("/_control/forums", self._control_forums)
        app.router.add_post("/_control/flood", self._control_flood)
        app.router.add_get("/_control/flood", self._control_flood)
        return app

    async def start(self) -> None:
        """Starts listening (on a free port unless one was given)."""
        self._closing = False
        self._runner = web.AppRunner(
            self.web_app(), handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._pusher = asyncio.create_task(self.webhook.run(), name="fake Bot API webhook")

    async def stop(self) -> None:
        """Answers pending long polls at once and shuts the server down."""
        self._closing = True
        self.model.notify()
        if self._pusher is not None:
            await self.webhook.stop(self._pusher)
            self._pusher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- updates -----------------------------------------------------------------------------------
    async def deliver(self, update: JSON) -> None:
        """Queues a raw update for ``getUpdates`` (an ``update_id`` is assigned if missing)."""
        update.setdefault("update_id", self.updates.next_update_id())
        self.model.accept_update(update)
        self.model.pending_updates.append(update)
        self.model.notify()

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by the bot (via ``offset``)."""
        return self.model.pending_updates

    # -- HTTP: the Bot API -----------------------------------------------------------------------
    async def _read_params(self, request: web.Request) -> tuple[JSON, dict[str, UploadedFile]]:
        params: JSON = {key: decode_param(key, value) for key, value in request.query.items()}
        files: dict[str, UploadedFile] = {}
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(
                    {k: decode_param(k, v) if isinstance(v, str) else v for k, v in body.items()}
                )
        elif request.body_exists:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = UploadedFile(value.filename, value.file.read(), value.content_type)
                else:
                    params[key] = decode_param(key, str(value))
        return params, files

    async def _handle_method(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        method = request.match_info["method"]
        params, files = await self._read_params(request)
        if method.lower() == "getupdates":
            return await self._get_updates(params)
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            result = self.model.call(method, params, files)
        except ApiError as error:
            return _json_response(error.to_json(), error.status)
        except Exception as crash:  # a bug in the test double, not a Telegram answer
            _LOGGER.exception("the fake Bot API crashed answering %s", method)
            description = f"Internal Server Error: the test double crashed: {crash!r}"
            return _json_response({"ok": False, "error_code": 500, "description": description}, 500)
        return _json_response({"ok": True, "result": result})

    async def _get_updates(self, params: JSON) -> web.Response:
        """Long polling: answers as soon as there is an update, or after ``timeout``. A newer
        ``getUpdates`` ends an older one with 409, as on Telegram."""
        self.poll_count += 1
        self.model.notify()
        error = self.model.take_injected_failure("getUpdates")
        if error is not None:
            return _json_response(error.to_json(), error.status)
        self._poll_generation += 1
        generation = self._poll_generation
        timeout = min(max(float(params.get("timeout") or 0), 0.0), MAX_LONG_POLL_SECONDS)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                conflict = ApiError(409, CONFLICT_OTHER_POLL)
                return _json_response(conflict.to_json(), 409)
            try:
                updates = self.model.take_updates(params)
            except ApiError as failure:
                return _json_response(failure.to_json(), failure.status)
            remaining = deadline - loop.time()
            if updates or self._closing or remaining <= 0:
                return _json_response({"ok": True, "result": updates})
            await self.model.changed(remaining)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return _json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, 401
            )
        path = request.match_info["path"]
        record = next((f for f in self.model.files.values() if f.file_path == path), None)
        if record is None:
            return _json_response({"ok": False, "error_code": 404, "description": "Not Found"}, 404)
        return web.Response(
            body=record.content, content_type=record.mime_type or "application/octet-stream"
        )

    # -- HTTP: test control --------------------------------------------------------------------
    async def _control_health(self, request: web.Request) -> web.Response:
        return _json_response(
            {"ok": True, "base_url": self.base_url, "pending": len(self.pending_updates)}
        )

    async def _control_updates(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body, dict):
            return _json_response({"ok": False, "description": "expected a JSON object"}, 400)
        try:
            result = await self.inject(body)
        except (LookupError, ValueError, TypeError) as error:
            return _json_response({"ok": False, "description": str(error)}, 400)
        return _json_response({"ok": True, "result": result})

    async def inject(self, body: JSON) -> JSON:
        """Enqueues a raw update, or a simple action of a user::

            {"user_id": 42, "text": "hi"}        {"user_id": 42, "command": "start"}
            {"user_id": 42, "contact": true}     {"user_id": 42, "location": [-6.99, 110.42]}
            {"user_id": 42, "press": "Klaim", "chat_id": -100123, "message_id": 7}
            {"user_id": 42, "photo": true, "caption": "..."}     {"user_id": 42, "voice": 3}

        ``chat_id``/``thread_id`` place a text, command or location in a group topic.
        Returns the raw update, or the Message/CallbackQuery the user produced."""
        if _UPDATE_KINDS & body.keys():
            await self.deliver(body)
            return body
        if "user_id" not in body:
            raise ValueError("expected a raw update or an object with user_id")
        user = self.users.get(int(body["user_id"])) or self.add_user(
            int(body["user_id"]), str(body.get("first_name", "Budi"))
        )
        where: dict[str, Any] = {"chat_id": body.get("chat_id"), "thread_id": body.get("thread_id")}
        if "press" in body:
            message_id = body.get("message_id")
            return await user.press(
                str(body["press"]),
                int(message_id) if message_id else None,
                chat_id=body.get("chat_id"),
            )
        if "command" in body:
            return await user.send_command(str(body["command"]), str(body.get("args", "")), **where)
        if "contact" in body:
            own = body["contact"] is True or (
                isinstance(body["contact"], dict) and body["contact"].get("own", True)
            )
            return await user.share_contact(own=bool(own), phone_number=body.get("phone_number"))
        if "location" in body:
            latitude, longitude = body["location"]
            return await user.share_location(
                float(latitude),
                float(longitude),
                body.get("accuracy"),
                live_period=body.get("live_period"),
                **where,
            )
        if body.get("photo"):
            return await user.send_photo(body.get("caption"), **where)
        if body.get("voice"):
            return await user.send_voice(
                int(body["voice"]) if body["voice"] is not True else 4, **where
            )
        if body.get("sticker"):
            return await user.send_sticker(**where)
        if "text" in body:
            text = str(body["text"])
            if text.startswith("/"):
                command, _, args = text[1:].partition(" ")
                return await user.send_command(command, args, **where)
            return await user.send_text(text, **where)
        raise ValueError(
            "nothing to send: give text, command, contact, location, press, photo, voice or sticker"
        )

    async def _control_messages(self, request: web.Request) -> web.Response:
        try:
            chat_id = int(request.query["chat_id"])
        except (KeyError, ValueError):
            return _json_response({"ok": False, "description": "chat_id is required"}, 400)
        incoming = request.query.get("incoming", "") in ("1", "true")
        messages = self.messages_for(chat_id, incoming=incoming)
        return _json_response({"ok": True, "result": [message_view(m) for m in messages]})

    async def _control_calls(self, request: web.Request) -> web.Response:
        method = request.query.get("method")
        calls = self.calls_to(method) if method else self.calls
        result = [
            {
                "method": c.method,
                "params": c.params,
                "ok": c.ok,
                "error": c.error.description if c.error else None,
            }
            for c in calls
        ]
        return _json_response({"ok": True, "result": result})

    async def _control_fail(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fail_next(
            str(body["method"]),
            int(body.get("status", 429)),
            retry_after=body.get("retry_after"),
            description=body.get("description"),
            count=int(body.get("count", 1)),
        )
        return _json_response({"ok": True})

    async def _control_block(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.block_user(int(body["chat_id"]), bool(body.get("blocked", True)))
        return _json_response({"ok": True})

    async def _control_forums(self, request: web.Request) -> web.Response:
        body = await request.json()
        chat = self.register_forum(
            int(body["chat_id"]),
            str(body.get("title", "Operator 112")),
            is_forum=bool(body.get("is_forum", True)),
        )
        return _json_response({"ok": True, "result": chat.raw})

    async def _control_flood(self, request: web.Request) -> web.Response:
        """POST: switches flood control on (``{}``: Telegram's limits; or e.g.
        ``{"group_per_minute": 20, "overall_per_second": 30, "private": [3, 3]}``) or off
        (``{"enabled": false}``). GET: the limits and the statistics since it was switched on."""
        if request.method == "POST":
            body = await request.json() if request.body_exists else {}
            if not isinstance(body, dict):
                return _json_response({"ok": False, "description": "expected a JSON object"}, 400)
            try:
                if body.pop("enabled", True):
                    self.flood_control(FloodLimits.from_json(body))
                else:
                    self.flood_control(None)
            except (TypeError, ValueError) as error:
                return _json_response({"ok": False, "description": str(error)}, 400)
        return _json_response({"ok": True, "result": self.flood_view()})

    def flood_view(self) -> JSON:
        """Flood control as the control API shows it: on or off, limits, statistics."""
        flood = self.model.flood
        if flood is None:
            return {"enabled": False}
        return {"enabled": True, "limits": flood.limits.to_json(), "stats": flood.stats.to_json()}


@contextlib.asynccontextmanager
async def polling(
    app: AnyApplication, *, poll_timeout: float = 1.0, errors: list[BaseException] | None = None
) -> AsyncIterator[AnyApplication]:
    """Runs ``app`` polling with ``poll_timeout``-second long polls and ``poll_interval=0``,
    and stops it afterwards (quickly: the server drops the pending long poll).

    Exceptions that reach PTB's error handlers are collected: into ``errors`` if given,
    otherwise they fail the block with ``HandlerError`` (and are noted on any exception the
    block raised itself, such as a ``wait_for`` timeout caused by a crashed handler)."""
    collected = errors if errors is not None else []
    record_errors(app, collected)
    async with app:
        await app.start()
        if app.updater is None:
            raise RuntimeError("the Application was built without an Updater")
        await app.updater.start_polling(
            poll_interval=0, timeout=dtm.timedelta(seconds=poll_timeout)
        )
        try:
            yield app
        except BaseException as failure:
            if collected:
                failure.add_note(f"handler errors while polling: {collected!r}")
            raise
        finally:
            if app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
    if errors is None:
        raise_if_any(collected)


def _chat_arg(value: str) -> tuple[int, str]:
    chat_id, _, title = value.partition(":")
    return int(chat_id), title or "Operator 112"


async def serve(args: argparse.Namespace) -> None:
    """Runs the server until SIGINT/SIGTERM."""
    fake = FakeBotApi(
        token=args.token,
        host=args.host,
        port=args.port,
        strict_ampersand=not args.lenient_ampersand,
    )
    for chat_id, title in args.forum:
        fake.register_forum(chat_id, title)
    for chat_id, title in args.group:
        fake.register_forum(chat_id, title, is_forum=False)
    if args.flood_control is not None:
        fake.flood_control(args.flood_control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fake:
        print(f"TELEGRAM_API_BASE_URL={fake.base_url}", flush=True)
        print(f"TELEGRAM_API_FILE_URL={fake.base_file_url}", flush=True)
        print(f"TELEGRAM_BOT_TOKEN={fake.token}", flush=True)
        print(
            f"# control: {fake.url}/_control/(updates|messages|calls|fail|block|forums|flood)",
            flush=True,
        )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m bot.double.fake_bot_api --port 8081 [--token T] [--forum ID:TITLE]
    [--flood-control [KEY=VALUE,...]]``."""
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API for black-box runs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=TEST_TOKEN)
    parser.add_argument(
        "--forum",
        type=_chat_arg,
        action="append",
        default=[],
        metavar="ID[:TITLE]",
        help="a forum supergroup the bot administers (repeatable)",
    )
    parser.add_argument(
        "--group",
        type=_chat_arg,
        action="append",
        default=[],
        metavar="ID[:TITLE]",
        help="a plain supergroup the bot is in (repeatable)",
    )
    parser.add_argument(
        "--lenient-ampersand",
        action="store_true",
        help="accept a bare '&' in HTML like Telegram does",
    )
    parser.add_argument(
        "--flood-control",
        type=FloodLimits.parse,
        nargs="?",
        const=FloodLimits(),
        default=None,
        metavar="KEY=VALUE,...",
        help="answer 429 beyond Telegram's limits: 20 calls a minute per group, 30 a second "
        "overall; adjust with group_per_minute=N, overall_per_second=N, private=CALLS/SECONDS "
        "(off switches one limit off)",
    )
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
