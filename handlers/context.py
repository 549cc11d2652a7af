"""The typed callback context and the bits every handler needs to build service input."""

from __future__ import annotations

import functools
from typing import Any

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackContext, ExtBot

from bot.services import Services
from bot.services.intake import Actor
from handlers.advisory_views import AdvisoryViews
from handlers.markup import markup_json
from handlers.operator_views import OperatorViews
from handlers.privacy_views import PrivacyViews
from handlers.ratelimit import RateLimitArgs
from handlers.views import ReplyMarkup, Views

SERVICES_KEY = "services"
VIEWS_KEY = "views"
ADVISORY_VIEWS_KEY = "advisory_views"
OPERATOR_VIEWS_KEY = "operator_views"
PRIVACY_VIEWS_KEY = "privacy_views"


class SiagaBot(ExtBot[RateLimitArgs]):
    """The bot: every call passes the rate governor (``rate_limit_args`` see handlers/ratelimit).

    It adds a text send and a text edit that keep only the message's id from the Bot API's
    answer. Telegram answers both with the whole message, its keyboard included, and PTB's
    ``send_message`` builds a ``Message`` of it: about 5 % of the bot's CPU samples at 50
    people flat out (py-spy), for an id, all the citizen's screens need. Both send the bot's
    Defaults (HTML, no link preview) as ``send_message`` does, and go through PTB's own request
    path (``_post``: the rate governor, the errors, None parameters dropped).
    """

    async def send_text(
        self, chat_id: int, text: str, reply_markup: ReplyMarkup | None = None
    ) -> int:
        """``sendMessage`` with the defaults (HTML, no link previews); returns the message id
        (:meth:`send_placed` without a topic or the governor's arguments)."""
        _chat, message_id, _topic = await self.send_placed(chat_id, text, reply_markup)
        return message_id

    async def send_placed(
        self,
        chat_id: int,
        text: str,
        reply_markup: ReplyMarkup | None = None,
        *,
        message_thread_id: int | None = None,
        rate_limit_args: RateLimitArgs | None = None,
    ) -> tuple[int, int, int | None]:
        """``sendMessage`` into a topic (or the chat's General), with the governor's
        arguments; returns the sent message's chat id, id and topic, as Telegram answers
        them (what the outbox records of an operator's card)."""
        data = self._text_data(chat_id, text, reply_markup)
        data["message_thread_id"] = message_thread_id
        # PTB's way to the rate limiter: under a key of its own, taken out before sending
        limits = self._merge_api_rl_kwargs(None, rate_limit_args)
        sent = await self._post("sendMessage", data, api_kwargs=limits)
        thread = sent.get("message_thread_id")
        topic = None if thread is None else int(thread)
        return int(sent["chat"]["id"]), int(sent["message_id"]), topic

    async def edit_text(
        self,
        chat_id: int,
        message_id: int,
        text: str | None,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """``editMessageText`` with the defaults, or ``editMessageReplyMarkup`` when ``text``
        is None (the message keeps its text; ``reply_markup`` None removes its buttons)."""
        if text is None:
            markup = markup_json(reply_markup)
            data = {"chat_id": chat_id, "message_id": message_id, "reply_markup": markup}
            await self._post("editMessageReplyMarkup", data)
        else:
            data = {**self._text_data(chat_id, text, reply_markup), "message_id": message_id}
            await self._post("editMessageText", data)

    def _text_data(
        self, chat_id: int, text: str, reply_markup: ReplyMarkup | None
    ) -> dict[str, Any]:
        """A text's parameters with the bot's Defaults, as PTB's ``send_message`` sends them
        (``_post`` drops those that are None); the keyboard and the link preview options go
        as their JSON (:mod:`handlers.markup`), which PTB passes on as it is."""
        return {
            "chat_id": chat_id,
            "text": text,
            "reply_markup": markup_json(reply_markup),
            **self._text_defaults,
        }

    @functools.cached_property
    def _text_defaults(self) -> dict[str, Any]:
        """The Defaults a text is sent with, made once (they do not change)."""
        defaults = self.defaults
        if defaults is None:
            return {}
        options = defaults.link_preview_options
        return {
            "parse_mode": defaults.parse_mode,
            "link_preview_options": None if options is None else options.to_json(),
            "disable_notification": defaults.disable_notification,
            "protect_content": defaults.protect_content,
        }


class Context(CallbackContext[SiagaBot, dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """A callback context that knows the application core and the views."""

    @property
    def services(self) -> Services:
        """The services wired by the composition root."""
        services: Services = self.bot_data[SERVICES_KEY]
        return services

    @property
    def views(self) -> Views:
        """The renderer of this deployment."""
        views: Views = self.bot_data[VIEWS_KEY]
        return views

    @property
    def advisory_views(self) -> AdvisoryViews:
        """The renderer of subscriptions and the broadcast composer."""
        views: AdvisoryViews = self.bot_data[ADVISORY_VIEWS_KEY]
        return views

    @property
    def privacy_views(self) -> PrivacyViews:
        """The renderer of the privacy notice and the citizen's data requests."""
        views: PrivacyViews = self.bot_data[PRIVACY_VIEWS_KEY]
        return views

    @property
    def operator_views(self) -> OperatorViews:
        """The renderer of the operators' chat."""
        views: OperatorViews = self.bot_data[OPERATOR_VIEWS_KEY]
        return views


SiagaApplication = Application[
    SiagaBot, Context, dict[Any, Any], dict[Any, Any], dict[Any, Any], Any
]


def actor_of(update: Update) -> Actor:
    """Return the plain-data identity of whoever sent the update."""
    user = update.effective_user
    chat = update.effective_chat
    if user is None or chat is None:
        raise ValueError("update without user or chat")
    return Actor(
        telegram_id=user.id,
        chat_id=chat.id,
        language_code=user.language_code,
        username=user.username,
        display_name=user.full_name,
    )


def private_press(update: Update) -> bool:
    """Whether a button press came from the presser's own private chat with the bot.

    Citizens' buttons only ever appear there; a press on a bot message in a group (a
    forged ``callback_data`` included) must not act for the presser.
    """
    query = update.callback_query
    if query is None or query.message is None:
        return False
    chat = query.message.chat
    return chat.type == chat.PRIVATE and chat.id == query.from_user.id
