"""The agency card in an agency's Telegram group, through the real Application and the fake
Bot API: who may press, and what a press changes."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest_asyncio

from bot.config import Settings
from bot.domain.lifecycle import Staff
from bot.domain.model import Assignment, TicketStatus
from bot.double.fake_bot_api import FakeBotApi
from handlers.context import SERVICES_KEY
from storage.db import create_engine, session_factory
from storage.uow import SqlUnitOfWorkFactory
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness, free_port
from tests.flow.steps import full_gps_report
from tests.integration import builders as b
from tests.webhook_receiver import WebhookReceiver

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
                    persons_affected=None, operator_chat_id=None, operator_thread_id=None,
                    operator_card_message_id=None,
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
    mark = telegram.mark()
    await crew.press("10 menit", on=card.message_id, chat_id=DAMKAR_CHAT)
    answer = await telegram.wait_for_call("answerCallbackQuery", since=mark)
    assert str(answer.params.get("text", "")).startswith("Tercatat")
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


# -- the whole handoff: the operator's picker, the agency's card and webhook, a status back -----

DINKES_CHAT = -1005550003
DEWI_ID = 810_000_002


@pytest_asyncio.fixture
async def handoff(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[tuple[Harness, WebhookReceiver, int]]:
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    fake_bot_api.register_forum(DINKES_CHAT, "Ambulans Hebat", is_forum=False)
    port = free_port()
    async with WebhookReceiver("dinkes-secret") as receiver:
        path = tmp_path / "agencies.toml"
        path.write_text(
            "[[agency]]\ncode = 'DINKES'\nname = 'Ambulans Hebat'\ncategories = ['MED']\n"
            f"telegram_chat_id = {DINKES_CHAT}\nwebhook_url = '{receiver.url}'\n"
            "webhook_secret_env = 'DINKES_SECRET'\n\n"
            "[[agency]]\ncode = 'DAMKAR'\nname = 'Damkar'\ncategories = ['FIRE']\n"
        )
        settings = make_settings(
            fake_bot_api, AGENCIES_FILE=str(path), OPERATOR_USER_IDS=str(DEWI_ID),
            DINKES_SECRET="dinkes-secret", AGENCY_API_LISTEN=f"127.0.0.1:{port}",
        )  # fmt: skip
        h = Harness(fake_bot_api, settings, FakeClock())
        await h.start()
        try:
            yield h, receiver, port
        finally:
            if h.application is not None:
                await h.stop()
    assert not h.errors, f"handler errors: {h.errors!r}"


async def _signed_status(port: int, clock: FakeClock, body: dict[str, object]) -> int:
    raw = json.dumps(body).encode()
    stamp = str(int(clock.now().timestamp()))
    mac = hmac.new(b"dinkes-secret", stamp.encode() + b"." + raw, hashlib.sha256)
    headers = {
        "X-Siaga112-Agency": "DINKES", "X-Siaga112-Timestamp": stamp,
        "X-Siaga112-Signature": "sha256=" + mac.hexdigest(), "Idempotency-Key": "upd-1",
    }  # fmt: skip
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"http://127.0.0.1:{port}/v1/status", data=raw, headers=headers) as got,
    ):
        return got.status


async def test_dispatch_from_the_picker_reaches_chat_and_webhook_and_a_status_the_citizen(
    handoff: tuple[Harness, WebhookReceiver, int],
) -> None:
    h, receiver, port = handoff
    telegram = h.telegram
    dewi = telegram.add_user(DEWI_ID, "Dewi")
    citizen = telegram.add_user(first_name="Siti")
    ref = await full_gps_report(citizen)  # a medical emergency
    card = await telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and bool(m.inline_buttons)
    )
    dispatch = next(str(b["callback_data"]) for b in card.inline_buttons
                    if str(b.get("callback_data", "")).startswith("o|dispatch|"))  # fmt: skip
    await dewi.press(dispatch, on=card)

    def buttons() -> list[str]:
        current = telegram.model.message(OPERATOR_CHAT, card.message_id)
        return current.button_texts if current else []

    await telegram.wait_for(lambda: "🚨 Kerahkan" in buttons())
    assert "✅ ⭐ Ambulans Hebat" in buttons()  # routing's suggestion, already chosen
    assert "▫️ Damkar" in buttons()
    await dewi.press("🚨 Kerahkan", on=card.message_id, chat_id=OPERATOR_CHAT)
    await citizen.wait_reply(lambda m: "Bantuan telah diminta" in (m.text or ""))
    agency_card = await telegram.wait_for_message(DINKES_CHAT, lambda m: ref in (m.text or ""))
    assert "✅ Terima" in agency_card.button_texts
    await telegram.wait_for(lambda: len(receiver.accepted) == 1)
    [document] = receiver.accepted.values()
    assert document["incident"]["reference"] == ref
    assert all(r.signature_ok for r in receiver.requests)

    assert await _signed_status(port, h.clock, {"reference": ref, "status": "en_route",
                                                "etaMinutes": 7}) == 200  # fmt: skip
    notice = await citizen.wait_reply(lambda m: "sekitar 7 menit" in (m.text or ""))
    assert ref in (notice.text or "")
    assert "112" in (notice.text or "")
    await telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: "Ambulans Hebat dalam perjalanan" in (m.text or "")
    )
    await telegram.wait_for(lambda: "🚑 berangkat" in (
        (telegram.model.message(DINKES_CHAT, agency_card.message_id) or agency_card).text or ""
    ))  # fmt: skip
