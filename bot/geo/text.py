"""Typed Indonesian addresses: abbreviation expansion, RT/RW extraction, cache keys.

Citizens type addresses the way they write them on an envelope: ``Jl. Pandanaran No. 12
RT 03/RW 05, Kel. Pekunden``. Nominatim knows none of the abbreviations and nothing about
RT/RW (neighbourhood units with no geometry in OSM), so the text is cleaned before it is
sent, and the RT/RW is kept aside for the operator.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Order matters: "jln" before "jl"; every pattern only matches a whole word (optionally
# followed by a dot), so "Jlamprang" or "Kelud" are left alone.
_ABBREVIATIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(rf"(?<![^\W\d_]){pattern}(?:\.|(?![^\W\d_]))\s*", re.IGNORECASE), expansion)
    for pattern, expansion in (
        (r"jln", "Jalan "),
        (r"jl", "Jalan "),
        (r"gg", "Gang "),
        (r"kel", "Kelurahan "),
        (r"kec", "Kecamatan "),
        (r"perum", "Perumahan "),
        (r"kompl?", "Kompleks "),
        (r"smg", "Semarang "),
    )
)
# "No. 12" / "no 12": Nominatim wants the bare house number.
_HOUSE_NUMBER = re.compile(r"(?<![^\W\d_])no(?:\.|(?![^\W\d_]))\s*(?=\d)", re.IGNORECASE)

_NUM = r"0*(\d{1,3})(?!\d)"
_SEP = r"\s*[.:]?\s*"
# "RT/RW 03/05", "RT.RW 3/5"
_RT_RW_PAIR = re.compile(
    rf"(?<![^\W\d_])rt\s*[./]?\s*rw(?![^\W\d_]){_SEP}{_NUM}\s*[/.\-]\s*{_NUM}", re.IGNORECASE
)
# "RT 03 RW 05", "RT.03/RW.05", "rt3 rw5", "RT 03/05", "RT 3, RW 2"
_RW_WORD = rf"(?<![^\W\d_])rw(?![^\W\d_]){_SEP}"
_RT = re.compile(
    rf"(?<![^\W\d_])rt(?![^\W\d_]){_SEP}{_NUM}"
    rf"(?:\s*/\s*(?:{_RW_WORD})?{_NUM}|\s*,?\s*{_RW_WORD}{_NUM})?",
    re.IGNORECASE,
)
_RW = re.compile(rf"(?<![^\W\d_])rw(?![^\W\d_]){_SEP}{_NUM}", re.IGNORECASE)

_SPACES = re.compile(r"\s+")
_DANGLING = re.compile(r"\s*([,;])(?:\s*[,;])*")
_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """A typed address split into what Nominatim gets and what is kept aside."""

    query: str
    """Expanded text without RT/RW: what is sent to Nominatim and matched against names."""
    rt_rw: str | None
    """The RT/RW as ``"RT 003/RW 005"`` (or only one of them), None when not typed."""
    key: str
    """The normalised query (case, punctuation, spacing folded): the cache key's core."""


def parse_address(text: str) -> ParsedAddress:
    """Expands abbreviations, extracts the RT/RW and computes the normalised cache key."""
    cleaned = unicodedata.normalize("NFKC", text)
    cleaned, rt_rw = extract_rt_rw(cleaned)
    query = expand_abbreviations(cleaned)
    return ParsedAddress(query=query, rt_rw=rt_rw, key=normalise_key(query))


def extract_rt_rw(text: str) -> tuple[str, str | None]:
    """Returns the text without its RT/RW mention, and the RT/RW in the ``RT 003/RW 005`` form."""
    rt: int | None = None
    rw: int | None = None
    match = _RT_RW_PAIR.search(text) or _RT.search(text)
    if match:
        rt = int(match.group(1))
        rw_digits = next((group for group in match.groups()[1:] if group), None)
        rw = int(rw_digits) if rw_digits else None
        text = text[: match.start()] + " " + text[match.end() :]
    if rw is None:
        rw_match = _RW.search(text)
        if rw_match:
            rw = int(rw_match.group(1))
            text = text[: rw_match.start()] + " " + text[rw_match.end() :]
    parts = []
    if rt is not None:
        parts.append(f"RT {rt:03d}")
    if rw is not None:
        parts.append(f"RW {rw:03d}")
    return _tidy(text), "/".join(parts) or None


def expand_abbreviations(text: str) -> str:
    """Expands Jl./Jln., Gg., Kel., Kec. (and a few others) and drops "No." before numbers."""
    for pattern, expansion in _ABBREVIATIONS:
        text = pattern.sub(expansion, text)
    text = _HOUSE_NUMBER.sub("", text)
    return _tidy(text)


def normalise_key(text: str) -> str:
    """Folds case, punctuation and spacing so equivalent queries share a cache entry."""
    return _NON_WORD.sub(" ", text.casefold()).strip()


def _tidy(text: str) -> str:
    text = _DANGLING.sub(r"\1 ", text)
    text = _SPACES.sub(" ", text).strip()
    return text.strip(" ,;-")
