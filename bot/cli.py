"""The ``siaga112`` console script (``python -m bot`` is the same program)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from urllib.parse import urlsplit

from bot import __version__
from bot.config import Settings, SettingsError, load_settings

EXIT_SETTINGS = 2
EXIT_FAILURE = 1

#: Loggers whose INFO lines contain request URLs (and so the bot token), and PTB's, whose DEBUG
#: lines hold every update and Bot API call in full (citizens' phones, names, texts).
NOISY_LOGGERS = ("httpx", "httpcore", "telegram", "aiohttp.access", "apscheduler",
                 "aiosqlite", "asyncio", "alembic.runtime.plugins")  # fmt: skip


class RedactingFilter(logging.Filter):
    """Replaces secrets in every log record, as a second line of defence."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "**********")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrites the record's message and traceback without the secrets."""
        if not self._secrets:
            return True
        message = record.getMessage()
        if any(secret in message for secret in self._secrets):
            record.msg, record.args = self._redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


class QuietStartupFilter(logging.Filter):
    """Drops PTB's record of a start-up that gave up ("Network Retry Loop (Bootstrap …):
    Aborting", a 100-line traceback): the error reaches ``main``, which prints one line
    naming the host it could not reach. At DEBUG the record is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for PTB's bootstrap abort with a traceback."""
        if record.levelno > logging.DEBUG and record.name.startswith("telegram.ext"):
            message = record.getMessage()
            if "Bootstrap" in message and "Aborting" in message and record.exc_info:
                return logging.getLogger().level <= logging.DEBUG
        return True


