"""Where a chat lives now: a Telegram group upgraded to a supergroup gets a new id.

Telegram answers a send to the old id with ``migrate_to_chat_id``; the new id is stored
(``chat_aliases``) and every later delivery to the old id goes to the new one, in this
process at once and in any other after its first refusal (or restart).
"""

from __future__ import annotations

import logging

from bot.services.ports import Clock, UnitOfWorkFactory

log = logging.getLogger(__name__)

MAX_HOPS = 5  # a chat that moved more often than this is a loop


class ChatDirectory:
    """Resolves configured chat ids through the stored migrations (cached per process)."""

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
        self._current: dict[int, int] = {}

    async def resolve(self, chat_id: int) -> int:
        """Return the id the chat has now (``chat_id`` itself when it never moved)."""
        known = self._current.get(chat_id)
        if known is not None:
            return known
        current = chat_id
        async with self._read_uow_factory() as uow:
            for _ in range(MAX_HOPS):
                moved_to = await uow.chat_aliases.get(current)
                if moved_to is None or moved_to == chat_id:
                    break
                current = moved_to
        self._current[chat_id] = current
        return current

    async def moved(self, old_id: int, new_id: int) -> None:
        """Remembers durably that ``old_id`` is now ``new_id``."""
        async with self._uow_factory() as uow:
            await uow.chat_aliases.add(old_id, new_id, self._clock.now())
            await uow.commit()
        for configured, current in list(self._current.items()):
            if current == old_id:
                self._current[configured] = new_id
        self._current[old_id] = new_id
        log.warning("chat %s became %s (a group upgraded to a supergroup): following it",
                    old_id, new_id)  # fmt: skip
