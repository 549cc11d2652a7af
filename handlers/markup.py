"""A keyboard as the JSON the Bot API takes, without PTB's generic serialisation.

PTB turns a ``reply_markup`` into a dict by walking every attribute of every object
(``TelegramObject.to_dict``: the class's slots through its MRO, a ``DefaultValue`` check and
a recursion per value) and then into JSON; for a screen of the intake with six to a dozen
buttons that was about 3 % of the bot's CPU at 50 citizens flat out (py-spy), more than the
rest of a ``sendMessage``'s parameters together. :func:`markup_json` gives the same JSON
(the same keys and values; Telegram reads it as PTB's) from the slots of each class, found
once, for what the views build: markups of plain values and rows of buttons of plain values.
Anything else (a ``WebAppInfo``, a ``LoginUrl``, a ``KeyboardButtonRequestUsers``,
``api_kwargs``, any other class) is left to PTB's own ``to_json``.
"""

from __future__ import annotations

import json
from typing import Any

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    TelegramObject,
)

_PLAIN = (str, int, float)  # bool is an int

#: The classes converted here (exactly these: a subclass may add what PTB converts its way).
_KEYBOARDS = frozenset(
    {
        InlineKeyboardButton,
        InlineKeyboardMarkup,
        KeyboardButton,
        ReplyKeyboardMarkup,
        ReplyKeyboardRemove,
    }
)


def _fields(cls: type[TelegramObject]) -> tuple[str, ...]:
    """The public attributes PTB's ``to_dict`` reads of an object of ``cls`` (its slots
    through the MRO, private ones and ``api_kwargs`` aside), in PTB's order."""
    names = (name for c in cls.__mro__[:-1] for name in getattr(c, "__slots__", ()))
    return tuple(name for name in names if not name.startswith("_") and name != "api_kwargs")


#: Each keyboard class's fields.
_KEYBOARD_FIELDS = {cls: _fields(cls) for cls in _KEYBOARDS}


def _plain_dict(obj: TelegramObject) -> dict[str, Any] | None:
    """``obj.to_dict()`` when every value is plain or a grid of plain objects; else None."""
    fields = _KEYBOARD_FIELDS.get(type(obj))
    if fields is None or obj.api_kwargs:
        return None
    data: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        if value is None:
            continue
        if isinstance(value, _PLAIN):
            data[name] = value
        elif isinstance(value, tuple):
            if not value:  # PTB leaves an empty sequence out
                continue
            grid = _plain_grid(value)
            if grid is None:
                return None
            data[name] = grid
        else:
            return None
    return data


def _plain_grid(rows: tuple[Any, ...]) -> list[list[dict[str, Any]]] | None:
    grid: list[list[dict[str, Any]]] = []
    for row in rows:
        if not isinstance(row, tuple):
            return None
        converted: list[dict[str, Any]] = []
        for item in row:
            plain = _plain_dict(item) if isinstance(item, TelegramObject) else None
            if plain is None:
                return None
            converted.append(plain)
        grid.append(converted)
    return grid


def markup_json(markup: TelegramObject | None) -> str | None:
    """The ``reply_markup`` parameter for ``markup`` (None stays None: no parameter)."""
    if markup is None:
        return None
    plain = _plain_dict(markup)
    if plain is None:
        return markup.to_json()
    return json.dumps(plain)
