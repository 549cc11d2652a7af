"""The composition root: settings -> engine, geocoder, services -> PTB Application.

Resources are opened in ``post_init`` and closed in ``post_shutdown``; the outbox worker
runs beside the updater and stops before the database closes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from telegram import Bot, BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, Defaults

import handlers
import handlers.jobs
from bot.agencies_http.client import WebhookDeliverer
from bot.agencies_http.server import AgencyApi
from bot.commands import privacy_service
from bot.config import Settings
from bot.geo import CompositeGeocoder, build_geocoder, load_gazetteer
from bot.i18n import gettext_for
from bot.loop import freeze_startup_heap
from bot.services import Services
from bot.services.advisories import AdvisoryService
from bot.services.agencies import AgencyDirectory, AgencyService
from bot.services.alerts import AdminAlerts
from bot.services.chats import ChatDirectory
from bot.services.clock import SystemClock
from bot.services.composite import CompositeDeliverer
from bot.services.console import ConsolePolicy, ConsoleService
from bot.services.governor import LagPolicy, Limits, RateGovernor
from bot.services.health import DeliveryHealth
from bot.services.intake import IntakePolicy, IntakeService
from bot.services.outbox import OutboxWorker, Pacing
from bot.services.outbox_kinds import Audience, Transport
from bot.services.ports import Clock, Geocoder, UnitOfWorkFactory
from bot.services.privacy import PrivacyService
from bot.services.queries import TicketQueries
from bot.services.queue import QueueService
from bot.services.quick_report import QuickReportService
from bot.services.relay import RelayPolicy, RelayService
from bot.services.roster import RosterService
from bot.services.sla import SlaPolicy, SlaService
from bot.services.stats import StatsService
from bot.services.subscriptions import SubscriptionService
from bot.sizes import BROADCAST_CONNECTIONS, INTERACTIVE_CONNECTIONS, UPDATES_AT_ONCE
from handlers.advisory_views import AdvisoryViews
from handlers.console_delivery import detect_topics
from handlers.context import (
    ADVISORY_VIEWS_KEY,
    OPERATOR_VIEWS_KEY,
    PRIVACY_VIEWS_KEY,
    SERVICES_KEY,
    VIEWS_KEY,
    Context,
    SiagaApplication,
    SiagaBot,
)
from handlers.delivery import TelegramDeliverer, telegram_reason
from handlers.http import HttpClient, SplitRequest, gated_request
from handlers.operator_views import OperatorViews
from handlers.privacy_views import PrivacyViews
from handlers.processing import PerChatUpdateProcessor
from handlers.ratelimit import GovernedRateLimiter
from handlers.views import Views
from storage.db import create_engine, missing_sqlite_file, session_factory
from storage.geocode_cache import SqlGeocodeCache
from storage.migrate import upgrade
from storage.uow import SqlUnitOfWorkFactory

log = logging.getLogger(__name__)

#: Seconds a citizen's action waits in all for its turn to write (SQLite) before they are
#: told to send it again (``StorageBusy``): the answer then comes within about 5 s.
CITIZEN_WRITE_WAIT = 4.0

SWEEP_INTERVAL = timedelta(seconds=30)
SLA_INTERVAL = timedelta(seconds=5)
ADVISORY_INTERVAL = timedelta(seconds=2)
PURGE_INTERVAL = timedelta(days=1)
PURGE_FIRST = 10.0
"""Seconds after the start before the first retention purge (it runs at start, then daily)."""
GEOCODER_TIMEOUT = 5.0


@dataclass(slots=True)
class Resources:
    """What ``post_init`` opened and ``post_shutdown`` must close."""

    closers: list[Any] = field(default_factory=list)


def build_application(  # noqa: PLR0915 - the composition root wires every service here
    settings: Settings,
    *,
    clock: Clock | None = None,
    geocoder: Geocoder | None = None,
    outbox_poll_interval: float = 1.0,
    rate_limiter: GovernedRateLimiter | None = None,
    freeze_heap: bool = False,
) -> SiagaApplication:
    """Build the bot; nothing is opened until the application initialises. ``freeze_heap``:
    the process is the bot's own (``siaga112 run``), so what the start built is frozen out
    of the garbage collector's walks at the end of ``post_init``
    (:func:`bot.loop.freeze_startup_heap`)."""
    clock = clock or SystemClock()
    defaults = Defaults(
        parse_mode=ParseMode.HTML,
        tzinfo=settings.timezone,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
    )
    resources = Resources()

    async def post_init(application: SiagaApplication) -> None:
        await upgrade(settings.database_url)  # created or migrated on every start
        engine = create_engine(settings.database_url, sqlite_driver=settings.sqlite_driver)
        sessions = session_factory(engine)
        uow_factory = SqlUnitOfWorkFactory(sessions)
        read_uow_factory = SqlUnitOfWorkFactory(sessions, read_only=True)
        # A citizen is told "send it again" within seconds while another process holds
        # SQLite's write lock, instead of waiting behind every queued writer's timeout.
        citizen_uow_factory = SqlUnitOfWorkFactory(sessions, write_wait=CITIZEN_WRITE_WAIT)
        background_uow_factory = SqlUnitOfWorkFactory(sessions, background=True)
        geo = geocoder or build_geocoder(
            settings.geocoder,
            nominatim_url=settings.nominatim_url,
            user_agent=settings.nominatim_user_agent,
            timeout=GEOCODER_TIMEOUT,
            min_interval=settings.nominatim_min_interval,
            cache=SqlGeocodeCache(sessions),
            clock=clock,
        )
        policy = IntakePolicy(
            timeout=timedelta(minutes=settings.intake_timeout_minutes),
            max_open_tickets=settings.max_open_tickets,
            flood_limit_per_minute=settings.flood_limit_per_minute,
            local_zone=settings.timezone,
            default_language=settings.default_language,
            operator_chat_id=settings.operator_chat_id,
            exercise=settings.demo_mode,
            separate_pin=False,  # the card carries the place (a map link, a pin on demand)
        )
        health = DeliveryHealth()
        chats = ChatDirectory(uow_factory, clock, read_uow_factory=read_uow_factory)
        alerts = AdminAlerts(uow_factory, clock, sorted(settings.admin_user_ids))
        intake = IntakeService(
            citizen_uow_factory, geo, clock, policy, read_uow_factory=read_uow_factory,
            health=health,
        )  # fmt: skip
        queries = TicketQueries(read_uow_factory)
        roster = RosterService(uow_factory, clock, read_uow_factory=read_uow_factory)
        await roster.seed(settings.operator_user_ids, settings.admin_user_ids)
        views = Views(settings)
        subscriptions, advisories, advisory_views = _advisory_services(
            settings, uow_factory, clock, roster, views
        )
        directory = AgencyDirectory(settings.agencies)
        privacy = privacy_service(
            settings, uow_factory, clock, citizen_uow_factory=citizen_uow_factory
        )
        console_services = _console_services(
            settings, uow_factory, read_uow_factory, geo, clock, health=health,
            directory=directory, citizen_uow_factory=citizen_uow_factory, privacy=privacy,
        )  # fmt: skip
        pacing = Pacing()  # the deliverer's own waits, ended when the worker stops
        telegram = TelegramDeliverer(
            application.bot, queries, intake, views, settings.operator_chat_id, chats=chats,
            operator_views=OperatorViews.from_settings(settings), queue=console_services[2],
            topics=await _topics(application, settings, chats), agencies=directory,
            advisories=advisories, advisory_views=advisory_views, pacing=pacing,
        )  # fmt: skip
        webhooks = WebhookDeliverer(queries, directory, clock)
        deliverer = CompositeDeliverer({Transport.TELEGRAM: telegram, Transport.WEBHOOK: webhooks})
        # The outbox's writes (claims, rows marked sent) go before citizens' steps in the
        # writer queue: an operator card never waits behind a surge of drafts.
        worker = OutboxWorker(
            SqlUnitOfWorkFactory(sessions, urgent=True), deliverer, clock,
            poll_interval=outbox_poll_interval, health=health,
            alerts=alerts, chats=chats,
            # One process per SQLite database: a previous run's leases are a dead process's.
            take_over_on_start=engine.dialect.name == "sqlite",
            background_uow_factory=background_uow_factory, pacing=pacing,
        )  # fmt: skip
        alerts.on_enqueue(worker.wake)
        agencies = AgencyService(
            uow_factory, clock, directory, operator_chat_id=settings.operator_chat_id,
            read_uow_factory=read_uow_factory,
        )  # fmt: skip
        application.bot_data[SERVICES_KEY] = Services(
            settings, intake, queries, worker, roster,
            *console_services,
            agencies, subscriptions, advisories, StatsService(read_uow_factory, clock, roster),
            QuickReportService(
                citizen_uow_factory, geo,
                geo if isinstance(geo, CompositeGeocoder) else None, clock,
                max_open_tickets=settings.max_open_tickets,
                default_language=settings.default_language,
            ),
            privacy,
        )  # fmt: skip
        application.bot_data[VIEWS_KEY] = views
        application.bot_data[OPERATOR_VIEWS_KEY] = telegram.operator_views
        application.bot_data[ADVISORY_VIEWS_KEY] = advisory_views
        application.bot_data[PRIVACY_VIEWS_KEY] = PrivacyViews(views, settings)
        resources.closers[:] = [worker.stop, webhooks.aclose, geo.aclose, engine.dispose]
        await _start_agency_api(settings, agencies, clock, worker, resources)
        _schedule_jobs(application)
        if settings.operator_chat_id is None:
            log.warning("OPERATOR_CHAT_ID is not set: operator cards wait in the outbox")
        else:
            await _check_operators_chat(
                application, settings.operator_chat_id, chats=chats, health=health,
                alerts=alerts, clock=clock,
            )  # fmt: skip
        await _set_commands(application)
        worker.start()
        if freeze_heap:
            log.info(
                "%d objects of the start frozen out of garbage collection", freeze_startup_heap()
            )
        worker.wake()  # deliver whatever a previous run left behind

    async def post_shutdown(application: SiagaApplication) -> None:
        for close in resources.closers:
            try:
                await close()
            except Exception as exc:
                log.warning("closing %s failed: %s", close, type(exc).__name__)

    client: HttpClient = "httpx" if settings.telegram_http_client == "httpx" else "aiohttp"
    telegram_bot = SiagaBot(
        settings.require_token(),
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_api_file_url,
        defaults=defaults,
        rate_limiter=rate_limiter or build_rate_limiter(settings),
        request=SplitRequest(
            INTERACTIVE_CONNECTIONS,
            BROADCAST_CONNECTIONS,
            client=client,
            connect_timeout=10,
            read_timeout=15,
            write_timeout=15,
            pool_timeout=5,
        ),
        get_updates_request=gated_request(client, 1, read_timeout=40),
    )
    builder = (
        ApplicationBuilder()
        .bot(telegram_bot)
        .context_types(ContextTypes(context=Context))
        .concurrent_updates(PerChatUpdateProcessor(UPDATES_AT_ONCE))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    application: SiagaApplication = builder.build()
    handlers.register(application, settings.operator_chat_id)
    return application


@dataclass(frozen=True)
class Webhook:
    """Where a bot started by :func:`start_application` takes its updates pushed, as
    ``siaga112 run --webhook-url`` does: PTB's webhook server listens on ``listen``:``port``
    (the URL's port unless given) at the URL's path, and tells Telegram the URL and the
    secret it must send back with every update."""

    url: str
    listen: str = "127.0.0.1"
    port: int | None = None
    secret: str | None = None


async def start_application(
    application: Application[Any, Any, Any, Any, Any, Any],
    *,
    poll_timeout: timedelta,
    allowed_updates: Sequence[str] | None = None,
    webhook: Webhook | None = None,
) -> None:
    """Starts a bot as ``run_polling`` does (``post_init`` included), its long polls lasting
    ``poll_timeout``, or as ``run_webhook`` does with a ``webhook``: the demo, the flow
    tests' harness and the intake benchmark start it this one way (and
    :func:`stop_application` stops it)."""
    await application.initialize()
    if application.post_init is not None:
        await application.post_init(application)
    if application.updater is None:
        raise RuntimeError("the bot was built without an Updater")
    if webhook is None:
        await application.updater.start_polling(
            poll_interval=0, timeout=poll_timeout, allowed_updates=allowed_updates
        )
    else:
        url = urlsplit(webhook.url)
        await application.updater.start_webhook(
            listen=webhook.listen,
            port=webhook.port or url.port or (443 if url.scheme == "https" else 80),
            url_path=url.path.lstrip("/"),
            webhook_url=webhook.url,
            secret_token=webhook.secret,
            allowed_updates=allowed_updates,
        )
    await application.start()


async def stop_application(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Stops a bot as SIGTERM does (its ``post_shutdown`` included), whatever part of it had
    started: the demo, the flow tests' harness and the benchmarks stop it this one way."""
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)


