"""Simulated Telegram users and the test-control API shared by both tiers.

``SimulatedTelegram`` is what a test talks to: add users and forums, inject failures, read what
each chat shows, wait for the bot's reactions. ``FakeBotApi`` (flow tier, over HTTP) and
``HandlerHarness`` (handler tier, ``process_update``) are both one, so a scenario written
against this API runs on either tier.

``SimUser`` acts like a person in a Telegram client: it types, taps the contact and location
buttons, sends media, and presses buttons that are actually on screen (a button that is not
shown cannot be pressed: ``LookupError``).
"""

# ruff: noqa: ASYNC109 - the waiting helpers take timeout= by design and bound it themselves

from __future__ import annotations

import abc
import itertools
from collections.abc import Callable
from typing import Any

from bot.double.botapi_model import (
    ApiCall,
    BotApiModel,
    ChatState,
    StoredMessage,
)
from bot.double.flood import (
    GROUP_WINDOW,
    OVERALL_WINDOW,
    FloodControl,
    FloodLimits,
    FloodStats,
    Window,
)
from bot.double.updates import JSON, SIMPANG_LIMA, UpdateFactory, user_dict

_user_ids = itertools.count(700_000_001)
_albums = itertools.count(1)


class SimulatedTelegram(abc.ABC):
    """The test-control API over one ``BotApiModel`` (see the module docstring)."""

    def __init__(self, model: BotApiModel) -> None:
        self.model = model
        self.updates = UpdateFactory(
            bot_username=str(model.bot_user["username"]),
            clock=model.clock,
            message_ids=model.next_message_id,
            new_file=model.new_file,
        )
        self.users: dict[int, SimUser] = {}

    @abc.abstractmethod
    async def deliver(self, update: JSON) -> None:
        """Hands a raw update to the bot (after ``model.accept_update``)."""

    # -- people and chats ---------------------------------------------------------------------
    def add_user(
        self,
        user_id: int | None = None,
        first_name: str = "Budi",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "id",
        phone_number: str = "6281390001234",
        location: tuple[float, float] = SIMPANG_LIMA,
        accuracy: float = 12.0,
    ) -> SimUser:
        """A Telegram user who can talk to the bot. Their private chat becomes known to the
        bot with their first message (before that, sends to it fail: "chat not found")."""
        user = user_dict(
            user_id if user_id is not None else next(_user_ids),
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        self.model.add_user(user)
        sim = SimUser(self, user, phone_number=phone_number, location=location, accuracy=accuracy)
        self.users[sim.id] = sim
        return sim

    def user(self, user_id: int) -> SimUser:
        """The simulated user with this id (created with defaults if new)."""
        return self.users.get(user_id) or self.add_user(user_id)

    def register_forum(
        self, chat_id: int, title: str = "Operator 112", *, is_forum: bool = True
    ) -> ChatState:
        """A supergroup (a forum unless ``is_forum=False``) with the bot as administrator."""
        return self.model.register_forum(chat_id, title, is_forum=is_forum)

    def block_user(self, chat_id: int, blocked: bool = True) -> None:
        """Sends to this private chat answer 403 "Forbidden: bot was blocked by the user"."""
        self.model.block_user(chat_id, blocked)

    def fail_next(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int | None = None,
        description: str | None = None,
        count: int = 1,
    ) -> None:
        """The next ``count`` calls of ``method`` ("*": any) fail with ``status``."""
        self.model.fail_next(
            method, status, retry_after=retry_after, description=description, count=count
        )

    def flood_control(
        self,
        limits: FloodLimits | bool | None = True,
        /,
        *,
        group_per_minute: int | None = GROUP_WINDOW.calls,
        overall_per_second: int | None = OVERALL_WINDOW.calls,
        private: Window | str | tuple[int, float] | None = None,
    ) -> FloodControl | None:
        """Switches Telegram's flood control on (by default its limits: 20 calls a minute per
        group, 30 a second overall, private chats unlimited) or off (``None``/``False``).
        Sending and editing calls beyond a limit then answer 429 ``retry_after``. Each call
        starts fresh windows and statistics; read them at ``flood_stats``.

            fake.flood_control()                                  # Telegram's limits
            fake.flood_control(private=PRIVATE_WINDOW)            # and 3 per 3 s per private chat
            fake.flood_control(group_per_minute=None)             # no per-group limit
            fake.flood_control(None)                              # off again

        A ``FloodLimits`` given first wins over the keywords. The windows run on the model's
        monotonic clock (``BotApiModel(monotonic=...)``)."""
        if limits is None or limits is False:
            return self.model.flood_control(None)
        if limits is True:
            limits = FloodLimits.of(
                group_per_minute=group_per_minute,
                overall_per_second=overall_per_second,
                private=private,
            )
        return self.model.flood_control(limits)

    @property
    def flood_stats(self) -> FloodStats | None:
        """What flood control saw since it was switched on (None while it is off)."""
        return self.model.flood.stats if self.model.flood is not None else None

    def set_result(self, method: str, result: Any) -> None:
        """Answers ``method`` with ``result`` (or ``result(params)`` if callable) from now on."""
        self.model.overrides[method.lower()] = result

    # -- reading -----------------------------------------------------------------------------------
    @property
    def calls(self) -> list[ApiCall]:
        """Every Bot API call the bot made (long-poll ``getUpdates`` excluded)."""
        return self.model.calls

    def calls_to(self, method: str) -> list[ApiCall]:
        return self.model.calls_to(method)

    def mark(self) -> int:
        """The current end of the call log, for ``wait_for_call(since=...)``."""
        return self.model.mark()

    def messages_for(
        self,
        chat_id: int,
        *,
        incoming: bool = False,
        deleted: bool = False,
        thread_id: int | None = None,
    ) -> list[StoredMessage]:
        """What the bot shows in a chat, in order (``incoming=True``: the users' messages too)."""
        return self.model.messages_for(
            chat_id, incoming=incoming, deleted=deleted, thread_id=thread_id
        )

    def last_message(self, chat_id: int) -> StoredMessage | None:
        """The newest bot message still visible in a chat."""
        return self.model.last_message(chat_id)

    def reply_keyboard(self, chat_id: int) -> JSON | None:
        """The reply keyboard currently shown in a chat, if any."""
        chat = self.model.chats.get(chat_id)
        return chat.reply_keyboard if chat else None

    def topics(self, chat_id: int) -> dict[int, str]:
        """Forum topics of a chat: thread id -> name."""
        chat = self.model.chats.get(chat_id)
        return {t.thread_id: t.name for t in chat.topics.values()} if chat else {}

    # -- waiting -----------------------------------------------------------------------------------
    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Waits (without sleeping) until ``predicate()`` is truthy; returns its value."""
        return await self.model.wait_for(predicate, timeout=timeout)

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> ApiCall:
        """The first ``method`` call (from log position ``since``) that matches."""
        return await self.model.wait_for_call(method, predicate, timeout=timeout, since=since)

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[StoredMessage], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 5.0,
    ) -> StoredMessage:
        """The first bot message in ``chat_id`` with a message id above ``after``."""
        return await self.model.wait_for_message(chat_id, predicate, after=after, timeout=timeout)


class SimUser:
    """A person using Telegram (see the module docstring). Actions return the sent Message
    dict (or, for an inline button, the CallbackQuery dict)."""

    def __init__(
        self,
        telegram: SimulatedTelegram,
        user: JSON,
        *,
        phone_number: str,
        location: tuple[float, float],
        accuracy: float,
    ) -> None:
        self.telegram = telegram
        self.user = user
        self.phone_number = phone_number
        self.location = location
        self.accuracy = accuracy
        self._mark: tuple[int, int] = (self.id, 0)
        self.acted_at = telegram.model.monotonic()
        """When this user last acted (model clock): bot messages edited since are fresh."""

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def messages(self) -> list[StoredMessage]:
        """What the bot has sent into this user's private chat."""
        return self.telegram.messages_for(self.id)

    @property
    def last_message(self) -> StoredMessage | None:
        return self.telegram.last_message(self.id)

    async def wait_reply(
        self, predicate: Callable[[StoredMessage], bool] | None = None, *, timeout: float = 5.0
    ) -> StoredMessage:
        """The first bot message, in the chat this user last acted in, after that action."""
        chat_id, after = self._mark
        return await self.telegram.wait_for_message(
            chat_id, predicate, after=after, timeout=timeout
        )

    def block_bot(self, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot."""
        self.telegram.block_user(self.id, blocked)

    # -- sending -----------------------------------------------------------------------------------
    def _where(self, chat_id: int | None, thread_id: int | None) -> dict[str, Any]:
        if chat_id is None or chat_id == self.id:
            return {}
        chat = self.telegram.model.chats.get(chat_id)
        if chat is None:
            raise LookupError(f"chat {chat_id} is not registered (register_forum first)")
        where: dict[str, Any] = {"chat": chat.raw}
        if thread_id is not None:
            where["thread_id"] = thread_id
            topic = chat.topics.get(thread_id)
            if topic is not None:
                where["reply_to"] = topic.root
        return where

    async def _deliver_message(self, update: JSON) -> JSON:
        message: JSON = update.get("message") or update["edited_message"]
        self._mark = (int(message["chat"]["id"]), int(message["message_id"]))
        self.acted_at = self.telegram.model.monotonic()
        await self.telegram.deliver(update)
        return message

    async def send_text(
        self, text: str, *, chat_id: int | None = None, thread_id: int | None = None
    ) -> JSON:
        """Types and sends a text message."""
        return await self._deliver_message(
            self.telegram.updates.text(self.user, text, **self._where(chat_id, thread_id))
        )

    async def send_content(
        self, content: JSON, *, chat_id: int | None = None, thread_id: int | None = None
    ) -> JSON:
        """Sends a message of any content, e.g. a photo whose file was registered with real
        bytes through ``model.new_file`` (the demo console's upload)."""
        return await self._deliver_message(
            self.telegram.updates.message_update(
                self.telegram.updates.message(self.user, content, **self._where(chat_id, thread_id))
            )
        )

    async def send_command(
        self,
        command: str,
        args: str = "",
        *,
        chat_id: int | None = None,
        thread_id: int | None = None,
        mention_bot: bool | None = None,
    ) -> JSON:
        """Sends ``/command args`` (in groups as ``/command@bot`` unless told otherwise)."""
        where = self._where(chat_id, thread_id)
        mention = bool(where) if mention_bot is None else mention_bot
        update = self.telegram.updates.command(
            self.user, command, args, mention_bot=mention, **where
        )
        return await self._deliver_message(update)

    async def share_contact(
        self,
        *,
        own: bool = True,
        phone_number: str | None = None,
        first_name: str | None = None,
        contact_user_id: int | None = None,
    ) -> JSON:
        """Shares their own number (the contact button) or, ``own=False``, someone else's card."""
        update = self.telegram.updates.contact(
            self.user,
            own=own,
            phone_number=phone_number or (self.phone_number if own else "+6281298765432"),
            first_name=first_name,
            contact_user_id=contact_user_id,
        )
        return await self._deliver_message(update)

    async def share_location(
        self,
        latitude: float | None = None,
        longitude: float | None = None,
        accuracy: float | None = None,
        *,
        live_period: int | None = None,
        chat_id: int | None = None,
        thread_id: int | None = None,
    ) -> JSON:
        """Shares a GPS location (their default spot unless given), live if ``live_period``."""
        update = self.telegram.updates.location(
            self.user,
            self.location[0] if latitude is None else latitude,
            self.location[1] if longitude is None else longitude,
            accuracy=self.accuracy if accuracy is None else accuracy,
            live_period=live_period,
            **self._where(chat_id, thread_id),
        )
        return await self._deliver_message(update)

    async def update_live_location(
        self,
        message: JSON,
        latitude: float,
        longitude: float,
        accuracy: float | None = None,
        *,
        heading: int | None = None,
    ) -> JSON:
        """Moves a live location shared earlier (Telegram sends an ``edited_message``)."""
        update = self.telegram.updates.live_location_edit(
            message, latitude, longitude, accuracy=accuracy, heading=heading
        )
        return await self._deliver_message(update)

    async def send_photo(
        self,
        caption: str | None = None,
        *,
        chat_id: int | None = None,
        thread_id: int | None = None,
    ) -> JSON:
        """Sends a photo (downloadable through ``getFile``)."""
        return await self._deliver_message(
            self.telegram.updates.photo(
                self.user, caption=caption, **self._where(chat_id, thread_id)
            )
        )

    async def send_album(self, count: int, caption: str | None = None) -> list[JSON]:
        """Sends ``count`` photos at once as one album (Telegram delivers one message per
        photo, all with the same ``media_group_id``; the caption rides on the first)."""
        group = f"album{next(_albums)}"
        sent = []
        for index in range(count):
            update = self.telegram.updates.photo(
                self.user, caption=caption if index == 0 else None, media_group_id=group
            )
            sent.append(await self._deliver_message(update))
        return sent

    async def send_voice(
        self, duration: int = 4, *, chat_id: int | None = None, thread_id: int | None = None
    ) -> JSON:
        """Sends a voice note."""
        return await self._deliver_message(
            self.telegram.updates.voice(
                self.user, duration=duration, **self._where(chat_id, thread_id)
            )
        )

    async def send_sticker(
        self, emoji: str = "👍", *, chat_id: int | None = None, thread_id: int | None = None
    ) -> JSON:
        """Sends a sticker."""
        return await self._deliver_message(
            self.telegram.updates.sticker(self.user, emoji=emoji, **self._where(chat_id, thread_id))
        )

    async def press(
        self, button: str, on: StoredMessage | int | None = None, *, chat_id: int | None = None
    ) -> JSON:
        """Taps a button by label or ``callback_data``: an inline button on message ``on``
        (by default the newest bot message that shows it), or else a button of the reply
        keyboard shown in the chat (contact/location buttons share them)."""
        chat_id = (
            chat_id
            if chat_id is not None
            else (on.chat_id if isinstance(on, StoredMessage) else self.id)
        )
        model = self.telegram.model
        if isinstance(on, int):
            found = model.message(chat_id, on)
            if found is None or found.deleted:
                raise LookupError(f"message {on} is not visible in chat {chat_id}")
            on = found
        candidates = [on] if on is not None else list(reversed(model.messages_for(chat_id)))
        for message in candidates:
            for inline in message.inline_buttons:
                if button in (inline.get("text"), inline.get("callback_data")):
                    if "callback_data" not in inline:
                        raise LookupError(f"button {button!r} is not a callback button: {inline}")
                    update = self.telegram.updates.callback_query(
                        self.user, message.raw, str(inline["callback_data"])
                    )
                    query: JSON = update["callback_query"]
                    self._mark = (chat_id, model.chats[chat_id].last_message_id)
                    self.acted_at = model.monotonic()
                    await self.telegram.deliver(update)
                    return query
        return await self._press_keyboard(button, chat_id, on)

    async def _press_keyboard(self, button: str, chat_id: int, on: StoredMessage | None) -> JSON:
        chat = self.telegram.model.chats.get(chat_id)
        keyboard = chat.reply_keyboard if chat else None
        for row in (keyboard or {}).get("keyboard", []):
            for key in row:
                spec = key if isinstance(key, dict) else {"text": key}
                if spec["text"] != button:
                    continue
                if keyboard and keyboard.get("one_time_keyboard") and chat is not None:
                    chat.reply_keyboard = None
                if spec.get("request_contact"):
                    return await self.share_contact(own=True)
                if spec.get("request_location"):
                    return await self.share_location()
                where_chat = None if chat_id == self.id else chat_id
                return await self.send_text(button, chat_id=where_chat)
        shown = [m.button_texts for m in ([on] if on else self.telegram.messages_for(chat_id)[-3:])]
        raise LookupError(
            f"no button {button!r} on screen in chat {chat_id}; inline buttons nearby: {shown}; "
            f"reply keyboard: {keyboard}"
        )
