"""Advisory storage (subscribers, advisories, deliveries), on SQLite, PostgreSQL and the fake."""

from __future__ import annotations

import dataclasses

from bot.domain.advisory import (
    Advisory,
    AdvisoryStatus,
    DeliveryOutcome,
    Progress,
    Recipient,
    Target,
    TargetKind,
)
from bot.domain.model import Assignment, AssignmentChannel
from bot.services.ports import UnitOfWorkFactory
from tests.integration import builders as b

PLEBURAN_KEC = "33.74.11"
TUGU_KEC = "33.74.14"


async def add_citizens(uow_factory: UnitOfWorkFactory) -> dict[str, int]:
    """city (whole city), pleburan (kecamatan), tugu (kecamatan), off, blocked."""
    people: dict[str, tuple[bool, str | None, bool]] = {  # subscribed, kecamatan, blocked
        "city": (True, None, False),
        "pleburan": (True, PLEBURAN_KEC, False),
        "tugu": (True, TUGU_KEC, False),
        "off": (False, None, False),
        "blocked": (True, None, True),
    }
    ids = {}
    async with uow_factory() as uow:
        for number, (name, (subscribed, kecamatan, blocked)) in enumerate(people.items()):
            citizen = b.citizen(
                7_100_000_000 + number, subscribed=subscribed,
                subscription_kecamatan_code=kecamatan, blocked_bot=blocked,
            )  # fmt: skip
            stored = await uow.citizens.add(citizen)
            ids[name] = stored.id or 0
        await uow.commit()
    return ids


async def test_subscribers_are_the_subscribed_unblocked_citizens_when_asked_for_all(
    uow_factory: UnitOfWorkFactory,
) -> None:
    ids = await add_citizens(uow_factory)
    async with uow_factory() as uow:
        everyone = await uow.citizens.subscribers(None)
        tugu = await uow.citizens.subscribers([TUGU_KEC])
        city_only = await uow.citizens.subscribers([])
    assert [r.citizen_id for r in everyone] == [ids["city"], ids["pleburan"], ids["tugu"]]
    assert [r.citizen_id for r in tugu] == [ids["city"], ids["tugu"]]
    assert [r.citizen_id for r in city_only] == [ids["city"]]
    assert everyone[0] == Recipient(ids["city"], 7_100_000_000, "en")


async def test_advisory_round_trips_every_field_when_added_and_updated(
    uow_factory: UnitOfWorkFactory,
) -> None:
    target = Target(TargetKind.RADIUS, (), -6.99, 110.42, 1500.0)
    original = Advisory(
        created_by=1000, created_at=b.at(0), status=AdvisoryStatus.SENDING, text="Banjir",
        photo_file_id="photo-1", target=target, source="cap:x", recipients=3, confirmed_by=1000,
        confirmed_at=b.at(1), finished_at=b.at(2), progress_chat_id=1000, progress_message_id=9,
    )  # fmt: skip
    async with uow_factory() as uow:
        stored = await uow.advisories.add(original)
        await uow.commit()
    async with uow_factory() as uow:
        read = await uow.advisories.get(stored.id or 0)
        assert read == dataclasses.replace(original, id=stored.id)
        read.status = AdvisoryStatus.DONE
        await uow.advisories.update(read)
        await uow.commit()
    async with uow_factory() as uow:
        assert (await uow.advisories.get(stored.id or 0)) == read
        assert await uow.advisories.sending() == []


async def test_enqueue_writes_one_row_per_recipient_when_called_twice(
    uow_factory: UnitOfWorkFactory,
) -> None:
    ids = await add_citizens(uow_factory)
    async with uow_factory() as uow:
        advisory = await uow.advisories.add(Advisory(1000, b.at(0), AdvisoryStatus.SENDING, "x"))
        recipients = await uow.citizens.subscribers(None)
        first = await uow.advisories.enqueue(
            advisory.id or 0, recipients, b.at(0), kind="advisory", lane="broadcast", rank=5
        )
        again = await uow.advisories.enqueue(
            advisory.id or 0, recipients, b.at(0), kind="advisory", lane="broadcast", rank=5
        )
        await uow.commit()
    assert (first, again) == (3, 0)
    async with uow_factory() as uow:
        owed = await uow.outbox.owed(100)
        progress = await uow.advisories.progress(advisory.id or 0)
    assert sorted(int(str(m.payload["chat_id"])) for m in owed) == [
        7_100_000_000,
        7_100_000_001,
        7_100_000_002,
    ]
    assert {m.lane for m in owed} == {"broadcast"}
    assert {m.dedup_key for m in owed} == {f"advisory:{advisory.id}"}
    assert progress == Progress(recipients=3, owed=3)
    assert ids


