"""The operator roster: who may act on tickets (operators) and change the roster (admins).

Seeded at every start from the settings: ``ADMIN_USER_IDS`` are made active admins each
time (the settings are the way back in, so a deployment can never lock itself out);
``OPERATOR_USER_IDS`` only add users the roster does not know yet (so a removal by an admin
survives restarts). At run time admins add and remove members; removed members stay on
the roster as inactive, for the record. Every change is one ``audit_log`` row (actor,
kind, subject ``operator:<id>``): roster changes concern no ticket, so they are not events.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.domain.lifecycle import Staff
from bot.domain.model import AuditEntry, Operator
from bot.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

SETTINGS = "settings"


class RosterChange(StrEnum):
    """What an add or remove did."""

    ADDED = "added"
    REACTIVATED = "reactivated"
    """A removed member was added again."""
    PROMOTED = "promoted"
    """An active operator was made an admin."""
    ALREADY = "already"
    """Nothing to do: already a member (with these rights)."""
    REMOVED = "removed"
    NOT_A_MEMBER = "not_a_member"
    """Remove: the user is not an active member."""
    NOT_ALLOWED = "not_allowed"
    """The actor is not an active admin."""
    SELF = "self"
    """An admin cannot remove themselves (the roster would be left without them)."""


@dataclass(frozen=True, slots=True)
class RosterResult:
    """The change made, and the member it concerns (None when refused or unknown)."""

    change: RosterChange
    operator: Operator | None = None

    @property
    def changed(self) -> bool:
        """Whether the roster changed."""
        return self.change in (
            RosterChange.ADDED, RosterChange.REACTIVATED, RosterChange.PROMOTED,
            RosterChange.REMOVED,
        )  # fmt: skip


def subject(telegram_id: int) -> str:
    """The audit subject of a roster member."""
    return f"operator:{telegram_id}"


async def active_member(uow: UnitOfWork, telegram_id: int | None) -> Operator | None:
    """Return the active roster entry of a Telegram user, or None (not a member)."""
    if telegram_id is None:
        return None
    operator = await uow.operators.get(telegram_id)
    return operator if operator is not None and operator.active else None


class RosterService:
    """Seeds, changes and answers questions about the operator roster."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        *,
        read_uow_factory: UnitOfWorkFactory | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._read_uow_factory = read_uow_factory or uow_factory
        self._clock = clock

    async def seed(self, operator_ids: Iterable[int], admin_ids: Iterable[int]) -> int:
        """Brings the roster in line with the settings (idempotent); returns how many
        entries changed."""
        admins = set(admin_ids)
        changed = 0
        async with self._uow_factory() as uow:
            for telegram_id in sorted(admins | set(operator_ids)):
                admin = telegram_id in admins
                existing = await uow.operators.get(telegram_id)
                if existing is None:
                    result = await self._insert(uow, SETTINGS, telegram_id, None, admin=admin)
                elif admin and not (existing.active and existing.is_admin):
                    result = await self._promote(uow, SETTINGS, existing, None)
                else:
                    continue
                changed += result.changed
            await uow.commit()
        if changed:
            log.info("roster seeded from settings: %d entries changed", changed)
        return changed

    async def add(
        self, by: Staff, telegram_id: int, display_name: str | None = None, *, admin: bool = False
    ) -> RosterResult:
        """Adds (or re-adds) a member, as an admin when ``admin``; admins only."""
        async with self._uow_factory() as uow:
            if not await self._is_admin(uow, by):
                return RosterResult(RosterChange.NOT_ALLOWED)
            existing = await uow.operators.get(telegram_id)
            if existing is None:
                result = await self._insert(uow, by.actor, telegram_id, display_name, admin=admin)
            elif not existing.active or (admin and not existing.is_admin):
                result = await self._promote(
                    uow, by.actor, existing, display_name, admin=admin or existing.is_admin
                )
            else:
                if display_name and display_name != existing.display_name:
                    existing.display_name = display_name
                    await uow.operators.update(existing)
                result = RosterResult(RosterChange.ALREADY, existing)
            await uow.commit()
        return result

    async def remove(self, by: Staff, telegram_id: int) -> RosterResult:
        """Takes a member off the roster (kept as inactive); admins only, not themselves."""
        async with self._uow_factory() as uow:
            if not await self._is_admin(uow, by):
                return RosterResult(RosterChange.NOT_ALLOWED)
            if telegram_id == by.telegram_id:
                return RosterResult(RosterChange.SELF)
            member = await active_member(uow, telegram_id)
            if member is None:
                return RosterResult(RosterChange.NOT_A_MEMBER)
            member.active = False
            await uow.operators.update(member)
            await self._audit(uow, by.actor, "operator_removed", telegram_id)
            await uow.commit()
        return RosterResult(RosterChange.REMOVED, member)

    async def members(self, *, include_inactive: bool = False) -> list[Operator]:
        """Return the roster (active members unless asked), oldest first."""
        async with self._read_uow_factory() as uow:
            return await uow.operators.list(include_inactive=include_inactive)

    async def admins(self) -> list[Operator]:
        """Return the active admins."""
        return [o for o in await self.members() if o.is_admin]

    async def is_operator(self, telegram_id: int) -> bool:
        """Whether the user is an active member (operators and admins alike)."""
        async with self._read_uow_factory() as uow:
            return await active_member(uow, telegram_id) is not None

    async def is_admin(self, telegram_id: int) -> bool:
        """Whether the user is an active admin."""
        async with self._read_uow_factory() as uow:
            member = await active_member(uow, telegram_id)
        return member is not None and member.is_admin

    async def _is_admin(self, uow: UnitOfWork, by: Staff) -> bool:
        member = await active_member(uow, by.telegram_id)
        if member is None or not member.is_admin:
            log.info("roster change refused: the actor is not an admin")
            return False
        return True

    async def _insert(
        self, uow: UnitOfWork, actor: str, telegram_id: int, name: str | None, *, admin: bool
    ) -> RosterResult:
        operator = await uow.operators.add(
            Operator(
                telegram_id=telegram_id, display_name=name, is_admin=admin, active=True,
                added_by=actor, added_at=self._clock.now(),
            )
        )  # fmt: skip
        await self._audit(uow, actor, "operator_added", telegram_id, "admin" if admin else None)
        return RosterResult(RosterChange.ADDED, operator)

    async def _promote(
        self,
        uow: UnitOfWork,
        actor: str,
        existing: Operator,
        name: str | None,
        *,
        admin: bool = True,
    ) -> RosterResult:
        change = RosterChange.PROMOTED if existing.active else RosterChange.REACTIVATED
        existing.active, existing.is_admin = True, admin
        existing.display_name = name or existing.display_name
        await uow.operators.update(existing)
        kind = "operator_promoted" if change is RosterChange.PROMOTED else "operator_reactivated"
        await self._audit(uow, actor, kind, existing.telegram_id, "admin" if admin else None)
        return RosterResult(change, existing)

    async def _audit(
        self, uow: UnitOfWork, actor: str, kind: str, telegram_id: int, note: str | None = None
    ) -> None:
        await uow.audit.add(
            AuditEntry(
                at=self._clock.now(), actor=actor, kind=kind, subject=subject(telegram_id),
                note=note,
            )
        )  # fmt: skip
