"""Bad input at every step: a clear answer, the current prompt again, nothing collected lost.

Wrong media, stickers, very long text, emoji, text that looks like HTML, commands in the middle
of the flow, presses on old or forged buttons, a citizen who blocks the bot, live locations,
the cap on open tickets and the flood limit, all through the real Application and the fake
Bot API (which answers 400 to bad HTML or an over-long text, so a missing escape or a missing
cut fails the test).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from telegram.error import Forbidden

from bot.config import Settings
from bot.domain.model import Citizen, IntakeStep, LocationSource, Ticket, TicketStatus
from bot.domain.rules import MAX_DETAILS_CHARS
from bot.double.botapi_model import MAX_TEXT_LENGTH, StoredMessage
from bot.double.fake_bot_api import FakeBotApi
from bot.double.simulated import SimUser
from bot.double.updates import JSON, SIMPANG_LIMA
from handlers.context import SERVICES_KEY
from tests.flow.conftest import OPERATOR_CHAT, FakeClock, Harness
from tests.flow.steps import (
    REF,
    find_button,
    full_gps_report,
    own_contact_and_name,
    reacted,
    shown,
    start_report,
    submit,
    tap,
    wait_button,
)

T = TypeVar("T")

SORRY = "Sorry, we cannot use that here."
STALE = "This button is no longer active."
HTML_BAIT = "<b>x</b> & <script>"
SEKAYU = (-6.9800, 110.4130)
PURWOSARI = (-6.9700, 110.4200)
PLEBURAN_EAST = (-6.9920, 110.4240)

#: How the citizen recognises the prompt of each step (English).
PROMPTS: dict[IntakeStep, Callable[[StoredMessage], bool]] = {
    IntakeStep.CATEGORY: lambda m: "What happened?" in (m.text or ""),
    IntakeStep.SUBCATEGORY: lambda m: "Which one fits best?" in (m.text or ""),
    IntakeStep.LOCATION: lambda m: "Where is the emergency?" in (m.text or ""),
    IntakeStep.LOCATION_CONFIRM: lambda m: (
        m.kind == "venue" or "Is the emergency at this place?" in (m.text or "")
    ),
    IntakeStep.PHONE: lambda m: "Who are you?" in (m.text or ""),
    IntakeStep.NAME: lambda m: "What is your name?" in (m.text or ""),
    IntakeStep.DETAILS: lambda m: "Anything else the operator should know?" in (m.text or ""),
    # the details screen is the report so far, the details' invitation and «Send»
    IntakeStep.CONFIRM: lambda m: "Please check your report" in (m.text or ""),
}


# -- helpers ----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def limited(
    fake_bot_api: FakeBotApi, make_settings: Callable[..., Settings]
) -> AsyncIterator[Harness]:
    """A harness whose citizens may have one open ticket and relay three messages a minute."""
    fake_bot_api.register_forum(OPERATOR_CHAT, "Operator 112")
    settings = make_settings(fake_bot_api, MAX_OPEN_TICKETS="1", FLOOD_LIMIT_PER_MINUTE="3")
    h = Harness(fake_bot_api, settings, FakeClock())
    await h.start()
    try:
        yield h
    finally:
        if h.application is not None:
            await h.stop()
    assert not h.errors, f"handler errors: {h.errors!r}"


def _uow(harness: Harness) -> Any:
    return harness.app.bot_data[SERVICES_KEY].intake._uow_factory()


async def _citizen(harness: Harness, telegram_id: int) -> Citizen:
    async with _uow(harness) as uow:
        citizen: Citizen | None = await uow.citizens.get_by_telegram_id(telegram_id)
    assert citizen is not None
    return citizen


async def _draft(harness: Harness, telegram_id: int) -> Ticket | None:
    async with _uow(harness) as uow:
        citizen = await uow.citizens.get_by_telegram_id(telegram_id)
        assert citizen is not None
        draft: Ticket | None = await uow.tickets.active_draft(citizen.id or 0)
    return draft


async def _the_draft(harness: Harness, telegram_id: int) -> Ticket:
    draft = await _draft(harness, telegram_id)
    assert draft is not None, "the draft was lost"
    return draft


async def _ticket(harness: Harness, ref: str) -> Ticket:
    async with _uow(harness) as uow:
        ticket: Ticket | None = await uow.tickets.get_by_ref(ref)
    assert ticket is not None
    return ticket


async def _open_tickets(harness: Harness, telegram_id: int) -> list[Ticket]:
    async with _uow(harness) as uow:
        citizen = await uow.citizens.get_by_telegram_id(telegram_id)
        assert citizen is not None
        tickets: list[Ticket] = await uow.tickets.open_tickets(citizen.id or 0)
    return tickets


async def _eventually(probe: Callable[[], Awaitable[T | None]], within: float = 5.0) -> T:
    """Polls ``probe`` until it returns something truthy (for updates the bot never answers)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("the condition was not reached in time")
        await asyncio.sleep(0.02)


async def _operator_card(harness: Harness, ref: str) -> StoredMessage:
    card: StoredMessage = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and "📋" not in (m.text or "")
    )
    return card


def _last_id(user: SimUser) -> int:
    """The newest message id in the user's chat (bot's or user's): replies come after it."""
    chat = user.telegram.model.chats.get(user.id)
    return chat.last_message_id if chat else 0


