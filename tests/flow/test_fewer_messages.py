"""Fewer messages and taps on the citizen's path (issue 10): menus edited in place, details
acknowledged with a reaction, an album acknowledged once, the phone step skippable. The
counts are asserted so they cannot creep back up."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.model import TicketStatus
from bot.double.botapi_model import StoredMessage
from bot.double.simulated import SimUser
from handlers.context import SERVICES_KEY
from tests.flow.conftest import OPERATOR_CHAT, Harness
from tests.flow.steps import REF, find_button, reacted, submit, tap, wait_button

MAX_MESSAGES = 8
"""Messages the bot may send the citizen from /start to the confirmation (issue 10)."""
MAX_TAPS = 7
"""Actions the citizen may need from /start to the confirmation (issue 10)."""


@dataclass(frozen=True)
class Counted:
    """What one citizen's report cost: bot messages they received, actions they took."""

    messages: int
    taps: int


def count(harness: Harness, user: SimUser) -> Counted:
    """Bot messages sent into the citizen's chat (sendMessage, sendVenue…; edits are not
    messages) and the citizen's actions (messages, shares and commands sent, buttons
    pressed: the test has no other user pressing buttons)."""
    telegram = harness.telegram
    sent = [
        call
        for call in telegram.calls
        if call.ok
        and call.method.lower().startswith("send")
        and call.method.lower() != "sendchataction"
        and str(call.params.get("chat_id")) == str(user.id)
    ]
    own = [m for m in telegram.messages_for(user.id, incoming=True) if not m.outgoing]
    presses = telegram.model.callback_answers  # each press answered once; one citizen here
    return Counted(messages=len(sent), taps=len(own) + len(presses))


def _now(user: SimUser, message: StoredMessage) -> StoredMessage:
    """The message as it stands now (edited in place since it was first seen)."""
    found = user.telegram.model.message(user.id, message.message_id)
    assert found is not None
    return found


async def _confirmation(user: SimUser) -> str:
    reply = await user.wait_reply(lambda m: bool(REF.search(m.text or "")))
    found = REF.search(reply.text or "")
    assert found is not None
    return found.group(0)


async def _ticket(harness: Harness, ref: str):  # type: ignore[no-untyped-def]
    uow = harness.app.bot_data[SERVICES_KEY].intake._uow_factory()
    async with uow:
        return await uow.tickets.get_by_ref(ref)


