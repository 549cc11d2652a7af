"""The typed callback context and the bits every handler needs to build service input."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.ext import Application, CallbackContext, ExtBot

from bot.services import Services
from bot.services.intake import Actor
from handlers.advisory_views import AdvisoryViews
from handlers.operator_views import OperatorViews
from handlers.ratelimit import RateLimitArgs
from handlers.views import Views

SERVICES_KEY = "services"
VIEWS_KEY = "views"
ADVISORY_VIEWS_KEY = "advisory_views"
OPERATOR_VIEWS_KEY = "operator_views"

SiagaBot = ExtBot[RateLimitArgs]
"""The bot: every call passes the rate governor (``rate_limit_args`` see handlers/ratelimit)."""


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
