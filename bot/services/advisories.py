"""Advisories: admins compose, target, preview and confirm; delivery is a durable job.

Confirming writes, in one unit of work, one delivery row and one outbox row (kind
``advisory``, the broadcast lane) per recipient, so the outbox worker sends them paced by
the rate governor's broadcast class (below every emergency call), resumes after a crash
from the database, and a recipient is never enqueued twice. A timer (:meth:`tick`) keeps
the admin's progress message up to date and sends the final report (sent, blocked,
failed) once nothing is owed. ``cancel`` stops the copies no worker holds at that moment.

Who receives what: subscribers of the whole city receive every advisory; subscribers of a
kecamatan receive advisories for the whole city and those whose target touches their
kecamatan (a kecamatan list, a kelurahan in it, or a circle reaching its ground). A target
that touches no kecamatan of the city reaches nobody.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from bot.domain.advisory import (
    MAX_CAPTION,
    MAX_RADIUS_M,
    MAX_TEXT,
    MIN_RADIUS_M,
    Advisory,
    AdvisoryStatus,
    AudienceCount,
    DeliveryOutcome,
    Progress,
    Recipient,
    Target,
    TargetKind,
)
from bot.domain.model import OutboxMessage
from bot.services.outbox_kinds import ADVISORY, ADVISORY_PROGRESS, kind_of, set_recorder
from bot.services.ports import AreaIndex, Clock, DeliveryResult, UnitOfWork, UnitOfWorkFactory
from bot.services.rows import enqueue
from bot.services.subscriptions import mark_blocked

log = logging.getLogger(__name__)

PROGRESS_RANK = 9
"""After every ticket's emergency rows (ranks 0..3), before nothing else of that lane."""
BROADCAST_RANK = 5


class NotAllowed(Exception):
    """The user is not an admin, or the advisory is not theirs to change."""


