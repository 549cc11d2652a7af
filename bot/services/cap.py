"""CAP 1.2 alerts (for example BMKG's nowcasting for Central Java) as advisory drafts.

``parse_cap`` reads an alert with the standard library's XML parser; a document with a DTD
or entity declarations is refused (CAP needs neither, and entity expansion is the classic
XML attack). ``CapImporter.import_alert`` matches the alert's areas to the city's kecamatan —
polygons and circles against the shipped boundaries, else area names ("Kota Semarang:
Tugu, Ngaliyan") — and stores a ready Indonesian draft for the admins, who are told about
it by direct message. Nothing is sent to citizens without an admin's confirm. An alert that
does not touch the city is skipped with a log line.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.domain.advisory import MAX_TEXT, Advisory, Target, TargetKind
from bot.services.outbox_kinds import ADVISORY_DRAFT
from bot.services.ports import AreaIndex, Clock, UnitOfWorkFactory
from bot.services.rows import enqueue

log = logging.getLogger(__name__)

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
_NS = {"cap": CAP_NS}
MAX_BYTES = 1_000_000
CITY_WORDS = ("kota semarang",)
"""Words in an area description that name the whole city."""


class CapError(ValueError):
    """The document is not a CAP 1.2 alert this importer can read."""


@dataclass(frozen=True, slots=True)
class CapArea:
    """One ``<area>``: its description and shapes (``(lat, lon)`` rings, circles in km)."""

    description: str
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()
    circles: tuple[tuple[float, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class CapAlert:
    """What an advisory draft needs of a CAP alert (one ``<info>``, Indonesian preferred)."""

    identifier: str
    sender: str
    sent: datetime | None
    status: str
    msg_type: str
    event: str
    headline: str
    description: str
    instruction: str
    severity: str
    urgency: str
    sender_name: str
    expires: datetime | None
    language: str
    areas: tuple[CapArea, ...] = field(default_factory=tuple)


def parse_cap(document: bytes) -> CapAlert:
    """Reads a CAP 1.2 alert; raises CapError for anything else."""
    if len(document) > MAX_BYTES:
        raise CapError("the document is larger than 1 MB")
    head = document[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in document.lower():
        raise CapError("DTDs and entities are not accepted in CAP documents")
    try:
        root = ET.fromstring(document)  # noqa: S314 - no DTD, no entities (checked above)
    except ET.ParseError as exc:
        raise CapError(f"not well-formed XML: {exc}") from None
    if root.tag != f"{{{CAP_NS}}}alert":
        raise CapError("not a CAP 1.2 alert (root must be cap:alert)")
    infos = root.findall("cap:info", _NS)
    if not infos:
        raise CapError("the alert has no <info>")
    info = next((i for i in infos if _text(i, "language").lower().startswith("id")), infos[0])
    return CapAlert(
        identifier=_text(root, "identifier"),
        sender=_text(root, "sender"),
        sent=_time(_text(root, "sent")),
        status=_text(root, "status"),
        msg_type=_text(root, "msgType"),
        event=_text(info, "event"),
        headline=_text(info, "headline"),
        description=_text(info, "description"),
        instruction=_text(info, "instruction"),
        severity=_text(info, "severity"),
        urgency=_text(info, "urgency"),
        sender_name=_text(info, "senderName"),
        expires=_time(_text(info, "expires")),
        language=_text(info, "language") or "id",
        areas=tuple(_area(area) for area in info.findall("cap:area", _NS)),
    )


def _text(element: ET.Element, name: str) -> str:
    found = element.find(f"cap:{name}", _NS)
    return " ".join((found.text or "").split()) if found is not None else ""


def _time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _area(element: ET.Element) -> CapArea:
    polygons = []
    for polygon in element.findall("cap:polygon", _NS):
        ring = tuple(_point(pair) for pair in (polygon.text or "").split())
        if len(ring) >= 4:  # CAP: at least four pairs, the first repeated last
            polygons.append(ring)
    circles = []
    for circle in element.findall("cap:circle", _NS):
        parts = (circle.text or "").split()
        if len(parts) == 2:
            lat, lon = _point(parts[0])
            circles.append((lat, lon, float(parts[1])))
    return CapArea(_text(element, "areaDesc"), tuple(polygons), tuple(circles))


def _point(pair: str) -> tuple[float, float]:
    try:
        lat, lon = (float(value) for value in pair.split(","))
    except ValueError:
        raise CapError(f"bad coordinate pair {pair[:40]!r}") from None
    return lat, lon


def match_areas(
    alert: CapAlert, areas: AreaIndex, kecamatan: Mapping[str, str]
) -> tuple[str, ...] | None:
    """The kecamatan an alert touches (None: the whole city; empty: not the city at all).

    Shapes decide where an area has them; otherwise its description: "Kota Semarang" alone is
    the whole city, "Kota Semarang: Tugu, Ngaliyan" those kecamatan; parts about another
    regency ("Kab. Semarang: …", "Kab. Kendal") are left out."""
    found: set[str] = set()
    for area in alert.areas:
        if area.polygons or area.circles:
            found.update(areas.kecamatan_in_polygons(area.polygons))
            for lat, lon, radius_km in area.circles:
                found.update(areas.kecamatan_within(lat, lon, radius_km * 1000))
            continue
        named = _named(area.description, kecamatan)
        if named is None:
            return None
        found.update(named)
    return tuple(sorted(found))


def _named(description: str, kecamatan: Mapping[str, str]) -> set[str] | None:
    by_name = {name.lower(): code for code, name in kecamatan.items()}
    found: set[str] = set()
    for segment in re.split(r"[;\n]", description):
        place, _, names = segment.partition(":")
        place = place.strip().lower()
        if place.startswith(("kab", "kabupaten")) or (
            place.startswith("kota") and place not in CITY_WORDS
        ):
            continue  # another regency or city
        if place in CITY_WORDS and not names.strip():
            return None
        listed = names if place in CITY_WORDS else segment
        for name in re.split(r",|\bdan\b", listed):
            code = by_name.get(" ".join(name.lower().replace("kecamatan", "").split()))
            if code is not None:
                found.add(code)
    return found


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: the draft made, or why none was."""

    alert: CapAlert
    advisory: Advisory | None
    kecamatan: tuple[str, ...] | None
    skipped: str | None = None
    """``outside`` (no kecamatan touched), ``duplicate`` (imported before), ``not_actual``
    (status is not Actual, or a cancel message)."""


