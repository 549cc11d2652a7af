"""CAP 1.2 alerts as advisory drafts: parsing, matching areas to kecamatan, the draft."""

from __future__ import annotations

import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.domain.advisory import AdvisoryStatus, TargetKind
from bot.services.cap import CapError, CapImporter, parse_cap
from bot.services.outbox_kinds import ADVISORY, ADVISORY_DRAFT
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.advisory_support import gazetteer
from tests.unit.console_support import Clock, rows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
ADMINS = (1000, 1001)
WIB = ZoneInfo("Asia/Jakarta")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def importer(uow_factory: InMemoryUnitOfWorkFactory) -> CapImporter:
    city = gazetteer()
    return CapImporter(
        uow_factory, Clock(), city, {k.code: k.name for k in city.kecamatan}, zone=WIB
    )


def alert_xml(area: str, status: str = "Actual") -> bytes:
    return f"""<?xml version="1.0"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>X1</identifier><sender>bmkg.go.id</sender><sent>2026-11-29T15:00:00+07:00</sent>
  <status>{status}</status><msgType>Alert</msgType><scope>Public</scope>
  <info><language>id</language><event>Banjir</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty><headline>Banjir rob</headline>
    <area><areaDesc>{area}</areaDesc></area></info>
</alert>""".encode()


def test_indonesian_info_and_polygon_are_read_when_the_alert_has_two_languages() -> None:
    alert = parse_cap(fixture("inside.xml"))

    assert alert.identifier == "CJH20261129150000"
    assert alert.language == "id"
    assert alert.event.startswith("Hujan Lebat")
    assert alert.areas[0].polygons[0][0] == (-6.955, 110.36)
    assert alert.expires is not None
    assert alert.expires.utcoffset() is not None


@pytest.mark.parametrize(
    "document",
    [
        b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>",
        b"<alert>not namespaced</alert>",
        b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>1</identifier>",
        b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>1</identifier></alert>",
    ],
)
def test_document_is_refused_when_it_is_not_a_plain_cap_alert(document: bytes) -> None:
    with pytest.raises(CapError):
        parse_cap(document)


async def test_draft_targets_the_touched_kecamatan_and_is_only_offered_when_inside() -> None:
    uow_factory = InMemoryUnitOfWorkFactory()

    result = await importer(uow_factory).import_alert(parse_cap(fixture("inside.xml")), ADMINS)

    assert result.advisory is not None
    assert result.advisory.status is AdvisoryStatus.DRAFT
    assert result.advisory.target is not None
    assert result.advisory.target.kind is TargetKind.KECAMATAN
    # Tugu, Semarang Barat, Semarang Utara: what the polygon covers on the city's boundaries
    assert result.advisory.target.codes == ("33.74.02", "33.74.13", "33.74.16")
    assert result.advisory.source == "cap:CJH20261129150000"
    text = result.advisory.text
    assert text.startswith("⚠️ Peringatan Dini Cuaca Jawa Tengah")
    assert "Yang perlu dilakukan: Hindari berteduh" in text
    assert "Berlaku sampai 29-11-2026 17:00 WIB." in text
    offers = rows(uow_factory, ADVISORY_DRAFT)
    assert sorted(int(str(m.payload["admin_id"])) for m in offers) == list(ADMINS)
    assert rows(uow_factory, ADVISORY) == []  # nothing goes to citizens without a confirm


async def test_only_the_citys_kecamatan_are_targeted_when_the_alert_is_partly_inside() -> None:
    uow_factory = InMemoryUnitOfWorkFactory()

    result = await importer(uow_factory).import_alert(
        parse_cap(fixture("partly_inside.xml")), ADMINS
    )

    assert result.kecamatan == ("33.74.12", "33.74.14", "33.74.15", "33.74.16")


async def test_alert_is_skipped_with_a_log_line_when_it_does_not_touch_the_city(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uow_factory = InMemoryUnitOfWorkFactory()
    caplog.set_level(logging.INFO, logger="bot.services.cap")

    result = await importer(uow_factory).import_alert(parse_cap(fixture("outside.xml")), ADMINS)

    assert result.skipped == "outside"
    assert result.advisory is None
    assert uow_factory.store.advisories == {}
    assert uow_factory.store.outbox == {}
    assert "CJH20261129163000 skipped: its areas do not touch the city" in caplog.text


async def test_names_of_the_city_are_matched_and_another_regencys_ignored_when_no_shape() -> None:
    result = await importer(InMemoryUnitOfWorkFactory()).import_alert(
        parse_cap(fixture("by_name.xml")), ADMINS
    )

    assert result.kecamatan == ("33.74.10", "33.74.11")  # Tembalang, Banyumanik


@pytest.mark.parametrize(
    ("area", "kind"),
    [("Kota Semarang", TargetKind.ALL), ("Kecamatan Tugu dan Genuk", TargetKind.KECAMATAN)],
)
async def test_whole_city_or_named_kecamatan_are_targeted_when_the_alert_names_them(
    area: str, kind: TargetKind
) -> None:
    result = await importer(InMemoryUnitOfWorkFactory()).import_alert(
        parse_cap(alert_xml(area)), ADMINS
    )

    assert result.advisory is not None
    assert result.advisory.target is not None
    assert result.advisory.target.kind is kind


async def test_alert_is_imported_once_when_it_arrives_again() -> None:
    uow_factory = InMemoryUnitOfWorkFactory()
    alert = parse_cap(fixture("inside.xml"))
    first = await importer(uow_factory).import_alert(alert, ADMINS)

    again = await importer(uow_factory).import_alert(alert, ADMINS)

    assert first.advisory is not None
    assert again.skipped == "duplicate"
    assert len(uow_factory.store.advisories) == 1


async def test_exercise_is_skipped_when_its_status_is_not_actual() -> None:
    result = await importer(InMemoryUnitOfWorkFactory()).import_alert(
        parse_cap(alert_xml("Kota Semarang", status="Exercise")), ADMINS
    )
    assert result.skipped == "not_actual"
