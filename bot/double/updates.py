"""Raw Bot API update dicts, shaped like Telegram sends them; used by both test tiers.

The handler tier turns them into objects with ``Update.de_json(raw, app.bot)``; the fake Bot
API serves the same dicts from ``getUpdates``. Dates are Unix seconds, users carry
``is_bot``, callback queries carry ``chat_instance``, and messages in forum topics carry
``message_thread_id``/``is_topic_message`` (and, when known, the topic's first message as
``reply_to_message``, exactly the detail that fools "is this a reply?" checks).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]

TEST_TOKEN = "5550001112:AAH-siaga112-test-token-not-a-real-one"  # noqa: S105 - the double's own
"""A well-formed token: bot id before the colon, matching ``getMe``."""
BOT_ID = int(TEST_TOKEN.split(":", 1)[0])
BOT_USERNAME = "siaga112_test_bot"

SIMPANG_LIMA = (-6.99025, 110.42293)
"""A point in central Semarang, the default for simulated location shares."""

NewFile = Callable[[str, int], tuple[str, str]]
"""Registers a file of a kind ("photo", "voice", ...) and size; returns (file_id, unique_id)."""


def user_dict(
    user_id: int,
    first_name: str = "Budi",
    *,
    last_name: str | None = None,
    username: str | None = None,
    language_code: str | None = "id",
    is_bot: bool = False,
) -> JSON:
    """Builds a Telegram User."""
    user: JSON = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
    if last_name:
        user["last_name"] = last_name
    if username:
        user["username"] = username
    if language_code:
        user["language_code"] = language_code
    return user


def bot_user_dict(bot_id: int = BOT_ID, username: str = BOT_USERNAME) -> JSON:
    """Builds the bot's own User, as ``getMe`` returns it."""
    return {
        "id": bot_id,
        "is_bot": True,
        "first_name": "Siaga112 (test)",
        "username": username,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def private_chat_dict(user: JSON) -> JSON:
    """Builds the private Chat between the bot and ``user``."""
    chat: JSON = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    for key in ("last_name", "username"):
        if key in user:
            chat[key] = user[key]
    return chat


def supergroup_chat_dict(chat_id: int, title: str, *, is_forum: bool = True) -> JSON:
    """Builds a supergroup Chat (a forum when ``is_forum``)."""
    chat: JSON = {"id": chat_id, "type": "supergroup", "title": title}
    if is_forum:
        chat["is_forum"] = True
    return chat


def chat_instance_for(chat_id: int) -> str:
    """A stable, opaque ``chat_instance`` for a chat (Telegram sends a long number string)."""
    return str((chat_id * 2654435761 + 1013904223) % (2**63))


def command_content(command: str, args: str = "", *, bot_username: str | None = None) -> JSON:
    """Message content for ``/command[@bot] args`` with its ``bot_command`` entity."""
    name = command.removeprefix("/")
    head = f"/{name}@{bot_username}" if bot_username else f"/{name}"
    text = f"{head} {args}" if args else head
    return {"text": text, "entities": [{"type": "bot_command", "offset": 0, "length": len(head)}]}


def location_content(
    latitude: float,
    longitude: float,
    *,
    accuracy: float | None = None,
    live_period: int | None = None,
    heading: int | None = None,
) -> JSON:
    """Message content for a shared (optionally live) location."""
    location: JSON = {"latitude": latitude, "longitude": longitude}
    if accuracy is not None:
        location["horizontal_accuracy"] = accuracy
    if live_period is not None:
        location["live_period"] = live_period
    if heading is not None:
        location["heading"] = heading
    return {"location": location}


class UpdateFactory:
    """Builds whole raw updates with increasing ``update_id`` and per-chat ``message_id``.

    ``message_ids`` and ``new_file`` let an owner (the fake Bot API) allocate ids from its own
    store so that user messages and bot messages share one id sequence per chat.
    """

    def __init__(
        self,
        *,
        bot_username: str = BOT_USERNAME,
        clock: Callable[[], float] = time.time,
        message_ids: Callable[[int], int] | None = None,
        new_file: NewFile | None = None,
    ) -> None:
        self.bot_username = bot_username
        self._clock = clock
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._last_message_id: dict[int, int] = {}
        self._message_ids = message_ids or self._own_message_id
        self._new_file = new_file or self._own_file

    # -- ids -------------------------------------------------------------------------------
    def now(self) -> int:
        """Current Unix time in whole seconds, as Telegram dates are."""
        return int(self._clock())

    def next_update_id(self) -> int:
        """Allocates the next update_id."""
        return next(self._update_ids)

    def next_message_id(self, chat_id: int) -> int:
        """Allocates the next message_id in ``chat_id``."""
        return self._message_ids(chat_id)

    def _own_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _own_file(self, kind: str, size: int) -> tuple[str, str]:
        n = next(self._file_ids)
        return f"{kind}-file-{n:06d}", f"{kind}-uniq-{n:06d}"

    # -- messages ----------------------------------------------------------------------------
    def message(
        self,
        user: JSON,
        content: JSON,
        *,
        chat: JSON | None = None,
        thread_id: int | None = None,
        reply_to: JSON | None = None,
    ) -> JSON:
        """A Message from ``user`` (in their private chat unless ``chat`` is given)."""
        chat = chat or private_chat_dict(user)
        message: JSON = {
            "message_id": self.next_message_id(chat["id"]),
            "from": user,
            "chat": chat,
            "date": self.now(),
            **content,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        return message

    def message_update(self, message: JSON, *, edited: bool = False) -> JSON:
        """Wraps a Message into an Update (``edited_message`` when ``edited``)."""
        return {
            "update_id": self.next_update_id(),
            ("edited_message" if edited else "message"): message,
        }

    def text(self, user: JSON, text: str, **where: Any) -> JSON:
        """A plain text message update."""
        return self.message_update(self.message(user, {"text": text}, **where))

    def command(
        self, user: JSON, command: str, args: str = "", *, mention_bot: bool = False, **where: Any
    ) -> JSON:
        """A ``/command`` update with its ``bot_command`` entity (``@bot`` suffix if asked)."""
        content = command_content(
            command, args, bot_username=self.bot_username if mention_bot else None
        )
        return self.message_update(self.message(user, content, **where))

    def contact(
        self,
        user: JSON,
        *,
        own: bool = True,
        phone_number: str = "6281390001234",
        first_name: str | None = None,
        last_name: str | None = None,
        contact_user_id: int | None = None,
        **where: Any,
    ) -> JSON:
        """A shared contact. ``own=True`` is what the "share my number" button sends: the
        sender's own ``user_id`` (and a number often without ``+``); ``own=False`` is a contact
        card of someone else, with their ``user_id`` only if they use Telegram."""
        contact: JSON = {"phone_number": phone_number}
        if own:
            contact["first_name"] = first_name or user["first_name"]
            if last_name or "last_name" in user:
                contact["last_name"] = last_name or user["last_name"]
            contact["user_id"] = user["id"]
        else:
            contact["first_name"] = first_name or "Siti"
            if last_name:
                contact["last_name"] = last_name
            if contact_user_id is not None:
                contact["user_id"] = contact_user_id
        return self.message_update(self.message(user, {"contact": contact}, **where))

    def location(
        self,
        user: JSON,
        latitude: float = SIMPANG_LIMA[0],
        longitude: float = SIMPANG_LIMA[1],
        *,
        accuracy: float | None = None,
        live_period: int | None = None,
        heading: int | None = None,
        **where: Any,
    ) -> JSON:
        """A shared location (GPS accuracy in metres; ``live_period`` makes it live)."""
        content = location_content(
            latitude, longitude, accuracy=accuracy, live_period=live_period, heading=heading
        )
        return self.message_update(self.message(user, content, **where))

    def live_location_edit(
        self,
        location_message: JSON,
        latitude: float,
        longitude: float,
        *,
        accuracy: float | None = None,
        heading: int | None = None,
    ) -> JSON:
        """The ``edited_message`` Telegram sends when a live location moves."""
        previous = location_message["location"]
        edited = {key: value for key, value in location_message.items() if key != "location"}
        edited.update(
            location_content(
                latitude,
                longitude,
                accuracy=accuracy,
                live_period=previous.get("live_period"),
                heading=heading,
            )
        )
        edited["edit_date"] = max(self.now(), int(location_message["date"]) + 1)
        return self.message_update(edited, edited=True)

    def photo(
        self,
        user: JSON,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
        **where: Any,
    ) -> JSON:
        """A photo (three sizes, like Telegram sends) with an optional caption; photos of one
        album each come as their own message carrying the album's ``media_group_id``."""
        sizes = []
        for side, size in ((90, 1_200), (320, 14_000), (1280, 120_000)):
            file_id, unique_id = self._new_file("photo", size)
            sizes.append(
                {
                    "file_id": file_id,
                    "file_unique_id": unique_id,
                    "width": side,
                    "height": side * 3 // 4,
                    "file_size": size,
                }
            )
        content: JSON = {"photo": sizes}
        if caption is not None:
            content["caption"] = caption
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        return self.message_update(self.message(user, content, **where))

    def voice(self, user: JSON, *, duration: int = 4, **where: Any) -> JSON:
        """A voice note (OGG/Opus)."""
        size = 1_600 * duration
        file_id, unique_id = self._new_file("voice", size)
        voice = {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": size,
        }
        return self.message_update(self.message(user, {"voice": voice}, **where))

    def sticker(self, user: JSON, *, emoji: str = "👍", **where: Any) -> JSON:
        """A regular static sticker."""
        file_id, unique_id = self._new_file("sticker", 20_000)
        sticker = {
            "file_id": file_id,
            "file_unique_id": unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": 20_000,
        }
        return self.message_update(self.message(user, {"sticker": sticker}, **where))

    def callback_query(
        self, user: JSON, message: JSON, data: str, *, chat_instance: str | None = None
    ) -> JSON:
        """A press on an inline button carrying ``data`` under the bot's ``message``."""
        query = {
            "id": str(4_200_000_000_000_000 + next(self._query_ids)),
            "from": user,
            "message": message,
            "chat_instance": chat_instance or chat_instance_for(message["chat"]["id"]),
            "data": data,
        }
        return {"update_id": self.next_update_id(), "callback_query": query}