async def _screen(user: SimUser, step: IntakeStep, *, after: int | None = None) -> list[str]:
    """The texts the bot answered (since the user's last action) up to the prompt of ``step``;
    a venue shows as ``venue:<title>``."""
    start = user._mark[1] if after is None else after
    prompt = await user.telegram.wait_for_message(user.id, PROMPTS[step], after=start)
    return [
        f"venue:{m.raw['venue']['title']}" if m.kind == "venue" else (m.text or "")
        for m in user.messages
        if start < m.message_id <= prompt.message_id
    ]


async def _alert(harness: Harness, query: JSON) -> str | None:
    """The text of the bot's answer to a callback query (what the citizen sees as a toast)."""
    answers = harness.telegram.model.callback_answers
    params: JSON = await harness.telegram.wait_for(lambda: answers.get(str(query["id"])))
    text = params.get("text")
    return str(text) if text is not None else None


def _now(user: SimUser, message: StoredMessage) -> StoredMessage:
    """The message as it stands now (edited in place since it was first seen)."""
    found = user.telegram.model.message(user.id, message.message_id)
    assert found is not None
    return found


async def _press_gone(harness: Harness, user: SimUser, message: StoredMessage, data: str) -> JSON:
    """Presses a button the message no longer shows (answered and edited in place since):
    an old client, or a second tap faster than the edit."""
    update = harness.telegram.updates.callback_query(user.user, message.raw, data)
    user._mark = (user.id, _last_id(user))
    user.acted_at = harness.telegram.model.monotonic()
    await harness.telegram.deliver(update)
    query: JSON = update["callback_query"]
    return query


async def _forge_press(harness: Harness, user: SimUser, data: str) -> tuple[JSON, int]:
    """Delivers a press carrying ``data`` under the user's newest bot message (which need
    not show such a button: old clients, forged or garbled data). Returns the query and the
    message id after which the bot's answer appears."""
    message = user.last_message
    assert message is not None
    update = harness.telegram.updates.callback_query(user.user, message.raw, data)
    after = _last_id(user)
    await harness.telegram.deliver(update)
    query: JSON = update["callback_query"]
    return query, after


async def _reach(user: SimUser, step: IntakeStep) -> None:
    """Takes the citizen's new report to ``step`` the shortest way (GPS, own contact)."""
    if step is IntakeStep.SUBCATEGORY:
        await start_report(user, "CRIME")
    else:
        await user.send_command("report")
        await wait_button(user, "grp|MEDICAL")
        path = [
            IntakeStep.CATEGORY,
            IntakeStep.LOCATION,
            IntakeStep.LOCATION_CONFIRM,
            IntakeStep.PHONE,
            IntakeStep.NAME,
            IntakeStep.DETAILS,
            IntakeStep.CONFIRM,
        ]
        for reached in path[1 : path.index(step) + 1]:
            if reached is IntakeStep.LOCATION:
                await tap(user, "grp|MEDICAL")
            elif reached is IntakeStep.LOCATION_CONFIRM:
                await user.share_location()
            elif reached is IntakeStep.PHONE:
                await tap(user, "locok")
            elif reached is IntakeStep.NAME:  # a shared contact brings its name: typed
                await user.send_text("0813 9000 1234")
            elif reached is IntakeStep.DETAILS:
                await tap(user, "name")
            elif reached is IntakeStep.CONFIRM:
                await tap(user, "done")
            await shown(user, PROMPTS[reached])
    await shown(user, PROMPTS[step])


async def _send(user: SimUser, kind: str) -> None:
    """Sends one kind of input the way a Telegram client would."""
    if kind == "text":
        await user.send_text("tolong ada kebakaran")
    elif kind == "long_text":
        await user.send_text("kebakaran! " * 500)  # 5500 characters
    elif kind == "emoji":
        await user.send_text("🔥🚒🔥")
    elif kind == "html":
        await user.send_text(HTML_BAIT)
    elif kind == "sticker":
        await user.send_sticker("😱")
    elif kind == "photo":
        await user.send_photo(caption="lihat ini")
    elif kind == "voice":
        await user.send_voice()
    elif kind == "contact":
        await user.share_contact(own=True)
    elif kind == "location":
        await user.share_location()
    else:  # pragma: no cover - a typo in a parameter list
        raise ValueError(kind)


def _operator_texts(harness: Harness, needle: str) -> list[str]:
    """Operator messages with ``needle``, the queue board (which lists every ref) left out."""
    return [
        m.text or ""
        for m in harness.operator_messages()
        if needle in (m.text or "") and "📋" not in (m.text or "")
    ]


# -- wrong kind of input at each step ---------------------------------------------------------

#: What a step cannot use at all (stickers, someone's contact where no phone is asked).
WRONG_INPUTS = [
    (IntakeStep.CATEGORY, "sticker"),
    (IntakeStep.LOCATION, "sticker"),
    (IntakeStep.LOCATION, "contact"),
    (IntakeStep.LOCATION_CONFIRM, "sticker"),
    (IntakeStep.PHONE, "sticker"),
    (IntakeStep.NAME, "sticker"),
    (IntakeStep.NAME, "contact"),
    (IntakeStep.DETAILS, "sticker"),
    (IntakeStep.DETAILS, "contact"),
    (IntakeStep.CONFIRM, "sticker"),
]

