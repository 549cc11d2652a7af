"""Texts a citizen reads and the operator card that reads in 3 seconds (issue 10)."""

from __future__ import annotations

import re
from datetime import timedelta

from bot.double.botapi_model import StoredMessage
from bot.double.simulated import SimUser
from handlers.context import SERVICES_KEY
from tests.flow.conftest import OPERATOR_CHAT, Harness
from tests.flow.steps import (
    REF,
    full_gps_report,
    reacted,
    shown,
    start_report,
    submit,
    tap,
    wait_button,
)

WHEN_ID = re.compile(r"pada \d{2}-\d{2}-\d{4} pukul \d{2}\.\d{2} WIB")
WHEN_EN = re.compile(r"on \d{2}-\d{2}-\d{4} at \d{2}\.\d{2} WIB")


async def _card(harness: Harness, ref: str) -> StoredMessage:
    card: StoredMessage = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and "📋" not in (m.text or "")
    )
    return card


async def _typed_phone_report(user: SimUser, group: str, address: str) -> str:
    """A report with a typed address (confirmed) and a typed, unverified number."""
    await start_report(user, group)
    await user.send_text(address)
    await tap(user, "locok")
    await user.send_text("0812 3456 7890")
    await tap(user, "name")
    await wait_button(user, "submit")
    return await submit(user)


