"""The Telegram edge: the only package (besides ``bot/app.py``) that imports ``telegram``."""

from __future__ import annotations

from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from handlers import (
    advisories,
    agencies,
    agency_delivery,
    common,
    console_delivery,
    intake,
    operators,
    privacy,
    stats,
)
from handlers.context import SiagaApplication

PRIVATE = filters.ChatType.PRIVATE
SENDERS_REGISTERED = (console_delivery.__name__, agency_delivery.__name__)
"""Importing the package registers the console's and the agencies' send functions with the
deliverer."""


def register(application: SiagaApplication, operator_chat_id: int | None = None) -> None:
    """Adds every handler; the order matters, see the comments.

    Everything is in handler group 0, where the first matching handler wins: citizens'
    handlers are filtered to private chats and the operators' to their group, so neither
    side ever sees the other's messages; within each side, commands come before the
    catch-all message handlers, and the card buttons (``o|``) before the stale-button
    catch-all.
    """
    ops = (
        filters.Chat(operator_chat_id) if operator_chat_id is not None else filters.ChatType.GROUPS
    )
    # The admins' broadcast composer first: while an admin composes, its states take their
    # messages and /cancel; otherwise it lets every update through to the handlers below.
    application.add_handler(advisories.broadcast_conversation())
    application.add_handler(
        CommandHandler("broadcast_cancel", advisories.broadcast_cancel, filters=PRIVATE)
    )
    application.add_handler(CommandHandler("stats", stats.stats, filters=PRIVATE))
    # Commands first: they work in every state of the conversation (/cancel above all).
    for name, callback in (
        ("start", common.start),
        ("help", common.start),
        ("lapor", common.report),
        ("report", common.report),
        ("cancel", common.cancel),
        ("batal", common.cancel),
        ("status", common.status),
        ("language", common.language),
        ("bahasa", common.language),
        ("privasi", privacy.notice),
        ("privacy", privacy.notice),
        ("datasaya", privacy.my_data),
        ("mydata", privacy.my_data),
        ("hapusdata", privacy.delete_my_data),
        ("deletemydata", privacy.delete_my_data),
    ):
        application.add_handler(CommandHandler(name, callback, filters=PRIVATE))
    application.add_handler(MessageHandler(PRIVATE & filters.COMMAND, common.unknown_command))
    # The operators' commands, only in their group.
    for name, callback in (
        ("queue", operators.queue),
        ("antrian", operators.queue),
        ("timeline", operators.timeline),
        ("operator", operators.operator),
        ("operators", operators.operators),
    ):
        application.add_handler(CommandHandler(name, callback, filters=ops))
    # Buttons: the conversation's and the menu's; anything else is answered as stale.
    application.add_handler(CallbackQueryHandler(intake.on_intake_button, pattern=r"^i\|"))
    application.add_handler(CallbackQueryHandler(operators.on_card_button, pattern=r"^o\|"))
    application.add_handler(
        CallbackQueryHandler(advisories.on_subscription_button, pattern=r"^m\|(advisories$|sub\|)")
    )
    application.add_handler(CallbackQueryHandler(common.on_menu_button, pattern=r"^m\|"))
    application.add_handler(CallbackQueryHandler(privacy.on_privacy_button, pattern=r"^p\|"))
    # The agency card's buttons: any chat (the service checks it is the agency's own).
    application.add_handler(CallbackQueryHandler(agencies.on_agency_button, pattern=r"^a\|"))
    application.add_handler(CallbackQueryHandler(intake.on_intake_button))  # unknown: stale
    # Live-location updates arrive as edited messages; they must not reach the router below.
    application.add_handler(
        MessageHandler(
            PRIVATE & filters.UpdateType.EDITED_MESSAGE & filters.LOCATION, intake.on_live_location
        )
    )
    # Everything else a citizen sends: the draft's current step, or their open ticket.
    application.add_handler(
        MessageHandler(
            PRIVATE & filters.UpdateType.MESSAGE & ~filters.COMMAND, intake.on_private_message
        )
    )
    # Operators' posts (and their edits) in a ticket's topic or replying to its card; service
    # messages (topic created, pinned…) and other commands are not posts.
    application.add_handler(
        MessageHandler(
            ops & ~filters.COMMAND & ~filters.StatusUpdate.ALL & ~filters.ChatType.PRIVATE,
            operators.on_group_message,
        )
    )
    application.add_error_handler(common.on_error)
