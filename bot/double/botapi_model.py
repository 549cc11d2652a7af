"""An in-memory Telegram Bot API: the state and rules behind both test tiers.

``BotApiModel.call(method, params, files)`` answers one Bot API method the way Telegram would,
or raises ``ApiError`` with Telegram's status and description. It keeps what a test wants to
assert on: every call, and per chat the messages as the people in it see them (message ids
increase per chat, shared by the users' and the bot's messages; edits and deletions apply).

The handler tier puts it behind ``RecordingRequest``; the flow tier behind an aiohttp server
(``FakeBotApi``), which adds ``getUpdates`` long polling over ``pending_updates``.

Strict where real bugs hide: Telegram's HTML parse_mode rules (see ``telegram_html``), text
and caption lengths after parsing, ``callback_data`` of 1-64 bytes, empty texts, unknown chats,
blocked users, unknown topics, edits that change nothing, stale callback queries, unknown
file ids, invalid bot command names. Telegram's flood control (429 with ``retry_after``) is
off unless a test switches it on with ``flood_control`` (see ``flood``).
"""

# ruff: noqa: ASYNC109 - the waiting helpers take timeout= by design and bound it themselves

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.double.flood import FloodControl, FloodLimits
from bot.double.telegram_html import HtmlParseError, parse_html
from bot.double.updates import (
    BOT_USERNAME,
    JSON,
    TEST_TOKEN,
    bot_user_dict,
    private_chat_dict,
    supergroup_chat_dict,
)

T = TypeVar("T")

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
#: The emoji a bot may react with (Telegram's ``ReactionTypeEmoji`` list).
REACTION_EMOJI = frozenset(
    [
        "👍",
        "👎",
        "❤",
        "🔥",
        "🥰",
        "👏",
        "😁",
        "🤔",
        "🤯",
        "😱",
        "🤬",
        "😢",
        "🎉",
        "🤩",
        "🤮",
        "💩",
        "🙏",
        "👌",
        "🕊",
        "🤡",
        "🥱",
        "🥴",
        "😍",
        "🐳",
        "❤\u200d🔥",
        "🌚",
        "🌭",
        "💯",
        "🤣",
        "⚡",
        "🍌",
        "🏆",
        "💔",
        "🤨",
        "😐",
        "🍓",
        "🍾",
        "💋",
        "🖕",
        "😈",
        "😴",
        "😭",
        "🤓",
        "👻",
        "👨\u200d💻",
        "👀",
        "🎃",
        "🙈",
        "😇",
        "😨",
        "🤝",
        "✍",
        "🤗",
        "🫡",
        "🎅",
        "🎄",
        "☃",
        "💅",
        "🤪",
        "🗿",
        "🆒",
        "💘",
        "🙉",
        "🦄",
        "😘",
        "💊",
        "🙊",
        "😎",
        "👾",
        "🤷\u200d♂",
        "🤷",
        "🤷\u200d♀",
        "😡",
    ]
)
FORUM_ICON_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)

_CONTENT_KEYS = (
    "text",
    "entities",
    "photo",
    "voice",
    "video",
    "video_note",
    "audio",
    "animation",
    "document",
    "sticker",
    "location",
    "venue",
    "contact",
    "caption",
    "caption_entities",
)
_INLINE_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
CONFLICT_OTHER_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional ``parameters``."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def to_json(self) -> JSON:
        """The response body Telegram sends for this error."""
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    """A 400 with Telegram's ``Bad Request: ...`` description."""
    return ApiError(400, f"Bad Request: {detail}")


def injected_error(
    status: int, *, retry_after: int | None = None, description: str | None = None
) -> ApiError:
    """The error Telegram answers with for a given status (429 carries ``retry_after``)."""
    if status == 429:
        seconds = 5 if retry_after is None else retry_after
        return ApiError(
            429, description or f"Too Many Requests: retry after {seconds}", retry_after=seconds
        )
    default = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        409: CONFLICT_OTHER_POLL,
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    return ApiError(status, description or default.get(status, f"Error {status}"))


@dataclass
class UploadedFile:
    """A file PTB uploaded in a multipart request."""

    filename: str | None
    content: bytes
    mime_type: str | None = None


@dataclass
class ApiCall:
    """One Bot API call as the bot made it, with what it got back."""

    method: str
    params: JSON
    files: dict[str, UploadedFile] = field(default_factory=dict)
    result: Any = None
    error: ApiError | None = None

    @property
    def ok(self) -> bool:
        """Whether Telegram accepted the call."""
        return self.error is None

    def is_(self, method: str) -> bool:
        """Method names are case-insensitive in the Bot API."""
        return self.method.lower() == method.lower()


