"""Telegram's HTML parse_mode as the test doubles apply it (error texts are tdlib's)."""

from __future__ import annotations

import pytest

from bot.double.telegram_html import HtmlParseError, parse_html


@pytest.mark.parametrize(
    ("html", "text", "entity_types"),
    [
        ("<b>a</b><strong>b</strong>", "ab", ["bold", "bold"]),
        (
            "<i>a</i><em>b</em><u>c</u><ins>d</ins>",
            "abcd",
            ["italic", "italic", "underline", "underline"],
        ),
        ("<s>a</s><strike>b</strike><del>c</del>", "abc", ["strikethrough"] * 3),
        (
            '<span class="tg-spoiler">a</span><tg-spoiler>b</tg-spoiler>',
            "ab",
            ["spoiler", "spoiler"],
        ),
        ('<a href="https://maps.example/?q=1&amp;z=2">peta</a>', "peta", ["text_link"]),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍", ["custom_emoji"]),
        ("<code>SMG-0001</code>", "SMG-0001", ["code"]),
        ('<pre><code class="language-json">{}</code></pre>', "{}", ["pre"]),
        (
            "<blockquote>a</blockquote><blockquote expandable>b</blockquote>",
            "ab",
            ["blockquote", "expandable_blockquote"],
        ),
        ("&lt;&gt;&amp;&quot;&#39;&#x1F692;", "<>&\"'🚒", []),
    ],
)
def test_supported_markup_parses_to_plain_text_and_entities_when_valid(
    html: str, text: str, entity_types: list[str]
) -> None:
    parsed_text, entities = parse_html(html)
    assert parsed_text == text
    assert [e["type"] for e in entities] == entity_types


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("<p>Kebakaran</p>", 'Unsupported start tag "p" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<a href="x"', "Unclosed start tag at byte offset 0"),
        ("🏟 🏟&lt;<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 27"),
        ('<tg-emoji emoji-id="x">y</tg-emoji>', "Invalid custom emoji identifier specified"),
    ],
)
def test_invalid_markup_is_rejected_with_telegrams_message_when_parsed(
    html: str, message: str
) -> None:
    with pytest.raises(HtmlParseError) as error:
        parse_html(html)
    assert str(error.value) == message


def test_bare_ampersand_is_rejected_when_strict() -> None:
    with pytest.raises(HtmlParseError, match='Unescaped "&" at byte offset 10'):
        parse_html("Jl. Gajah & Mada")


def test_bare_ampersand_stays_literal_when_lenient_like_telegram() -> None:
    assert parse_html("Jl. Gajah & Mada &laquo;", strict_ampersand=False) == (
        "Jl. Gajah & Mada &laquo;",
        [],
    )


def test_entity_offsets_count_utf16_units_when_text_has_emoji() -> None:
    _, entities = parse_html("🚒🚑 <b>Damkar</b>")
    assert entities == [{"offset": 5, "length": 6, "type": "bold"}]
