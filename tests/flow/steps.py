"""Steps a citizen takes, shared by the flow tests (buttons found by their stable codes)."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.double.botapi_model import StoredMessage
from bot.double.simulated import SimUser

REF = re.compile(r"SMG-\d{6}-\d{4}")


def find_button(user: SimUser, action: str, *, fresh: bool = True) -> tuple[StoredMessage, str]:
    """The newest message offering the button whose callback data ends with ``|action``.

    ``fresh``: only among the bot's answers to the user's last action (older messages keep
    their buttons on screen, and pressing one of those is the stale-button case).
    """
    after = user._mark[1] if fresh else 0
    # Newest first; a menu edited in place since the user's last action counts as fresh.
    shown = sorted(user.messages, key=lambda m: m.times[-1] if m.times else 0.0, reverse=True)
    for message in shown:
        if message.message_id <= after and not (
            message.times and message.times[-1] >= user.acted_at
        ):
            continue
        for button in message.inline_buttons:
            data = str(button.get("callback_data", ""))
            if data.endswith(f"|{action}") or data == action:
                return message, data
    raise LookupError(f"no button {action!r} on screen; last: {user.last_message}")


def _try_find(user: SimUser, action: str, *, fresh: bool) -> tuple[StoredMessage, str] | None:
    try:
        return find_button(user, action, fresh=fresh)
    except LookupError:
        return None


async def wait_button(
    user: SimUser, action: str, *, fresh: bool = True
) -> tuple[StoredMessage, str]:
    """Waits until a button with this action code is on screen."""
    found: tuple[StoredMessage, str] = await user.telegram.wait_for(
        lambda: _try_find(user, action, fresh=fresh)
    )
    return found


async def tap(user: SimUser, action: str, *, fresh: bool = True) -> StoredMessage:
    """Presses a button by its action code and waits until the bot has answered the press;
    returns the bot's newest message sent since, else the pressed message (edited in place)."""
    message, data = await wait_button(user, action, fresh=fresh)
    query = await user.press(data, on=message)
    model = user.telegram.model
    await user.telegram.wait_for(lambda: str(query["id"]) in model.callback_answers)
    after, since = user._mark[1], user.acted_at

    def answered() -> StoredMessage | None:  # some handlers answer the press first
        sent = [m for m in user.messages if m.message_id > after]
        if sent:
            return sent[-1]
        pressed = model.message(message.chat_id, message.message_id)
        return pressed if pressed is not None and pressed.times[-1] >= since else None

    found: StoredMessage = await user.telegram.wait_for(answered)
    return found


async def shown(
    user: SimUser, predicate: Callable[[StoredMessage], bool] | None = None
) -> StoredMessage:
    """The newest bot message sent or edited in place since the user's last action (that
    matches ``predicate``): a screen the bot showed in answer."""
    after, since = user._mark[1], user.acted_at

    def find() -> StoredMessage | None:
        fresh = [
            m for m in user.messages if m.message_id > after or (m.times and m.times[-1] >= since)
        ]
        fresh.sort(key=lambda m: m.times[-1] if m.times else 0.0)
        matching = [m for m in fresh if predicate is None or predicate(m)]
        return matching[-1] if matching else None

    found: StoredMessage = await user.telegram.wait_for(find)
    return found


async def reacted(user: SimUser, sent: dict[str, object]) -> list[dict[str, object]]:
    """Waits until the bot has reacted to the user's message; returns the reaction."""
    model = user.telegram.model
    message_id = int(str(sent["message_id"]))

    def reaction() -> list[dict[str, object]] | None:
        stored = model.message(user.id, message_id)
        return stored.reaction if stored is not None and stored.reaction else None

    found: list[dict[str, object]] = await user.telegram.wait_for(reaction)
    return found


async def start_report(user: SimUser, group: str = "MEDICAL") -> None:
    """/start, «report», and the category group."""
    await user.send_command("start")
    await tap(user, "report")
    await tap(user, f"grp|{group}")


async def gps_location(user: SimUser) -> None:
    """Shares GPS and confirms the emergency is there."""
    await user.share_location()
    await tap(user, "locok")


async def own_contact_and_name(user: SimUser) -> None:
    """Shares their own contact (its name is taken: no name question)."""
    await user.share_contact(own=True)
    await wait_button(user, "submit")


async def submit(user: SimUser) -> str:
    """From the details screen (details may have been sent since): send; returns the ticket
    reference."""
    await tap(user, "submit", fresh=False)
    reply = await user.wait_reply(lambda m: bool(REF.search(m.text or "")))
    found = REF.search(reply.text or "")
    assert found is not None
    return found.group(0)


async def full_gps_report(user: SimUser, group: str = "MEDICAL", details: str | None = None) -> str:
    await start_report(user, group)
    await gps_location(user)
    await own_contact_and_name(user)
    if details:
        await reacted(user, await user.send_text(details))
    return await submit(user)