async def _topics(application: SiagaApplication, settings: Settings, chats: ChatDirectory) -> bool:
    """Whether the operators' chat (where it lives now: a group may have migrated) has topics."""
    operators_chat = settings.operator_chat_id
    if operators_chat is not None:
        operators_chat = await chats.resolve(operators_chat)
    return await detect_topics(application.bot, operators_chat)


async def _start_agency_api(
    settings: Settings,
    agencies: AgencyService,
    clock: Clock,
    worker: OutboxWorker,
    resources: Resources,
) -> None:
    """Starts the signed agency status endpoint when ``AGENCY_API_LISTEN`` is set."""
    if settings.agency_api_listen is None:
        return
    host, port = settings.agency_api_listen
    api = AgencyApi(agencies, clock, host=host, port=port, on_change=worker.wake)
    await api.start()
    resources.closers.insert(0, api.stop)


def _schedule_jobs(application: SiagaApplication) -> None:
    """The timers: idle drafts, SLA, agency acknowledgement deadlines, advisory progress, the
    retention purge (at start, then daily)."""
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            handlers.jobs.close_idle_drafts, interval=SWEEP_INTERVAL, first=5,
            name="close-idle-drafts",
        )  # fmt: skip
        application.job_queue.run_repeating(
            handlers.jobs.sla_sweep, interval=SLA_INTERVAL, first=SLA_INTERVAL,
            name="sla-sweep",
        )  # fmt: skip
        application.job_queue.run_repeating(
            handlers.jobs.agency_ack_sweep, interval=SLA_INTERVAL, first=SLA_INTERVAL,
            name="agency-ack-sweep",
        )  # fmt: skip
        application.job_queue.run_repeating(
            handlers.jobs.advisory_progress, interval=ADVISORY_INTERVAL,
            first=ADVISORY_INTERVAL, name="advisory-progress",
        )  # fmt: skip
        application.job_queue.run_repeating(
            handlers.jobs.purge_personal_data, interval=PURGE_INTERVAL, first=PURGE_FIRST,
            name="privacy-purge",
        )  # fmt: skip


