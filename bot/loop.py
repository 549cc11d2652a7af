"""The event loop ``siaga112 run`` runs on: uvloop's where installed and wanted, else asyncio's;
and the heap it runs with (:func:`freeze_startup_heap`).

uvloop (libuv) makes the loop's own work (wake-ups, sockets, timers) cheaper, which matters
for a bot whose time per update is mostly that work (issue 11). ``UVLOOP=off`` keeps asyncio's
loop, e.g. to compare or to rule uvloop out while debugging.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging

log = logging.getLogger(__name__)


def new_event_loop(use_uvloop: bool) -> tuple[asyncio.AbstractEventLoop, str]:
    """A new event loop and its name (``uvloop`` or ``asyncio``)."""
    if use_uvloop:
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            log.info("uvloop is not installed: asyncio's event loop")
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop, "uvloop"
    return asyncio.new_event_loop(), "asyncio"


def install_event_loop(use_uvloop: bool) -> str:
    """Makes a new loop (see :func:`new_event_loop`) this thread's current one; its name."""
    loop, name = new_event_loop(use_uvloop)
    asyncio.set_event_loop(loop)
    log.debug("event loop: %s", name)
    return name


YOUNG_GENERATION = 10_000
"""Allocations between two collections of the youngest generation (CPython's default: 700).
An update makes many short-lived objects (PTB's, SQLAlchemy's, ours), nearly all freed by
reference counting within the update, yet at 700 the young generation was collected about
every six updates at 50 citizens flat out and the middle one about every sixty (counted with
gc.callbacks, SQLite, --split), each collection walking the objects of the updates then in
flight. Measured with bench/intake.py (50 citizens flat out, median of 3, interleaved with
700, 2026-11-30, quiet machine): PostgreSQL with --split, two pairs, CPU per update
2.89 / 2.88 -> 2.65 / 2.51 ms, confirm -> committed p95 262 / 233 -> 210 / 164 ms; SQLite in
one process, three pairs, 2.83 / 2.59 / 2.78 -> 2.57 / 2.51 / 2.67 ms and p95
45 / 40 / 43 -> 37 / 37 / 38 ms; SQLite with --split, three pairs, within the noise (CPU
1.96 / 2.15 / 2.15 -> 2.07 / 2.09 / 2.14 ms, p95 53 / 59 / 57 -> 51 / 53 / 52 ms)."""


def freeze_startup_heap() -> int:
    """Collects the garbage of the start, then hides every object alive now from the cyclic
    garbage collector (``gc.freeze``) and collects the young generation every
    :data:`YOUNG_GENERATION` allocations; returns how many objects were frozen.

    What a bot builds at its start (modules, the Semarang gazetteer, tables and statements,
    handlers, translations) lives as long as the process. Python's full collection walks
    every such object each time it runs, and runs every few seconds under load: measured in
    bench/intake.py, each one stalled the event loop 58-90 ms, and every update in flight
    waited that long. Frozen, those objects are skipped by every collection; objects made
    later (each update's) are collected as before. Called once, at the end of the start, by
    ``siaga112 run``.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, *gc.get_threshold()[1:])
    return gc.get_freeze_count()
