"""Advisories: what admins broadcast to subscribed citizens, and to whom (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

#: An advisory's text and photo caption: Telegram allows 4096 and 1024; the header and the
#: 112 line added to every copy need the rest.
MAX_TEXT = 3500
MAX_CAPTION = 800
#: The radius a shared location may be given, in metres.
MIN_RADIUS_M = 100.0
MAX_RADIUS_M = 20_000.0


class TargetKind(StrEnum):
    """Who an advisory is for."""

    ALL = "all"
    KECAMATAN = "kecamatan"
    KELURAHAN = "kelurahan"
    RADIUS = "radius"


@dataclass(frozen=True, slots=True)
class Target:
    """The area an advisory is for: the whole city, kecamatan, kelurahan or a circle.

    ``codes`` are Kemendagri codes (kecamatan ``33.74.NN``, kelurahan ``33.74.NN.NNNN``);
    a radius target has ``lat``, ``lon`` and ``radius_m``."""

    kind: TargetKind
    codes: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON form stored on the advisory."""
        return {
            "kind": self.kind.value,
            "codes": list(self.codes),
            "lat": self.lat,
            "lon": self.lon,
            "radius_m": self.radius_m,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Target:
        """Read the stored JSON form."""
        codes = data.get("codes") or []
        return cls(
            kind=TargetKind(str(data["kind"])),
            codes=tuple(str(code) for code in codes) if isinstance(codes, list) else (),
            lat=_float(data.get("lat")),
            lon=_float(data.get("lon")),
            radius_m=_float(data.get("radius_m")),
        )


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class AdvisoryStatus(StrEnum):
    """Lifecycle of an advisory: composed, then sending until every row is done."""

    DRAFT = "draft"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"
    DISCARDED = "discarded"


class DeliveryOutcome(StrEnum):
    """What Telegram refused for good, or a cancel stopped (a copy sent is known from its
    outbox row)."""

    BLOCKED = "blocked"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class Advisory:
    """An advisory: composed by an admin (or drafted from a CAP alert), then sent."""

    created_by: int
    """The admin's Telegram user id (0 for a draft from a CAP alert, until an admin takes it)."""
    created_at: datetime
    status: AdvisoryStatus = AdvisoryStatus.DRAFT
    text: str = ""
    photo_file_id: str | None = None
    target: Target | None = None
    source: str | None = None
    """Where a draft came from: ``cap:<identifier>`` for an imported CAP alert."""
    recipients: int = 0
    confirmed_by: int | None = None
    confirmed_at: datetime | None = None
    finished_at: datetime | None = None
    progress_chat_id: int | None = None
    progress_message_id: int | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """A citizen an advisory goes to."""

    citizen_id: int
    telegram_id: int
    language: str


@dataclass(frozen=True, slots=True)
class Progress:
    """How far an advisory's delivery is."""

    recipients: int
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    cancelled: int = 0
    owed: int = 0

    @property
    def done(self) -> int:
        """Copies whose fate is known."""
        return self.sent + self.blocked + self.failed + self.cancelled


@dataclass(frozen=True, slots=True)
class AudienceCount:
    """A preview of who an advisory would reach."""

    total: int
    city_wide: int
    """Subscribers of the whole city (they receive every advisory)."""
    by_area: int
    """Subscribers of a kecamatan the target touches."""
    kecamatan_codes: tuple[str, ...] = field(default_factory=tuple)
