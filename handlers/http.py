"""The Bot API's HTTP client: two pools (interactive calls, broadcast copies), each behind a
fair gate, on aiohttp's client (``TELEGRAM_HTTP_CLIENT=aiohttp``, the default) or PTB's own
``HTTPXRequest`` (``httpx``).

Why aiohttp: httpx (httpcore, anyio and h11, all Python) cost the bot over a millisecond of
CPU per call; aiohttp's client parses in C. A bare echo bot against the fake Bot API (one
call per update, bench/intake.py's echo, 50 people flat out) took 2.07 ms of CPU per update
with PTB's httpx and 0.70 ms with this client (median of 5 runs each).
:class:`AiohttpRequest` keeps PTB's contract: the same timeouts (connect, read, write,
pool), ``TimedOut`` for a timeout, ``NetworkError`` for a failed connection, the status
and body handed back for PTB to read; parameters form-encoded, files as multipart, as
``HTTPXRequest`` sends them. ``getUpdates`` takes the same client (a pool of one connection).

The gate: each call first waits for one of the pool's turns on an ``asyncio.Semaphore``
(first come, first served, O(1)) with PTB's pool timeout and its error: ``TimedOut``, "not
sent". httpcore kept waiting requests in a list and walked it against every connection of
the pool at each hand-over; with the gate no client ever queues inside.

:class:`SplitRequest` keeps broadcast copies (marked by the rate limiter with
:func:`bulk_calls`) on connections of their own: a paid broadcast's 16 streams never take the
connection a citizen's reply needs, and each pool stays small (see :mod:`bot.sizes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
import certifi
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest, RequestData

HttpClient = Literal["aiohttp", "httpx"]

_NOT_SENT = (
    "Pool timeout: all connections were in use for the whole pool timeout. "
    "The request was *not* sent to Telegram."
)
_FORM = "application/x-www-form-urlencoded"


class _Turn:
    """Holds one of the gate's turns; ``TimedOut`` ("not sent") after ``patience`` seconds.

    A free turn is taken at once, without a timer (``asyncio.timeout``: a loop handle made
    and cancelled per call), as at a person's pace nearly every call finds one. At 50
    citizens flat out the gate is mostly full and the timer stays: py-spy counted the turn at
    2.0 % of the bot's samples as a generator-based context manager, 1.8 % as this class.
    """

    __slots__ = ("_gate", "_patience")

    def __init__(self, gate: asyncio.Semaphore, patience: float | None) -> None:
        self._gate = gate
        self._patience = patience

    async def __aenter__(self) -> None:
        gate = self._gate
        if not gate.locked():  # a turn is free and nobody waits: acquire() does not wait
            await gate.acquire()
            return
        try:
            async with asyncio.timeout(self._patience):
                await gate.acquire()
        except TimeoutError:
            raise TimedOut(_NOT_SENT) from None

    async def __aexit__(self, *_: object) -> None:
        self._gate.release()


@functools.cache
def _tls() -> ssl.SSLContext:
    """The certificate authorities httpx trusts (certifi's), loaded once per process."""
    return ssl.create_default_context(cafile=certifi.where())


def _given(value: Any, default: float | None) -> float | None:
    """A call's timeout, or the request's default when the call left it to PTB's default."""
    return default if isinstance(value, DefaultValue) else value


class GatedRequest(HTTPXRequest):
    """``HTTPXRequest`` whose calls first wait for one of ``connection_pool_size`` turns."""

    __slots__ = ("_gate",)

    def __init__(self, connection_pool_size: int, **kwargs: Any) -> None:
        super().__init__(connection_pool_size=connection_pool_size, **kwargs)
        self._gate = asyncio.Semaphore(connection_pool_size)

    async def do_request(  # noqa: PLR0917 - BaseRequest's signature
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Waits for a turn (at most the pool timeout, else ``TimedOut``), then calls."""
        async with _Turn(self._gate, _given(pool_timeout, self._client.timeout.pool)):
            return await super().do_request(
                url, method, request_data, read_timeout, write_timeout, connect_timeout,
                pool_timeout,
            )  # fmt: skip


class AiohttpRequest(BaseRequest):
    """PTB's request interface on an aiohttp client session of ``connection_pool_size``
    connections, each call first waiting for one of as many turns (see the module).

    Timeouts, as PTB means them: ``connect_timeout`` to open a connection,
    ``read_timeout`` between two reads of the answer, and the whole call bounded by
    connect + write + read (aiohttp has no write timeout of its own; ``media_write_timeout``
    replaces ``write_timeout`` when files are sent); ``pool_timeout`` for a turn.
    """

    __slots__ = (
        "_connect", "_gate", "_media_write", "_open", "_pool", "_read", "_session", "_size",
        "_timeout", "_write",
    )  # fmt: skip

    def __init__(
        self,
        connection_pool_size: int,
        *,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._size = connection_pool_size
        self._connect = connect_timeout
        self._read = read_timeout
        self._write = write_timeout
        self._media_write = media_write_timeout
        self._pool = pool_timeout
        self._gate = asyncio.Semaphore(connection_pool_size)
        self._session: aiohttp.ClientSession | None = None
        self._open = False
        self._timeout = self._client_timeout(connect_timeout, write_timeout, read_timeout)

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout."""
        return self._read

    @staticmethod
    def _client_timeout(
        connect: float | None, write: float | None, read: float | None
    ) -> aiohttp.ClientTimeout:
        whole = (
            None if None in (connect, write, read) else (connect or 0) + (write or 0) + (read or 0)
        )
        return aiohttp.ClientTimeout(total=whole, sock_connect=connect, sock_read=read)

    async def initialize(self) -> None:
        """Lets calls through (again, after a shutdown); the session opens at the first."""
        self._open = True

    async def shutdown(self) -> None:
        """Closes the client session and its connections."""
        self._open = False
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _client(self) -> aiohttp.ClientSession:
        """The client session, opened at the first call: a pool PTB initialised but never
        used (``getUpdates``'s, after a failed start) leaves nothing open behind."""
        if not self._open:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._size, ssl=_tls()),
                headers={"User-Agent": self.USER_AGENT},
            )
        return self._session

    async def do_request(  # noqa: PLR0917 - BaseRequest's signature
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Waits for a turn, sends the call and returns the answer's status and body."""
        session = self._client()
        files = request_data.multipart_data if request_data is not None else None
        body: aiohttp.FormData | aiohttp.BytesPayload | None = None
        if request_data is not None:
            fields = request_data.json_parameters
            if files:
                body = aiohttp.FormData(fields)
                for name, (filename, content, mime_type) in files.items():
                    body.add_field(name, content, filename=filename, content_type=mime_type)
            else:  # what aiohttp's FormData sends for plain fields, without its multipart
                # writer and random boundary made for every call first (a tenth of a call)
                body = aiohttp.BytesPayload(urlencode(fields).encode(), content_type=_FORM)
        timeout = self._timeout
        defaults = (connect_timeout, write_timeout, read_timeout)
        if files or not all(isinstance(value, DefaultValue) for value in defaults):
            timeout = self._client_timeout(
                _given(connect_timeout, self._connect),
                _given(write_timeout, self._media_write if files else self._write),
                _given(read_timeout, self._read),
            )
        async with _Turn(self._gate, _given(pool_timeout, self._pool)):
            try:
                async with session.request(method, url, data=body, timeout=timeout) as answer:
                    return answer.status, await answer.read()
            except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors as well
                raise TimedOut from exc
            except aiohttp.ClientError as exc:
                raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc


_BULK: ContextVar[bool] = ContextVar("siaga112_bulk_call", default=False)


@contextlib.contextmanager
def bulk_calls() -> Iterator[None]:
    """Bot API calls made inside go through the broadcast pool."""
    token = _BULK.set(True)
    try:
        yield
    finally:
        _BULK.reset(token)


def in_bulk_calls() -> bool:
    """Whether calls made here go through the broadcast pool."""
    return _BULK.get()


def gated_request(client: HttpClient, connection_pool_size: int, **kwargs: Any) -> BaseRequest:
    """A gated pool of ``connection_pool_size`` connections on the chosen HTTP client."""
    if client == "aiohttp":
        return AiohttpRequest(connection_pool_size, **kwargs)
    return GatedRequest(connection_pool_size, **kwargs)


class SplitRequest(BaseRequest):
    """Interactive calls and broadcast copies on separate gated pools (see the module)."""

    __slots__ = ("_bulk", "_interactive")

    def __init__(
        self, interactive: int, bulk: int, client: HttpClient = "aiohttp", **timeouts: Any
    ) -> None:
        self._interactive = gated_request(client, interactive, **timeouts)
        self._bulk = gated_request(client, bulk, **timeouts)

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (both pools have the same)."""
        return self._interactive.read_timeout

    async def initialize(self) -> None:
        """Opens both pools."""
        await self._interactive.initialize()
        await self._bulk.initialize()

    async def shutdown(self) -> None:
        """Closes both pools."""
        try:
            await self._bulk.shutdown()
        finally:
            await self._interactive.shutdown()

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        """Sends through the broadcast pool inside :func:`bulk_calls`, else the other (the
        arguments are :meth:`BaseRequest.do_request`'s, passed on as they came)."""
        pool = self._bulk if in_bulk_calls() else self._interactive
        return await pool.do_request(*args, **kwargs)