def build_rate_limiter(settings: Settings) -> GovernedRateLimiter:
    """One rate governor for every Bot API call, with the ``TELEGRAM_RATE_*`` budgets."""
    limits = Limits(
        overall_calls=settings.rate_overall_per_second,
        group_calls=settings.rate_group_per_minute,
        private_burst=settings.rate_private_burst,
        private_per_second=settings.rate_private_per_second,
        broadcast_per_second=settings.rate_broadcast_per_second,
        paid_broadcast_per_second=settings.rate_paid_broadcast_per_second,
        lag=(
            LagPolicy(max_lag=settings.rate_broadcast_max_lag_ms / 1000)
            if settings.rate_broadcast_max_lag_ms
            else None
        ),
    )
    return GovernedRateLimiter(RateGovernor(limits), enabled=settings.rate_governor)


async def _check_operators_chat(
    application: SiagaApplication,
    chat_id: int,
    *,
    chats: ChatDirectory,
    health: DeliveryHealth,
    alerts: AdminAlerts,
    clock: Clock,
) -> None:
    """Asks Telegram for the operators' chat (``getChat``) before taking reports.

    On failure: one error line naming Telegram's reason, an admin alert, and the citizens'
    confirmations say the report is queued (not that an operator reads it) until a card
    gets through. A group that became a supergroup is followed."""
    try:
        target = await chats.resolve(chat_id)
        try:
            await application.bot.get_chat(target)
        except ChatMigrated as exc:
            await chats.moved(target, exc.new_chat_id)
            await application.bot.get_chat(exc.new_chat_id)
    except Exception as exc:
        reason = telegram_reason(exc)
        log.error(
            "the operators' chat %s cannot be reached: %s. Operator cards wait in the outbox "
            "until it can; admins are alerted.", chat_id, reason,
        )  # fmt: skip
        health.down(Audience.OPERATORS, chat_id, reason, clock.now())
        try:
            await alerts.destination_down(Audience.OPERATORS, chat_id, reason)
        except Exception as alert_error:
            log.warning("queueing the admin alert failed: %s", type(alert_error).__name__)


