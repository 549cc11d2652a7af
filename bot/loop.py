"""The event loop ``siaga112 run`` runs on: uvloop's where installed and wanted, else asyncio's.

uvloop (libuv) makes the loop's own work (wake-ups, sockets, timers) cheaper, which matters
for a bot whose time per update is mostly that work (issue 11). ``UVLOOP=off`` keeps asyncio's
loop, e.g. to compare or to rule uvloop out while debugging.
"""

from __future__ import annotations

import asyncio
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
