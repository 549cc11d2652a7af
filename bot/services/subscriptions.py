"""Citizens' subscriptions to advisories: the whole city or one kecamatan, with consent time.

Consent is explicit: a citizen starts unsubscribed and subscribes from the menu (the time is
stored). A citizen who blocks the bot is marked and unsubscribed, so one who unblocks starts
unsubscribed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.domain.model import Citizen
from bot.services.citizens import Actor, citizen_for
from bot.services.ports import Clock, UnitOfWork, UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """A citizen's subscription and the kecamatan to offer (that of their last report)."""

    citizen: Citizen
    kecamatan_name: str | None = None
    """The name of the kecamatan they subscribed to."""
    offered_code: str | None = None
    offered_name: str | None = None
    changed: bool = False


class SubscriptionService:
    """Subscribes and unsubscribes citizens; marks those who blocked the bot."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        kecamatan: Mapping[str, str],
        *,
        default_language: str = "id",
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._kecamatan = dict(kecamatan)
        """Code -> name of the city's kecamatan."""
        self._default_language = default_language

    async def show(self, actor: Actor) -> SubscriptionView:
        """Return the citizen's subscription and the kecamatan of their last report."""
        async with self._uow_factory() as uow:
            citizen = await self._citizen(uow, actor)
            view = await self._view(uow, citizen)
            await uow.commit()
        return view

    async def subscribe(self, actor: Actor, kecamatan_code: str | None) -> SubscriptionView:
        """Subscribes to the whole city (``None``) or one kecamatan; stores the consent time.

        An unknown kecamatan code (an old or forged button) changes nothing."""
        if kecamatan_code is not None and kecamatan_code not in self._kecamatan:
            return await self.show(actor)
        now = self._clock.now()
        async with self._uow_factory() as uow:
            citizen = await self._citizen(uow, actor)
            citizen.subscribed = True
            citizen.subscription_kecamatan_code = kecamatan_code
            citizen.subscribed_at = now
            citizen.updated_at = now
            await uow.citizens.update(citizen)
            view = await self._view(uow, citizen, changed=True)
            await uow.commit()
        return view

    async def unsubscribe(self, actor: Actor) -> SubscriptionView:
        """Ends the subscription (the consent time is cleared with it)."""
        now = self._clock.now()
        async with self._uow_factory() as uow:
            citizen = await self._citizen(uow, actor)
            changed = citizen.subscribed
            withdraw(citizen)
            citizen.updated_at = now
            await uow.citizens.update(citizen)
            view = await self._view(uow, citizen, changed=changed)
            await uow.commit()
        return view

    async def mark_blocked(self, telegram_id: int) -> bool:
        """Marks a citizen who blocked the bot and unsubscribes them; return whether known."""
        async with self._uow_factory() as uow:
            found = await mark_blocked(uow, telegram_id, self._clock)
            await uow.commit()
        return found

    async def _citizen(self, uow: UnitOfWork, actor: Actor) -> Citizen:
        return await citizen_for(uow, actor, self._clock.now(), self._default_language)

    async def _view(
        self, uow: UnitOfWork, citizen: Citizen, *, changed: bool = False
    ) -> SubscriptionView:
        offered = None
        for ticket in await uow.tickets.recent(citizen.id or 0, 1):
            location = ticket.incident_location or ticket.reporter_location
            if location is not None and location.area is not None and location.area.inside:
                offered = location.area.kecamatan_code
        code = citizen.subscription_kecamatan_code
        return SubscriptionView(
            citizen=citizen,
            kecamatan_name=self._kecamatan.get(code) if code else None,
            offered_code=offered if offered in self._kecamatan else None,
            offered_name=self._kecamatan.get(offered) if offered else None,
            changed=changed,
        )


def withdraw(citizen: Citizen) -> None:
    """Ends the citizen's subscription and clears its consent time (unsubscribe, a blocked
    bot, an erasure)."""
    citizen.subscribed = False
    citizen.subscription_kecamatan_code = None
    citizen.subscribed_at = None


async def mark_blocked(uow: UnitOfWork, telegram_id: int, clock: Clock) -> bool:
    """In ``uow``: the citizen blocked the bot: marked, and no longer subscribed."""
    citizen = await uow.citizens.get_by_telegram_id(telegram_id)
    if citizen is None:
        return False
    if citizen.blocked_bot and not citizen.subscribed:
        return True
    citizen.blocked_bot = True
    withdraw(citizen)
    citizen.updated_at = clock.now()
    await uow.citizens.update(citizen)
    return True
