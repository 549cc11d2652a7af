"""Telegram's HTML `parse_mode`, as the Bot API server (tdlib) parses it.

Both test tiers use this to reject what Telegram rejects, with the same error texts (the part
after "Bad Request: can't parse entities: "), and to return the plain text and entities that a
real server would put into the sent Message.

One deliberate difference, on by default: tdlib keeps a bare ``&`` that starts no known entity
as a literal character. Here it is an error (``strict_ampersand=True``), because in this
project an unescaped ``&`` almost always means user input went into HTML without
``html.escape`` — the same bug that breaks on the next ``<``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUPPORTED_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)

_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}

_NAMED_ENTITIES = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
_SPACES = frozenset(b" \t\r\n\v\f")
_LT, _GT, _AMP, _SLASH, _EQ = (ord(c) for c in "<>&/=")


class HtmlParseError(ValueError):
    """The text is not valid Telegram HTML; ``str(error)`` is tdlib's message."""


@dataclass
class _OpenTag:
    name: str
    argument: str
    begin_pos: int
    utf16_offset: int


def _utf16_len(codepoint: int) -> int:
    return 2 if codepoint > 0xFFFF else 1


def _decode_entity(data: bytes, pos: int) -> tuple[int, int] | None:
    """Decodes the character reference at ``data[pos] == '&'`` like tdlib: returns the code point
    and the position after it (the ``;`` is optional), or None when it is no known reference."""
    end = pos + 1
    value = 0
    if data[end : end + 1] == b"#":
        end += 1
        is_hex = data[end : end + 1] == b"x"
        if is_hex:
            end += 1
        digits = "0123456789abcdefABCDEF" if is_hex else "0123456789"
        while end < len(data) and chr(data[end]) in digits:
            value = value * (16 if is_hex else 10) + int(chr(data[end]), 16)
            end += 1
            if value >= 0x10FFFF:
                return None
        if value == 0 or end - pos >= 10:
            return None
    else:
        while end < len(data) and chr(data[end]).isascii() and chr(data[end]).isalpha():
            end += 1
        found = _NAMED_ENTITIES.get(data[pos + 1 : end])
        if found is None:
            return None
        value = found
    if data[end : end + 1] == b";":
        end += 1
    return value, end


def _entity_for(tag: _OpenTag, length: int, *, folded_into_pre: bool) -> dict[str, Any] | None:
    entity: dict[str, Any] = {"offset": tag.utf16_offset, "length": length}
    if tag.name == "a":
        if not tag.argument:
            return None
        entity.update(type="text_link", url=tag.argument)
    elif tag.name == "tg-emoji":
        entity.update(type="custom_emoji", custom_emoji_id=tag.argument)
    elif tag.name == "blockquote":
        entity["type"] = "expandable_blockquote" if tag.argument else "blockquote"
    elif folded_into_pre:
        return None  # folded into the enclosing <pre> (as its language), like tdlib's PreCode
    else:
        entity["type"] = _ENTITY_TYPES[tag.name]
        if tag.name == "pre" and tag.argument:
            entity["language"] = tag.argument
    return entity


def parse_html(  # noqa: PLR0912, PLR0915 - one pass like tdlib's parser, easier to compare with it
    text: str, *, strict_ampersand: bool = True
) -> tuple[str, list[dict[str, Any]]]:
    """Returns (plain text, Bot API MessageEntity dicts) or raises HtmlParseError."""
    data = text.encode("utf-8")
    size = len(data)

    def at(index: int) -> int:
        return data[index] if index < size else 0

    out = bytearray()
    utf16 = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < size:
        byte = data[i]
        if byte == _AMP:
            decoded = _decode_entity(data, i)
            if decoded is not None:
                codepoint, i = decoded
                if 0xD800 <= codepoint <= 0xDFFF:
                    raise HtmlParseError(
                        "Text contains invalid Unicode characters after decoding HTML entities, "
                        "check for unmatched surrogate code units"
                    )
                out += chr(codepoint).encode("utf-8")
                utf16 += _utf16_len(codepoint)
                continue
            if strict_ampersand:
                raise HtmlParseError(
                    f'Unescaped "&" at byte offset {i} (the test double is stricter than '
                    "Telegram here: escape user text with html.escape)"
                )
        if byte != _LT:
            out.append(byte)
            if byte & 0xC0 != 0x80:  # first byte of a UTF-8 sequence
                utf16 += 2 if byte >= 0xF0 else 1
            i += 1
            continue

        begin_pos = i
        i += 1
        if at(i) != _SLASH:
            i = _parse_start_tag(data, i, begin_pos, stack, utf16)
            continue

        # An end tag.
        if not stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {begin_pos}")
        i += 1
        name_begin = i
        while i < size and at(i) not in _SPACES and at(i) != _GT:
            i += 1
        end_name = data[name_begin:i].decode("utf-8", "replace").lower()
        while i < size and at(i) in _SPACES:
            i += 1
        if at(i) != _GT:
            raise HtmlParseError(f"Unclosed end tag at byte offset {begin_pos}")
        i += 1
        tag = stack.pop()
        if end_name and end_name != tag.name:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {begin_pos}, expected "</{tag.name}>", '
                f'found "</{end_name}>"'
            )
        if tag.name == "tg-emoji" and not (tag.argument.isdigit() and int(tag.argument) > 0):
            raise HtmlParseError("Invalid custom emoji identifier specified")
        enclosing_pre = next((t for t in reversed(stack) if t.name == "pre"), None)
        folded = tag.name == "code" and enclosing_pre is not None and bool(tag.argument)
        if folded and enclosing_pre is not None:
            enclosing_pre.argument = enclosing_pre.argument or tag.argument
        length = utf16 - tag.utf16_offset
        if length > 0:
            entity = _entity_for(tag, length, folded_into_pre=folded)
            if entity is not None:
                entities.append(entity)

    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    # Outer entities first; on equal ranges the outer one closed last, so appears later.
    ordered = sorted(enumerate(entities), key=lambda p: (p[1]["offset"], -p[1]["length"], -p[0]))
    return out.decode("utf-8"), [entity for _, entity in ordered]


