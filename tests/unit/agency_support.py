"""Shared set-up of the agency tests: an agencies file, the console and the agency service."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import AgencyConfig, Secret
from bot.services.agencies import AgencyDirectory, AgencyService
from bot.services.console import ConsolePolicy, ConsoleService
from tests.fakes.memory_uow import InMemoryUnitOfWorkFactory
from tests.unit.console_support import DEWI, OPERATORS_CHAT, Clock, Geocoder, add_staff

DAMKAR_CHAT = -1007770001
BPBD_CHAT = -1007770002
SECRET = "dinkes-webhook-secret"
BPBD_MEMBER = 501
AGENCIES = (
    AgencyConfig("DAMKAR", "Damkar Kota Semarang", ("FIRE", "TRAF"),
                 telegram_chat_id=DAMKAR_CHAT, ack_deadline_seconds=120),
    AgencyConfig("DINKES", "Ambulans Hebat", ("MED", "TRAF", "FIRE"),
                 webhook_url="http://127.0.0.1:9/eido", webhook_secret_env="DINKES_SECRET",
                 webhook_secret=Secret(SECRET), ack_deadline_seconds=60),
    AgencyConfig("POLRESTABES", "Polrestabes Semarang", ("CRIME", "TRAF"), phone="024-112"),
    AgencyConfig("BPBD", "BPBD Kota Semarang", ("FLOOD", "FIRE"), telegram_chat_id=BPBD_CHAT,
                 members=frozenset({BPBD_MEMBER})),
)  # fmt: skip


@dataclass
class Desk:
    """What a test drives: the store, the clock, the console and the agency service."""

    uow_factory: InMemoryUnitOfWorkFactory
    clock: Clock
    directory: AgencyDirectory
    console: ConsoleService
    agencies: AgencyService

    def restarted(self) -> AgencyService:
        """A new service on the same store (a restarted process)."""
        return AgencyService(
            self.uow_factory, self.clock, self.directory, operator_chat_id=OPERATORS_CHAT
        )


async def desk(agencies: tuple[AgencyConfig, ...] = AGENCIES) -> Desk:
    """A console with DEWI on the roster and the agencies above."""
    uow_factory = InMemoryUnitOfWorkFactory()
    await add_staff(uow_factory, DEWI)
    clock = Clock()
    directory = AgencyDirectory(agencies)
    console = ConsoleService(
        uow_factory, Geocoder(), clock, ConsolePolicy(directory.names(), OPERATORS_CHAT,
                                                      directory),
    )  # fmt: skip
    service = AgencyService(uow_factory, clock, directory, operator_chat_id=OPERATORS_CHAT)
    return Desk(uow_factory, clock, directory, console, service)
