"""What agencies see: card text, buttons per progress, callback data within Telegram's bounds."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import AgencyConfig, load_settings
from bot.domain.handoff import ETA_CHOICES, DeclineReason
from bot.domain.model import (
    Assignment,
    AssignmentChannel,
    Category,
    Citizen,
    Location,
    LocationSource,
    Ticket,
    TicketStatus,
)
from handlers.agency_views import AgencyViews, callback, parse
from handlers.operator_views import OperatorViews
from handlers.views import Views
from tests.unit.console_support import PLEBURAN, T0

AGENCY = AgencyConfig("POLRESTABES_SEMARANG_SATLANTAS_X", "Polres <Satlantas> & co", ("TRAF",))
VIEWS = AgencyViews(ZoneInfo("Asia/Jakarta"), "en", "112")
TICKET = Ticket(
    citizen_id=1, chat_id=1, status=TicketStatus.DISPATCHED, created_at=T0, updated_at=T0,
    ref="SMG-261127-0001", category=Category.TRAF, priority=1, caller_name="<b>Budi</b>",
    caller_phone_e164="+6281234567890", details="Two cars & a <motorbike>", submitted_at=T0,
    incident_location=Location(-6.99, 110.42, LocationSource.GPS, T0, accuracy_m=8.0,
                               display_address="Jl. Pahlawan <3>", area=PLEBURAN),
    id=2_147_483_647,
)  # fmt: skip
FRESH = Assignment(2_147_483_647, AGENCY.code, T0, AssignmentChannel.TELEGRAM, "operator:1")


def _datas(markup: object) -> list[str]:
    rows = getattr(markup, "inline_keyboard", ())
    return [str(button.callback_data) for row in rows for button in row]


def test_card_escapes_every_user_text_and_shows_number_and_place_when_not_silent() -> None:
    card = VIEWS.card(TICKET, None, AGENCY, FRESH)
    assert "&lt;b&gt;Budi&lt;/b&gt;" in card.text
    assert "Two cars &amp; a &lt;motorbike&gt;" in card.text
    assert "Polres &lt;Satlantas&gt; &amp; co" in card.text
    assert "+6281234567890" in card.text
    assert "Pleburan" in card.text
    assert "Semarang Selatan" in card.text
    assert "maps?q=-6.990000,110.420000" in card.text
    assert "± 8 m" in card.text


def test_card_hides_the_number_and_says_chat_only_when_the_caller_is_silent() -> None:
    card = VIEWS.card(dataclasses.replace(TICKET, silent=True), None, AGENCY, FRESH)
    assert "+6281234567890" not in card.text
    assert "chat only, via 112" in card.text


@pytest.mark.parametrize(
    ("progress", "buttons"),
    [
        ({}, ["ack", "eta", "os", "done", "no"]),
        ({"acknowledged_at": T0}, ["eta", "os", "done", "no"]),
        ({"acknowledged_at": T0, "en_route_at": T0, "eta_minutes": 5}, ["eta", "os", "done", "no"]),
        ({"on_scene_at": T0}, ["done"]),
        ({"completed_at": T0}, []),
        ({"declined_at": T0, "decline_reason": "no_unit"}, []),
    ],
)
def test_card_offers_only_the_steps_the_progress_allows_when_rendered(
    progress: dict[str, object], buttons: list[str]
) -> None:
    markup = VIEWS.card(TICKET, None, AGENCY, dataclasses.replace(FRESH, **progress)).markup
    assert [data.split("|")[1] for data in _datas(markup)] == buttons


def test_callback_data_fits_64_bytes_and_parses_back_when_ids_and_codes_are_longest() -> None:
    datas = [
        *_datas(VIEWS.buttons(TICKET.id or 0, AGENCY.code, None)),
        *_datas(VIEWS.eta_picker(TICKET.id or 0, AGENCY.code)),
        *_datas(VIEWS.reason_picker(TICKET.id or 0, AGENCY.code)),
    ]
    assert len(datas) == 5 + len(ETA_CHOICES) + 1 + len(DeclineReason) + 1
    assert max(len(d.encode()) for d in datas) <= 64
    assert parse(callback("nr", 7, "BPBD", "no_unit")) == ("nr", 7, "BPBD", "no_unit")
    assert parse("o|claim|7") is None
    assert parse("a|ack|x|BPBD") is None


def test_progress_line_shows_eta_and_the_reason_in_wib_when_the_agency_reports() -> None:
    en_route = dataclasses.replace(FRESH, acknowledged_at=T0, en_route_at=T0, eta_minutes=12)
    assert "en route 10:00 WIB, ETA 12 min" in VIEWS.card(TICKET, None, AGENCY, en_route).text
    declined = dataclasses.replace(FRESH, declined_at=T0 + timedelta(minutes=1),
                                   decline_reason="out_of_area")  # fmt: skip
    assert "cannot handle (Not our area) 10:01 WIB" in VIEWS.card(TICKET, None, AGENCY,
                                                                   declined).text  # fmt: skip


def test_admin_alert_names_agency_and_report_when_a_webhook_is_given_up() -> None:
    views = Views(load_settings({"DEFAULT_LANGUAGE": "en"}, env_file=None))
    text = views.admin_alert(
        {"event": "webhook_dead", "agency": "DINKES", "ref": "SMG-1", "reason": "HTTP <503>"}
    )
    assert "DINKES" in text
    assert "SMG-1" in text
    assert "HTTP &lt;503&gt;" in text


# -- the operators' side of the handoff (the console's views) ---------------------------------


def _operator_views() -> OperatorViews:
    return OperatorViews(
        ZoneInfo("Asia/Jakarta"), "112", "en",
        [("DAMKAR", "Damkar"), ("DINKES", "Ambulans"), ("POLRESTABES", "Polrestabes")],
        {"POLRESTABES": "024-112"},
    )  # fmt: skip


def test_dispatch_picker_preselects_and_stars_the_suggested_agencies_when_opened() -> None:
    views = _operator_views()
    mask = views.mask_of(["DAMKAR", "POLRESTABES"], assigned=["DAMKAR"])
    assert views.chosen_agencies(mask) == ["POLRESTABES"]
    picker = views.agency_picker(7, mask, ["DAMKAR"], suggested=["DAMKAR", "POLRESTABES"])
    labels = [b.text for row in picker.inline_keyboard for b in row]
    assert labels == ["▫️ Ambulans", "✅ ⭐ Polrestabes", "⬅️ Back", "🚨 Dispatch"]


def test_operator_card_shows_each_agencys_channel_progress_and_refusal_when_rendered() -> None:
    views = _operator_views()
    phone = Assignment(1, "POLRESTABES", T0, AssignmentChannel.PHONE, "operator:1")
    card = dataclasses.replace(
        FRESH, agency_code="DAMKAR", acknowledged_at=T0, declined_at=T0,
        decline_reason="no_unit",
    )  # fmt: skip
    silent = dataclasses.replace(FRESH, agency_code="DINKES", ack_escalated_at=T0)
    lines = "\n".join(views._agencies([phone, card, silent], views._))
    assert "Polrestabes: dispatched by phone 10:00 ☎️ 024-112" in lines
    assert "Damkar: sent 10:00, acknowledged 10:00, ❌ cannot handle (No unit" in lines
    assert "Ambulans: sent 10:00, ⚠️ not acknowledged" in lines


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"notice": "agency_status", "agency": "DAMKAR", "step": "acknowledged"},
         "Damkar acknowledged"),
        ({"notice": "agency_status", "agency": "DAMKAR", "step": "en_route", "eta_minutes": 9},
         "Damkar is on the way, ETA 9 min"),
        ({"notice": "agency_status", "agency": "DAMKAR", "step": "cannot_handle",
          "reason": "out_of_area"}, "cannot handle it (Not our area). Dispatch another"),
        ({"notice": "agency_unacknowledged", "agency": "DINKES", "waited_seconds": 240},
         "Ambulans has not acknowledged after"),
        ({"notice": "agency_webhook_failed", "agency": "DINKES", "attempts": 8,
          "reason": "HTTP <503>"}, "failed 8 times («HTTP &lt;503&gt;»)"),
    ],
)  # fmt: skip
def test_topic_notice_tells_what_the_agency_did_when_it_reports(
    payload: dict[str, object], words: str
) -> None:
    assert words in _operator_views().notice(TICKET, payload)


@pytest.mark.parametrize(
    ("status", "words"),
    [("acknowledged", "Damkar has received your report"),
     ("completed", "Damkar has finished its work on your report")],
)  # fmt: skip
def test_citizen_hears_an_agencys_acknowledgement_and_completion_when_they_happen(
    status: str, words: str
) -> None:
    views = Views(load_settings({"DEFAULT_LANGUAGE": "en"}, env_file=None))
    citizen = Citizen(telegram_id=1, language="en")
    text = views.citizen_status(citizen, TICKET, {"status": status, "agencies": ["Damkar"]})
    assert words in text.text
    assert "112" in text.text