def _parse_start_tag(  # noqa: PLR0912, PLR0915 - mirrors tdlib's start-tag branch by branch
    data: bytes, i: int, begin_pos: int, stack: list[_OpenTag], utf16: int
) -> int:
    """Parses ``<name attr=value ...>`` starting after the ``<``; returns the index after ``>``."""
    size = len(data)

    def at(index: int) -> int:
        return data[index] if index < size else 0

    name_begin = i
    while i < size and at(i) not in _SPACES and at(i) != _GT:
        i += 1
    if i >= size:
        raise HtmlParseError(f"Unclosed start tag at byte offset {begin_pos}")
    name = data[name_begin:i].decode("utf-8", "replace").lower()
    if name not in SUPPORTED_TAGS:
        raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {begin_pos}')

    argument = ""
    while at(i) != _GT:
        while i < size and at(i) in _SPACES:
            i += 1
        if at(i) == _GT:
            break
        attr_begin = i
        while i < size and at(i) not in _SPACES and at(i) not in (_EQ, _GT):
            i += 1
        attr_name = data[attr_begin:i].decode("utf-8", "replace").lower()
        if not attr_name:
            raise HtmlParseError(
                f'Empty attribute name in the tag "{name}" at byte offset {begin_pos}'
            )
        while i < size and at(i) in _SPACES:
            i += 1
        if at(i) != _EQ:
            if i >= size:
                raise HtmlParseError(f'Unclosed start tag "{name}" at byte offset {begin_pos}')
            if name == "blockquote" and attr_name == "expandable":
                argument = "1"
                continue
            raise HtmlParseError(
                "Expected equal sign in declaration of an attribute of the tag "
                f'"{name}" at byte offset {begin_pos}'
            )
        i += 1
        while i < size and at(i) in _SPACES:
            i += 1
        if i >= size:
            raise HtmlParseError(f'Unclosed start tag "{name}" at byte offset {begin_pos}')
        value, i = _attribute_value(data, i, name, begin_pos)
        if i >= size:
            raise HtmlParseError(f"Unclosed start tag at byte offset {begin_pos}")
        if name == "a" and attr_name == "href":
            argument = value
        elif name == "code" and attr_name == "class" and value.startswith("language-"):
            argument = value.removeprefix("language-")
        elif name == "span" and attr_name == "class" and value.startswith("tg-"):
            argument = value.removeprefix("tg-")
        elif name == "tg-emoji" and attr_name == "emoji-id":
            argument = value

    if name == "span" and argument != "spoiler":
        raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin_pos}')
    stack.append(_OpenTag(name, argument, begin_pos, utf16))
    return i + 1


def _attribute_value(data: bytes, i: int, tag: str, begin_pos: int) -> tuple[str, int]:
    size = len(data)
    quote = data[i]
    if quote not in (ord("'"), ord('"')):
        token_begin = i
        while i < size and (
            (chr(data[i]).isascii() and chr(data[i]).isalnum()) or data[i] in b".-"
        ):
            i += 1
        if i == token_begin:
            raise HtmlParseError(
                "Expected quotes in declaration of an attribute of the tag "
                f'"{tag}" at byte offset {begin_pos}'
            )
        if i < size and data[i] not in _SPACES and data[i] != _GT:
            raise HtmlParseError(f"Unexpected end of name token at byte offset {token_begin}")
        return data[token_begin:i].decode("utf-8", "replace").lower(), i
    i += 1
    value = bytearray()
    while i < size and data[i] != quote:
        if data[i] == _AMP:
            decoded = _decode_entity(data, i)
            if decoded is not None:
                codepoint, i = decoded
                value += chr(codepoint).encode("utf-8")
                continue
        value.append(data[i])
        i += 1
    if i < size:
        i += 1
    return value.decode("utf-8", "replace"), i