@dataclass
class StoredMessage:
    """A message as it now stands in its chat (``raw`` is the Bot API Message dict)."""

    raw: JSON
    outgoing: bool
    method: str | None = None
    params: JSON = field(default_factory=dict)
    deleted: bool = False
    history: list[JSON] = field(default_factory=list)
    reaction: list[JSON] = field(default_factory=list)
    """The bot's reaction on the message (``setMessageReaction``; empty: none)."""
    times: list[float] = field(default_factory=list)
    """When each version was stored, on the model's monotonic clock: ``times[i]`` for
    ``history[i]`` and the last one for ``raw`` (the send, then every edit)."""

    @property
    def versions(self) -> list[tuple[float, JSON]]:
        """Every version with the moment it was stored, oldest first (the sent message,
        then each edit), e.g. to see when a line first appeared on an edited board."""
        return list(zip(self.times, [*self.history, self.raw], strict=False))

    @property
    def chat_id(self) -> int:
        return int(self.raw["chat"]["id"])

    @property
    def message_id(self) -> int:
        return int(self.raw["message_id"])

    @property
    def thread_id(self) -> int | None:
        value = self.raw.get("message_thread_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str | None:
        """What the reader sees as text: the text or the caption, markup already applied."""
        value = self.raw.get("text", self.raw.get("caption"))
        return str(value) if value is not None else None

    @property
    def html(self) -> str | None:
        """The text or caption as the bot sent it (before HTML parsing)."""
        value = self.params.get("text", self.params.get("caption"))
        return str(value) if value is not None else self.text

    @property
    def kind(self) -> str:
        """``text``, ``photo``, ``location``, ``venue``, ... or ``service``."""
        if "venue" in self.raw:
            return "venue"
        return next(
            (key for key in _CONTENT_KEYS if key in self.raw and not key.endswith("entities")),
            "service",
        )

    @property
    def reply_markup(self) -> JSON | None:
        """The markup sent with the message (reply keyboards included, unlike ``raw``)."""
        markup = self.params.get("reply_markup", self.raw.get("reply_markup"))
        return markup if isinstance(markup, dict) else None

    @property
    def inline_buttons(self) -> list[JSON]:
        """The inline keyboard's buttons as currently shown, row by row."""
        markup = self.raw.get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]

    @property
    def button_texts(self) -> list[str]:
        """Labels of the current inline buttons, or else of the reply keyboard sent with it."""
        if self.inline_buttons:
            return [str(b["text"]) for b in self.inline_buttons]
        markup = self.reply_markup or {}
        return [_button_text(b) for row in markup.get("keyboard", []) for b in row]


def _button_text(button: Any) -> str:
    return str(button["text"]) if isinstance(button, dict) else str(button)


@dataclass
class Topic:
    """A forum topic; its ``thread_id`` is the id of its creation service message."""

    thread_id: int
    name: str
    icon_color: int
    root: JSON
    icon_custom_emoji_id: str | None = None
    closed: bool = False


@dataclass
class ChatState:
    """Everything the model knows about one chat."""

    raw: JSON
    known: bool = False
    blocked: bool = False
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    last_message_id: int = 0
    topics: dict[int, Topic] = field(default_factory=dict)
    members: dict[int, str] = field(default_factory=dict)
    reply_keyboard: JSON | None = None
    pinned: list[int] = field(default_factory=list)
    """Pinned message ids, the most recently pinned last."""

    @property
    def id(self) -> int:
        return int(self.raw["id"])

    @property
    def is_private(self) -> bool:
        return bool(self.raw["type"] == "private")

    @property
    def is_forum(self) -> bool:
        return bool(self.raw.get("is_forum"))


@dataclass
class FileRecord:
    """A file the model can hand out through ``getFile`` and the file URL."""

    file_id: str
    file_unique_id: str
    kind: str
    content: bytes
    file_path: str
    mime_type: str | None = None


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    description: str | None
    remaining: int


def _check_inline_button(button: JSON) -> None:
    if not str(button.get("text", "")):
        raise bad_request("can't parse inline keyboard button: Text must be non-empty")
    if not any(key in button for key in _INLINE_ACTIONS):
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if "callback_data" in button:
        size = len(str(button["callback_data"]).encode("utf-8"))
        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
            raise bad_request("BUTTON_DATA_INVALID")


def _int(params: JSON, key: str) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {key} specified") from None


def _require_int(params: JSON, key: str) -> int:
    value = _int(params, key)
    if value is None:
        raise bad_request(f"{key} is empty" if key != "chat_id" else "chat_id is empty")
    return value


