"""The fake Bot API, driven by the real python-telegram-bot over loopback."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from typing import Any

import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import (
    CallbackContext,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.double.errors import HandlerError
from bot.double.fake_bot_api import FakeBotApi, polling

OPERATORS = -1001234567890
Context = CallbackContext[Any, Any, Any, Any]


async def test_echo_reaches_the_citizen_when_the_real_application_polls_the_fake(
    fake_bot_api: FakeBotApi,
) -> None:
    app = fake_bot_api.application_builder().build()

    async def echo(update: Update, context: Context) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"echo: {update.effective_message.text}")

    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    async with polling(app):
        budi = fake_bot_api.add_user(first_name="Budi")
        sent = await budi.send_text("12345")
        reply = await budi.wait_reply()
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 2.0, "teardown waited for a long poll"
    assert reply.text == "echo: 12345"
    assert reply.message_id == sent["message_id"] + 1
    assert [c.method for c in fake_bot_api.calls] == ["getMe", "deleteWebhook", "sendMessage"]
    assert fake_bot_api.calls[-1].params["text"] == "echo: 12345"
    assert fake_bot_api.pending_updates == []


async def test_commands_contacts_locations_and_media_arrive_as_ptb_objects_when_polled(
    fake_bot_api: FakeBotApi,
) -> None:
    app = fake_bot_api.application_builder().build()
    seen: list[Update] = []

    async def remember(update: Update, context: Context) -> None:
        seen.append(update)

    app.add_handler(CommandHandler("start", remember))
    app.add_handler(MessageHandler(filters.ALL, remember))
    async with polling(app):
        siti = fake_bot_api.add_user(first_name="Siti", phone_number="6281390001234")
        await siti.send_command("start", "lapor")
        await siti.share_contact(own=True)
        live = await siti.share_location(-6.98, 110.41, 8.5, live_period=900)
        await siti.update_live_location(live, -6.981, 110.411, 6.0)
        await siti.send_photo("asap tebal")
        await siti.send_voice(5)
        await siti.send_sticker()
        await fake_bot_api.wait_for(lambda: len(seen) == 7)

    start, contact, location, moved, photo, voice, sticker = seen
    assert start.message is not None
    assert start.message.text == "/start lapor"
    assert contact.message is not None
    assert contact.message.contact is not None
    assert contact.message.contact.user_id == siti.id
    assert location.message is not None
    assert location.message.location is not None
    assert location.message.location.horizontal_accuracy == 8.5
    assert moved.edited_message is not None
    assert moved.edited_message.location is not None
    assert moved.edited_message.message_id == live["message_id"]
    assert moved.edited_message.location.latitude == -6.981
    assert photo.message is not None
    assert photo.message.caption == "asap tebal"
    assert voice.message is not None
    assert voice.message.voice is not None
    assert sticker.message is not None
    assert sticker.message.sticker is not None


async def test_inline_button_press_is_answered_and_the_message_edited_when_handled(
    fake_bot_api: FakeBotApi,
) -> None:
    app = fake_bot_api.application_builder().build()

    async def ask(update: Update, context: Context) -> None:
        assert update.effective_message is not None
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton("🔥 Kebakaran", callback_data="cat:FIRE")]]
        )
        await update.effective_message.reply_text("Apa yang terjadi?", reply_markup=keyboard)

    async def chosen(update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        assert query.message is not None
        assert query.chat_instance
        await query.answer()
        await query.edit_message_text(f"Dipilih: {query.data}")

    app.add_handler(CommandHandler("start", ask))
    app.add_handler(CallbackQueryHandler(chosen))
    async with polling(app):
        budi = fake_bot_api.add_user()
        await budi.send_command("start")
        menu = await budi.wait_reply()
        assert menu.button_texts == ["🔥 Kebakaran"]
        query = await budi.press("🔥 Kebakaran")
        await fake_bot_api.wait_for_call("answerCallbackQuery")
        await fake_bot_api.wait_for(lambda: menu.text == "Dipilih: cat:FIRE")

    assert query["data"] == "cat:FIRE"
    assert menu.inline_buttons == [], "editing without reply_markup removes the keyboard"
    with pytest.raises(LookupError):
        await budi.press("🔥 Kebakaran", on=menu)


async def test_reply_keyboard_contact_button_shares_the_own_contact_when_pressed(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_command("start")
    keyboard = ReplyKeyboardMarkup(
        [[KeyboardButton("📱 Kirim nomor saya", request_contact=True)]], one_time_keyboard=True
    )
    await bot.send_message(budi.id, "Nomor Anda?", reply_markup=keyboard)

    message = await budi.press("📱 Kirim nomor saya")

    assert message["contact"]["user_id"] == budi.id
    assert fake_bot_api.reply_keyboard(budi.id) is None, "one_time_keyboard hides after use"
    assert fake_bot_api.pending_updates[-1]["message"]["contact"]["phone_number"] == "6281390001234"


async def test_bad_request_is_raised_by_ptb_when_html_cannot_be_parsed(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    for text in ("<b>Lokasi: <i>Simpang Lima</b></i>", "Jl. Pemuda <3", "Gajah & Mada", "<p>x</p>"):
        with pytest.raises(BadRequest, match=r"[Cc]an't parse entities"):
            await bot.send_message(budi.id, text, parse_mode=ParseMode.HTML)
    assert fake_bot_api.messages_for(budi.id) == []


async def test_text_is_rejected_when_longer_than_4096_characters_after_parsing(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    await bot.send_message(budi.id, "<b>" + "a" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(budi.id, "a" * 4097)
    with pytest.raises(BadRequest, match="Message caption is too long"):
        await bot.send_photo(budi.id, b"\xff\xd8jpeg", caption="c" * 1025)


async def test_text_is_rejected_when_empty_or_only_whitespace(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(budi.id, "  \n ")


async def test_callback_data_is_rejected_when_longer_than_64_bytes(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    ok = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="x" * 64)]])
    await bot.send_message(budi.id, "ok", reply_markup=ok)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(budi.id, "no", reply_markup=too_long)


async def test_retry_after_is_raised_with_its_seconds_when_429_is_injected(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    fake_bot_api.fail_next("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as error:
        await bot.send_message(budi.id, "satu")
    assert error.value.retry_after == dtm.timedelta(seconds=7)
    await bot.send_message(budi.id, "dua")  # the injection was for one call only
    assert [c.ok for c in fake_bot_api.calls_to("sendMessage")] == [False, True]


async def test_forbidden_is_raised_when_the_user_blocked_the_bot(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    budi.block_bot()
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(budi.id, "Peringatan banjir")


async def test_network_error_is_raised_when_the_server_fails_with_5xx(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    fake_bot_api.fail_next("sendMessage", 502, count=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(budi.id, "x")
    fake_bot_api.fail_next("*", 500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_chat_action(budi.id, "typing")


async def test_chat_not_found_is_raised_when_the_user_never_wrote_to_the_bot(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    stranger = fake_bot_api.add_user()
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(stranger.id, "halo")


async def test_unknown_method_answers_400_and_wrong_token_401_when_called(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    with pytest.raises(BadRequest, match="not implemented"):
        await bot.do_api_request("sendTelepathy", api_kwargs={"chat_id": 1})
    with pytest.raises(InvalidToken):
        async with Bot("1:wrong", base_url=fake_bot_api.base_url):
            pass


async def test_forum_topics_hold_the_operator_conversation_when_created(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    fake_bot_api.register_forum(OPERATORS, "Operator 112")
    fake_bot_api.register_forum(-1009, "Damkar", is_forum=False)
    topic = await bot.create_forum_topic(OPERATORS, "SMG-0001 🔥 Kebakaran")
    card = await bot.send_message(
        OPERATORS,
        "<b>SMG-0001</b>",
        parse_mode=ParseMode.HTML,
        message_thread_id=topic.message_thread_id,
    )
    await bot.edit_forum_topic(OPERATORS, topic.message_thread_id, name="SMG-0001 ✅")
    await bot.close_forum_topic(OPERATORS, topic.message_thread_id)

    assert card.message_thread_id == topic.message_thread_id
    assert card.is_topic_message
    assert fake_bot_api.topics(OPERATORS) == {topic.message_thread_id: "SMG-0001 ✅"}
    assert [
        m.text for m in fake_bot_api.messages_for(OPERATORS, thread_id=topic.message_thread_id)
    ] == [
        None,
        "SMG-0001",
    ]
    with pytest.raises(BadRequest, match="not a forum"):
        await bot.create_forum_topic(-1009, "x")
    with pytest.raises(BadRequest, match="Message thread not found"):
        await bot.send_message(OPERATORS, "x", message_thread_id=999)
    chat = await bot.get_chat(OPERATORS)
    assert chat.is_forum
    member = await bot.get_chat_member(OPERATORS, bot.id)
    assert member.status == "administrator"


async def test_operator_message_is_copied_to_the_citizen_when_relayed(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    fake_bot_api.register_forum(OPERATORS)
    topic = await bot.create_forum_topic(OPERATORS, "SMG-0002")
    citizen = fake_bot_api.add_user(first_name="Budi")
    operator = fake_bot_api.add_user(first_name="Rina")
    await citizen.send_text("halo")
    said = await operator.send_text(
        "Petugas menuju lokasi", chat_id=OPERATORS, thread_id=topic.message_thread_id
    )
    assert said["is_topic_message"]
    assert said["reply_to_message"]["forum_topic_created"]

    copied = await bot.copy_message(citizen.id, OPERATORS, said["message_id"])

    assert citizen.last_message is not None
    assert citizen.last_message.message_id == copied.message_id
    assert citizen.last_message.text == "Petugas menuju lokasi"


async def test_edit_is_rejected_when_nothing_changes(fake_bot_api: FakeBotApi, bot: Bot) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    sent = await bot.send_message(budi.id, "Tiket <b>SMG-1</b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text(
            "Tiket <b>SMG-1</b>", budi.id, sent.message_id, parse_mode=ParseMode.HTML
        )
    await bot.edit_message_text(
        "Tiket <b>SMG-1</b> diterima", budi.id, sent.message_id, parse_mode=ParseMode.HTML
    )
    await bot.delete_message(budi.id, sent.message_id)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", budi.id, sent.message_id)
    assert fake_bot_api.messages_for(budi.id) == []


async def test_location_venue_and_uploaded_photo_are_stored_when_sent(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    await bot.send_location(budi.id, -6.99, 110.42, horizontal_accuracy=20)
    await bot.send_venue(budi.id, -6.99, 110.42, "Simpang Lima", "Jl. Pahlawan, Semarang")
    photo = await bot.send_photo(budi.id, b"\xff\xd8 a photo", caption="Foto lokasi")

    kinds = [m.kind for m in budi.messages]
    assert kinds == ["location", "venue", "photo"]
    downloaded = await (await bot.get_file(photo.photo[-1].file_id)).download_as_bytearray()
    assert bytes(downloaded) == b"\xff\xd8 a photo"


async def test_users_media_can_be_downloaded_when_the_bot_fetches_it(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    voice = await budi.send_voice(3)
    file = await bot.get_file(voice["voice"]["file_id"])
    assert file.file_path is not None
    assert file.file_path.startswith(fake_bot_api.base_file_url)
    assert len(await file.download_as_bytearray()) == voice["voice"]["file_size"]


async def test_long_poll_waits_for_an_update_when_none_is_pending(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=dtm.timedelta(seconds=0.3)) == ()
    assert time.monotonic() - started >= 0.25

    budi = fake_bot_api.add_user()
    waiting = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await budi.send_text("ada banjir")
    updates = await waiting
    assert time.monotonic() - started < 1.0
    assert [u.message.text for u in updates if u.message] == ["ada banjir"]
    confirmed = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
    assert confirmed == ()
    assert fake_bot_api.pending_updates == []


async def test_poll_is_counted_when_it_starts_while_the_long_poll_still_waits(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    waiting = asyncio.create_task(bot.get_updates(timeout=10))
    started = time.monotonic()
    await fake_bot_api.wait_for(lambda: fake_bot_api.poll_count == 1, timeout=2)
    assert time.monotonic() - started < 1.0
    assert not waiting.done()
    await fake_bot_api.add_user().send_text("ada banjir")
    assert len(await waiting) == 1
    assert fake_bot_api.poll_count == 1


async def test_string_parameters_stay_strings_when_posted_as_form_fields(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    await budi.send_text("halo")
    await bot.send_message(
        budi.id,
        "112",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("1", callback_data="1")]]),
    )
    params = fake_bot_api.calls_to("sendMessage")[-1].params
    assert params["text"] == "112"
    assert params["chat_id"] == budi.id
    assert params["reply_markup"] == {"inline_keyboard": [[{"text": "1", "callback_data": "1"}]]}


async def test_bot_commands_are_rejected_when_not_lowercase(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    await bot.set_my_commands([("lapor", "Laporkan keadaan darurat")])
    assert [c.command for c in await bot.get_my_commands()] == ["lapor"]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Lapor", "x")])


async def test_polling_block_fails_when_a_handler_crashed(fake_bot_api: FakeBotApi) -> None:
    async def broken(update: Update, context: Context) -> None:
        raise ValueError("boom")

    app = fake_bot_api.application_builder().build()
    app.add_handler(MessageHandler(filters.ALL, broken))
    budi = fake_bot_api.add_user()

    async def run() -> None:
        async with polling(app):
            await budi.send_text("halo")
            # Once fetched, Application.stop() processes the update before it returns.
            await fake_bot_api.wait_for(lambda: not fake_bot_api.pending_updates)

    with pytest.raises(HandlerError) as error:
        await run()
    assert isinstance(error.value.__cause__, ValueError)


async def test_handler_errors_are_collected_when_a_list_is_given(fake_bot_api: FakeBotApi) -> None:
    async def broken(update: Update, context: Context) -> None:
        raise ValueError("boom")

    app = fake_bot_api.application_builder().build()
    app.add_handler(MessageHandler(filters.ALL, broken))
    errors: list[BaseException] = []
    async with polling(app, errors=errors):
        await fake_bot_api.add_user().send_text("halo")
        await fake_bot_api.wait_for(lambda: errors)
    assert [str(e) for e in errors] == ["boom"]


async def test_test_double_bug_is_reported_as_such_when_the_model_crashes(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    def crash(params: dict[str, Any]) -> None:
        raise KeyError("oops")

    fake_bot_api.set_result("getChat", crash)
    with pytest.raises(NetworkError, match="test double crashed"):
        await bot.get_chat(1)


async def test_pinned_messages_are_kept_in_order_when_pinned_and_unpinned(
    fake_bot_api: FakeBotApi,
) -> None:
    fake_bot_api.register_forum(OPERATORS, "Operator 112")
    async with Bot(fake_bot_api.token, base_url=fake_bot_api.base_url) as bot:
        first = await bot.send_message(OPERATORS, "board")
        second = await bot.send_message(OPERATORS, "other")
        assert await bot.pin_chat_message(OPERATORS, first.message_id)
        assert await bot.pin_chat_message(OPERATORS, second.message_id)
        assert await bot.pin_chat_message(OPERATORS, first.message_id)  # pinned again: last
        chat = fake_bot_api.model.chats[OPERATORS]
        assert chat.pinned == [second.message_id, first.message_id]
        assert await bot.unpin_chat_message(OPERATORS, second.message_id)
        assert chat.pinned == [first.message_id]
        with pytest.raises(BadRequest, match=r"(?i)message to pin not found"):
            await bot.pin_chat_message(OPERATORS, 9999)
        with pytest.raises(BadRequest, match=r"(?i)message to unpin not found"):
            await bot.unpin_chat_message(OPERATORS, second.message_id)


async def test_reaction_is_stored_on_the_users_message_when_the_bot_reacts(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    sent = await budi.send_text("ada kebakaran")
    message_id = int(sent["message_id"])

    assert await bot.set_message_reaction(budi.id, message_id, "👍")

    stored = fake_bot_api.model.message(budi.id, message_id)
    assert stored is not None
    assert stored.reaction == [{"type": "emoji", "emoji": "👍"}]
    assert await bot.set_message_reaction(budi.id, message_id, [])
    assert stored.reaction == []


async def test_reaction_is_refused_when_not_an_allowed_emoji_or_more_than_one(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    budi = fake_bot_api.add_user()
    sent = await budi.send_text("halo")
    message_id = int(sent["message_id"])

    with pytest.raises(BadRequest, match="Reaction_invalid"):
        await bot.set_message_reaction(budi.id, message_id, "🚑")
    with pytest.raises(BadRequest, match="Reactions_too_many"):
        await bot.set_message_reaction(budi.id, message_id, ["👍", "🔥"])
    with pytest.raises(BadRequest, match="not found"):
        await bot.set_message_reaction(budi.id, message_id + 100, "👍")


async def test_album_photos_arrive_as_messages_sharing_one_media_group_id_when_sent(
    fake_bot_api: FakeBotApi,
) -> None:
    budi = fake_bot_api.add_user()
    sent = await budi.send_album(3, caption="banjir")

    groups = {message["media_group_id"] for message in sent}
    assert len(sent) == 3
    assert len(groups) == 1
    assert [message.get("caption") for message in sent] == ["banjir", None, None]
