"""The outbox's claim, lease, release, expiry, result and dedup contract.

Runs against SQLite, PostgreSQL and the in-memory fake (the ``uow_factory`` fixture), so the
worker's unit tests on the fake hold for the real stores. Two transactions claiming at once
run only where they can overlap: PostgreSQL (``FOR UPDATE SKIP LOCKED``) and the fake; SQLite
serialises writers, and one process per SQLite database is the rule.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.domain.model import OutboxMessage
from bot.services.ports import UnitOfWorkFactory
from tests.integration import builders as b
from tests.integration.test_uow_contract import add_citizen, add_ticket

LEASE = timedelta(seconds=60)
NOW = b.at(10)


def row(ticket_id: int | None = None, **changes: Any) -> OutboxMessage:
    """An owed, unclaimed operator card, due at ``NOW``."""
    return b.outbox(ticket_id, minutes=0, **{"attempts": 0, "last_error": None, **changes})


async def add_rows(uow_factory: UnitOfWorkFactory, *rows: OutboxMessage) -> list[OutboxMessage]:
    async with uow_factory() as uow:
        stored = [await uow.outbox.add(r) for r in rows]
        await uow.commit()
    return stored


async def claim(
    uow_factory: UnitOfWorkFactory,
    owner: str,
    now: datetime = NOW,
    limit: int = 50,
    holding: tuple[str, ...] = (),
) -> list[int]:
    async with uow_factory() as uow:
        claimed = await uow.outbox.claim(owner, now, now + LEASE, limit, holding=holding)
        await uow.commit()
    return [m.id or 0 for m in claimed]


async def get(uow_factory: UnitOfWorkFactory, message_id: int) -> OutboxMessage:
    async with uow_factory() as uow:
        found = await uow.outbox.get(message_id)
    assert found is not None
    return found


async def tickets(uow_factory: UnitOfWorkFactory, count: int) -> list[int]:
    citizen = await add_citizen(uow_factory)
    refs = [f"SMG-260527-{n:04d}" for n in range(1, count + 1)]
    return [(await add_ticket(uow_factory, b.ticket(citizen, ref=ref))).id or 0 for ref in refs]


def skip_on_sqlite(store_url: str | None) -> None:
    if store_url is not None and store_url.startswith("sqlite"):
        pytest.skip("SQLite serialises writers: one process per SQLite database is the rule")


async def test_claim_serves_lanes_then_rank_then_age_when_rows_are_mixed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    broadcast, agency, old_low, new_high, _, _, _ = await add_rows(
        uow_factory,
        row(lane="broadcast", rank=1),
        row(lane="agency", rank=1),
        row(rank=3),
        row(rank=1),
        row(next_attempt_at=NOW + timedelta(seconds=1)),
        row(sent_at=b.at(1)),
        row(failed_at=b.at(1)),
    )
    assert await claim(uow_factory, "a") == [new_high.id, old_low.id, agency.id, broadcast.id]


async def test_claim_counts_an_attempt_and_leases_the_row_when_claimed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (stored,) = await add_rows(uow_factory, row(attempts=2))
    async with uow_factory() as uow:
        (claimed,) = await uow.outbox.claim("a", NOW, NOW + LEASE, 10)
        await uow.commit()
    expected = dataclasses.replace(stored, attempts=3, claimed_by="a", claimed_until=NOW + LEASE)
    assert claimed == expected
    assert await get(uow_factory, stored.id or 0) == expected


async def test_claim_skips_rows_leased_by_a_live_owner_when_another_claims(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second = await add_rows(uow_factory, row(), row())
    assert await claim(uow_factory, "a", limit=1) == [first.id]
    assert await claim(uow_factory, "b", now=NOW + LEASE - timedelta(seconds=1)) == [second.id]
    assert await claim(uow_factory, "c", now=NOW + LEASE - timedelta(seconds=1)) == []


async def test_claim_takes_over_rows_as_repeats_when_the_owners_lease_expired(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (stored,) = await add_rows(uow_factory, row())
    assert await claim(uow_factory, "dead") == [stored.id]
    later = NOW + LEASE
    assert await claim(uow_factory, "b", now=later) == [stored.id]
    taken = await get(uow_factory, stored.id or 0)
    assert (taken.claimed_by, taken.claimed_until, taken.attempts) == ("b", later + LEASE, 2)
    assert taken.repeat
    failed_again = dataclasses.replace(taken, next_attempt_at=later, last_error="TimedOut")
    async with uow_factory() as uow:
        assert await uow.outbox.finish(failed_again, "b")
        await uow.commit()
    assert await claim(uow_factory, "c", now=later) == [stored.id]
    assert (await get(uow_factory, stored.id or 0)).repeat  # stays a possible duplicate


async def test_expire_leases_frees_other_owners_rows_when_a_sole_process_restarts(
    uow_factory: UnitOfWorkFactory,
) -> None:
    dead, mine, free = await add_rows(uow_factory, row(), row(), row())
    await claim(uow_factory, "dead", limit=1)
    await claim(uow_factory, "me", limit=1)
    async with uow_factory() as uow:
        assert await uow.outbox.expire_leases("me", NOW) == 1
        await uow.commit()
    assert await claim(uow_factory, "me") == [dead.id, free.id]
    assert (await get(uow_factory, dead.id or 0)).repeat
    assert (await get(uow_factory, mine.id or 0)).claimed_by == "me"


async def test_release_hands_unattempted_rows_back_when_the_pass_ends(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second = await add_rows(uow_factory, row(), row())
    ids = await claim(uow_factory, "a")
    async with uow_factory() as uow:
        assert await uow.outbox.release("intruder", ids) == 0
        assert await uow.outbox.release("a", [second.id or 0]) == 1
        await uow.commit()
    released = await get(uow_factory, second.id or 0)
    assert (released.claimed_by, released.claimed_until, released.attempts) == (None, None, 0)
    assert await claim(uow_factory, "b") == [second.id]
    assert not (await get(uow_factory, second.id or 0)).repeat  # released, not abandoned
    assert (await get(uow_factory, first.id or 0)).claimed_by == "a"


async def test_extend_keeps_the_rows_when_the_owner_lives_past_its_first_lease(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (stored,) = await add_rows(uow_factory, row())
    ids = await claim(uow_factory, "a")
    async with uow_factory() as uow:
        assert await uow.outbox.extend("a", ids, NOW + 2 * LEASE) == 1
        assert await uow.outbox.extend("b", ids, NOW + 3 * LEASE) == 0
        await uow.commit()
    assert await claim(uow_factory, "b", now=NOW + LEASE) == []
    assert await claim(uow_factory, "b", now=NOW + 2 * LEASE) == [stored.id]


async def test_finish_stores_the_result_and_ends_the_lease_when_sent(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (stored,) = await add_rows(uow_factory, row())
    await claim(uow_factory, "a")
    claimed = await get(uow_factory, stored.id or 0)
    sent = dataclasses.replace(
        claimed, sent_at=NOW, result={"chat_id": -100, "message_id": 9, "thread_id": 4}
    )
    async with uow_factory() as uow:
        assert await uow.outbox.finish(sent, "a")
        assert await uow.outbox.pending_count() == 0
        await uow.commit()
    assert await get(uow_factory, stored.id or 0) == dataclasses.replace(
        sent, claimed_by=None, claimed_until=None
    )


async def test_finish_leaves_the_new_owners_lease_when_a_late_failure_comes_in(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (stored,) = await add_rows(uow_factory, row())
    await claim(uow_factory, "slow")
    stale = await get(uow_factory, stored.id or 0)
    await claim(uow_factory, "b", now=NOW + LEASE)
    async with uow_factory() as uow:
        late = dataclasses.replace(stale, last_error="TimedOut", next_attempt_at=b.at(99))
        assert not await uow.outbox.finish(late, "slow")
        await uow.commit()
    current = await get(uow_factory, stored.id or 0)
    assert (current.claimed_by, current.last_error, current.next_attempt_at) == ("b", None, b.at(0))
    async with uow_factory() as uow:  # a success is written all the same: the row went out
        assert not await uow.outbox.finish(dataclasses.replace(stale, sent_at=NOW), "slow")
        await uow.commit()
    assert (await get(uow_factory, stored.id or 0)).sent_at == NOW


async def test_claim_keeps_a_tickets_order_when_its_earlier_row_is_leased_elsewhere(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (ticket,) = await tickets(uow_factory, 1)
    card, pin, other = await add_rows(uow_factory, row(ticket), row(ticket), row())
    assert await claim(uow_factory, "a", limit=1) == [card.id]
    assert await claim(uow_factory, "b") == [other.id]  # the pin waits for its card
    claimed = await get(uow_factory, card.id or 0)
    async with uow_factory() as uow:
        await uow.outbox.finish(dataclasses.replace(claimed, sent_at=NOW), "a")
        await uow.commit()
    assert await claim(uow_factory, "b") == [pin.id]


async def test_claim_holds_a_tickets_later_row_when_the_same_owner_sends_its_earlier_one(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The continuous worker claims again while a ticket's row is in flight: the row
    committed behind it must wait for it, even though the same owner holds both."""
    (ticket,) = await tickets(uow_factory, 1)
    (card,) = await add_rows(uow_factory, row(ticket))
    assert await claim(uow_factory, "a") == [card.id]
    pin, other = await add_rows(uow_factory, row(ticket, kind="operator_pin"), row())
    later = NOW + timedelta(seconds=5)  # still in flight, its lease prolonged
    assert await claim(uow_factory, "a", now=later) == [other.id]
    claimed = await get(uow_factory, card.id or 0)
    async with uow_factory() as uow:
        await uow.outbox.finish(dataclasses.replace(claimed, sent_at=later), "a")
        await uow.commit()
    assert await claim(uow_factory, "a", now=later) == [pin.id]


