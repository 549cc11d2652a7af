"""Telegram's flood control in the Bot API double, on a fake monotonic clock."""

from __future__ import annotations

import datetime as dtm
from typing import Any

import aiohttp
import pytest
from telegram import Bot
from telegram.error import RetryAfter

from bot.double.botapi_model import ApiError, BotApiModel
from bot.double.fake_bot_api import FakeBotApi
from bot.double.flood import (
    PRIVATE_WINDOW,
    FloodEvent,
    FloodLimits,
    Window,
    counts_against_limits,
)

GROUP = -1001234567890
OTHER_GROUP = -1005550001111
CITIZEN = 700_100_001


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> None:
        """Sets the time to ``offset`` seconds after 1000."""
        self.now = 1000.0 + offset


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeBotApi:
    """A double (not listening) whose unknown chats exist on first use."""
    double = FakeBotApi(BotApiModel(lenient=True, monotonic=clock))
    double.register_forum(GROUP)
    double.register_forum(OTHER_GROUP, "Damkar")
    return double


def send(fake: FakeBotApi, chat_id: int, text: str = "laporan") -> ApiError | None:
    """Sends a text; returns the error the double answered with, if any."""
    try:
        fake.model.call("sendMessage", {"chat_id": chat_id, "text": text})
    except ApiError as error:
        return error
    return None


def retry_after(error: ApiError | None) -> int | None:
    assert error is not None, "the call was accepted"
    assert error.status == 429
    return error.retry_after


def test_21st_group_message_is_refused_until_the_minute_slides_when_20_were_sent_in_it(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    fake.flood_control()
    for second in range(20):
        clock.at(second)
        assert send(fake, GROUP) is None
    clock.at(30)
    refused = send(fake, GROUP)
    assert refused is not None
    assert refused.to_json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 30",
        "parameters": {"retry_after": 30},
    }
    clock.at(59.5)
    assert retry_after(send(fake, GROUP)) == 1
    assert send(fake, OTHER_GROUP) is None  # each group has its own minute
    clock.at(60)
    assert send(fake, GROUP) is None  # the call from second 0 left the window
    assert retry_after(send(fake, GROUP)) == 1  # the one from second 1 leaves at 61
    clock.at(61)
    assert send(fake, GROUP) is None


