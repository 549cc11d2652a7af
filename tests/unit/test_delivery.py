"""The Telegram deliverer: one send function per kind, governor arguments, fault classes by
audience, repeat marks, the operators' chat followed through its alias, results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telegram import Chat, Message, MessageId
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from bot.config import load_settings
from bot.domain.model import OutboxMessage
from bot.services.chats import ChatDirectory
from bot.services.intake import IntakePolicy, IntakeService
from bot.services.outbox_kinds import (
    ADMIN_ALERT,
    CITIZEN_NOTICE,
    KINDS,
    OPERATOR_CARD,
    OPERATOR_PIN,
    OPERATOR_RELAY,
    OPERATOR_TOPIC_STATE,
    Audience,
    Lane,
    Priority,
    Transport,
    register,
)
from bot.services.ports import DeliveryError, DeliveryResult, Fault
from bot.services.queries import TicketQueries
from handlers.delivery import SENDERS, TelegramDeliverer, missing_senders
from handlers.views import Views
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.integration import builders as b

OPERATORS = -1001234567890
CITIZEN_CHAT = 7_000_000_001
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


class Clock:
    def now(self) -> datetime:
        return NOW


class FakeBot:
    """Records Bot API calls; raises ``error`` once when set; answers like Telegram."""

    def __init__(self) -> None:
        self.rate_limiter: object | None = None
        self.calls: list[tuple[str, int, dict[str, Any]]] = []
        self.error: TelegramError | None = None
        self._ids = 100

    def _answer(self, method: str, chat_id: int, **kwargs: Any) -> Message:
        self.calls.append((method, chat_id, kwargs))
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        self._ids += 1
        chat = Chat(chat_id, "private" if chat_id > 0 else "supergroup")
        return Message(self._ids, NOW, chat, message_thread_id=42 if chat_id < 0 else None)

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> Message:
        return self._answer("sendMessage", chat_id, text=text, **kwargs)

    async def send_placed(
        self, chat_id: int, text: str, reply_markup: Any = None, **kwargs: Any
    ) -> tuple[int, int, int | None]:
        """SiagaBot's: a sendMessage answered with the chat, id and topic only."""
        sent = self._answer("sendMessage", chat_id, text=text, reply_markup=reply_markup, **kwargs)
        return sent.chat_id, sent.message_id, sent.message_thread_id

    async def send_location(self, chat_id: int, **kwargs: Any) -> Message:
        return self._answer("sendLocation", chat_id, **kwargs)

    async def copy_message(self, chat_id: int, from_chat_id: int, message_id: int,
                           **kwargs: Any) -> MessageId:  # fmt: skip
        sent = self._answer("copyMessage", chat_id, from_chat_id=from_chat_id, **kwargs)
        return MessageId(sent.message_id)

    async def _topic(self, method: str, chat_id: int, **kwargs: Any) -> bool:
        self._answer(method, chat_id, **kwargs)
        return True

    async def close_forum_topic(self, chat_id: int, message_thread_id: int, **kw: Any) -> bool:
        return await self._topic("closeForumTopic", chat_id, thread=message_thread_id, **kw)

    async def reopen_forum_topic(self, chat_id: int, message_thread_id: int, **kw: Any) -> bool:
        return await self._topic("reopenForumTopic", chat_id, thread=message_thread_id, **kw)

    async def edit_forum_topic(self, chat_id: int, message_thread_id: int, **kw: Any) -> bool:
        return await self._topic("editForumTopic", chat_id, thread=message_thread_id, **kw)

    def texts(self) -> list[str]:
        return [str(kwargs["text"]) for method, _, kwargs in self.calls if "text" in kwargs]


class Setup:
    def __init__(self, operator_chat: int | None = OPERATORS) -> None:
        self.uow_factory = InMemoryUnitOfWorkFactory(clock=Clock())
        self.bot = FakeBot()
        settings = load_settings({"DEFAULT_LANGUAGE": "id"}, env_file=None)
        self.intake = IntakeService(self.uow_factory, None, Clock(), IntakePolicy())  # type: ignore[arg-type]
        self.chats = ChatDirectory(self.uow_factory, Clock())
        self.deliverer = TelegramDeliverer(
            self.bot,  # type: ignore[arg-type]
            TicketQueries(self.uow_factory),
            self.intake,
            Views(settings),
            operator_chat,
            chats=self.chats,
        )
        self.ticket_id = 0

    async def ticket(self) -> int:
        async with self.uow_factory() as uow:
            citizen = await uow.citizens.add(b.citizen(CITIZEN_CHAT, blocked_bot=False))
            ticket = await uow.tickets.add(
                b.ticket(citizen.id or 0, chat_id=CITIZEN_CHAT, persons_affected="2-5")
            )
            await uow.commit()
        self.ticket_id = ticket.id or 0
        return self.ticket_id

    async def deliver(self, kind: str, **changes: Any) -> DeliveryResult | None:
        payload = changes.pop("payload", {"ticket_id": self.ticket_id or None})
        message = OutboxMessage(
            kind=kind, payload=payload, created_at=NOW, next_attempt_at=NOW,
            ticket_id=self.ticket_id or None, id=1, **changes,
        )  # fmt: skip
        return await self.deliverer.deliver(message)


