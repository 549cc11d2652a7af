"""The signed inbound status endpoint, over loopback: refusals and a status that counts."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bot.agencies_http.server import STATUS_PATH, AgencyApi
from bot.domain.model import TicketStatus
from bot.services.outbox_kinds import CITIZEN_STATUS
from tests.unit.agency_support import SECRET, Desk, desk
from tests.unit.console_support import DEWI, add_ticket, deliver_all, rows, ticket_of


@pytest.fixture
async def d() -> Desk:
    return await desk()


@pytest.fixture
async def api(d: Desk) -> AsyncIterator[AgencyApi]:
    woken: list[int] = []
    server = AgencyApi(d.agencies, d.clock, host="127.0.0.1", port=0,
                       on_change=lambda: woken.append(1))  # fmt: skip
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _post(
    api: AgencyApi,
    body: dict[str, Any],
    *,
    timestamp: int,
    key: str = "req-1",
    secret: str = SECRET,
    agency: str = "DINKES",
) -> tuple[int, dict[str, Any]]:
    raw = json.dumps(body).encode()
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    headers = {
        "X-Siaga112-Agency": agency,
        "X-Siaga112-Timestamp": str(timestamp),
        "X-Siaga112-Signature": "sha256=" + mac.hexdigest(),
        "Idempotency-Key": key,
        "Content-Type": "application/json",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{api.port}{STATUS_PATH}", data=raw, headers=headers
        ) as got,  # fmt: skip
    ):
        return got.status, await got.json()


async def _dispatched_ref(d: Desk) -> tuple[int, str]:
    ticket = await add_ticket(d.uow_factory)
    assert (await d.console.dispatch(DEWI, ticket.id or 0, ["DINKES"])).ok
    await deliver_all(d.uow_factory, d.clock.now())
    return ticket.id or 0, ticket.ref or ""


async def test_valid_status_reaches_the_citizen_when_signed_and_fresh(
    d: Desk, api: AgencyApi
) -> None:
    ticket_id, ref = await _dispatched_ref(d)
    now = int(d.clock.now().timestamp())
    status, body = await _post(
        api, {"reference": ref, "status": "en_route", "etaMinutes": 12}, timestamp=now
    )
    assert (status, body) == (200, {"ok": True, "reference": ref, "status": "en_route"})
    ticket = await ticket_of(d.uow_factory, ticket_id)
    assert (ticket.status, ticket.eta_minutes) == (TicketStatus.EN_ROUTE, 12)
    [notice] = [m for m in rows(d.uow_factory, CITIZEN_STATUS) if m.sent_at is None]
    assert notice.payload["status"] == "en_route"
    assert notice.payload["eta_minutes"] == 12
    assert notice.payload["agencies"] == ["Ambulans Hebat"]
    event = [e for e in d.uow_factory.store.events.values() if e.kind == "agency_en_route"]
    assert [e.actor for e in event] == ["agency:DINKES:api"]


async def test_request_is_refused_when_the_signature_is_bad(d: Desk, api: AgencyApi) -> None:
    ticket_id, ref = await _dispatched_ref(d)
    now = int(d.clock.now().timestamp())
    status, body = await _post(
        api, {"reference": ref, "status": "acknowledged"}, timestamp=now, secret="guessed"
    )
    assert (status, body["error"]) == (401, "bad_signature")
    status, body = await _post(
        api, {"reference": ref, "status": "acknowledged"}, timestamp=now, agency="NOBODY"
    )
    assert (status, body["error"]) == (401, "unknown_agency")
    assert (await ticket_of(d.uow_factory, ticket_id)).status is TicketStatus.DISPATCHED


@pytest.mark.parametrize("skew", [-301, 301])
async def test_request_is_refused_when_outside_the_five_minute_window(
    d: Desk, api: AgencyApi, skew: int
) -> None:
    _, ref = await _dispatched_ref(d)
    now = int(d.clock.now().timestamp())
    status, body = await _post(
        api, {"reference": ref, "status": "acknowledged"}, timestamp=now + skew
    )
    assert (status, body["error"]) == (401, "stale")


async def test_replayed_request_is_refused_when_its_key_was_seen(d: Desk, api: AgencyApi) -> None:
    ticket_id, ref = await _dispatched_ref(d)
    now = int(d.clock.now().timestamp())
    first = await _post(api, {"reference": ref, "status": "acknowledged"}, timestamp=now)
    d.clock.advance(seconds=30)
    replay = await _post(api, {"reference": ref, "status": "acknowledged"}, timestamp=now)
    assert first[0] == 200
    assert (replay[0], replay[1]["error"]) == (409, "replay")
    events = [e for e in d.uow_factory.store.events.values() if e.ticket_id == ticket_id]
    assert [e.kind for e in events].count("agency_acknowledged") == 1


async def test_request_is_refused_when_the_reference_is_unknown_or_not_the_agencys(
    d: Desk, api: AgencyApi
) -> None:
    await _dispatched_ref(d)
    other = await add_ticket(d.uow_factory, telegram_id=5002)  # not handed to DINKES
    now = int(d.clock.now().timestamp())
    unknown = await _post(api, {"reference": "SMG-000000-0000", "status": "on_scene"},
                          timestamp=now)  # fmt: skip
    not_ours = await _post(api, {"reference": other.ref, "status": "on_scene"}, timestamp=now,
                           key="req-2")  # fmt: skip
    assert (unknown[0], unknown[1]["error"]) == (404, "not_found")
    assert (not_ours[0], not_ours[1]["error"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"reference": "X", "status": "teleported"}, "bad_body"),
        ({"status": "on_scene"}, "bad_body"),
        ({"reference": "X", "status": "en_route", "etaMinutes": "soon"}, "bad_eta"),
        ({"reference": "X", "status": "cannot_handle", "reason": "lunch"}, "bad_body"),
    ],
)
async def test_request_is_refused_when_the_body_is_malformed(
    d: Desk, api: AgencyApi, body: dict[str, Any], error: str
) -> None:
    status, answer = await _post(api, body, timestamp=int(d.clock.now().timestamp()))
    assert (status, answer["error"]) == (400, error)
