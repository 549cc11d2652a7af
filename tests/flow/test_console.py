"""The operators' console end to end: the real Application against the fake Bot API.

A citizen reports; the operators' forum gets a topic and a card with buttons; operators
claim, dispatch, … resolve by the card's buttons and talk to the citizen in the topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from bot.config import Settings
from bot.domain.model import TicketStatus
from handlers.context import SERVICES_KEY
from handlers.operator_views import category_emoji
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness, shrunk_governor
from tests.flow.steps import full_gps_report
from tests.harness.botapi_model import StoredMessage
from tests.harness.fake_bot_api import FakeBotApi
from tests.harness.simulated import SimUser

ADMIN_ID = 810_000_001
DEWI_ID = 810_000_002
BUDI_ID = 810_000_003
STRANGER_ID = 810_000_004


@dataclass
class Console:
    """A running bot with a roster: an admin (Rina), two operators, and a stranger."""

    h: Harness
    rina: SimUser
    dewi: SimUser
    budi: SimUser
    stranger: SimUser

    @property
    def telegram(self) -> FakeBotApi:
        return self.h.telegram

    async def report(self, language: str = "id", first_name: str = "Siti") -> Ticketed:
        citizen = self.telegram.add_user(language_code=language, first_name=first_name)
        ref = await full_gps_report(citizen)
        card = await self.telegram.wait_for_message(
            OPERATOR_CHAT, lambda m: ref in (m.text or "") and bool(m.inline_buttons)
        )
        return Ticketed(citizen, ref, card, card.thread_id)

    async def press(self, who: SimUser, data: str, card: StoredMessage) -> str:
        """Presses a card button; returns the answer shown to the presser."""
        query = await who.press(data, on=card)
        answer: dict[str, Any] = await self.telegram.wait_for(
            lambda: self.telegram.model.callback_answers.get(str(query["id"]))
        )
        return str(answer.get("text") or "")

    async def ticket(self, ref: str) -> Any:
        uow = self.h.app.bot_data[SERVICES_KEY].intake._uow_factory()
        async with uow:
            return await uow.tickets.get_by_ref(ref)


@dataclass
class Ticketed:
    citizen: SimUser
    ref: str
    card: StoredMessage
    thread: int | None

    def button(self, action: str) -> str:
        for button in self.card.inline_buttons:
            data = str(button.get("callback_data", ""))
            if data.startswith(f"o|{action}|"):
                return data
        raise LookupError(f"no {action} button on {self.card.inline_buttons}")


MakeConsole = Callable[..., Awaitable[Console]]


@pytest_asyncio.fixture
async def make_console(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> AsyncIterator[MakeConsole]:
    started: list[Harness] = []

    async def make(*, forum: bool = True, **overrides: str) -> Console:
        fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112", is_forum=forum)
        settings = make_settings(
            fake_bot_api, OPERATOR_USER_IDS=f"{DEWI_ID},{BUDI_ID}", ADMIN_USER_IDS=str(ADMIN_ID),
            **overrides,
        )  # fmt: skip
        # The group window shrunk like the surge tests': the queue board's calls are spaced by
        # 1/8 of it (0.375 s here, 7.5 s with Telegram's minute), not by the test's patience.
        h = Harness(fake_bot_api, settings, FakeClock(), rate_limiter=shrunk_governor)
        await h.start()
        started.append(h)
        t = fake_bot_api
        return Console(
            h, t.add_user(ADMIN_ID, "Rina"), t.add_user(DEWI_ID, "Dewi"),
            t.add_user(BUDI_ID, "Budi"), t.add_user(STRANGER_ID, "Joko"),
        )  # fmt: skip

    yield make
    for h in started:
        if h.application is not None:
            await h.stop()
        assert not h.errors, f"handler errors: {h.errors!r}"


@pytest_asyncio.fixture
async def console(make_console: MakeConsole) -> Console:
    return await make_console()


def _has(text: str) -> Callable[[StoredMessage], bool]:
    return lambda m: text in (m.text or "")


# -- the topic and the card ---------------------------------------------------------------------


async def test_report_gets_topic_and_card_with_buttons_and_map_link_when_chat_is_forum(
    console: Console,
) -> None:
    t = await console.report()
    topics = console.telegram.topics(OPERATOR_CHAT)
    assert t.thread in topics
    assert topics[t.thread].startswith("🚑 " + t.ref)
    assert "Semarang" in topics[t.thread]
    text = t.card.text or ""
    assert "openstreetmap.org" in str(t.card.raw)
    assert "prioritas" in text
    assert t.button("claim")
    # The pin is merged into the card: no separate location message for a new ticket.
    await console.h.outbox_drained()
    assert not any("location" in m.raw for m in console.h.operator_messages())
    board = await console.telegram.wait_for_message(OPERATOR_CHAT, _has("Antrean"))
    assert board.thread_id is None
    assert t.ref in (board.text or "")
    assert console.telegram.model.chats[OPERATOR_CHAT].pinned == [board.message_id]
    # A second report: the same board is edited (never a second one), priority order kept.
    second = await console.report(first_name="Budi")
    await console.h.outbox_drained()
    await console.telegram.wait_for(lambda: second.ref in (board.text or ""))
    boards = [m for m in console.h.operator_messages() if "Antrean" in (m.text or "")]
    assert [m.message_id for m in boards] == [board.message_id]


# -- the whole path, with the citizen's notices -------------------------------------------------


@pytest.mark.parametrize(
    ("language", "words"),
    [("id", ("sedang menangani", "Bantuan telah diminta", "sekitar 10 menit", "telah tiba",
             "telah ditutup")),
     ("en", ("is now handling", "Help has been requested", "in about 10 minutes",
             "has arrived", "has been closed"))],
)  # fmt: skip
async def test_claim_dispatch_en_route_on_scene_resolve_tell_citizen_when_in_either_language(
    console: Console, language: str, words: tuple[str, ...]
) -> None:
    t = await console.report(language)
    citizen = t.citizen

    async def step(data: str, word: str) -> None:
        answer = await console.press(console.dewi, data, t.card)
        assert answer.startswith("✔️"), answer
        notice = await citizen.wait_reply(_has(word))
        assert t.ref in (notice.text or "")
        assert "112" in (notice.text or "")

    await step(t.button("claim"), words[0])
    await console.telegram.wait_for(lambda: "Dewi" in (t.card.text or ""))
    # Dispatch: the agency picker (multi-select), then «dispatched by phone».
    await console.press(console.dewi, t.button("dispatch"), t.card)
    await console.telegram.wait_for(lambda: any("dsel" in d for d in _datas(t.card)))
    first, second = [d for d in _datas(t.card) if "|dsel|" in d][:2]
    await console.press(console.dewi, first, t.card)
    await console.telegram.wait_for(lambda: any("|dgo|" in d for d in _datas(t.card)))
    second = [d for d in _datas(t.card) if "|dsel|" in d][1]
    await console.press(console.dewi, second, t.card)
    await console.telegram.wait_for(lambda: sum("✅" in b for b in t.card.button_texts) == 2)
    go = next(d for d in _datas(t.card) if "|dgo|" in d)
    await step(go, words[1])
    await console.telegram.wait_for(lambda: "Instansi" in (t.card.text or ""))
    await console.press(console.dewi, t.button("eta"), t.card)
    await console.telegram.wait_for(lambda: any("|enroute|" in d for d in _datas(t.card)))
    await step(next(d for d in _datas(t.card) if d.endswith("|10")), words[2])
    await console.telegram.wait_for(lambda: "menuju lokasi" in (t.card.text or ""))
    await step(t.button("onscene"), words[3])
    await console.telegram.wait_for(lambda: "di lokasi" in (t.card.text or ""))
    await console.press(console.dewi, t.button("resolve"), t.card)
    await console.telegram.wait_for(lambda: any("|resolved|" in d for d in _datas(t.card)))
    await step(next(d for d in _datas(t.card) if d.endswith("|emergency")), words[4])
    await console.telegram.wait_for(lambda: "selesai" in (t.card.text or ""))
    assert t.button("reopen")
    ticket = await console.ticket(t.ref)
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.eta_minutes == 10
    topic = console.telegram.model.chats[OPERATOR_CHAT].topics[t.thread or 0]
    await console.telegram.wait_for(lambda: topic.closed)  # resolved: its topic is closed
    await console.press(console.dewi, t.button("reopen"), t.card)
    await console.telegram.wait_for(lambda: not topic.closed)  # and open again on Reopen
    assert (await console.ticket(t.ref)).status is TicketStatus.CLAIMED


def _datas(message: StoredMessage) -> list[str]:
    return [str(b.get("callback_data", "")) for b in message.inline_buttons]


# -- who may press, and the race ----------------------------------------------------------------


async def test_non_roster_presser_is_told_not_allowed_when_pressing_claim(
    console: Console,
) -> None:
    t = await console.report()
    answer = await console.press(console.stranger, t.button("claim"), t.card)
    assert "Tidak diizinkan" in answer
    assert (await console.ticket(t.ref)).status is TicketStatus.SUBMITTED


async def test_only_one_operator_wins_when_two_press_claim_at_once(console: Console) -> None:
    t = await console.report()
    claim = t.button("claim")
    answers = await asyncio.gather(
        console.press(console.dewi, claim, t.card), console.press(console.budi, claim, t.card)
    )
    assert sum(a.startswith("✔️") for a in answers) == 1, answers
    loser = next(a for a in answers if not a.startswith("✔️"))
    ticket = await console.ticket(t.ref)
    assert ticket.claimed_by_name in loser
    assert ticket.claimed_by in (DEWI_ID, BUDI_ID)


# -- the relay both ways ------------------------------------------------------------------------


async def test_operator_posts_of_every_kind_reach_citizen_under_role_header_when_in_topic(
    console: Console,
) -> None:
    t = await console.report()
    dewi, citizen, telegram = console.dewi, t.citizen, console.telegram
    where = {"chat_id": OPERATOR_CHAT, "thread_id": t.thread}
    await dewi.send_text("Tetap tenang, <bantuan> segera datang", **where)
    reply = await citizen.wait_reply(_has("Operator 112"))
    assert "&lt;bantuan&gt;" in str(reply.raw.get("text")) or "<bantuan>" in (reply.text or "")
    assert "Dewi" not in (reply.text or "")
    assert "forward_origin" not in reply.raw
    sends: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("photo", lambda: dewi.send_photo("foto lokasi", **where)),
        ("voice", lambda: dewi.send_voice(**where)),
        ("sticker", lambda: dewi.send_sticker(**where)),
        ("location", lambda: dewi.share_location(-6.99, 110.42, **where)),
    ]
    for kind, send in sends:
        await send()
        await telegram.wait_for(lambda kind=kind: any(kind in m.raw for m in citizen.messages))
    photo = next(m for m in citizen.messages if "photo" in m.raw)
    assert "Operator 112" in (photo.text or "")
    assert "foto lokasi" in (photo.text or "")
    for kind in ("video", "document"):
        content = {kind: {"file_id": f"{kind}-x", "file_unique_id": f"{kind}-u"}}
        if kind == "video":
            content[kind].update(width=1, height=1, duration=1)
        update = telegram.updates.message_update(
            telegram.updates.message(
                dewi.user, content, chat=telegram.model.chats[OPERATOR_CHAT].raw,
                thread_id=t.thread,
            )
        )  # fmt: skip
        await telegram.deliver(update)
        await telegram.wait_for(lambda kind=kind: any(kind in m.raw for m in citizen.messages))


async def test_citizen_messages_go_into_the_topic_when_ticket_has_one(console: Console) -> None:
    t = await console.report()
    await t.citizen.send_text("Tolong cepat, dia sesak napas")
    relayed = await console.telegram.wait_for_message(
        OPERATOR_CHAT, _has("sesak napas"), after=t.card.message_id
    )
    assert relayed.thread_id == t.thread
    await t.citizen.send_photo("ini fotonya")
    photo = await console.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: "photo" in m.raw, after=relayed.message_id
    )
    assert photo.thread_id == t.thread


async def test_note_stays_internal_and_is_acknowledged_when_text_starts_with_bang(
    console: Console,
) -> None:
    t = await console.report()
    before = len(t.citizen.messages)
    await console.dewi.send_text("!warga sudah ditelepon balik", chat_id=OPERATOR_CHAT,
                                 thread_id=t.thread)  # fmt: skip
    noted = await console.dewi.wait_reply(_has("📝"))
    assert noted.thread_id == t.thread
    await console.h.outbox_drained()
    assert len(t.citizen.messages) == before


async def test_post_by_non_member_is_ignored_when_in_ticket_topic(console: Console) -> None:
    t = await console.report()
    before = len(t.citizen.messages)
    await console.stranger.send_text("halo warga", chat_id=OPERATOR_CHAT, thread_id=t.thread)
    await console.dewi.send_text("!cek", chat_id=OPERATOR_CHAT, thread_id=t.thread)
    await console.dewi.wait_reply(_has("📝"))  # handled after the stranger's post
    await console.h.outbox_drained()
    assert len(t.citizen.messages) == before


async def test_edited_operator_message_is_sent_again_marked_when_operator_edits(
    console: Console,
) -> None:
    t = await console.report()
    telegram = console.telegram
    sent = await console.dewi.send_text("ambulans 5 menit", chat_id=OPERATOR_CHAT,
                                        thread_id=t.thread)  # fmt: skip
    await t.citizen.wait_reply(_has("ambulans 5 menit"))
    edited = {**sent, "text": "ambulans 10 menit", "edit_date": sent["date"] + 1}
    await telegram.deliver(telegram.updates.message_update(edited, edited=True))
    copy = await t.citizen.wait_reply(_has("ambulans 10 menit"))
    assert "diralat" in (copy.text or "")


# -- commands -----------------------------------------------------------------------------------


async def test_timeline_and_queue_answer_in_the_topic_when_operator_asks(console: Console) -> None:
    t = await console.report()
    await console.press(console.dewi, t.button("claim"), t.card)
    await console.dewi.send_command("timeline", chat_id=OPERATOR_CHAT, thread_id=t.thread)
    timeline = await console.dewi.wait_reply(_has("Riwayat"))
    assert timeline.thread_id == t.thread
    assert "WIB" in (timeline.text or "")
    assert "Dewi" in (timeline.text or "")
    assert "laporan dikirim warga" in (timeline.text or "")
    await console.dewi.send_command("queue", chat_id=OPERATOR_CHAT)
    board = await console.dewi.wait_reply(_has("Antrean"))
    assert t.ref in (board.text or "")
    assert "diambil oleh Dewi" in (board.text or "")


async def test_admin_adds_and_removes_operator_when_replying_to_their_message(
    console: Console,
) -> None:
    joko = console.stranger
    said = await joko.send_text("saya operator baru", chat_id=OPERATOR_CHAT)
    telegram = console.telegram
    update = telegram.updates.command(
        console.rina.user, "operator", "add", mention_bot=True,
        chat=telegram.model.chats[OPERATOR_CHAT].raw, reply_to=said,
    )  # fmt: skip
    await console.rina._deliver_message(update)
    added = await console.rina.wait_reply(_has("Joko"))
    assert "daftar operator" in (added.text or "")
    await console.rina.send_command("operators", chat_id=OPERATOR_CHAT)
    listing = await console.rina.wait_reply(_has("Operator"))
    assert str(STRANGER_ID) in (listing.text or "")
    await console.dewi.send_command("operator", f"remove {STRANGER_ID}", chat_id=OPERATOR_CHAT)
    refused = await console.dewi.wait_reply(_has("admin"))
    assert "Hanya admin" in (refused.text or "")
    await console.rina.send_command("operator", f"remove {STRANGER_ID}", chat_id=OPERATOR_CHAT)
    removed = await console.rina.wait_reply(_has(str(STRANGER_ID)))
    assert "dihapus" in (removed.text or "")


# -- the rule after the close -------------------------------------------------------------------


async def _resolve(console: Console, t: Ticketed) -> None:
    await console.press(console.dewi, t.button("claim"), t.card)
    await console.telegram.wait_for(lambda: "Dewi" in (t.card.text or ""))
    await console.press(console.dewi, t.button("resolve"), t.card)
    await console.telegram.wait_for(lambda: any("|resolved|" in d for d in _datas(t.card)))
    await console.press(console.dewi, next(d for d in _datas(t.card) if d.endswith("|info")),
                        t.card)  # fmt: skip
    await t.citizen.wait_reply(_has("ditutup"))
    await console.h.outbox_drained()
    assert console.telegram.model.chats[OPERATOR_CHAT].topics[t.thread or 0].closed


async def test_citizen_writing_soon_after_close_reopens_ticket_and_topic_when_within_30_min(
    console: Console,
) -> None:
    t = await console.report()
    await _resolve(console, t)  # which closes its topic
    console.h.clock.advance(timedelta(minutes=20))
    await t.citizen.send_text("ternyata masih ada asap")
    notice = await console.telegram.wait_for_message(OPERATOR_CHAT, _has("dibuka kembali"))
    assert notice.thread_id == t.thread
    await console.telegram.wait_for_message(OPERATOR_CHAT, _has("masih ada asap"))
    assert console.telegram.model.chats[OPERATOR_CHAT].topics[t.thread or 0].closed is False
    assert (await console.ticket(t.ref)).status is TicketStatus.SUBMITTED
    await console.telegram.wait_for(lambda: bool(_has_button(t.card, "claim")))


def _has_button(card: StoredMessage, action: str) -> bool:
    return any(d.startswith(f"o|{action}|") for d in _datas(card))


async def test_citizen_writing_long_after_close_is_offered_new_report_when_past_30_min(
    console: Console,
) -> None:
    t = await console.report()
    await _resolve(console, t)
    console.h.clock.advance(timedelta(minutes=31))
    await t.citizen.send_text("halo masih ada?")
    offer = await t.citizen.wait_reply()
    assert "112" in (offer.text or "")
    await console.h.outbox_drained()
    assert not any("halo masih ada" in (m.text or "") for m in console.h.operator_messages())
    assert (await console.ticket(t.ref)).status is TicketStatus.RESOLVED


# -- failures and restarts ----------------------------------------------------------------------


async def _until(console: Console, done: Callable[[], bool], rounds: int = 20) -> None:
    """Moves the clock 15 s at a time (retries are due by the clock) until ``done()``."""
    services = console.h.app.bot_data[SERVICES_KEY]
    for _ in range(rounds):
        if done():
            return
        console.h.clock.advance(timedelta(seconds=15))
        services.outbox.wake()
        await asyncio.sleep(0.1)
    assert done()


async def test_card_edit_and_notice_arrive_when_group_answers_429_then_500(
    console: Console,
) -> None:
    t = await console.report()
    await console.h.outbox_drained()
    console.telegram.fail_next("editMessageText", 429, retry_after=1)
    console.telegram.fail_next("editMessageText", 500)
    await console.press(console.dewi, t.button("claim"), t.card)
    await _until(console, lambda: "Dewi" in (t.card.text or ""))
    await t.citizen.wait_reply(_has("sedang menangani"))
    failed = [
        c for c in console.telegram.calls_to("editMessageText")
        if not c.ok and "not modified" not in str(c.error)
    ]  # fmt: skip
    assert len(failed) == 2


async def test_pending_rows_are_delivered_when_bot_restarts(console: Console) -> None:
    t = await console.report()
    await console.h.outbox_drained()
    console.telegram.fail_next("editMessageText", 500, count=1000)
    console.telegram.fail_next("sendMessage", 500, count=1000)
    await console.press(console.dewi, t.button("claim"), t.card)
    await console.telegram.wait_for(
        lambda: any(not c.ok for c in console.telegram.calls_to("editMessageText"))
    )
    await console.h.stop()
    console.telegram.model._failures.clear()
    await console.h.start()
    await _until(console, lambda: "Dewi" in (t.card.text or ""))
    await _until(console, lambda: any("sedang menangani" in (m.text or "")
                                      for m in t.citizen.messages))  # fmt: skip


# -- a chat without topics ----------------------------------------------------------------------


async def test_everything_replies_to_the_card_when_operators_chat_is_not_a_forum(
    make_console: MakeConsole,
) -> None:
    console = await make_console(forum=False)
    t = await console.report()
    assert t.thread is None
    assert console.telegram.topics(OPERATOR_CHAT) == {}
    await t.citizen.send_text("tolong cepat")
    relayed = await console.telegram.wait_for_message(OPERATOR_CHAT, _has("tolong cepat"))
    assert relayed.raw["reply_to_message"]["message_id"] == t.card.message_id
    telegram = console.telegram
    update = telegram.updates.text(
        console.dewi.user, "kami segera datang", chat=telegram.model.chats[OPERATOR_CHAT].raw,
        reply_to=t.card.raw,
    )  # fmt: skip
    await console.dewi._deliver_message(update)
    await t.citizen.wait_reply(_has("kami segera datang"))
    answer = await console.press(console.dewi, t.button("claim"), t.card)
    assert answer.startswith("✔️")


# -- SLA ----------------------------------------------------------------------------------------


async def test_unclaimed_ticket_is_realerted_in_topic_and_escalated_to_admin_when_sla_passes(
    console: Console,
) -> None:
    await console.rina.send_command("start")  # the admin's chat with the bot is open
    await console.rina.wait_reply()
    t = await console.report()
    await console.h.outbox_drained()  # its card is posted and stored (else the card alerts)
    services = console.h.app.bot_data[SERVICES_KEY]
    console.h.clock.advance(timedelta(seconds=200))
    report = await services.sla.sweep()
    assert report.realerted
    assert report.escalated
    services.outbox.wake()
    notice = await console.telegram.wait_for_message(OPERATOR_CHAT, _has("belum diambil setelah"))
    assert notice.thread_id == t.thread
    assert t.ref in (notice.text or "")
    alert = await console.telegram.wait_for_message(ADMIN_ID, _has(t.ref))
    assert "belum diambil operator" in (alert.text or "")


async def test_location_replying_to_the_card_corrects_the_ticket_when_operator_knows_better(
    console: Console,
) -> None:
    t = await console.report()
    await console.h.outbox_drained()  # the card's id is stored once its row is done
    telegram = console.telegram
    before = len(t.citizen.messages)
    update = telegram.updates.location(
        console.dewi.user, -6.9668, 110.4164, accuracy=5,
        chat=telegram.model.chats[OPERATOR_CHAT].raw, thread_id=t.thread, reply_to=t.card.raw,
    )  # fmt: skip
    await console.dewi._deliver_message(update)
    answer = await console.dewi.wait_reply(_has("Lokasi diralat"))
    assert answer.thread_id == t.thread
    ticket = await console.ticket(t.ref)
    assert ticket.incident_location.source.value == "operator"
    assert ticket.incident_location.lat == -6.9668
    await console.h.outbox_drained()
    assert len(t.citizen.messages) == before  # a correction is not a message to the citizen
    assert "-6.966800" in str(t.card.raw)  # the card shows the corrected place
    topic = telegram.model.chats[OPERATOR_CHAT].topics[t.thread or 0]
    kecamatan = ticket.incident_location.area.kecamatan_name
    assert topic.name.endswith("· " + kecamatan), topic.name  # renamed to the new place


async def test_operator_corrects_category_and_priority_when_the_caller_tapped_the_wrong_one(
    console: Console,
) -> None:
    t = await console.report()  # a medical emergency: priority 1
    await console.press(console.dewi, t.button("cats"), t.card)
    await console.telegram.wait_for(lambda: any("|setcat|" in d for d in _datas(t.card)))
    flood = next(d for d in _datas(t.card) if d.endswith("|FLOOD"))
    answer = await console.press(console.dewi, flood, t.card)
    assert answer.startswith("✔️"), answer
    ticket = await console.ticket(t.ref)
    assert ticket.category.value == "FLOOD"
    assert ticket.priority == 2  # a flood without more is urgent, not life-threatening
    topic = console.telegram.model.chats[OPERATOR_CHAT].topics[t.thread or 0]
    await console.telegram.wait_for(lambda: topic.name.startswith(category_emoji(ticket) + " "))
    assert not topic.name.startswith("🚑")  # renamed: the flood's emoji, not the ambulance
    await console.telegram.wait_for(lambda: "|cats|" in " ".join(_datas(t.card)))
    await console.press(console.dewi, t.button("prios"), t.card)
    await console.telegram.wait_for(lambda: any("|setprio|" in d for d in _datas(t.card)))
    answer = await console.press(
        console.dewi, next(d for d in _datas(t.card) if d.endswith("|1")), t.card
    )
    assert answer.startswith("✔️"), answer
    assert (await console.ticket(t.ref)).priority == 1
    await console.telegram.wait_for(lambda: "|prios|" in " ".join(_datas(t.card)))  # card back
    stranger = await console.press(console.stranger, t.button("prios"), t.card)
    assert "Tidak diizinkan" in stranger
