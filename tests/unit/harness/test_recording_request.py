"""The handler tier: process_update with a request class that records and answers calls."""

from __future__ import annotations

import datetime as dtm
from collections.abc import Callable
from typing import Any

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, MessageId, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import (
    CallbackContext,
    CallbackQueryHandler,
    CommandHandler,
    Defaults,
    MessageHandler,
    filters,
)

from bot.double.botapi_model import BotApiModel
from bot.double.recording import HandlerError, HandlerHarness, RecordingRequest
from bot.double.updates import JSON, UpdateFactory, private_chat_dict, user_dict

Context = CallbackContext[Any, Any, Any, Any]


async def start_menu(update: Update, context: Context) -> None:
    """Asks what happened, with one button per category."""
    assert update.effective_message is not None
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton("🔥 Kebakaran", callback_data="cat:FIRE")]]
    )
    await update.effective_message.reply_text("<b>Apa yang terjadi?</b>", reply_markup=keyboard)


async def category_chosen(update: Update, context: Context) -> None:
    """Confirms the category in place."""
    query = update.callback_query
    assert query is not None
    await query.answer("OK")
    await query.edit_message_text(f"Kategori: <code>{query.data}</code>")


def html_harness(request: RecordingRequest | None = None) -> HandlerHarness:
    harness = HandlerHarness.build(
        lambda builder: builder.defaults(Defaults(parse_mode=ParseMode.HTML)), request=request
    )
    harness.app.add_handler(CommandHandler("start", start_menu))
    harness.app.add_handler(CallbackQueryHandler(category_chosen))
    return harness


async def test_calls_are_recorded_with_decoded_params_when_a_handler_replies() -> None:
    async with html_harness() as harness:
        budi = harness.add_user(first_name="Budi")
        await budi.send_command("start")

    call = harness.request.last_call("sendMessage")
    assert [c.method for c in harness.request.calls] == ["getMe", "sendMessage"]
    assert call.params["chat_id"] == budi.id
    assert call.params["text"] == "<b>Apa yang terjadi?</b>"
    assert call.params["parse_mode"] == "HTML"
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "🔥 Kebakaran", "callback_data": "cat:FIRE"}]]
    }
    assert harness.request.sent_texts(budi.id) == ["<b>Apa yang terjadi?</b>"]


async def test_get_me_describes_the_test_bot_when_the_application_initializes() -> None:
    async with HandlerHarness.build() as harness:
        me = harness.app.bot.bot
    assert me.username == "siaga112_test_bot"
    assert me.is_bot


async def test_simulated_user_presses_a_button_when_on_the_handler_tier() -> None:
    async with html_harness() as harness:
        budi = harness.add_user()
        await budi.send_command("start")
        menu = budi.last_message
        assert menu is not None
        query = await budi.press("cat:FIRE")

    assert harness.model.callback_answers[query["id"]]["text"] == "OK"
    assert menu.text == "Kategori: cat:FIRE"
    assert menu.html == "Kategori: <code>cat:FIRE</code>"
    assert menu.inline_buttons == []


async def test_factory_built_callback_can_edit_its_message_when_fed_directly() -> None:
    async with html_harness() as harness:
        citizen = user_dict(31337, "Rudi")
        menu = harness.updates.message(
            harness.model.bot_sender,
            {
                "text": "Apa yang terjadi?",
                "reply_markup": {
                    "inline_keyboard": [[{"text": "🔥", "callback_data": "cat:FIRE"}]]
                },
            },
            chat=private_chat_dict(citizen),
        )
        await harness.feed(harness.updates.callback_query(citizen, menu, "cat:FIRE"))

    edited = harness.model.message(citizen["id"], menu["message_id"])
    assert edited is not None
    assert edited.text == "Kategori: cat:FIRE"


async def test_default_results_are_valid_ptb_objects_when_methods_are_called() -> None:
    async with HandlerHarness.build() as harness:
        bot = harness.app.bot
        citizen, operators = 4242, -1001234567890
        first = await bot.send_message(citizen, "satu")
        location = await bot.send_location(citizen, -6.99, 110.42, horizontal_accuracy=15)
        venue = await bot.send_venue(citizen, -6.99, 110.42, "Simpang Lima", "Semarang")
        photo = await bot.send_photo(citizen, b"\xff\xd8jpeg", caption="foto")
        voice = await bot.send_voice(citizen, b"OggS voice")
        copied = await bot.copy_message(operators, citizen, first.message_id)
        edited = await bot.edit_message_text("satu (diubah)", citizen, first.message_id)
        topic = await bot.create_forum_topic(operators, "SMG-0001")
        assert await bot.set_my_commands([("lapor", "Laporkan darurat")])
        assert await bot.delete_webhook()

    assert [m.message_id for m in (first, location, venue, photo, voice)] == [1, 2, 3, 4, 5]
    assert location.location is not None
    assert location.location.horizontal_accuracy == 15
    assert venue.venue is not None
    assert venue.venue.title == "Simpang Lima"
    assert photo.photo
    assert voice.voice is not None
    assert isinstance(copied, MessageId)
    assert edited.text == "satu (diubah)"
    assert topic.message_thread_id == copied.message_id + 1