def _advisory_services(
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    roster: RosterService,
    views: Views,
) -> tuple[SubscriptionService, AdvisoryService, AdvisoryViews]:
    """Subscriptions and advisories, over the city's kecamatan and kelurahan."""
    gazetteer = load_gazetteer()
    kecamatan = {k.code: k.name for k in gazetteer.kecamatan}
    subscriptions = SubscriptionService(
        uow_factory, clock, kecamatan, default_language=settings.default_language
    )
    advisories = AdvisoryService(
        uow_factory, clock, gazetteer, roster, kecamatan=kecamatan,
        kelurahan={k.code: k.name for k in gazetteer.kelurahan},
        paid=settings.rate_paid_broadcast_per_second is not None,
    )  # fmt: skip
    return subscriptions, advisories, AdvisoryViews(views, kecamatan)


def _console_services(
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    read_uow_factory: UnitOfWorkFactory,
    geocoder: Geocoder,
    clock: Clock,
    *,
    health: DeliveryHealth,
    directory: AgencyDirectory,
    privacy: PrivacyService,
    citizen_uow_factory: UnitOfWorkFactory | None = None,
) -> tuple[ConsoleService, RelayService, QueueService, SlaService]:
    """The operator side: console actions, relay both ways, the queue board, SLA timers;
    a ticket closing completes its citizen's erasure request."""
    chat = settings.operator_chat_id
    console = ConsoleService(
        uow_factory, geocoder, clock, ConsolePolicy(directory.names(), chat, directory),
        read_uow_factory=read_uow_factory, on_closed=privacy.ticket_closed,
    )  # fmt: skip
    relay = RelayService(
        citizen_uow_factory or uow_factory, clock, RelayPolicy(
            flood_limit_per_minute=settings.flood_limit_per_minute,
            reopen_window=timedelta(minutes=settings.reopen_window_minutes),
            default_language=settings.default_language, operator_chat_id=chat,
        ), health=health,
    )  # fmt: skip
    sla = SlaService(
        uow_factory, clock, SlaPolicy(
            realert_after=timedelta(seconds=settings.sla_realert_seconds),
            escalate_after=timedelta(seconds=settings.sla_escalate_seconds),
            idle_claim=timedelta(minutes=settings.sla_idle_claim_minutes), operator_chat_id=chat,
        ),
    )  # fmt: skip
    return console, relay, QueueService(read_uow_factory, clock), sla


