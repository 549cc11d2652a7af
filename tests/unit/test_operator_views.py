"""The operators' views: bounds Telegram sets (64-byte callback data, 4096 characters, 128
for a topic name) and escaping of everything a citizen or operator typed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.config import load_settings
from bot.domain.lifecycle import actions_for
from bot.domain.model import (
    Assignment,
    AssignmentChannel,
    Category,
    Citizen,
    Disposition,
    Location,
    LocationSource,
    Operator,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.double.botapi_model import FORUM_ICON_COLORS
from bot.i18n import gettext_for
from bot.services.console import ConsoleResult, ConsoleStatus
from bot.services.queue import QueueBoard, entry_for
from handlers.operator_views import (
    MAX_CALLBACK_DATA,
    MAX_TEXT,
    MAX_TOPIC_NAME,
    PRIORITY_COLORS,
    OperatorViews,
    callback,
)
from handlers.views import Views
from tests.unit.console_support import PLEBURAN, T0

EVIL = '<script>alert("x")</script> & <b>'


@pytest.fixture
def views() -> OperatorViews:
    return OperatorViews.from_settings(
        load_settings({"DATABASE_URL": "sqlite+aiosqlite://"}, env_file=None)
    )


@pytest.fixture
def citizen_views() -> Views:
    return Views(load_settings({"DATABASE_URL": "sqlite+aiosqlite://"}, env_file=None))


def _ticket(**changes: object) -> Ticket:
    ticket = Ticket(
        citizen_id=1, chat_id=5001, status=TicketStatus.SUBMITTED, created_at=T0, updated_at=T0,
        step=None, ref="SMG-261127-0001", priority=1, submitted_at=T0, id=987654321,
        incident_location=Location(-6.99, 110.42, LocationSource.GPS, T0, area=PLEBURAN),
        caller_name="Siti", caller_phone_e164="+6281390001234", caller_phone_verified=True,
    )  # fmt: skip
    return replace(ticket, **changes)


def _datas(markup: object) -> list[str]:
    keyboard = getattr(markup, "inline_keyboard", ())
    return [str(b.callback_data) for row in keyboard for b in row]


def test_callback_data_fit_64_bytes_when_every_picker_is_shown_for_a_huge_ticket_id(
    views: OperatorViews,
) -> None:
    ticket_id = 9_999_999_999
    every_mask = (1 << len(views.agencies)) - 1
    datas = _datas(views.agency_picker(ticket_id, every_mask))
    datas += _datas(views.eta_picker(ticket_id)) + _datas(views.disposition_picker(ticket_id))
    for status in TicketStatus:
        datas += _datas(views.card_keyboard(_ticket(status=status, id=ticket_id)))
    assert datas
    assert all(len(d.encode()) <= MAX_CALLBACK_DATA and d.isascii() for d in datas)
    with pytest.raises(ValueError, match="too long"):
        callback("x" * 60, ticket_id)


def test_card_buttons_follow_the_lifecycle_table_when_status_changes(
    views: OperatorViews,
) -> None:
    submitted = _datas(views.card_keyboard(_ticket()))
    assert "o|claim|987654321" in submitted
    assert "o|release|987654321" not in submitted
    claimed = _datas(views.card_keyboard(_ticket(status=TicketStatus.CLAIMED)))
    assert {"o|release|987654321", "o|dispatch|987654321", "o|resolve|987654321"} <= set(claimed)
    resolved = _datas(views.card_keyboard(_ticket(status=TicketStatus.RESOLVED)))
    assert "o|reopen|987654321" in resolved
    assert "o|claim|987654321" not in resolved
    assert views.card_keyboard(_ticket(status=TicketStatus.ABANDONED)) is None
    assert actions_for(TicketStatus.CANCELLED) == ()


def test_card_escapes_user_text_and_stays_within_4096_when_every_field_is_huge(
    views: OperatorViews,
) -> None:
    location = Location(
        -6.99, 110.42, LocationSource.GEOCODED, T0, area=PLEBURAN, display_address=EVIL * 100,
        address_text=EVIL * 100,
    )  # fmt: skip
    ticket = _ticket(
        caller_name=EVIL * 50, details=EVIL * 500, location_note=EVIL * 100,
        incident_location=location, reporter_location=location, location_elsewhere=True,
    )  # fmt: skip
    citizen = Citizen(telegram_id=5001, language="id", created_at=T0, updated_at=T0,
                      username="a<b>")  # fmt: skip
    assignments = [
        Assignment(ticket_id=1, agency_code=code, dispatched_at=T0, channel=AssignmentChannel.PHONE,
                   by="operator:1", en_route_at=T0, eta_minutes=10, on_scene_at=T0)
        for code, _name in views.agencies
    ]  # fmt: skip
    text = views.card_text(ticket, citizen, assignments)
    assert len(text) <= MAX_TEXT
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    assert "a&lt;b&gt;" in text


def test_card_shows_priority_in_words_a_maps_link_and_no_number_when_silent(
    views: OperatorViews,
) -> None:
    text = views.card_text(_ticket(silent=True), None)
    assert "prioritas 1 — nyawa terancam" in text
    assert "https://www.openstreetmap.org/?mlat=-6.990000&amp;mlon=110.420000#map=18/" in text
    assert "tanpa nomor: hanya chat" in text
    assert "+6281390001234" not in text
    claimed = views.card_text(
        _ticket(status=TicketStatus.CLAIMED, claimed_by=42, claimed_by_name="Dewi <3",
                claimed_at=T0), None)  # fmt: skip
    assert "Dewi &lt;3" in claimed
    assert "10:00" in claimed  # 03:00 UTC in WIB


def test_topic_name_is_bounded_and_colour_is_one_telegram_accepts_when_any_priority(
    views: OperatorViews,
) -> None:
    ticket = _ticket(category=Category.FIRE)
    assert views.topic_name(ticket) == "🔥 SMG-261127-0001 · Semarang Selatan"
    assert views.topic_name(_ticket(incident_location=None)).endswith("tempat belum diketahui")
    long_area = replace(PLEBURAN, kecamatan_name="X" * 300)
    located = Location(-6.99, 110.42, LocationSource.GPS, T0, area=long_area)
    assert len(views.topic_name(_ticket(incident_location=located))) <= MAX_TOPIC_NAME
    for priority in (1, 2, 3, 9):
        assert views.topic_color(_ticket(priority=priority)) in FORUM_ICON_COLORS
    assert set(PRIORITY_COLORS.values()) <= set(FORUM_ICON_COLORS)


def test_board_lists_in_order_and_ends_with_more_when_queue_exceeds_4096(
    views: OperatorViews,
) -> None:
    tickets = [_ticket(id=n, ref=f"SMG-261127-{n:04d}", caller_name=EVIL) for n in range(1, 400)]
    board = QueueBoard(T0 + timedelta(minutes=5), tuple(entry_for(t, T0 + timedelta(minutes=5))
                                                       for t in tickets))  # fmt: skip
    text = views.board(board)
    assert len(text) <= MAX_TEXT
    assert "SMG-261127-0001" in text
    assert "lagi" in text.splitlines()[-1]  # «+N lagi»
    assert "5 min" in text
    empty = views.board(QueueBoard(T0, ()))
    assert "Tidak ada tiket terbuka" in empty


def test_timeline_names_operators_and_escapes_notes_when_events_are_many(
    views: OperatorViews,
) -> None:
    events = [
        TicketEvent(ticket_id=1, at=T0, actor="operator:42", kind="note", note=EVIL),
        TicketEvent(ticket_id=1, at=T0, actor="system", kind="sla_realert", note="61 s"),
    ] * 200
    text = views.timeline(_ticket(), events, {42: "Dewi"})
    assert len(text) <= MAX_TEXT
    assert "Dewi (42)" in text
    assert "&lt;script&gt;" in text
    assert "27-11-2026 10:00 WIB" in text


def test_answers_name_the_winner_when_claim_race_is_lost(views: OperatorViews) -> None:
    winner = _ticket(status=TicketStatus.CLAIMED, claimed_by=42, claimed_by_name="Dewi")
    text = views.action_answer(ConsoleResult(ConsoleStatus.LOST_RACE, winner))
    assert "Dewi" in text
    assert len(text) <= 200
    assert "Tidak diizinkan" in views.action_answer(ConsoleResult(ConsoleStatus.NOT_ALLOWED))


def test_roster_list_marks_admins_and_escapes_names(views: OperatorViews) -> None:
    members = [
        Operator(telegram_id=1, display_name="<Rina>", is_admin=True, active=True,
                 added_by="settings", added_at=T0),
        Operator(telegram_id=2, display_name="Budi", is_admin=False, active=True,
                 added_by="operator:1", added_at=T0),
    ]  # fmt: skip
    text = views.roster(members)
    assert "&lt;Rina&gt; · 1 · admin" in text
    assert "Budi · 2" in text


@pytest.mark.parametrize(
    ("language", "words"),
    [("id", ("sedang menangani", "Damkar", "sekitar 10 menit", "telah tiba", "ditutup")),
     ("en", ("is now handling", "Damkar", "in about 10 minutes", "has arrived", "closed"))],
)  # fmt: skip
def test_citizen_status_notices_carry_reference_and_112_when_in_either_language(
    citizen_views: Views, language: str, words: tuple[str, ...]
) -> None:
    citizen = Citizen(telegram_id=5001, language=language, created_at=T0, updated_at=T0)
    ticket = _ticket()
    payloads = [
        {"status": "claimed"},
        {"status": "dispatched", "agencies": ["Damkar <Kota>"]},
        {"status": "en_route", "eta_minutes": 10},
        {"status": "on_scene"},
        {"status": "resolved", "disposition": Disposition.EMERGENCY.value},
    ]
    for payload, word in zip(payloads, words, strict=True):
        text = citizen_views.citizen_status(citizen, ticket, payload)
        assert word in text.text
        assert "SMG-261127-0001" in text.text
        assert "112" in text.text
    dispatched = citizen_views.citizen_status(citizen, ticket, payloads[1]).text
    assert "Damkar &lt;Kota&gt;" in dispatched
    resolved = citizen_views.citizen_status(citizen, ticket, payloads[4])
    assert resolved.markup is not None  # the menu: a new report is one tap away
    header = citizen_views.citizen_relay_header(citizen, ticket)
    assert header.startswith("👮 <b>Operator 112</b>")


def test_card_names_the_phone_once_per_state_when_verified_typed_or_skipped(
    views: OperatorViews,
) -> None:
    verified = views.card_text(_ticket(category=Category.FIRE), None)
    assert "Telepon: +6281390001234 (terverifikasi)" in _plain(verified)
    assert "🔥 Kebakaran · prioritas 1" in verified
    assert "(FIRE)" not in verified
    typed = _plain(views.card_text(_ticket(caller_phone_verified=False), None))
    assert typed.count("terverifikasi") == 1
    assert "⚠️ Telepon: +6281390001234 — BELUM terverifikasi (diketik oleh pelapor)" in typed
    skipped = _plain(views.card_text(_ticket(caller_phone_e164=""), None))
    assert "tanpa nomor untuk dihubungi" in skipped


def test_card_says_where_a_point_comes_from_in_words_when_it_is_a_kelurahan_centre(
    views: OperatorViews,
) -> None:
    centre = Location(-6.99, 110.42, LocationSource.CENTROID, T0, area=PLEBURAN)
    text = views.card_text(_ticket(incident_location=centre), None)
    assert "perkiraan: titik tengah kelurahan" in text
    assert "sumber" not in text
    assert "centroid" not in text


def test_live_location_update_is_a_pin_titled_with_its_ticket_when_it_moves(
    views: OperatorViews,
) -> None:
    moved = Location(-6.99, 110.42, LocationSource.LIVE, T0, accuracy_m=8.4, area=PLEBURAN)
    title, address = views.location_update(_ticket(), moved)
    assert title == "📍 SMG-261127-0001: lokasi terkini diperbarui"
    assert address == "Kel. Pleburan, Kec. Semarang Selatan · ±8 m · 10:00"
    outside = views.location_update(_ticket(), Location(-6.5, 110.42, LocationSource.LIVE, T0))
    assert outside[1].startswith("di luar Kota Semarang")


def test_citizen_times_read_pada_and_pukul_when_shown_in_either_language(
    citizen_views: Views,
) -> None:
    assert citizen_views.when(T0, gettext_for("id")) == "pada 27-11-2026 pukul 10.00 WIB"
    assert citizen_views.when(T0, gettext_for("en")) == "on 27-11-2026 at 10.00 WIB"


def test_skip_key_is_known_in_both_languages_when_it_arrives_as_text() -> None:
    assert Views.skip_labels() == {"⏭️ Lewati", "⏭️ Skip"}


def _plain(html: str) -> str:
    return html.replace("<b>", "").replace("</b>", "")
