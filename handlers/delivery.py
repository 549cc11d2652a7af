"""Delivers outbox rows through the Bot API (the Telegram adapter of the Deliverer port).

One send function per outbox kind, registered with ``@sends(KIND)`` in :data:`SENDERS`
(a test fails when a kind of the registry has none). Each returns the Telegram message it
sent (or None when there was nothing to send); the deliverer turns it into a
``DeliveryResult`` and Telegram's errors into a ``DeliveryError`` whose ``Fault`` depends on
who the row is for (its kind's ``Audience``): a citizen's 403 means they blocked the bot, an
operators' or agency chat's 403/400 is a configuration fault of ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from html import escape
from typing import Any

from telegram import InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.domain.advisory import AdvisoryStatus
from bot.domain.model import Citizen, Location, MediaKind, OutboxMessage, Ticket
from bot.services.advisories import AdvisoryService
from bot.services.agencies import AgencyDirectory
from bot.services.chats import ChatDirectory
from bot.services.governor import RateGovernor
from bot.services.intake import IntakeService
from bot.services.outbox import Pacing
from bot.services.outbox_kinds import (
    ADMIN_ALERT,
    ADVISORY,
    ADVISORY_DRAFT,
    ADVISORY_PROGRESS,
    CITIZEN_NOTICE,
    KINDS,
    OPERATOR_CARD,
    OPERATOR_LOCATION_UPDATE,
    OPERATOR_MEDIA,
    OPERATOR_PIN,
    OPERATOR_RELAY,
    Audience,
    OutboxKind,
    Transport,
)
from bot.services.ports import DeliveryError, DeliveryResult, Fault
from bot.services.queries import TicketDetail, TicketQueries
from bot.services.queue import QueueService
from handlers.advisory_views import AdvisoryViews
from handlers.context import SiagaBot
from handlers.operator_views import OperatorViews
from handlers.ratelimit import GovernedRateLimiter
from handlers.views import Views

#: Relayed kinds whose copy can carry our header as its caption.
CAPTIONED = frozenset({"photo", "video", "voice", "audio", "document", "animation"})
MAX_ACCURACY = 1500.0  # the Bot API's bound for horizontal_accuracy
RELAY_PIECE = 3500  # characters of a citizen's text per operator message (limit 4096)
RELAY_CAPTION = 800  # characters of a citizen's caption kept on the copy (limit 1024)
NOT_MODIFIED = "message is not modified"
#: Telegram's words for a chat the bot cannot write to (as opposed to a bad message).
DESTINATION_REASONS = (
    "chat not found",
    "not a member",
    "not enough rights",
    "have no rights",
    "need administrator rights",
    "chat_write_forbidden",
    "chat_admin_required",
    "bot was kicked",
    "group chat was deactivated",
    "chat is deactivated",
    "message thread not found",
    "topic_closed",
    "topic_deleted",
)


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def telegram_reason(error: BaseException) -> str:
    """Telegram's own words for an error ("chat not found"), else the exception's class."""
    if isinstance(error, TelegramError) and error.message:
        return str(error.message)
    return type(error).__name__


@dataclass(slots=True)
class Delivery:
    """One row being delivered: its kind, its ticket (if any) and where the call went."""

    message: OutboxMessage
    kind: OutboxKind
    detail: TicketDetail | None
    chat_id: int | None = None

    @property
    def ticket(self) -> Ticket:
        """The row's ticket (a kind that needs one refuses a row without)."""
        if self.detail is None:
            raise DeliveryError(f"{self.message.kind} needs a ticket", fault=Fault.REJECTED)
        return self.detail.ticket

    @property
    def citizen(self) -> Citizen | None:
        """The ticket's citizen, if known."""
        return self.detail.citizen if self.detail else None


Sender = Callable[["TelegramDeliverer", Delivery], Awaitable[DeliveryResult | None]]
SENDERS: dict[str, Sender] = {}


def sends(*kinds: str) -> Callable[[Sender], Sender]:
    """Registers the decorated function as the sender of ``kinds``."""

    def register(sender: Sender) -> Sender:
        for kind in kinds:
            if kind in SENDERS:
                raise ValueError(f"outbox kind {kind!r} has two senders")
            SENDERS[kind] = sender
        return sender

    return register


def missing_senders() -> set[str]:
    """The registered Telegram kinds that have no send function (must be none)."""
    telegram = {name for name, kind in KINDS.items() if kind.transport is Transport.TELEGRAM}
    return telegram - set(SENDERS)


