"""The agency service on the in-memory fakes: dispatch, presses, status updates, deadlines."""

from __future__ import annotations

import pytest

from bot.domain.handoff import AgencyStep, DeclineReason
from bot.domain.model import AssignmentChannel, TicketStatus
from bot.services.agencies import AgencyStatus, webhook_dead
from bot.services.outbox_kinds import (
    ADMIN_ALERT,
    AGENCY_CARD,
    AGENCY_CARD_EDIT,
    AGENCY_REMINDER,
    AGENCY_WEBHOOK,
    CITIZEN_STATUS,
    OPERATOR_CARD_EDIT,
    OPERATOR_NOTICE,
)
from tests.unit.agency_support import BPBD_CHAT, BPBD_MEMBER, DAMKAR_CHAT, Desk, desk
from tests.unit.console_support import ADMIN, DEWI, add_ticket, deliver_all, rows, ticket_of

S = TicketStatus
A = AgencyStep


@pytest.fixture
async def d() -> Desk:
    return await desk()


async def _dispatched(d: Desk, *codes: str) -> int:
    ticket = await add_ticket(d.uow_factory)
    result = await d.console.dispatch(DEWI, ticket.id or 0, list(codes))
    assert result.ok, result
    await deliver_all(d.uow_factory, d.clock.now())
    return ticket.id or 0


async def test_dispatch_sends_card_webhook_or_phone_by_what_each_agency_has_when_pressed(
    d: Desk,
) -> None:
    ticket = await add_ticket(d.uow_factory)
    d.clock.advance(seconds=30)
    result = await d.console.dispatch(DEWI, ticket.id or 0, ["DAMKAR", "DINKES", "POLRESTABES"])
    assert result.ok
    assert [(a.agency_code, a.channel) for a in result.assignments] == [
        ("DAMKAR", AssignmentChannel.TELEGRAM),
        ("DINKES", AssignmentChannel.WEBHOOK),
        ("POLRESTABES", AssignmentChannel.PHONE),
    ]
    deadlines = {a.agency_code: a.ack_due_at for a in result.assignments}
    assert deadlines["DAMKAR"] is not None
    assert (deadlines["DAMKAR"] - d.clock.now()).total_seconds() == 120
    assert deadlines["POLRESTABES"] is None  # called by phone: nobody to wait for
    [card] = rows(d.uow_factory, AGENCY_CARD)
    assert card.payload["agency"] == "DAMKAR"
    assert card.lane == "agency"
    [hook] = rows(d.uow_factory, AGENCY_WEBHOOK)
    assert hook.payload["agency"] == "DINKES"
    assert str(hook.payload["idempotency_key"]).startswith(f"{ticket.ref}-DINKES-dispatch-")
    [event] = [e for e in d.uow_factory.store.events.values() if e.kind == "dispatch"]
    assert event.note == "DAMKAR (telegram); DINKES (webhook); POLRESTABES (phone)"


async def test_press_is_rejected_when_it_comes_from_another_chat_or_a_non_member(
    d: Desk,
) -> None:
    ticket_id = await _dispatched(d, "DAMKAR", "BPBD")
    from_operators = await d.agencies.press(-100123, 77, ticket_id, "DAMKAR", A.ACKNOWLEDGED)
    from_bpbd_chat = await d.agencies.press(BPBD_CHAT, BPBD_MEMBER, ticket_id, "DAMKAR",
                                            A.ACKNOWLEDGED)  # fmt: skip
    non_member = await d.agencies.press(BPBD_CHAT, 77, ticket_id, "BPBD", A.ACKNOWLEDGED)
    assert {r.status for r in (from_operators, from_bpbd_chat, non_member)} == {
        AgencyStatus.NOT_ALLOWED
    }
    assert not [m for m in rows(d.uow_factory) if m.sent_at is None]  # nothing happened
    assert (await ticket_of(d.uow_factory, ticket_id)).status is S.DISPATCHED
    member = await d.agencies.press(BPBD_CHAT, BPBD_MEMBER, ticket_id, "BPBD", A.ACKNOWLEDGED)
    anyone_at_damkar = await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR",
                                              A.ACKNOWLEDGED)  # fmt: skip
    assert member.ok
    assert anyone_at_damkar.ok  # no members listed: the agency's chat is enough


