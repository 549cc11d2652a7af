"""A keyboard's JSON (``handlers.markup``) is what PTB's own serialisation gives."""

from __future__ import annotations

import json

import pytest
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    LoginUrl,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    TelegramObject,
    WebAppInfo,
)

from handlers import markup as markup_module
from handlers.markup import markup_json

MARKUPS: list[TelegramObject] = [
    InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("🚑 Medis", callback_data="i|42|grp|MEDICAL")],
            [
                InlineKeyboardButton("🔥 Kebakaran", callback_data="i|42|grp|FIRE"),
                InlineKeyboardButton('"Kutip" & <b>', callback_data="i|42|grp|OTHER"),
            ],
            [InlineKeyboardButton("Peta", url="https://www.openstreetmap.org/?mlat=-6.99")],
        ]
    ),
    InlineKeyboardMarkup([]),  # PTB leaves the empty keyboard out: {}
    InlineKeyboardMarkup([[]]),
    ReplyKeyboardMarkup(
        [
            [KeyboardButton("📱 Bagikan nomor", request_contact=True)],
            [KeyboardButton("Lewati")],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
        input_field_placeholder="Nomor telepon",
        is_persistent=False,
    ),
    ReplyKeyboardMarkup([[KeyboardButton("📍 Lokasi", request_location=True)]]),
    ReplyKeyboardRemove(),
    ReplyKeyboardRemove(selective=True),
]


@pytest.mark.parametrize("markup", MARKUPS, ids=lambda m: type(m).__name__)
def test_a_keyboard_becomes_the_json_ptb_makes_of_it(markup: TelegramObject) -> None:
    made = markup_json(markup)
    assert made is not None
    assert json.loads(made) == markup.to_dict()


def test_a_keyboard_is_made_here_not_by_ptb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The views' keyboards take the short way (else the module saves nothing)."""

    def refused(_self: TelegramObject) -> str:
        raise AssertionError("PTB's to_json was used")

    monkeypatch.setattr(TelegramObject, "to_json", refused)
    for markup in MARKUPS:
        markup_json(markup)


@pytest.mark.parametrize(
    "button",
    [
        InlineKeyboardButton("Buka", web_app=WebAppInfo("https://example.org/app")),
        InlineKeyboardButton("Masuk", login_url=LoginUrl("https://example.org/login")),
        InlineKeyboardButton("x", callback_data="a", api_kwargs={"style": "danger"}),
    ],
    ids=["web_app", "login_url", "api_kwargs"],
)
def test_what_is_not_plain_is_left_to_ptb(
    button: InlineKeyboardButton, monkeypatch: pytest.MonkeyPatch
) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok"), button]])
    used: list[TelegramObject] = []
    to_json = TelegramObject.to_json

    def spied(self: TelegramObject) -> str:
        used.append(self)
        return to_json(self)

    monkeypatch.setattr(TelegramObject, "to_json", spied)
    made = markup_json(markup)
    assert used == [markup]
    assert made is not None
    assert json.loads(made) == markup.to_dict()


def test_a_subclass_is_left_to_ptb() -> None:
    class Styled(InlineKeyboardButton):
        __slots__ = ("style",)

        def __init__(self, text: str, style: str) -> None:
            super().__init__(text, callback_data="s")
            with self._unfrozen():
                self.style = style

    markup = InlineKeyboardMarkup([[Styled("x", "danger")]])
    made = markup_json(markup)
    assert made is not None
    assert json.loads(made) == markup.to_dict()
    assert json.loads(made)["inline_keyboard"][0][0]["style"] == "danger"


def test_no_markup_is_no_parameter() -> None:
    assert markup_json(None) is None


def test_the_fields_are_each_classs_public_slots() -> None:
    fields = markup_module._fields(InlineKeyboardButton)
    assert "text" in fields
    assert "callback_data" in fields
    assert "api_kwargs" not in fields
    assert not [name for name in fields if name.startswith("_")]
