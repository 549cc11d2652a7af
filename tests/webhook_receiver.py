"""An agency's webhook receiver for tests and benchmarks (aiohttp on 127.0.0.1).

It checks each request's signature on its own (HMAC-SHA256 over ``"<timestamp>.<body>"``,
not with the code under test), answers from a script (``500``, ``"timeout"``, ``200`` …;
the last entry repeats) and keeps every delivery it accepted by idempotency key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    """One request as the receiver saw it."""

    key: str
    signature_ok: bool
    answered: int | str
    document: dict[str, Any]
    at: float


@dataclass
class WebhookReceiver:
    """A loopback HTTP server playing an agency's system."""

    secret: str
    script: list[int | str] = field(default_factory=lambda: [200])
    timeout_seconds: float = 5.0
    requests: list[Received] = field(default_factory=list)
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.port}/eido"

    def answer(self, script: Iterable[int | str]) -> None:
        """Sets the answers of the next requests (the last one repeats)."""
        self.script = list(script)

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/eido", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def signed_by_secret(self, request: web.Request, body: bytes) -> bool:
        timestamp = request.headers.get("X-Siaga112-Timestamp", "")
        mac = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        expected = "sha256=" + mac.hexdigest()
        return hmac.compare_digest(expected, request.headers.get("X-Siaga112-Signature", ""))

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key", "")
        ok = self.signed_by_secret(request, body)
        answer: int | str = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if not ok:
            answer = 401
        self.requests.append(Received(key, ok, answer, json.loads(body), time.perf_counter()))
        self.arrived.set()
        if answer == "timeout":
            await asyncio.sleep(self.timeout_seconds)
            return web.Response(status=200)
        status = int(answer)
        if status == 200 and key in self.accepted:
            status = 409  # the agency has it already
        elif status == 200:
            self.accepted[key] = json.loads(body)
        return web.json_response({"ok": status < 300}, status=status)
