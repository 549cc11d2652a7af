from __future__ import annotations

from tests.flow.conftest import Harness


async def test_start_is_answered_in_indonesian_when_language_is_id(harness: Harness) -> None:
    user = harness.telegram.add_user(language_code="id")
    await user.send_command("start")
    reply = await user.wait_reply()
    assert "Laporkan" in (reply.text or "") or "darurat" in (reply.text or "").lower()