async def test_canned_result_replaces_the_default_when_set() -> None:
    request = RecordingRequest()
    request.set_result(
        "getChat",
        {
            "id": 77,
            "type": "private",
            "first_name": "Canned",
            "accent_color_id": 1,
            "max_reaction_count": 0,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        },
    )
    request.set_result(
        "sendMessage",
        lambda params: {
            "message_id": 999,
            "date": 0,
            "chat": {"id": params["chat_id"], "type": "private"},
            "text": "canned",
        },
    )
    async with HandlerHarness.build(request=request) as harness:
        chat = await harness.app.bot.get_chat(77)
        sent = await harness.app.bot.send_message(5, "halo")
    assert chat.first_name == "Canned"
    assert sent.message_id == 999
    assert request.last_call("sendMessage").params["text"] == "halo"


async def test_bad_html_raises_bad_request_when_only_recorded() -> None:
    async with HandlerHarness.build() as harness:
        with pytest.raises(BadRequest, match=r"(?i)unsupported start tag"):
            await harness.app.bot.send_message(1, "Suhu <40 derajat", parse_mode=ParseMode.HTML)
        with pytest.raises(BadRequest, match="Button_data_invalid"):
            await harness.app.bot.send_message(
                1,
                "x",
                reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton("x", callback_data="d" * 65)]]
                ),
            )
    assert not harness.request.last_call("sendMessage").ok


async def test_unknown_chat_is_rejected_when_the_model_is_strict() -> None:
    async with HandlerHarness.build(request=RecordingRequest(BotApiModel())) as harness:
        with pytest.raises(BadRequest, match="Chat not found"):
            await harness.app.bot.send_message(1, "halo")


async def test_injected_forbidden_reaches_the_handler_when_the_citizen_blocked_the_bot() -> None:
    outcomes: list[str] = []

    async def notify(update: Update, context: Context) -> None:
        assert update.effective_message is not None
        try:
            await update.effective_message.reply_text("Peringatan")
        except Forbidden as error:
            outcomes.append(error.message)

    async with HandlerHarness.build() as harness:
        harness.app.add_handler(MessageHandler(filters.TEXT, notify))
        budi = harness.add_user()
        harness.request.fail_next("sendMessage", 403)
        await budi.send_text("halo")
    assert outcomes == ["Forbidden: bot was blocked by the user"]


async def test_handler_error_is_raised_in_the_test_when_a_handler_fails() -> None:
    async def broken(update: Update, context: Context) -> None:
        raise ValueError("boom")

    async with HandlerHarness.build() as harness:
        harness.app.add_handler(MessageHandler(filters.ALL, broken))
        budi = harness.add_user()
        with pytest.raises(HandlerError) as error:
            await budi.send_text("halo")
        harness.raise_errors = False
        await budi.send_text("lagi")
    assert isinstance(error.value.__cause__, ValueError)
    assert len(harness.errors) == 2


FACTORY = UpdateFactory()
BUDI = user_dict(1001, "Budi")


@pytest.mark.parametrize(
    ("build", "check"),
    [
        (lambda: FACTORY.text(BUDI, "halo"), lambda u: u.message.text == "halo"),
        (
            lambda: FACTORY.command(BUDI, "start", "ref"),
            lambda u: (
                u.message.text == "/start ref" and u.message.entities[0].type == "bot_command"
            ),
        ),
        (lambda: FACTORY.contact(BUDI), lambda u: u.message.contact.user_id == 1001),
        (lambda: FACTORY.contact(BUDI, own=False), lambda u: u.message.contact.user_id is None),
        (
            lambda: FACTORY.location(BUDI, -6.99, 110.42, accuracy=9.5),
            lambda u: u.message.location.horizontal_accuracy == 9.5,
        ),
        (
            lambda: FACTORY.live_location_edit(
                FACTORY.location(BUDI, live_period=600)["message"], -6.9, 110.4
            ),
            lambda u: (
                u.edited_message.location.live_period == dtm.timedelta(seconds=600)
                and u.edited_message.edit_date
            ),
        ),
        (lambda: FACTORY.photo(BUDI, caption="asap"), lambda u: len(u.message.photo) == 3),
        (lambda: FACTORY.voice(BUDI), lambda u: u.message.voice.mime_type == "audio/ogg"),
        (lambda: FACTORY.sticker(BUDI), lambda u: u.message.sticker.emoji == "👍"),
        (
            lambda: FACTORY.callback_query(BUDI, FACTORY.text(BUDI, "menu")["message"], "cat:FIRE"),
            lambda u: u.callback_query.data == "cat:FIRE" and u.callback_query.chat_instance,
        ),
    ],
)
async def test_factory_update_decodes_into_ptb_objects_when_built(
    build: Callable[[], JSON], check: Callable[[Any], bool]
) -> None:
    raw = build()
    async with HandlerHarness.build() as harness:
        update = Update.de_json(raw, harness.app.bot)
    assert update.update_id == raw["update_id"]
    assert check(update)