async def test_gps_path_sends_at_most_8_messages_and_needs_at_most_7_taps_when_reporting(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id", first_name="Siti")
    await user.send_command("start")
    await user.wait_reply()
    await tap(user, "report")
    await tap(user, "grp|MEDICAL")
    await user.press(user.last_message.button_texts[0])  # «📍 Kirim lokasi saya»
    await wait_button(user, "locok")
    await tap(user, "locok")
    await user.press(user.last_message.button_texts[0])  # «📱 Kirim nomor telepon saya»
    await wait_button(user, "submit")
    await tap(user, "submit")
    ref = await _confirmation(user)

    counted = count(harness, user)
    assert counted.messages <= MAX_MESSAGES, counted
    assert counted.taps <= MAX_TAPS, counted
    assert counted == Counted(messages=6, taps=7)  # today's figures: fewer is welcome
    ticket = await _ticket(harness, ref)
    assert ticket.caller_name == "Siti"  # from the shared contact: no name question
    assert ticket.caller_phone_verified is True


async def test_typed_path_sends_at_most_8_messages_and_needs_at_most_7_taps_when_reporting(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en", first_name="John")
    await user.send_command("start")
    await user.wait_reply()
    await tap(user, "report")
    await tap(user, "grp|FIRE")
    await user.send_text("Lawang Sewu")
    await wait_button(user, "locok")
    await tap(user, "locok")
    await user.share_contact(own=True)
    await wait_button(user, "submit")
    await tap(user, "submit")
    ref = await _confirmation(user)

    counted = count(harness, user)
    assert counted.messages <= MAX_MESSAGES, counted
    assert counted.taps <= MAX_TAPS, counted
    assert counted == Counted(messages=6, taps=7)
    ticket = await _ticket(harness, ref)
    assert ticket.incident_location.area.kelurahan_name == "Sekayu"


async def test_menus_are_edited_in_place_when_the_citizen_taps_them(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.send_command("start")
    welcome = await user.wait_reply()
    await tap(user, "report")
    menu = harness.telegram.model.message(user.id, welcome.message_id)
    assert menu is not None
    assert "What happened" in (menu.text or "")  # the welcome's menu became the categories
    await tap(user, "grp|CRIME")
    assert "Which one fits best" in (menu.text or "")  # and then the sub-categories
    assert len(user.messages) == 1
    await tap(user, "cat|KDRT")
    assert "☑️" in (menu.text or "")  # the question keeps its answer, without buttons
    assert "Domestic violence" in (menu.text or "")
    assert menu.inline_buttons == []
    assert "Where is the emergency" in (user.last_message.text or "")


async def test_details_are_acknowledged_with_a_reaction_not_the_prompt_when_sent(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await user.send_command("report")
    await tap(user, "grp|FIRE")
    await user.share_location()
    await tap(user, "locok")
    await user.share_contact(own=True)
    screen, _ = await wait_button(user, "submit")
    assert "Berapa orang yang terdampak?" in (screen.text or "")  # the persons' question
    before = len(user.messages)

    sent = await user.send_text("Asap tebal dari lantai dua")
    assert await reacted(user, sent) == [{"type": "emoji", "emoji": "👍"}]
    await harness.telegram.wait_for(lambda: "Asap tebal" in (_now(user, screen).text or ""))
    await tap(user, "persons|2-5", fresh=False)  # edited in place
    assert len(user.messages) == before
    assert "Asap tebal" in (user.last_message.text or "")
    assert "Terima kasih." not in [m.text for m in user.messages]
    await tap(user, "submit", fresh=False)
    ref = await _confirmation(user)
    ticket = await _ticket(harness, ref)
    assert ticket.details == "Asap tebal dari lantai dua"
    assert ticket.persons_affected == "2-5"


async def test_detail_is_acknowledged_in_words_when_telegram_refuses_the_reaction(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.send_command("report")
    await tap(user, "grp|FIRE")
    await user.share_location()
    await tap(user, "locok")
    await user.share_contact(own=True)
    await wait_button(user, "submit")
    harness.telegram.fail_next("setMessageReaction", 400, description="Bad Request: no way")

    await user.send_text("Smoke from the second floor")
    reply = await user.wait_reply()
    assert "Added to your report" in (reply.text or "")


async def test_album_of_12_photos_is_acknowledged_once_when_sent_at_the_details_step(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.send_command("report")
    await tap(user, "grp|DISASTER")
    await tap(user, "cat|FLOOD")
    await user.share_location()
    await tap(user, "locok")
    await user.share_contact(own=True)
    await wait_button(user, "submit")
    before = len(user.messages)

    album = await user.send_album(12, caption="banjir setinggi lutut")
    await reacted(user, album[0])
    full = await user.wait_reply()  # only 10 files fit: said once, not twice
    ok = await user.send_text("ok")  # handled after every photo (updates go in order)
    await reacted(user, ok)
    screen, _ = find_button(user, "submit", fresh=False)
    await harness.telegram.wait_for(lambda: "Attachments: 10" in (_now(user, screen).text or ""))

    reactions = [m for m in harness.telegram.messages_for(user.id, incoming=True) if m.reaction]
    assert len(reactions) == 2  # the album's first photo, and the text
    assert "maximum of 10 files" in (full.text or "")
    assert len(user.messages) == before + 1
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert len(ticket.media) == 10


async def test_phone_step_can_be_skipped_and_operators_see_no_callback_number_when_skipped(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id", first_name="Ani")
    await user.send_command("report")
    await tap(user, "grp|MEDICAL")
    await user.share_location()
    await tap(user, "locok")
    assert "⏭️ Lewati" in user.last_message.button_texts
    await user.press("⏭️ Lewati")
    await tap(user, "name")  # the name from Telegram, one tap
    screen, _ = await wait_button(user, "submit")
    assert "tanpa nomor untuk dihubungi" in (screen.text or "")
    await tap(user, "submit", fresh=False)
    ref = await _confirmation(user)

    ticket = await _ticket(harness, ref)
    assert ticket.phone_skipped
    assert ticket.status is TicketStatus.SUBMITTED
    card = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and "📋" not in (m.text or "")
    )
    assert "tanpa nomor untuk dihubungi" in (card.text or "")


async def test_next_question_is_sent_anew_when_telegram_refuses_to_edit_the_menu(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.send_command("report")
    menu = await user.wait_reply()
    harness.telegram.fail_next(
        "editMessageText", 400, description="Bad Request: message can't be edited"
    )
    await tap(user, "grp|CRIME")
    again = await user.wait_reply(lambda m: "Which one fits best" in (m.text or ""))
    assert again.message_id != menu.message_id  # sent as a new message instead
    assert not harness.errors


async def test_screen_is_shown_and_nothing_breaks_when_the_press_is_too_old_to_answer(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.send_command("report")
    menu = await user.wait_reply()
    harness.telegram.fail_next(
        "answerCallbackQuery",
        400,
        description="Bad Request: query is too old and response timeout expired or query ID is "
        "invalid",
    )
    message, data = await wait_button(user, "grp|FIRE")
    await user.press(data, on=message)
    await user.wait_reply(lambda m: "Where is the emergency" in (m.text or ""))
    # The pressed menu keeps its answer (that edit goes out beside the next question).
    await harness.telegram.wait_for(lambda: "☑️" in (_now(user, menu).text or ""))
    assert not any("went wrong" in (m.text or "") for m in user.messages)
    assert not harness.errors
