"""Read-only views of tickets for the edges (operator cards, citizen status)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.model import Assignment, Citizen, Ticket
from bot.services.ports import UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class TicketDetail:
    """A ticket with its caller and agencies, as an operator card needs it."""

    ticket: Ticket
    citizen: Citizen | None
    assignments: tuple[Assignment, ...] = ()


class TicketQueries:
    """Loads tickets for display; never changes anything."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def detail(self, ticket_id: int) -> TicketDetail | None:
        """Return the ticket and its citizen, or None when it does not exist."""
        async with self._uow_factory() as uow:
            ticket = await uow.tickets.get(ticket_id)
            if ticket is None:
                return None
            citizen = await uow.citizens.get(ticket.citizen_id)
            assignments = tuple(await uow.assignments.for_ticket(ticket_id))
        return TicketDetail(ticket, citizen, assignments)

    async def by_operator_place(
        self, chat_id: int, *, thread_id: int | None = None, card_message_id: int | None = None
    ) -> Ticket | None:
        """The submitted ticket of a forum topic, or whose card a message replies to."""
        async with self._uow_factory() as uow:
            ticket = None
            if thread_id is not None:
                ticket = await uow.tickets.by_operator_thread(chat_id, thread_id)
            if ticket is None and card_message_id is not None:
                ticket = await uow.tickets.by_operator_card(chat_id, card_message_id)
        return None if ticket is None or ticket.is_draft else ticket

    async def language_of(self, telegram_id: int) -> str | None:
        """Return the language a citizen chose, or None when unknown."""
        async with self._uow_factory() as uow:
            citizen = await uow.citizens.get_by_telegram_id(telegram_id)
        return citizen.language if citizen else None

    async def pending_deliveries(self) -> int:
        """Return how many outbox deliveries are still owed."""
        async with self._uow_factory() as uow:
            return await uow.outbox.pending_count()
