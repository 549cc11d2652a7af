"""Exercise mode (``DEMO_MODE``, ``siaga112 demo``): every ticket carries the disposition
``test`` from its creation to its end, and everything about it shows "LATIHAN / EXERCISE"."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.config import AgencyConfig, load_settings
from bot.domain.lifecycle import Action, Staff, apply
from bot.domain.model import (
    EXERCISE_MARK,
    Citizen,
    Disposition,
    Ticket,
    TicketStatus,
    is_exercise,
)
from bot.i18n import gettext_for
from bot.services.citizens import Actor
from bot.services.console import ConsolePolicy, ConsoleService, ConsoleStatus
from bot.services.intake import IntakePolicy, IntakeService
from bot.services.queue import QueueBoard, entry_for
from handlers.agency_views import AgencyViews
from handlers.operator_views import OperatorViews
from handlers.views import Views
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import DEWI, OPERATORS_CHAT, T0, Clock, Geocoder, add_staff
from tests.unit.console_support import add_ticket as add_submitted

S = TicketStatus
A = Action


@pytest.mark.parametrize(("raw", "expected"), [("on", True), ("off", False), ("", False)])
def test_demo_mode_setting_reads_on_and_off_when_loaded(raw: str, expected: bool) -> None:
    settings = load_settings({"DEMO_MODE": raw}, env_file=None)
    assert settings.demo_mode is expected


async def test_new_draft_carries_disposition_test_only_when_the_intake_runs_an_exercise() -> None:
    for exercise, expected in ((True, Disposition.TEST), (False, None)):
        uow_factory = InMemoryUnitOfWorkFactory()
        intake = IntakeService(uow_factory, Geocoder(), Clock(), IntakePolicy(exercise=exercise))
        outcome = await intake.start_report(Actor(5001, 5001))
        assert outcome.ticket is not None
        assert outcome.ticket.disposition is expected
        async with uow_factory() as uow:
            stored = await uow.tickets.get(outcome.ticket.id or 0)
        assert stored is not None
        assert stored.disposition is expected


def _exercise_ticket(status: TicketStatus) -> Ticket:
    return Ticket(
        citizen_id=1, chat_id=1, status=status, created_at=T0, updated_at=T0, step=None,
        ref="SMG-261127-0001", submitted_at=T0, queued_at=T0, id=7,
        disposition=Disposition.TEST,
    )  # fmt: skip


@pytest.mark.parametrize("chosen", list(Disposition))
def test_an_exercise_is_resolved_as_test_whatever_disposition_the_operator_picks(
    chosen: Disposition,
) -> None:
    resolved = apply(_exercise_ticket(S.ON_SCENE), A.RESOLVE, T0, by=DEWI, disposition=chosen)
    assert resolved.status is S.RESOLVED
    assert resolved.disposition is Disposition.TEST


@pytest.mark.parametrize(("action", "to"), [(A.REOPEN, S.CLAIMED), (A.REQUEUE, S.SUBMITTED)])
def test_an_exercise_stays_an_exercise_when_reopened_or_requeued(
    action: Action, to: TicketStatus
) -> None:
    later = T0 + timedelta(minutes=3)
    again = apply(_exercise_ticket(S.RESOLVED), action, later, by=Staff(43, "Budi"))
    assert again.status is to
    assert again.disposition is Disposition.TEST
    assert is_exercise(again)
    real = apply(_submitted(Disposition.INFO, S.RESOLVED), action, later, by=Staff(43, "Budi"))
    assert real.disposition is None  # a real ticket's outcome is cleared as before


async def test_console_resolve_stores_test_for_an_exercise_and_the_operators_choice_otherwise() -> (
    None
):
    uow_factory = InMemoryUnitOfWorkFactory()
    await add_staff(uow_factory, DEWI)
    clock = Clock()
    console = ConsoleService(uow_factory, Geocoder(), clock, ConsolePolicy({}, OPERATORS_CHAT))
    drill = await add_submitted(uow_factory, disposition=Disposition.TEST)
    real = await add_submitted(uow_factory, telegram_id=5002)
    for ticket in (drill, real):
        result = await console.resolve(DEWI, ticket.id or 0, Disposition.EMERGENCY)
        assert result.status is ConsoleStatus.DONE
    async with uow_factory() as uow:
        stored_drill = await uow.tickets.get(drill.id or 0)
        stored_real = await uow.tickets.get(real.id or 0)
    assert stored_drill is not None
    assert stored_real is not None
    assert stored_drill.disposition is Disposition.TEST
    assert stored_real.disposition is Disposition.EMERGENCY


# -- the visible mark ------------------------------------------------------------------------


def _submitted(disposition: Disposition | None, status: TicketStatus = S.SUBMITTED) -> Ticket:
    return Ticket(
        citizen_id=1, chat_id=5001, status=status, created_at=T0, updated_at=T0, step=None,
        ref="SMG-261127-0001", priority=1, submitted_at=T0, queued_at=T0, id=7,
        disposition=disposition,
    )  # fmt: skip


CITIZEN = Citizen(telegram_id=5001, language="en", created_at=T0, updated_at=T0)


@pytest.mark.parametrize(
    ("disposition", "marked"), [(Disposition.TEST, True), (None, False), (Disposition.INFO, False)]
)
def test_cards_topic_and_citizen_notices_carry_the_mark_exactly_when_the_ticket_is_an_exercise(
    disposition: Disposition | None, marked: bool
) -> None:
    settings = load_settings({"DEFAULT_LANGUAGE": "en"}, env_file=None)
    ticket = _submitted(disposition)
    operator = OperatorViews.from_settings(settings)
    agency = AgencyViews(ZoneInfo("Asia/Jakarta"), "en", "112")
    dinkes = AgencyConfig(code="DINKES", name="Dinkes", categories=("MED",))
    citizen = Views(settings)
    texts = [
        operator.card_text(ticket, None),
        agency.card(ticket, None, dinkes, None).text,
        citizen.citizen_status(CITIZEN, ticket, {"status": "claimed"}).text,
        citizen.citizen_status(CITIZEN, ticket, {"status": "resolved"}).text,
        citizen._submitted(ticket, gettext_for("en")).text,  # the confirmation after submit
    ]
    for text in texts:
        assert (EXERCISE_MARK in text) is marked, text
    assert ("LATIHAN" in operator.topic_name(ticket)) is marked
    assert len(operator.topic_name(ticket)) <= 128


def test_board_and_greeting_carry_the_mark_only_in_demo_mode() -> None:
    board = QueueBoard(T0, (entry_for(_submitted(None), T0),))
    for demo, marked in (("on", True), ("off", False)):
        settings = load_settings({"DEMO_MODE": demo, "DEFAULT_LANGUAGE": "en"}, env_file=None)
        assert (EXERCISE_MARK in OperatorViews.from_settings(settings).board(board)) is marked
        greeting = Views(settings).welcome(CITIZEN).replies[0]
        assert (EXERCISE_MARK in greeting.text) is marked
