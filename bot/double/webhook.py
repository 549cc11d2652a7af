"""Flow tier: the fake Bot API's webhook, pushing each update to the URL the bot set.

Once the bot calls ``setWebhook`` (PTB's ``Updater.start_webhook``, ``siaga112 run
--webhook-url``), Telegram stops answering ``getUpdates`` (409) and POSTs every update, as
JSON, to that URL instead, with the ``secret_token`` the bot gave in the header
``X-Telegram-Bot-Api-Secret-Token``, over at most ``max_connections`` connections at once
(default 40, 1-100). An update leaves the queue only when the bot's server answers it with a
2xx status; a refused or failed request is retried later, and the failure is what
``getWebhookInfo`` shows as ``last_error_message``. :class:`WebhookPusher` does that for
:class:`bot.double.fake_bot_api.FakeBotApi`, with two choices of the double's own:

* each chat's updates go one at a time, in order (a later update of a chat waits while an
  earlier one is in flight or waiting for its retry; Telegram does not promise an order
  across concurrent connections, and PTB's webhook server answers as soon as it has queued
  the update, so this costs the bot nothing);
* retries come quickly (``retry_first`` seconds, doubling up to ``retry_max``) so that a
  test sees a bot whose server came up late, or refused a request, get the update after all.

The double accepts plain ``http://`` URLs on any port (Telegram wants HTTPS on 443, 80, 88 or
8443): a test's bot listens on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.double.botapi_model import BotApiModel
from bot.double.updates import JSON

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header's name
"""The header that carries the bot's ``secret_token`` with every webhook request."""


def order_key(update: JSON) -> int | None:
    """The chat whose updates keep their order (None: the update waits for no other)."""
    for kind in ("message", "edited_message", "channel_post", "edited_channel_post"):
        if kind in update:
            return int(update[kind]["chat"]["id"])
    query = update.get("callback_query")
    if query is not None:
        message = query.get("message")
        return int(message["chat"]["id"]) if message else int(query["from"]["id"])
    for kind in ("my_chat_member", "chat_member"):
        if kind in update:
            return int(update[kind]["chat"]["id"])
    return None


class WebhookPusher:
    """Pushes the model's pending updates to its webhook while one is set (see the module)."""

    def __init__(
        self,
        model: BotApiModel,
        *,
        retry_first: float = 0.05,
        retry_max: float = 2.0,
        timeout: float = 30.0,
    ) -> None:
        self.model = model
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.timeout = timeout
        self.on_push: Callable[[JSON], None] | None = None
        """Called as each request starts (the benchmark stamps when an update left)."""
        self.pushed = 0
        """Requests the bot's server answered with a 2xx status."""
        self.refused = 0
        """Requests that failed: no connection, a timeout, or another status."""
        self._flying: dict[int, asyncio.Task[None]] = {}
        self._retry_at: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False

    async def run(self) -> None:
        """Pushes until cancelled (then the requests in flight are cancelled too: their
        updates stay pending)."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(limit=100)  # max_connections is at most 100
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self._session = session
            self._stopping = False
            try:
                while not self._stopping:
                    await self.model.changed(self._start_due())
            finally:
                flying = list(self._flying.values())
                for task in flying:
                    task.cancel()
                await asyncio.gather(*flying, return_exceptions=True)
                self._session = None

    def _start_due(self) -> float:
        """Starts a request for each pending update that may go now; returns the seconds
        until the next retry falls due (at most one)."""
        model = self.model
        if not model.webhook_url:
            return 1.0
        now = asyncio.get_running_loop().time()
        wait = 1.0
        busy: set[int] = set()  # chats with an earlier update in flight or waiting
        for update in model.pending_updates:
            update_id = int(update["update_id"])
            key = order_key(update)
            if key is not None and key in busy:
                continue
            if key is not None:
                busy.add(key)
            if update_id in self._flying:
                continue
            due = self._retry_at.get(update_id, now)
            if due > now:
                wait = min(wait, due - now)
                continue
            if len(self._flying) >= model.webhook_max_connections:
                break
            self._flying[update_id] = asyncio.create_task(self._push(update))
        return wait

    async def _push(self, update: JSON) -> None:
        update_id = int(update["update_id"])
        model = self.model
        headers = {SECRET_HEADER: model.webhook_secret} if model.webhook_secret else {}
        error: str | None = None
        try:
            if self.on_push is not None:
                self.on_push(update)
            session = self._session
            if session is None:
                raise RuntimeError("the pusher is not running")
            async with session.post(model.webhook_url, json=update, headers=headers) as got:
                await got.read()
                if not 200 <= got.status < 300:
                    error = f"Wrong response from the webhook: {got.status} {got.reason}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"Connection failed: {exc.__class__.__name__}: {exc}"
        finally:
            self._flying.pop(update_id, None)
        if error is None:
            self.pushed += 1
            self._retry_at.pop(update_id, None)
            self._failures.pop(update_id, None)
            model.pending_updates = [
                u for u in model.pending_updates if u["update_id"] != update_id
            ]
        else:
            self.refused += 1
            failures = self._failures[update_id] = self._failures.get(update_id, 0) + 1
            delay = min(self.retry_first * 2 ** (failures - 1), self.retry_max)
            self._retry_at[update_id] = asyncio.get_running_loop().time() + delay
            model.webhook_last_error = (model.now(), error)
        model.notify()

    async def stop(self, task: asyncio.Task[Any]) -> None:
        """Ends the pusher's ``task`` (from :meth:`run`) and waits for it. Cancelling alone
        is not enough on Python 3.11: ``asyncio.wait_for`` there swallows a cancellation
        that comes as the model's change wakes it (the server's stop notifies the model)."""
        self._stopping = True
        self.model.notify()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