async def test_progress_counts_outcomes_when_copies_are_recorded_and_cancelled(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await add_citizens(uow_factory)
    async with uow_factory() as uow:
        advisory = await uow.advisories.add(Advisory(1000, b.at(0), AdvisoryStatus.SENDING, "x"))
        aid = advisory.id or 0
        await uow.advisories.enqueue(
            aid, await uow.citizens.subscribers(None), b.at(0), kind="advisory",
            lane="broadcast", rank=5,
        )  # fmt: skip
        await uow.commit()
    async with uow_factory() as uow:
        rows = await uow.outbox.owed(100)
        second = int(str(rows[1].payload["delivery_id"]))
        rows[0].sent_at = b.at(1)
        await uow.outbox.finish_sent([rows[0]], "nobody")
        rows[1].failed_at = b.at(1)
        await uow.outbox.update(rows[1])
        await uow.advisories.record(second, DeliveryOutcome.BLOCKED, b.at(1))
        await uow.commit()
    async with uow_factory() as uow:
        stopped = await uow.advisories.cancel_owed(aid, b.at(2))
        await uow.commit()
    async with uow_factory() as uow:
        progress = await uow.advisories.progress(aid)
        assert await uow.outbox.owed(100) == []
    assert stopped == 1
    assert progress == Progress(recipients=3, sent=1, blocked=1, cancelled=1, owed=0)


async def test_cancel_leaves_a_leased_copy_alone_when_a_worker_holds_it(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await add_citizens(uow_factory)
    async with uow_factory() as uow:
        advisory = await uow.advisories.add(Advisory(1000, b.at(0), AdvisoryStatus.SENDING, "x"))
        aid = advisory.id or 0
        await uow.advisories.enqueue(
            aid, await uow.citizens.subscribers(None), b.at(0), kind="advisory",
            lane="broadcast", rank=5,
        )  # fmt: skip
        await uow.commit()
    async with uow_factory() as uow:
        claimed = await uow.outbox.claim("worker-1", b.at(1), b.at(2), 1)
        await uow.commit()
    async with uow_factory() as uow:
        stopped = await uow.advisories.cancel_owed(aid, b.at(1.5))
        await uow.commit()
    async with uow_factory() as uow:
        owed = await uow.outbox.owed(100)
    assert stopped == 2
    assert [m.id for m in owed] == [claimed[0].id]


async def test_period_queries_return_submitted_tickets_and_their_assignments_when_asked(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen())
        inside = await uow.tickets.add(
            b.ticket(citizen.id or 0, ref="SMG-1", submitted_at=b.at(10))
        )
        await uow.tickets.add(b.ticket(citizen.id or 0, ref="SMG-2", submitted_at=b.at(-10)))
        await uow.assignments.add(
            Assignment(inside.id or 0, "BPBD", b.at(11), AssignmentChannel.PHONE, "operator:1")
        )
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.tickets.submitted_between(b.at(0), b.at(60))
        assignments = await uow.assignments.for_tickets([inside.id or 0])
    assert [t.ref for t in found] == ["SMG-1"]
    assert [a.agency_code for a in assignments] == ["BPBD"]


async def test_finish_sent_ends_only_the_owners_leases_when_rows_are_stored_in_bulk(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await add_citizens(uow_factory)
    async with uow_factory() as uow:
        advisory = await uow.advisories.add(Advisory(1000, b.at(0), AdvisoryStatus.SENDING, "x"))
        await uow.advisories.enqueue(
            advisory.id or 0, await uow.citizens.subscribers(None), b.at(0), kind="advisory",
            lane="broadcast", rank=5,
        )  # fmt: skip
        await uow.commit()
    async with uow_factory() as uow:
        mine = await uow.outbox.claim("worker-1", b.at(1), b.at(2), 2)
        await uow.commit()
    for message in mine:
        message.sent_at = b.at(1.5)
        message.result = {"chat_id": 1, "message_id": 2, "thread_id": None}
    async with uow_factory() as uow:
        await uow.outbox.finish_sent(mine, "worker-1")
        await uow.commit()
    async with uow_factory() as uow:
        stored = [await uow.outbox.get(m.id or 0) for m in mine]
        owed = await uow.outbox.owed(10)
        progress = await uow.advisories.progress(advisory.id or 0)
    assert all(s is not None and s.sent_at == b.at(1.5) and s.claimed_by is None for s in stored)
    assert stored[0] is not None
    assert stored[0].result == {"chat_id": 1, "message_id": 2, "thread_id": None}
    assert len(owed) == 1
    assert (progress.sent, progress.owed) == (2, 1)
