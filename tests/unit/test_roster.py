"""The roster: seeding from settings, admin-only changes, every change audited."""

from __future__ import annotations

import pytest

from bot.domain.lifecycle import Staff
from bot.services.roster import RosterChange, RosterService
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import ADMIN, BUDI, DEWI, Clock


@pytest.fixture
def uow_factory() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


@pytest.fixture
def roster(uow_factory: InMemoryUnitOfWorkFactory) -> RosterService:
    return RosterService(uow_factory, Clock())


def audit_kinds(uow_factory: InMemoryUnitOfWorkFactory) -> list[tuple[str, str, str]]:
    entries = sorted(uow_factory.store.audit.values(), key=lambda e: e.id or 0)
    return [(e.actor, e.kind, e.subject) for e in entries]


async def test_seed_adds_operators_and_admins_once_when_run_at_every_start(
    roster: RosterService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    assert await roster.seed({1001, 1002, 1000}, {1000}) == 3
    assert await roster.seed({1001, 1002, 1000}, {1000}) == 0
    assert [o.telegram_id for o in await roster.members()] == [1000, 1001, 1002]
    assert await roster.is_admin(1000)
    assert not await roster.is_admin(1001)
    assert await roster.is_operator(1001)
    assert not await roster.is_operator(666)
    assert audit_kinds(uow_factory) == [
        ("settings", "operator_added", "operator:1000"),
        ("settings", "operator_added", "operator:1001"),
        ("settings", "operator_added", "operator:1002"),
    ]


async def test_seed_keeps_a_removal_but_restores_admins_when_settings_still_name_them(
    roster: RosterService,
) -> None:
    await roster.seed({1001}, {1000, 1003})
    assert (await roster.remove(ADMIN, 1001)).change is RosterChange.REMOVED
    assert (await roster.remove(ADMIN, 1003)).change is RosterChange.REMOVED
    assert await roster.seed({1001}, {1000, 1003}) == 1
    assert not await roster.is_operator(1001)  # an admin's removal survives the restart
    assert await roster.is_admin(1003)  # settings are the way back in for admins


async def test_admin_adds_and_removes_a_member_when_asked(
    roster: RosterService, uow_factory: InMemoryUnitOfWorkFactory
) -> None:
    await roster.seed((), {ADMIN.telegram_id or 0})
    added = await roster.add(ADMIN, 1001, "Dewi")
    assert added.change is RosterChange.ADDED
    assert added.operator is not None
    assert (added.operator.display_name, added.operator.added_by) == ("Dewi", "operator:1000")
    assert (await roster.add(ADMIN, 1001)).change is RosterChange.ALREADY
    assert (await roster.add(ADMIN, 1001, admin=True)).change is RosterChange.PROMOTED
    assert await roster.is_admin(1001)
    assert (await roster.remove(ADMIN, 1001)).change is RosterChange.REMOVED
    assert not await roster.is_operator(1001)
    assert (await roster.remove(ADMIN, 1001)).change is RosterChange.NOT_A_MEMBER
    assert (await roster.add(ADMIN, 1001)).change is RosterChange.REACTIVATED
    assert [k for _, k, _ in audit_kinds(uow_factory)] == [
        "operator_added", "operator_added", "operator_promoted", "operator_removed",
        "operator_reactivated",
    ]  # fmt: skip
    everyone = await roster.members(include_inactive=True)
    assert [o.telegram_id for o in everyone] == [1000, 1001]


@pytest.mark.parametrize("actor", [DEWI, Staff(666, "stranger"), Staff(None)])
async def test_roster_changes_are_refused_and_not_audited_when_the_actor_is_no_admin(
    roster: RosterService, uow_factory: InMemoryUnitOfWorkFactory, actor: Staff
) -> None:
    await roster.seed({DEWI.telegram_id or 0, BUDI.telegram_id or 0}, {ADMIN.telegram_id or 0})
    before = audit_kinds(uow_factory)
    assert (await roster.add(actor, 4242)).change is RosterChange.NOT_ALLOWED
    assert (await roster.remove(actor, BUDI.telegram_id or 0)).change is RosterChange.NOT_ALLOWED
    assert await roster.is_operator(BUDI.telegram_id or 0)
    assert not await roster.is_operator(4242)
    assert audit_kinds(uow_factory) == before


async def test_admin_cannot_remove_themselves_when_asked(roster: RosterService) -> None:
    await roster.seed((), {ADMIN.telegram_id or 0})
    assert (await roster.remove(ADMIN, ADMIN.telegram_id or 0)).change is RosterChange.SELF
    assert await roster.is_admin(ADMIN.telegram_id or 0)
