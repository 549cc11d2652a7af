"""The agency card in an agency's Telegram group, through the real Application and the fake
Bot API: who may press, and what a press changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest_asyncio

from bot.config import Settings
from bot.domain.lifecycle import Staff
from bot.domain.model import Assignment, TicketStatus
from handlers.context import SERVICES_KEY
from storage.db import create_engine, session_factory
from storage.uow import SqlUnitOfWorkFactory
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.harness.fake_bot_api import FakeBotApi
from tests.integration import builders as b

DAMKAR_CHAT = -1005550001
BPBD_CHAT = -1005550002
BPBD_MEMBER = 7_300_000_001
OPERATOR = Staff(4_200_000_042, "Dewi")
AGENCIES = f"""
[[agency]]
code = "DAMKAR"
name = "Damkar Kota Semarang"
categories = ["FIRE"]
telegram_chat_id = {DAMKAR_CHAT}

[[agency]]
code = "BPBD"
name = "BPBD Kota Semarang"
categories = ["FIRE", "FLOOD"]
telegram_chat_id = {BPBD_CHAT}
members = [{BPBD_MEMBER}]

[[agency]]
code = "POLRESTABES"
name = "Polrestabes Semarang"
categories = ["CRIME"]
phone = "024-112"
"""


@pytest_asyncio.fixture
async def agency_harness(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[Harness]:
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    fake_bot_api.register_forum(DAMKAR_CHAT, "Damkar", is_forum=False)
    fake_bot_api.register_forum(BPBD_CHAT, "BPBD", is_forum=False)
    path = tmp_path / "agencies.toml"
    path.write_text(AGENCIES)
    settings = make_settings(
        fake_bot_api, AGENCIES_FILE=str(path), OPERATOR_USER_IDS=str(OPERATOR.telegram_id)
    )
    h = Harness(fake_bot_api, settings, FakeClock())
    await h.start()
    try:
        yield h
    finally:
        if h.application is not None:
            await h.stop()


async def _dispatched(h: Harness, *codes: str) -> tuple[int, str]:
    """A submitted fire ticket in the bot's database, dispatched by the operator."""
    engine = create_engine(h.settings.database_url)
    try:
        async with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
            citizen = await uow.citizens.add(b.citizen(7_200_000_001))
            ticket = await uow.tickets.add(
                b.ticket(
                    citizen.id or 0, status=TicketStatus.SUBMITTED, claimed_by=None,
                    claimed_at=None, claimed_by_name=None, dispatched_at=None,
                    acknowledged_at=None, en_route_at=None, on_scene_at=None, resolved_at=None,
                    closed_at=None, disposition=None, chat_id=7_200_000_001,
                )
            )  # fmt: skip
            await uow.commit()
    finally:
        await engine.dispose()
    services = h.app.bot_data[SERVICES_KEY]
    result = await services.console.dispatch(OPERATOR, ticket.id or 0, list(codes))
    assert result.ok, result
    services.outbox.wake()
    return ticket.id or 0, ticket.ref or ""


async def _assignment(h: Harness, ticket_id: int, code: str) -> Assignment:
    detail = await h.app.bot_data[SERVICES_KEY].queries.detail(ticket_id)
    return next(a for a in detail.assignments if a.agency_code == code)


async def test_agency_card_buttons_record_progress_when_pressed_in_the_agencys_chat(
    agency_harness: Harness,
) -> None:
    h, telegram = agency_harness, agency_harness.telegram
    ticket_id, ref = await _dispatched(h, "DAMKAR", "POLRESTABES")
    card = await telegram.wait_for_message(DAMKAR_CHAT, lambda m: ref in (m.text or ""))
    assert "✅ Terima" in card.button_texts
    ticket = (await h.app.bot_data[SERVICES_KEY].queries.detail(ticket_id)).ticket
    assert ticket.silent  # the caller cannot speak safely: no number, chat only
    assert (ticket.caller_phone_e164 or "-") not in (card.text or "")
    assert "hanya lewat chat, melalui 112" in (card.text or "")
    crew = telegram.add_user(7_400_000_001, "Agus")

    def shown() -> list[str]:
        current = telegram.model.message(DAMKAR_CHAT, card.message_id)
        return current.button_texts if current else []

    await crew.press(f"a|ack|{ticket_id}|DAMKAR", on=card)
    await telegram.wait_for(lambda: "✅ Terima" not in shown())
    assignment = await _assignment(h, ticket_id, "DAMKAR")
    assert assignment.acknowledged_at is not None
    assert assignment.card_message_id == card.message_id
    await crew.press(f"a|eta|{ticket_id}|DAMKAR", on=card.message_id, chat_id=DAMKAR_CHAT)
    await telegram.wait_for(lambda: "10 menit" in shown())
    await crew.press("10 menit", on=card.message_id, chat_id=DAMKAR_CHAT)
    await telegram.wait_for_call(
        "answerCallbackQuery", lambda c: "berangkat" in str(c.params.get("text", "")).lower()
        or "perjalanan" in str(c.params.get("text", "")).lower()
    )  # fmt: skip
    assignment = await _assignment(h, ticket_id, "DAMKAR")
    assert assignment.eta_minutes == 10
    detail = await h.app.bot_data[SERVICES_KEY].queries.detail(ticket_id)
    assert detail.ticket.status is TicketStatus.EN_ROUTE
    phone = await _assignment(h, ticket_id, "POLRESTABES")
    assert phone.channel.value == "phone"


async def test_presses_from_a_non_member_or_another_chat_are_refused_when_they_come(
    agency_harness: Harness,
) -> None:
    h, telegram = agency_harness, agency_harness.telegram
    ticket_id, ref = await _dispatched(h, "DAMKAR", "BPBD")
    bpbd_card = await telegram.wait_for_message(BPBD_CHAT, lambda m: ref in (m.text or ""))
    await telegram.wait_for_message(DAMKAR_CHAT, lambda m: ref in (m.text or ""))
    stranger = telegram.add_user(7_400_000_002, "Tono")
    mark = telegram.mark()
    await stranger.press(f"a|ack|{ticket_id}|BPBD", on=bpbd_card)  # not a BPBD member
    refused = await telegram.wait_for_call("answerCallbackQuery", since=mark)
    assert refused.params.get("show_alert") in (True, "true", "True")
    # A DAMKAR button pressed under a message in BPBD's chat (the data forged) counts neither.
    member = telegram.add_user(BPBD_MEMBER, "Sari")
    mark = telegram.mark()
    await telegram.deliver(
        telegram.updates.callback_query(member.user, bpbd_card.raw, f"a|ack|{ticket_id}|DAMKAR")
    )
    await telegram.wait_for_call("answerCallbackQuery", since=mark)
    assert (await _assignment(h, ticket_id, "BPBD")).acknowledged_at is None
    assert (await _assignment(h, ticket_id, "DAMKAR")).acknowledged_at is None
    await member.press(f"a|ack|{ticket_id}|BPBD", on=bpbd_card)
    await telegram.wait_for(lambda: len(telegram.calls_to("editMessageText")) > 0)
    assert (await _assignment(h, ticket_id, "BPBD")).acknowledged_at is not None