@pytest.fixture
async def setup() -> Setup:
    ready = Setup()
    await ready.ticket()
    return ready


def test_every_registered_kind_has_a_send_function_when_the_registry_is_loaded() -> None:
    assert KINDS  # the registry is really loaded
    assert missing_senders() == set()
    telegram = {name for name, kind in KINDS.items() if kind.transport is Transport.TELEGRAM}
    assert set(SENDERS) == telegram  # webhook kinds go to the webhook client instead


def test_a_kind_without_send_function_is_reported_when_registered() -> None:
    kind = register(
        "test_unsendable", lane=Lane.BROADCAST, audience=Audience.CITIZEN,
        priority=Priority.BROADCAST, must_deliver=False,
    )  # fmt: skip
    try:
        assert missing_senders() == {kind}
    finally:
        del KINDS[kind]


async def test_governor_gets_the_kinds_priority_and_the_rows_rank_when_a_limiter_is_set(
    setup: Setup,
) -> None:
    setup.bot.rate_limiter = object()
    await setup.deliver(OPERATOR_PIN, rank=1)
    assert {call[2]["rate_limit_args"]["priority"] for call in setup.bot.calls} == {3}
    assert {call[2]["rate_limit_args"]["rank"] for call in setup.bot.calls} == {1}
    setup.bot.calls.clear()
    await setup.deliver(CITIZEN_NOTICE, rank=2)
    assert setup.bot.calls[0][2]["rate_limit_args"] == {"priority": 1, "rank": 2}


async def test_no_governor_arguments_are_passed_when_no_rate_limiter_is_set(
    setup: Setup,
) -> None:
    await setup.deliver(OPERATOR_CARD)
    await setup.deliver(OPERATOR_PIN)
    assert setup.bot.calls
    assert all("rate_limit_args" not in kwargs for _, _, kwargs in setup.bot.calls)


async def test_result_names_the_chat_message_and_topic_when_a_card_is_sent(
    setup: Setup,
) -> None:
    result = await setup.deliver(OPERATOR_CARD)
    assert result == DeliveryResult(chat_id=OPERATORS, message_id=101, thread_id=42)


async def test_result_keeps_the_copys_id_when_a_citizens_photo_is_relayed(setup: Setup) -> None:
    payload = {"ticket_id": setup.ticket_id, "kind": "photo", "from_chat_id": CITIZEN_CHAT,
               "message_id": 9, "text": "look"}  # fmt: skip
    result = await setup.deliver(OPERATOR_RELAY, payload=payload)
    assert result == DeliveryResult(chat_id=OPERATORS, message_id=101)


@pytest.mark.parametrize(
    ("action", "method"),
    [("close", "closeForumTopic"), ("reopen", "reopenForumTopic"), ("rename", "editForumTopic")],
)
async def test_topic_state_calls_telegram_in_the_tickets_topic_when_it_has_one(
    setup: Setup, action: str, method: str
) -> None:
    payload = {"ticket_id": setup.ticket_id, "topic": action}
    result = await setup.deliver(OPERATOR_TOPIC_STATE, payload=payload)
    assert result == DeliveryResult(chat_id=-1_001_234_567_890, thread_id=77)
    [(called, chat, kwargs)] = setup.bot.calls
    assert (called, chat, kwargs["thread"]) == (method, -1_001_234_567_890, 77)
    if action == "rename":
        assert kwargs["name"] == "🌊 SMG-260527-0042 · Semarang Tengah"  # the builder's flood


async def test_topic_state_is_done_when_telegram_says_it_is_so_already(setup: Setup) -> None:
    setup.bot.error = BadRequest("Topic_not_modified")
    payload = {"ticket_id": setup.ticket_id, "topic": "close"}
    result = await setup.deliver(OPERATOR_TOPIC_STATE, payload=payload)
    assert result is not None
    assert result.thread_id == 77  # logged, not retried: the topic is closed already


async def test_topic_state_is_rejected_when_the_action_is_unknown(setup: Setup) -> None:
    payload = {"ticket_id": setup.ticket_id, "topic": "explode"}
    with pytest.raises(DeliveryError) as raised:
        await setup.deliver(OPERATOR_TOPIC_STATE, payload=payload)
    assert raised.value.fault is Fault.REJECTED
    assert setup.bot.calls == []


