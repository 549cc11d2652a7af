"""One-message reports, "did you mean …?", forged presses and a busy database, through the
real Application."""

from __future__ import annotations

import sqlite3
import time

from bot.domain.model import Category, IntakeStep, LocationSource, MediaKind
from bot.services.ports import StorageBusy
from handlers.context import SERVICES_KEY
from tests.flow.conftest import OPERATOR_CHAT, Harness
from tests.flow.steps import own_contact_and_name, submit, tap, wait_button


async def _draft(harness: Harness, telegram_id: int):  # type: ignore[no-untyped-def]
    uow = harness.app.bot_data[SERVICES_KEY].intake._uow_factory()
    async with uow:
        citizen = await uow.citizens.get_by_telegram_id(telegram_id)
        if citizen is None:
            return None
        return await uow.tickets.active_draft(citizen.id or 0)


async def _ticket(harness: Harness, ref: str):  # type: ignore[no-untyped-def]
    uow = harness.app.bot_data[SERVICES_KEY].intake._uow_factory()
    async with uow:
        return await uow.tickets.get_by_ref(ref)


async def test_one_message_report_in_indonesian_is_guessed_confirmed_with_one_tap_and_sent(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id", first_name="Siti")
    await user.send_text("ada kebakaran di pasar johar!!")  # the very first message
    guess, _ = await wait_button(user, "guessok")
    text = guess.text or ""
    assert "Benarkah ini yang terjadi?" in text
    assert "🔥 Kebakaran" in text
    assert "Pasar Johar" in text
    assert "Kauman" in text
    assert "ada kebakaran di pasar johar!!" in text
    assert len(user.messages) == 1  # one message: the guess reads the report back
    await tap(user, "guessok")
    assert "Siapa Anda?" in (user.last_message.text or "")
    await own_contact_and_name(user)
    ref = await submit(user)

    ticket = await _ticket(harness, ref)
    assert ticket.category is Category.FIRE
    assert ticket.priority == 1
    assert ticket.details == "ada kebakaran di pasar johar!!"
    assert ticket.incident_location.area.kelurahan_name == "Kauman"
    assert ticket.incident_location.source is LocationSource.GEOCODED
    card = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and "📋" not in (m.text or "")
    )
    assert "pasar johar" in (card.text or "").lower()


