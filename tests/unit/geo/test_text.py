"""Typed addresses: abbreviations expanded, RT/RW kept aside, equivalent queries one key."""

from __future__ import annotations

import pytest

from bot.geo.text import expand_abbreviations, extract_rt_rw, parse_address


@pytest.mark.parametrize(
    ("typed", "expanded"),
    [
        ("Jl. Pandanaran 12", "Jalan Pandanaran 12"),
        ("jln.pemuda", "Jalan pemuda"),
        ("Jl Kaligawe Raya", "Jalan Kaligawe Raya"),
        ("JLN. Majapahit", "Jalan Majapahit"),
        ("Gg. Melati III", "Gang Melati III"),
        ("gg kenari", "Gang kenari"),
        ("Kel. Sekayu", "Kelurahan Sekayu"),
        ("kel.tlogosari wetan", "Kelurahan tlogosari wetan"),
        ("Kec. Semarang Tengah", "Kecamatan Semarang Tengah"),
        ("Perum. Bukit Sari, Smg", "Perumahan Bukit Sari, Semarang"),
        ("Jl. Pemuda No. 150", "Jalan Pemuda 150"),
    ],
)
def test_abbreviation_expanded_when_typed_in_any_usual_form(typed: str, expanded: str) -> None:
    assert expand_abbreviations(typed) == expanded


@pytest.mark.parametrize("typed", ["Jlamprang", "Kelud", "Kecubung", "Gganteng", "Nomer"])
def test_word_kept_when_it_only_starts_like_an_abbreviation(typed: str) -> None:
    assert expand_abbreviations(typed) == typed


@pytest.mark.parametrize(
    ("typed", "rest", "rt_rw"),
    [
        ("Jl. Melati RT 03 RW 05", "Jl. Melati", "RT 003/RW 005"),
        ("Jl. Melati RT.03/RW.05 Sekayu", "Jl. Melati Sekayu", "RT 003/RW 005"),
        ("Gg. Kenari rt3 rw5", "Gg. Kenari", "RT 003/RW 005"),
        ("RT/RW 003/005 Kel. Sekayu", "Kel. Sekayu", "RT 003/RW 005"),
        ("Jl. Melati RT 3/5", "Jl. Melati", "RT 003/RW 005"),
        ("Jl. Melati, RT 3, RW 2, Sekayu", "Jl. Melati, Sekayu", "RT 003/RW 002"),
        ("RW 5 RT 3 Gg. Kenari", "Gg. Kenari", "RT 003/RW 005"),
        ("Jl. Kaligawe rt 2", "Jl. Kaligawe", "RT 002"),
        ("Jl. Kaligawe Rw: 07", "Jl. Kaligawe", "RW 007"),
        ("Jl. Pemuda 150", "Jl. Pemuda 150", None),
    ],
)
def test_rt_rw_extracted_when_typed_in_any_usual_form(
    typed: str, rest: str, rt_rw: str | None
) -> None:
    assert extract_rt_rw(typed) == (rest, rt_rw)


def test_rt_rw_not_sent_when_parsed_for_nominatim() -> None:
    parsed = parse_address("Jl. Pandanaran No. 12 RT 03/RW 05, Kel. Pekunden")

    assert parsed.query == "Jalan Pandanaran 12, Kelurahan Pekunden"
    assert parsed.rt_rw == "RT 003/RW 005"
    assert "RT" not in parsed.query


def test_same_key_when_queries_differ_only_in_case_punctuation_and_abbreviations() -> None:
    keys = {
        parse_address(text).key
        for text in (
            "Jl. Pandanaran 12, Kel. Pekunden",
            "jalan  pandanaran 12 kelurahan pekunden",
            "JLN PANDANARAN 12 - KEL PEKUNDEN RT 1 RW 2",
        )
    }
    assert keys == {"jalan pandanaran 12 kelurahan pekunden"}


def test_empty_key_when_text_is_only_punctuation_and_rt_rw() -> None:
    assert parse_address(" , RT 01 / RW 02 .").key == ""