async def test_each_step_is_an_event_with_card_edits_and_notices_when_an_agency_reports(
    d: Desk,
) -> None:
    ticket_id = await _dispatched(d, "DAMKAR")
    d.clock.advance(seconds=50)
    result = await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR", A.ACKNOWLEDGED)
    assert result.ok
    assert result.assignment is not None
    assert result.assignment.acknowledged_at == d.clock.now()
    ticket = await ticket_of(d.uow_factory, ticket_id)
    assert ticket.status is S.ACKNOWLEDGED
    assert ticket.acknowledged_at == d.clock.now()
    owed = [m for m in rows(d.uow_factory) if m.sent_at is None]
    assert [m.kind for m in owed][:4] == [
        AGENCY_CARD_EDIT, OPERATOR_CARD_EDIT, OPERATOR_NOTICE, CITIZEN_STATUS
    ]  # fmt: skip
    assert owed[2].payload["step"] == "acknowledged"
    assert owed[3].payload == {
        "ticket_id": ticket_id, "status": "acknowledged", "agencies": ["Damkar Kota Semarang"]
    }  # fmt: skip
    [event] = [e for e in d.uow_factory.store.events.values() if e.kind.startswith("agency_")]
    assert (event.kind, event.actor, event.to_status) == (
        "agency_acknowledged", "agency:DAMKAR:77", S.ACKNOWLEDGED
    )  # fmt: skip

    await deliver_all(d.uow_factory, d.clock.now())
    en_route = await d.agencies.press(DAMKAR_CHAT, 78, ticket_id, "DAMKAR", A.EN_ROUTE,
                                      eta_minutes=10)  # fmt: skip
    assert en_route.ok
    [notice] = [m for m in rows(d.uow_factory, CITIZEN_STATUS) if m.sent_at is None]
    assert (notice.payload["status"], notice.payload["eta_minutes"]) == ("en_route", 10)
    assert (await ticket_of(d.uow_factory, ticket_id)).eta_minutes == 10
    for step in (A.ON_SCENE, A.COMPLETED):
        assert (await d.agencies.press(DAMKAR_CHAT, 78, ticket_id, "DAMKAR", step)).ok
    statuses = [m.payload["status"] for m in rows(d.uow_factory, CITIZEN_STATUS)]
    assert statuses == ["dispatched", "acknowledged", "en_route", "on_scene", "completed"]
    assert (await ticket_of(d.uow_factory, ticket_id)).status is S.ON_SCENE  # operator resolves


async def test_second_agency_does_not_move_the_ticket_back_when_it_acknowledges_later(
    d: Desk,
) -> None:
    ticket_id = await _dispatched(d, "DAMKAR", "BPBD")
    await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR", A.ON_SCENE)
    late = await d.agencies.press(BPBD_CHAT, BPBD_MEMBER, ticket_id, "BPBD", A.ACKNOWLEDGED)
    assert late.ok
    assert (await ticket_of(d.uow_factory, ticket_id)).status is S.ON_SCENE


async def test_repeats_and_steps_after_the_end_are_refused_when_pressed_again(d: Desk) -> None:
    ticket_id = await _dispatched(d, "DAMKAR")
    assert (await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR", A.ACKNOWLEDGED)).ok
    await deliver_all(d.uow_factory, d.clock.now())
    again = await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR", A.ACKNOWLEDGED)
    assert (again.status, again.why) == (AgencyStatus.REFUSED, "repeated")
    declined = await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR", A.CANNOT_HANDLE,
                                      reason=DeclineReason.NO_UNIT)  # fmt: skip
    assert declined.ok
    owed = [m for m in rows(d.uow_factory) if m.sent_at is None]
    assert CITIZEN_STATUS not in [m.kind for m in owed]  # staff business, not the citizen's
    [notice] = [m for m in owed if m.kind == OPERATOR_NOTICE]
    assert (notice.payload["step"], notice.payload["reason"]) == ("cannot_handle", "no_unit")
    after = await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR", A.ON_SCENE)
    assert (after.status, after.why) == (AgencyStatus.REFUSED, "closed")


async def test_press_for_a_ticket_not_handed_to_the_agency_is_not_found_when_pressed(
    d: Desk,
) -> None:
    ticket_id = await _dispatched(d, "BPBD")
    result = await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR", A.ACKNOWLEDGED)
    assert result.status is AgencyStatus.NOT_FOUND