class InvalidInput(ValueError):
    """What the admin gave cannot be used (``reason``: a stable code the edge renders)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Preview:
    """What the admin confirms: the advisory and who it would reach."""

    advisory: Advisory
    audience: AudienceCount


class AdminCheck(Protocol):
    """Tells whether a Telegram user is an admin (the roster service satisfies it)."""

    async def is_admin(self, telegram_id: int) -> bool:
        """Return whether ``telegram_id`` has admin rights."""
        ...


class AdvisoryService:
    """Composes, targets, previews, confirms, tracks and cancels advisories."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        areas: AreaIndex,
        admins: AdminCheck,
        *,
        kecamatan: Mapping[str, str],
        kelurahan: Mapping[str, str],
        paid: bool = False,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._areas = areas
        self._admins = admins
        self.kecamatan = dict(kecamatan)
        """Code -> name of the city's kecamatan."""
        self.kelurahan = dict(kelurahan)
        """Code -> name of the city's kelurahan."""
        self.paid = paid
        """Whether copies are sent as paid broadcasts (``allow_paid_broadcast``)."""
        self._cancelled: set[int] = set()
        self._content: dict[int, Advisory] = {}
        self._reported: dict[int, int] = {}

    # -- composing ----------------------------------------------------------------------------

    async def start(self, admin_id: int) -> Advisory:
        """Opens a new draft for an admin."""
        await self._require_admin(admin_id)
        async with self._uow_factory() as uow:
            advisory = await uow.advisories.add(Advisory(admin_id, self._clock.now()))
            await uow.commit()
        return advisory

    async def set_content(
        self, admin_id: int, advisory_id: int, text: str, photo_file_id: str | None = None
    ) -> Advisory:
        """Stores the text (and photo) of a draft; too long or empty is refused."""
        text = text.strip()
        if not text:
            raise InvalidInput("empty")
        if len(text) > (MAX_CAPTION if photo_file_id else MAX_TEXT):
            raise InvalidInput("caption_too_long" if photo_file_id else "text_too_long")
        return await self._change_draft(
            admin_id, advisory_id, lambda a: replace(a, text=text, photo_file_id=photo_file_id)
        )

    async def set_target(self, admin_id: int, advisory_id: int, target: Target) -> Preview:
        """Stores the target of a draft and returns the preview with the recipient count."""
        target = self.checked_target(target)
        advisory = await self._change_draft(
            admin_id, advisory_id, lambda a: replace(a, target=target)
        )
        return Preview(advisory, await self.audience(target))

    def checked_target(self, target: Target) -> Target:
        """Return ``target`` if its codes and radius are the city's; raise InvalidInput."""
        if target.kind is TargetKind.KECAMATAN and (
            not target.codes or any(c not in self.kecamatan for c in target.codes)
        ):
            raise InvalidInput("unknown_kecamatan")
        if target.kind is TargetKind.KELURAHAN and (
            not target.codes or any(c not in self.kelurahan for c in target.codes)
        ):
            raise InvalidInput("unknown_kelurahan")
        if target.kind is TargetKind.RADIUS:
            if target.lat is None or target.lon is None or target.radius_m is None:
                raise InvalidInput("no_location")
            if not MIN_RADIUS_M <= target.radius_m <= MAX_RADIUS_M:
                raise InvalidInput("radius")
        return replace(target, codes=tuple(dict.fromkeys(target.codes)))

    def kelurahan_named(self, name: str) -> list[tuple[str, str, str]]:
        """Kelurahan called ``name`` (case and spacing ignored): (code, name, kecamatan)."""
        wanted = " ".join(name.lower().replace("kelurahan", " ").split())
        return [
            (code, label, self.kecamatan.get(code[:8], code[:8]))
            for code, label in sorted(self.kelurahan.items())
            if label.lower() == wanted
        ]

    def kecamatan_of(self, target: Target) -> tuple[str, ...] | None:
        """The kecamatan a target touches (None: the whole city)."""
        if target.kind is TargetKind.ALL:
            return None
        if target.kind is TargetKind.KECAMATAN:
            return tuple(sorted(set(target.codes)))
        if target.kind is TargetKind.KELURAHAN:
            return tuple(sorted({code[:8] for code in target.codes}))
        if target.lat is None or target.lon is None or target.radius_m is None:
            return ()
        return self._areas.kecamatan_within(target.lat, target.lon, target.radius_m)

    async def recipients(self, target: Target) -> list[Recipient]:
        """The subscribers a target reaches now, by citizen id."""
        codes = self.kecamatan_of(target)
        if codes is not None and not codes:
            return []
        async with self._uow_factory() as uow:
            return await uow.citizens.subscribers(codes)

    async def audience(self, target: Target) -> AudienceCount:
        """Counts who a target reaches: city-wide subscribers and those of its kecamatan."""
        codes = self.kecamatan_of(target)
        recipients = await self.recipients(target)
        async with self._uow_factory() as uow:
            city = len(await uow.citizens.subscribers(())) if codes is not None and codes else None
        city_wide = len(recipients) if city is None else city
        return AudienceCount(
            total=len(recipients), city_wide=city_wide, by_area=len(recipients) - city_wide,
            kecamatan_codes=codes or (),
        )  # fmt: skip

    async def preview(self, admin_id: int, advisory_id: int) -> Preview:
        """The draft and its recipient count."""
        advisory = await self._draft(admin_id, advisory_id)
        if advisory.target is None:
            raise InvalidInput("no_target")
        return Preview(advisory, await self.audience(advisory.target))

    async def discard(self, admin_id: int, advisory_id: int) -> None:
        """Drops a draft (kept, marked discarded)."""
        await self._change_draft(
            admin_id, advisory_id, lambda a: replace(a, status=AdvisoryStatus.DISCARDED)
        )

    async def take_draft(self, admin_id: int, advisory_id: int) -> Advisory:
        """Lets an admin take over a draft nobody composed (one drafted from a CAP alert)."""
        await self._require_admin(admin_id)
        async with self._uow_factory() as uow:
            advisory = await uow.advisories.get(advisory_id)
            if advisory is None or advisory.status is not AdvisoryStatus.DRAFT:
                raise InvalidInput("not_a_draft")
            advisory.created_by = admin_id
            await uow.advisories.update(advisory)
            await uow.commit()
        return advisory

    # -- sending --------------------------------------------------------------------------------

    async def confirm(self, admin_id: int, advisory_id: int, chat_id: int) -> Advisory:
        """Starts sending: one delivery and one outbox row per recipient, committed together
        with the advisory's new status and the first progress message (to ``chat_id``)."""
        await self._require_admin(admin_id)
        now = self._clock.now()
        async with self._uow_factory() as uow:
            advisory = await uow.advisories.get(advisory_id)
            if advisory is None or advisory.created_by != admin_id:
                raise NotAllowed
            if advisory.status is not AdvisoryStatus.DRAFT:
                raise InvalidInput("not_a_draft")
            if advisory.target is None or not advisory.text:
                raise InvalidInput("no_target")
            codes = self.kecamatan_of(advisory.target)
            recipients = [] if codes is not None and not codes else (
                await uow.citizens.subscribers(codes)
            )  # fmt: skip
            written = await uow.advisories.enqueue(
                advisory_id, recipients, now, kind=ADVISORY,
                lane=kind_of(ADVISORY).lane.value, rank=BROADCAST_RANK,
            )  # fmt: skip
            advisory.status = AdvisoryStatus.SENDING
            advisory.recipients = written
            advisory.confirmed_by = admin_id
            advisory.confirmed_at = now
            advisory.progress_chat_id = chat_id
            await uow.advisories.update(advisory)
            await enqueue(
                uow, ADVISORY_PROGRESS, now, {"advisory_id": advisory_id}, rank=PROGRESS_RANK
            )
            await uow.commit()
        log.info("advisory %s confirmed: %d recipients", advisory_id, written)
        return advisory

    async def cancel(self, admin_id: int, advisory_id: int | None = None) -> Advisory | None:
        """Stops an advisory being sent (the latest one, unless named); return it or None."""
        await self._require_admin(admin_id)
        now = self._clock.now()
        async with self._uow_factory() as uow:
            sending = await uow.advisories.sending()
            chosen = [a for a in sending if advisory_id is None or a.id == advisory_id]
            if not chosen:
                return None
            advisory = chosen[-1]
            aid = advisory.id or 0
            self._cancelled.add(aid)  # copies in flight in this process stop too
            stopped = await uow.advisories.cancel_owed(aid, now)
            await _finish(uow, advisory, AdvisoryStatus.CANCELLED, now)
            await uow.commit()
        log.info("advisory %s cancelled by admin %s: %d copies stopped", aid, admin_id, stopped)
        return advisory

    async def tick(self) -> int:
        """Updates progress messages; finishes advisories with nothing owed (final report).

        Returns how many outbox rows it queued."""
        queued = 0
        now = self._clock.now()
        async with self._uow_factory() as uow:
            owed_progress = {
                int(str(m.payload.get("advisory_id")))
                for m in await uow.outbox.owed_of_kind(ADVISORY_PROGRESS)
            }
            for advisory in await uow.advisories.sending():
                aid = advisory.id or 0
                progress = await uow.advisories.progress(aid)
                if progress.owed == 0:
                    await _finish(uow, advisory, AdvisoryStatus.DONE, now)
                    queued += 1
                    log.info("advisory %s done: %d sent, %d blocked, %d failed", aid,
                             progress.sent, progress.blocked, progress.failed)  # fmt: skip
                elif aid not in owed_progress and self._reported.get(aid) != progress.done:
                    self._reported[aid] = progress.done
                    await enqueue(
                        uow, ADVISORY_PROGRESS, now, {"advisory_id": aid}, rank=PROGRESS_RANK
                    )
                    queued += 1
            await uow.commit()
        return queued

    async def get(self, advisory_id: int) -> Advisory | None:
        """An advisory by id, whatever its state."""
        async with self._uow_factory() as uow:
            return await uow.advisories.get(advisory_id)

    async def progress(self, advisory_id: int) -> tuple[Advisory, Progress] | None:
        """The advisory and how far its delivery is."""
        async with self._uow_factory() as uow:
            advisory = await uow.advisories.get(advisory_id)
            if advisory is None:
                return None
            return advisory, await uow.advisories.progress(advisory_id)

    # -- what the deliverer asks ----------------------------------------------------------------

    async def content(self, advisory_id: int) -> Advisory | None:
        """The advisory a copy carries (cached: it no longer changes once confirmed)."""
        cached = self._content.get(advisory_id)
        if cached is not None:
            return cached
        async with self._uow_factory() as uow:
            advisory = await uow.advisories.get(advisory_id)
        if advisory is not None and advisory.status is not AdvisoryStatus.DRAFT:
            self._content[advisory_id] = advisory
        return advisory

    def is_cancelled(self, advisory_id: int) -> bool:
        """Whether this process cancelled the advisory (copies in flight stop)."""
        return advisory_id in self._cancelled

    async def refused(self, message: OutboxMessage, telegram_id: int, *, blocked: bool) -> None:
        """Records a copy Telegram refused for good: the citizen blocked the bot (marked
        and unsubscribed) or the message was rejected."""
        now = self._clock.now()
        async with self._uow_factory() as uow:
            if blocked:
                await mark_blocked(uow, telegram_id, self._clock)
            outcome = DeliveryOutcome.BLOCKED if blocked else DeliveryOutcome.FAILED
            await uow.advisories.record(_delivery_id(message), outcome, now)
            await uow.commit()

    async def skipped(self, message: OutboxMessage) -> None:
        """Records a copy not sent because its advisory was cancelled."""
        async with self._uow_factory() as uow:
            await uow.advisories.record(
                _delivery_id(message), DeliveryOutcome.CANCELLED, self._clock.now()
            )
            await uow.commit()

    # -- helpers --------------------------------------------------------------------------------

    async def _require_admin(self, admin_id: int) -> None:
        if not await self._admins.is_admin(admin_id):
            raise NotAllowed

    async def _draft(self, admin_id: int, advisory_id: int) -> Advisory:
        await self._require_admin(admin_id)
        async with self._uow_factory() as uow:
            advisory = await uow.advisories.get(advisory_id)
        if advisory is None or advisory.created_by != admin_id:
            raise NotAllowed
        if advisory.status is not AdvisoryStatus.DRAFT:
            raise InvalidInput("not_a_draft")
        return advisory

    async def _change_draft(
        self, admin_id: int, advisory_id: int, change: Callable[[Advisory], Advisory]
    ) -> Advisory:
        await self._require_admin(admin_id)
        async with self._uow_factory() as uow:
            advisory = await uow.advisories.get(advisory_id)
            if advisory is None or advisory.created_by != admin_id:
                raise NotAllowed
            if advisory.status is not AdvisoryStatus.DRAFT:
                raise InvalidInput("not_a_draft")
            changed = change(advisory)
            await uow.advisories.update(changed)
            await uow.commit()
        return changed


def _delivery_id(message: OutboxMessage) -> int:
    return int(str(message.payload["delivery_id"]))


async def record_progress(uow: UnitOfWork, message: OutboxMessage, result: DeliveryResult) -> None:
    """Stores the id of the progress message posted, so later updates edit it."""
    if message.payload.get("final") or result.message_id is None:
        return
    advisory = await uow.advisories.get(int(str(message.payload["advisory_id"])))
    if advisory is not None and advisory.progress_message_id != result.message_id:
        advisory.progress_message_id = result.message_id
        await uow.advisories.update(advisory)


set_recorder(ADVISORY_PROGRESS, record_progress)


async def _finish(
    uow: UnitOfWork, advisory: Advisory, status: AdvisoryStatus, now: datetime
) -> None:
    """Ends a broadcast (done or cancelled) and queues the admin's final report."""
    advisory.status = status
    advisory.finished_at = now
    await uow.advisories.update(advisory)
    await enqueue(
        uow, ADVISORY_PROGRESS, now, {"advisory_id": advisory.id or 0, "final": True},
        rank=PROGRESS_RANK,
    )  # fmt: skip
