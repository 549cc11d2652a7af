"""Reading a citizen's free text: which category its words point to (Indonesian and English).

A one-message report ("ada kebakaran di pasar johar!!") is answered with a guess the citizen
confirms or changes with one tap, so a wrong guess costs a tap, never a report. Words are
matched whole (after lower-casing and dropping punctuation); a phrase of several words
weighs more than one word, and of two equally strong readings the more urgent category wins
(``TIE_ORDER``): "kebakaran, ada yang pingsan" is a fire with an injured person.
"""

from __future__ import annotations

import re

from bot.domain.model import CATEGORY_GROUPS, Category, CategoryGroup

#: Words and phrases that point to a category, Indonesian first, then English.
CATEGORY_WORDS: dict[Category, tuple[str, ...]] = {
    Category.FIRE: (
        "kebakaran", "terbakar", "kebakar", "dibakar", "api", "asap", "kobaran api",
        "fire", "burning", "smoke", "flames", "ablaze",
    ),
    Category.TRAF: (
        "kecelakaan", "tabrakan", "ditabrak", "menabrak", "tertabrak", "tabrak", "terguling",
        "laka", "laka lantas", "motor jatuh", "mobil terbalik",
        "accident", "crash", "crashed", "collision", "hit by a car", "run over", "overturned",
    ),
    Category.KDRT: (
        "kdrt", "kekerasan dalam rumah tangga", "kekerasan pada anak", "kekerasan anak",
        "kekerasan terhadap perempuan", "pelecehan", "pemerkosaan", "diperkosa",
        "domestic violence", "child abuse", "abused", "sexual assault", "raped",
    ),
    Category.CRIME: (
        "maling", "pencuri", "pencurian", "dicuri", "kecurian", "begal", "dibegal", "rampok",
        "perampok", "perampokan", "dirampok", "jambret", "dijambret", "copet", "dicopet",
        "ditodong", "penodongan", "dipukul", "dipukuli", "memukul", "dikeroyok", "pengeroyokan",
        "ditusuk", "penusukan", "dibacok", "pembacokan", "senjata tajam", "penganiayaan",
        "theft", "thief", "stolen", "robbery", "robbed", "mugged", "mugging", "burglar",
        "burglary", "stabbed", "stabbing", "assault", "assaulted", "beaten", "attacked",
    ),
    Category.SAR: (
        "tenggelam", "hanyut", "terseret arus", "terjebak", "terperangkap", "tercebur",
        "terjatuh ke sumur", "jatuh ke sungai",
        "drowning", "drowned", "swept away", "trapped", "fell into",
    ),
    Category.FLOOD: (
        "banjir", "kebanjiran", "banjir rob", "air rob", "tanggul jebol", "air naik",
        "air masuk rumah",
        "flood", "flooding", "flooded", "tidal flood",
    ),
    Category.SLIDE: (
        "longsor", "tanah longsor", "tembok roboh", "rumah roboh", "ambruk", "runtuh", "roboh",
        "landslide", "mudslide", "wall collapsed", "house collapsed",
    ),
    Category.TREE: (
        "pohon tumbang", "pohon roboh", "tumbang", "puting beliung", "angin kencang",
        "fallen tree", "tree fell", "tree down", "whirlwind", "tornado",
    ),
    Category.MED: (
        "pingsan", "sesak", "sesak napas", "sesak nafas", "tidak sadar", "tak sadarkan diri",
        "kejang", "serangan jantung", "stroke", "berdarah", "pendarahan", "perdarahan",
        "melahirkan", "keracunan", "overdosis", "ambulans", "ambulan", "sakit parah", "luka",
        "fainted", "unconscious", "not breathing", "can't breathe", "cannot breathe",
        "seizure", "heart attack", "bleeding", "injured", "poisoned", "overdose", "ambulance",
        "giving birth", "collapsed",
    ),
    Category.ORDER: (
        "tawuran", "keributan", "bentrok", "bentrokan", "kerusuhan", "perkelahian",
        "brawl", "riot", "street fight", "gang fight",
    ),
    Category.UTIL: (
        "listrik", "kabel putus", "kabel listrik", "trafo", "travo", "tiang listrik", "pipa bocor",
        "pipa pecah", "korsleting", "mati lampu", "konslet",
        "power line", "power cable", "transformer", "burst pipe", "electric", "electricity",
        "short circuit",
    ),
    Category.ANIMAL: (
        "ular", "sarang tawon", "tawon", "lebah", "biawak", "buaya", "monyet", "hewan liar",
        "snake", "bees", "wasp", "wasps", "hornet", "hornets", "wild animal", "monkey",
        "crocodile",
    ),
    Category.SOCIAL: (
        "odgj", "gelandangan", "terlantar", "mayat", "jenazah", "orang hilang",
        "homeless", "dead body", "corpse", "neglected", "missing person",
    ),
}  # fmt: skip

#: Of two readings with the same weight, the earlier category wins (most urgent first).
TIE_ORDER: tuple[Category, ...] = (
    Category.FIRE,
    Category.KDRT,
    Category.TRAF,
    Category.SAR,
    Category.CRIME,
    Category.MED,
    Category.FLOOD,
    Category.SLIDE,
    Category.TREE,
    Category.ORDER,
    Category.UTIL,
    Category.ANIMAL,
    Category.SOCIAL,
)

#: A violent word next to one of these makes the report domestic violence (KDRT).
FAMILY_WORDS = (
    "suami", "istri", "isteri", "ayah", "bapak tiri", "ibu tiri", "pacar", "mertua",
    "husband", "wife", "boyfriend", "stepfather", "father",
)  # fmt: skip
_VIOLENT = frozenset(
    {
        "dipukul", "dipukuli", "memukul", "memukuli", "ditampar", "menampar", "ditusuk",
        "beaten", "beat", "beats", "hit", "hits", "hitting", "slapped", "attacked",
    }
)  # fmt: skip

_NOT_WORD = re.compile(r"[^\w']+")


def normalise_words(text: str) -> str:
    """Lower-cased words separated by single spaces (punctuation dropped), padded by spaces."""
    return f" {' '.join(_NOT_WORD.sub(' ', text.lower()).split())} "


def _weight(words: str, phrase: str) -> int:
    """How strongly ``phrase`` occurs in ``words``: 0, 1 for a word, 2 for a phrase."""
    if f" {phrase} " not in words:
        return 0
    return 2 if " " in phrase else 1


def guess_category(text: str) -> Category | None:
    """Return the category the text's words point to, or None when no word is known."""
    words = normalise_words(text)
    scores = {
        category: sum(_weight(words, phrase) for phrase in phrases)
        for category, phrases in CATEGORY_WORDS.items()
    }
    violent = any(f" {word} " in words for word in _VIOLENT)
    if violent and any(_weight(words, family) for family in FAMILY_WORDS):
        scores[Category.KDRT] += 2
    best = max(scores.values())
    if best == 0:
        return None
    return next(category for category in TIE_ORDER if scores[category] == best)


def group_of(category: Category) -> CategoryGroup:
    """Return the menu group that offers ``category``."""
    return next(group for group, choices in CATEGORY_GROUPS.items() if category in choices)