async def test_one_message_report_in_english_can_change_the_guessed_type(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en", first_name="John")
    await user.send_text("car crash near simpang lima, one man bleeding")
    guess, _ = await wait_button(user, "guessok")
    assert "Is this what happened?" in (guess.text or "")
    assert "Traffic accident" in (guess.text or "")
    assert "Simpang Lima" in (guess.text or "")
    await tap(user, "guesscat")  # "another type": the menu, then the found place to confirm
    assert "What happened?" in (user.last_message.text or "")
    await tap(user, "grp|MEDICAL")
    venue, _ = await wait_button(user, "locok")
    assert venue.raw["venue"]["title"] == "Kawasan Simpang Lima"  # the place, not the sentence
    assert venue.raw["venue"]["address"] == "Kel. Pleburan, Kec. Semarang Selatan"
    await tap(user, "locok")
    await own_contact_and_name(user)
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert ticket.category is Category.MED
    assert ticket.incident_location.area.kelurahan_name == "Pleburan"
    assert ticket.details == "car crash near simpang lima, one man bleeding"


async def test_one_message_report_while_a_draft_is_open_fills_that_draft(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await user.send_command("start")
    await tap(user, "report")
    opened = await _draft(harness, user.id)
    assert opened.step is IntakeStep.CATEGORY
    await user.send_text("ada maling di lawang sewu")  # not a tap on the menu: kept, guessed
    guess, _ = await wait_button(user, "guessok")
    assert "Kriminalitas" in (guess.text or "")
    assert "Lawang Sewu" in (guess.text or "")
    draft = await _draft(harness, user.id)
    assert draft.id == opened.id  # the same draft, no second report
    assert draft.step is IntakeStep.GUESS
    assert draft.details == "ada maling di lawang sewu"
    await tap(user, "guessplace")  # the type is right, the place is not
    assert "Di mana keadaan daruratnya?" in (user.last_message.text or "")
    draft = await _draft(harness, user.id)
    assert draft.category is Category.CRIME
    assert draft.step is IntakeStep.LOCATION


async def test_one_message_report_naming_a_kelurahan_offers_it_in_english(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.send_text("Fallen tree blocking the road in Sampangan")
    guess, _ = await wait_button(user, "guessok")
    assert "Fallen tree" in (guess.text or "")
    assert "Kelurahan Sampangan · Kec. Gajahmungkur" in (guess.text or "")  # said once
    await tap(user, "guessok")
    draft = await _draft(harness, user.id)
    assert draft.category is Category.TREE
    assert draft.incident_location.area.kelurahan_name == "Sampangan"
    assert draft.incident_location.source is LocationSource.CENTROID


async def test_location_and_photo_outside_a_report_start_a_draft_that_keeps_them(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.share_location()
    menu, _ = await wait_button(user, "grp|FIRE")
    assert "What happened?" in (menu.text or "")
    assert "Kept in your report" in (user.messages[-2].text or "")
    await user.send_photo(caption="lihat ini")
    await wait_button(user, "grp|FIRE")
    draft = await _draft(harness, user.id)
    assert [m.kind for m in draft.media] == [MediaKind.PHOTO]
    assert draft.media[0].caption == "lihat ini"
    await tap(user, "grp|FIRE")
    await wait_button(user, "locok")  # the shared point waits for its tap
    await tap(user, "locok")
    draft = await _draft(harness, user.id)
    assert draft.incident_location.source is LocationSource.GPS
    assert (draft.incident_location.lat, draft.incident_location.lon) == user.location


async def test_fuzzy_place_asks_did_you_mean_and_retyping_takes_nothing(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await user.send_command("start")
    await tap(user, "report")
    await tap(user, "grp|FIRE")
    await user.send_text("Bandungan")  # a town outside the city, read as Kelurahan Bendungan
    question, _ = await wait_button(user, "locretry")
    assert "Maksud Anda" in (question.text or "")
    assert "Bendungan" in (question.text or "")
    assert "Bukan, ketik ulang" in question.button_texts[-1]
    draft = await _draft(harness, user.id)
    assert draft.step is IntakeStep.LOCATION_SUGGEST
    assert draft.incident_location is None  # never decided silently
    await tap(user, "locretry")
    assert "Di mana keadaan daruratnya?" in (user.last_message.text or "")
    draft = await _draft(harness, user.id)
    assert draft.incident_location is None
    assert draft.pending_location is None


async def test_fuzzy_place_is_taken_when_the_citizen_says_yes(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.send_command("start")
    await tap(user, "report")
    await tap(user, "grp|FIRE")
    await user.send_text("Bandungan")
    question, _ = await wait_button(user, "locok")
    assert "Did you mean" in (question.text or "")
    await tap(user, "locok")
    assert "Who are you?" in (user.last_message.text or "")
    draft = await _draft(harness, user.id)
    assert draft.incident_location.area.kelurahan_name == "Bendungan"


async def test_forged_press_in_a_group_does_nothing_to_intake(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="id")
    group = harness.telegram.model.chats[OPERATOR_CHAT].raw
    message = {
        "message_id": 1,
        "date": int(time.time()),
        "chat": group,
        "from": {"id": 1, "is_bot": True, "first_name": "Siaga112"},
        "text": "a bot message in a group",
    }
    before = len(harness.telegram.calls)
    for data in ("m|report", "i|1|grp|FIRE", "i|1|submit", "m|advisories", "garbage"):
        update = harness.telegram.updates.callback_query(user.user, message, data)
        await harness.telegram.deliver(update)
        query_id = update["callback_query"]["id"]
        await harness.telegram.wait_for(
            lambda q=query_id: harness.telegram.model.callback_answers.get(str(q)) is not None
        )
    sent = [c.method for c in harness.telegram.calls[before:]]
    assert set(sent) == {"answerCallbackQuery"}  # answered, nothing sent anywhere
    assert harness.telegram.messages_for(OPERATOR_CHAT) == []
    assert await _draft(harness, user.id) is None


async def test_citizen_is_told_to_send_again_within_seconds_while_another_process_writes(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await user.send_command("start")
    await user.wait_reply()
    path = harness.settings.database_url.split(":///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)  # another process's write lock
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        await user.send_text("ada kebakaran di pasar johar")
        reply = await user.wait_reply(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert "tidak</b> tersimpan" in reply.html, reply.html  # told plainly: send it again
    assert "112" in (reply.text or "")
    assert elapsed < 6.0, elapsed  # within about 5 s, not after every writer's timeout
    assert await _draft(harness, user.id) is None  # nothing half-saved
    assert harness.errors
    assert all(isinstance(error, StorageBusy) for error in harness.errors), harness.errors
    harness.errors.clear()  # expected: the busy database reached the error handler
    await user.send_text("ada kebakaran di pasar johar")  # sent again once the lock is free
    guess, _ = await wait_button(user, "guessok")
    assert "Pasar Johar" in (guess.text or "")