async def _set_commands(application: SiagaApplication) -> None:
    """Publishes the command menu in both languages (a failure is not fatal)."""
    try:
        for language in ("id", "en"):
            _ = gettext_for(language)
            indonesian = language == "id"  # the Indonesian aliases (/lapor, /batal, /bahasa)
            commands = [
                BotCommand("start", _("Start and menu")),
                BotCommand("lapor" if indonesian else "report", _("Report an emergency")),
                BotCommand("status", _("My reports")),
                BotCommand("batal" if indonesian else "cancel", _("Cancel the report in progress")),
                BotCommand("bahasa" if indonesian else "language", _("Language")),
                BotCommand("privasi" if indonesian else "privacy", _("Privacy notice")),
                BotCommand("datasaya" if indonesian else "mydata", _("My data")),
                BotCommand("hapusdata" if indonesian else "deletemydata", _("Delete my data")),
            ]
            await application.bot.set_my_commands(
                commands, language_code=None if language == "id" else language
            )
    except Exception as exc:
        log.warning("could not set the command menu: %s", type(exc).__name__)


async def check_deployment(settings: Settings) -> list[tuple[bool, str]]:
    """Checks the database (never creating a SQLite file) and, with a token, the bot and
    the operators' chat (naming Telegram's reason when it fails)."""
    results: list[tuple[bool, str]] = [
        (True, f"settings valid ({len(settings.agencies)} agencies)")
    ]
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:  # opening it would create an empty file
        results.append(
            (False, f"database file {missing} does not exist: run `siaga112 db upgrade`")
        )
    else:
        results.extend(await _check_database(settings))
    if not settings.telegram_bot_token:
        results.append((True, "no TELEGRAM_BOT_TOKEN: Telegram not checked"))
        return results
    application = (
        ApplicationBuilder()
        .token(settings.require_token())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_api_file_url)
        .build()
    )
    try:
        async with application:
            me = await application.bot.get_me()
            results.append((True, f"bot @{me.username} answers getMe"))
            if settings.operator_chat_id is None:
                results.append((False, "OPERATOR_CHAT_ID is not set"))
            else:
                results.extend(await _check_chat(application.bot, settings.operator_chat_id, me.id))
    except Exception as exc:
        results.append((False, f"Telegram: {_said(exc, settings)}"))
    return results


