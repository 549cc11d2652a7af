"""Retention, access and erasure of personal data (UU PDP), on the in-memory store."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bot.commands import privacy_service
from bot.config import load_settings
from bot.domain.model import (
    Citizen,
    Direction,
    Disposition,
    IntakeStep,
    Location,
    LocationSource,
    Media,
    MediaKind,
    OutboxMessage,
    RelayMessage,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from bot.domain.stats import Stats, compute
from bot.services.console import ConsolePolicy, ConsoleService, ConsoleStatus
from bot.services.intake import Actor
from bot.services.privacy import EraseStatus, PrivacyService, RetentionPolicy
from bot.services.stats import ExportService, StatsService
from handlers.jobs import purge_personal_data
from tests.fakes.memory_uow import InMemoryTicketRepository, InMemoryUnitOfWorkFactory
from tests.unit.console_support import (
    DEWI,
    OPERATORS_CHAT,
    PLEBURAN,
    T0,
    Clock,
    Geocoder,
    add_staff,
    add_ticket,
    deliver_all,
    ticket_of,
)

DAY = timedelta(days=1)
SITI = 5001
NAME, PHONE = "Siti Rahayu", "+6281234567890"
CENTROID = (-6.9871, 110.4302)
CENTROIDS = {PLEBURAN.kelurahan_code: CENTROID, PLEBURAN.kecamatan_code: (-6.99, 110.43)}
S = TicketStatus


class Admins:
    async def is_admin(self, telegram_id: int) -> bool:
        return True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def uow_factory(clock: Clock) -> InMemoryUnitOfWorkFactory:
    factory = InMemoryUnitOfWorkFactory()
    factory.store.clock = clock
    await add_staff(factory, DEWI)
    return factory


@pytest.fixture
def privacy(uow_factory: InMemoryUnitOfWorkFactory, clock: Clock) -> PrivacyService:
    return PrivacyService(uow_factory, clock, RetentionPolicy(365 * DAY, 30 * DAY), CENTROIDS)


@pytest.fixture
def console(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService
) -> ConsoleService:
    return ConsoleService(
        uow_factory, Geocoder(), clock, ConsolePolicy({}, OPERATORS_CHAT),
        on_closed=privacy.ticket_closed,
    )  # fmt: skip


def actor(telegram_id: int = SITI, language: str | None = "id") -> Actor:
    return Actor(telegram_id=telegram_id, chat_id=telegram_id, language_code=language)


async def personal_ticket(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, **changes: object
) -> Ticket:
    """A ticket of Siti's with every kind of personal data: caller, details, media, exact
    place, a relayed message each way, an operator's note and a sent relay row."""
    ticket = await add_ticket(
        uow_factory, telegram_id=SITI, at=clock.now(), caller_name=NAME,
        caller_phone_e164=PHONE, caller_phone_verified=True,
        details="rumah biru dekat masjid, ibu saya pingsan", location_note="gang sempit",
        media=[Media(MediaKind.PHOTO, "AgAC-photo-file", "dapur")],
        incident_location=Location(
            -6.99123, 110.42456, LocationSource.GPS, clock.now(), accuracy_m=8.0,
            address_text="Jl. Pleburan VIII no. 3", area=PLEBURAN,
        ),
        **changes,
    )  # fmt: skip
    ticket_id = ticket.id or 0
    async with uow_factory() as uow:
        citizen = await uow.citizens.get(ticket.citizen_id)
        assert citizen is not None
        citizen.name, citizen.phone_e164, citizen.phone_verified = NAME, PHONE, True
        citizen.subscribed, citizen.subscribed_at = True, clock.now()
        await uow.citizens.update(citizen)
        for direction, text in ((Direction.FROM_CITIZEN, "tolong cepat, 0812 555"),
                                (Direction.TO_CITIZEN, "Bu Siti, ambulans berangkat")):  # fmt: skip
            await uow.messages.add(
                RelayMessage(ticket_id, direction, clock.now(), "text", text=text,
                             telegram_chat_id=SITI, telegram_message_id=9)
            )  # fmt: skip
        await uow.events.add(
            TicketEvent(ticket_id, clock.now(), "operator:1001", "note", note="caller Siti")
        )
        await uow.outbox.add(
            OutboxMessage(
                "operator_relay", {"ticket_id": ticket_id, "from_chat_id": SITI, "text": "x"},
                clock.now(), clock.now(), ticket_id=ticket_id,
            )
        )  # fmt: skip
        await uow.commit()
    await deliver_all(uow_factory, clock.now())
    return ticket