@pytest.mark.parametrize(
    ("kind", "error", "fault"),
    [
        (OPERATOR_CARD, Forbidden("Forbidden: bot is not a member of the supergroup chat"),
         Fault.DESTINATION),
        (OPERATOR_CARD, BadRequest("Chat not found"), Fault.DESTINATION),
        (OPERATOR_CARD, BadRequest("Not enough rights to send text messages to the chat"),
         Fault.DESTINATION),
        (OPERATOR_CARD, BadRequest("Can't parse entities: unclosed tag"), Fault.REJECTED),
        (CITIZEN_NOTICE, Forbidden("Forbidden: bot was blocked by the user"),
         Fault.RECIPIENT_GONE),
        (CITIZEN_NOTICE, BadRequest("Message is too long"), Fault.REJECTED),
        (ADMIN_ALERT, BadRequest("Chat not found"), Fault.RECIPIENT_GONE),
        (ADMIN_ALERT, Forbidden("Forbidden: bot can't initiate conversation with a user"),
         Fault.RECIPIENT_GONE),
        (OPERATOR_CARD, RetryAfter(12), Fault.RATE_LIMITED),
        (OPERATOR_CARD, NetworkError("Bad Gateway"), Fault.TRANSIENT),
        (OPERATOR_CARD, TimedOut(), Fault.TRANSIENT),
    ],
)  # fmt: skip
async def test_fault_depends_on_who_the_row_is_for_when_telegram_refuses(
    setup: Setup, kind: str, error: TelegramError, fault: Fault
) -> None:
    setup.bot.error = error
    payload = {"admin_id": 11, "event": "destination_down", "audience": "operators",
               "chat_id": OPERATORS, "reason": "x"} if kind == ADMIN_ALERT else None  # fmt: skip
    changes: dict[str, Any] = {"payload": payload} if payload else {}
    with pytest.raises(DeliveryError) as caught:
        await setup.deliver(kind, **changes)
    assert caught.value.fault is fault
    assert caught.value.chat_id == setup.bot.calls[-1][1]
    if fault is Fault.RATE_LIMITED:
        assert caught.value.retry_after == 12
    if fault is Fault.DESTINATION:
        assert error.message in caught.value.reason  # Telegram's words reach the logs


async def test_citizen_is_marked_blocked_when_they_blocked_the_bot(setup: Setup) -> None:
    setup.bot.error = Forbidden("Forbidden: bot was blocked by the user")
    with pytest.raises(DeliveryError):
        await setup.deliver(CITIZEN_NOTICE)
    async with setup.uow_factory() as uow:
        citizen = await uow.citizens.get_by_telegram_id(CITIZEN_CHAT)
    assert citizen is not None
    assert citizen.blocked_bot


async def test_migration_names_the_new_chat_when_the_group_became_a_supergroup(
    setup: Setup,
) -> None:
    setup.bot.error = ChatMigrated(-1009999)
    with pytest.raises(DeliveryError) as caught:
        await setup.deliver(OPERATOR_CARD)
    assert (caught.value.migrated_to, caught.value.chat_id) == (-1009999, OPERATORS)


async def test_operators_chat_is_followed_when_its_migration_was_stored(setup: Setup) -> None:
    await setup.chats.moved(OPERATORS, -1009999)
    result = await setup.deliver(OPERATOR_CARD)
    assert result is not None
    assert result.chat_id == -1009999
    assert setup.bot.calls[-1][1] == -1009999


async def test_missing_operators_chat_is_a_destination_fault_when_not_configured() -> None:
    setup = Setup(operator_chat=None)
    await setup.ticket()
    with pytest.raises(DeliveryError) as caught:
        await setup.deliver(OPERATOR_CARD)
    assert caught.value.fault is Fault.DESTINATION
    assert "OPERATOR_CHAT_ID" in caught.value.reason


async def test_repeated_card_and_pin_are_marked_when_they_may_be_duplicates(
    setup: Setup,
) -> None:
    await setup.deliver(OPERATOR_CARD, repeat=True)
    await setup.deliver(OPERATOR_PIN, repeat=True)
    card, pin_note = setup.bot.texts()
    mark = "⟳ <b>dikirim ulang setelah gangguan — mungkin duplikat</b>"
    assert card.startswith(mark)
    assert pin_note.startswith(mark)
    assert [method for method, _, _ in setup.bot.calls] == [
        "sendMessage", "sendMessage", "sendLocation",
    ]  # fmt: skip


async def test_first_sending_is_not_marked_when_no_worker_died(setup: Setup) -> None:
    await setup.deliver(OPERATOR_CARD)
    await setup.deliver(OPERATOR_PIN)
    assert not any("⟳" in text for text in setup.bot.texts())
    assert [method for method, _, _ in setup.bot.calls] == ["sendMessage", "sendLocation"]


async def test_admin_alert_names_chat_and_reason_without_a_ticket_when_delivered() -> None:
    setup = Setup()  # no ticket at all
    payload = {"admin_id": 11, "event": "destination_down", "audience": "operators",
               "chat_id": OPERATORS, "reason": "Forbidden: bot is not a member"}  # fmt: skip
    result = await setup.deliver(ADMIN_ALERT, payload=payload)
    assert result is not None
    assert result.chat_id == 11
    (text,) = setup.bot.texts()
    assert str(OPERATORS) in text
    assert "bot is not a member" in text
    assert "tidak menerima pesan" in text  # the admins' (default) language
    recovered = dict(payload, event="destination_recovered")
    await setup.deliver(ADMIN_ALERT, payload=recovered)
    assert "kembali menerima pesan" in setup.bot.texts()[-1]


async def test_alert_delay_matches_the_destination_retry_cap_when_admins_read_it() -> None:
    from bot.services.outbox import DESTINATION_BACKOFF

    assert timedelta(seconds=30) == DESTINATION_BACKOFF  # the alert text promises 30 seconds
