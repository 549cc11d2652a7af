"""Gettext catalogs (Bahasa Indonesia default, English) and locale resolution.

Message ids are English source strings with named ``{placeholders}``; both catalogs carry a
translation for every one of them (a test fails otherwise).

Maintainers refresh the catalogs with ``python -m bot.i18n`` (extract -> update -> compile).
"""

from __future__ import annotations

import gettext
from collections.abc import Callable
from functools import cache
from pathlib import Path

from bot.domain.rules import SUPPORTED_LANGUAGES as SUPPORTED
from bot.domain.rules import resolve_language

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"

Translate = Callable[[str], str]

__all__ = ["N_", "SUPPORTED", "Translate", "gettext_for", "resolve_language", "translations"]


@cache
def translations(language: str) -> gettext.NullTranslations:
    """Return the compiled catalog of a supported language."""
    return gettext.translation(DOMAIN, localedir=LOCALES_DIR, languages=[language], fallback=False)


def gettext_for(language: str) -> Translate:
    """Return the ``_`` function of a language (unknown languages get Indonesian)."""
    if language not in SUPPORTED:
        language = SUPPORTED[0]
    return translations(language).gettext


def _refresh_catalogs() -> None:  # pragma: no cover - maintainer tool
    """Extracts messages from the code, updates both .po files and compiles them."""
    from babel.messages.frontend import CommandLineInterface  # noqa: PLC0415 - maintainer-only

    root = Path(__file__).parent.parent
    pot = LOCALES_DIR / f"{DOMAIN}.pot"
    run: Callable[[list[str]], object] = CommandLineInterface().run
    run(
        [
            "pybabel", "extract", "--no-location", "--sort-output", "-k", "_", "-k", "N_",
            "-o", str(pot), str(root / "bot"), str(root / "handlers"),
        ]
    )  # fmt: skip
    for language in SUPPORTED:
        po = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        command = "update" if po.exists() else "init"
        run(["pybabel", command, "-D", DOMAIN, "-i", str(pot), "-d", str(LOCALES_DIR),
                 "-l", language, "--no-wrap"])  # fmt: skip
    _english_is_the_source(LOCALES_DIR / "en" / "LC_MESSAGES" / f"{DOMAIN}.po")
    run(["pybabel", "compile", "-D", DOMAIN, "-d", str(LOCALES_DIR), "--statistics"])


def _english_is_the_source(po: Path) -> None:  # pragma: no cover - maintainer tool
    """Makes every English entry its (English) message id: English is the source language."""
    from babel.messages.pofile import read_po, write_po  # noqa: PLC0415 - maintainer-only

    with po.open("rb") as handle:
        catalog = read_po(handle)
    for message in catalog:
        if message.id:
            message.string = message.id
            message.flags.discard("fuzzy")
    with po.open("wb") as handle:
        write_po(handle, catalog, width=0)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now."""
    return message


if __name__ == "__main__":  # pragma: no cover
    _refresh_catalogs()
