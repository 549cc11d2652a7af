"""The lifecycle table: every status x action pair allowed or refused, and what each step sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.lifecycle import (
    Action,
    Refusal,
    Staff,
    TransitionError,
    actions_for,
    apply,
    is_allowed,
    next_status,
    queue_key,
)
from bot.domain.model import Disposition, Ticket, TicketStatus

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
S = TicketStatus
A = Action
OPEN = (S.SUBMITTED, S.CLAIMED, S.DISPATCHED, S.ACKNOWLEDGED, S.EN_ROUTE, S.ON_SCENE)

#: Written out by hand from the brief, independently of the table under test.
EXPECTED: dict[tuple[TicketStatus, Action], TicketStatus] = {
    (S.SUBMITTED, A.CLAIM): S.CLAIMED,
    (S.CLAIMED, A.RELEASE): S.SUBMITTED,
    (S.SUBMITTED, A.DISPATCH): S.DISPATCHED,
    (S.CLAIMED, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.DISPATCH): S.DISPATCHED,
    (S.ACKNOWLEDGED, A.DISPATCH): S.ACKNOWLEDGED,
    (S.EN_ROUTE, A.DISPATCH): S.EN_ROUTE,
    (S.ON_SCENE, A.DISPATCH): S.ON_SCENE,
    (S.DISPATCHED, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.DISPATCHED, A.EN_ROUTE): S.EN_ROUTE,
    (S.ACKNOWLEDGED, A.EN_ROUTE): S.EN_ROUTE,
    (S.EN_ROUTE, A.EN_ROUTE): S.EN_ROUTE,
    (S.DISPATCHED, A.ON_SCENE): S.ON_SCENE,
    (S.ACKNOWLEDGED, A.ON_SCENE): S.ON_SCENE,
    (S.EN_ROUTE, A.ON_SCENE): S.ON_SCENE,
    **{(status, A.RESOLVE): S.RESOLVED for status in OPEN},
    **{(status, A.CANCEL): S.CANCELLED for status in OPEN},
    (S.RESOLVED, A.CLOSE): S.CLOSED,
    (S.RESOLVED, A.REOPEN): S.CLAIMED,
    (S.CLOSED, A.REOPEN): S.CLAIMED,
    (S.RESOLVED, A.REQUEUE): S.SUBMITTED,
    (S.CLOSED, A.REQUEUE): S.SUBMITTED,
}

EVERY_PAIR = [(status, action) for status in TicketStatus for action in Action]
OPERATOR = Staff(42, "Dewi")


def ticket(status: TicketStatus = S.SUBMITTED, **changes: object) -> Ticket:
    t = Ticket(
        citizen_id=1, chat_id=1, status=status, created_at=T0, updated_at=T0, step=None,
        ref="SMG-261127-0001", submitted_at=T0, queued_at=T0, id=7,
    )  # fmt: skip
    for name, value in changes.items():
        setattr(t, name, value)
    return t


def extras(action: Action) -> dict[str, object]:
    return {"disposition": Disposition.EMERGENCY} if action is A.RESOLVE else {}


@pytest.mark.parametrize(("status", "action"), EVERY_PAIR)
def test_action_is_allowed_exactly_when_the_table_lists_it_when_any_status_meets_any_action(
    status: TicketStatus, action: Action
) -> None:
    expected = EXPECTED.get((status, action))
    assert is_allowed(status, action) is (expected is not None)
    if expected is None:
        with pytest.raises(TransitionError) as refused:
            apply(ticket(status), action, T0, by=OPERATOR, **extras(action))
        assert refused.value.refusal is Refusal.NOT_ALLOWED
    else:
        assert next_status(status, action) is expected
        after = apply(ticket(status), action, T0, by=OPERATOR, **extras(action))
        assert after.status is expected


def test_drafts_and_finished_tickets_offer_no_work_when_asked_for_their_actions() -> None:
    assert actions_for(S.DRAFT) == ()
    assert actions_for(S.CANCELLED) == ()
    assert actions_for(S.ABANDONED) == ()
    assert actions_for(S.SUBMITTED) == (A.CLAIM, A.DISPATCH, A.RESOLVE, A.CANCEL)
    assert actions_for(S.RESOLVED) == (A.CLOSE, A.REOPEN, A.REQUEUE)


def test_resolve_is_refused_when_no_disposition_is_given() -> None:
    with pytest.raises(TransitionError) as refused:
        apply(ticket(S.CLAIMED), A.RESOLVE, T0, by=OPERATOR)
    assert refused.value.refusal is Refusal.NEEDS_DISPOSITION


@pytest.mark.parametrize("eta", [0, -5, 241])
def test_en_route_is_refused_when_the_eta_is_out_of_range(eta: int) -> None:
    with pytest.raises(TransitionError) as refused:
        apply(ticket(S.DISPATCHED), A.EN_ROUTE, T0, eta_minutes=eta)
    assert refused.value.refusal is Refusal.BAD_ETA


def test_claim_records_the_operator_and_time_and_leaves_the_input_alone_when_applied() -> None:
    before = ticket()
    after = apply(before, A.CLAIM, T0 + timedelta(seconds=5), by=OPERATOR)
    assert (after.claimed_by, after.claimed_by_name) == (42, "Dewi")
    assert after.claimed_at == after.updated_at == T0 + timedelta(seconds=5)
    assert before.status is S.SUBMITTED
    assert before.claimed_by is None


def test_dispatch_claims_and_keeps_the_first_time_when_a_second_agency_follows() -> None:
    first = apply(ticket(), A.DISPATCH, T0 + timedelta(minutes=1), by=OPERATOR)
    assert first.claimed_by == 42
    assert first.dispatched_at == T0 + timedelta(minutes=1)
    other = Staff(43, "Budi")
    second = apply(first, A.DISPATCH, T0 + timedelta(minutes=3), by=other)
    assert second.dispatched_at == T0 + timedelta(minutes=1)
    assert second.claimed_by == 42


def test_en_route_keeps_the_first_time_but_takes_the_new_eta_when_repeated() -> None:
    t = apply(ticket(S.DISPATCHED), A.EN_ROUTE, T0, eta_minutes=10)
    t = apply(t, A.EN_ROUTE, T0 + timedelta(minutes=4), eta_minutes=6)
    assert (t.en_route_at, t.eta_minutes) == (T0, 6)
    t = apply(t, A.ON_SCENE, T0 + timedelta(minutes=9))
    assert t.on_scene_at == T0 + timedelta(minutes=9)


def test_resolve_closes_and_reopen_clears_the_close_when_the_citizen_needs_more_help() -> None:
    resolved = apply(ticket(S.ON_SCENE), A.RESOLVE, T0, by=OPERATOR, disposition=Disposition.INFO)
    assert resolved.disposition is Disposition.INFO
    assert resolved.resolved_at == resolved.closed_at == T0
    reopened = apply(resolved, A.REOPEN, T0 + timedelta(minutes=5), by=Staff(43, "Budi"))
    assert reopened.status is S.CLAIMED
    assert (reopened.claimed_by, reopened.claimed_at) == (43, T0 + timedelta(minutes=5))
    assert reopened.disposition is None
    assert reopened.closed_at is None
    assert reopened.reopened_count == 1


def test_release_and_requeue_restart_the_sla_timers_when_back_in_the_queue() -> None:
    claimed = ticket(
        S.CLAIMED, claimed_by=42, claimed_at=T0, sla_realerted_at=T0, sla_escalated_at=T0
    )
    later = T0 + timedelta(minutes=12)
    released = apply(claimed, A.RELEASE, later)
    assert released.claimed_by is None
    assert released.queued_at == later
    assert released.sla_realerted_at is None
    assert released.sla_escalated_at is None
    closed = apply(ticket(S.RESOLVED, closed_at=T0, claimed_by=42), A.REQUEUE, later)
    assert closed.status is S.SUBMITTED
    assert closed.claimed_by is None
    assert closed.closed_at is None
    assert closed.reopened_count == 1


def test_queue_order_puts_priority_one_first_then_the_oldest_when_sorted() -> None:
    old_low = ticket(priority=3, submitted_at=T0, id=1)
    new_high = ticket(priority=1, submitted_at=T0 + timedelta(minutes=9), id=2)
    old_high = ticket(priority=1, submitted_at=T0 + timedelta(minutes=1), id=3)
    ordered = sorted([old_low, new_high, old_high], key=queue_key)
    assert [t.id for t in ordered] == [3, 2, 1]
