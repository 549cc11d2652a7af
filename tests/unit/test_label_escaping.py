"""Translated labels are translator text, not HTML: every view escapes them (the Indonesian
label of SAR, «Pencarian & pertolongan», has a bare ``&`` that Telegram's HTML parser would
otherwise have to guess about; the Bot API double refuses it like tdlib's strict rules)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.config import AgencyConfig, load_settings
from bot.domain.model import Category, Citizen, Ticket, TicketStatus
from bot.double.telegram_html import parse_html
from bot.i18n import gettext_for
from bot.services.citizens import Outcome
from handlers.agency_views import AgencyViews
from handlers.operator_views import OperatorViews
from handlers.views import Views
from tests.unit.console_support import T0

SAR_ID = "Pencarian & pertolongan"


def _sar_ticket() -> Ticket:
    return Ticket(
        citizen_id=1, chat_id=5001, status=TicketStatus.SUBMITTED, created_at=T0, updated_at=T0,
        step=None, ref="SMG-261127-0001", priority=1, submitted_at=T0, id=7,
        category=Category.SAR,
    )  # fmt: skip


def test_the_indonesian_sar_label_really_has_an_ampersand() -> None:
    assert SAR_ID in gettext_for("id")("🛟 Search and rescue (drowning, trapped)")


def test_every_view_naming_the_category_escapes_the_label_when_it_contains_an_ampersand() -> None:
    settings = load_settings({"DEFAULT_LANGUAGE": "id"}, env_file=None)
    ticket = _sar_ticket()
    citizen = Citizen(telegram_id=5001, language="id", created_at=T0, updated_at=T0)
    basarnas = AgencyConfig(code="BASARNAS", name="Basarnas", categories=("SAR",))
    views = Views(settings)
    agency = AgencyViews(ZoneInfo("Asia/Jakarta"), "id", "112")
    texts = [
        OperatorViews.from_settings(settings).card_text(ticket, citizen),
        agency.card(ticket, citizen, basarnas, None).text,
        views.summary(ticket, gettext_for("id")),
        views.status(Outcome(citizen, None, open_tickets=[ticket])).replies[0].text,
    ]
    for text in texts:
        shown, _ = parse_html(text)  # raises on a bare "&", as the double does
        assert SAR_ID in shown
