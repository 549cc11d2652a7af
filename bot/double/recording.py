"""Handler tier: ``Application.process_update`` with a request class that records every call.

``RecordingRequest`` is a ``telegram.request.BaseRequest``: PTB hands it each Bot API call,
it records the method and the decoded parameters (``reply_markup`` as a dict, ``text`` as
sent) and answers from a ``BotApiModel`` - the same rules the fake server applies, so bad
HTML, over-long texts or 65-byte ``callback_data`` fail here too, as ``telegram.error``
exceptions raised by PTB itself. Any method can be given a canned answer instead.

``HandlerHarness`` wires an ``Application`` to it, records errors that reach the error
handlers (PTB would only log them) and feeds raw updates through ``Update.de_json`` and
``process_update``. It is a ``SimulatedTelegram``, so simulated users work here as well.

    harness = HandlerHarness.build(lambda b: b.defaults(Defaults(parse_mode="HTML")))
    register_handlers(harness.app)
    async with harness:
        budi = harness.add_user(first_name="Budi")
        await budi.send_command("start")          # processed when this returns
        assert "112" in budi.last_message.text
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from telegram import Update
from telegram.ext import Application, ApplicationBuilder
from telegram.request import BaseRequest, RequestData

from bot.double.botapi_model import ApiCall, ApiError, BotApiModel, UploadedFile
from bot.double.errors import HandlerError, raise_if_any, record_errors
from bot.double.simulated import SimulatedTelegram
from bot.double.updates import JSON, TEST_TOKEN

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
__all__ = ["HandlerError", "HandlerHarness", "RecordingRequest", "application_builder"]


class RecordingRequest(BaseRequest):
    """Records Bot API calls and answers them from a ``BotApiModel`` (or canned results).

    By default the model is ``lenient`` about the world (chats registered on first use,
    unknown callback query ids answered), so a handler test need not set up every chat it
    sends to; content rules stay strict. Pass ``BotApiModel()`` to be strict about both.
    """

    def __init__(self, model: BotApiModel | None = None, *, strict_ampersand: bool = True) -> None:
        self.model = model or BotApiModel(lenient=True, strict_ampersand=strict_ampersand)

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    # -- the recording -----------------------------------------------------------------------------
    @property
    def calls(self) -> list[ApiCall]:
        """Every call so far, oldest first."""
        return self.model.calls

    def calls_to(self, method: str) -> list[ApiCall]:
        """The calls of one method (case-insensitive), oldest first."""
        return self.model.calls_to(method)

    def last_call(self, method: str | None = None) -> ApiCall:
        """The newest call (of ``method``); AssertionError if there is none."""
        calls = self.calls_to(method) if method else self.calls
        if not calls:
            raise AssertionError(f"no {method or 'Bot API'} call was made")
        return calls[-1]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """Texts/captions of successful sends (``sendMessage``, media captions), in order."""
        return [
            str(c.params.get("text", c.params.get("caption")))
            for c in self.calls
            if c.ok
            and ("text" in c.params or "caption" in c.params)
            and c.method.lower().startswith(("send", "copy"))
            and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]

    def set_result(self, method: str, result: Any) -> None:
        """Answers ``method`` with ``result`` from now on (a callable gets the params)."""
        self.model.overrides[method.lower()] = result

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = None,
        description: str | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` calls of ``method`` fail (429 with ``retry_after``, 403, 5xx)."""
        self.model.fail_next(
            method, status, retry_after=retry_after, description=description, count=count
        )

    def clear(self) -> None:
        """Forgets the calls recorded so far."""
        self.model.calls.clear()

    async def do_request(  # noqa: PLR0917 - the signature of BaseRequest.do_request
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Answers one call the way the Bot API would, as (HTTP status, JSON body)."""
        api_method = url.rstrip("/").rsplit("/", 1)[-1]
        params: JSON = dict(request_data.parameters) if request_data else {}
        files = (
            _uploaded_files(request_data) if request_data and request_data.contains_files else {}
        )
        try:
            result = self.model.call(api_method, params, files)
        except ApiError as error:
            return error.status, json.dumps(error.to_json()).encode()
        return 200, json.dumps({"ok": True, "result": result}).encode()


def _uploaded_files(request_data: RequestData) -> dict[str, UploadedFile]:
    files = {}
    for name, field in request_data.multipart_data.items():
        filename, content, mime_type = field
        data = content if isinstance(content, bytes) else content.read()
        files[name] = UploadedFile(filename, data, mime_type)
    return files


def application_builder(
    request: RecordingRequest, token: str = TEST_TOKEN
) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
    """An ``ApplicationBuilder`` whose bot talks only to ``request``; add persistence,
    defaults, ``post_init`` and so on before ``build()``."""
    return ApplicationBuilder().token(token).request(request).get_updates_request(request)


class HandlerHarness(SimulatedTelegram):
    """An ``Application`` on a ``RecordingRequest``, fed through ``process_update``."""

    def __init__(self, app: AnyApplication, request: RecordingRequest) -> None:
        super().__init__(request.model)
        self.app = app
        self.request = request
        self.errors: list[BaseException] = []
        self.raise_errors = True
        """When true, ``feed`` raises ``HandlerError`` for an error a handler let escape."""

    @classmethod
    def build(
        cls,
        configure: Callable[[ApplicationBuilder[Any, Any, Any, Any, Any, Any]], Any] | None = None,
        *,
        request: RecordingRequest | None = None,
        token: str = TEST_TOKEN,
    ) -> HandlerHarness:
        """Builds the Application; ``configure`` may adjust the builder (it may return it)."""
        request = request or RecordingRequest()
        builder = application_builder(request, token)
        if configure is not None:
            builder = configure(builder) or builder
        return cls(builder.build(), request)

    async def __aenter__(self) -> Self:
        """Initializes and starts the Application (job queue included); no polling."""
        record_errors(self.app, self.errors)
        await self.app.initialize()
        await self.app.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def feed(self, raw: JSON) -> Update:
        """Processes one raw update as if polled (the model takes note of its message or
        callback query first); returns the PTB Update. Raises
        ``HandlerError`` if a (blocking) handler raised and ``raise_errors`` is on."""
        before = len(self.errors)
        self.model.accept_update(raw)
        update = Update.de_json(raw, self.app.bot)
        await self.app.process_update(update)
        if self.raise_errors:
            raise_if_any(self.errors, before)
        return update

    async def deliver(self, update: JSON) -> None:
        await self.feed(update)