async def test_claim_holds_later_rows_when_an_earlier_must_deliver_row_waits_for_retry(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second = await tickets(uow_factory, 2)
    later = NOW + timedelta(seconds=30)
    card, pin, notice, relay = await add_rows(
        uow_factory,
        row(first, next_attempt_at=later),
        row(first, kind="operator_pin"),
        row(second, kind="citizen_notice", next_attempt_at=later),
        row(second, kind="operator_relay"),
    )
    holding = ("operator_card", "operator_pin", "operator_relay")
    # The card holds its pin; a waiting citizen notice holds nothing.
    assert await claim(uow_factory, "a", holding=holding) == [relay.id]
    assert await claim(uow_factory, "a", now=later, holding=holding) == [
        card.id, pin.id, notice.id,
    ]  # fmt: skip


async def test_claim_never_lets_a_row_overtake_an_earlier_one_when_its_rank_is_better(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (ticket,) = await tickets(uow_factory, 1)
    early, urgent = await add_rows(uow_factory, row(ticket, rank=3), row(ticket, rank=1))
    assert await claim(uow_factory, "a") == [early.id]
    claimed = await get(uow_factory, early.id or 0)
    async with uow_factory() as uow:
        await uow.outbox.finish(dataclasses.replace(claimed, sent_at=NOW), "a")
        await uow.commit()
    assert await claim(uow_factory, "a") == [urgent.id]


async def test_claim_serves_rows_without_ticket_when_enqueued_alone(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alerts = await add_rows(uow_factory, row(kind="admin_alert"), row(kind="admin_alert"))
    assert await claim(uow_factory, "a", holding=("admin_alert",)) == [m.id for m in alerts]


async def test_concurrent_claims_take_disjoint_rows_when_transactions_overlap(
    uow_factory: UnitOfWorkFactory, store_url: str | None
) -> None:
    skip_on_sqlite(store_url)
    (ticket,) = await tickets(uow_factory, 1)
    card, pin, alone = await add_rows(uow_factory, row(ticket), row(ticket), row())
    async with uow_factory() as first, uow_factory() as second:
        mine = await first.outbox.claim("a", NOW, NOW + LEASE, 1)
        # The card is being claimed (locked, not yet committed): the pin must not overtake it.
        theirs = await second.outbox.claim("b", NOW, NOW + LEASE, 10)
        assert [m.id for m in mine] == [card.id]
        assert [m.id for m in theirs] == [alone.id]
        await first.commit()
        await second.commit()
    assert pin.id not in await claim(uow_factory, "c")


async def test_exists_since_finds_a_dedup_key_when_enqueued_within_the_window(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await add_rows(uow_factory, row(kind="admin_alert", dedup_key="down:operators"))
    async with uow_factory() as uow:
        assert await uow.outbox.exists_since("down:operators", b.at(0))
        assert await uow.outbox.exists_since("down:operators", b.at(-10))
        assert not await uow.outbox.exists_since("down:operators", b.at(0.5))
        assert not await uow.outbox.exists_since("down:agency", b.at(-10))


async def test_chat_alias_is_followed_when_a_group_migrated(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        assert await uow.chat_aliases.get(-42) is None
        await uow.chat_aliases.add(-42, -1001, NOW)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.chat_aliases.get(-42) == -1001
        await uow.chat_aliases.add(-42, -1002, NOW)  # it moved again
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.chat_aliases.get(-42) == -1002


# -- one lane of independent rows (the broadcast lane) -------------------------------------------


async def claim_lane(
    uow_factory: UnitOfWorkFactory,
    owner: str,
    now: datetime = NOW,
    limit: int = 50,
    lane: str = "broadcast",
) -> list[int]:
    async with uow_factory() as uow:
        claimed = await uow.outbox.claim_lane(owner, now, now + LEASE, limit, lane)
        await uow.commit()
    return [m.id or 0 for m in claimed]


async def test_claim_lane_takes_a_batch_of_its_lane_by_rank_then_age_when_rows_are_mixed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (ticket,) = await tickets(uow_factory, 1)
    old, new_high, newer, *_ = await add_rows(
        uow_factory,
        row(lane="broadcast", rank=5),
        row(lane="broadcast", rank=1),
        row(lane="broadcast", rank=5),
        row(lane="broadcast", rank=5, next_attempt_at=NOW + timedelta(seconds=1)),
        row(lane="broadcast", rank=5, sent_at=b.at(1)),
        row(lane="broadcast", rank=5, failed_at=b.at(1)),
        row(ticket, lane="broadcast", rank=5),  # a ticket's row keeps its ticket's order
        row(lane="agency", rank=1),
        row(rank=1),
    )
    assert await claim_lane(uow_factory, "a", limit=2) == [new_high.id, old.id]
    assert await claim_lane(uow_factory, "a") == [newer.id]
    assert await claim_lane(uow_factory, "a") == []


async def test_claim_lane_counts_an_attempt_and_leases_the_rows_when_claimed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second = await add_rows(
        uow_factory, row(lane="broadcast", attempts=2), row(lane="broadcast")
    )
    async with uow_factory() as uow:
        claimed = await uow.outbox.claim_lane("a", NOW, NOW + LEASE, 10, "broadcast")
        await uow.commit()
    expected = [
        dataclasses.replace(first, attempts=3, claimed_by="a", claimed_until=NOW + LEASE),
        dataclasses.replace(second, attempts=1, claimed_by="a", claimed_until=NOW + LEASE),
    ]
    assert claimed == expected
    assert [await get(uow_factory, m.id or 0) for m in expected] == expected


async def test_claim_lane_skips_live_leases_and_takes_ended_ones_as_repeats_when_claiming(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second = await add_rows(uow_factory, row(lane="broadcast"), row(lane="broadcast"))
    assert await claim_lane(uow_factory, "dead", limit=1) == [first.id]
    assert await claim_lane(uow_factory, "b", now=NOW + LEASE - timedelta(seconds=1)) == [second.id]
    assert await claim_lane(uow_factory, "c", now=NOW + LEASE - timedelta(seconds=1)) == []
    assert await claim_lane(uow_factory, "c", now=NOW + LEASE) == [first.id]
    taken = await get(uow_factory, first.id or 0)
    assert (taken.claimed_by, taken.repeat, taken.attempts) == ("c", True, 2)
    assert not (await get(uow_factory, second.id or 0)).repeat


async def test_claim_leaves_a_skipped_lane_to_claim_lane_when_both_are_owed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    copy, card = await add_rows(uow_factory, row(lane="broadcast", rank=1), row(rank=3))
    async with uow_factory() as uow:
        claimed = await uow.outbox.claim("a", NOW, NOW + LEASE, 10, skip_lanes=("broadcast",))
        await uow.commit()
    assert [m.id for m in claimed] == [card.id]
    assert await claim_lane(uow_factory, "a") == [copy.id]


async def test_concurrent_lane_claims_take_disjoint_rows_when_transactions_overlap(
    uow_factory: UnitOfWorkFactory, store_url: str | None
) -> None:
    skip_on_sqlite(store_url)
    rows_ = await add_rows(uow_factory, *(row(lane="broadcast") for _ in range(5)))
    async with uow_factory() as first, uow_factory() as second:
        mine = await first.outbox.claim_lane("a", NOW, NOW + LEASE, 3, "broadcast")
        theirs = await second.outbox.claim_lane("b", NOW, NOW + LEASE, 10, "broadcast")
        await first.commit()
        await second.commit()
    assert [m.id for m in mine] == [m.id for m in rows_[:3]]
    assert [m.id for m in theirs] == [m.id for m in rows_[3:]]
