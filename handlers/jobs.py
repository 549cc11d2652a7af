"""Timers: idle drafts closed (kept for the operators as abandoned); SLA; advisory progress;
the retention purge of personal data."""

from __future__ import annotations

import logging

from handlers.context import Context

log = logging.getLogger(__name__)


async def close_idle_drafts(context: Context) -> None:
    """Closes drafts idle past the timeout and wakes the outbox for the notices."""
    closed = await context.services.intake.abandon_idle_drafts()
    if closed:
        log.info("closed %d idle drafts", closed)
        context.services.outbox.wake()


async def sla_sweep(context: Context) -> None:
    """Fires the due SLA timers (re-alert, escalation, idle claims) and wakes the outbox."""
    report = await context.services.sla.sweep()
    if report.fired:
        context.services.outbox.wake()


async def advisory_progress(context: Context) -> None:
    """Updates the progress of advisories being sent; finishes those with nothing owed."""
    if await context.services.advisories.tick():
        context.services.outbox.wake()


async def agency_ack_sweep(context: Context) -> None:
    """Fires the due agency acknowledgement deadlines (reminder, then the topic's alert)."""
    report = await context.services.agencies.sweep()
    if report.fired:
        context.services.outbox.wake()


async def purge_personal_data(context: Context) -> None:
    """Anonymises personal data past its retention period (the service logs counts only)."""
    try:
        await context.services.privacy.purge()
    except Exception as exc:  # the next run tries again; nothing is half-done (per batch)
        log.warning("privacy purge failed: %s", type(exc).__name__)
