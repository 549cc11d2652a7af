"""The relay both ways: logging, flood limit, the rule after the close, notes, non-members."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.model import Direction, Disposition, TicketStatus
from bot.services.citizens import Actor, Notice
from bot.services.console import ConsolePolicy, ConsoleService
from bot.services.outbox_kinds import (
    CITIZEN_RELAY,
    OPERATOR_CARD_EDIT,
    OPERATOR_NOTICE,
    OPERATOR_RELAY,
    OPERATOR_TOPIC_STATE,
    QUEUE_BOARD,
)
from bot.services.relay import OperatorPost, PostStatus, RelayPolicy, RelayService
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import (
    BUDI,
    DEWI,
    OPERATORS_CHAT,
    STRANGER,
    Clock,
    Geocoder,
    add_staff,
    add_ticket,
    deliver_all,
    kinds,
    rows,
    ticket_of,
)

S = TicketStatus
CITIZEN = Actor(telegram_id=5001, chat_id=5001, language_code="id")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def uow_factory() -> InMemoryUnitOfWorkFactory:
    factory = InMemoryUnitOfWorkFactory()
    await add_staff(factory, DEWI, BUDI)
    return factory


@pytest.fixture
def relay(uow_factory: InMemoryUnitOfWorkFactory, clock: Clock) -> RelayService:
    policy = RelayPolicy(flood_limit_per_minute=3, operator_chat_id=OPERATORS_CHAT)
    return RelayService(uow_factory, clock, policy)


@pytest.fixture
def console(uow_factory: InMemoryUnitOfWorkFactory, clock: Clock) -> ConsoleService:
    return ConsoleService(uow_factory, Geocoder(), clock, ConsolePolicy({}, OPERATORS_CHAT))


def post(
    ticket_thread: int | None, text: str | None = "Tim sedang menuju", **changes: object
) -> OperatorPost:
    values: dict[str, object] = {
        "telegram_id": DEWI.telegram_id, "chat_id": OPERATORS_CHAT, "message_id": 900,
        "kind": "text", "text": text, "thread_id": ticket_thread, **changes,
    }  # fmt: skip
    return OperatorPost(**values)  # type: ignore[arg-type]


async def logged(
    uow_factory: InMemoryUnitOfWorkFactory, ticket_id: int
) -> list[tuple[Direction, str | None]]:
    async with uow_factory() as uow:
        return [(m.direction, m.text) for m in await uow.messages.for_ticket(ticket_id)]


# --- citizen -> operators -------------------------------------------------------------------


async def test_citizen_message_is_logged_and_queued_for_the_topic_when_a_ticket_is_open(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory)
    outcome = await relay.from_citizen(CITIZEN, "text", 31, "asapnya makin tebal", None)
    assert outcome.notices == [Notice.RELAYED]
    assert outcome.ticket is not None
    assert outcome.ticket.id == ticket.id
    assert await logged(uow_factory, ticket.id or 0) == [
        (Direction.FROM_CITIZEN, "asapnya makin tebal")
    ]
    [row] = rows(uow_factory)
    assert (row.kind, row.ticket_id) == (OPERATOR_RELAY, ticket.id)
    assert row.payload == {
        "ticket_id": ticket.id, "from_chat_id": 5001, "message_id": 31, "kind": "text",
        "text": "asapnya makin tebal",
    }  # fmt: skip


async def test_citizen_is_asked_to_slow_down_when_over_the_flood_limit(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    await add_ticket(uow_factory)
    for n in range(3):
        assert (await relay.from_citizen(CITIZEN, "text", n, f"m{n}", None)).notices == [
            Notice.RELAYED
        ]
    assert (await relay.from_citizen(CITIZEN, "text", 9, "m3", None)).notices == [Notice.FLOODING]
    clock.advance(seconds=61)
    assert (await relay.from_citizen(CITIZEN, "text", 10, "m4", None)).notices == [Notice.RELAYED]
    assert len(rows(uow_factory, OPERATOR_RELAY)) == 4


async def test_citizen_without_any_ticket_gets_no_report_when_writing(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    outcome = await relay.from_citizen(CITIZEN, "text", 1, "halo", None)
    assert outcome.notices == [Notice.NO_REPORT]
    assert outcome.citizen.telegram_id == CITIZEN.telegram_id  # registered on the way
    assert not rows(uow_factory)


@pytest.mark.parametrize("minutes", [0, 29.9, 30])
async def test_message_reopens_the_ticket_and_tells_operators_when_written_within_30_minutes(
    relay: RelayService,
    console: ConsoleService,
    uow_factory: InMemoryUnitOfWorkFactory,
    clock: Clock,
    minutes: float,
) -> None:
    ticket = await add_ticket(uow_factory)
    await console.claim(DEWI, ticket.id or 0)
    await console.resolve(DEWI, ticket.id or 0, Disposition.EMERGENCY)
    await deliver_all(uow_factory)
    before = len(rows(uow_factory))
    clock.advance(minutes=minutes)
    outcome = await relay.from_citizen(CITIZEN, "text", 44, "apinya menyala lagi!", None)
    assert outcome.notices == [Notice.REOPENED]
    stored = await ticket_of(uow_factory, ticket.id or 0)
    assert stored.status is S.SUBMITTED  # back in the queue, for whoever is free
    assert (stored.claimed_by, stored.closed_at, stored.disposition) == (None, None, None)
    assert (stored.queued_at, stored.reopened_count) == (clock.now(), 1)
    assert kinds(uow_factory)[before:] == [
        OPERATOR_TOPIC_STATE,  # the topic is reopened before the notice goes into it
        OPERATOR_NOTICE,
        OPERATOR_CARD_EDIT,
        OPERATOR_RELAY,
        QUEUE_BOARD,
    ]
    topic = rows(uow_factory, OPERATOR_TOPIC_STATE)[-1]
    assert topic.payload == {"ticket_id": ticket.id, "topic": "reopen"}
    notice = rows(uow_factory, OPERATOR_NOTICE)[-1]
    assert notice.payload == {"ticket_id": ticket.id, "notice": "reopened"}
    [event] = [e for e in uow_factory.store.events.values() if e.kind == "reopened_by_citizen"]
    assert (event.actor, event.from_status, event.to_status) == ("citizen", S.RESOLVED, S.SUBMITTED)
    assert (Direction.FROM_CITIZEN, "apinya menyala lagi!") in await logged(
        uow_factory, ticket.id or 0
    )


async def test_message_is_kept_on_the_old_ticket_and_a_new_report_offered_when_written_later(
    relay: RelayService,
    console: ConsoleService,
    uow_factory: InMemoryUnitOfWorkFactory,
    clock: Clock,
) -> None:
    ticket = await add_ticket(uow_factory)
    await console.resolve(DEWI, ticket.id or 0, Disposition.INFO)
    before = len(rows(uow_factory))
    clock.advance(minutes=30, seconds=1)
    outcome = await relay.from_citizen(CITIZEN, "photo", 45, "terima kasih", "AgAD")
    assert outcome.notices == [Notice.CLOSED_NEW_REPORT]
    assert outcome.ticket is not None
    assert outcome.ticket.id == ticket.id
    assert (await ticket_of(uow_factory, ticket.id or 0)).status is S.RESOLVED
    assert len(rows(uow_factory)) == before  # nothing goes to the operators
    assert await logged(uow_factory, ticket.id or 0) == [(Direction.FROM_CITIZEN, "terima kasih")]


async def test_cancelled_ticket_is_not_reopened_when_the_citizen_writes_soon_after(
    relay: RelayService, console: ConsoleService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory)
    await console.cancel(DEWI, ticket.id or 0)
    outcome = await relay.from_citizen(CITIZEN, "text", 46, "halo?", None)
    assert outcome.notices == [Notice.NO_REPORT]
    assert (await ticket_of(uow_factory, ticket.id or 0)).status is S.CANCELLED


async def test_reopen_window_zero_never_reopens_when_configured_off(
    uow_factory: InMemoryUnitOfWorkFactory, console: ConsoleService, clock: Clock
) -> None:
    relay = RelayService(uow_factory, clock, RelayPolicy(reopen_window=timedelta(0)))
    ticket = await add_ticket(uow_factory)
    await console.resolve(DEWI, ticket.id or 0, Disposition.INFO)
    clock.advance(seconds=1)
    assert (await relay.from_citizen(CITIZEN, "text", 1, "x", None)).notices == [
        Notice.CLOSED_NEW_REPORT
    ]


# --- operators -> citizen -------------------------------------------------------------------


async def test_member_post_in_the_topic_is_logged_and_relayed_under_the_role_when_sent(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory)
    result = await relay.from_operator(post(ticket.operator_thread_id))
    assert result.status is PostStatus.RELAYED
    assert result.ticket is not None
    assert result.ticket.last_operator_message_at == clock.now()
    [row] = rows(uow_factory)
    assert row.kind == CITIZEN_RELAY
    assert row.payload == {
        "ticket_id": ticket.id, "from_chat_id": OPERATORS_CHAT, "message_id": 900, "kind": "text",
        "text": "Tim sedang menuju", "edited": False,
    }  # fmt: skip
    assert "telegram_id" not in row.payload  # never the operator's own account
    assert await logged(uow_factory, ticket.id or 0) == [
        (Direction.TO_CITIZEN, "Tim sedang menuju")
    ]
    stored = await ticket_of(uow_factory, ticket.id or 0)
    assert stored.last_operator_message_at == clock.now()


async def test_reply_to_the_card_finds_the_ticket_when_the_chat_has_no_topics(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory, operator_thread_id=None)
    photo = post(
        None,
        "foto lokasi",
        kind="photo",
        file_id="AgAD",
        reply_to_message_id=ticket.operator_card_message_id,
    )
    result = await relay.from_operator(photo)
    assert result.status is PostStatus.RELAYED
    assert rows(uow_factory, CITIZEN_RELAY)[0].payload["kind"] == "photo"
    async with uow_factory() as uow:
        [message] = await uow.messages.for_ticket(ticket.id or 0)
    assert (message.file_id, message.telegram_chat_id, message.telegram_message_id) == (
        "AgAD",
        OPERATORS_CHAT,
        900,
    )


async def test_internal_note_is_on_the_timeline_and_not_relayed_when_it_starts_with_a_bang(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory, clock: Clock
) -> None:
    ticket = await add_ticket(uow_factory)
    result = await relay.from_operator(
        post(ticket.operator_thread_id, "!  pelapor terdengar panik")
    )
    assert result.status is PostStatus.NOTE
    assert not rows(uow_factory)
    assert await logged(uow_factory, ticket.id or 0) == []
    [event] = uow_factory.store.events.values()
    assert (event.kind, event.actor, event.note) == (
        "note",
        f"operator:{DEWI.telegram_id}",
        "pelapor terdengar panik",
    )
    assert (await ticket_of(uow_factory, ticket.id or 0)).last_operator_message_at == clock.now()


async def test_edited_operator_message_is_relayed_again_as_a_marked_copy_when_edited(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    ticket = await add_ticket(uow_factory)
    await relay.from_operator(post(ticket.operator_thread_id, "ETA 10 menit"))
    await relay.from_operator(post(ticket.operator_thread_id, "ETA 5 menit", edited=True))
    copies = rows(uow_factory, CITIZEN_RELAY)
    assert [(c.payload["text"], c.payload["edited"]) for c in copies] == [
        ("ETA 10 menit", False), ("ETA 5 menit", True),
    ]  # fmt: skip
    async with uow_factory() as uow:
        assert [m.edited for m in await uow.messages.for_ticket(ticket.id or 0)] == [False, True]


async def test_non_member_post_is_ignored_and_logged_when_someone_else_writes_in_the_topic(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    ticket = await add_ticket(uow_factory)
    caplog.set_level("INFO")
    result = await relay.from_operator(
        post(ticket.operator_thread_id, "halo", telegram_id=STRANGER.telegram_id)
    )
    assert result.status is PostStatus.IGNORED
    assert not rows(uow_factory)
    assert await logged(uow_factory, ticket.id or 0) == []
    [event] = uow_factory.store.events.values()
    assert event.kind == "ignored_post"
    assert "non-member" in caplog.text
    assert "halo" not in caplog.text
    assert (await ticket_of(uow_factory, ticket.id or 0)).last_operator_message_at is None


async def test_post_outside_any_ticket_is_not_for_a_citizen_when_in_general(
    relay: RelayService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    await add_ticket(uow_factory)
    assert (await relay.from_operator(post(None))).status is PostStatus.NO_TICKET
    assert (await relay.from_operator(post(999))).status is PostStatus.NO_TICKET
    assert (await relay.from_operator(post(101, chat_id=-5))).status is PostStatus.NO_TICKET
    assert not rows(uow_factory)