async def _check_database(settings: Settings) -> list[tuple[bool, str]]:
    """The schema's revision and the outbox's backlog."""
    from storage.migrate import current_revision, head_revision  # noqa: PLC0415

    results: list[tuple[bool, str]] = []
    engine = create_engine(settings.database_url)
    try:
        revision = await current_revision(settings.database_url)
        head = head_revision()
        if revision is None:
            results.append((False, "database reachable but empty: run `siaga112 db upgrade`"))
        else:
            results.append(
                (revision == head, f"database reachable, schema at {revision} (latest {head})")
            )
        if revision == head:
            pending = await TicketQueries(
                SqlUnitOfWorkFactory(session_factory(engine))
            ).pending_deliveries()
            results.append((True, f"{pending} deliveries waiting in the outbox"))
    except Exception as exc:
        results.append((False, f"database: {type(exc).__name__}"))
    finally:
        await engine.dispose()
    return results


async def _check_chat(bot: Bot, chat_id: int, bot_id: int) -> list[tuple[bool, str]]:
    """The operators' chat: reachable (or Telegram's reason why not), a forum, topic rights."""
    try:
        chat = await bot.get_chat(chat_id)
        member = await bot.get_chat_member(chat.id, bot_id)
    except ChatMigrated as exc:
        return [(False, f"operators' chat {chat_id} became a supergroup: set OPERATOR_CHAT_ID="
                        f"{exc.new_chat_id} (the bot follows it meanwhile)")]  # fmt: skip
    except TelegramError as exc:
        return [(False, f"operators' chat {chat_id} unreachable: Telegram says "
                        f"\"{telegram_reason(exc)}\" ({type(exc).__name__})")]  # fmt: skip
    topics = bool(getattr(member, "can_manage_topics", False))
    return [
        (True, f"operators' chat reachable ({chat.type})"),
        (bool(chat.is_forum), "operators' chat is a forum (topics on)"),
        (topics, "bot may manage topics in the operators' chat"),
        (
            True,
            "console mode: one forum topic per ticket"
            if chat.is_forum and topics
            else "console mode: no topics, a ticket's messages reply to its card",
        ),
    ]


def _said(error: BaseException, settings: Settings) -> str:
    """Telegram's reason and the error class, never the token."""
    said = f"{telegram_reason(error)} ({type(error).__name__})"
    token = settings.telegram_bot_token.value
    return said.replace(token, "<token>") if token else said


def unreachable(error: BaseException, base_url: str) -> str | None:
    """ "cannot reach HOST (reason)" when ``error`` is a network failure talking to the Bot
    API at ``base_url`` (not Telegram refusing a request), else None."""
    if not isinstance(error, NetworkError) or isinstance(error, BadRequest):
        return None
    host = urlsplit(base_url).hostname or base_url
    reason = str(error.message).split(": ", 1)[-1] if error.message else ""
    return f"cannot reach {host} ({reason or type(error).__name__})"
