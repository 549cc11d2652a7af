"""How much the bot does at once, in one place: the sizes depend on each other.

* :data:`UPDATES_AT_ONCE` updates are handled concurrently (one at a time per chat).
* The outbox holds at most :data:`OUTBOX_ROWS_HELD` rows of the interactive lanes and
  :data:`BROADCAST_ROWS_HELD` broadcast rows, the latter sent by :data:`BROADCAST_STREAMS`
  tasks; the rate governor decides when each call goes.
* Every Bot API call (``getUpdates`` apart, it has its own connection) waits for one of
  :data:`INTERACTIVE_CONNECTIONS` (broadcast copies: :data:`BROADCAST_CONNECTIONS`, a pool
  of their own) on an asyncio semaphore (:class:`handlers.http.GatedRequest`), first come first
  served, and only then enters the HTTP client's pool of as many connections (aiohttp's, or
  httpx's: httpcore re-checks every connection of its pool for every queued request each
  time one is assigned or released, so with requests queued inside it that work grew with
  queue x pool, and under a burst it cost more CPU than the calls).
* On PostgreSQL the units of work share :data:`DATABASE_CONNECTIONS` pooled connections,
  kept open once opened.

Why these numbers: the governor lets about 30 messages a second out (more for a paid
broadcast); the Bot API answers in tens of milliseconds from Indonesia, so a few connections
carry the steady load and 16 streams the paid broadcast's 1,000 a second at ~15 ms each.
Broadcast copies never use the interactive connections, so a citizen's reply never waits
behind them for one.
"""

from __future__ import annotations

UPDATES_AT_ONCE = 1024
"""Updates in handling at once (PerChatUpdateProcessor). An update keeps its slot until its
replies have gone, and those wait for the governor's pace and for a connection; so a cap
below the people in flight makes the next citizen's update, and the report it stores, wait
behind other people's replies. The cap is set above any surge we expect so that every update
reaches its unit of work at once and the waiting happens after the commit, at the governor
and the connections (in order of class there). Measured with bench/intake.py, 500 citizens
flat out, SQLite: with 64, confirm -> committed p95 7.2 s; with 1,024, 84 ms. What it bounds
is memory: an update in handling is a task of a few kilobytes."""

OUTBOX_ROWS_HELD = 64
"""Interactive-lane outbox rows held at most: the governor paces and orders their calls."""

BROADCAST_ROWS_HELD = 128
"""Broadcast-lane rows held at most, besides ``OUTBOX_ROWS_HELD``: at 1,000 copies a second a
claim every 64 ms keeps the paid window full."""

BROADCAST_STREAMS = 16
"""Tasks sending the held broadcast rows (each in turn)."""

INTERACTIVE_CONNECTIONS = 8
"""Bot API calls in flight at once besides broadcast copies (replies, cards, edits…): the
gate and pool of :class:`handlers.http.SplitRequest`'s interactive side. Measured with
bench/intake.py (50 citizens flat out, fake Bot API on loopback): on httpx, CPU per update
12.9 / 13.1 / 10.6 ms with one shared pool of 32 / 16 / 8 (httpcore's checks of its idle
connections), 11.8 ms with 24. On aiohttp (no such checks) 8 / 16 / 32 gave 8.2 / 7.7 /
6.8 ms, but confirm -> committed p95 137 / 275 / 384 ms: more calls in flight take the loop
from the updates coming in, and a report is stored later. 8 keeps the report first."""

DATABASE_CONNECTIONS = 15
"""PostgreSQL connections of the bot's pool, all kept open once opened (no overflow). The
pool SQLAlchemy gives by default has 5 and lets 10 more open under load, but closes each of
those 10 as soon as it is given back: under a surge the bot kept connecting and
disconnecting (each connection a TCP and authentication handshake, the driver's type setup
and its prepared statements again). Measured with bench/intake.py, 50 citizens flat out on
PostgreSQL: 48 to 63 connections opened per run with 5 + 10, 17 with 15 kept. What that
saves moved within the machine's noise: in three interleaved pairs differing in the pool
alone, CPU per update 12.8 / 14.1 / 14.2 -> 11.1 / 13.1 / 8.9 ms and confirm -> committed
p95 1,079 / 1,070 / 1,313 -> 804 / 849 / 625 ms; in two pairs of the whole bench before and
after this change, p95 1,031 / 1,138 -> 1,181 / 864 ms. 15 is the default's most: the
number of units of work at once is unchanged (SQLite has one writer at a time whatever this
says). Measured again on a quiet machine (2026-11-30, 50 flat out, --split, PostgreSQL): 40
connections doubled the commit (two batches of three runs: p50 about 190-250 ms against
about 100 with 15; more submissions queue on the day counter's row, each holding its
connection); 8 was within the noise (two triples of bench/intake.py interleaved with 15:
confirm -> committed p95 188 / 230 against 258 / 180 ms). Once a submission held that row for
one statement and the commit only (TicketRepository.update_with_next_ref), again: 15 / 25 / 8
connections, two rounds of triples in turn, p95 82 / 230 / 187 and 108 / 204 / 166 ms."""

BROADCAST_CONNECTIONS = BROADCAST_STREAMS
"""Broadcast copies in flight at once: a pool of their own, one connection per stream."""