class CapImporter:
    """Turns CAP alerts into advisory drafts offered to the admins."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        areas: AreaIndex,
        kecamatan: Mapping[str, str],
        *,
        zone: ZoneInfo,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._areas = areas
        self._kecamatan = dict(kecamatan)
        self._zone = zone

    async def import_alert(self, alert: CapAlert, admin_ids: Collection[int]) -> ImportResult:
        """Stores a draft for an alert touching the city and tells each admin about it."""
        if alert.status.lower() != "actual" or alert.msg_type.lower() == "cancel":
            log.info("CAP %s skipped: status %s, %s", alert.identifier, alert.status,
                     alert.msg_type)  # fmt: skip
            return ImportResult(alert, None, None, "not_actual")
        codes = match_areas(alert, self._areas, self._kecamatan)
        if codes is not None and not codes:
            log.info("CAP %s skipped: its areas do not touch the city", alert.identifier)
            return ImportResult(alert, None, (), "outside")
        source = f"cap:{alert.identifier}"
        target = Target(TargetKind.ALL) if codes is None else Target(TargetKind.KECAMATAN, codes)
        now = self._clock.now()
        async with self._uow_factory() as uow:
            if await uow.advisories.with_source(source):
                log.info("CAP %s skipped: imported before", alert.identifier)
                return ImportResult(alert, None, codes, "duplicate")
            advisory = await uow.advisories.add(
                Advisory(0, now, text=self.draft_text(alert), target=target, source=source)
            )
            for admin in sorted(admin_ids):
                await enqueue(
                    uow, ADVISORY_DRAFT, now, {"advisory_id": advisory.id, "admin_id": admin},
                    rank=9,
                )  # fmt: skip
            await uow.commit()
        log.info("CAP %s: draft advisory %s for %s", alert.identifier, advisory.id,
                 "the whole city" if codes is None else f"{len(codes)} kecamatan")  # fmt: skip
        return ImportResult(alert, advisory, codes)

    def draft_text(self, alert: CapAlert) -> str:
        """The Indonesian advisory text: headline, what, what to do, until when, source."""
        lines = [f"⚠️ {alert.headline or alert.event}"]
        if alert.event and alert.event != alert.headline:
            lines.append(alert.event)
        if alert.description:
            lines.append(alert.description)
        if alert.instruction:
            lines.append(f"Yang perlu dilakukan: {alert.instruction}")
        if alert.expires is not None:
            local = alert.expires.astimezone(self._zone)
            lines.append(f"Berlaku sampai {local:%d-%m-%Y %H:%M} {local.tzname()}.")
        lines.append(f"Sumber: {alert.sender_name or alert.sender}.")
        text = "\n\n".join(lines)
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
