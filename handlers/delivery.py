"""Delivers outbox rows through the Bot API (the Telegram adapter of the Deliverer port)."""

from __future__ import annotations

from datetime import timedelta
from html import escape

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.domain.model import Citizen, Location, MediaKind, OutboxMessage, Ticket
from bot.services.intake import IntakeService
from bot.services.outbox_kinds import (
    CITIZEN_NOTICE,
    OPERATOR_CARD,
    OPERATOR_LOCATION_UPDATE,
    OPERATOR_MEDIA,
    OPERATOR_PIN,
    OPERATOR_RELAY,
)
from bot.services.ports import DeliveryError, Fault
from bot.services.queries import TicketQueries
from handlers.views import Views

#: Relayed kinds whose copy can carry our header as its caption.
CAPTIONED = frozenset({"photo", "video", "voice", "audio", "document", "animation"})
MAX_ACCURACY = 1500.0  # the Bot API's bound for horizontal_accuracy
RELAY_PIECE = 3500  # characters of a citizen's text per operator message (limit 4096)
RELAY_CAPTION = 800  # characters of a citizen's caption kept on the copy (limit 1024)


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramDeliverer:
    """Sends operator cards, pins, media, relays and citizen notices."""

    def __init__(
        self,
        bot: Bot,
        queries: TicketQueries,
        intake: IntakeService,
        views: Views,
        operator_chat_id: int | None,
    ) -> None:
        self._bot = bot
        self._queries = queries
        self._intake = intake
        self._views = views
        self._operator_chat_id = operator_chat_id

    async def deliver(self, message: OutboxMessage) -> None:
        """Deliver one row or raise DeliveryError (transient unless retrying cannot help)."""
        ticket_id = message.payload.get("ticket_id")
        detail = await self._queries.detail(int(str(ticket_id))) if ticket_id else None
        if detail is None:
            raise DeliveryError("ticket not found", fault=Fault.REJECTED)
        try:
            if message.kind == CITIZEN_NOTICE:
                await self._citizen_notice(detail.ticket, detail.citizen)
            else:
                await self._to_operators(message, detail.ticket, detail.citizen)
        except RetryAfter as exc:
            raise DeliveryError(
                "rate limited", fault=Fault.RATE_LIMITED, retry_after=_seconds(exc.retry_after)
            ) from exc
        except Forbidden as exc:
            if message.kind == CITIZEN_NOTICE and detail.citizen is not None:
                await self._intake.mark_blocked(detail.citizen.telegram_id)
            fault = Fault.RECIPIENT_GONE if message.kind == CITIZEN_NOTICE else Fault.DESTINATION
            raise DeliveryError(f"forbidden: {exc.message}", fault=fault) from exc
        except BadRequest as exc:
            fault = Fault.REJECTED if message.kind == CITIZEN_NOTICE else Fault.DESTINATION
            raise DeliveryError(f"bad request: {exc.message}", fault=fault) from exc
        except (NetworkError, TelegramError) as exc:  # includes TimedOut
            raise DeliveryError(f"{type(exc).__name__}: {exc.message}") from exc

    def _operator_chat(self) -> int:
        if self._operator_chat_id is None:
            raise DeliveryError("OPERATOR_CHAT_ID is not configured")
        return self._operator_chat_id

    async def _to_operators(
        self, message: OutboxMessage, ticket: Ticket, citizen: Citizen | None
    ) -> None:
        chat = self._operator_chat()
        views, bot, payload = self._views, self._bot, message.payload
        if message.kind == OPERATOR_CARD:
            await bot.send_message(chat, views.operator_card(ticket, citizen))
        elif message.kind == OPERATOR_PIN:
            location = ticket.incident_location or ticket.reporter_location
            if location is not None:
                await self._pin(chat, location)
        elif message.kind == OPERATOR_MEDIA:
            index = int(str(payload.get("index", 0)))
            if index < len(ticket.media):
                media = ticket.media[index]
                caption = views.operator_relay_header(ticket)
                if media.caption:
                    caption = f"{caption} {escape(media.caption[:800])}"
                await _send_media(bot, chat, media.kind, media.file_id, caption)
        elif message.kind == OPERATOR_RELAY:
            await self._relay(chat, ticket, payload)
        elif message.kind == OPERATOR_LOCATION_UPDATE:
            location = ticket.reporter_location or ticket.incident_location
            await bot.send_message(chat, views.operator_location_update(ticket))
            if location is not None:
                await self._pin(chat, location)
        else:
            raise DeliveryError(f"unknown outbox kind {message.kind}", fault=Fault.REJECTED)

    async def _pin(self, chat: int, location: Location) -> None:
        accuracy = min(location.accuracy_m, MAX_ACCURACY) if location.accuracy_m else None
        await self._bot.send_location(
            chat, latitude=location.lat, longitude=location.lon, horizontal_accuracy=accuracy
        )

    async def _relay(self, chat: int, ticket: Ticket, payload: dict[str, object]) -> None:
        header = self._views.operator_relay_header(ticket)
        kind = str(payload.get("kind", "text"))
        from_chat = int(str(payload["from_chat_id"]))
        message_id = int(str(payload["message_id"]))
        text = payload.get("text")
        text = text if isinstance(text, str) else ""
        if kind == "text":
            # Header and text must fit Telegram's 4096; a long text follows in pieces.
            pieces = [text[i : i + RELAY_PIECE] for i in range(0, len(text), RELAY_PIECE)]
            await self._bot.send_message(chat, f"{header}\n{escape(pieces[0] if pieces else '')}")
            for piece in pieces[1:]:
                await self._bot.send_message(chat, escape(piece))
            return
        if kind in CAPTIONED and len(text) <= RELAY_CAPTION:
            caption = f"{header}\n{escape(text)}" if text else header
            await self._bot.copy_message(chat, from_chat, message_id, caption=caption)
            return
        if kind in CAPTIONED:  # the citizen's long caption goes as its own message
            await self._bot.copy_message(chat, from_chat, message_id, caption=header)
            await self._bot.send_message(chat, f"{header}\n{escape(text[:RELAY_PIECE])}")
            return
        await self._bot.send_message(chat, header)
        await self._bot.copy_message(chat, from_chat, message_id)

    async def _citizen_notice(self, ticket: Ticket, citizen: Citizen | None) -> None:
        if citizen is None:
            raise DeliveryError("citizen not found", fault=Fault.REJECTED)
        text = self._views.abandoned(citizen)
        await self._bot.send_message(ticket.chat_id, text.text, reply_markup=text.markup)


async def _send_media(bot: Bot, chat: int, kind: MediaKind, file_id: str, caption: str) -> None:
    if kind is MediaKind.PHOTO:
        await bot.send_photo(chat, file_id, caption=caption)
    elif kind is MediaKind.VOICE:
        await bot.send_voice(chat, file_id, caption=caption)
    elif kind is MediaKind.VIDEO:
        await bot.send_video(chat, file_id, caption=caption)
    elif kind is MediaKind.AUDIO:
        await bot.send_audio(chat, file_id, caption=caption)
    else:
        await bot.send_document(chat, file_id, caption=caption)
