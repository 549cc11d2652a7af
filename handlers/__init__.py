"""The Telegram edge: the only package (besides ``bot/app.py``) that imports ``telegram``."""

from __future__ import annotations

from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from handlers import agencies, agency_delivery, common, intake
from handlers.context import SiagaApplication

PRIVATE = filters.ChatType.PRIVATE
AGENCY_SENDERS = agency_delivery.__name__
"""Importing the package registers the agency kinds' send functions with the deliverer."""


def register(application: SiagaApplication) -> None:
    """Adds every handler; the order matters, see the comments."""
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
    ):
        application.add_handler(CommandHandler(name, callback, filters=PRIVATE))
    application.add_handler(MessageHandler(PRIVATE & filters.COMMAND, common.unknown_command))
    # Buttons: the conversation's and the menu's; anything else is answered as stale.
    application.add_handler(CallbackQueryHandler(intake.on_intake_button, pattern=r"^i\|"))
    application.add_handler(CallbackQueryHandler(common.on_menu_button, pattern=r"^m\|"))
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
    application.add_error_handler(common.on_error)
