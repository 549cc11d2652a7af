"""The inbound status endpoint: agency systems post signed status updates.

``POST /v1/status`` with a JSON body ``{"reference": "SMG-…", "status": "acknowledged" |
"en_route" | "on_scene" | "completed" | "cannot_handle", "etaMinutes": 10, "reason":
"no_unit"}`` and the headers ``X-Siaga112-Agency`` (the agency's code),
``X-Siaga112-Timestamp``, ``X-Siaga112-Signature`` (HMAC-SHA256 with the agency's webhook
secret over ``"<timestamp>.<body>"``) and ``Idempotency-Key``. Refused: an unknown agency
or bad signature (401), a timestamp outside 5 minutes (401), a replayed key (409), an unknown
reference or a ticket not handed to that agency (404), a step that does not fit (409). A
valid status counts exactly like the button on the agency's card. Off unless
``AGENCY_API_LISTEN`` is set.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.agencies_http.signing import (
    AGENCY_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    check,
)
from bot.domain.handoff import AgencyStep, DeclineReason
from bot.services.agencies import AgencyService, AgencyStatus
from bot.services.ports import Clock

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
MAX_KEY = 128
STATUS_PATH = "/v1/status"
HTTP_STATUS = {
    AgencyStatus.DONE: 200,
    AgencyStatus.NOT_ALLOWED: 401,
    AgencyStatus.NOT_FOUND: 404,
    AgencyStatus.REFUSED: 409,
    AgencyStatus.REPLAY: 409,
}


def _answer(http_status: int, error: str | None = None, **extra: Any) -> web.Response:
    body = {"ok": error is None, **({"error": error} if error else {}), **extra}
    return web.json_response(body, status=http_status)


class AgencyApi:
    """The aiohttp application and its server (``start``/``stop`` with the bot)."""

    def __init__(
        self,
        service: AgencyService,
        clock: Clock,
        *,
        host: str = "127.0.0.1",
        port: int = 8088,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._service = service
        self._on_change = on_change
        self._clock = clock
        self._host = host
        self._port = port
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_post(STATUS_PATH, self.status)
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the real one when started with port 0)."""
        if self._runner is not None:
            for site in self._runner.sites:
                server = getattr(site, "_server", None)
                sockets = getattr(server, "sockets", None) or []
                for sock in sockets:
                    return int(sock.getsockname()[1])
        return self._port

    async def start(self) -> None:
        """Starts listening."""
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info("agency status endpoint listening on %s:%s", self._host, self.port)

    async def stop(self) -> None:
        """Stops listening and closes open requests."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def status(self, request: web.Request) -> web.Response:
        """Checks the signature, the window and the key, then records the agency's step."""
        code = request.headers.get(AGENCY_HEADER, "")
        agency = self._service.directory.get(code)
        if agency is None or not agency.webhook_secret:
            return _answer(401, "unknown_agency")
        body = await request.read()
        refused = check(
            agency.webhook_secret.value, request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER), body, self._clock.now(),
        )  # fmt: skip
        if refused is not None:
            log.warning("agency %s: status update refused (%s)", code, refused.value)
            return _answer(401, refused.value)
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key or len(key) > MAX_KEY:
            return _answer(400, "idempotency_key_required")
        try:
            data = json.loads(body)
            step = AgencyStep(data["status"])
            reference = str(data["reference"])
            eta = data.get("etaMinutes")
            reason = DeclineReason(data["reason"]) if data.get("reason") else None
        except (ValueError, KeyError, TypeError):
            return _answer(400, "bad_body")
        if eta is not None and (not isinstance(eta, int) or isinstance(eta, bool)):
            return _answer(400, "bad_eta")
        result = await self._service.report(
            code, reference, step, eta_minutes=eta, reason=reason, request_key=key
        )
        if result.status is AgencyStatus.REPLAY:
            log.warning("agency %s: replayed request refused", code)
            return _answer(409, "replay")
        if not result.ok:
            error = result.why or result.status.value
            return _answer(HTTP_STATUS[result.status], error)
        if self._on_change is not None:
            self._on_change()  # the outbox sends the notices now
        log.info("agency %s: status %s for ticket %s", code, step.value,
                 result.ticket.id if result.ticket else None)  # fmt: skip
        return _answer(200, reference=reference, status=step.value)