def personal_values(uow_factory: InMemoryUnitOfWorkFactory) -> str:
    """Every stored row as text: a name or phone anywhere in the store shows here."""
    store = uow_factory.store
    tables = (store.citizens, store.tickets, store.events, store.messages, store.outbox)
    return repr([list(table.values()) for table in tables])


async def resolve(console: ConsoleService, ticket_id: int) -> None:
    assert (await console.claim(DEWI, ticket_id)).ok
    assert (await console.resolve(DEWI, ticket_id, Disposition.EMERGENCY)).ok


# -- retention ---------------------------------------------------------------------------


async def test_closed_ticket_keeps_its_personal_data_when_the_retention_period_runs(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    ticket = await personal_ticket(uow_factory, clock)
    await resolve(console, ticket.id or 0)
    clock.advance(days=364)
    report = await privacy.purge()
    stored = await ticket_of(uow_factory, ticket.id or 0)
    assert report.total == 0
    assert (stored.caller_name, stored.caller_phone_e164, stored.anonymised_at) == (
        NAME, PHONE, None,
    )  # fmt: skip


async def test_closed_ticket_loses_its_personal_data_when_the_retention_period_passed(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    ticket = await personal_ticket(uow_factory, clock)
    await resolve(console, ticket.id or 0)
    before = await ticket_of(uow_factory, ticket.id or 0)
    clock.advance(days=366)
    report = await privacy.purge()
    after = await ticket_of(uow_factory, ticket.id or 0)
    assert (report.tickets, report.drafts, report.messages, report.notes) == (1, 0, 2, 1)
    assert after.anonymised_at == clock.now()
    assert (after.caller_name, after.caller_phone_e164, after.details, after.media) == (
        None, None, None, [],
    )  # fmt: skip
    assert (after.location_note, after.chat_id) == (None, 0)
    location = after.incident_location
    assert location is not None
    assert (location.lat, location.lon, location.address_text) == (*CENTROID, None)
    assert location.area == PLEBURAN
    # What the statistics need stays.
    kept = ("category", "priority", "disposition", "status", "submitted_at", "claimed_at",
            "resolved_at", "closed_at", "ref")  # fmt: skip
    assert {k: getattr(after, k) for k in kept} == {k: getattr(before, k) for k in kept}
    for personal in (NAME, PHONE, "0812 555", "Pleburan VIII", "AgAC-photo-file", str(SITI)):
        stored = repr([uow_factory.store.tickets, uow_factory.store.messages,
                       uow_factory.store.events, uow_factory.store.outbox])  # fmt: skip
        assert personal not in stored, personal


async def test_statistics_and_export_are_the_same_when_a_purge_anonymised_the_tickets(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    for _ in range(3):
        ticket = await personal_ticket(uow_factory, clock)
        await resolve(console, ticket.id or 0)
        clock.advance(minutes=7)
    stats = StatsService(uow_factory, clock, Admins())
    export = ExportService(stats, uow_factory, clock)
    clock.advance(days=366)

    async def statistics() -> Stats:
        period = await stats.period(T0 - DAY, clock.now())
        return compute(period.tickets, period.assignments, period.since, period.until)

    stats_before = await statistics()
    rows_before = await export.rows(T0 - DAY)
    assert (await privacy.purge()).tickets == 3
    stats_after = await statistics()
    rows_after = await export.rows(T0 - DAY)
    assert stats_after == stats_before
    assert stats_after.total == 3
    assert rows_after == rows_before
    assert {r["kecamatan"] for r in rows_after} == {PLEBURAN.kecamatan_name}
    personal = await export.rows(T0 - DAY, personal=True)
    assert {(r["caller_name"], r["caller_phone"]) for r in personal} == {("", "")}


async def test_drafts_are_anonymised_on_their_own_period_when_abandoned_or_cancelled(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    closed = await personal_ticket(uow_factory, clock)
    await resolve(console, closed.id or 0)
    abandoned = await add_ticket(
        uow_factory, telegram_id=5002, status=S.ABANDONED, submitted_at=None, ref=None,
        caller_name="Budi", details="banjir", closed_at=clock.now(), step=IntakeStep.DETAILS,
    )  # fmt: skip
    clock.advance(days=29)
    assert (await privacy.purge()).total == 0
    clock.advance(days=2)
    report = await privacy.purge()
    draft = await ticket_of(uow_factory, abandoned.id or 0)
    ticket = await ticket_of(uow_factory, closed.id or 0)
    assert (report.drafts, report.tickets) == (1, 0)
    assert (draft.caller_name, draft.details, draft.anonymised_at) == (None, None, clock.now())
    assert (ticket.caller_name, ticket.anonymised_at) == (NAME, None)


async def test_purge_finds_nothing_when_run_again(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    ticket = await personal_ticket(uow_factory, clock)
    await resolve(console, ticket.id or 0)
    clock.advance(days=400)
    first = await privacy.purge()
    snapshot = personal_values(uow_factory)
    second = await privacy.purge()
    assert first.total == 2  # the ticket and Siti's record (idle for a year)
    assert second.total == 0
    assert personal_values(uow_factory) == snapshot
    audit = [e for e in uow_factory.store.audit.values() if e.kind == "privacy_purge"]
    assert len(audit) == 1
    assert NAME not in repr(audit)


async def test_dry_run_counts_and_changes_nothing_when_asked(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    ticket = await personal_ticket(uow_factory, clock)
    await resolve(console, ticket.id or 0)
    clock.advance(days=400)
    snapshot = personal_values(uow_factory)
    dry = await privacy.purge(dry_run=True)
    assert (dry.tickets, dry.citizens, dry.dry_run) == (1, 1, True)
    assert personal_values(uow_factory) == snapshot
    assert (await privacy.purge()).tickets == 1


async def test_idle_citizen_loses_name_and_phone_but_keeps_a_subscription_when_purged(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
) -> None:  # fmt: skip
    async with uow_factory() as uow:
        subscribed = await uow.citizens.add(
            Citizen(6001, "id", name="Ani", phone_e164="+628111", subscribed=True,
                    subscribed_at=T0, created_at=T0, updated_at=T0)
        )  # fmt: skip
        gone = await uow.citizens.add(
            Citizen(6002, "en", name="Joko", phone_e164="+628222", created_at=T0, updated_at=T0)
        )
        await uow.commit()
    clock.advance(days=366)
    assert (await privacy.purge()).citizens == 2
    async with uow_factory() as uow:
        kept = await uow.citizens.get(subscribed.id or 0)
        erased = await uow.citizens.get(gone.id or 0)
    assert kept is not None
    assert erased is not None
    assert (kept.name, kept.phone_e164, kept.telegram_id, kept.subscribed) == (
        None, None, 6001, True,
    )  # fmt: skip
    assert (erased.name, erased.telegram_id, erased.erased_at) == (
        None,
        -(gone.id or 0),
        clock.now(),
    )


# -- the citizen's rights -----------------------------------------------------------------


async def test_my_data_lists_the_citizen_and_tickets_when_asked(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
) -> None:  # fmt: skip
    ticket = await personal_ticket(uow_factory, clock)
    data = await privacy.my_data(actor())
    assert data.citizen is not None
    assert (data.citizen.name, data.citizen.phone_e164, data.language) == (NAME, PHONE, "id")
    assert [h.ticket.id for h in data.tickets] == [ticket.id]
    assert [m.text for m in data.tickets[0].messages] == [
        "tolong cepat, 0812 555",
        "Bu Siti, ambulans berangkat",
    ]
    audit = [e for e in uow_factory.store.audit.values() if e.kind == "privacy_access"]
    assert [(e.subject, e.note) for e in audit] == [(f"citizen:{ticket.citizen_id}", "1 tickets")]


async def test_my_data_is_empty_and_registers_nobody_when_the_person_was_never_seen(
    uow_factory: InMemoryUnitOfWorkFactory, privacy: PrivacyService
) -> None:
    data = await privacy.my_data(actor(7777, "en"))
    assert (data.citizen, data.tickets, data.language) == (None, (), "en")
    assert uow_factory.store.citizens == {}
    assert [e.subject for e in uow_factory.store.audit.values()] == ["citizen:unknown"]


async def test_erasure_asks_first_and_changes_nothing_when_not_confirmed(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    closed = await personal_ticket(uow_factory, clock)
    await resolve(console, closed.id or 0)
    await add_ticket(uow_factory, telegram_id=SITI)
    snapshot = personal_values(uow_factory)
    asked = await privacy.erase(actor(), confirmed=False)
    assert (asked.status, asked.tickets, asked.subscribed) == (EraseStatus.CONFIRM, 1, True)
    assert len(asked.open_refs) == 1
    assert personal_values(uow_factory) == snapshot


async def test_erasure_without_open_tickets_erases_everything_when_confirmed(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    closed = await personal_ticket(uow_factory, clock)
    await resolve(console, closed.id or 0)
    async with uow_factory() as uow:  # a report being written goes too
        draft = await uow.tickets.add(
            Ticket(closed.citizen_id, SITI, S.DRAFT, clock.now(), clock.now(), details="lagi")
        )
        await uow.commit()
    done = await privacy.erase(actor(), confirmed=True)
    assert (done.status, done.tickets, done.open_refs) == (EraseStatus.DONE, 2, ())
    for personal in (NAME, PHONE, "0812 555", "rumah biru", "lagi", "AgAC-photo-file"):
        assert personal not in personal_values(uow_factory), personal
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(SITI) is None
        assert await uow.citizens.subscribers(None) == []
        cancelled = await uow.tickets.get(draft.id or 0)
    assert cancelled is not None
    assert cancelled.status is S.CANCELLED
    again = await privacy.erase(actor(), confirmed=True)
    assert again.status is EraseStatus.NOTHING
    notes = [e.note for e in uow_factory.store.audit.values() if e.kind == "privacy_erase"]
    assert notes == ["done: 2 tickets anonymised, 0 open kept", "nothing held"]


async def test_open_ticket_is_kept_until_its_close_when_the_citizen_asks_for_erasure(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    closed = await personal_ticket(uow_factory, clock)
    await resolve(console, closed.id or 0)
    still_open = await personal_ticket(uow_factory, clock)
    answer = await privacy.erase(actor(), confirmed=True)
    assert (answer.status, answer.open_refs) == (EraseStatus.PENDING, (still_open.ref,))
    assert (await ticket_of(uow_factory, closed.id or 0)).anonymised_at is not None
    kept = await ticket_of(uow_factory, still_open.id or 0)
    assert (kept.caller_name, kept.anonymised_at) == (NAME, None)
    async with uow_factory() as uow:
        citizen = await uow.citizens.get_by_telegram_id(SITI)  # still reachable by the relay
    assert citizen is not None
    assert (citizen.name, citizen.phone_e164, citizen.subscribed) == (None, None, False)
    assert citizen.erase_requested_at == clock.now()
    # Asked twice: the same answer, the request time stays.
    clock.advance(minutes=1)
    twice = await privacy.erase(actor(), confirmed=True)
    assert twice.status is EraseStatus.PENDING
    # The close anonymises the ticket at once and completes the erasure.
    await resolve(console, still_open.id or 0)
    after = await ticket_of(uow_factory, still_open.id or 0)
    assert (after.caller_name, after.details, after.anonymised_at) == (None, None, clock.now())
    assert after.chat_id == SITI  # kept a day for the «resolved» notice still owed
    async with uow_factory() as uow:
        assert await uow.citizens.get_by_telegram_id(SITI) is None
        erased = await uow.citizens.get(closed.citizen_id)
    assert erased is not None
    assert erased.erased_at == clock.now()
    kinds = [e.kind for e in uow_factory.store.audit.values()]
    assert kinds.count("privacy_erase_completed") == 1
    # A day later the purge drops the chat id too.
    clock.advance(days=2)
    assert (await privacy.purge()).chats == 1
    assert (await ticket_of(uow_factory, still_open.id or 0)).chat_id == 0
    assert str(SITI) not in repr(uow_factory.store.tickets)


async def test_operator_cannot_reopen_an_erased_ticket_when_it_was_anonymised(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService,
) -> None:  # fmt: skip
    ticket = await personal_ticket(uow_factory, clock)
    await resolve(console, ticket.id or 0)
    await privacy.erase(actor(), confirmed=True)
    refused = await console.reopen(DEWI, ticket.id or 0)
    archived = await console.close(DEWI, ticket.id or 0)
    assert refused.status is ConsoleStatus.NOT_FOUND
    assert archived.ok


async def test_audit_entries_hold_no_personal_data_when_every_request_was_made(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
) -> None:  # fmt: skip
    await personal_ticket(uow_factory, clock)
    await privacy.my_data(actor())
    await privacy.erase(actor(), confirmed=True)
    await privacy.erase(actor(8888), confirmed=True)
    entries = list(uow_factory.store.audit.values())
    assert [e.kind for e in entries] == ["privacy_access", "privacy_erase", "privacy_erase"]
    for personal in (NAME, PHONE, str(SITI), "8888"):
        assert personal not in repr(entries), personal


def test_retention_policy_is_the_settings_when_built_for_a_deployment() -> None:
    settings = load_settings({"RETENTION_DAYS": "90", "DRAFT_RETENTION_DAYS": "7"}, env_file=None)
    service = privacy_service(settings, InMemoryUnitOfWorkFactory(), Clock())
    assert service.policy == RetentionPolicy(90 * DAY, 7 * DAY)


async def test_purge_leaves_a_ticket_alone_when_it_was_written_after_the_purge_read_it(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    ticket = await personal_ticket(uow_factory, clock)
    await resolve(console, ticket.id or 0)
    clock.advance(days=366)
    read = InMemoryTicketRepository.due_for_anonymisation

    async def overtaken(self: InMemoryTicketRepository, *args: Any) -> list[Ticket]:
        # As if an operator wrote each ticket right after the purge read it.
        return [dataclasses.replace(t, version=t.version - 1) for t in await read(self, *args)]

    monkeypatch.setattr(InMemoryTicketRepository, "due_for_anonymisation", overtaken)
    raced = await privacy.purge()
    assert (raced.tickets, raced.messages) == (0, 0)
    assert (await ticket_of(uow_factory, ticket.id or 0)).anonymised_at is None
    monkeypatch.undo()
    assert (await privacy.purge()).tickets == 1  # the next run decides again


async def test_erasure_starts_again_when_a_ticket_was_written_meanwhile(
    uow_factory: InMemoryUnitOfWorkFactory, clock: Clock, privacy: PrivacyService,
    console: ConsoleService, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    ticket = await personal_ticket(uow_factory, clock)
    await resolve(console, ticket.id or 0)
    read = InMemoryTicketRepository.of_citizen
    calls: list[int] = []

    async def first_overtaken(self: InMemoryTicketRepository, citizen_id: int) -> list[Ticket]:
        calls.append(citizen_id)
        found = await read(self, citizen_id)
        if len(calls) == 1:
            return [dataclasses.replace(t, version=t.version - 1) for t in found]
        return found

    monkeypatch.setattr(InMemoryTicketRepository, "of_citizen", first_overtaken)
    done = await privacy.erase(actor(), confirmed=True)
    assert done.status is EraseStatus.DONE
    assert len(calls) == 2
    assert NAME not in personal_values(uow_factory)


async def test_purge_job_logs_the_error_class_only_when_the_database_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing:
        async def purge(self) -> None:
            raise ConnectionError("db down at host with +6281234567890")

    context = SimpleNamespace(services=SimpleNamespace(privacy=Failing()))
    caplog.set_level(logging.INFO)
    await purge_personal_data(context)  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == ["privacy purge failed: ConnectionError"]