def _float(params: JSON, key: str) -> float | None:
    value = params.get(key)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid {key} specified") from None


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _trim(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Strips surrounding whitespace like Telegram, moving entities along."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = _utf16_len(text[: len(text) - len(text.lstrip())])
    end = _utf16_len(stripped)
    moved = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        stop = min(entity["offset"] + entity["length"] - shift, end)
        if stop > start:
            moved.append({**entity, "offset": start, "length": stop - start})
    return stripped, moved


class BotApiModel:
    """The in-memory Telegram behind both tiers (see the module docstring)."""

    def __init__(
        self,
        *,
        token: str = TEST_TOKEN,
        bot_username: str = BOT_USERNAME,
        strict_ampersand: bool = True,
        lenient: bool = False,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.bot_user: JSON = bot_user_dict(int(token.split(":", 1)[0]), bot_username)
        """The bot as ``getMe`` describes it."""
        self.bot_sender: JSON = {
            k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")
        }
        """The bot as the ``from`` of its messages."""
        self.strict_ampersand = strict_ampersand
        self.lenient = lenient
        """Lenient about the world, never about content: unknown chats are registered on first
        use, unknown topics and callback query ids accepted (the handler tier's default)."""
        self.clock = clock
        """Wall-clock Unix seconds, for message dates."""
        self.monotonic = monotonic
        """Monotonic seconds, for flood control's windows."""
        self.flood: FloodControl | None = None
        """Telegram's flood control when switched on (``flood_control``), else None."""
        self.users: dict[int, JSON] = {}
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, FileRecord] = {}
        self.calls: list[ApiCall] = []
        self.pending_updates: list[JSON] = []
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.webhook_url = ""
        """The URL updates are pushed to (``setWebhook``; empty: ``getUpdates`` serves them)."""
        self.webhook_secret = ""
        """``setWebhook``'s ``secret_token``, sent back with every pushed update."""
        self.webhook_max_connections = 40
        """``setWebhook``'s ``max_connections``: requests in flight at most (1-100)."""
        self.webhook_last_error: tuple[int, str] | None = None
        """When the latest push failed (Unix seconds) and why (``getWebhookInfo``)."""
        self.open_callback_queries: dict[str, JSON] = {}
        self.callback_answers: dict[str, JSON] = {}
        self.overrides: dict[str, Any] = {}
        """Canned answers by lower-case method name: a value, or a callable taking params."""
        self._failures: dict[str, list[_Failure]] = {}
        self._file_numbers = itertools.count(1)
        self._changed = asyncio.Event()

    # -- registry ----------------------------------------------------------------------------
    def now(self) -> int:
        """Unix seconds."""
        return int(self.clock())

    def add_user(self, user: JSON) -> ChatState:
        """Makes a Telegram user exist (their private chat stays unknown until they write)."""
        self.users[int(user["id"])] = user
        chat = self.chats.get(int(user["id"]))
        if chat is None:
            chat = self.chats[int(user["id"])] = ChatState(raw=private_chat_dict(user))
        return chat

    def register_chat(self, raw: JSON, *, known: bool = True) -> ChatState:
        """Makes a chat exist; ``known`` chats are ones the bot is in and may write to."""
        chat = self.chats.get(int(raw["id"]))
        if chat is None:
            chat = self.chats[int(raw["id"])] = ChatState(raw=dict(raw))
        else:
            chat.raw.update(raw)
        chat.known = chat.known or known
        if not chat.is_private:
            chat.members.setdefault(int(self.bot_user["id"]), "administrator")
        self.notify()
        return chat

    def register_forum(
        self, chat_id: int, title: str = "Operator 112", *, is_forum: bool = True
    ) -> ChatState:
        """A supergroup the bot administers (a forum unless ``is_forum=False``)."""
        return self.register_chat(supergroup_chat_dict(chat_id, title, is_forum=is_forum))

    def next_message_id(self, chat_id: int) -> int:
        """Allocates the next message id in a chat (shared by users and the bot)."""
        chat = self.chats.get(chat_id)
        if chat is None:
            raw = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
            chat = self.chats[chat_id] = ChatState(raw=raw)
        chat.last_message_id += 1
        return chat.last_message_id

    def new_file(
        self, kind: str, size: int, content: bytes | None = None, *, mime_type: str | None = None
    ) -> tuple[str, str]:
        """Registers a downloadable file; returns (file_id, file_unique_id)."""
        n = next(self._file_numbers)
        file_id, unique_id = f"{kind}-file-{n:06d}", f"{kind}-uniq-{n:06d}"
        extension = {"photo": "jpg", "voice": "oga", "sticker": "webp"}.get(kind, "bin")
        data = (
            content if content is not None else (f"{kind} {n} ".encode() * (size // 8 + 1))[:size]
        )
        self.files[file_id] = FileRecord(
            file_id, unique_id, kind, data, f"{kind}s/file_{n}.{extension}", mime_type
        )
        return file_id, unique_id

    def store_incoming(self, message: JSON) -> StoredMessage:
        """Puts a user's message (from an update) into its chat; the chat becomes known."""
        sender = message.get("from")
        if sender:
            self.users.setdefault(int(sender["id"]), sender)
        chat = self.chats.get(int(message["chat"]["id"]))
        if chat is None:
            chat = self.chats[int(message["chat"]["id"])] = ChatState(raw=dict(message["chat"]))
        chat.known = True
        chat.last_message_id = max(chat.last_message_id, int(message["message_id"]))
        if sender and not chat.is_private:
            chat.members.setdefault(int(sender["id"]), "member")
        stored = chat.messages.get(int(message["message_id"]))
        if stored is None:
            stored = chat.messages[int(message["message_id"])] = StoredMessage(
                raw=message, outgoing=False, times=[self.monotonic()]
            )
        else:
            stored.history.append(stored.raw)
            stored.raw = message
            stored.times.append(self.monotonic())
        self.notify()
        return stored

    def accept_update(self, update: JSON) -> None:
        """Takes note of what an incoming update shows: its message (now in the chat's store,
        the chat known to the bot) or its callback query (now answerable)."""
        for key in ("message", "edited_message", "channel_post"):
            if key in update:
                self.store_incoming(update[key])
        if "callback_query" in update:
            self.open_callback_query(update["callback_query"])
        for key in ("my_chat_member", "chat_member"):
            if key in update:
                self.register_chat(update[key]["chat"])

    def open_callback_query(self, query: JSON) -> None:
        """Remembers a callback query so the bot can answer it (once); the message it was
        pressed on exists on Telegram, so it joins the store if it is not there yet."""
        self.open_callback_queries[str(query["id"])] = query
        self.users.setdefault(int(query["from"]["id"]), query["from"])
        message = query.get("message")
        if message and message.get("date"):  # date 0 marks an inaccessible message
            chat = self.chats.get(int(message["chat"]["id"]))
            if chat is None:
                chat = self.register_chat(message["chat"])
            chat.known = True
            if int(message["message_id"]) not in chat.messages:
                sender = (message.get("from") or {}).get("id")
                stored = StoredMessage(
                    raw=message, outgoing=sender == self.bot_user["id"], times=[self.monotonic()]
                )
                chat.messages[int(message["message_id"])] = stored
                chat.last_message_id = max(chat.last_message_id, int(message["message_id"]))
        self.notify()

    def block_user(self, chat_id: int, blocked: bool = True) -> None:
        """From now on sends to this private chat fail with 403 (or work again)."""
        chat = self.chats.get(chat_id) or self.add_user(
            {"id": chat_id, "is_bot": False, "first_name": "?"}
        )
        chat.blocked = blocked

    # -- reading ---------------------------------------------------------------------------------
    def messages_for(
        self,
        chat_id: int,
        *,
        incoming: bool = False,
        deleted: bool = False,
        thread_id: int | None = None,
    ) -> list[StoredMessage]:
        """The bot's messages in a chat in order (with ``incoming=True`` the users' too)."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return []
        return [
            message
            for _, message in sorted(chat.messages.items())
            if (incoming or message.outgoing)
            and (deleted or not message.deleted)
            and (thread_id is None or message.thread_id == thread_id)
        ]

    def last_message(self, chat_id: int, *, incoming: bool = False) -> StoredMessage | None:
        """The newest visible bot message in a chat (or any message with ``incoming=True``)."""
        messages = self.messages_for(chat_id, incoming=incoming)
        return messages[-1] if messages else None

    def message(self, chat_id: int, message_id: int) -> StoredMessage | None:
        """A stored message by id, deleted or not."""
        chat = self.chats.get(chat_id)
        return chat.messages.get(message_id) if chat else None

    def calls_to(self, method: str) -> list[ApiCall]:
        """All calls of one method, oldest first."""
        return [call for call in self.calls if call.is_(method)]

    def mark(self) -> int:
        """A position in the call log, for ``wait_for_call(..., since=mark)``."""
        return len(self.calls)

    # -- failure injection -----------------------------------------------------------------------
    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = None,
        description: str | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` calls of ``method`` ("*" for any but getUpdates) fail with
        ``status``: 429 carries ``parameters.retry_after``, 403 says the bot was blocked,
        5xx are server errors."""
        failure = _Failure(status, retry_after, description, count)
        self._failures.setdefault(method.lower(), []).append(failure)

    def take_injected_failure(self, method: str) -> ApiError | None:
        """The injected error for this call of ``method``, if one is due (consumes it)."""
        for key in (method.lower(), "*"):
            if key == "*" and method.lower() == "getupdates":
                continue
            queue = self._failures.get(key)
            if queue:
                failure = queue[0]
                failure.remaining -= 1
                if failure.remaining <= 0:
                    queue.pop(0)
                return injected_error(
                    failure.status, retry_after=failure.retry_after, description=failure.description
                )
        return None

    # -- flood control -------------------------------------------------------------------------
    def flood_control(self, limits: FloodLimits | None) -> FloodControl | None:
        """Applies Telegram's flood control with ``limits`` from now on (fresh windows and
        statistics), or switches it off with ``None``."""
        self.flood = FloodControl(limits, self.monotonic) if limits is not None else None
        return self.flood

    def _flood_refusal(self, method: str, params: JSON) -> ApiError | None:
        """The 429 flood control answers this call with, if it refuses it."""
        if self.flood is None:
            return None
        retry_after = self.flood.admit(method, self._flood_chat_id(params))
        return injected_error(429, retry_after=retry_after) if retry_after is not None else None

    def _flood_chat_id(self, params: JSON) -> int | None:
        value = params.get("chat_id")
        if isinstance(value, str) and value.startswith("@"):
            found = next(
                (c for c in self.chats.values() if c.raw.get("username") == value[1:]), None
            )
            return found.id if found is not None else None
        try:
            return int(value) if value is not None and value != "" else None
        except (TypeError, ValueError):
            return None

    # -- waiting ---------------------------------------------------------------------------------
    def notify(self) -> None:
        """Wakes everything waiting for a change."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        """Returns at the next change, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def wait_for(
        self, predicate: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition"
    ) -> T:
        """Waits until ``predicate()`` is truthy and returns its value; no sleeps involved."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._changed
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = ", ".join(
                    f"{c.method}{'' if c.ok else f' -> {c.error}'}" for c in self.calls[-12:]
                )
                raise TimeoutError(
                    f"timed out after {timeout}s waiting for {what}; "
                    f"recent calls: {recent or 'none'}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        timeout: float = 5.0,
        since: int = 0,
    ) -> ApiCall:
        """The first call of ``method`` (from position ``since`` of the log) matching."""

        def find() -> ApiCall | None:
            return next(
                (
                    c
                    for c in self.calls[since:]
                    if c.is_(method) and (predicate is None or predicate(c))
                ),
                None,
            )

        return await self.wait_for(find, timeout=timeout, what=f"a {method} call")

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[StoredMessage], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 5.0,
    ) -> StoredMessage:
        """The first bot message in ``chat_id`` with an id above ``after`` matching."""

        def find() -> StoredMessage | None:
            return next(
                (
                    m
                    for m in self.messages_for(chat_id)
                    if m.message_id > after and (predicate is None or predicate(m))
                ),
                None,
            )

        return await self.wait_for(find, timeout=timeout, what=f"a bot message in chat {chat_id}")

    # -- the API ---------------------------------------------------------------------------------
    def call(self, method: str, params: JSON, files: dict[str, UploadedFile] | None = None) -> Any:
        """Answers one Bot API call (recorded in ``calls``) or raises ApiError. Flood control,
        when on, comes first (a refused call changes nothing), then injected failures."""
        record = ApiCall(method, params, files or {})
        self.calls.append(record)
        try:
            error = self._flood_refusal(method, params) or self.take_injected_failure(method)
            if error is not None:
                raise error
            if method.lower() in self.overrides:
                canned = self.overrides[method.lower()]
                record.result = canned(params) if callable(canned) else copy.deepcopy(canned)
                return record.result
            handler = getattr(self, f"_api_{method.lower()}", None)
            if handler is None:
                raise bad_request(f"method {method} is not implemented by the test double")
            record.result = handler(params, record.files)
        except ApiError as error:
            record.error = error
            raise
        finally:
            self.notify()
        return record.result

    # chats -----------------------------------------------------------------------------------
    def _chat(self, params: JSON, key: str = "chat_id") -> ChatState:
        value = params.get(key)
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        if isinstance(value, str) and value.startswith("@"):
            found = next(
                (c for c in self.chats.values() if c.raw.get("username") == value[1:] and c.known),
                None,
            )
            if found is None:
                raise bad_request("chat not found")
            return found
        chat_id = _require_int(params, key)
        chat = self.chats.get(chat_id)
        if (chat is None or not chat.known) and self.lenient:
            if chat_id > 0:
                user = self.users.get(chat_id) or {
                    "id": chat_id,
                    "is_bot": False,
                    "first_name": "User",
                }
                chat = self.add_user(user)
                chat.known = True
            else:
                chat = self.register_forum(chat_id, f"Chat {chat_id}")
        if chat is None or not chat.known:
            raise bad_request("chat not found")
        return chat

    def _send_target(self, params: JSON) -> tuple[ChatState, Topic | None]:
        chat = self._chat(params)
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        thread_id = _int(params, "message_thread_id")
        topic = None
        if thread_id is not None and not chat.is_private:
            topic = chat.topics.get(thread_id)
            if topic is None and not self.lenient:
                raise bad_request("message thread not found")
        return chat, topic

    # formatting ------------------------------------------------------------------------------
    def _formatted(self, params: JSON, key: str, *, required: bool) -> JSON:
        value = params.get(key)
        if value is None:
            if required:
                raise bad_request("message text is empty")
            return {}
        text = str(value)
        entities: list[JSON] = []
        parse_mode = str(params.get("parse_mode") or "").lower()
        if parse_mode == "html":
            try:
                text, entities = parse_html(text, strict_ampersand=self.strict_ampersand)
            except HtmlParseError as error:
                raise bad_request(f"can't parse entities: {error}") from None
        elif parse_mode not in ("", "markdown", "markdownv2"):
            raise bad_request(f"unsupported parse_mode {params.get('parse_mode')}")
        else:
            given = params.get("entities" if key == "text" else "caption_entities")
            entities = list(given) if isinstance(given, list) else []
        text, entities = _trim(text, entities)
        if key == "text":
            if not text:
                raise bad_request("message text is empty")
            if len(text) > MAX_TEXT_LENGTH:
                raise bad_request("message is too long")
        elif len(text) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        if not text:
            return {}
        content: JSON = {key: text}
        if entities:
            content["entities" if key == "text" else "caption_entities"] = entities
        return content

    def _reply_markup(self, params: JSON) -> JSON | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            for row in markup["inline_keyboard"]:
                for button in row:
                    _check_inline_button(button)
        elif "keyboard" in markup:
            for row in markup["keyboard"]:
                for button in row:
                    if not _button_text(button):
                        raise bad_request("can't parse keyboard button: Text must be non-empty")
        return markup

    def _reply_to(self, chat: ChatState, params: JSON) -> JSON | None:
        reply = params.get("reply_parameters")
        message_id = _int(params, "reply_to_message_id")
        allow_missing = bool(params.get("allow_sending_without_reply"))
        if isinstance(reply, dict):
            message_id = _int(reply, "message_id")
            allow_missing = allow_missing or bool(reply.get("allow_sending_without_reply"))
        if message_id is None:
            return None
        target = chat.messages.get(message_id)
        if target is None or target.deleted:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        return {k: v for k, v in target.raw.items() if k != "reply_to_message"}

    def _send(
        self, method: str, params: JSON, content: JSON, chat: ChatState, topic: Topic | None
    ) -> JSON:
        markup = self._reply_markup(params)
        reply_to = self._reply_to(chat, params)
        raw: JSON = {
            "message_id": self.next_message_id(chat.id),
            "from": self.bot_sender,
            "chat": chat.raw,
            "date": self.now(),
        }
        if topic is not None:
            raw.update(message_thread_id=topic.thread_id, is_topic_message=True)
            raw["reply_to_message"] = topic.root
        if reply_to is not None:
            raw["reply_to_message"] = reply_to
        raw.update(content)
        if markup is not None and "inline_keyboard" in markup:
            raw["reply_markup"] = markup
        elif markup is not None and "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup is not None and markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        chat.messages[raw["message_id"]] = StoredMessage(
            raw=raw, outgoing=True, method=method, params=params, times=[self.monotonic()]
        )
        return raw

    def _media(self, kind: str, params: JSON, files: dict[str, UploadedFile]) -> FileRecord:
        value = params.get(kind)
        upload = files.get(kind)
        if upload is None and isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
        if upload is not None:
            file_id, _ = self.new_file(
                kind, len(upload.content), upload.content, mime_type=upload.mime_type
            )
            return self.files[file_id]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            file_id, _ = self.new_file(kind, 50_000)
            return self.files[file_id]
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        if value is None:
            raise bad_request(f"there is no {kind} in the request")
        raise bad_request("wrong file identifier/HTTP URL specified")

    # methods: the bot itself -------------------------------------------------------------------
    def _api_getme(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        return self.bot_user

    def _api_logout(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        return True

    def _api_close(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        return True

    def _api_getupdates(self, params: JSON, files: dict[str, UploadedFile]) -> list[JSON]:
        """Without a server: whatever is pending, at once (the server does long polling)."""
        return self.take_updates(params)

    def take_updates(self, params: JSON) -> list[JSON]:
        """Confirms updates below ``offset`` and returns up to ``limit`` pending ones."""
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = _int(params, "offset")
        if offset is not None and offset < 0:
            self.pending_updates = self.pending_updates[offset:]
        elif offset:
            self.pending_updates = [u for u in self.pending_updates if u["update_id"] >= offset]
        limit = min(max(_int(params, "limit") or 100, 1), 100)
        allowed = params.get("allowed_updates")
        wanted = [
            u for u in self.pending_updates if not allowed or any(kind in u for kind in allowed)
        ]
        return wanted[:limit]

    def _api_setwebhook(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        """Sets (or, with an empty ``url``, removes) the webhook the server pushes updates to
        (:mod:`bot.double.webhook`)."""
        url = str(params.get("url") or "")
        if url and not url.startswith(("http://", "https://")):
            raise ApiError(400, "Bad Request: bad webhook: HTTPS URL must be provided for webhook")
        connections = _int(params, "max_connections")
        connections = 40 if connections is None else connections
        if not 1 <= connections <= 100:
            raise ApiError(400, "Bad Request: bad webhook: max_connections must be 1-100")
        self.webhook_url = url
        self.webhook_secret = str(params.get("secret_token") or "")
        self.webhook_max_connections = connections
        self.webhook_last_error = None
        if params.get("drop_pending_updates"):
            self.pending_updates.clear()
        self.notify()
        return True

    def _api_deletewebhook(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self.webhook_url = ""
        self.webhook_secret = ""
        if params.get("drop_pending_updates"):
            self.pending_updates.clear()
        self.notify()
        return True

    def _api_getwebhookinfo(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        info: JSON = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending_updates),
        }
        if self.webhook_url:
            info["max_connections"] = self.webhook_max_connections
        if self.webhook_last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.webhook_last_error
        return info

    def _commands_key(self, params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return (
            repr(sorted(scope.items())) if isinstance(scope, dict) else str(scope),
            str(params.get("language_code") or ""),
        )

    def _api_setmycommands(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not _COMMAND_RE.fullmatch(str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("command description must be non-empty")
        self.commands[self._commands_key(params)] = commands
        return True

    def _api_getmycommands(self, params: JSON, files: dict[str, UploadedFile]) -> list[JSON]:
        return self.commands.get(self._commands_key(params), [])

    def _api_deletemycommands(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    # methods: sending --------------------------------------------------------------------------
    def _api_sendmessage(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat, topic = self._send_target(params)
        content = self._formatted(params, "text", required=True)
        return self._send("sendMessage", params, content, chat, topic)

    def _location(self, params: JSON) -> JSON:
        latitude, longitude = _float(params, "latitude"), _float(params, "longitude")
        if (
            latitude is None
            or longitude is None
            or not (-90 <= latitude <= 90 and -180 <= longitude <= 180)
        ):
            raise bad_request("wrong latitude or longitude specified")  # test double wording
        location: JSON = {"latitude": latitude, "longitude": longitude}
        accuracy = _float(params, "horizontal_accuracy")
        if accuracy is not None:
            location["horizontal_accuracy"] = min(max(accuracy, 0.0), 1500.0)
        for key in ("live_period", "heading", "proximity_alert_radius"):
            if params.get(key) is not None:
                location[key] = _int(params, key)
        return location

    def _api_sendlocation(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat, topic = self._send_target(params)
        return self._send("sendLocation", params, {"location": self._location(params)}, chat, topic)

    def _api_sendvenue(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat, topic = self._send_target(params)
        location = self._location(params)
        title, address = str(params.get("title") or ""), str(params.get("address") or "")
        if not title or not address:
            raise bad_request("venue title and address must be non-empty")  # test double wording
        venue: JSON = {"location": location, "title": title, "address": address}
        for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
            if params.get(key):
                venue[key] = params[key]
        return self._send("sendVenue", params, {"venue": venue, "location": location}, chat, topic)

    def _api_sendcontact(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat, topic = self._send_target(params)
        contact = {
            k: params[k] for k in ("phone_number", "first_name", "last_name") if params.get(k)
        }
        return self._send("sendContact", params, {"contact": contact}, chat, topic)

    def _api_sendphoto(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat, topic = self._send_target(params)
        caption = self._formatted(params, "caption", required=False)
        record = self._media("photo", params, files)
        sizes = [
            {
                "file_id": record.file_id,
                "file_unique_id": record.file_unique_id,
                "width": 1280,
                "height": 960,
                "file_size": len(record.content),
            }
        ]
        return self._send("sendPhoto", params, {"photo": sizes, **caption}, chat, topic)

    def _api_sendvoice(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat, topic = self._send_target(params)
        caption = self._formatted(params, "caption", required=False)
        record = self._media("voice", params, files)
        voice = {
            "file_id": record.file_id,
            "file_unique_id": record.file_unique_id,
            "duration": _int(params, "duration") or 1,
            "mime_type": record.mime_type or "audio/ogg",
            "file_size": len(record.content),
        }
        return self._send("sendVoice", params, {"voice": voice, **caption}, chat, topic)

    def _api_senddocument(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat, topic = self._send_target(params)
        caption = self._formatted(params, "caption", required=False)
        record = self._media("document", params, files)
        upload = files.get("document")
        document = {
            "file_id": record.file_id,
            "file_unique_id": record.file_unique_id,
            "file_name": (upload.filename if upload else None)
            or record.file_path.rsplit("/", 1)[-1],
            "mime_type": record.mime_type or "application/octet-stream",
            "file_size": len(record.content),
        }
        return self._send("sendDocument", params, {"document": document, **caption}, chat, topic)

    def _api_sendchataction(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self._send_target(params)
        if not params.get("action"):
            raise bad_request("wrong parameter action in request")
        return True

    def _source(self, params: JSON) -> StoredMessage:
        source_chat = self._chat(params, "from_chat_id")
        message = source_chat.messages.get(_require_int(params, "message_id"))
        if message is None or message.deleted:
            raise bad_request("message to copy not found")
        return message

    def _api_copymessage(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        source = self._source(params)
        chat, topic = self._send_target(params)
        content = {k: v for k, v in source.raw.items() if k in _CONTENT_KEYS}
        if not content:
            raise bad_request("message can't be copied")
        if "caption" in params:
            content.pop("caption", None)
            content.pop("caption_entities", None)
            content.update(self._formatted(params, "caption", required=False))
        raw = self._send("copyMessage", params, content, chat, topic)
        return {"message_id": raw["message_id"]}

    def _api_forwardmessage(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        source = self._source(params)
        chat, topic = self._send_target(params)
        content = {k: v for k, v in source.raw.items() if k in _CONTENT_KEYS}
        sender = source.raw.get("from") or self.bot_sender
        content["forward_origin"] = {
            "type": "user",
            "sender_user": sender,
            "date": source.raw["date"],
        }
        return self._send("forwardMessage", params, content, chat, topic)

    # methods: changing messages ----------------------------------------------------------------
    def _editable(self, params: JSON) -> StoredMessage:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the test double")
        chat = self._chat(params)
        message = chat.messages.get(_require_int(params, "message_id"))
        if message is None or message.deleted:
            raise bad_request("message to edit not found")
        if not message.outgoing:
            raise bad_request("message can't be edited")
        return message

    def _apply_edit(
        self,
        message: StoredMessage,
        changes: JSON,
        markup: JSON | None,
        replaces: tuple[str, ...] = (),
    ) -> JSON:
        """Applies an edit; without a new inline keyboard the old one goes, as on Telegram."""
        dropped = ("reply_markup", "edit_date", *replaces)
        new_raw = {k: v for k, v in message.raw.items() if k not in dropped}
        new_raw.update(changes)
        if markup is not None and "inline_keyboard" in markup:
            new_raw["reply_markup"] = markup
        old_view = {k: v for k, v in message.raw.items() if k != "edit_date"}
        new_view = {k: v for k, v in new_raw.items() if k != "edit_date"}
        if old_view == new_view:
            raise bad_request(_NOT_MODIFIED)
        new_raw["edit_date"] = max(self.now(), int(message.raw["date"]))
        message.history.append(message.raw)
        message.raw = new_raw
        message.times.append(self.monotonic())
        return new_raw

    def _api_editmessagetext(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        message = self._editable(params)
        if "text" not in message.raw:
            raise bad_request("there is no text in the message to edit")
        content = self._formatted(params, "text", required=True)
        raw = self._apply_edit(message, content, self._reply_markup(params), ("text", "entities"))
        message.params = {
            **message.params,
            "text": params["text"],
            "parse_mode": params.get("parse_mode"),
        }
        return raw

    def _api_editmessagecaption(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        message = self._editable(params)
        content = self._formatted(params, "caption", required=False)
        raw = self._apply_edit(
            message, content, self._reply_markup(params), ("caption", "caption_entities")
        )
        message.params = {**message.params, "caption": params.get("caption")}
        return raw

    def _api_editmessagereplymarkup(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        message = self._editable(params)
        return self._apply_edit(message, {}, self._reply_markup(params))

    def _api_setmessagereaction(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        """A bot sets at most one reaction, an emoji of Telegram's list (or a paid or
        custom one, not modelled); an empty list takes it back."""
        chat = self._chat(params)
        message = chat.messages.get(_require_int(params, "message_id"))
        if message is None or message.deleted:
            raise bad_request("message to react not found")  # test double wording
        reaction = params.get("reaction") or []
        if not isinstance(reaction, list):
            raise bad_request("can't parse reaction types JSON object")
        if len(reaction) > 1:
            raise bad_request("REACTIONS_TOO_MANY")
        for item in reaction:
            if not isinstance(item, dict) or item.get("type") != "emoji":
                raise bad_request("REACTION_INVALID")
            if item.get("emoji") not in REACTION_EMOJI:
                raise bad_request("REACTION_INVALID")
        message.reaction = [dict(item) for item in reaction]
        return True

    def _api_deletemessage(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        chat = self._chat(params)
        message = chat.messages.get(_require_int(params, "message_id"))
        if message is None or message.deleted:
            raise bad_request("message to delete not found")
        message.deleted = True
        return True

    def _api_pinchatmessage(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        chat = self._chat(params)
        message_id = _require_int(params, "message_id")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise bad_request("message to pin not found")
        if message_id in chat.pinned:
            chat.pinned.remove(message_id)
        chat.pinned.append(message_id)
        return True

    def _api_unpinchatmessage(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        chat = self._chat(params)
        message_id = _int(params, "message_id") or (chat.pinned[-1] if chat.pinned else None)
        if message_id is None or message_id not in chat.pinned:
            raise bad_request("message to unpin not found")
        chat.pinned.remove(message_id)
        return True

    def _api_answercallbackquery(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self.open_callback_queries and not self.lenient:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text") or "")) > MAX_CALLBACK_ANSWER_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
        self.open_callback_queries.pop(query_id, None)
        self.callback_answers[query_id] = params
        return True

    # methods: chats, topics, files --------------------------------------------------------------
    def _api_getchat(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat = self._chat(params)
        return {
            **chat.raw,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _api_getchatmember(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat = self._chat(params)
        user_id = _require_int(params, "user_id")
        user = self.bot_user if user_id == self.bot_user["id"] else self.users.get(user_id)
        if user is None:
            raise bad_request("user not found")
        status = "member" if chat.is_private else chat.members.get(user_id, "left")
        if status == "administrator":
            rights = [
                "can_manage_chat",
                "can_delete_messages",
                "can_manage_video_chats",
                "can_restrict_members",
                "can_promote_members",
                "can_change_info",
                "can_invite_users",
                "can_post_stories",
                "can_edit_stories",
                "can_delete_stories",
                "can_pin_messages",
                "can_manage_topics",
            ]
            return {
                "status": status,
                "user": user,
                "can_be_edited": False,
                "is_anonymous": False,
                **dict.fromkeys(rights, True),
            }
        if status == "creator":
            return {"status": status, "user": user, "is_anonymous": False}
        return {"status": status, "user": user}

    def _forum(self, params: JSON) -> ChatState:
        chat = self._chat(params)
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        return chat

    def _topic(self, chat: ChatState, params: JSON) -> Topic:
        topic = chat.topics.get(_require_int(params, "message_thread_id"))
        if topic is None:
            raise bad_request("TOPIC_ID_INVALID")
        return topic

    def _api_createforumtopic(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        chat = self._forum(params)
        name = str(params.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_TITLE_EMPTY" if not name else "topic name is too long")
        icon_color = _int(params, "icon_color") or FORUM_ICON_COLORS[0]
        if icon_color not in FORUM_ICON_COLORS:
            raise bad_request("TOPIC_ICON_COLOR_INVALID")  # test double wording
        thread_id = self.next_message_id(chat.id)
        created: JSON = {"name": name, "icon_color": icon_color}
        if params.get("icon_custom_emoji_id"):
            created["icon_custom_emoji_id"] = params["icon_custom_emoji_id"]
        root: JSON = {
            "message_id": thread_id,
            "from": self.bot_sender,
            "chat": chat.raw,
            "date": self.now(),
            "message_thread_id": thread_id,
            "is_topic_message": True,
            "forum_topic_created": created,
        }
        chat.messages[thread_id] = StoredMessage(
            raw=root,
            outgoing=True,
            method="createForumTopic",
            params=params,
            times=[self.monotonic()],
        )
        chat.topics[thread_id] = Topic(
            thread_id, name, icon_color, root, created.get("icon_custom_emoji_id")
        )
        return {"message_thread_id": thread_id, **created}

    def _api_editforumtopic(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        chat = self._forum(params)
        topic = self._topic(chat, params)
        name = params.get("name")
        emoji = params.get("icon_custom_emoji_id")
        if (name is None or name == topic.name) and (
            emoji is None or emoji == topic.icon_custom_emoji_id
        ):
            raise bad_request("TOPIC_NOT_MODIFIED")
        if name is not None:
            if not 1 <= len(str(name)) <= 128:
                raise bad_request("TOPIC_TITLE_EMPTY")
            topic.name = str(name)
        if emoji is not None:
            topic.icon_custom_emoji_id = str(emoji) or None
        return True

    def _set_closed(self, params: JSON, closed: bool) -> bool:
        chat = self._forum(params)
        topic = self._topic(chat, params)
        if topic.closed == closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = closed
        return True

    def _api_closeforumtopic(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        return self._set_closed(params, True)

    def _api_reopenforumtopic(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        return self._set_closed(params, False)

    def _api_getfile(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        record = self.files.get(str(params.get("file_id") or ""))
        if record is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": record.file_id,
            "file_unique_id": record.file_unique_id,
            "file_size": len(record.content),
            "file_path": record.file_path,
        }