def configure_logging(settings: Settings) -> None:
    """Logs to stderr; HTTP client loggers stay at WARNING; the token and the webhook
    secret are redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(QuietStartupFilter())
    handler.addFilter(
        RedactingFilter([settings.telegram_bot_token.value, settings.telegram_webhook_secret.value])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siaga112",
        description="Siaga112: Telegram intake channel for Call Center 112 Kota Semarang.",
        epilog="Configuration comes from the environment and .env (see .env.example).",
    )
    parser.add_argument("--version", action="version", version=f"siaga112 {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="start the bot (long polling, or a webhook)")
    run.add_argument("--webhook-url", help="public HTTPS URL Telegram posts updates to")
    run.add_argument("--port", type=int, default=8443, help="webhook listen port (8443)")
    run.add_argument("--listen", default="0.0.0.0", help="webhook listen address")  # noqa: S104
    # Refused with a clear line: a secret on the command line is in every user's `ps`.
    run.add_argument("--secret", help=argparse.SUPPRESS)
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("upgrade", help="create or migrate the database schema")
    commands.add_parser(
        "check", help="validate settings and the database (and Telegram, with a token)"
    )
    cap = commands.add_parser("cap", help="CAP 1.2 alerts (BMKG warnings) as advisory drafts")
    cap_commands = cap.add_subparsers(dest="cap_command", metavar="ACTION", required=True)
    cap_import = cap_commands.add_parser(
        "import", help="read an alert (file or http(s) URL) and offer the admins a draft"
    )
    cap_import.add_argument("source", metavar="FILE|URL")
    export = commands.add_parser(
        "export", help="tickets since a date as CSV, one row per ticket with its milestones"
    )
    export.add_argument("--since", required=True, type=_date, help="YYYY-MM-DD (local date)")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.add_argument(
        "--with-personal-data", action="store_true",
        help="add names, phone numbers and locations (recorded in the audit log)",
    )  # fmt: skip
    demo = commands.add_parser(
        "demo",
        help="try it without a token: the real bot against the built-in Bot API double, "
        "with a browser console (loopback only; exercise tickets)",
    )
    demo.add_argument("--port", type=int, default=8080, help="console port on 127.0.0.1 (8080)")
    demo.add_argument(
        "--scenario", choices=["flood"], help="replay a scripted surge (flood: 40 reports "
        "in two minutes across the northern kecamatan)",
    )  # fmt: skip
    demo.add_argument(
        "--database", default="siaga112-demo.db", type=Path,
        help="the demo's own SQLite file, deleted by «reset demo» (siaga112-demo.db)",
    )  # fmt: skip
    demo.add_argument(
        "--agency", default="BPBD", help="agency (code in the agencies file) with a group (BPBD)"
    )
    purge = commands.add_parser(
        "purge", help="anonymise personal data past RETENTION_DAYS / DRAFT_RETENTION_DAYS"
    )
    purge.add_argument("--dry-run", action="store_true", help="only count what would be anonymised")
    return parser


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a date like 2026-11-01") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_SETTINGS
    if args.command == "demo":
        return _demo(args)
    try:
        settings = load_settings()
        configure_logging(settings)
        if args.command == "run":
            if args.secret:
                raise SettingsError(
                    "--secret", "is not read from the command line (every user can see it "
                    "with ps): set TELEGRAM_WEBHOOK_SECRET instead",
                )  # fmt: skip
            return _run(settings, args)
        if args.command == "db":
            asyncio.run(_upgrade(settings))
            print("database is up to date")
            return 0
        if args.command == "cap":
            return asyncio.run(_cap_import(settings, args.source))
        if args.command == "export":
            return _export(settings, args)
        if args.command == "purge":
            return asyncio.run(_purge(settings, dry_run=args.dry_run))
        return asyncio.run(_check(settings))
    except SettingsError as exc:
        print(f"siaga112: {exc.variable}: {exc.problem}", file=sys.stderr)
        return EXIT_SETTINGS
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        # One clear line; the traceback of an operational failure goes to the log at DEBUG.
        logging.getLogger(__name__).debug("failure", exc_info=True)
        unreachable = _unreachable(exc, settings) if args.command == "run" else None
        said = unreachable or f"{type(exc).__name__}: {exc}"
        print(f"siaga112: {args.command} failed: {said}", file=sys.stderr)
        return EXIT_FAILURE


def _unreachable(error: Exception, settings: Settings) -> str | None:
    """One line for a network failure talking to the Bot API, else None."""
    from bot.app import unreachable  # noqa: PLC0415 - after a failure only

    said = unreachable(error, settings.telegram_api_base_url)
    if said is None:
        return None
    return f"{said}; check the network (or proxy) and TELEGRAM_API_BASE_URL"


def _demo(args: argparse.Namespace) -> int:
    """``siaga112 demo``: its own settings (``bot.demo.world``): a production ``.env`` or
    ``DATABASE_URL`` is never read, so a demo cannot touch real data."""
    from bot.demo.run import run_demo  # noqa: PLC0415 - keeps --help fast

    try:
        return asyncio.run(
            run_demo(port=args.port, scenario=args.scenario, database=args.database,
                     agency=args.agency)
        )  # fmt: skip
    except KeyboardInterrupt:
        return 0
    except SettingsError as exc:
        print(f"siaga112: demo: {exc.variable}: {exc.problem}", file=sys.stderr)
        return EXIT_SETTINGS


async def _upgrade(settings: Settings) -> None:
    from storage.migrate import upgrade  # noqa: PLC0415 - keeps --help fast

    await upgrade(settings.database_url)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_token()
    from bot.app import build_application  # noqa: PLC0415 - keeps --help and errors fast
    from bot.loop import install_event_loop  # noqa: PLC0415 - keeps --help fast

    install_event_loop(settings.uvloop)  # PTB runs on the thread's current loop
    application = build_application(settings, freeze_heap=True)
    try:
        if args.webhook_url:
            application.run_webhook(
                listen=args.listen,
                port=args.port,
                url_path=urlsplit(args.webhook_url).path.lstrip("/"),
                webhook_url=args.webhook_url,
                secret_token=settings.telegram_webhook_secret.value or None,
                allowed_updates=["message", "edited_message", "callback_query"],
            )
        else:
            application.run_polling(
                allowed_updates=["message", "edited_message", "callback_query"],
                close_loop=False,
            )
    except Exception:
        # PTB shuts a bot's HTTP pools down only once it started (getMe answered): after a
        # failed start they are closed here, so no connection is left open.
        loop = asyncio.get_event_loop()
        if not loop.is_closed():
            loop.run_until_complete(application.bot.request.shutdown())
        raise
    return 0


async def _cap_import(settings: Settings, source: str) -> int:
    from bot.commands import import_cap  # noqa: PLC0415 - keeps --help fast

    result = await import_cap(settings, source)
    if result.advisory is not None:
        where = "the whole city" if result.kecamatan is None else (
            f"{len(result.kecamatan)} kecamatan"
        )  # fmt: skip
        print(
            f"draft advisory {result.advisory.id} for {where} offered to the admins "
            f"(CAP {result.alert.identifier}); nothing is sent before an admin confirms"
        )
    else:
        print(f"CAP {result.alert.identifier} skipped: {result.skipped}")
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.commands import export_csv  # noqa: PLC0415 - keeps --help fast

    since = datetime.combine(args.since, time.min, tzinfo=settings.timezone)
    text = asyncio.run(export_csv(settings, since, personal=args.with_personal_data))
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"{text.count(chr(10)) - 1} tickets written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


async def _purge(settings: Settings, *, dry_run: bool) -> int:
    from bot.commands import purge  # noqa: PLC0415 - keeps --help fast

    report = await purge(settings, dry_run=dry_run)
    verb = "would be anonymised" if dry_run else "anonymised"
    print(
        f"{verb} (retention {settings.retention_days} days, drafts "
        f"{settings.draft_retention_days} days): {report.summary()}"
    )
    return 0


async def _check(settings: Settings) -> int:
    from bot.app import check_deployment  # noqa: PLC0415 - keeps --help fast

    failures = 0
    for ok, line in await check_deployment(settings):
        failures += not ok
        print(("ok    " if ok else "FAIL  ") + line)
    return EXIT_FAILURE if failures else 0
