"""The UnitOfWork contract, run against SQLite, PostgreSQL and the in-memory fake.

Whatever a service test learns from the fake holds for the real stores: every test here runs
three times (``memory``, ``sqlite``, ``postgresql``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.domain.model import (
    OPEN_STATUSES,
    Assignment,
    AssignmentChannel,
    Citizen,
    Direction,
    OutboxMessage,
    RelayMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.services.ports import QueueLine, UnitOfWork, UnitOfWorkFactory
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.integration import builders as b


async def add_citizen(uow_factory: UnitOfWorkFactory, telegram_id: int = 7_000_000_001) -> int:
    async with uow_factory() as uow:
        stored = await uow.citizens.add(b.citizen(telegram_id))
        await uow.commit()
    assert stored.id is not None
    return stored.id


async def add_ticket(uow_factory: UnitOfWorkFactory, ticket: Ticket) -> Ticket:
    async with uow_factory() as uow:
        stored = await uow.tickets.add(ticket)
        await uow.commit()
    return stored


async def add_draft(uow_factory: UnitOfWorkFactory, telegram_id: int) -> Ticket:
    """A new citizen's draft, stored."""
    return await add_ticket(uow_factory, b.draft(await add_citizen(uow_factory, telegram_id)))


def assert_utc(value: datetime | None) -> None:
    assert value is not None
    assert value.utcoffset() is not None
    assert value.tzinfo == UTC


# --- citizens -----------------------------------------------------------------------------


async def test_citizen_round_trips_every_field_when_added_and_read_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    original = b.citizen()
    assert b.unset_fields(original) == []
    async with uow_factory() as uow:
        stored = await uow.citizens.add(original)
        await uow.commit()
    assert stored.id is not None
    assert original.id is None  # the caller's object is left alone
    async with uow_factory() as uow:
        by_telegram = await uow.citizens.get_by_telegram_id(original.telegram_id)
        by_id = await uow.citizens.get(stored.id)
    assert type(by_telegram) is Citizen
    assert by_telegram == dataclasses.replace(original, id=stored.id) == stored == by_id
    assert_utc(by_telegram.created_at)
    assert_utc(by_telegram.updated_at)


