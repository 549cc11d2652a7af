"""The citizen's data rights and the logs, end to end through the fake Bot API.

The privacy notice behind the welcome's button, /datasaya (/mydata) and /hapusdata
(/deletemydata) in both languages, erasure with a ticket still open, and a scan of every log
record of a whole report for the citizen's phone number and name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import PURGE_FIRST
from bot.cli import NOISY_LOGGERS
from bot.domain.model import Citizen, Ticket, TicketStatus
from bot.double.botapi_model import StoredMessage
from handlers.context import SERVICES_KEY
from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory
from tests.flow import test_console as console_flow
from tests.flow.conftest import OPERATOR_CHAT, Harness
from tests.flow.steps import full_gps_report, tap, wait_button
from tests.flow.test_console import Console, Ticketed, _resolve

PHONE = "6281377770001"
# The console's fixtures (a bot with an operator roster), found by pytest under these names.
make_console = console_flow.make_console
console = console_flow.console


def _has(text: str) -> Callable[[StoredMessage], bool]:
    return lambda m: text in (m.text or "")


async def ticket(h: Harness, ref: str) -> Any:
    async with h.app.bot_data[SERVICES_KEY].intake._uow_factory() as uow:
        return await uow.tickets.get_by_ref(ref)


async def test_privacy_button_of_the_welcome_shows_the_notice_when_tapped(
    harness: Harness,
) -> None:
    user = harness.telegram.add_user(language_code="id")
    await user.send_command("start")
    welcome, _ = await wait_button(user, "p|notice")
    assert len(welcome.text or "") <= 300
    notice = await tap(user, "p|notice")
    text = notice.text or ""
    assert "365 hari" in text
    assert "30 hari" in text
    assert "/hapusdata" in text
    assert "Pemerintah Kota Semarang" in text


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("id", ("datasaya", "hapusdata", "Data Anda telah dihapus", "tidak menyimpan data")),
        ("en", ("mydata", "deletemydata", "Your data have been deleted", "hold no data")),
    ],
)
async def test_citizen_sees_then_erases_their_data_when_asking_in_either_language(
    console: Console, language: str, words: tuple[str, str, str, str]
) -> None:
    see, delete, deleted, nothing = words
    citizen = console.telegram.add_user(
        language_code=language, first_name="Wulan", phone_number=PHONE
    )
    ref = await full_gps_report(citizen, details="kakek jatuh di kamar mandi")
    card = await console.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and bool(m.inline_buttons)
    )
    await _resolve_in(console, Ticketed(citizen, ref, card, card.thread_id), language)
    await citizen.send_command(see)
    data = await citizen.wait_reply(_has(ref))
    assert PHONE in (data.text or "")
    assert "kakek jatuh" in (data.text or "")
    await citizen.send_command(delete)
    question, _ = await wait_button(citizen, "yes")
    assert "p|erase|no" in str(question.inline_buttons)
    await tap(citizen, "yes")  # the question loses its buttons, then the answer comes
    answer = await citizen.wait_reply(_has(deleted))
    assert "112" in (answer.text or "")
    stored = await ticket(console.h, ref)
    assert (stored.caller_phone_e164, stored.details, stored.anonymised_at is not None) == (
        None, None, True,
    )  # fmt: skip
    await citizen.send_command(see)
    empty = await citizen.wait_reply()
    assert nothing in (empty.text or "")
    await citizen.send_command(delete)
    twice = await citizen.wait_reply()
    assert nothing in (twice.text or "")


async def _resolve_in(console: Console, t: Ticketed, language: str) -> None:
    if language == "id":
        await _resolve(console, t)
        return
    await console.press(console.dewi, t.button("claim"), t.card)
    await console.telegram.wait_for(lambda: "Dewi" in (t.card.text or ""))
    await console.press(console.dewi, t.button("resolve"), t.card)

    def datas() -> list[str]:
        return [str(b.get("callback_data", "")) for b in t.card.inline_buttons]

    await console.telegram.wait_for(lambda: any("|resolved|" in d for d in datas()))
    await console.press(console.dewi, next(d for d in datas() if d.endswith("|info")), t.card)
    await console.h.outbox_drained()


async def test_open_ticket_is_kept_and_erased_at_its_close_when_the_citizen_asks_erasure(
    console: Console,
) -> None:
    t = await console.report()
    await t.citizen.send_command("hapusdata")
    question, _ = await wait_button(t.citizen, "yes")
    assert t.ref in (question.text or "")
    answer = await tap(t.citizen, "yes")
    assert t.ref in (answer.text or "")
    assert "disimpan sampai ditutup" in (answer.text or "")
    kept = await ticket(console.h, t.ref)
    assert kept.caller_name is not None
    # Still reachable: the operators can finish the job and the citizen hears about it.
    await _resolve(console, t)
    after = await ticket(console.h, t.ref)
    assert after.status is TicketStatus.RESOLVED
    assert (after.caller_name, after.caller_phone_e164) == (None, None)
    assert after.anonymised_at is not None


async def test_nothing_is_held_or_created_when_a_stranger_asks_for_erasure(
    harness: Harness,
) -> None:
    stranger = harness.telegram.add_user(language_code="en")
    await stranger.send_command("deletemydata")
    answer = await stranger.wait_reply()
    assert "nothing to delete" in (answer.text or "")
    assert not answer.inline_buttons
    assert await harness.app.bot_data[SERVICES_KEY].queries.language_of(stranger.id) is None


async def test_logs_hold_no_phone_number_or_name_when_a_whole_report_is_handled(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    for name in NOISY_LOGGERS:  # as `siaga112 run` configures them (bot.cli.configure_logging)
        caplog.set_level(logging.WARNING, logger=name)
    caplog.set_level(logging.DEBUG)  # last: the capturing handler takes this level
    citizen = console.telegram.add_user(
        language_code="id", first_name="Kartika", last_name="Wulandari", username="kartika_w",
        phone_number=PHONE,
    )  # fmt: skip
    ref = await full_gps_report(citizen, details="Kartika di rumah no 12, hubungi 0813 4444 5555")
    card = await console.telegram.wait_for_message(
        OPERATOR_CHAT, lambda m: ref in (m.text or "") and bool(m.inline_buttons)
    )
    await citizen.send_text("tolong cepat, saya Kartika")
    await console.telegram.wait_for_message(OPERATOR_CHAT, _has("saya Kartika"))
    await console.dewi.send_text(
        "Bu Kartika, ambulans berangkat", chat_id=OPERATOR_CHAT, thread_id=card.thread_id
    )
    await citizen.wait_reply(_has("ambulans berangkat"))
    await _resolve(console, Ticketed(citizen, ref, card, card.thread_id))
    await citizen.send_command("datasaya")
    await citizen.wait_reply(_has(ref))
    await console.h.outbox_drained()
    records = [r for r in caplog.records if not r.name.startswith("tests.")]
    # The scan saw the run: the bot's own lines (PTB's DEBUG lines echo whole updates, so
    # `siaga112 run` keeps the `telegram` loggers at WARNING, as here).
    assert "bot.services.privacy" in {r.name for r in records}
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in records)
    for secret in (PHONE, "0813 4444 5555", "Kartika", "Wulandari", "kartika_w"):
        assert secret not in logged, secret
    for record in records:  # nor the number split by spaces or dashes
        assert PHONE[2:] not in re.sub(r"\D", "", record.getMessage()), record.name


async def test_daily_purge_job_anonymises_old_tickets_when_it_runs_in_the_bot(
    harness: Harness,
) -> None:
    jobs = harness.app.job_queue.get_jobs_by_name("privacy-purge") if harness.app.job_queue else ()
    assert len(jobs) == 1
    assert jobs[0].trigger.interval == timedelta(days=1)  # type: ignore[attr-defined]
    first_run = jobs[0].next_t
    assert first_run is not None
    assert first_run - datetime.now(UTC) <= timedelta(seconds=PURGE_FIRST)  # soon after start
    long_ago = harness.clock.now() - timedelta(days=400)
    services = harness.app.bot_data[SERVICES_KEY]
    async with services.intake._uow_factory() as uow:
        citizen = await uow.citizens.add(
            Citizen(7_400_000_001, "id", name="Ratna", created_at=long_ago, updated_at=long_ago)
        )
        await uow.tickets.add(old_ticket(citizen.id or 0, long_ago))
        await uow.commit()
    await jobs[0].run(harness.app)
    stored = await ticket(harness, "SMG-251001-0001")
    assert (stored.caller_name, stored.anonymised_at is not None) == (None, True)


def old_ticket(citizen_id: int, at: datetime) -> Ticket:
    return Ticket(
        citizen_id=citizen_id, chat_id=7_400_000_001, status=TicketStatus.CLOSED, created_at=at,
        updated_at=at, step=None, ref="SMG-251001-0001", caller_name="Ratna",
        caller_phone_e164="+6281300000001", details="pohon tumbang di depan rumah Ratna",
        submitted_at=at, closed_at=at, resolved_at=at,
    )  # fmt: skip


async def _purge_cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env.update(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'purge.db'}", GEOCODER="offline",
               RETENTION_DAYS="200", DRAFT_RETENTION_DAYS="10")  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "purge", *args, env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_purge_command_counts_on_a_dry_run_then_anonymises_once_when_run(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'purge.db'}"
    await upgrade(url)
    engine = create_engine(url)
    long_ago = datetime.now(UTC) - timedelta(days=201)
    try:
        uow_factory = SqlUnitOfWorkFactory(session_factory(engine))
        async with uow_factory() as uow:
            citizen = await uow.citizens.add(
                Citizen(7_400_000_002, "id", name="Ratna", created_at=long_ago,
                        updated_at=datetime.now(UTC))
            )  # fmt: skip
            await uow.tickets.add(old_ticket(citizen.id or 0, long_ago))
            await uow.commit()
        dry = await _purge_cli(tmp_path, "--dry-run")
        async with uow_factory() as uow:
            untouched = await uow.tickets.get_by_ref("SMG-251001-0001")
        real = await _purge_cli(tmp_path)
        again = await _purge_cli(tmp_path)
        async with uow_factory() as uow:
            purged = await uow.tickets.get_by_ref("SMG-251001-0001")
    finally:
        await engine.dispose()
    assert dry[0] == 0, dry[2]
    assert dry[1].startswith("would be anonymised (retention 200 days, drafts 10 days): 1 closed")
    assert untouched is not None
    assert untouched.caller_name == "Ratna"
    assert real[1].startswith("anonymised (retention 200 days, drafts 10 days): 1 closed tickets")
    assert again[1].startswith("anonymised (retention 200 days, drafts 10 days): 0 closed tickets")
    assert purged is not None
    assert (purged.caller_name, purged.details) == (None, None)
    assert "Ratna" not in dry[1] + dry[2] + real[1] + real[2]