class TelegramDeliverer:
    """Sends each outbox row with the send function of its kind."""

    def __init__(
        self,
        bot: SiagaBot,
        queries: TicketQueries,
        intake: IntakeService,
        views: Views,
        operator_chat_id: int | None,
        *,
        chats: ChatDirectory | None = None,
        operator_views: OperatorViews | None = None,
        queue: QueueService | None = None,
        topics: bool = True,
        agencies: AgencyDirectory | None = None,
        advisories: AdvisoryService | None = None,
        advisory_views: AdvisoryViews | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        self.bot = bot
        self.pacing = pacing or Pacing()
        """The outbox worker's: the board's waits for its turn end when the worker stops."""
        self.agencies = agencies or AgencyDirectory(())
        """The agencies file: each agency's chat (agency cards go there)."""
        self.advisories = advisories
        self.advisory_views = advisory_views
        self._queries = queries
        self._intake = intake
        self.views = views
        self.operator_views = operator_views or OperatorViews(
            views.zone, views.phone, views.operator_language
        )
        self.queue = queue
        self.topics = topics
        """Whether tickets get forum topics (decided at start, see ``console_delivery``)."""
        self.board_lock = asyncio.Lock()
        """One queue-board send at a time, so two rows in flight never post two boards."""
        self.board_next: dict[int, float] = {}
        """Per chat, when (the governor's time) the next board call may go: :meth:`pace_board`."""
        self.boards: dict[int, int] = {}
        """The board's message per chat, as this process last posted or edited it."""
        self.board_texts: dict[int, str] = {}
        """What that message shows (an unchanged board is not edited again)."""
        self._operator_chat_id = operator_chat_id
        self._chats = chats

    async def deliver(self, message: OutboxMessage) -> DeliveryResult | None:
        """Deliver one row and return what Telegram answered, or raise DeliveryError."""
        kind = KINDS.get(message.kind)
        sender = SENDERS.get(message.kind)
        if kind is None or sender is None:
            raise DeliveryError(f"no sender for outbox kind {message.kind}")
        ticket_id = message.ticket_id or message.payload.get("ticket_id")
        detail = await self._queries.detail(int(str(ticket_id))) if ticket_id else None
        if ticket_id and detail is None:
            raise DeliveryError("ticket not found", fault=Fault.REJECTED)
        delivery = Delivery(message, kind, detail)
        try:
            sent = await sender(self, delivery)
        except ChatMigrated as exc:
            raise DeliveryError(
                "the group became a supergroup", fault=Fault.DESTINATION,
                migrated_to=exc.new_chat_id, chat_id=delivery.chat_id,
            ) from exc  # fmt: skip
        except RetryAfter as exc:
            raise DeliveryError(
                "rate limited", fault=Fault.RATE_LIMITED, retry_after=_seconds(exc.retry_after),
                chat_id=delivery.chat_id,
            ) from exc  # fmt: skip
        except Forbidden as exc:
            raise await self._refused(delivery, exc, forbidden=True) from exc
        except BadRequest as exc:
            raise await self._refused(delivery, exc, forbidden=False) from exc
        except (NetworkError, TelegramError) as exc:  # 5xx, time-outs, connection errors
            raise DeliveryError(
                f"{type(exc).__name__}: {exc.message}", chat_id=delivery.chat_id
            ) from exc
        return sent if sent is not None else DeliveryResult(chat_id=delivery.chat_id)

    async def _refused(
        self, delivery: Delivery, exc: TelegramError, *, forbidden: bool
    ) -> DeliveryError:
        """What a 403 (``forbidden``) or 400 means for this row's audience."""
        reason, audience = exc.message, delivery.kind.audience
        if audience is Audience.CITIZEN:
            if forbidden and delivery.citizen is not None:
                await self._intake.mark_blocked(delivery.citizen.telegram_id)
            fault = Fault.RECIPIENT_GONE if forbidden else Fault.REJECTED
        elif audience is Audience.ADMIN:  # an admin who never started the bot, or left it
            fault = Fault.RECIPIENT_GONE if forbidden or _about_chat(reason) else Fault.REJECTED
        else:  # a chat of ours: a configuration fault, unless Telegram refuses the message
            fault = Fault.DESTINATION if forbidden or _about_chat(reason) else Fault.REJECTED
        return DeliveryError(reason, fault=fault, chat_id=delivery.chat_id)

    # -- helpers for the senders ------------------------------------------------------------

    async def operators_chat(self, delivery: Delivery) -> int:
        """The operators' chat (where it lives now), noted on ``delivery``."""
        if self._operator_chat_id is None:
            raise DeliveryError("OPERATOR_CHAT_ID is not set", fault=Fault.DESTINATION)
        chat = self._operator_chat_id
        if self._chats is not None:
            chat = await self._chats.resolve(chat)
        delivery.chat_id = chat
        return chat

    def advisory_parts(self) -> tuple[AdvisoryService, AdvisoryViews]:
        """The advisory service and views (a deliverer built without them refuses rows)."""
        if self.advisories is None or self.advisory_views is None:
            raise DeliveryError("advisories are not wired", fault=Fault.TRANSIENT)
        return self.advisories, self.advisory_views

    async def chat_of(self, delivery: Delivery, chat_id: int) -> int:
        """Where ``chat_id`` lives now (a group that became a supergroup moved), noted on
        ``delivery``."""
        if self._chats is not None:
            chat_id = await self._chats.resolve(chat_id)
        delivery.chat_id = chat_id
        return chat_id

    def limits(self, delivery: Delivery) -> dict[str, Any]:
        """The rate governor's arguments for this row's calls (none without a governor)."""
        if getattr(self.bot, "rate_limiter", None) is None:
            return {}  # PTB refuses rate_limit_args when no rate limiter is set
        priority = int(delivery.kind.priority)
        return {"rate_limit_args": {"priority": priority, "rank": delivery.message.rank}}

    def _governor(self) -> RateGovernor | None:
        limiter = getattr(self.bot, "rate_limiter", None)
        if isinstance(limiter, GovernedRateLimiter) and limiter.enabled:
            return limiter.governor
        return None

    async def pace_board(self, chat: int) -> None:
        """Waits until the next queue-board call may go into ``chat`` (hold ``board_lock``).

        Board calls are spaced by the governor's ``board_interval`` (7.5 s with Telegram's 20
        a minute), always, not only once a surge is seen: a surge is seen too late (the first
        seconds' edits, one per new ticket, would already have spent the group's window and
        left the board dark for most of a minute). The wait also gathers every ticket that
        arrives meanwhile into one edit. Without a governor the board goes at once."""
        governor = self._governor()
        if governor is None:
            return
        wait = self.board_next.get(chat, float("-inf")) - governor.now()
        if wait > 0:
            await self.pacing.sleep(wait)  # cut short (the row released) when stopping

    def board_sent(self, chat: int) -> None:
        """Notes a board call into ``chat``. A new board's pin is not counted: it happens once
        per board, and the interval leaves it room (see ``Limits.board_interval``)."""
        governor = self._governor()
        if governor is not None:
            self.board_next[chat] = governor.now() + governor.limits.board_interval

    async def edit_in_place(
        self,
        delivery: Delivery,
        chat: int,
        message_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
    ) -> DeliveryResult:
        """Edits a message the bot sent (a card, the board) to ``text``; Telegram's "message
        is not modified" counts as done (the same state was sent before)."""
        try:
            await self.bot.edit_message_text(
                text, chat_id=chat, message_id=message_id, reply_markup=markup,
                **self.limits(delivery),
            )  # fmt: skip
        except BadRequest as exc:
            if NOT_MODIFIED not in exc.message.lower():
                raise
        return DeliveryResult(chat_id=chat, message_id=message_id)

    def marked(self, delivery: Delivery, text: str) -> str:
        """``text`` headed by the repeat mark when the row may have been sent before."""
        return f"{self.views.repeat_mark()}\n{text}" if delivery.message.repeat else text

    def place(self, delivery: Delivery) -> dict[str, Any]:
        """Where a message about the row's ticket goes in the operators' chat: into its
        forum topic, else (no topics) as a reply to its card, else the chat itself."""
        ticket = delivery.ticket
        if ticket.operator_thread_id is not None:
            return {"message_thread_id": ticket.operator_thread_id}
        if ticket.operator_card_message_id is not None:
            return {
                "reply_parameters": ReplyParameters(
                    ticket.operator_card_message_id, allow_sending_without_reply=True
                )
            }
        return {}

    async def pin(self, delivery: Delivery, chat: int, location: Location) -> Message:
        """Sends a location pin (announced as a possible repeat when it may be one)."""
        limits = {**self.limits(delivery), **self.place(delivery)}
        if delivery.message.repeat:
            await self.bot.send_message(chat, self.views.repeat_pin(delivery.ticket), **limits)
        accuracy = min(location.accuracy_m, MAX_ACCURACY) if location.accuracy_m else None
        return await self.bot.send_location(
            chat, latitude=location.lat, longitude=location.lon, horizontal_accuracy=accuracy,
            **limits,
        )  # fmt: skip


def _about_chat(reason: str) -> bool:
    lowered = reason.lower()
    return any(words in lowered for words in DESTINATION_REASONS)


# -- the senders ----------------------------------------------------------------------------


@sends(OPERATOR_CARD)
async def _operator_card(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    """The ticket's card with its buttons, first in its topic (an abandoned draft's card has
    no topic and no buttons)."""
    chat = await d.operators_chat(delivery)
    ticket = delivery.ticket
    assignments = delivery.detail.assignments if delivery.detail else ()
    card = d.operator_views.card(ticket, delivery.citizen, assignments)
    chat_id, message_id, thread_id = await d.bot.send_placed(
        chat, d.marked(delivery, card.text), card.markup,
        message_thread_id=ticket.operator_thread_id, **d.limits(delivery),
    )  # fmt: skip
    return DeliveryResult(chat_id=chat_id, message_id=message_id, thread_id=thread_id)


@sends(OPERATOR_PIN)
async def _operator_pin(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    chat = await d.operators_chat(delivery)
    ticket = delivery.ticket
    location = ticket.pinned_location
    return result_of(await d.pin(delivery, chat, location)) if location is not None else None


@sends(OPERATOR_MEDIA)
async def _operator_media(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    chat = await d.operators_chat(delivery)
    ticket = delivery.ticket
    index = int(str(delivery.message.payload.get("index", 0)))
    if index >= len(ticket.media):
        return None
    media = ticket.media[index]
    caption = d.marked(delivery, d.operator_views.relay_header(ticket))
    if media.caption:
        caption = f"{caption} {escape(media.caption[:RELAY_CAPTION])}"
    by_kind: dict[MediaKind, Callable[..., Awaitable[Message]]] = {
        MediaKind.PHOTO: d.bot.send_photo,
        MediaKind.VOICE: d.bot.send_voice,
        MediaKind.VIDEO: d.bot.send_video,
        MediaKind.AUDIO: d.bot.send_audio,
    }
    send = by_kind.get(media.kind, d.bot.send_document)
    sent: Message = await send(
        chat, media.file_id, caption=caption, **d.place(delivery), **d.limits(delivery)
    )
    return result_of(sent)


@sends(OPERATOR_RELAY)
async def _operator_relay(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    """Copies a citizen's message to the operators under a header naming the ticket."""
    chat = await d.operators_chat(delivery)
    bot, payload = d.bot, delivery.message.payload
    limits = {**d.limits(delivery), **d.place(delivery)}
    header = d.marked(delivery, d.operator_views.relay_header(delivery.ticket))
    kind = str(payload.get("kind", "text"))
    from_chat = int(str(payload["from_chat_id"]))
    message_id = int(str(payload["message_id"]))
    text = payload.get("text")
    text = text if isinstance(text, str) else ""
    if kind == "text":
        # Header and text must fit Telegram's 4096; a long text follows in pieces.
        pieces = [text[i : i + RELAY_PIECE] for i in range(0, len(text), RELAY_PIECE)]
        first = await bot.send_message(
            chat, f"{header}\n{escape(pieces[0] if pieces else '')}", **limits
        )
        for piece in pieces[1:]:
            await bot.send_message(chat, escape(piece), **limits)
        return result_of(first)
    if kind in CAPTIONED and len(text) <= RELAY_CAPTION:
        caption = f"{header}\n{escape(text)}" if text else header
        copied = await bot.copy_message(chat, from_chat, message_id, caption=caption, **limits)
        return DeliveryResult(chat_id=chat, message_id=copied.message_id)
    if kind in CAPTIONED:  # the citizen's long caption goes as its own message
        copied = await bot.copy_message(chat, from_chat, message_id, caption=header, **limits)
        await bot.send_message(chat, f"{header}\n{escape(text[:RELAY_PIECE])}", **limits)
        return DeliveryResult(chat_id=chat, message_id=copied.message_id)
    first = await bot.send_message(chat, header, **limits)
    await bot.copy_message(chat, from_chat, message_id, **limits)
    return result_of(first)


@sends(OPERATOR_LOCATION_UPDATE)
async def _operator_location_update(
    d: TelegramDeliverer, delivery: Delivery
) -> DeliveryResult | None:
    """One pin that says what it is (ticket, kelurahan, accuracy, time), in the ticket's topic
    or replying to its card: no header followed by a bare pin."""
    chat = await d.operators_chat(delivery)
    ticket = delivery.ticket
    location = ticket.reporter_location or ticket.incident_location
    if location is None:
        return None
    limits = {**d.limits(delivery), **d.place(delivery)}
    if delivery.message.repeat:
        await d.bot.send_message(chat, d.views.repeat_pin(ticket), **limits)
    title, address = d.operator_views.location_update(ticket, location)
    sent = await d.bot.send_venue(
        chat, latitude=location.lat, longitude=location.lon, title=title, address=address,
        **limits,
    )  # fmt: skip
    return result_of(sent)


@sends(CITIZEN_NOTICE)
async def _citizen_notice(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    ticket, citizen = delivery.ticket, delivery.citizen
    if citizen is None:
        raise DeliveryError("citizen not found", fault=Fault.REJECTED)
    delivery.chat_id = ticket.chat_id
    text = d.views.abandoned(citizen)
    sent = await d.bot.send_message(
        ticket.chat_id, text.text, reply_markup=text.markup, **d.limits(delivery)
    )
    return result_of(sent)


@sends(ADMIN_ALERT)
async def _admin_alert(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    admin = int(str(delivery.message.payload["admin_id"]))
    delivery.chat_id = admin
    payload = delivery.message.payload
    if payload.get("alert") == "unclaimed" and delivery.detail is not None:  # SLA escalation
        text = d.operator_views.escalation(delivery.ticket, payload)
    else:
        text = d.views.admin_alert(payload)
    return result_of(await d.bot.send_message(admin, text, **d.limits(delivery)))


@sends(ADVISORY)
async def _advisory(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    """One citizen's copy of an advisory (none once the advisory was cancelled here)."""
    service, views = d.advisory_parts()
    message = delivery.message
    payload = message.payload
    chat = int(str(payload["chat_id"]))
    delivery.chat_id = chat
    advisory_id = int(str(payload["advisory_id"]))
    if service.is_cancelled(advisory_id):
        await service.skipped(message)
        raise DeliveryError("advisory cancelled", fault=Fault.REJECTED, chat_id=chat)
    advisory = await service.content(advisory_id)
    if advisory is None:
        raise DeliveryError("advisory not found", fault=Fault.REJECTED, chat_id=chat)
    text = views.copy(advisory, str(payload.get("language") or views.language))
    extra: dict[str, Any] = {"allow_paid_broadcast": True} if service.paid else {}
    extra.update(d.limits(delivery))
    try:
        if advisory.photo_file_id:
            sent = await d.bot.send_photo(chat, advisory.photo_file_id, caption=text, **extra)
        else:
            sent = await d.bot.send_message(chat, text, **extra)
    except Forbidden:
        await service.refused(message, chat, blocked=True)
        raise
    except BadRequest:
        await service.refused(message, chat, blocked=False)
        raise
    return result_of(sent)


@sends(ADVISORY_DRAFT)
async def _advisory_draft(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    """Offers an admin a draft made from a CAP alert (gone once taken, sent or discarded)."""
    service, views = d.advisory_parts()
    payload = delivery.message.payload
    admin = int(str(payload["admin_id"]))
    delivery.chat_id = admin
    advisory = await service.get(int(str(payload["advisory_id"])))
    if advisory is None or advisory.status is not AdvisoryStatus.DRAFT or advisory.target is None:
        return None
    offer = views.draft_offer(advisory, await service.audience(advisory.target))
    sent = await d.bot.send_message(
        admin, offer.text, reply_markup=offer.markup, **d.limits(delivery)
    )
    return result_of(sent)


@sends(ADVISORY_PROGRESS)
async def _advisory_progress(d: TelegramDeliverer, delivery: Delivery) -> DeliveryResult | None:
    """The admin's progress message (posted, then edited) or the final report."""
    service, views = d.advisory_parts()
    payload = delivery.message.payload
    found = await service.progress(int(str(payload["advisory_id"])))
    if found is None or found[0].progress_chat_id is None:
        return None
    advisory, progress = found
    chat = advisory.progress_chat_id or 0
    delivery.chat_id = chat
    final = bool(payload.get("final"))
    text = views.progress(advisory, progress, final=final)
    limits = d.limits(delivery)
    if final or advisory.progress_message_id is None:
        return result_of(await d.bot.send_message(chat, text, **limits))
    try:
        await d.bot.edit_message_text(
            text, chat_id=chat, message_id=advisory.progress_message_id, **limits
        )
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():
            raise
    return DeliveryResult(chat_id=chat, message_id=advisory.progress_message_id)


def result_of(message: Message) -> DeliveryResult:
    """What the deliverer reports of a sent message: its chat, id and topic."""
    return DeliveryResult(
        chat_id=message.chat_id, message_id=message.message_id,
        thread_id=message.message_thread_id,
    )  # fmt: skip
