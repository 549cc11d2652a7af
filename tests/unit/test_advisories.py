"""Advisories: subscriptions, targeting on the real city polygons, the durable delivery job
(one copy per subscriber, blocked citizens, final report, cancel, kill and resume, pacing)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.domain.advisory import AdvisoryStatus, Progress, Target, TargetKind
from bot.services.advisories import InvalidInput, NotAllowed
from bot.services.citizens import Actor
from bot.services.governor import Limits, RateGovernor
from bot.services.governor import Target as Chat
from bot.services.outbox_kinds import ADVISORY, ADVISORY_PROGRESS, Priority
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.fakes.virtual_time import VirtualTime
from tests.unit.advisory_support import (
    ADMIN,
    BENDUNGAN,
    GAJAHMUNGKUR,
    LEASE_PAST,
    PLEBURAN,
    SEMARANG_SELATAN,
    SEMARANG_TENGAH,
    TUGU,
    Bot,
    add_report,
    add_subscriber,
    drain,
    world,
)
from tests.unit.console_support import rows

CITIZEN = 5001


def actor(telegram_id: int = CITIZEN) -> Actor:
    return Actor(telegram_id=telegram_id, chat_id=telegram_id, language_code="id")


async def compose(w: object, target: Target, text: str = "Waspada banjir rob malam ini.") -> int:
    service = w.advisories  # type: ignore[attr-defined]
    draft = await service.start(ADMIN)
    await service.set_content(ADMIN, draft.id, text)
    await service.set_target(ADMIN, draft.id, target)
    return int(draft.id)


# -- subscriptions --------------------------------------------------------------------------------


async def test_citizen_starts_unsubscribed_and_is_offered_their_reports_kecamatan_when_asking() -> (
    None
):
    w = world()
    await add_subscriber(w.uow_factory, CITIZEN, subscribed=False)
    await add_report(w.uow_factory, CITIZEN, *BENDUNGAN)

    view = await w.subscriptions.show(actor())

    assert not view.citizen.subscribed
    assert (view.offered_code, view.offered_name) == (GAJAHMUNGKUR, "Gajahmungkur")
    assert "m|sub|kec|33.74.09" in str(w.views.subscription(view).replies[0])


async def test_consent_time_is_stored_when_a_citizen_subscribes_to_a_kecamatan() -> None:
    w = world()
    w.clock.advance(minutes=5)

    view = await w.subscriptions.subscribe(actor(), GAJAHMUNGKUR)

    assert view.citizen.subscribed
    assert view.citizen.subscription_kecamatan_code == GAJAHMUNGKUR
    assert view.citizen.subscribed_at == w.clock.now()
    assert view.kecamatan_name == "Gajahmungkur"


async def test_consent_is_cleared_when_the_citizen_unsubscribes() -> None:
    w = world()
    await w.subscriptions.subscribe(actor(), None)

    view = await w.subscriptions.unsubscribe(actor())

    assert not view.citizen.subscribed
    assert view.citizen.subscribed_at is None
    async with w.uow_factory() as uow:
        assert await uow.citizens.subscribers(None) == []


async def test_nothing_changes_when_a_forged_kecamatan_button_is_pressed() -> None:
    w = world()
    view = await w.subscriptions.subscribe(actor(), "99.99.99")
    assert not view.citizen.subscribed


async def test_blocked_citizen_is_skipped_and_starts_unsubscribed_when_they_unblock() -> None:
    w = world()
    await w.subscriptions.subscribe(actor(), None)

    await w.subscriptions.mark_blocked(CITIZEN)
    async with w.uow_factory() as uow:
        assert await uow.citizens.subscribers(None) == []
    back = await w.subscriptions.show(actor())  # they write again: unblocked

    assert not back.citizen.blocked_bot
    assert not back.citizen.subscribed


# -- targeting ------------------------------------------------------------------------------------


async def subscribers_by_area(uow_factory: InMemoryUnitOfWorkFactory) -> dict[str, int]:
    return {
        "city": await add_subscriber(uow_factory, 1, None),
        "gajahmungkur": await add_subscriber(uow_factory, 2, GAJAHMUNGKUR),
        "selatan": await add_subscriber(uow_factory, 3, SEMARANG_SELATAN),
        "tugu": await add_subscriber(uow_factory, 4, TUGU),
        "tengah": await add_subscriber(uow_factory, 7, SEMARANG_TENGAH),
        "unsubscribed": await add_subscriber(uow_factory, 5, None, subscribed=False),
        "blocked": await add_subscriber(uow_factory, 6, None, blocked=True),
    }


def names(ids: dict[str, int], recipients: list[object]) -> set[str]:
    by_id = {v: k for k, v in ids.items()}
    return {by_id[r.citizen_id] for r in recipients}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (Target(TargetKind.ALL), {"city", "gajahmungkur", "selatan", "tugu", "tengah"}),
        (Target(TargetKind.KECAMATAN, (TUGU,)), {"city", "tugu"}),
        (Target(TargetKind.KECAMATAN, (TUGU, SEMARANG_SELATAN)), {"city", "tugu", "selatan"}),
        (Target(TargetKind.KELURAHAN, (PLEBURAN,)), {"city", "selatan"}),
        # Bendungan is 427.5 m from Semarang Selatan's ground: 400 m stays in Gajahmungkur.
        (Target(TargetKind.RADIUS, (), *BENDUNGAN, 400.0), {"city", "gajahmungkur"}),
        (Target(TargetKind.RADIUS, (), *BENDUNGAN, 450.0), {"city", "gajahmungkur", "selatan"}),
        # Simpang Lima lies 78.5 m from Semarang Tengah: 100 m already reaches it.
        (Target(TargetKind.RADIUS, (), -6.9903, 110.4229, 100.0), {"city", "selatan", "tengah"}),
        # In the Java Sea, 5 km off the coast: nobody, not even the city-wide subscribers.
        (Target(TargetKind.RADIUS, (), -6.85, 110.42, 2000.0), set()),
    ],
)
async def test_recipients_follow_the_target_when_it_covers_kecamatan_edges(
    target: Target, expected: set[str]
) -> None:
    w = world()
    ids = await subscribers_by_area(w.uow_factory)

    found = names(ids, await w.advisories.recipients(w.advisories.checked_target(target)))

    assert found == expected


async def test_preview_counts_city_wide_and_area_subscribers_when_a_target_is_set() -> None:
    w = world()
    await subscribers_by_area(w.uow_factory)
    draft = await w.advisories.start(ADMIN)
    await w.advisories.set_content(ADMIN, draft.id or 0, "Jalan Kaligawe ditutup.")

    preview = await w.advisories.set_target(
        ADMIN, draft.id or 0, Target(TargetKind.KECAMATAN, (TUGU,))
    )

    assert (preview.audience.total, preview.audience.city_wide, preview.audience.by_area) == (
        2, 1, 1
    )  # fmt: skip
    assert w.uow_factory.store.outbox == {}  # nothing is sent before the confirm


async def test_non_admin_is_refused_when_composing() -> None:
    w = world()
    with pytest.raises(NotAllowed):
        await w.advisories.start(CITIZEN)


@pytest.mark.parametrize(
    ("text", "photo", "reason"),
    [
        ("  ", None, "empty"),
        ("x" * 3501, None, "text_too_long"),
        ("x" * 801, "f", "caption_too_long"),
    ],
)
async def test_content_is_refused_when_it_would_not_fit_telegrams_limits(
    text: str, photo: str | None, reason: str
) -> None:
    w = world()
    draft = await w.advisories.start(ADMIN)
    with pytest.raises(InvalidInput) as refused:
        await w.advisories.set_content(ADMIN, draft.id or 0, text, photo)
    assert refused.value.reason == reason


async def test_radius_is_refused_when_outside_the_allowed_range() -> None:
    w = world()
    draft = await w.advisories.start(ADMIN)
    with pytest.raises(InvalidInput):
        await w.advisories.set_target(
            ADMIN, draft.id or 0, Target(TargetKind.RADIUS, (), *BENDUNGAN, 50_000.0)
        )


# -- the delivery job -----------------------------------------------------------------------------


async def test_each_subscriber_gets_one_copy_and_the_admin_a_report_when_the_job_runs() -> None:
    w = world()
    for n in range(1, 31):
        await add_subscriber(w.uow_factory, 10_000 + n, None)
    blocked = 10_030
    advisory_id = await compose(w, Target(TargetKind.ALL))
    bot = Bot()
    bot.blocked.add(blocked)

    advisory = await w.advisories.confirm(ADMIN, advisory_id, ADMIN)
    copies = rows(w.uow_factory, ADVISORY)
    await drain(w.worker(bot, batch=7), w.clock, w.uow_factory)
    assert await w.advisories.tick() == 1  # finished: the final report is queued
    await drain(w.worker(bot), w.clock, w.uow_factory)

    assert advisory.recipients == 30
    assert {m.lane for m in copies} == {"broadcast"}
    assert all(bot.copies_to(10_000 + n) == 1 for n in range(1, 30))
    assert bot.copies_to(blocked) == 0
    found = await w.advisories.progress(advisory_id)
    assert found is not None
    assert found[0].status is AdvisoryStatus.DONE
    assert found[1] == Progress(recipients=30, sent=29, blocked=1)
    async with w.uow_factory() as uow:
        gone = await uow.citizens.get_by_telegram_id(blocked)
    assert gone is not None
    assert gone.blocked_bot
    assert not gone.subscribed
    reports = [text for chat, text in bot.sent if chat == ADMIN]
    assert "selesai" in reports[-1]
    assert "terkirim 29 · diblokir 1 · gagal 0" in reports[-1]


async def test_confirm_is_refused_when_the_advisory_is_already_being_sent() -> None:
    w = world()
    await add_subscriber(w.uow_factory, 10_001, None)
    advisory_id = await compose(w, Target(TargetKind.ALL))
    await w.advisories.confirm(ADMIN, advisory_id, ADMIN)

    with pytest.raises(InvalidInput):
        await w.advisories.confirm(ADMIN, advisory_id, ADMIN)
    assert len(rows(w.uow_factory, ADVISORY)) == 1


async def test_progress_message_is_posted_then_edited_when_copies_go_out() -> None:
    w = world()
    for n in range(1, 6):
        await add_subscriber(w.uow_factory, 10_000 + n, None)
    advisory_id = await compose(w, Target(TargetKind.ALL))
    await w.advisories.confirm(ADMIN, advisory_id, ADMIN)
    bot = Bot()
    worker = w.worker(bot, batch=3)

    await worker.run_once()  # the progress message first, then 2 copies
    await w.advisories.tick()
    await worker.run_once()

    assert [chat for chat, _ in bot.sent].count(ADMIN) == 1
    assert bot.edits
    assert "2/5" in bot.edits[-1][2] or "3/5" in bot.edits[-1][2]


class Dying:
    """A unit-of-work factory whose database goes away at the kill (like ``kill -9``)."""

    def __init__(self, inner: InMemoryUnitOfWorkFactory) -> None:
        self.inner = inner
        self.dead = False

    def __call__(self) -> object:
        if self.dead:
            raise ConnectionError("process killed")
        return self.inner()


async def test_each_copy_goes_once_when_a_worker_is_killed_mid_broadcast_and_another_resumes() -> (
    None
):
    w = world()
    chats = [20_000 + n for n in range(100)]
    for chat in chats:
        await add_subscriber(w.uow_factory, chat, None)
    advisory_id = await compose(w, Target(TargetKind.ALL))
    await w.advisories.confirm(ADMIN, advisory_id, ADMIN)
    first_bot = Bot()
    dying = Dying(w.uow_factory)
    first = w.worker(first_bot, batch=25)
    first._uow_factory = dying  # type: ignore[assignment]
    await first.run_once()  # progress + 24 copies out and recorded
    first_bot.gate = asyncio.Event()  # the next calls wait for the governor …
    running = asyncio.create_task(first.run_once())
    await asyncio.sleep(0.01)
    dying.dead = True  # … when the process dies: its leases stay behind
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
        await running
    sent_before = len(first_bot.sent)

    w.clock.current += LEASE_PAST  # the dead worker's leases end
    second_bot = Bot()
    await drain(w.worker(second_bot, batch=25), w.clock, w.uow_factory)

    assert sent_before == 25  # the progress message and 24 copies
    delivered = [chat for chat, text in first_bot.sent + second_bot.sent if chat != ADMIN]
    assert sorted(delivered) == chats  # no loss, no duplicate
    found = await w.advisories.progress(advisory_id)
    assert found is not None
    assert found[1] == Progress(recipients=100, sent=100)


async def test_copies_not_yet_sent_are_stopped_when_an_admin_cancels() -> None:
    w = world()
    for n in range(40):
        await add_subscriber(w.uow_factory, 30_000 + n, None)
    advisory_id = await compose(w, Target(TargetKind.ALL))
    await w.advisories.confirm(ADMIN, advisory_id, ADMIN)
    bot = Bot()
    worker = w.worker(bot, batch=11)
    await worker.run_once()  # progress + 10 copies

    cancelled = await w.advisories.cancel(ADMIN)
    await drain(worker, w.clock, w.uow_factory)

    assert cancelled is not None
    assert cancelled.status is AdvisoryStatus.CANCELLED
    found = await w.advisories.progress(advisory_id)
    assert found is not None
    assert found[1] == Progress(recipients=40, sent=10, cancelled=30)
    assert sum(1 for chat, _ in bot.sent if chat != ADMIN) == 10
    assert "dibatalkan" in bot.sent[-1][1]
    assert await w.advisories.cancel(ADMIN) is None


async def test_copies_are_paced_and_intake_is_not_delayed_when_a_broadcast_runs() -> None:
    w = world()
    chats = [40_000 + n for n in range(60)]
    for chat in chats:
        await add_subscriber(w.uow_factory, chat, None)
    advisory_id = await compose(w, Target(TargetKind.ALL))
    await w.advisories.confirm(ADMIN, advisory_id, ADMIN)
    time = VirtualTime()
    governor = RateGovernor(
        Limits(broadcast_per_second=20), monotonic=time.monotonic, sleep=time.sleep
    )
    bot = Bot(governor)
    worker = w.worker(bot, batch=100, parallel=100)
    reply_waits: list[float] = []

    async def citizen_replies() -> None:
        for n in range(5):  # five citizens in the middle of a report
            await time.sleep(0.45)
            asked = time.now
            call = await governor.acquire(Priority.CITIZEN_REPLY, Chat.private(CITIZEN + n))
            reply_waits.append(time.now - asked)
            governor.release(call)

    async def broadcast() -> None:
        while True:
            await worker.run_once()
            async with w.uow_factory() as uow:
                if not await uow.outbox.owed(1):
                    return

    await time.run(broadcast(), citizen_replies())

    copy_times = [at for at, chat in bot.granted if chat != ADMIN]
    assert len(copy_times) == 60
    for start in copy_times:  # never more than the cap in any second
        assert sum(1 for t in copy_times if start <= t < start + 1.0) <= 20
    assert max(copy_times) >= 2.0  # 60 copies at 20/s take their three seconds
    assert reply_waits == [0.0] * 5  # a citizen's reply never waits behind the broadcast


async def test_copies_are_sent_as_paid_broadcasts_when_paid_broadcasting_is_on() -> None:
    w = world(paid=True)
    await add_subscriber(w.uow_factory, 10_001, None, language="en")
    advisory_id = await compose(w, Target(TargetKind.ALL))
    await w.advisories.confirm(ADMIN, advisory_id, ADMIN)
    bot = Bot()

    await drain(w.worker(bot), w.clock, w.uow_factory)

    copy = [(text, paid) for (chat, text), paid in zip(bot.sent, bot.paid, strict=True)
            if chat == 10_001]  # fmt: skip
    assert copy == [(copy[0][0], True)]
    assert "Advisory from Call Center 112" in copy[0][0]  # in the citizen's language
    assert rows(w.uow_factory, ADVISORY_PROGRESS)


async def test_photo_advisory_goes_as_a_photo_with_the_caption_when_composed_with_one() -> None:
    w = world()
    await add_subscriber(w.uow_factory, 10_001, None)
    draft = await w.advisories.start(ADMIN)
    await w.advisories.set_content(ADMIN, draft.id or 0, "Genangan di Jl. Kaligawe.", "photo-7")
    await w.advisories.set_target(ADMIN, draft.id or 0, Target(TargetKind.ALL))
    await w.advisories.confirm(ADMIN, draft.id or 0, ADMIN)
    bot = Bot()

    await drain(w.worker(bot), w.clock, w.uow_factory)

    (copy,) = [text for chat, text in bot.sent if chat == 10_001]
    assert copy.startswith("[photo photo-7]")
    assert "Genangan di Jl. Kaligawe." in copy
