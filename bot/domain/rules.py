"""Rules of the intake that need no I/O: what comes next, priorities, references, limits."""

from __future__ import annotations

from datetime import date

from bot.domain.model import Category, CategoryGroup, IntakeStep, Ticket

MAX_DETAILS_CHARS = 3000
MAX_NAME_CHARS = 80
MAX_ADDRESS_CHARS = 300
MAX_MEDIA = 10
PERSONS_CHOICES = ("1", "2-5", "6+", "unknown")

#: Categories where minutes decide over life and death.
_URGENT = frozenset({Category.MED, Category.FIRE, Category.TRAF, Category.SAR, Category.KDRT})


#: Categories whose callers are put in silent mode as they choose them (they can turn it off):
#: someone reporting domestic violence may be overheard, and must not be phoned back.
SILENT_BY_DEFAULT = frozenset({Category.KDRT})
#: Category groups whose menu offers "I cannot speak safely" again (crime: the caller may be
#: near the offender). The first menu offers it to everyone.
OFFERS_SILENT = frozenset({CategoryGroup.CRIME})


def silent_by_default(ticket: Ticket) -> bool:
    """Turns silent mode on when the ticket's category asks for it; True when it did."""
    if ticket.silent or ticket.category not in SILENT_BY_DEFAULT:
        return False
    ticket.silent = True
    return True


def priority_for(ticket: Ticket) -> int:
    """Return 1 (highest) to 3; silent-mode callers are always treated as urgent."""
    if ticket.silent or ticket.category in _URGENT:
        return 1
    if ticket.category in (Category.OTHER, Category.ANIMAL, Category.UTIL):
        return 3
    return 2


def next_step(ticket: Ticket) -> IntakeStep:
    """Return the first step whose answer is still missing (most critical first)."""
    if ticket.category is None:
        return IntakeStep.SUBCATEGORY if ticket.category_group else IntakeStep.CATEGORY
    if ticket.incident_location is None and ticket.location_note is None:
        if ticket.pending_location is not None:  # a point found earlier waits for its tap
            return IntakeStep.LOCATION_CONFIRM
        return IntakeStep.INCIDENT_LOCATION if ticket.location_elsewhere else IntakeStep.LOCATION
    if ticket.caller_phone_e164 is None:
        return IntakeStep.PHONE
    if not ticket.caller_name:
        return IntakeStep.NAME
    if not ticket.reviewed:
        return IntakeStep.DETAILS
    return IntakeStep.CONFIRM


def format_ref(prefix: str, day: date, number: int) -> str:
    """Return a human reference like ``SMG-261127-0042`` (the day is the local day): the
    day's head (:func:`ref_head`), then the number in at least four digits."""
    return f"{ref_head(prefix, day)}{number:04d}"


def ref_head(prefix: str, day: date) -> str:
    """The part of the day's references before the number, ``SMG-261127-`` (PostgreSQL
    appends the number itself when it takes it: see ``TicketRepository.update_with_next_ref``)."""
    return f"{prefix}-{day:%y%m%d}-"


SUPPORTED_LANGUAGES = ("id", "en")


def resolve_language(code: str | None, default: str = "id") -> str:
    """Map a Telegram ``language_code`` (e.g. ``en-GB``) to a supported language."""
    if code:
        base = code.split("-")[0].split("_")[0].lower()
        if base in SUPPORTED_LANGUAGES:
            return base
        if base in ("ms", "jv", "su"):  # Malay, Javanese and Sundanese readers read Indonesian
            return "id"
    return default


def clean_text(text: str, limit: int) -> str:
    """Strip control characters (keeping newlines) and surrounding space; cut to ``limit``."""
    kept = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    return kept.strip()[:limit]
