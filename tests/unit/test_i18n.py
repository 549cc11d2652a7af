"""Every user-facing message exists, translated, in both catalogs (id and en)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bot.domain.rules import resolve_language
from bot.i18n import LOCALES_DIR, SUPPORTED, gettext_for

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{[a-z_]+[^}]*\}")
TAG = re.compile(r"</?[a-z]+>")


def messages_in_code() -> set[str]:
    found: set[str] = set()
    for package in ("bot", "handlers"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, keywords={"_": None, "N_": None}
        ):
            if isinstance(message, str):
                found.add(message)
    return found


def catalog(language: str):  # type: ignore[no-untyped-def]
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle)


def test_code_has_messages_when_extracted() -> None:
    assert len(messages_in_code()) > 100


@pytest.mark.parametrize("language", SUPPORTED)
def test_every_message_is_translated_when_catalog_is_loaded(language: str) -> None:
    po = catalog(language)
    missing = [m for m in messages_in_code() if not (po.get(m) and po.get(m).string)]
    fuzzy = [m.id for m in po if m.id and m.fuzzy]
    assert missing == [], f"{language}: untranslated {missing[:5]}"
    assert fuzzy == []


@pytest.mark.parametrize("language", SUPPORTED)
def test_translations_keep_placeholders_and_tags_when_translated(language: str) -> None:
    for message in catalog(language):
        if not message.id:
            continue
        assert sorted(PLACEHOLDER.findall(message.id)) == sorted(
            PLACEHOLDER.findall(message.string)
        ), message.id
        assert sorted(TAG.findall(message.id)) == sorted(TAG.findall(message.string)), message.id


@pytest.mark.parametrize("language", SUPPORTED)
def test_compiled_catalog_matches_the_po_file_when_shipped(language: str) -> None:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.mo").open("rb") as handle:
        compiled = {m.id: m.string for m in read_mo(handle) if m.id}
    source = {m.id: m.string for m in catalog(language) if m.id}
    assert compiled == source, "run `python -m bot.i18n` to recompile"


def test_indonesian_differs_from_english_when_a_message_is_translated() -> None:
    _id, _en = gettext_for("id"), gettext_for("en")
    assert _id("📍 Share my location") != _en("📍 Share my location")
    assert _en("📍 Share my location") == "📍 Share my location"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("en", "en"), ("en-GB", "en"), ("id", "id"), ("jv", "id"), ("fr", "id"), (None, "id")],
)
def test_language_is_resolved_when_telegram_gives_a_language_code(
    code: str | None, expected: str
) -> None:
    assert resolve_language(code, "id") == expected
