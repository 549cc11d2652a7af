"""The webhook adapter of the outbox: signed POSTs of ``AGENCY_WEBHOOK`` rows.

Failures are classed for the outbox worker: 5xx, time-outs and network errors are
TRANSIENT (exponential backoff); 429 is RATE_LIMITED (``Retry-After`` honoured); 401, 403,
404, 405 and 410 mean our configuration is wrong (DESTINATION: the admins are told); other
4xx mean the receiver rejects this document (REJECTED, final). A 409 means the receiver has
this idempotency key already: delivered. After ``WEBHOOK_ATTEMPTS`` failures the worker
dead-letters the row (``agencies.webhook_dead``).
"""

from __future__ import annotations

import json
import logging

import aiohttp

from bot import __version__
from bot.agencies_http.eido import incident_document
from bot.agencies_http.signing import AGENCY_HEADER, signed_headers
from bot.domain.model import OutboxMessage
from bot.services.agencies import AgencyDirectory
from bot.services.ports import Clock, DeliveryError, DeliveryResult, Fault
from bot.services.queries import TicketQueries

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
TOTAL_TIMEOUT = 10.0
DESTINATION_STATUSES = frozenset({401, 403, 404, 405, 410})
MAX_RETRY_AFTER = 300.0


class WebhookDeliverer:
    """POSTs the EIDO document of a row to its agency's ``webhook_url``, signed."""

    def __init__(
        self,
        queries: TicketQueries,
        directory: AgencyDirectory,
        clock: Clock,
        *,
        total_timeout: float = TOTAL_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self._queries = queries
        self._directory = directory
        self._clock = clock
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": f"siaga112/{__version__}"}
            )
        return self._session

    async def aclose(self) -> None:
        """Closes the HTTP connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, message: OutboxMessage) -> DeliveryResult | None:
        """Send one row; return the receiver's status, or raise DeliveryError."""
        payload = message.payload
        code = str(payload.get("agency", ""))
        agency = self._directory.get(code)
        if agency is None or agency.webhook_url is None or not agency.webhook_secret:
            raise DeliveryError(f"agency {code} has no webhook configured", fault=Fault.REJECTED)
        detail = await self._queries.detail(message.ticket_id or 0)
        if detail is None:
            raise DeliveryError("ticket not found", fault=Fault.REJECTED)
        key = str(payload.get("idempotency_key") or f"outbox-{message.id}")
        assignment = next((a for a in detail.assignments if a.agency_code == code), None)
        now = self._clock.now()
        document = incident_document(
            detail.ticket, detail.citizen, agency, assignment,
            event=str(payload.get("event", "dispatch")), key=key, sent_at=now,
        )  # fmt: skip
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        headers = signed_headers(agency.webhook_secret.value, now, body, key)
        headers |= {"Content-Type": "application/json", AGENCY_HEADER: agency.code}
        if message.repeat:
            headers["X-Siaga112-Repeat"] = "1"
        try:
            async with self._client().post(agency.webhook_url, data=body, headers=headers) as got:
                status = got.status
                retry_after = got.headers.get("Retry-After")
                await got.read()
        except TimeoutError as exc:
            raise DeliveryError(f"webhook {code}: timed out") from exc
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"webhook {code}: {type(exc).__name__}") from exc
        return _outcome(code, status, retry_after, key)


def _outcome(code: str, status: int, retry_after: str | None, key: str) -> DeliveryResult:
    if 200 <= status < 300 or status == 409:
        return DeliveryResult(extra={"http_status": status, "idempotency_key": key})
    reason = f"webhook {code}: HTTP {status}"
    if status == 429:
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        wait = min(wait, MAX_RETRY_AFTER) if wait is not None else None
        raise DeliveryError(reason, fault=Fault.RATE_LIMITED, retry_after=wait)
    if status >= 500:
        raise DeliveryError(reason)
    if status in DESTINATION_STATUSES:
        raise DeliveryError(reason, fault=Fault.DESTINATION)
    raise DeliveryError(reason, fault=Fault.REJECTED)