async def test_times_read_pada_and_pukul_when_the_report_is_confirmed_in_indonesian(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await full_gps_report(user)
    assert WHEN_ID.search(user.last_message.text or "")
    await user.send_command("status")
    status = await user.wait_reply()
    assert WHEN_ID.search(status.text or "")


async def test_times_read_on_and_at_when_the_report_is_confirmed_in_english(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await full_gps_report(user)
    assert WHEN_EN.search(user.last_message.text or "")


async def test_location_line_names_the_kelurahan_once_and_keeps_the_typed_street_when_shown(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await start_report(user, "FIRE")
    await user.send_text("Jl. Pemuda, Sekayu")
    pin, _ = await wait_button(user, "locok")
    assert pin.raw["venue"]["title"] == "Jl. Pemuda"
    await tap(user, "locok")
    await user.share_contact(own=True)
    screen, _ = await wait_button(user, "submit")
    where = next(line for line in (screen.text or "").splitlines() if "Sekayu" in line)
    assert where.count("Sekayu") == 1
    assert "Jl. Pemuda · Kel. Sekayu, Kec. Semarang Tengah" in where


async def test_indonesian_aliases_cancel_and_switch_language_when_batal_and_bahasa_are_sent(
    harness: Harness,
) -> None:
    commands = harness.telegram.model.commands
    default = next(v for (scope, language), v in commands.items() if not language)
    english = next(v for (scope, language), v in commands.items() if language == "en")
    assert {c["command"] for c in default} >= {"lapor", "batal", "bahasa", "status"}
    assert {c["command"] for c in english} >= {"report", "cancel", "language", "status"}

    user = harness.telegram.add_user(language_code="id")
    await start_report(user, "FIRE")
    await user.send_command("batal")
    cancelled = await user.wait_reply()
    assert "dibatalkan" in (cancelled.text or "")
    await user.send_command("bahasa")
    await user.wait_reply(lambda m: any("English" in label for label in m.button_texts))


async def test_out_of_town_address_gets_the_112_line_when_typed(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="id")
    await start_report(user, "MEDICAL")
    await user.send_text("Jl. Malioboro, Yogyakarta")
    reply = await user.wait_reply()
    assert "112" in (reply.text or "")
    assert "di luar Kota Semarang" in (reply.text or "")


async def test_status_hides_cancelled_drafts_when_the_citizen_asks(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    ref = await full_gps_report(user)
    await start_report(user, "FIRE")
    await user.send_command("cancel")
    await user.wait_reply(lambda m: "cancelled" in (m.text or ""))
    await user.send_command("status")
    status = await user.wait_reply(lambda m: "Your reports" in (m.text or ""))
    text = status.text or ""
    assert ref in text
    assert "cancelled" not in text
    assert text.count("•") == 1  # the sent report only


async def test_one_voice_kami_is_used_when_the_bot_speaks_indonesian(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="id")
    await start_report(user, "MEDICAL")
    assert "/batal" in (user.last_message.text or "")  # the Indonesian alias in the prompt
    await user.send_sticker()
    sorry = await user.wait_reply(lambda m: "Maaf" in (m.text or ""))
    assert "kami" in (sorry.text or "")
    await user.wait_reply(lambda m: "Di mana" in (m.text or ""))
    await user.send_text("🏠🔥🌳")
    not_found = await user.wait_reply(lambda m: "🔎" in (m.text or ""))
    assert "Kami tidak menemukan" in (not_found.text or "")
    assert not re.search(r"\b[Ss]aya (tidak|hanya|akan)\b", (not_found.text or ""))


async def test_operator_card_reads_in_3_seconds_when_the_phone_was_typed(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id", first_name="Rudi")
    ref = await _typed_phone_report(user, "FIRE", "Sekayu")
    text = (await _card(harness, ref)).text or ""
    assert "🔥 Kebakaran" in text  # the category in Indonesian …
    assert "(FIRE)" not in text  # … without its code
    assert "prioritas 1 — nyawa terancam" in text  # the priority in words
    assert "sumber" not in text
    assert "centroid" not in text
    assert "perkiraan: titik tengah kelurahan" in text  # the source in words
    assert text.count("terverifikasi") == 1  # the unverified-phone warning, once
    assert "⚠️ Telepon: +6281234567890 — BELUM terverifikasi" in text


async def test_location_update_is_one_titled_pin_in_the_topic_when_live_location_moves(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user)
    shared = await user.share_location(live_period=3600)
    await tap(user, "locok")
    await user.share_contact(own=True)
    ref = await submit(user)
    card = await _card(harness, ref)
    # the card's row is stored as sent just after the call: jumping the clock past its lease
    # before that would (rightly) send it again, marked as a possible duplicate
    await harness.outbox_drained()
    before = len(harness.operator_messages())
    harness.clock.advance(timedelta(seconds=61))
    await user.update_live_location(shared, -6.9800, 110.4130)
    pin = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: m.kind == "venue", after=card.message_id
    )
    assert pin.raw["venue"]["title"] == f"📍 {ref}: lokasi terkini diperbarui"
    assert pin.raw["venue"]["address"].startswith("Kel. Sekayu, Kec. Semarang Tengah")
    assert pin.thread_id == card.thread_id  # in the ticket's topic, with its card
    await harness.outbox_drained()
    assert len(harness.operator_messages()) == before + 1  # no header before a bare pin


async def test_citizen_follow_up_goes_in_the_cards_topic_when_sent_after_submit(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    ref = await full_gps_report(user)
    card = await _card(harness, ref)
    await user.send_text("He is breathing again")
    relayed = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: "breathing again" in (m.text or "")
    )
    assert card.thread_id is not None
    assert relayed.thread_id == card.thread_id


async def test_abandoned_drafts_card_keeps_the_unconfirmed_gps_point_when_it_times_out(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await start_report(user, "FIRE")
    await user.share_location()
    await wait_button(user, "locok")  # shared, never confirmed
    harness.clock.advance(timedelta(minutes=16))
    services = harness.app.bot_data[SERVICES_KEY]
    assert await services.intake.abandon_idle_drafts() == 1
    services.outbox.wake()
    card = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: "TERBENGKALAI" in (m.text or "")
    )
    assert "Dikirim, belum dikonfirmasi" in (card.text or "")
    assert "Pleburan" in (card.text or "")
    lat = f"{user.location[0]:.6f}"
    assert f"openstreetmap.org/?mlat={lat}" in str(card.raw)  # the pin is merged into the card


async def test_detail_sent_at_the_summary_is_kept_when_typed_there(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user, "MEDICAL")
    await user.share_location()
    await tap(user, "locok")
    await user.share_contact(own=True)
    await wait_button(user, "done")
    await tap(user, "done")
    summary = await shown(user, lambda m: "Please check your report" in (m.text or ""))
    assert await reacted(user, await user.send_text("second floor, left door"))
    model = harness.telegram.model
    await harness.telegram.wait_for(
        lambda: "second floor" in (getattr(model.message(user.id, summary.message_id), "text", ""))
    )
    ref = await submit(user)
    assert REF.fullmatch(ref)