#: Text, files and points a step does not ask for: kept on the report, never thrown away.
KEPT_INPUTS = [
    (IntakeStep.CATEGORY, "emoji"),
    (IntakeStep.CATEGORY, "html"),
    (IntakeStep.CATEGORY, "photo"),
    (IntakeStep.CATEGORY, "location"),
    (IntakeStep.SUBCATEGORY, "voice"),
    (IntakeStep.LOCATION, "photo"),
    (IntakeStep.LOCATION, "voice"),
    (IntakeStep.LOCATION_CONFIRM, "photo"),
    (IntakeStep.PHONE, "photo"),
    (IntakeStep.PHONE, "location"),
    (IntakeStep.NAME, "photo"),
    (IntakeStep.NAME, "location"),
    (IntakeStep.DETAILS, "location"),
    # text, photos and voice at the summary are details: reacted to (test_fewer_messages)
    (IntakeStep.CONFIRM, "location"),
]
KEPT = "✅ Kept in your report."


@pytest.mark.parametrize(
    ("step", "kind"), WRONG_INPUTS, ids=[f"{s.value}-{k}" for s, k in WRONG_INPUTS]
)
async def test_wrong_input_is_refused_and_prompt_repeated_when_sent_at_a_step(
    harness: Harness, step: IntakeStep, kind: str
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, step)
    before = await _the_draft(harness, user.id)
    await _send(user, kind)
    texts = await _screen(user, step)
    assert texts[0] == SORRY  # the polite refusal first ...
    assert len(texts) <= 3  # ... then only the prompt of the step (a venue comes with a line)
    after = await _the_draft(harness, user.id)
    assert after == before  # nothing collected was lost, nothing was changed
    assert after.step is step


@pytest.mark.parametrize(
    ("step", "kind"), KEPT_INPUTS, ids=[f"{s.value}-{k}" for s, k in KEPT_INPUTS]
)
async def test_input_a_step_does_not_ask_for_is_kept_and_prompt_repeated(
    harness: Harness, step: IntakeStep, kind: str
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, step)
    before = await _the_draft(harness, user.id)
    await _send(user, kind)
    texts = await _screen(user, step)
    assert texts[0] == KEPT  # told it was kept ...
    assert len(texts) <= 3  # ... then only the prompt of the step again
    after = await _the_draft(harness, user.id)
    assert after.step is step
    assert after.category == before.category
    assert after.incident_location == before.incident_location  # nothing collected was lost
    if kind in ("photo", "voice"):
        assert len(after.media) == len(before.media) + 1
        assert after.media[-1].kind.value == kind
    elif kind == "location":
        where = after.pending_location or after.reporter_location
        assert where is not None
        assert (where.lat, where.lon) == user.location
    else:
        sent = {"text": "tolong ada kebakaran", "html": HTML_BAIT, "emoji": "🔥🚒🔥"}[kind]
        assert (after.details or "").endswith(sent)
        assert (after.details or "").startswith(before.details or "")


@pytest.mark.parametrize("step", [IntakeStep.CATEGORY, IntakeStep.SUBCATEGORY])
@pytest.mark.parametrize("kind", ["text", "long_text"])
async def test_text_at_the_category_menu_is_read_back_as_a_guess(
    harness: Harness, step: IntakeStep, kind: str
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, step)
    await _send(user, kind)
    guess, _ = await wait_button(user, "guessok")
    assert "Is this what happened?" in (guess.text or "")
    assert "Fire" in (guess.text or "")
    after = await _the_draft(harness, user.id)
    assert after.step is IntakeStep.GUESS
    assert after.category is not None
    assert after.category.value == "FIRE"
    assert after.details is not None
    assert after.details.startswith("tolong ada kebakaran" if kind == "text" else "kebakaran!")
    if kind == "long_text":  # 5500 characters: kept up to the limit, and the citizen is told
        assert len(after.details) == MAX_DETAILS_CHARS
        assert any("maximum length" in (m.text or "") for m in user.messages[-3:])