def test_call_beyond_30_a_second_is_refused_for_a_second_when_sent_to_many_chats(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    fake.flood_control()
    for n in range(30):
        clock.at(n / 100)
        assert send(fake, CITIZEN + n) is None
    clock.at(0.5)
    assert retry_after(send(fake, CITIZEN + 30)) == 1
    assert retry_after(send(fake, GROUP)) == 1  # the overall limit covers groups too
    clock.at(1.0)
    assert send(fake, CITIZEN + 30) is None


def test_private_chat_takes_any_pace_when_its_limit_is_off(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    fake.flood_control()
    for n in range(100):
        clock.at(n * 0.05)  # 20 a second into one chat, under the overall 30
        assert send(fake, CITIZEN) is None
    assert len(fake.messages_for(CITIZEN)) == 100


def test_private_chat_is_refused_after_its_burst_when_its_limit_is_on(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    fake.flood_control(private=PRIVATE_WINDOW)
    for n in range(3):
        clock.at(n / 10)
        assert send(fake, CITIZEN) is None
    clock.at(0.3)
    assert retry_after(send(fake, CITIZEN)) == 3
    assert send(fake, CITIZEN + 1) is None  # another citizen has a burst of their own
    clock.at(3.0)
    assert send(fake, CITIZEN) is None


def test_refused_calls_are_not_stored_and_use_no_budget_when_a_group_is_saturated(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    fake.flood_control()
    for n in range(20):
        assert send(fake, GROUP, f"kartu {n}") is None
    for second in range(1, 60):
        clock.at(second)
        assert retry_after(send(fake, GROUP, "ditolak")) == 60 - second
    assert [m.text for m in fake.messages_for(GROUP)] == [f"kartu {n}" for n in range(20)]
    refused = [c for c in fake.calls_to("sendMessage") if not c.ok]
    assert len(refused) == 59
    assert all(c.error is not None and c.error.status == 429 for c in refused)
    clock.at(60)
    assert send(fake, GROUP, "kartu 20") is None  # 59 refusals did not push the window on
    assert fake.messages_for(GROUP)[-1].message_id == 21  # refusals took no message ids


def test_reads_answers_and_commands_pass_when_every_window_is_full(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    fake.flood_control(overall_per_second=20)
    for _ in range(20):
        assert send(fake, GROUP) is None
    assert retry_after(send(fake, CITIZEN)) == 1
    call = fake.model.call
    assert call("getMe", {})["is_bot"] is True
    assert call("getChat", {"chat_id": GROUP})["id"] == GROUP
    assert call("getChatMember", {"chat_id": GROUP, "user_id": fake.model.bot_user["id"]})
    assert call("answerCallbackQuery", {"callback_query_id": "1"}) is True
    assert call("setMyCommands", {"commands": [{"command": "lapor", "description": "x"}]})
    assert call("getUpdates", {}) == []


def test_edits_topics_copies_and_deletions_use_the_group_budget_when_sent(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    fake.flood_control()
    call = fake.model.call
    topic = call("createForumTopic", {"chat_id": GROUP, "name": "SMG-0001"})["message_thread_id"]
    call("editForumTopic", {"chat_id": GROUP, "message_thread_id": topic, "name": "SMG-0001 ✓"})
    card = call("sendMessage", {"chat_id": GROUP, "message_thread_id": topic, "text": "kartu"})
    call("editMessageText", {"chat_id": GROUP, "message_id": card["message_id"], "text": "v2"})
    call("copyMessage", {"chat_id": GROUP, "from_chat_id": GROUP, "message_id": card["message_id"]})
    call("deleteMessage", {"chat_id": GROUP, "message_id": card["message_id"]})
    call("sendLocation", {"chat_id": GROUP, "latitude": -6.99, "longitude": 110.42})
    for _ in range(13):
        assert send(fake, GROUP) is None
    assert retry_after(send(fake, GROUP)) == 60


@pytest.mark.parametrize(
    ("method", "counted"),
    [
        ("sendMessage", True),
        ("sendPhoto", True),
        ("sendChatAction", True),
        ("copyMessages", True),
        ("forwardMessage", True),
        ("editMessageReplyMarkup", True),
        ("createForumTopic", True),
        ("pinChatMessage", True),
        ("deleteMessage", True),
        ("getUpdates", False),
        ("getChat", False),
        ("getFile", False),
        ("answerCallbackQuery", False),
        ("setMyCommands", False),
        ("deleteWebhook", False),
    ],
)
def test_only_sending_and_editing_methods_count_when_classified(method: str, counted: bool) -> None:
    assert counts_against_limits(method) is counted
    assert counts_against_limits(method.lower()) is counted


def test_statistics_show_calls_refusals_and_the_last_delivery_when_read(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    fake.flood_control(group_per_minute=2)
    clock.at(0)
    fake.model.call("getChat", {"chat_id": GROUP})
    send(fake, GROUP)
    clock.at(1)
    send(fake, GROUP)
    clock.at(2)
    send(fake, GROUP)
    send(fake, CITIZEN)
    clock.at(3)
    send(fake, GROUP)
    stats = fake.flood_stats
    assert stats is not None
    assert stats.events == [
        FloodEvent(1000.0, "getChat", GROUP, accepted=True),
        FloodEvent(1000.0, "sendMessage", GROUP, accepted=True),
        FloodEvent(1001.0, "sendMessage", GROUP, accepted=True),
        FloodEvent(1002.0, "sendMessage", GROUP, accepted=False),
        FloodEvent(1002.0, "sendMessage", CITIZEN, accepted=True),
        FloodEvent(1003.0, "sendMessage", GROUP, accepted=False),
    ]
    assert stats.calls == {"getChat": 1, "sendMessage": 5}
    assert stats.refused == {"sendMessage": 2}
    assert stats.refused_by_chat == {GROUP: 2}
    assert stats.refused_share == pytest.approx(2 / 6)
    last_card = stats.last_accepted("sendMessage", chat_id=GROUP)
    assert last_card is not None
    assert last_card.time == 1001.0
    assert stats.to_json()["events"][3] == [1002.0, "sendMessage", GROUP, False]


def test_calls_are_never_refused_and_windows_start_afresh_when_switched_off_and_on(
    fake: FakeBotApi, clock: FakeClock
) -> None:
    for _ in range(25):
        assert send(fake, GROUP) is None  # off by default
    assert fake.flood_stats is None
    fake.flood_control(group_per_minute=1)
    assert send(fake, GROUP) is None
    assert retry_after(send(fake, GROUP)) == 60
    fake.flood_control(None)
    assert send(fake, GROUP) is None
    assert fake.flood_stats is None
    fake.flood_control(FloodLimits(group=Window(1, 60.0)))
    stats = fake.flood_stats
    assert stats is not None
    assert stats.total_calls == 0
    assert send(fake, GROUP) is None


def test_limits_are_read_from_flags_and_json_when_given_as_text() -> None:
    assert FloodLimits.parse("") == FloodLimits()
    assert FloodLimits() == FloodLimits.of()
    assert FloodLimits.parse("group_per_minute=5, overall_per_second=off, private=3/3") == (
        FloodLimits(group=Window(5, 60.0), overall=None, private=Window(3, 3.0))
    )
    assert FloodLimits.from_json({"private": [1, 1], "group_per_minute": None}) == FloodLimits(
        group=None, private=Window(1, 1.0)
    )
    for bad in ("group=5", "private=3", "private=0/1", "overall_per_second"):
        with pytest.raises(ValueError, match=r"\S"):
            FloodLimits.parse(bad)


async def test_ptb_raises_retry_after_when_the_double_refuses_a_group_message(
    clock: FakeClock,
) -> None:
    async with (
        FakeBotApi(BotApiModel(monotonic=clock)) as fake,
        Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot,
    ):
        fake.register_forum(GROUP)
        fake.flood_control()
        for n in range(20):
            await bot.send_message(GROUP, f"kartu {n}")
        with pytest.raises(RetryAfter) as refused:
            await bot.send_message(GROUP, "kartu 20")
        assert refused.value.retry_after == dtm.timedelta(seconds=60)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{fake.base_url}{fake.token}/sendMessage", json={"chat_id": GROUP, "text": "x"}
            ) as response,
        ):
            assert response.status == 429
            assert await response.json() == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 60",
                "parameters": {"retry_after": 60},
            }
        clock.at(60)
        sent = await bot.send_message(GROUP, "kartu 20")
    assert sent.message_id == 21


async def test_flood_control_is_switched_and_read_over_http_when_controlled_remotely(
    fake_bot_api: FakeBotApi, bot: Bot
) -> None:
    control = f"{fake_bot_api.url}/_control/flood"
    fake_bot_api.register_forum(GROUP)

    async def post(body: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http, http.post(control, json=body) as response:
            return response.status, await response.json()

    status, answer = await post({"group_per_minute": 1, "private": [2, 1]})
    assert status == 200
    assert answer["result"]["limits"] == {
        "group": [1, 60.0],
        "overall": [30, 1.0],
        "private": [2, 1.0],
    }
    await bot.send_message(GROUP, "kartu")
    with pytest.raises(RetryAfter):
        await bot.send_message(GROUP, "kartu lagi")
    async with aiohttp.ClientSession() as http, http.get(control) as response:
        stats = (await response.json())["result"]["stats"]
    assert stats["calls"] == {"sendMessage": 2}
    assert stats["refused"] == {"sendMessage": 1}
    assert stats["refused_by_chat"] == {str(GROUP): 1}
    assert [event[1:] for event in stats["events"]] == [
        ["sendMessage", GROUP, True],
        ["sendMessage", GROUP, False],
    ]
    assert await post({"group_per_minute": "many"}) == (
        400,
        {"ok": False, "description": "invalid literal for int() with base 10: 'many'"},
    )
    assert (await post({"enabled": False}))[1]["result"] == {"enabled": False}
    await bot.send_message(GROUP, "kartu lagi")
