"""/stats for admins: a period's statistics as text and a chart."""

from __future__ import annotations

import asyncio

from telegram import Update

from bot.services.advisories import NotAllowed
from handlers.context import Context, actor_of
from handlers.stats_chart import render_png

DEFAULT_DAYS = 7


async def stats(update: Update, context: Context) -> None:
    """Sends the statistics of the last N days (``/stats 30``; 7 by default)."""
    actor = actor_of(update)
    views = context.advisory_views
    args = context.args or []
    days = int(args[0]) if args and args[0].isdigit() else DEFAULT_DAYS
    try:
        report = await context.services.stats.last_days(actor.telegram_id, days)
    except NotAllowed:
        await context.bot.send_message(actor.chat_id, views.not_admin().text)
        return
    await context.bot.send_message(actor.chat_id, views.stats(report))
    chart = await asyncio.to_thread(
        render_png, report, views.milestone_labels(), views.chart_titles()
    )
    await context.bot.send_photo(actor.chat_id, chart)