async def test_wrong_input_is_refused_in_indonesian_when_citizen_speaks_indonesian(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await start_report(user, "FIRE")
    before = await _the_draft(harness, user.id)
    await user.send_sticker("🔥")
    prompt = await user.wait_reply(lambda m: "Di mana keadaan daruratnya?" in (m.text or ""))
    refusal = user.messages[-2]
    assert refusal.text == "Maaf, pesan seperti itu tidak dapat kami proses di sini."
    assert prompt.reply_markup is not None  # the «share my location» keyboard is shown again
    assert any(
        key.get("request_location") for row in prompt.reply_markup["keyboard"] for key in row
    )
    assert await _the_draft(harness, user.id) == before


async def test_phone_keyboard_is_offered_again_when_a_photo_is_sent_at_the_phone_step(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.PHONE)
    await user.send_photo()
    texts = await _screen(user, IntakeStep.PHONE)
    assert texts[0] == KEPT
    keyboard = harness.telegram.reply_keyboard(user.id)
    assert keyboard is not None
    assert any(key.get("request_contact") for row in keyboard["keyboard"] for key in row)
    draft = await _the_draft(harness, user.id)
    assert draft.incident_location is not None
    assert draft.incident_location.area is not None
    assert draft.incident_location.area.kelurahan_name == "Pleburan"


# -- emoji and names --------------------------------------------------------------------------


async def test_name_of_only_emoji_is_refused_with_a_clear_message_when_typed(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.NAME)
    before = await _the_draft(harness, user.id)
    await user.send_text("😀🚑🙏")
    texts = await _screen(user, IntakeStep.NAME)
    assert texts[0] == "Please type your name (2 to 80 characters, with letters)."
    after = await _the_draft(harness, user.id)
    assert after == before
    assert after.caller_name is None
    assert after.caller_phone_e164 == "+6281390001234"  # typed on the way here
    await user.send_text("Budi 🙏")  # emoji next to letters are fine
    await user.wait_reply(PROMPTS[IntakeStep.DETAILS])
    assert (await _the_draft(harness, user.id)).caller_name == "Budi 🙏"


async def test_prefilled_name_is_still_offered_when_a_typed_name_is_refused(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en", first_name="Siti")
    await _reach(user, IntakeStep.NAME)
    await user.send_text("😀😀")
    await _screen(user, IntakeStep.NAME)
    message, _ = find_button(user, "name")  # among the answers to the refused name
    assert "Siti" in " ".join(message.button_texts)


async def test_emoji_only_address_is_echoed_and_can_be_kept_as_description_when_not_found(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.LOCATION)
    await user.send_text("🏠🔥🌳")
    texts = await _screen(user, IntakeStep.LOCATION)
    assert "We could not find «🏠🔥🌳»" in texts[0]
    draft = await _the_draft(harness, user.id)
    assert draft.category is not None
    assert draft.category.value == "MED"
    await tap(user, "note")
    draft = await _the_draft(harness, user.id)
    assert draft.location_note == "🏠🔥🌳"
    assert draft.step is IntakeStep.PHONE


async def test_emoji_only_phone_number_is_refused_and_prompt_repeated_when_typed(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.PHONE)
    before = await _the_draft(harness, user.id)
    await user.send_text("📞📞📞")
    texts = await _screen(user, IntakeStep.PHONE)
    assert texts[0].startswith("That does not look like a phone number.")
    assert await _the_draft(harness, user.id) == before


async def test_emoji_details_are_kept_as_sent_when_added_at_details_step(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.DETAILS)
    assert await reacted(user, await user.send_text("🔥🔥 🚗💥"))
    ref = await submit(user)
    assert (await _ticket(harness, ref)).details == "🔥🔥 🚗💥"


# -- text that looks like HTML ----------------------------------------------------------------


async def test_html_looking_text_is_shown_literally_when_used_as_name_place_and_details(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en", first_name=HTML_BAIT)
    await start_report(user)
    await user.send_text(f"{HTML_BAIT} gang")  # a place the gazetteer does not know
    not_found = await user.wait_reply(lambda m: "could not find" in (m.text or ""))
    assert f"«{HTML_BAIT} gang»" in (not_found.text or "")
    await tap(user, "note")
    await user.share_contact(own=True)  # the contact's name (the bait) is taken as it is
    screen = await user.wait_reply(PROMPTS[IntakeStep.DETAILS])
    assert await reacted(user, await user.send_text(f"{HTML_BAIT} two hurt"))
    assert await reacted(user, await user.send_photo(caption=f"{HTML_BAIT} photo"))
    summary = await harness.telegram.wait_for(  # drawn again with the details
        lambda: _now(user, screen) if "Attachments: 1" in (_now(user, screen).text or "") else None
    )
    ref = await submit(user)
    text = summary.text or ""
    assert f"Who: {HTML_BAIT}, +6281390001234" in text
    assert f"Where: {HTML_BAIT} gang" in text
    assert f"Details: {HTML_BAIT} two hurt" in text
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &lt;script&gt;" in (summary.html or "")

    card = await _operator_card(harness, ref)
    assert f"{HTML_BAIT} gang" in (card.text or "")
    assert f"{HTML_BAIT} two hurt" in (card.text or "")
    assert (card.text or "").count(HTML_BAIT) == 3  # caller, place, details
    photo = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: m.kind == "photo", after=card.message_id
    )
    assert f"{HTML_BAIT} photo" in (photo.text or "")

    await user.send_text(f"{HTML_BAIT} again")
    relayed = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: f"{HTML_BAIT} again" in (m.text or "")
    )
    assert f"{ref} · {HTML_BAIT}:" in (relayed.text or "")  # the header's name, too
    ticket = await _ticket(harness, ref)
    assert ticket.caller_name == HTML_BAIT
    assert ticket.details == f"{HTML_BAIT} two hurt"


async def test_html_looking_address_is_shown_literally_when_it_is_found_on_the_map(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.LOCATION)
    typed = "Jl. Pemuda <b>&</b> kel. Sekayu <script>"
    await user.send_text(typed)
    venue, _ = await wait_button(user, "locok")
    assert "Sekayu" in venue.raw["venue"]["title"]
    await tap(user, "locok")
    await own_contact_and_name(user)
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert ticket.incident_location is not None
    assert ticket.incident_location.address_text == typed
    card = await _operator_card(harness, ref)
    assert typed in (card.text or "")


async def test_html_looking_name_is_shown_literally_when_returning_citizen_confirms(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.NAME)
    await user.send_text(HTML_BAIT)
    await user.wait_reply(PROMPTS[IntakeStep.DETAILS])
    await submit(user)
    await start_report(user, "FIRE")
    await user.share_location()
    await tap(user, "locok")
    prompt = await shown(user, lambda m: "Are you still" in (m.text or ""))
    assert f"Are you still {HTML_BAIT}, phone" in (prompt.text or "")


async def test_photo_caption_reaches_operators_escaped_when_sent_after_submit(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    ref = await full_gps_report(user)
    card = await _operator_card(harness, ref)
    await user.send_photo(caption=f"he is bleeding {HTML_BAIT}")
    await user.wait_reply(lambda m: "Sent to the operator" in (m.text or ""))
    photo = await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: m.kind == "photo", after=card.message_id
    )
    assert ref in (photo.text or "")
    assert f"he is bleeding {HTML_BAIT}" in (photo.text or "")


# -- very long text ---------------------------------------------------------------------------


async def test_summary_and_operator_card_stay_within_telegram_limits_when_details_are_huge(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.DETAILS)
    huge = "".join(f"{i:04d} tolong & <cpt> " for i in range(250))  # 5000 characters
    assert len(huge) == 5000
    await user.send_text(huge)
    await user.wait_reply(lambda m: "was shortened" in (m.text or ""))
    draft = await _the_draft(harness, user.id)
    assert draft.details == huge[:3000]
    assert draft.category is not None
    assert draft.caller_phone_e164 is not None
    await tap(user, "done", fresh=False)  # the summary, with everything
    summary = await shown(user, PROMPTS[IntakeStep.CONFIRM])
    ref = await submit(user)
    assert len(summary.text or "") <= MAX_TEXT_LENGTH
    assert "0000 tolong & <cpt>" in (summary.text or "")
    assert "…" in (summary.text or "")
    card = await _operator_card(harness, ref)
    assert len(card.text or "") <= MAX_TEXT_LENGTH
    assert "0000 tolong & <cpt>" in (card.text or "")
    assert (await _ticket(harness, ref)).details == huge[:3000]


@pytest.mark.parametrize("length", [MAX_TEXT_LENGTH, 5000])
async def test_citizen_is_told_details_were_shortened_when_one_message_is_too_long(
    harness: Harness, length: int
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.DETAILS)
    await user.send_text("a" * length)
    notice = await user.wait_reply()
    assert "was shortened" in (notice.text or "")


async def test_citizen_is_told_details_were_shortened_when_messages_add_up_past_the_limit(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.DETAILS)
    first, second = "a" * 2000, "b" * 2000
    assert await reacted(user, await user.send_text(first))
    await user.send_text(second)
    notice = (await user.wait_reply()).text or ""
    assert "was shortened" in notice
    assert "photos or voice notes" in notice
    draft = await _the_draft(harness, user.id)
    assert draft.details == f"{first}\n{second[:999]}"
    await user.send_text("more")
    assert "was shortened" in ((await user.wait_reply()).text or "")
    assert (await _the_draft(harness, user.id)).details == draft.details


async def test_long_typed_address_is_cut_and_echoed_within_limits_when_over_4096_chars(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.LOCATION)
    await user.send_text("gang buntu " * 500)  # 5500 characters
    texts = await _screen(user, IntakeStep.LOCATION)
    assert texts[0].startswith("🔎 We could not find «gang buntu")
    assert len(texts[0]) < 1000
    draft = await _the_draft(harness, user.id)
    assert draft.unresolved_address is not None
    assert len(draft.unresolved_address) <= 300
    assert draft.category is not None


async def test_long_name_is_refused_and_prompt_repeated_when_over_4096_chars(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.NAME)
    before = await _the_draft(harness, user.id)
    await user.send_text("Budi" * 1250)
    texts = await _screen(user, IntakeStep.NAME)
    assert texts[0] == "Please type your name (2 to 80 characters, with letters)."
    assert await _the_draft(harness, user.id) == before


async def test_long_message_reaches_operators_when_citizen_sends_4096_chars_after_submit(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    ref = await full_gps_report(user)
    await _operator_card(harness, ref)
    text = "Tolong " + "cepat " * 681 + "ya"  # 4095 characters: Telegram lets a citizen send it
    assert len(text) <= MAX_TEXT_LENGTH
    await user.send_text(text)
    await user.wait_reply(lambda m: "Sent to the operator" in (m.text or ""))
    await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: "Tolong cepat cepat" in (m.text or ""), timeout=3
    )


# -- commands in the middle of the flow -------------------------------------------------------


@pytest.mark.parametrize("command", ["foo", "kebakaran", "cancel_all"])
async def test_unknown_command_is_refused_and_prompt_repeated_when_sent_mid_flow(
    harness: Harness, command: str
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.DETAILS)
    assert await reacted(user, await user.send_text("kaki patah"))
    before = await _the_draft(harness, user.id)
    await user.send_command(command)
    texts = await _screen(user, IntakeStep.DETAILS)
    assert texts[0] == SORRY
    assert len(texts) == 2
    after = await _the_draft(harness, user.id)
    assert after == before
    assert after.details == "kaki patah"


@pytest.mark.parametrize("command", ["start", "help"])
async def test_start_greets_and_resumes_the_draft_when_sent_mid_flow(
    harness: Harness, command: str
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.NAME)
    before = await _the_draft(harness, user.id)
    await user.send_command(command)
    texts = await _screen(user, IntakeStep.NAME)
    assert "Siaga112" in texts[0]
    assert "112" in texts[0]
    assert texts[1] == "You have a report in progress. Let's continue where you left off."
    assert await _the_draft(harness, user.id) == before
    await user.send_text("Budi Santoso")
    await user.wait_reply(PROMPTS[IntakeStep.DETAILS])
    draft = await _the_draft(harness, user.id)
    assert draft.caller_name == "Budi Santoso"
    assert draft.caller_phone_e164 == "+6281390001234"


@pytest.mark.parametrize("command", ["report", "lapor"])
async def test_report_command_resumes_the_draft_when_sent_mid_flow(
    harness: Harness, command: str
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.LOCATION_CONFIRM)
    before = await _the_draft(harness, user.id)
    await user.send_command(command)
    texts = await _screen(user, IntakeStep.LOCATION_CONFIRM)
    assert texts[0] == "You have a report in progress. Let's continue where you left off."
    assert "Kel. Pleburan, Kec. Semarang Selatan" in texts[-1]
    assert await _the_draft(harness, user.id) == before


async def test_old_menu_report_button_resumes_the_draft_when_pressed_mid_flow(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await user.send_command("start")
    welcome, data = await wait_button(user, "report")
    await tap(user, "report")  # the welcome's menu became the categories, then the answer
    await tap(user, "grp|FIRE")
    before = await _the_draft(harness, user.id)
    query = await _press_gone(harness, user, welcome, data)
    assert await _alert(harness, query) is None
    await _screen(user, IntakeStep.LOCATION)
    resumed = "You have a report in progress. Let's continue where you left off."
    assert _now(user, welcome).text == resumed
    assert await _the_draft(harness, user.id) == before


async def test_status_mentions_the_draft_and_keeps_it_when_asked_mid_flow(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.PHONE)
    before = await _the_draft(harness, user.id)
    await user.send_command("status")
    reply = await user.wait_reply(lambda m: "Your reports" in (m.text or ""))
    assert "A report is being written" in (reply.text or "")
    assert "112" in (reply.text or "")
    assert await _the_draft(harness, user.id) == before
    await user.send_command("report")
    await user.wait_reply(PROMPTS[IntakeStep.PHONE])


async def test_language_switch_shows_the_current_prompt_again_when_done_mid_flow(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await start_report(user, "FIRE")
    before = await _the_draft(harness, user.id)
    await user.send_command("bahasa")
    menu = await user.wait_reply()
    await tap(user, "lang|en")  # the language menu says so in place, the prompt follows
    await _screen(user, IntakeStep.LOCATION)
    assert (_now(user, menu).text or "").startswith("✅ We will talk to you in English.")
    after = await _the_draft(harness, user.id)
    assert after.language == "en"
    assert (after.category, after.step) == (before.category, before.step)


# -- presses on old, stale or forged buttons --------------------------------------------------

OLD_BUTTONS = [
    ("grp|FIRE", IntakeStep.LOCATION),
    ("grp|FIRE", IntakeStep.DETAILS),
    ("locok", IntakeStep.PHONE),
    ("elsewhere", IntakeStep.NAME),
    ("name", IntakeStep.DETAILS),
    ("done", IntakeStep.CONFIRM),
    ("silent", IntakeStep.CONFIRM),
    ("persons|2-5", IntakeStep.CONFIRM),
]


@pytest.mark.parametrize(
    ("button", "step"), OLD_BUTTONS, ids=[f"{b}-at-{s.value}" for b, s in OLD_BUTTONS]
)
async def test_old_button_is_refused_and_prompt_reshown_when_pressed_after_moving_on(
    harness: Harness, button: str, step: IntakeStep
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, step)
    before = await _the_draft(harness, user.id)
    # The button's message was edited in place since (the old button is gone from it).
    query, after = await _forge_press(harness, user, f"i|{before.id}|{button}")
    texts = await _screen(user, step, after=after)
    assert await _alert(harness, query) == STALE
    assert len(texts) <= 2  # just the current prompt (a venue comes with its question)
    assert await _the_draft(harness, user.id) == before


FORGED = [
    "i|999|grp|NOPE",
    "i|999|grp|FIRE",
    "i|{tid}|grp|NOPE",
    "i|{tid}|cat|FIRE",
    "i|{tid}|persons|lots",
    "i|{tid}|edit|everything",
    "i|{tid}|locok",
    "i|{tid}|teleport",
    "i|{tid}",
    "i|²|done",
    "i|abc|done",
    "i||||",
    "garbage",
    "x|1|grp|FIRE",
    "i|999|notme",
    "i|999|cancel",
]


@pytest.mark.parametrize("data", FORGED)
async def test_forged_callback_data_is_refused_and_prompt_reshown_when_pressed(
    harness: Harness, data: str
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.DETAILS)
    before = await _the_draft(harness, user.id)
    query, after = await _forge_press(harness, user, data.format(tid=before.id))
    assert await _alert(harness, query) == STALE
    texts = await _screen(user, IntakeStep.DETAILS, after=after)
    assert len(texts) == 1
    assert await _the_draft(harness, user.id) == before


async def test_unknown_menu_button_is_refused_and_prompt_reshown_when_pressed_mid_flow(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.LOCATION)
    before = await _the_draft(harness, user.id)
    query, after = await _forge_press(harness, user, "m|help")
    assert await _alert(harness, query) == STALE
    texts = await _screen(user, IntakeStep.LOCATION, after=after)
    assert not any("no report in progress" in text for text in texts)
    assert await _the_draft(harness, user.id) == before


async def test_old_cancel_button_is_refused_when_a_newer_draft_is_in_progress(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user)
    await user.share_location()
    await tap(user, "locok")
    await own_contact_and_name(user)
    await tap(user, "done")
    summary, old_cancel = await wait_button(user, "cancel")  # report 1's summary
    await tap(user, "submit")
    await start_report(user, "FIRE")  # report 2, while report 1 is with the operators
    before = await _the_draft(harness, user.id)
    query = await _press_gone(harness, user, summary, old_cancel)
    assert await _alert(harness, query) == STALE
    assert await _the_draft(harness, user.id) == before


async def test_double_tap_on_send_reminds_of_the_sent_report_when_pressed_after_submit(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.CONFIRM)
    summary, data = find_button(user, "submit")
    await user.press(data, on=summary)
    confirmation = await user.wait_reply(lambda m: "was received" in (m.text or ""))
    query = await _press_gone(harness, user, summary, data)
    assert await _alert(harness, query) == STALE
    reply = await user.wait_reply()
    assert len(await _open_tickets(harness, user.id)) == 1
    assert "no report in progress" not in (reply.text or "")
    ref = REF.search(confirmation.text or "")
    assert ref is not None
    assert ref.group(0) in (reply.text or "")


async def test_second_tap_on_send_creates_no_second_ticket_when_pressed_after_submit(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.CONFIRM)
    summary, data = find_button(user, "submit")
    await user.press(data, on=summary)
    await user.wait_reply(lambda m: "was received" in (m.text or ""))
    query = await _press_gone(harness, user, summary, data)
    assert await _alert(harness, query) == STALE
    await user.wait_reply()
    tickets = await _open_tickets(harness, user.id)
    assert len(tickets) == 1
    assert tickets[0].status is TicketStatus.SUBMITTED
    await harness.outbox_drained()
    assert len(_operator_texts(harness, tickets[0].ref or "?")) == 1  # one card


# -- media after submit -----------------------------------------------------------------------


async def test_sticker_reaches_operators_when_sent_after_submit(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="en")
    ref = await full_gps_report(user)
    card = await _operator_card(harness, ref)
    await user.send_sticker("😭")
    ack = await user.wait_reply()
    assert f"Sent to the operator (report {ref})" in (ack.text or "")
    await harness.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: m.kind == "sticker", after=card.message_id
    )


# -- a citizen who blocks the bot -------------------------------------------------------------


async def test_draft_is_kept_and_flow_resumes_when_citizen_blocks_the_bot_mid_flow(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    other = harness.telegram.add_user(language_code="en")
    await _reach(user, IntakeStep.PHONE)
    user.block_bot()
    mark = harness.telegram.mark()
    await user.share_contact(own=True)
    failed = await harness.telegram.wait_for_call(
        "sendMessage", lambda c: str(c.params.get("chat_id")) == str(user.id), since=mark
    )
    assert failed.error is not None
    assert failed.error.status == 403
    await harness.telegram.wait_for(lambda: harness.errors)
    assert len(harness.errors) == 1
    assert isinstance(harness.errors[0], Forbidden)
    assert "blocked by the user" in str(harness.errors[0])
    harness.errors.clear()
    assert await _eventually(lambda: _blocked(harness, user.id))
    draft = await _the_draft(harness, user.id)  # the contact was taken before the reply failed
    assert draft.step is IntakeStep.DETAILS  # its name too
    assert draft.caller_phone_e164 == "+6281390001234"
    assert draft.caller_phone_verified
    assert draft.incident_location is not None

    await _reach(other, IntakeStep.LOCATION)  # nobody else notices
    to_user = [
        c for c in harness.telegram.calls[mark:] if str(c.params.get("chat_id")) == str(user.id)
    ]
    assert len(to_user) == 1  # no retry, no "something went wrong" sent into the void

    user.block_bot(blocked=False)
    await user.send_command("start")
    texts = await _screen(user, IntakeStep.DETAILS)
    assert "You have a report in progress. Let's continue where you left off." in texts
    assert not (await _citizen(harness, user.id)).blocked_bot
    ref = await submit(user)
    ticket = await _ticket(harness, ref)
    assert ticket.caller_phone_verified
    assert ticket.caller_name == "Budi"
    assert ticket.category is not None
    assert ticket.category.value == "MED"
    assert not any("went wrong" in (m.text or "") for m in other.messages + user.messages)


async def _blocked(harness: Harness, telegram_id: int) -> bool:
    return (await _citizen(harness, telegram_id)).blocked_bot


# -- live locations ---------------------------------------------------------------------------


def _location_updates(harness: Harness, ref: str) -> list[str]:
    """The operators' «live location updated» pins of a ticket (operators read Indonesian)."""
    pins = [m for m in harness.operator_messages() if m.kind == "venue"]
    titles = [str(m.raw["venue"]["title"]) for m in pins]
    return [title for title in titles if ref in title and "lokasi terkini" in title]


async def _moved_to(harness: Harness, telegram_id: int, point: tuple[float, float]) -> Ticket:
    async def probe() -> Ticket | None:
        draft = await _draft(harness, telegram_id)
        location = draft and (draft.pending_location or draft.incident_location)
        return draft if location and location.lat == point[0] else None

    return await _eventually(probe)


async def _ticket_moved_to(harness: Harness, ref: str, point: tuple[float, float]) -> Ticket:
    async def probe() -> Ticket | None:
        ticket = await _ticket(harness, ref)
        location = ticket.incident_location
        return ticket if location and location.lat == point[0] else None

    return await _eventually(probe)


async def test_live_location_moves_the_draft_and_the_ticket_when_citizen_shares_it_live(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="en")
    await start_report(user)
    shared = await user.share_location(live_period=900)
    await wait_button(user, "locok")
    draft = await _the_draft(harness, user.id)
    pending = draft.pending_location
    assert pending is not None
    assert pending.source is LocationSource.LIVE
    assert pending.live_until == pending.captured_at + timedelta(seconds=900)

    harness.clock.advance(timedelta(seconds=30))
    await user.update_live_location(shared, *SEKAYU, accuracy=8.0)
    draft = await _moved_to(harness, user.id, SEKAYU)
    assert draft.pending_location is not None
    assert draft.pending_location.area is not None
    assert draft.pending_location.area.kelurahan_name == "Sekayu"
    assert draft.pending_location.accuracy_m == 8.0
    assert draft.step is IntakeStep.LOCATION_CONFIRM
    assert draft.category is not None

    await tap(user, "locok")
    await own_contact_and_name(user)
    harness.clock.advance(timedelta(seconds=20))
    await user.update_live_location(shared, *PURWOSARI)  # moving while giving the details
    draft = await _moved_to(harness, user.id, PURWOSARI)
    assert draft.reporter_location is not None
    assert draft.reporter_location.lat == PURWOSARI[0]
    assert draft.caller_name is not None
    assert draft.step is IntakeStep.DETAILS
    assert not harness.operator_messages()  # nothing goes to operators before submit

    ref = await submit(user)
    card = await _operator_card(harness, ref)
    assert "Purwosari" in (card.text or "")
    harness.clock.advance(timedelta(seconds=61))
    await user.update_live_location(shared, *PLEBURAN_EAST)
    ticket = await _ticket_moved_to(harness, ref, PLEBURAN_EAST)
    assert ticket.incident_location is not None
    assert ticket.incident_location.area is not None
    assert ticket.incident_location.area.kelurahan_name == "Pleburan"
    await harness.outbox_drained()
    assert len(_location_updates(harness, ref)) == 1
    pin = harness.operator_messages()[-1]  # one pin that says what it is: no bare header
    assert pin.kind == "venue"
    assert pin.raw["venue"]["address"].startswith("Kel. Pleburan, Kec. Semarang Selatan")
    assert pin.raw["venue"]["location"]["latitude"] == pytest.approx(PLEBURAN_EAST[0], abs=1e-5)


async def _submitted_with_live_location(harness: Harness) -> tuple[SimUser, JSON, str]:
    """A citizen who shared a live location and sent the report; the card has arrived."""
    user = harness.telegram.add_user(language_code="en")
    await start_report(user)
    shared = await user.share_location(live_period=3600)
    await tap(user, "locok")
    await own_contact_and_name(user)
    ref = await submit(user)
    await _operator_card(harness, ref)
    return user, shared, ref


async def test_operators_get_at_most_one_location_update_a_minute_when_live_location_moves(
    harness: Harness,
) -> None:
    user, shared, ref = await _submitted_with_live_location(harness)
    lat, lon = SIMPANG_LIMA
    for seconds, expected in ((61, 1), (10, 1), (10, 1), (45, 2), (61, 3), (5, 3)):
        harness.clock.advance(timedelta(seconds=seconds))
        lat += 0.0004
        await user.update_live_location(shared, lat, lon)
        await _ticket_moved_to(harness, ref, (lat, lon))
        await harness.outbox_drained()
        assert len(_location_updates(harness, ref)) == expected, seconds
    ticket = await _ticket(harness, ref)
    assert ticket.reporter_location is not None
    assert ticket.reporter_location.lat == lat


async def test_operators_get_a_location_update_each_minute_when_live_location_moves_often(
    harness: Harness,
) -> None:
    user, shared, ref = await _submitted_with_live_location(harness)
    lat, lon = SIMPANG_LIMA
    for _ in range(9):  # every 20 seconds for three minutes
        harness.clock.advance(timedelta(seconds=20))
        lat += 0.0004
        await user.update_live_location(shared, lat, lon)
        await _ticket_moved_to(harness, ref, (lat, lon))
    await harness.outbox_drained()
    assert 2 <= len(_location_updates(harness, ref)) <= 3


# -- limits: open tickets and flooding --------------------------------------------------------


async def test_new_report_is_refused_with_112_when_citizen_has_max_open_tickets(
    limited: Harness,
) -> None:
    user = limited.telegram.add_user(language_code="en")
    ref = await full_gps_report(user)
    await user.send_command("report")
    reply = await user.wait_reply()
    text = reply.text or ""
    assert "You have reached the limit of open reports" in text
    assert ref in text
    assert "call 112 now" in text
    assert await _draft(limited, user.id) is None
    welcome = user.messages[0]  # the greeting, whose menu became the report's screens
    query = await _press_gone(harness=limited, user=user, message=welcome, data="m|report")
    again = await shown(user, lambda m: "limit of open reports" in (m.text or ""))
    assert "You have reached the limit of open reports" in (again.text or "")
    assert await _alert(limited, query) is None
    assert await _draft(limited, user.id) is None
    tickets = await _open_tickets(limited, user.id)
    assert [t.ref for t in tickets] == [ref]
    assert tickets[0].status is TicketStatus.SUBMITTED
    await user.send_text("masih di sini")  # what the refusal promises: it reaches them
    ack = await user.wait_reply()
    assert f"Sent to the operator (report {ref})" in (ack.text or "")


async def test_messages_past_the_flood_limit_are_held_back_with_112_when_citizen_floods(
    limited: Harness,
) -> None:
    user = limited.telegram.add_user(language_code="en")
    ref = await full_gps_report(user)
    await _operator_card(limited, ref)
    for n in range(3):
        await user.send_text(f"pesan {n}")
        ack = await user.wait_reply()
        assert f"Sent to the operator (report {ref})" in (ack.text or "")
    await user.send_text("pesan 3")
    warning = await user.wait_reply()
    assert "sending messages very fast" in (warning.text or "")
    assert "call 112" in (warning.text or "")
    await limited.outbox_drained()
    assert len(_operator_texts(limited, "pesan ")) == 3
    assert not _operator_texts(limited, "pesan 3")

    limited.clock.advance(timedelta(seconds=61))
    await user.send_text("pesan 4")
    ack = await user.wait_reply()
    assert f"Sent to the operator (report {ref})" in (ack.text or "")
    await limited.telegram.wait_for_message(OPERATOR_CHAT, lambda m: "pesan 4" in (m.text or ""))
    ticket = await _ticket(limited, ref)
    assert ticket.status is TicketStatus.SUBMITTED
