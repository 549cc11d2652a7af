"""The ``siaga112 demo`` process: start, print the URL, run until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sys
from pathlib import Path

from bot.demo.server import DemoConsole

EXIT_FAILURE = 1
NOISY = ("httpx", "httpcore", "telegram", "aiohttp.access", "apscheduler", "aiosqlite", "alembic")


def _logging() -> None:
    """Warnings and errors on stderr (the demo's chatter is in the browser)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("LOG_LEVEL", "WARNING").upper())
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)


def _port_taken(error: OSError) -> bool:
    return error.errno in (errno.EADDRINUSE, errno.EACCES)


async def run_demo(*, port: int, scenario: str | None, database: Path, agency: str = "BPBD") -> int:
    """Runs the demo; returns the exit code (1 with one line when the port is taken)."""
    _logging()
    try:
        console = DemoConsole(database=database, agency=agency, port=port)
    except ValueError as error:
        print(f"siaga112: demo: {error}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        await console.start()
    except Exception as error:
        await console.stop()
        if isinstance(error, OSError) and _port_taken(error):
            print(
                f"siaga112: demo: port {port} on 127.0.0.1 is already in use; "
                f"choose another with --port (e.g. --port {port + 1})",
                file=sys.stderr,
            )
        else:
            logging.getLogger(__name__).debug("the demo did not start", exc_info=True)
            said = (str(error).splitlines() or [""])[0]  # SQLAlchemy adds a line of links
            name = type(error).__name__
            print(f"siaga112: demo: could not start: {name}: {said}", file=sys.stderr)
        return EXIT_FAILURE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        print(f"Siaga112 demo (exercise mode, nothing leaves this machine): {console.url}")
        print(f"demo database: {database} (deleted by «reset demo»); Ctrl-C stops", flush=True)
        if scenario is not None:
            console.start_scenario(scenario)
            print(f"scenario {scenario}: started", flush=True)
        await stop.wait()
    finally:
        await console.stop()
    return 0
