"""Whole intake conversations through the real Application and the fake Bot API."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.domain.model import IntakeStep, LocationSource, TicketStatus
from bot.double.botapi_model import StoredMessage
from handlers.context import SERVICES_KEY
from tests.flow.conftest import OPERATOR_CHAT, Harness
from tests.flow.steps import (
    full_gps_report,
    gps_location,
    own_contact_and_name,
    reacted,
    start_report,
    submit,
    tap,
    wait_button,
)

JAKARTA = (-6.1754, 106.8272)
LAWANG_SEWU = (-6.9840, 110.4105)


async def _ticket(harness: Harness, ref: str):  # type: ignore[no-untyped-def]
    uow = harness.app.bot_data[SERVICES_KEY].intake._uow_factory()
    async with uow:
        return await uow.tickets.get_by_ref(ref)


async def _draft(harness: Harness, telegram_id: int):  # type: ignore[no-untyped-def]
    uow = harness.app.bot_data[SERVICES_KEY].intake._uow_factory()
    async with uow:
        citizen = await uow.citizens.get_by_telegram_id(telegram_id)
        assert citizen is not None
        return await uow.tickets.active_draft(citizen.id or 0)


async def _operator_card(harness: Harness, ref: str):  # type: ignore[no-untyped-def]
    return await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and "📋" not in (m.text or "")
    )


async def test_gps_report_reaches_operators_with_card_and_pin_when_citizen_speaks_indonesian(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id", first_name="Siti")
    await user.send_command("start")
    welcome = await user.wait_reply()
    assert "112" in (welcome.text or "")
    await tap(user, "report")
    assert "Apa yang terjadi" in (user.last_message.text or "")
    await tap(user, "grp|MEDICAL")
    assert any("lokasi" in b.lower() for b in user.last_message.button_texts)
    await user.press(user.last_message.button_texts[0])  # the location button of the keyboard
    question, _ = await wait_button(user, "locok")
    assert "Kel. Pleburan, Kec. Semarang Selatan" in (question.text or "")
    await tap(user, "locok")
    await own_contact_and_name(user)
    assert await reacted(user, await user.send_text("Bapak saya pingsan, tidak sadar"))
    ref = await submit(user)
    final = user.last_message.text or ""
    assert "sudah kami terima" in final
    assert "112" in final

    card = await _operator_card(harness, ref)
    assert "Siti" in (card.text or "")
    assert "Pleburan" in (card.text or "")
    assert "+6281390001234" in (card.text or "")
    # The pin is merged into the card: a map link (the native pin is a button away).
    lat = f"{user.location[0]:.6f}"
    assert f"openstreetmap.org/?mlat={lat}" in str(card.raw)
    assert any("|pin|" in str(b.get("callback_data")) for b in card.inline_buttons)

    ticket = await _ticket(harness, ref)
    assert ticket.status is TicketStatus.SUBMITTED
    assert ticket.caller_phone_verified is True
    assert ticket.incident_location.source is LocationSource.GPS
    assert ticket.incident_location.accuracy_m == user.accuracy
    assert ticket.incident_location.area.kelurahan_name == "Pleburan"
    assert ticket.details == "Bapak saya pingsan, tidak sadar"


async def test_typed_address_report_is_geocoded_and_confirmed_when_citizen_speaks_english(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en", first_name="John")
    await start_report(user, "FIRE")
    assert "Where is the emergency" in (user.last_message.text or "")
    await user.send_text("Jl. Pemuda, kel. Sekayu RT 03 RW 05")
    message, _ = await wait_button(user, "locok")
    assert message.raw["venue"]["title"] == "Jl. Pemuda"  # as typed, the kelurahan once:
    assert message.raw["venue"]["address"] == "Kel. Sekayu, Kec. Semarang Tengah"
    await tap(user, "locok")
    await own_contact_and_name(user)
    ref = await submit(user)
    assert "was received" in (user.last_message.text or "")

    ticket = await _ticket(harness, ref)
    assert ticket.category.value == "FIRE"
    assert ticket.incident_location.area.kelurahan_name == "Sekayu"
    assert ticket.incident_location.address_text.startswith("Jl. Pemuda")
    assert ticket.reporter_location is None
    await _operator_card(harness, ref)


async def test_reporter_and_incident_locations_are_kept_apart_when_emergency_is_elsewhere(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user()
    await start_report(user, "ACCIDENT")
    await user.share_location()
    await tap(user, "elsewhere")
    await user.send_text("Tugu Muda")  # a landmark the offline data does not know (yet)
    await wait_button(user, "note")
    await user.send_text("Sekayu")
    await tap(user, "locok")
    await own_contact_and_name(user)
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert ticket.reporter_location.area.kelurahan_name == "Pleburan"
    assert ticket.incident_location.area.kelurahan_name == "Sekayu"
    assert ticket.location_elsewhere is True
    card = await _operator_card(harness, ref)
    assert "Sekayu" in (card.text or "")
    assert "Pleburan" in (card.text or "")


async def test_unknown_address_can_still_be_sent_as_text_when_geocoding_finds_nothing(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user)
    await user.send_text("behind the blue warung near the big mango tree")
    await tap(user, "note")
    await own_contact_and_name(user)
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert ticket.incident_location is None
    assert ticket.location_note == "behind the blue warung near the big mango tree"
    card = await _operator_card(harness, ref)
    assert "mango tree" in (card.text or "")


async def test_citizen_outside_the_city_is_told_to_call_112_when_sharing_gps(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user)
    await user.share_location(*JAKARTA)
    reply = await user.wait_reply()
    assert "outside Kota Semarang" in (reply.text or "")
    assert "112" in (reply.text or "")
    draft = await _draft(harness, user.id)
    assert draft.step is IntakeStep.LOCATION
    assert draft.category is not None  # nothing already collected was lost


async def test_other_persons_contact_is_refused_and_typed_number_is_unverified_when_phone_step(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user)
    await gps_location(user)
    await user.share_contact(own=False)
    await user.wait_reply(lambda m: "someone else's contact" in (m.text or ""))
    await user.wait_reply(lambda m: "Who are you?" in (m.text or ""))  # asked again
    await user.send_text("not a number")
    await user.wait_reply(lambda m: "does not look like a phone number" in (m.text or ""))
    await user.send_text("0812-2233-4455")
    await tap(user, "name")
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert ticket.caller_phone_e164 == "+6281222334455"
    assert ticket.caller_phone_verified is False
    card = await _operator_card(harness, ref)
    assert "NOT verified" in (card.text or "") or "BELUM" in (card.text or "")


async def test_returning_citizen_only_confirms_identity_when_reporting_again(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en", first_name="Rina")
    await full_gps_report(user)
    await start_report(user, "FIRE")
    await gps_location(user)
    prompt, _ = await wait_button(user, "me")
    assert "Are you still" in (prompt.text or "")
    assert "Rina" in (prompt.text or "")
    await tap(user, "me")
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert ticket.caller_name == "Rina"
    assert ticket.caller_phone_verified is True


async def test_silent_mode_is_shown_first_on_the_operator_card_when_caller_cannot_speak(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user()
    await start_report(user, "CRIME")
    menu = user.last_message  # the crime menu offers it again
    assert any("tidak aman untuk bicara" in b for b in menu.button_texts), menu.button_texts
    await tap(user, "cat|KDRT")  # domestic violence: silent mode is on by default
    await gps_location(user)
    prompt = await user.wait_reply(lambda m: "Siapa Anda" in (m.text or ""))
    assert "menelepon Anda kembali" not in (prompt.text or "")  # never "so we call you back"
    assert "tidak akan menelepon" in (prompt.text or "")
    await own_contact_and_name(user)
    assert any("AKTIF" in b for b in user.last_message.button_texts)
    ref = await submit(user)
    confirmation = user.last_message.text or ""
    assert "menelepon Anda" not in confirmation  # nor "or call you"
    assert "di sini" in confirmation
    card = await _operator_card(harness, ref)
    lines = (card.text or "").splitlines()
    assert "SENYAP" in lines[1]
    ticket = await _ticket(harness, ref)
    assert ticket.silent is True
    assert ticket.priority == 1


@pytest.mark.parametrize(("language", "on"), [("id", "AKTIF"), ("en", "ON")])
async def test_silent_mode_is_offered_on_the_first_screen_when_a_report_starts(
    harness: Harness, language: str, on: str
) -> None:
    user = harness.telegram.add_user(language_code=language)
    await user.send_command("start")
    await tap(user, "report")
    first = user.last_message
    assert any(d.endswith("|silent") for d in _callback_datas(first)), first.button_texts
    await tap(user, "silent")  # the menu is redrawn in place with the switch on
    assert any(on in b for b in user.last_message.button_texts), user.last_message.button_texts
    await tap(user, "grp|FIRE")
    await gps_location(user)
    prompt = await user.wait_reply(lambda m: "📱" in (m.text or ""))
    assert "call you back" not in (prompt.text or "")
    assert "menelepon Anda kembali" not in (prompt.text or "")
    await own_contact_and_name(user)
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert (ticket.silent, ticket.priority) == (True, 1)  # silent callers are urgent


def _callback_datas(message: StoredMessage) -> list[str]:
    return [str(b.get("callback_data", "")) for b in message.inline_buttons]


async def test_photo_and_voice_details_are_attached_and_forwarded_when_sent(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user()
    await start_report(user, "FIRE")
    await gps_location(user)
    await own_contact_and_name(user)
    assert await reacted(user, await user.send_photo(caption="asap tebal"))
    assert await reacted(user, await user.send_voice())
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert [m.kind.value for m in ticket.media] == ["photo", "voice"]
    await harness.telegram.wait_for(
        lambda: (
            any("photo" in m.raw for m in harness.operator_messages())
            and any("voice" in m.raw for m in harness.operator_messages())
        )
    )


async def test_reference_is_unique_and_sequential_when_two_citizens_interleave(
    harness: Harness,
) -> None:
    first = harness.telegram.add_user(first_name="Ani")
    second = harness.telegram.add_user(first_name="Bayu", language_code="en")
    await start_report(first, "MEDICAL")
    await start_report(second, "FIRE")
    await gps_location(first)
    await second.send_text("Kelurahan Tugurejo")
    await tap(second, "locok")
    await own_contact_and_name(second)
    await own_contact_and_name(first)
    ref_second = await submit(second)
    ref_first = await submit(first)
    assert ref_first != ref_second
    assert {ref_first[-4:], ref_second[-4:]} == {"0001", "0002"}
    t1, t2 = await _ticket(harness, ref_first), await _ticket(harness, ref_second)
    assert t1.caller_name == "Ani"
    assert t1.category.value == "MED"
    assert t2.caller_name == "Bayu"
    assert t2.incident_location.area.kelurahan_name == "Tugurejo"


async def test_cancel_works_from_every_step_when_citizen_sends_cancel(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    for advance in (
        [],
        ["group"],
        ["group", "gps"],
        ["group", "gps", "confirm"],
        ["group", "gps", "confirm", "phone"],
        ["group", "gps", "confirm", "phone", "name"],
        ["group", "gps", "confirm", "phone", "name", "done"],
        ["group", "gps", "confirm", "contact"],
    ):
        await user.send_command("report")
        await wait_button(user, "grp|MEDICAL")
        if advance:
            await tap(user, "grp|MEDICAL")
        if "gps" in advance:
            await user.share_location()
            await wait_button(user, "locok")
        if "confirm" in advance:
            await tap(user, "locok")
        if "phone" in advance:
            await user.send_text("0813 9000 1234")
            await wait_button(user, "name")
        if "contact" in advance:
            await user.share_contact(own=True)
            await wait_button(user, "submit")
        if "name" in advance:
            await tap(user, "name")
        if "done" in advance:
            await tap(user, "done")
        await user.send_command("cancel")
        reply = await user.wait_reply()
        assert "cancelled" in (reply.text or ""), advance
        assert "112" in (reply.text or "")
        assert await _draft(harness, user.id) is None
    assert not harness.operator_messages()


async def test_draft_resumes_exactly_where_it_was_when_the_bot_restarts(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user, "DISASTER")
    await tap(user, "cat|FLOOD")
    await gps_location(user)
    await harness.restart()
    await own_contact_and_name(user)
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert ticket.category.value == "FLOOD"
    assert ticket.incident_location.area.kelurahan_name == "Pleburan"


async def test_nothing_is_lost_when_the_process_is_killed_mid_flow(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user, "MEDICAL")
    await user.send_text("Sekayu")
    await wait_button(user, "locok")
    await harness.kill()  # no shutdown, no flush
    await harness.start()
    await user.send_command("start")
    await wait_button(user, "locok")  # the pin to confirm is shown again
    assert "continue where you left off" in (user.messages[-3].text or "") or any(
        "continue where you left off" in (m.text or "") for m in user.messages[-4:]
    )
    await tap(user, "locok")
    await own_contact_and_name(user)
    ref = await submit(user)
    assert (await _ticket(harness, ref)).incident_location.area.kelurahan_name == "Sekayu"


async def test_idle_draft_is_abandoned_and_shown_to_operators_when_timeout_passes(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user, "FIRE")
    await gps_location(user)
    harness.clock.advance(timedelta(minutes=16))
    closed = await harness.app.bot_data[SERVICES_KEY].intake.abandon_idle_drafts()
    harness.app.bot_data[SERVICES_KEY].outbox.wake()
    assert closed == 1
    notice = await user.wait_reply(lambda m: "no answer for 15 minutes" in (m.text or ""))
    assert "112" in (notice.text or "")
    card = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: "TERBENGKALAI" in (m.text or "")
    )
    assert "Pleburan" in (card.text or "")
    assert await _draft(harness, user.id) is None


async def test_messages_after_submit_reach_the_operators_when_ticket_is_open(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en", first_name="Dewi")
    ref = await full_gps_report(user)
    await _operator_card(harness, ref)
    await user.send_text("He is breathing again <3 & awake")
    ack = await user.wait_reply()
    assert ref in (ack.text or "")
    assert "Sent to the operator" in (ack.text or "")
    relayed = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: "breathing again" in (m.text or "")
    )
    assert "<3 & awake" in (relayed.text or "")
    assert ref in (relayed.text or "")
    await user.send_photo()
    await harness.telegram.wait_for(
        lambda: any("photo" in m.raw and ref in (m.text or "") for m in harness.operator_messages())
    )


async def test_status_lists_reports_with_their_state_when_citizen_asks(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    ref = await full_gps_report(user)
    await user.send_command("status")
    reply = await user.wait_reply()
    assert ref in (reply.text or "")
    assert "waiting for an operator" in (reply.text or "")


async def test_language_switch_is_remembered_when_citizen_picks_english(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="id")
    await user.send_command("language")
    await tap(user, "lang|en")
    assert "English" in (user.last_message.text or "") or any(
        "English" in (m.text or "") for m in user.messages[-2:]
    )
    await harness.restart()
    await user.send_command("start")
    reply = await user.wait_reply()
    assert "Report an emergency" in " ".join(reply.button_texts)


async def test_citizen_still_gets_each_prompt_when_telegram_hiccups_with_502_and_429(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    harness.telegram.fail_next("sendMessage", 502, count=1)
    harness.telegram.fail_next("sendMessage", 429, retry_after=1, count=1)
    await user.send_command("report")
    prompt = await user.wait_reply(lambda m: "What happened" in (m.text or ""), timeout=10)
    assert prompt.inline_buttons
    assert len(harness.telegram.calls_to("sendMessage")) == 3  # two failures, one success


async def test_operator_card_survives_an_outage_and_a_crash_when_operator_chat_is_unreachable(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user)
    await gps_location(user)
    await own_contact_and_name(user)
    operators = harness.telegram.model.chats.pop(OPERATOR_CHAT)  # Telegram: chat not found
    ref = await submit(user)
    services = harness.app.bot_data[SERVICES_KEY]
    await harness.telegram.wait_for(
        lambda: any(
            c.params.get("chat_id") == str(OPERATOR_CHAT)
            or c.params.get("chat_id") == OPERATOR_CHAT
            for c in harness.telegram.calls_to("sendMessage")
        )
    )
    assert await services.queries.pending_deliveries() >= 2  # topic and card are still owed
    await harness.kill()  # and the process dies before the chat is back
    harness.telegram.model.chats[OPERATOR_CHAT] = operators
    harness.clock.advance(timedelta(minutes=6))  # past the slow retry of an operator card
    await harness.start()
    card = await _operator_card(harness, ref)
    assert card.thread_id is not None  # its topic first, then the card in it
    await harness.outbox_drained()


async def test_operator_topic_waits_for_retry_after_when_telegram_rate_limits_the_group(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    harness.telegram.fail_next("createForumTopic", 429, retry_after=1, count=1)
    ref = await full_gps_report(user)
    await harness.telegram.wait_for(lambda: harness.telegram.calls_to("createForumTopic"))
    refused_at = asyncio.get_running_loop().time()
    # the rate governor pauses the group for retry_after and creates the topic again; the
    # card waits for its topic
    card = await _operator_card(harness, ref)
    assert card.thread_id is not None
    assert asyncio.get_running_loop().time() - refused_at >= 0.9
    assert [c.ok for c in harness.telegram.calls_to("createForumTopic")] == [False, True]


async def test_a_message_follows_the_draft_when_its_timer_closed_it_since_the_last_step(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await full_gps_report(user)  # an open ticket …
    await start_report(user, "FIRE")  # … and a second report, left at the phone question
    await gps_location(user)
    harness.clock.advance(timedelta(minutes=16))
    services = harness.app.bot_data[SERVICES_KEY]
    assert await services.intake.abandon_idle_drafts() == 1  # closed behind the chat's back
    # Routed by the step the chat last saw (a typed phone number) it is refused, then by the
    # draft itself: there is none, so it goes to the operators of the open ticket.
    await user.send_text("0812 3456 7890 tolong cepat")
    relayed = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: "tolong cepat" in (m.text or "")
    )
    assert relayed is not None
    assert await _draft(harness, user.id) is None  # nothing started or changed


async def test_a_message_is_taken_by_the_drafts_step_when_it_moved_on_behind_the_chats_back(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user, "MEDICAL")
    await gps_location(user)
    await own_contact_and_name(user)  # the chat last saw the details step
    draft = await _draft(harness, user.id)
    assert draft is not None
    draft.step = IntakeStep.NAME
    uow = harness.app.bot_data[SERVICES_KEY].intake._uow_factory()
    async with uow:  # another path sets the draft back to its name question
        await uow.tickets.update(draft)
        await uow.commit()
    await user.send_text("Siti Rahma")  # a detail at the details step, but a name now
    await user.wait_reply()
    draft = await _draft(harness, user.id)
    assert draft is not None
    assert draft.caller_name == "Siti Rahma"
    assert "Siti Rahma" not in (draft.details or "")