async def test_status_update_counts_once_when_its_key_is_replayed(d: Desk) -> None:
    ticket_id = await _dispatched(d, "DINKES")
    ref = (await ticket_of(d.uow_factory, ticket_id)).ref or ""
    first = await d.agencies.report("DINKES", ref, A.EN_ROUTE, eta_minutes=7, request_key="k1")
    replay = await d.agencies.report("DINKES", ref, A.EN_ROUTE, eta_minutes=9, request_key="k1")
    unknown = await d.agencies.report("DINKES", "SMG-000000-9999", A.ON_SCENE, request_key="k2")
    assert first.ok
    assert replay.status is AgencyStatus.REPLAY
    assert unknown.status is AgencyStatus.NOT_FOUND
    assert (await ticket_of(d.uow_factory, ticket_id)).eta_minutes == 7
    assert (await d.agencies.report("DINKES", ref, A.ON_SCENE, request_key="k2")).ok


async def test_deadline_reminds_the_agency_then_alerts_the_topic_once_each_when_unacknowledged(
    d: Desk,
) -> None:
    ticket_id = await _dispatched(d, "DAMKAR", "DINKES", "POLRESTABES")
    d.clock.advance(seconds=59)
    assert (await d.agencies.sweep()).fired == 0
    d.clock.advance(seconds=1)  # DINKES's 60 s
    report = await d.agencies.sweep()
    assert len(report.reminded) == 1
    [hook] = [m for m in rows(d.uow_factory, AGENCY_WEBHOOK) if m.payload["event"] == "reminder"]
    assert hook.payload["agency"] == "DINKES"
    d.clock.advance(seconds=60)  # DAMKAR's 120 s; DINKES's second deadline
    report = await d.agencies.sweep()
    assert (len(report.reminded), len(report.escalated)) == (1, 1)
    [reminder] = rows(d.uow_factory, AGENCY_REMINDER)
    assert (reminder.payload["agency"], reminder.payload["waited_seconds"]) == ("DAMKAR", 120)
    [alert] = rows(d.uow_factory, OPERATOR_NOTICE)
    assert (alert.payload["notice"], alert.payload["agency"]) == ("agency_unacknowledged",
                                                                  "DINKES")  # fmt: skip
    assert alert.ticket_id == ticket_id
    # A restarted process sees the markers in the database: nothing fires twice.
    assert (await d.restarted().sweep()).fired == 0
    await d.agencies.press(DAMKAR_CHAT, 77, ticket_id, "DAMKAR", A.ACKNOWLEDGED)
    d.clock.advance(seconds=600)
    assert (await d.restarted().sweep()).fired == 0  # acknowledged: no alert
    kinds = [e.kind for e in d.uow_factory.store.events.values()]
    assert kinds.count("agency_ack_reminder") == 2
    assert kinds.count("agency_ack_escalated") == 1


async def test_webhook_given_up_is_shown_in_the_topic_and_to_admins_when_dead_lettered(
    d: Desk,
) -> None:
    ticket_id = await _dispatched(d, "DINKES")
    [hook] = rows(d.uow_factory, AGENCY_WEBHOOK)
    hook.failed_at, hook.attempts, hook.last_error = d.clock.now(), 8, "webhook DINKES: HTTP 503"
    async with d.uow_factory() as uow:
        await webhook_dead(uow, hook)
        await uow.commit()
    [notice] = rows(d.uow_factory, OPERATOR_NOTICE)
    assert notice.payload["notice"] == "agency_webhook_failed"
    assert notice.ticket_id == ticket_id
    [alert] = rows(d.uow_factory, ADMIN_ALERT)
    assert (alert.payload["admin_id"], alert.payload["event"]) == (ADMIN.telegram_id,
                                                                   "webhook_dead")  # fmt: skip
    assert any(e.kind == "agency_webhook_failed" for e in d.uow_factory.store.events.values())


async def test_suggestions_follow_routing_when_the_picker_asks(d: Desk) -> None:
    ticket = await add_ticket(d.uow_factory)  # a fire
    assert await d.agencies.suggestions(ticket.id or 0) == ["DAMKAR", "DINKES", "BPBD"]
    assert await d.agencies.suggestions(999) == []


async def test_agency_cards_are_edited_when_an_operator_records_progress_or_resolves(
    d: Desk,
) -> None:
    from bot.domain.model import Disposition

    ticket_id = await _dispatched(d, "DAMKAR", "DINKES")
    assert (await d.console.on_scene(DEWI, ticket_id)).ok
    edits = [m for m in rows(d.uow_factory, AGENCY_CARD_EDIT) if m.sent_at is None]
    assert [m.payload["agency"] for m in edits] == ["DAMKAR"]  # the webhook agency has no card
    assert (await d.console.resolve(DEWI, ticket_id, Disposition.EMERGENCY)).ok
    assert len(rows(d.uow_factory, AGENCY_CARD_EDIT)) == 2