async def test_citizen_gets_timestamps_when_added_without_them(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        stored = await uow.citizens.add(Citizen(telegram_id=5, language="id"))
        await uow.commit()
    assert_utc(stored.created_at)
    assert_utc(stored.updated_at)
    async with uow_factory() as uow:
        again = await uow.citizens.get_by_telegram_id(5)
    assert again == stored


async def test_citizen_is_none_when_unknown(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(123) is None
        assert await uow.citizens.get(123) is None


async def test_citizen_update_persists_every_field_when_committed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    async with uow_factory() as uow:
        citizen = await uow.citizens.get(citizen_id)
        assert citizen is not None
        changed = dataclasses.replace(
            citizen,
            telegram_id=7_000_000_002,
            language="id",
            name="Siti R.",
            username=None,
            phone_e164="+6281111111111",
            phone_verified=False,
            strikes=3,
            blocked_bot=False,
            updated_at=b.at(10).astimezone(b.WIB),
        )
        await uow.citizens.update(changed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.citizens.get(citizen_id) == changed


async def test_citizen_add_refuses_a_second_citizen_when_telegram_id_is_taken(
    uow_factory: UnitOfWorkFactory,
) -> None:
    await add_citizen(uow_factory, 42)
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(41))  # written before the failed insert: kept
        with pytest.raises(ValueError, match="unique"):
            await uow.citizens.add(b.citizen(42, name="Someone else"))
        # The unit of work stays usable: the service can read the winner and go on.
        existing = await uow.citizens.get_by_telegram_id(42)
        assert existing is not None
        assert existing.name == "Siti Rahayu"
        await uow.citizens.add(b.citizen(43))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(41) is not None
        assert await uow.citizens.get_by_telegram_id(43) is not None


async def test_citizen_update_raises_lookup_error_when_citizen_is_unknown(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        with pytest.raises(LookupError):
            await uow.citizens.update(b.citizen(id=999_999))
        with pytest.raises(LookupError):
            await uow.citizens.update(b.citizen())  # never added: no id


async def test_citizen_add_refuses_naive_datetimes_when_given(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match="naive"):
            await uow.citizens.add(b.citizen(created_at=datetime(2026, 5, 27, 10, 0)))  # noqa: DTZ001


# --- tickets ------------------------------------------------------------------------------


async def test_ticket_round_trips_every_field_when_added_and_read_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    original = b.ticket(citizen_id, anonymised_at=b.at(120).astimezone(b.WIB))
    assert b.unset_fields(original) == []
    stored = await add_ticket(uow_factory, original)
    assert stored.id is not None
    assert original.id is None
    async with uow_factory() as uow:
        by_id = await uow.tickets.get(stored.id)
        by_ref = await uow.tickets.get_by_ref("SMG-260527-0042")
    assert type(by_id) is Ticket
    assert by_id == dataclasses.replace(original, id=stored.id) == stored == by_ref
    assert by_id.incident_location is not None
    assert by_id.pending_location is not None
    assert by_id.reporter_location is not None
    for value in (
        by_id.created_at,
        by_id.closed_at,
        by_id.incident_location.captured_at,
        by_id.incident_location.live_until,
        by_id.reporter_location.captured_at,
        by_id.pending_location.captured_at,
        by_id.pending_location.live_until,
    ):
        assert_utc(value)


async def test_ticket_round_trips_empty_optionals_when_minimal(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    original = b.draft(citizen_id, step=None)
    stored = await add_ticket(uow_factory, original)
    async with uow_factory() as uow:
        assert await uow.tickets.get(stored.id or 0) == dataclasses.replace(original, id=stored.id)


async def test_ticket_location_round_trips_when_it_has_no_area(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    bare = dataclasses.replace(b.location(), area=None, accuracy_m=None, live_until=None)
    original = b.ticket(citizen_id, incident_location=bare, pending_location=bare)
    stored = await add_ticket(uow_factory, original)
    async with uow_factory() as uow:
        loaded = await uow.tickets.get(stored.id or 0)
    assert loaded is not None
    assert loaded.incident_location == bare
    assert loaded.pending_location == bare


async def test_ticket_update_persists_every_field_when_committed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    stored = await add_ticket(uow_factory, b.draft(citizen_id))
    full = b.ticket(citizen_id, id=stored.id)
    async with uow_factory() as uow:
        await uow.tickets.update(full)
        await uow.commit()
    async with uow_factory() as uow:  # every write bumps the stored version, whatever was given
        assert await uow.tickets.get(stored.id or 0) == dataclasses.replace(full, version=1)
    emptied = b.draft(citizen_id, id=stored.id, status=TicketStatus.ABANDONED)
    async with uow_factory() as uow:
        await uow.tickets.update(emptied)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.tickets.get(stored.id or 0) == dataclasses.replace(emptied, version=2)


async def test_returned_ticket_is_a_copy_when_mutated_without_update(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    stored = await add_ticket(uow_factory, b.ticket(citizen_id))
    async with uow_factory() as uow:
        loaded = await uow.tickets.get(stored.id or 0)
        assert loaded is not None
        loaded.details = "changed in memory only"
        loaded.media.clear()
        await uow.commit()
    async with uow_factory() as uow:
        again = await uow.tickets.get(stored.id or 0)
    assert again == stored


async def test_ticket_update_raises_lookup_error_when_ticket_is_unknown(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    async with uow_factory() as uow:
        with pytest.raises(LookupError):
            await uow.tickets.update(b.draft(citizen_id, id=999_999))


async def test_ticket_add_refuses_it_when_citizen_does_not_exist(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match="foreign key"):
            await uow.tickets.add(b.draft(999_999))


async def test_active_draft_is_the_citizens_draft_when_one_is_in_progress(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    other_id = await add_citizen(uow_factory, 99)
    await add_ticket(uow_factory, b.ticket(citizen_id))
    draft = await add_ticket(uow_factory, b.draft(citizen_id, step=None))
    await add_ticket(uow_factory, b.draft(other_id))
    async with uow_factory() as uow:
        assert await uow.tickets.active_draft(citizen_id) == draft
        assert await uow.tickets.active_draft(123_456) is None


async def test_citizen_with_draft_reads_both_with_every_field_when_a_draft_is_in_progress(
    uow_factory: UnitOfWorkFactory,
) -> None:
    original = b.citizen()
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(original)
        await uow.commit()
    assert citizen.id is not None
    full = b.ticket(citizen.id, anonymised_at=b.at(120).astimezone(b.WIB))
    draft = await add_ticket(uow_factory, dataclasses.replace(full, status=TicketStatus.DRAFT))
    assert b.unset_fields(draft) == []  # every column goes through the joined read
    async with uow_factory() as uow:
        read = await uow.citizens.with_draft(original.telegram_id)
    assert read == (citizen, draft)
    assert type(read[0]) is Citizen
    assert type(read[1]) is Ticket
    assert read[1].incident_location is not None
    assert read[1].reporter_location is not None
    assert read[1].pending_location is not None
    assert_utc(read[0].created_at)
    assert_utc(read[1].incident_location.captured_at)


async def test_citizen_with_draft_has_no_draft_when_only_tickets_or_others_drafts_exist(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    other_id = await add_citizen(uow_factory, 99)
    await add_ticket(uow_factory, b.ticket(citizen_id))  # submitted, not a draft
    await add_ticket(uow_factory, b.draft(other_id))
    async with uow_factory() as uow:
        citizen, draft = await uow.citizens.with_draft(7_000_000_001)
        assert citizen is not None
        assert citizen.id == citizen_id
        assert draft is None
        assert await uow.citizens.with_draft(123_456) == (None, None)
        other, others_draft = await uow.citizens.with_draft(99)
        assert other is not None
        assert others_draft == await uow.tickets.active_draft(other_id)
        assert others_draft is not None


async def test_active_draft_is_none_when_draft_was_submitted(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    draft = await add_ticket(uow_factory, b.draft(citizen_id))
    draft.status = TicketStatus.SUBMITTED
    async with uow_factory() as uow:
        await uow.tickets.update(draft)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.tickets.active_draft(citizen_id) is None


async def test_ticket_add_refuses_a_second_draft_when_citizen_already_has_one(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    first = await add_ticket(uow_factory, b.draft(citizen_id))
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match="unique"):
            await uow.tickets.add(b.draft(citizen_id))
        # Still usable: submitting the first draft makes room for a new one.
        first.status = TicketStatus.SUBMITTED
        await uow.tickets.update(first)
        second = await uow.tickets.add(b.draft(citizen_id))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.tickets.active_draft(citizen_id) == second


async def test_ticket_add_refuses_a_reference_when_it_is_taken(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    await add_ticket(uow_factory, b.ticket(citizen_id, ref="SMG-1"))
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match="unique"):
            await uow.tickets.add(b.ticket(citizen_id, ref="SMG-1"))


async def test_open_tickets_lists_only_open_statuses_newest_first_when_statuses_are_mixed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    other_id = await add_citizen(uow_factory, 99)
    expected = []
    for minute, status in enumerate(TicketStatus):
        stored = await add_ticket(
            uow_factory,
            b.ticket(citizen_id, ref=f"R-{minute}", status=status, created_at=b.at(minute)),
        )
        if status in OPEN_STATUSES:
            expected.append(stored)
    await add_ticket(uow_factory, b.ticket(other_id, ref="OTHER"))
    async with uow_factory() as uow:
        found = await uow.tickets.open_tickets(citizen_id)
    assert found == list(reversed(expected))
    assert {t.status for t in found} == OPEN_STATUSES


async def test_recent_lists_latest_non_drafts_when_limited(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    stored = [
        await add_ticket(
            uow_factory,
            b.ticket(citizen_id, ref=f"R-{n}", status=TicketStatus.CLOSED, created_at=b.at(n)),
        )
        for n in range(4)
    ]
    await add_ticket(uow_factory, b.draft(citizen_id, created_at=b.at(10)))
    async with uow_factory() as uow:
        assert await uow.tickets.recent(citizen_id, 3) == stored[:0:-1]
        assert await uow.tickets.recent(citizen_id, 10) == stored[::-1]


async def test_idle_drafts_lists_drafts_untouched_since_cutoff_when_some_are_fresh(
    uow_factory: UnitOfWorkFactory,
) -> None:
    ids = [await add_citizen(uow_factory, n) for n in range(1, 5)]
    oldest = await add_ticket(uow_factory, b.draft(ids[0], updated_at=b.at(-30)))
    old = await add_ticket(uow_factory, b.draft(ids[1], updated_at=b.at(-20)))
    await add_ticket(uow_factory, b.draft(ids[2], updated_at=b.at(-10)))  # exactly at cutoff
    await add_ticket(uow_factory, b.ticket(ids[3], updated_at=b.at(-60)))  # not a draft
    async with uow_factory() as uow:
        assert await uow.tickets.idle_drafts(b.at(-10).astimezone(b.WIB)) == [oldest, old]


async def test_count_by_status_counts_every_status_when_tickets_are_mixed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    await add_ticket(uow_factory, b.draft(citizen_id))
    for n in range(3):
        await add_ticket(
            uow_factory, b.ticket(citizen_id, ref=f"S-{n}", status=TicketStatus.SUBMITTED)
        )
    await add_ticket(uow_factory, b.ticket(citizen_id, ref="C", status=TicketStatus.CLOSED))
    async with uow_factory() as uow:
        counts = await uow.tickets.count_by_status()
    assert counts == {
        **dict.fromkeys(TicketStatus, 0),
        TicketStatus.DRAFT: 1,
        TicketStatus.SUBMITTED: 3,
        TicketStatus.CLOSED: 1,
    }


async def test_ticket_update_refuses_naive_datetimes_when_given(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    stored = await add_ticket(uow_factory, b.draft(citizen_id))
    naive = datetime(2026, 5, 27, 10, 0)  # noqa: DTZ001
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match="naive"):
            await uow.tickets.update(dataclasses.replace(stored, submitted_at=naive))
        located = dataclasses.replace(b.location(), captured_at=naive)
        with pytest.raises(ValueError, match="naive"):
            await uow.tickets.update(dataclasses.replace(stored, pending_location=located))


# --- reference numbers --------------------------------------------------------------------


async def test_next_ref_number_counts_from_one_when_day_is_new(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        numbers = [await uow.tickets.next_ref_number(date(2026, 5, 27)) for _ in range(3)]
        await uow.commit()
    async with uow_factory() as uow:
        numbers.append(await uow.tickets.next_ref_number(date(2026, 5, 27)))
        numbers.append(await uow.tickets.next_ref_number(date(2026, 5, 28)))
        await uow.commit()
    assert numbers == [1, 2, 3, 4, 1]


async def test_next_ref_number_never_repeats_when_fifty_units_allocate_concurrently(
    uow_factory: UnitOfWorkFactory,
) -> None:
    day = date(2026, 5, 27)

    async def allocate() -> int:
        async with uow_factory() as uow:
            number = await uow.tickets.next_ref_number(day)
            await asyncio.sleep(0)  # let the others interleave
            await uow.commit()
        return number

    numbers = await asyncio.gather(*(allocate() for _ in range(50)))
    assert sorted(numbers) == list(range(1, 51))


async def test_next_ref_number_is_handed_out_again_when_its_unit_rolled_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    day = date(2026, 5, 27)
    async with uow_factory() as uow:
        assert await uow.tickets.next_ref_number(day) == 1
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.tickets.next_ref_number(day) == 2  # no ticket ever carried it
    async with uow_factory() as uow:
        assert await uow.tickets.next_ref_number(day) == 2
        await uow.commit()


async def _drafts(uow_factory: UnitOfWorkFactory, count: int) -> list[Ticket]:
    """``count`` drafts, each of a citizen of its own (a citizen has one draft at most)."""
    drafts = []
    for n in range(count):
        drafts.append(await add_draft(uow_factory, 7_100_000_000 + n))
    return drafts


def _submitted(draft: Ticket) -> Ticket:
    return dataclasses.replace(
        draft, status=TicketStatus.SUBMITTED, submitted_at=b.at(5), details="banjir"
    )


async def test_update_with_next_ref_writes_the_ticket_and_its_reference_numbered_per_day(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second, third = await _drafts(uow_factory, 3)
    async with uow_factory() as uow:
        refs = [
            await uow.tickets.update_with_next_ref(_submitted(first), date(2026, 5, 27), "SMG"),
            await uow.tickets.update_with_next_ref(_submitted(second), date(2026, 5, 27), "SMG"),
            await uow.tickets.update_with_next_ref(_submitted(third), date(2026, 5, 28), "SMG"),
        ]
        await uow.commit()
    assert refs == ["SMG-260527-0001", "SMG-260527-0002", "SMG-260528-0001"]
    async with uow_factory() as uow:
        stored = [await uow.tickets.get(t.id or 0) for t in (first, second, third)]
        after = await uow.tickets.next_ref_number(date(2026, 5, 27))  # the same counter
    for ticket, ref, original in zip(stored, refs, (first, second, third), strict=True):
        assert ticket is not None
        assert (ticket.ref, ticket.status, ticket.details) == (
            ref,
            TicketStatus.SUBMITTED,
            "banjir",
        )
        assert ticket.submitted_at == b.at(5)
        assert ticket.version == original.version + 1  # one write
    assert after == 3


async def test_update_with_next_ref_never_repeats_a_reference_when_fifty_submit_concurrently(
    uow_factory: UnitOfWorkFactory,
) -> None:
    drafts = await _drafts(uow_factory, 50)
    day = date(2026, 5, 27)

    async def submit(draft: Ticket) -> str:
        async with uow_factory() as uow:
            await uow.events.add(b.event(draft.id or 0))  # the unit's earlier writes
            await asyncio.sleep(0)  # let the others interleave
            ref = await uow.tickets.update_with_next_ref(_submitted(draft), day, "SMG")
            await asyncio.sleep(0)
            await uow.commit()
        return ref

    refs = await asyncio.gather(*(submit(draft) for draft in drafts))
    assert sorted(refs) == [f"SMG-260527-{n:04d}" for n in range(1, 51)]
    async with uow_factory() as uow:
        stored = {(await uow.tickets.get(d.id or 0) or d).ref for d in drafts}
    assert stored == set(refs)


async def test_commit_with_next_ref_commits_fifty_concurrent_submissions_gapless(
    uow_factory: UnitOfWorkFactory,
) -> None:
    drafts = await _drafts(uow_factory, 50)
    day = date(2026, 5, 27)

    async def submit(n: int, draft: Ticket) -> str:
        async with uow_factory() as uow:
            _, loaded = await uow.citizens.with_draft(7_100_000_000 + n)  # reads only, then
            assert loaded is not None
            await uow.events.add(b.event(draft.id or 0, kind="submitted"))
            await asyncio.sleep(0)  # let the others interleave
            return await uow.commit_with_next_ref(_submitted(loaded), day, "SMG")

    refs = await asyncio.gather(*(submit(n, d) for n, d in enumerate(drafts)))
    assert sorted(refs) == [f"SMG-260527-{n:04d}" for n in range(1, 51)]
    async with uow_factory() as uow:  # committed: a new unit sees each ticket and event
        stored = [await uow.tickets.get(d.id or 0) for d in drafts]
        events = [await uow.events.for_ticket(d.id or 0) for d in drafts]
    assert [t.ref if t else None for t in stored] == refs
    assert all(t is not None and t.status is TicketStatus.SUBMITTED for t in stored)
    assert [[e.kind for e in each] for each in events] == [["submitted"]] * 50


async def test_commit_with_update_writes_the_ticket_and_commits(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (draft,) = await _drafts(uow_factory, 1)
    async with uow_factory() as uow:
        _, loaded = await uow.citizens.with_draft(7_100_000_000)  # reads only, then
        assert loaded is not None
        await uow.commit_with_update(dataclasses.replace(loaded, details="asap"))
    async with uow_factory() as uow:  # committed: a new unit sees it
        stored = await uow.tickets.get(draft.id or 0)
    assert stored is not None
    assert stored.details == "asap"


async def test_commit_with_update_of_a_missing_ticket_fails_and_keeps_nothing_of_the_unit(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (draft,) = await _drafts(uow_factory, 1)

    async def write_a_ticket_gone() -> None:
        async with uow_factory() as uow:
            await uow.citizens.add(b.citizen(7_100_000_999))
            await uow.commit_with_update(dataclasses.replace(draft, id=999_999))

    with pytest.raises(LookupError):
        await write_a_ticket_gone()
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(7_100_000_999) is None


async def test_update_with_next_ref_leaves_the_ticket_and_the_number_when_rolled_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (draft,) = await _drafts(uow_factory, 1)
    day = date(2026, 5, 27)
    async with uow_factory() as uow:
        assert await uow.tickets.update_with_next_ref(_submitted(draft), day, "SMG") == (
            "SMG-260527-0001"
        )
    async with uow_factory() as uow:
        stored = await uow.tickets.get(draft.id or 0)
        assert stored == draft  # no reference, still a draft
        assert await uow.tickets.update_with_next_ref(_submitted(draft), day, "SMG") == (
            "SMG-260527-0001"  # handed out again: no ticket ever carried it
        )
        await uow.commit()


async def test_update_with_next_ref_refuses_an_unknown_ticket(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (draft,) = await _drafts(uow_factory, 1)
    async with uow_factory() as uow:
        with pytest.raises(LookupError):
            await uow.tickets.update_with_next_ref(
                dataclasses.replace(draft, id=(draft.id or 0) + 1000), date(2026, 5, 27), "SMG"
            )


# --- timeline and relay log ---------------------------------------------------------------


async def test_events_round_trip_oldest_first_when_added_out_of_order(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    ticket_id = (await add_ticket(uow_factory, b.ticket(citizen_id))).id or 0
    other_id = (await add_ticket(uow_factory, b.ticket(citizen_id, ref="OTHER"))).id or 0
    late = b.event(ticket_id, 5)
    early = b.event(ticket_id, 1, to_status=None, from_status=None, note=None)
    same_time = b.event(ticket_id, 5, kind="note")
    async with uow_factory() as uow:
        for event in (late, early, same_time, b.event(other_id)):
            await uow.events.add(event)
        await uow.commit()
    async with uow_factory() as uow:
        events = await uow.events.for_ticket(ticket_id)
    assert all(type(e) is TicketEvent and e.id is not None for e in events)
    assert [dataclasses.replace(e, id=None) for e in events] == [early, late, same_time]
    assert b.unset_fields(late) == []


async def test_event_add_refuses_it_when_ticket_does_not_exist(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async def add_and_commit() -> None:  # refused at the add, or at the latest at the commit
        async with uow_factory() as uow:
            await uow.events.add(b.event(999_999))
            await uow.commit()

    with pytest.raises(ValueError, match="foreign key"):
        await add_and_commit()


async def test_messages_round_trip_oldest_first_when_relayed_both_ways(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    ticket_id = (await add_ticket(uow_factory, b.ticket(citizen_id))).id or 0
    inbound = b.message(ticket_id, 2)
    outbound = b.message(ticket_id, 1, direction=Direction.TO_CITIZEN, kind="text", file_id=None)
    assert b.unset_fields(inbound) == []
    async with uow_factory() as uow:
        await uow.messages.add(inbound)
        await uow.messages.add(outbound)
        await uow.commit()
    async with uow_factory() as uow:
        messages = await uow.messages.for_ticket(ticket_id)
    assert all(type(m) is RelayMessage and m.id is not None for m in messages)
    assert [dataclasses.replace(m, id=None) for m in messages] == [outbound, inbound]


async def test_count_from_citizen_since_counts_only_their_inbound_messages_when_mixed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    other_id = await add_citizen(uow_factory, 99)
    first = (await add_ticket(uow_factory, b.ticket(citizen_id, ref="A"))).id or 0
    second = (await add_ticket(uow_factory, b.ticket(citizen_id, ref="B"))).id or 0
    others = (await add_ticket(uow_factory, b.ticket(other_id, ref="C"))).id or 0
    async with uow_factory() as uow:
        await uow.messages.add(b.message(first, -1))  # before the window
        await uow.messages.add(b.message(first, 0))  # exactly at its start
        await uow.messages.add(b.message(second, 1))
        await uow.messages.add(b.message(first, 2, direction=Direction.TO_CITIZEN))
        await uow.messages.add(b.message(others, 1))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.messages.count_from_citizen_since(citizen_id, b.at(0)) == 2
        assert await uow.messages.count_from_citizen_since(other_id, b.at(0)) == 1
        assert await uow.messages.count_from_citizen_since(citizen_id, b.at(3)) == 0


async def test_message_add_refuses_it_when_ticket_does_not_exist(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match=r"foreign key|NOT NULL"):
            await uow.messages.add(b.message(999_999))


# --- outbox -------------------------------------------------------------------------------


async def test_outbox_message_round_trips_every_field_when_added(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    ticket_id = (await add_ticket(uow_factory, b.ticket(citizen_id))).id
    original = b.outbox(
        ticket_id, sent_at=b.at(3), failed_at=b.at(4), lane="advisory", attempts=2, rank=1,
        result={"chat_id": -100, "message_id": 7, "thread_id": None}, dedup_key="alert:x",
        claimed_by="host:1:abc", claimed_until=b.at(5), repeat=True,
    )  # fmt: skip
    assert b.unset_fields(original) == []
    async with uow_factory() as uow:
        stored = await uow.outbox.add(original)
        await uow.commit()
    assert type(stored) is OutboxMessage
    assert stored == dataclasses.replace(original, id=stored.id)
    assert stored.id is not None
    async with uow_factory() as uow:
        assert await uow.outbox.get(stored.id) == stored
        assert await uow.outbox.get(stored.id + 1) is None


async def test_outbox_add_refuses_payload_when_not_json(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        with pytest.raises(TypeError):
            await uow.outbox.add(b.outbox(payload={"when": b.T0}))


async def test_outbox_put_refuses_at_once_a_payload_not_json(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        with pytest.raises(TypeError):
            await uow.outbox.put(b.outbox(payload={"when": b.T0}))


async def test_outbox_put_refuses_a_row_of_no_ticket_at_the_latest_at_the_commit(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async def put_and_commit() -> None:
        async with uow_factory() as uow:
            await uow.outbox.put(b.outbox(999_999))
            await uow.commit()

    with pytest.raises(ValueError, match="foreign key"):
        await put_and_commit()


async def test_outbox_put_rows_are_read_in_their_unit_in_order_and_kept_by_its_commit(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        for kind in ("topic", "card", "pin"):
            await uow.outbox.put(b.outbox(kind=kind, attempts=0))
        assert [m.kind for m in await uow.outbox.owed(10)] == ["topic", "card", "pin"]
        await uow.outbox.put(b.outbox(kind="media", attempts=0))
        await uow.commit()
    async with uow_factory() as uow:
        await uow.outbox.put(b.outbox(kind="dropped"))  # no commit
    async with uow_factory() as uow:
        owed = await uow.outbox.owed(10)
    assert [m.kind for m in owed] == ["topic", "card", "pin", "media"]
    assert [m.id for m in owed] == sorted(m.id or 0 for m in owed)


async def test_outbox_due_lists_owed_rows_in_written_order_when_some_are_sent_failed_or_later(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        second = await uow.outbox.add(b.outbox(minutes=2, kind="second"))
        first = await uow.outbox.add(b.outbox(minutes=1, kind="first"))
        await uow.outbox.add(b.outbox(minutes=0, sent_at=b.at(1)))
        await uow.outbox.add(b.outbox(minutes=0, failed_at=b.at(1)))
        await uow.outbox.add(b.outbox(minutes=10, kind="later"))
        advisory = await uow.outbox.add(b.outbox(minutes=3, lane="advisory"))
        await uow.commit()
    async with uow_factory() as uow:
        # FIFO by creation, whatever the retry times: a card is never overtaken by its pin
        assert await uow.outbox.due(b.at(5), 10) == [second, first, advisory]
        assert await uow.outbox.due(b.at(5), 2) == [second, first]
        assert await uow.outbox.due(b.at(5), 10, lane="emergency") == [second, first]
        assert await uow.outbox.due(b.at(5), 10, lane="advisory") == [advisory]
        assert await uow.outbox.due(b.at(2), 10) == [second, first]  # due at exactly now
        assert await uow.outbox.due(b.at(1), 10) == [first]
        assert await uow.outbox.pending_count() == 4


async def test_outbox_update_persists_only_delivery_state_when_retried_and_sent(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        stored = await uow.outbox.add(b.outbox(attempts=0, last_error=None))
        await uow.commit()
    retry = dataclasses.replace(
        stored,
        attempts=1,
        next_attempt_at=b.at(10),
        last_error="RetryAfter",
        payload={"tampered": True},
        kind="tampered",
        claimed_by="tampered",
    )
    async with uow_factory() as uow:
        await uow.outbox.update(retry)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.due(b.at(5), 10) == []
        assert await uow.outbox.due(b.at(10), 10) == [
            dataclasses.replace(
                stored, attempts=1, next_attempt_at=b.at(10), last_error="RetryAfter"
            )
        ]
        sent = dataclasses.replace(
            retry, attempts=2, sent_at=b.at(11), result={"message_id": 5}, repeat=True
        )
        await uow.outbox.update(sent)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.due(b.at(60), 10) == []
        assert await uow.outbox.pending_count() == 0
        assert await uow.outbox.get(stored.id or 0) == dataclasses.replace(
            stored, attempts=2, next_attempt_at=b.at(10), last_error="RetryAfter",
            sent_at=b.at(11), result={"message_id": 5}, repeat=True,
        )  # fmt: skip


async def test_outbox_update_raises_lookup_error_when_message_is_unknown(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        with pytest.raises(LookupError):
            await uow.outbox.update(b.outbox(id=999_999))


# --- the unit of work ---------------------------------------------------------------------


async def everything_empty(uow: UnitOfWork, telegram_id: int) -> bool:
    return (
        await uow.citizens.get_by_telegram_id(telegram_id) is None
        and await uow.outbox.pending_count() == 0
        and sum((await uow.tickets.count_by_status()).values()) == 0
    )


async def test_changes_vanish_when_unit_of_work_exits_without_commit(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        citizen = await uow.citizens.add(b.citizen(1))
        await uow.tickets.add(b.draft(citizen.id or 0))
        await uow.outbox.add(b.outbox())
        assert await uow.citizens.get_by_telegram_id(1) == citizen  # visible inside
    async with uow_factory() as uow:
        assert await everything_empty(uow, 1)


async def test_changes_vanish_when_an_exception_leaves_the_unit_of_work(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async def add_then_fail() -> None:
        async with uow_factory() as uow:
            await uow.citizens.add(b.citizen(1))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await add_then_fail()
    async with uow_factory() as uow:
        assert await everything_empty(uow, 1)


async def test_rollback_discards_changes_when_called_explicitly(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(1))
        await uow.rollback()
        assert await uow.citizens.get_by_telegram_id(1) is None
        await uow.citizens.add(b.citizen(2))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(1) is None
        assert await uow.citizens.get_by_telegram_id(2) is not None


async def test_committed_changes_stay_when_later_work_is_not_committed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(1))
        await uow.commit()
        await uow.citizens.add(b.citizen(2))
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(1) is not None
        assert await uow.citizens.get_by_telegram_id(2) is None


async def test_uncommitted_changes_stay_invisible_when_another_unit_reads(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async def read() -> Citizen | None:
        async with uow_factory() as other:
            return await other.citizens.get_by_telegram_id(1)

    async with uow_factory() as uow:
        await uow.citizens.add(b.citizen(1))
        reader = asyncio.create_task(read())
        # PostgreSQL and the fake answer at once; SQLite's reader waits for the writer.
        await asyncio.sleep(0.05)
    assert await reader is None


async def test_unit_of_work_refuses_use_when_not_entered(uow_factory: UnitOfWorkFactory) -> None:
    uow = uow_factory()
    with pytest.raises(RuntimeError):
        await uow.commit()
    async with uow:
        with pytest.raises(RuntimeError):
            await uow.__aenter__()


async def test_outbox_owed_lists_rows_due_or_not_in_written_order_when_some_wait(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        later = await uow.outbox.add(b.outbox(minutes=10, kind="later"))
        due_now = await uow.outbox.add(b.outbox(minutes=0, kind="now"))
        await uow.outbox.add(b.outbox(minutes=0, sent_at=b.at(1)))
        await uow.outbox.add(b.outbox(minutes=0, failed_at=b.at(1)))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.outbox.owed(10) == [later, due_now]
        assert await uow.outbox.owed(1) == [later]
        assert await uow.outbox.due(b.at(0), 10) == [due_now]


# --- the console: compare-and-set, lookups, queue, SLA candidates ---------------------------


async def test_update_if_unchanged_lets_exactly_one_of_two_stale_writers_win_when_they_race(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    stored = await add_ticket(
        uow_factory, b.ticket(citizen_id, status=TicketStatus.SUBMITTED, claimed_by=None)
    )
    first = dataclasses.replace(stored, status=TicketStatus.CLAIMED, claimed_by=1)
    second = dataclasses.replace(stored, status=TicketStatus.CLAIMED, claimed_by=2)
    async with uow_factory() as uow:
        assert await uow.tickets.update_if_unchanged(first) is True
        await uow.commit()
    async with uow_factory() as uow:  # read before the first write: its version is stale
        assert await uow.tickets.update_if_unchanged(second) is False
        await uow.commit()
    async with uow_factory() as uow:
        now = await uow.tickets.get(stored.id or 0)
    assert now == dataclasses.replace(first, version=stored.version + 1)


async def test_update_if_unchanged_wins_once_when_two_units_read_then_write_concurrently(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    stored = await add_ticket(uow_factory, b.ticket(citizen_id, status=TicketStatus.SUBMITTED))
    both_read = asyncio.Barrier(2)

    async def claim(operator: int) -> bool:
        async with uow_factory() as uow:
            ticket = await uow.tickets.get(stored.id or 0)
            assert ticket is not None
            if isinstance(uow_factory, InMemoryUnitOfWorkFactory) or _is_postgres(uow_factory):
                await both_read.wait()  # SQLite serialises writers before their first read
            if ticket.status is not TicketStatus.SUBMITTED:
                return False  # read after the winner's commit (SQLite queues writers)
            ticket.status, ticket.claimed_by = TicketStatus.CLAIMED, operator
            won = await uow.tickets.update_if_unchanged(ticket)
            await uow.commit()
            return won

    results = await asyncio.gather(claim(1), claim(2))
    assert sorted(results) == [False, True]
    async with uow_factory() as uow:
        final = await uow.tickets.get(stored.id or 0)
    assert final is not None
    assert final.claimed_by == (1 if results[0] else 2)
    assert final.version == stored.version + 1


def _is_postgres(uow_factory: UnitOfWorkFactory) -> bool:
    sessions = getattr(uow_factory, "_session_factory", None)
    engine = sessions.kw.get("bind") if sessions is not None else None
    return engine is not None and engine.dialect.name == "postgresql"


async def test_update_if_unchanged_raises_lookup_error_when_ticket_is_unknown(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    async with uow_factory() as uow:
        with pytest.raises(LookupError):
            await uow.tickets.update_if_unchanged(b.ticket(citizen_id, id=999_999))


async def test_update_if_unchanged_is_seen_by_the_same_unit_when_read_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    stored = await add_ticket(uow_factory, b.ticket(citizen_id))
    async with uow_factory() as uow:
        loaded = await uow.tickets.get(stored.id or 0)
        assert loaded is not None
        loaded.eta_minutes = 3
        assert await uow.tickets.update_if_unchanged(loaded)
        again = await uow.tickets.get(stored.id or 0)
        assert again is not None
        assert (again.eta_minutes, again.version) == (3, stored.version + 1)
        assert not await uow.tickets.update_if_unchanged(loaded)  # now stale
        await uow.commit()


async def test_tickets_are_found_by_topic_and_card_when_the_operators_chat_matches(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    stored = await add_ticket(uow_factory, b.ticket(citizen_id))
    chat = stored.operator_chat_id or 0
    async with uow_factory() as uow:
        assert await uow.tickets.by_operator_thread(chat, 77) == stored
        assert await uow.tickets.by_operator_card(chat, 78) == stored
        assert await uow.tickets.by_operator_thread(chat, 78) is None
        assert await uow.tickets.by_operator_card(-100, 78) is None


async def test_queue_lists_open_tickets_priority_first_then_oldest_when_mixed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    specs = [
        ("A", TicketStatus.SUBMITTED, 3, 0),
        ("B", TicketStatus.CLAIMED, 1, 5),
        ("C", TicketStatus.ON_SCENE, 1, 2),
        ("D", TicketStatus.RESOLVED, 1, 1),
        ("E", TicketStatus.DRAFT, 1, 1),
        ("F", TicketStatus.EN_ROUTE, 2, 1),
        ("G", TicketStatus.SUBMITTED, 1, 5),
    ]
    for ref, status, priority, minute in specs:
        await add_ticket(
            uow_factory,
            b.ticket(
                citizen_id, ref=ref, status=status, priority=priority, submitted_at=b.at(minute)
            ),
        )
    async with uow_factory() as uow:
        queue = await uow.tickets.queue()
    assert [t.ref for t in queue] == ["C", "B", "G", "F", "A"]


async def test_queue_lines_are_the_queue_as_the_board_shows_it_when_places_and_claims_vary(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    no_area = dataclasses.replace(b.location(), area=None)  # outside every kecamatan
    specs: list[tuple[str, TicketStatus, int, int, dict[str, object]]] = [
        ("placed", TicketStatus.SUBMITTED, 2, 0, {}),
        ("no-place", TicketStatus.SUBMITTED, 1, 3, {"incident_location": None, "category": None}),
        ("no-area", TicketStatus.CLAIMED, 1, 1, {"incident_location": no_area}),
        ("no-topic", TicketStatus.ON_SCENE, 3, 2, {"operator_thread_id": None, "ref": None}),
        ("unclaimed", TicketStatus.SUBMITTED, 2, 4, {"claimed_by": None, "claimed_by_name": None}),
        ("closed", TicketStatus.CLOSED, 1, 0, {}),
        ("draft", TicketStatus.DRAFT, 1, 0, {"submitted_at": None}),
    ]
    for name, status, priority, minute, changes in specs:
        fields = {"ref": f"SMG-261130-{len(name):04d}{name}", "status": status,
                  "priority": priority, "submitted_at": b.at(minute), **changes}  # fmt: skip
        await add_ticket(uow_factory, b.ticket(citizen_id, **fields))
    async with uow_factory() as uow:
        queue = await uow.tickets.queue()
        lines = await uow.tickets.queue_lines()
    assert len(queue) == 5
    assert lines == [QueueLine.of(ticket) for ticket in queue]
    by_id = {line.ticket_id: line for line in lines}
    kecamatan = {t.ref: by_id[t.id or 0].kecamatan_name for t in queue}
    area = b.location().area
    assert area is not None
    assert kecamatan[f"SMG-261130-{6:04d}placed"] == area.kecamatan_name
    assert kecamatan[f"SMG-261130-{8:04d}no-place"] is None
    assert kecamatan[f"SMG-261130-{7:04d}no-area"] is None


async def test_unclaimed_since_lists_waiting_tickets_with_a_marker_unset_when_mixed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    unset = {"sla_realerted_at": None, "sla_escalated_at": None, "status": TicketStatus.SUBMITTED}
    for ref, minute, changes in [
        ("due", 0, unset),
        ("due-escalation", 0, {**unset, "sla_realerted_at": b.at(1)}),
        ("both-done", 0, {**unset, "sla_realerted_at": b.at(1), "sla_escalated_at": b.at(3)}),
        ("fresh", 9, unset),
        ("claimed", 0, {**unset, "status": TicketStatus.CLAIMED}),
        ("requeued", 9, {**unset, "submitted_at": b.at(-30)}),  # queued_at counts
        ("old-submit-no-queue", 0, {**unset, "queued_at": None, "submitted_at": b.at(1)}),
    ]:
        await add_ticket(
            uow_factory, b.ticket(citizen_id, ref=ref, **{"queued_at": b.at(minute), **changes})
        )
    async with uow_factory() as uow:
        due = await uow.tickets.unclaimed_since(b.at(2))
    assert [t.ref for t in due] == ["old-submit-no-queue", "due", "due-escalation"]  # queue order


async def test_idle_claims_measures_from_the_later_of_claim_and_last_message_when_listing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    claimed = {"status": TicketStatus.CLAIMED, "last_operator_message_at": None}
    for ref, changes in [
        ("claimed-long-ago", {**claimed, "claimed_at": b.at(0)}),
        ("claimed-recently", {**claimed, "claimed_at": b.at(8)}),
        ("wrote-recently", {**claimed, "claimed_at": b.at(0), "last_operator_message_at": b.at(8)}),
        (
            "wrote-before-reclaim",
            {**claimed, "claimed_at": b.at(9), "last_operator_message_at": b.at(1)},
        ),
        ("wrote-long-ago", {**claimed, "claimed_at": b.at(0), "last_operator_message_at": b.at(2)}),
        ("dispatched", {**claimed, "claimed_at": b.at(0), "status": TicketStatus.DISPATCHED}),
    ]:
        await add_ticket(uow_factory, b.ticket(citizen_id, ref=ref, **changes))
    async with uow_factory() as uow:
        idle = await uow.tickets.idle_claims(b.at(5))
    assert sorted(t.ref or "" for t in idle) == ["claimed-long-ago", "wrote-long-ago"]


async def test_last_closed_is_the_latest_resolved_or_closed_ticket_of_the_citizen(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    other_id = await add_citizen(uow_factory, 99)
    async with uow_factory() as uow:
        assert await uow.tickets.last_closed(citizen_id) is None
    for ref, status, closed, owner in [
        ("old", TicketStatus.RESOLVED, 10, citizen_id),
        ("newest", TicketStatus.CLOSED, 30, citizen_id),
        ("cancelled", TicketStatus.CANCELLED, 40, citizen_id),
        ("open", TicketStatus.CLAIMED, 50, citizen_id),
        ("others", TicketStatus.RESOLVED, 60, other_id),
    ]:
        await add_ticket(
            uow_factory, b.ticket(owner, ref=ref, status=status, closed_at=b.at(closed))
        )
    async with uow_factory() as uow:
        last = await uow.tickets.last_closed(citizen_id)
    assert last is not None
    assert last.ref == "newest"


# --- roster, assignments, audit ------------------------------------------------------------


async def test_operator_round_trips_and_updates_when_added_and_changed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    original = b.operator()
    assert b.unset_fields(original) == []
    async with uow_factory() as uow:
        stored = await uow.operators.add(original)
        await uow.commit()
    assert stored == dataclasses.replace(original, id=stored.id, added_at=original.added_at)
    async with uow_factory() as uow:
        loaded = await uow.operators.get(original.telegram_id)
        assert loaded == stored
        assert loaded is not None
        assert_utc(loaded.added_at)
        changed = dataclasses.replace(loaded, display_name="Dewi L.", is_admin=False, active=True)
        await uow.operators.update(changed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.operators.get(original.telegram_id) == changed
        assert await uow.operators.get(1) is None
        with pytest.raises(LookupError):
            await uow.operators.update(b.operator(id=999_999))


async def test_operator_add_refuses_a_second_entry_when_the_user_is_on_the_roster(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.operators.add(b.operator(7))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match="unique"):
            await uow.operators.add(b.operator(7, display_name="again"))
        await uow.operators.add(b.operator(8))  # the unit of work stays usable
        await uow.commit()
    async with uow_factory() as uow:
        assert [o.telegram_id for o in await uow.operators.list(include_inactive=True)] == [7, 8]


async def test_operator_list_hides_inactive_entries_oldest_first_when_not_asked_for_them(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.operators.add(b.operator(3, active=True, added_at=b.at(5)))
        await uow.operators.add(b.operator(1, active=True, added_at=b.at(1)))
        await uow.operators.add(b.operator(2, active=False, added_at=b.at(0)))
        await uow.commit()
    async with uow_factory() as uow:
        assert [o.telegram_id for o in await uow.operators.list()] == [1, 3]
        everyone = await uow.operators.list(include_inactive=True)
    assert [o.telegram_id for o in everyone] == [2, 1, 3]


async def test_assignments_round_trip_in_dispatch_order_and_refuse_a_duplicate_pair(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    ticket_id = (await add_ticket(uow_factory, b.ticket(citizen_id))).id or 0
    late = b.assignment(ticket_id, "DINKES", dispatched_at=b.at(9))
    early = b.assignment(ticket_id, "DAMKAR")
    assert b.unset_fields(early) == []
    async with uow_factory() as uow:
        await uow.assignments.add(late)
        stored = await uow.assignments.add(early)
        await uow.commit()
    assert stored == dataclasses.replace(early, id=stored.id)
    async with uow_factory() as uow:
        listed = await uow.assignments.for_ticket(ticket_id)
        assert [a.agency_code for a in listed] == ["DAMKAR", "DINKES"]
        assert listed[0] == stored
        with pytest.raises(ValueError, match="unique"):
            await uow.assignments.add(b.assignment(ticket_id, "DAMKAR"))
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match="foreign key"):
            await uow.assignments.add(b.assignment(999_999))


async def test_assignment_update_persists_progress_when_the_agency_moves(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    ticket_id = (await add_ticket(uow_factory, b.ticket(citizen_id))).id or 0
    bare = b.assignment(
        ticket_id, acknowledged_at=None, en_route_at=None, eta_minutes=None, on_scene_at=None,
        completed_at=None, channel=AssignmentChannel.PHONE,
    )  # fmt: skip
    async with uow_factory() as uow:
        stored = await uow.assignments.add(bare)
        await uow.commit()
    moved = dataclasses.replace(stored, en_route_at=b.at(6), eta_minutes=8)
    async with uow_factory() as uow:
        await uow.assignments.update(moved)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.assignments.for_ticket(ticket_id) == [moved]
        with pytest.raises(LookupError):
            await uow.assignments.update(b.assignment(ticket_id, id=999_999))


async def test_assignment_is_found_by_ticket_and_agency_when_asked(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    ticket_id = (await add_ticket(uow_factory, b.ticket(citizen_id))).id or 0
    async with uow_factory() as uow:
        stored = await uow.assignments.add(b.assignment(ticket_id, "BPBD"))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.assignments.get(ticket_id, "BPBD") == stored
        assert await uow.assignments.get(ticket_id, "DAMKAR") is None


def _owed(ticket_id: int, code: str, due: float, **changes: object) -> Assignment:
    fields: dict[str, object] = {
        "acknowledged_at": None, "en_route_at": None, "on_scene_at": None,
        "completed_at": None, "declined_at": None, "decline_reason": None,
        "ack_due_at": b.at(due), "ack_reminded_at": None, "ack_escalated_at": None,
    }  # fmt: skip
    return b.assignment(ticket_id, code, **(fields | changes))


async def test_ack_overdue_lists_only_unacknowledged_open_unescalated_past_deadline(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    ticket_id = (await add_ticket(uow_factory, b.ticket(citizen_id))).id or 0
    async with uow_factory() as uow:
        for assignment in (
            _owed(ticket_id, "LATE", 8),
            _owed(ticket_id, "EARLY", 5),
            _owed(ticket_id, "FUTURE", 30),
            _owed(ticket_id, "ACKED", 5, acknowledged_at=b.at(6)),
            _owed(ticket_id, "DONE", 5, completed_at=b.at(6)),
            _owed(ticket_id, "DECLINED", 5, declined_at=b.at(6)),
            _owed(ticket_id, "ESCALATED", 5, ack_escalated_at=b.at(7)),
            _owed(ticket_id, "REMINDED", 5, ack_reminded_at=b.at(7)),
            _owed(ticket_id, "NODEADLINE", 5, ack_due_at=None),
        ):
            await uow.assignments.add(assignment)
        await uow.commit()
    async with uow_factory() as uow:
        overdue = await uow.assignments.ack_overdue(b.at(10))
    assert [a.agency_code for a in overdue] == ["EARLY", "REMINDED", "LATE"]


async def test_assignment_marker_is_set_once_when_two_units_of_work_mark_it(
    uow_factory: UnitOfWorkFactory,
) -> None:
    citizen_id = await add_citizen(uow_factory)
    ticket_id = (await add_ticket(uow_factory, b.ticket(citizen_id))).id or 0
    async with uow_factory() as uow:
        stored = await uow.assignments.add(_owed(ticket_id, "BPBD", 5))
        acked = await uow.assignments.add(_owed(ticket_id, "PLN", 5, acknowledged_at=b.at(6)))
        await uow.commit()
    assert stored.id is not None
    assert acked.id is not None
    async with uow_factory() as uow:
        assert await uow.assignments.mark(stored.id, "ack_reminded_at", b.at(11))
        assert not await uow.assignments.mark(acked.id, "ack_reminded_at", b.at(11))
        await uow.commit()
    async with uow_factory() as uow:
        assert not await uow.assignments.mark(stored.id, "ack_reminded_at", b.at(12))
        with pytest.raises(ValueError, match="marker"):
            await uow.assignments.mark(stored.id, "completed_at", b.at(12))
        found = await uow.assignments.get(ticket_id, "BPBD")
    assert found is not None
    assert found.ack_reminded_at == b.at(11)


async def test_agency_request_key_is_refused_the_second_time_and_forgotten_when_old(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        assert await uow.agency_requests.remember("BPBD", "key-1", b.at(0))
        assert await uow.agency_requests.remember("PLN", "key-1", b.at(0))  # per agency
        await uow.commit()
    async with uow_factory() as uow:
        assert not await uow.agency_requests.remember("BPBD", "key-1", b.at(1))
        assert await uow.agency_requests.remember("BPBD", "key-2", b.at(5))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.agency_requests.forget_before(b.at(3)) == 2
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.agency_requests.remember("BPBD", "key-1", b.at(6))
        assert not await uow.agency_requests.remember("BPBD", "key-2", b.at(6))


async def test_audit_entries_come_back_newest_first_when_limited(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second, third = b.audit(1), b.audit(3, kind="operator_removed"), b.audit(2, note=None)
    assert b.unset_fields(first) == []
    async with uow_factory() as uow:
        for entry in (first, second, third):
            await uow.audit.add(entry)
        await uow.commit()
    async with uow_factory() as uow:
        recent = await uow.audit.recent(2)
    assert [dataclasses.replace(e, id=None) for e in recent] == [second, third]
    assert all(e.id is not None for e in recent)


async def test_outbox_owed_of_kind_lists_only_unsent_rows_of_that_kind_oldest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.outbox.add(b.outbox(kind="queue_board", payload={"n": 1}))
        await uow.outbox.add(b.outbox(kind="operator_card", payload={"n": 2}))
        await uow.outbox.add(b.outbox(kind="queue_board", payload={"n": 3}, sent_at=b.at(1)))
        await uow.outbox.add(b.outbox(kind="queue_board", payload={"n": 4}))
        await uow.commit()
    async with uow_factory() as uow:
        owed = await uow.outbox.owed_of_kind("queue_board")
    assert [m.payload["n"] for m in owed] == [1, 4]


def _board(chat: int, **changes: Any) -> OutboxMessage:
    """A queue board row as ``request_board`` queues it (never attempted, keyed by chat)."""
    fields: dict[str, Any] = {
        "kind": "queue_board", "payload": {"chat_id": chat}, "attempts": 0, "last_error": None,
        "rank": 0, "dedup_key": f"queue_board:{chat}", **changes,
    }  # fmt: skip
    return b.outbox(**fields)


async def _boards(uow_factory: UnitOfWorkFactory) -> list[OutboxMessage]:
    async with uow_factory() as uow:
        return await uow.outbox.owed_of_kind("queue_board")


async def test_outbox_put_unless_waiting_writes_only_while_no_row_of_its_key_waits(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.outbox.put_unless_waiting(_board(1))
        await uow.commit()
    [written] = await _boards(uow_factory)
    assert dataclasses.replace(written, id=None) == _board(1)  # every field as given
    async with uow_factory() as uow:
        await uow.outbox.put_unless_waiting(_board(1, payload={"chat_id": 1, "again": True}))
        await uow.outbox.put_unless_waiting(_board(2))  # another key: another chat's board
        await uow.outbox.put_unless_waiting(_board(1, rank=1))  # another rank
        await uow.commit()
    boards = await _boards(uow_factory)
    assert [(m.dedup_key, m.rank, m.payload) for m in boards] == [
        ("queue_board:1", 0, {"chat_id": 1}),  # the waiting one, unchanged
        ("queue_board:2", 0, {"chat_id": 2}),
        ("queue_board:1", 1, {"chat_id": 1}),
    ]


async def test_outbox_put_unless_waiting_writes_when_its_keys_rows_were_tried_sent_or_failed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        await uow.outbox.add(_board(1, attempts=1, payload={"n": "in flight"}))
        await uow.outbox.add(_board(1, sent_at=b.at(1), payload={"n": "sent"}))
        await uow.outbox.add(_board(1, failed_at=b.at(1), payload={"n": "failed"}))
        await uow.commit()
    async with uow_factory() as uow:
        await uow.outbox.put_unless_waiting(_board(1, payload={"n": "new"}))
        await uow.commit()
    assert [m.payload["n"] for m in await _boards(uow_factory)] == ["in flight", "new"]


async def test_outbox_put_unless_waiting_twice_in_one_unit_of_work_leaves_one_row(
    uow_factory: UnitOfWorkFactory,
) -> None:
    draft = await add_draft(uow_factory, 7_000_000_077)
    async with uow_factory() as uow:
        await uow.outbox.put_unless_waiting(_board(1, payload={"n": 1}))
        await uow.outbox.put(b.outbox(draft.id, attempts=0))  # a card between the two
        await uow.outbox.put_unless_waiting(_board(1, payload={"n": 2}))
        await uow.tickets.update(dataclasses.replace(draft, details="asap"))  # carries them
        await uow.commit()
    assert [m.payload["n"] for m in await _boards(uow_factory)] == [1]
    async with uow_factory() as uow:
        assert [m.kind for m in await uow.outbox.owed(10)] == ["queue_board", "operator_card"]


async def test_outbox_put_unless_waiting_needs_a_key(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        with pytest.raises(ValueError, match="dedup_key"):
            await uow.outbox.put_unless_waiting(_board(1, dedup_key=None))


async def test_outbox_last_sent_of_kind_is_the_newest_sent_row_when_several_were_sent(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        assert await uow.outbox.last_sent_of_kind("queue_board") is None
        await uow.outbox.add(b.outbox(kind="queue_board", payload={"n": 1}, sent_at=b.at(2)))
        await uow.outbox.add(b.outbox(kind="queue_board", payload={"n": 2}, sent_at=b.at(5)))
        await uow.outbox.add(b.outbox(kind="operator_card", payload={"n": 3}, sent_at=b.at(9)))
        await uow.outbox.add(b.outbox(kind="queue_board", payload={"n": 4}))
        await uow.commit()
    async with uow_factory() as uow:
        last = await uow.outbox.last_sent_of_kind("queue_board")
    assert last is not None
    assert last.payload["n"] == 2
