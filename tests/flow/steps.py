"""Steps a citizen takes, shared by the flow tests (buttons found by their stable codes)."""

from __future__ import annotations

import re

from bot.double.botapi_model import StoredMessage
from bot.double.simulated import SimUser

REF = re.compile(r"SMG-\d{6}-\d{4}")


def find_button(user: SimUser, action: str, *, fresh: bool = True) -> tuple[StoredMessage, str]:
    """The newest message offering the button whose callback data ends with ``|action``.

    ``fresh``: only among the bot's answers to the user's last action (older messages keep
    their buttons on screen, and pressing one of those is the stale-button case).
    """
    after = user._mark[1] if fresh else 0
    for message in reversed(user.messages):
        if message.message_id <= after:
            break
        for button in message.inline_buttons:
            data = str(button.get("callback_data", ""))
            if data.endswith(f"|{action}") or data == action:
                return message, data
    raise LookupError(f"no button {action!r} on screen; last: {user.last_message}")


def _try_find(user: SimUser, action: str) -> tuple[StoredMessage, str] | None:
    try:
        return find_button(user, action)
    except LookupError:
        return None


async def wait_button(user: SimUser, action: str) -> tuple[StoredMessage, str]:
    """Waits until a button with this action code is on screen."""
    found: tuple[StoredMessage, str] = await user.telegram.wait_for(lambda: _try_find(user, action))
    return found


async def tap(user: SimUser, action: str) -> StoredMessage:
    """Presses a button by its action code and waits for the bot's next message."""
    message, data = await wait_button(user, action)
    await user.press(data, on=message)
    return await user.wait_reply()


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
    await user.share_contact(own=True)
    await tap(user, "name")


async def submit(user: SimUser) -> str:
    """From the details step: done, then send; returns the ticket reference."""
    await tap(user, "done")
    await tap(user, "submit")
    reply = await user.wait_reply(lambda m: bool(REF.search(m.text or "")))
    found = REF.search(reply.text or "")
    assert found is not None
    return found.group(0)


async def full_gps_report(user: SimUser, group: str = "MEDICAL", details: str | None = None) -> str:
    await start_report(user, group)
    await gps_location(user)
    await own_contact_and_name(user)
    if details:
        await user.send_text(details)
        await user.wait_reply()
    return await submit(user)
