"""Guessing a report's category from the citizen's own words (Indonesian and English)."""

from __future__ import annotations

import pytest

from bot.domain.guess import CATEGORY_WORDS, TIE_ORDER, group_of, guess_category
from bot.domain.model import CATEGORY_GROUPS, Category, CategoryGroup


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ada kebakaran di pasar johar!!", Category.FIRE),
        ("Rumah tetangga TERBAKAR, asap tebal", Category.FIRE),
        ("kecelakaan motor di jl pandanaran", Category.TRAF),
        ("tabrakan beruntun", Category.TRAF),
        ("bapak saya pingsan", Category.MED),
        ("ibu sesak napas", Category.MED),
        ("ada maling masuk rumah", Category.CRIME),
        ("saya dibegal di jalan", Category.CRIME),
        ("teman saya dipukul orang mabuk", Category.CRIME),
        ("saya dipukul suami saya", Category.KDRT),
        ("banjir setinggi lutut", Category.FLOOD),
        ("pohon tumbang menutup jalan", Category.TREE),
        ("pohon roboh", Category.TREE),
        ("tembok roboh", Category.SLIDE),
        ("anak tenggelam di kali", Category.SAR),
        ("ada ular masuk rumah", Category.ANIMAL),
        ("kabel listrik putus", Category.UTIL),
        ("There is a fire near Simpang Lima", Category.FIRE),
        ("car crash, two people injured", Category.TRAF),
        ("my father fainted and is not breathing", Category.MED),
        ("I was robbed", Category.CRIME),
        ("my husband beat me", Category.KDRT),
        ("the street is flooded", Category.FLOOD),
        ("someone tried to rob me", None),
        ("tolong!!", None),
        ("", None),
    ],
)
def test_category_is_guessed_from_indonesian_and_english_words(
    text: str, expected: Category | None
) -> None:
    assert guess_category(text) is expected


def test_more_urgent_category_wins_when_two_readings_weigh_the_same() -> None:
    # fire and medical each get one word: the fire is what to send first
    assert guess_category("kebakaran, ada yang pingsan") is Category.FIRE
    # an accident with injured people is an accident
    assert guess_category("kecelakaan, korban luka") is Category.TRAF


def test_phrase_of_several_words_outweighs_a_single_word() -> None:
    # "roboh" alone is a collapse, "pohon roboh" a fallen tree
    assert guess_category("rumahnya roboh") is Category.SLIDE
    assert guess_category("pohon roboh di depan rumah") is Category.TREE


def test_words_are_matched_whole_not_inside_other_words() -> None:
    assert guess_category("apinya sudah padam") is None  # "api" is not "apinya"
    assert guess_category("ceasefire") is None


def test_every_category_with_words_is_ranked_and_belongs_to_a_group() -> None:
    assert set(CATEGORY_WORDS) == set(TIE_ORDER)
    for category in CATEGORY_WORDS:
        assert category in CATEGORY_GROUPS[group_of(category)]
    assert group_of(Category.KDRT) is CategoryGroup.CRIME
