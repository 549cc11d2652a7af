"""JSON shapes of the domain values kept in JSON columns (pending location, media, geocodes).

Each shape is a plain ``dict`` of JSON types; datetimes are ISO 8601 strings in UTC.
Decoders are strict: a malformed document raises ``ValueError`` (or ``KeyError``/``TypeError``)
rather than inventing data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.domain.model import Area, GeocodeCandidate, Location, LocationSource, Media, MediaKind


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; refuse a naive datetime (its zone would be a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime refused: storage keeps aware UTC times only")
    return value.astimezone(UTC)


def ensure_utc_or_none(value: datetime | None) -> datetime | None:
    """:func:`ensure_utc`, letting ``None`` through."""
    return None if value is None else ensure_utc(value)


def _datetime_to_json(value: datetime | None) -> str | None:
    return None if value is None else ensure_utc(value).isoformat()


def _datetime_from_json(value: Any) -> datetime | None:
    if value is None:
        return None
    return ensure_utc(datetime.fromisoformat(str(value)))


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def area_to_json(area: Area | None) -> dict[str, Any] | None:
    """Encode an area."""
    if area is None:
        return None
    return {
        "kelurahan_code": area.kelurahan_code,
        "kelurahan_name": area.kelurahan_name,
        "kecamatan_code": area.kecamatan_code,
        "kecamatan_name": area.kecamatan_name,
        "inside": area.inside,
        "distance_m": area.distance_m,
    }


def area_from_json(data: Any) -> Area | None:
    """Decode an area."""
    if data is None:
        return None
    return Area(
        kelurahan_code=str(data["kelurahan_code"]),
        kelurahan_name=str(data["kelurahan_name"]),
        kecamatan_code=str(data["kecamatan_code"]),
        kecamatan_name=str(data["kecamatan_name"]),
        inside=bool(data["inside"]),
        distance_m=float(data["distance_m"]),
    )


def location_to_json(location: Location | None) -> dict[str, Any] | None:
    """Encode a location."""
    if location is None:
        return None
    return {
        "lat": location.lat,
        "lon": location.lon,
        "source": location.source.value,
        "captured_at": _datetime_to_json(location.captured_at),
        "accuracy_m": location.accuracy_m,
        "address_text": location.address_text,
        "display_address": location.display_address,
        "area": area_to_json(location.area),
        "confidence": location.confidence,
        "live_until": _datetime_to_json(location.live_until),
    }


def location_from_json(data: Any) -> Location | None:
    """Decode a location."""
    if data is None:
        return None
    captured_at = _datetime_from_json(data["captured_at"])
    if captured_at is None:
        raise ValueError("a location needs captured_at")
    return Location(
        lat=float(data["lat"]),
        lon=float(data["lon"]),
        source=LocationSource(data["source"]),
        captured_at=captured_at,
        accuracy_m=_float_or_none(data.get("accuracy_m")),
        address_text=data.get("address_text"),
        display_address=data.get("display_address"),
        area=area_from_json(data.get("area")),
        confidence=_float_or_none(data.get("confidence")),
        live_until=_datetime_from_json(data.get("live_until")),
    )


def media_to_json(media: list[Media]) -> list[dict[str, Any]]:
    """Encode a report's attachments."""
    return [{"kind": m.kind.value, "file_id": m.file_id, "caption": m.caption} for m in media]


def media_from_json(data: Any) -> list[Media]:
    """Decode a report's attachments."""
    return [
        Media(
            kind=MediaKind(item["kind"]), file_id=str(item["file_id"]), caption=item.get("caption")
        )
        for item in data or []
    ]


def candidate_to_json(candidate: GeocodeCandidate) -> dict[str, Any]:
    """Encode a geocoding candidate."""
    return {
        "lat": candidate.lat,
        "lon": candidate.lon,
        "display_address": candidate.display_address,
        "confidence": candidate.confidence,
        "source": candidate.source,
        "area": area_to_json(candidate.area),
        "rt_rw": candidate.rt_rw,
    }


def candidate_from_json(data: Any) -> GeocodeCandidate:
    """Decode a geocoding candidate."""
    return GeocodeCandidate(
        lat=float(data["lat"]),
        lon=float(data["lon"]),
        display_address=str(data["display_address"]),
        confidence=float(data["confidence"]),
        source=str(data["source"]),
        area=area_from_json(data.get("area")),
        rt_rw=data.get("rt_rw"),
    )
